// Package protocol is what the host and the guest agent agree on, and
// nothing else: the agent configuration the host writes into the image,
// the command line the agent runs (word quoting, the `run` options that
// set a command's scheduling policy, CPUs, cgroup and oom_score_adj), the
// JSON the agent's builtins print (metric samples, process lists), signal
// names and the markers and paths both sides use.
//
// Both sides link it: the host (packages guest, scenario, initramfs) to
// build and check what it sends, the agent to decode it into the very same
// types. It must stay small and must not pull in guest-only dependencies
// (procfs readers, netlink): the host binary does not link the agent.
package protocol

// AgentPath is the agent's own path in the guest: a symbolic link to /init
// that the image manifest (images/guest.yaml) puts there and through which
// the agent starts its server and every trampoline, so that they are named
// "oomlab-agent" (comm is the basename of the executed path) in ps and in
// kernel lines that name a task, not "exe" or a second "init". The
// initramfs package refuses a manifest that disagrees.
const AgentPath = "/bin/oomlab-agent"

// ReadyMarker is printed once on the console when the agent's SSH server
// accepts connections; the host may wait for it on the serial log.
const ReadyMarker = "oomlab-agent: ready"
