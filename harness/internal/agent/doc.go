// Package agent is the guest side of oomlab: a tiny init + SSH server that
// runs as /init (PID 1) inside an initramfs-only guest with no shell and no
// libc.
//
// Process layout inside the guest:
//
//	PID 1  /init                 mounts, sysctls, opens the port (or the
//	  │                          socket), reaps orphans, supervises the
//	  │                          server (RunInit)
//	  └─ /init --serve           SSH server (ServerMain / Server.Serve)
//	       └─ /init --spawn ...  trampoline (SpawnMain), exec()s into the
//	            command          requested program after applying
//	                             oom_score_adj / policy / affinity / cgroup
//
// The SSH server listens where Config.ListenAddr says: in an oomlab guest
// a virtio-serial port ("vport:org.oomlab.agent", vport.go: one host
// connection at a time over the port), elsewhere a TCP address.
//
// Everything except RunInit is usable (and tested) on an ordinary host:
// Server.Serve takes any net.Listener and Server.SelfExe points at a built
// agent binary used as the trampoline.
//
// # Commands
//
// The protocol (configuration, command-line syntax, the run options, the
// JSON of ps, uptime and metrics, signal names) is package protocol, shared
// with the host. An SSH "exec" request carries one command line, split by
// protocol.SplitWords (quotes and backslashes, no expansion, no
// redirection, no pipes):
//
//	run [--policy other|fifo|rr|batch|idle] [--prio N] [--cpus LIST]
//	    [--oom-score-adj N] [--nice N] [--cgroup DIR] -- CMD ARGS...
//	                            options: protocol.Spawn (ParseRunArgs)
//	CMD ARGS...                 same as `run -- CMD ARGS...`
//
// CMD is looked up in Config.PathDirs unless it contains a slash; a missing
// command exits 127. Every external command runs through the trampoline in
// its own process group, with oom_score_adj 0 unless --oom-score-adj says
// otherwise. Builtins named directly run inside the agent; named after
// `run ... --` they run as a separate process with the options applied.
//
// Builtins: cat FILE..., echo [-n] WORDS, write [-n] FILE VALUE...,
// sysctl [-n] KEY[=VALUE]..., mkdir [-p] DIR..., kmsg TEXT...,
// kill [-SIG] [--] PID..., ps (JSON []protocol.ProcInfo), uptime (JSON
// protocol.Uptime), metrics [--interval-ms N] [--count N] (JSON
// protocol.Sample lines), sleep DURATION,
// true, false, poweroff, reboot.
//
// Exit is reported as "exit-status", or "exit-signal" with the signal name
// ("KILL" for an OOM kill) when the command died from a signal. Closing the
// channel SIGKILLs the command's process group; "signal" requests are
// forwarded to it.
package agent
