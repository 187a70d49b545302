// Command oomlab-agent is the guest init and SSH agent of oomlab. Build it
// statically (CGO_ENABLED=0) and install it as /init in the initramfs.
//
// Modes (os.Args[1]):
//
//	(PID 1)                      guest init: agent.RunInit, never returns
//	--spawn [opts] -- CMD ARGS   trampoline used for every command
//	--builtin NAME ARGS          one builtin as its own process
//	--serve [--config P] ...     SSH server (started by PID 1)
//	[--config P]                 not PID 1: SSH server in the foreground
package main

import (
	"flag"
	"fmt"
	"os"

	"oomlab/harness/internal/agent"
	"oomlab/harness/internal/protocol"
)

func main() {
	// The trampoline must come first, before anything else is started:
	// agent.SpawnMain locks this goroutine to its thread and then execs.
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case agent.SpawnFlag:
			agent.SpawnMain(os.Args[2:]) // does not return
		case agent.BuiltinFlag:
			os.Exit(agent.BuiltinMain(os.Args[2:]))
		case agent.ServeFlag:
			os.Exit(agent.ServerMain(os.Args[2:]))
		}
	}
	if os.Getpid() == 1 {
		agent.RunInit(protocol.ConfigPath) // does not return
	}
	configPath := flag.String("config", protocol.ConfigPath, "agent config (JSON)")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: %s [--config PATH]\n\nRuns the oomlab guest agent's SSH server in the foreground.\nAs PID 1 it is the guest init instead.\n", os.Args[0])
	}
	flag.Parse()
	os.Exit(agent.ServerMain([]string{"--config", *configPath}))
}
