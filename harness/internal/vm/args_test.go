package vm

import (
	"slices"
	"strings"
	"testing"
)

// TestAgentPortWiring checks that the port the agent listens on is the
// one QEMU connects to the host's socket, on the microvm, and that a
// guest reboot (a panic, the agent's poweroff) is a triple fault that
// -no-reboot turns into QEMU's exit.
func TestAgentPortWiring(t *testing.T) {
	c := Config{Kernel: "bzImage", Initrd: "initrd", CPUs: 2, MemoryMB: 256, Cmdline: "panic=-1"}
	args := c.args("tcg", "/tmp/qmp.sock", "/tmp/agent.sock")
	if !slices.Contains(args, "socket,id=agent,path=/tmp/agent.sock,server=on,wait=off") {
		t.Errorf("no server socket for the agent chardev in %q", args)
	}
	if !slices.Contains(args, "virtserialport,chardev=agent,name="+AgentPort) {
		t.Errorf("no virtserialport %q on the agent chardev in %q", AgentPort, args)
	}
	if i := slices.Index(args, "-machine"); i < 0 || !strings.HasPrefix(args[i+1], "microvm,") {
		t.Errorf("not a microvm: %q", args)
	}
	i := slices.Index(args, "-append")
	if i < 0 || !slices.Contains(strings.Fields(args[i+1]), RebootTriple) || !slices.Contains(args, "-no-reboot") {
		t.Errorf("a guest reboot would not end QEMU: %q", args)
	}
	// What makes older kernels boot like 6.12 on the microvm: a seeded
	// RNG at once and the TSC as clocksource.
	for _, p := range []string{TrustCPURandom, TSCReliable} {
		if i < 0 || !slices.Contains(strings.Fields(args[i+1]), p) {
			t.Errorf("no %s on the command line: %q", p, args)
		}
	}
}
