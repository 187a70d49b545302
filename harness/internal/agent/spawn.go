package agent

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"oomlab/harness/internal/protocol"
)

// Re-exec modes of the agent binary (os.Args[1]).
const (
	// SpawnFlag selects the trampoline: `agent --spawn [opts] -- CMD ARGS`,
	// opts being protocol.Spawn.Args().
	SpawnFlag = "--spawn"
	// BuiltinFlag runs one builtin in its own process:
	// `agent --builtin NAME ARGS`. Used for `run [opts] -- BUILTIN ...`.
	BuiltinFlag = "--builtin"
	// ServeFlag runs the SSH server as a child of PID 1.
	ServeFlag = "--serve"
)

// Exit codes chosen to match what shells report.
const (
	exitUsage       = 2
	exitCannotExec  = 126
	exitNotFound    = 127
	procSelfOOMAdj  = "/proc/self/oom_score_adj"
	cgroupProcsFile = "cgroup.procs"
)

// apply sets the attributes of o on the calling process/thread. It must run on
// the thread that will call execve: scheduling policy, nice and affinity are
// per-thread attributes on Linux and execve keeps exactly the calling
// thread's values (all other threads are destroyed).
func apply(o protocol.Spawn) error {
	// Cgroup first: joining a cpuset cgroup resets the affinity, and an RT
	// policy may only be allowed inside the target group.
	if o.Cgroup != "" {
		p := filepath.Join(o.Cgroup, cgroupProcsFile)
		if err := os.WriteFile(p, []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
			return fmt.Errorf("join cgroup: %w", err)
		}
	}
	// Always written: the agent itself runs at -1000 and a child inheriting
	// that is unkillable by the OOM killer, which livelocks the guest with
	// endless OOM invocations that never find a victim.
	if err := os.WriteFile(procSelfOOMAdj, []byte(strconv.Itoa(o.OOMScoreAdj)), 0); err != nil {
		return fmt.Errorf("set oom_score_adj: %w", err)
	}
	if o.Policy != "" || o.Nice != nil {
		attr, err := unix.SchedGetAttr(0, 0)
		if err != nil {
			return fmt.Errorf("sched_getattr: %w", err)
		}
		attr.Flags = 0
		if o.Policy != "" {
			num, _ := protocol.PolicyNumber(o.Policy) // validated by ParseRunArgs
			attr.Policy = uint32(num)
			attr.Priority = 0
			if o.RealTime() {
				attr.Priority = uint32(o.Prio)
			}
		}
		if o.Nice != nil {
			attr.Nice = int32(*o.Nice)
		}
		// pid 0 = the calling thread.
		if err := unix.SchedSetAttr(0, attr, 0); err != nil {
			return fmt.Errorf("sched_setattr(policy=%s prio=%d): %w", o.Policy, attr.Priority, err)
		}
	}
	if o.CPUs != "" {
		cpus, err := protocol.ParseCPUList(o.CPUs)
		if err != nil {
			return err
		}
		var set unix.CPUSet
		for _, c := range cpus {
			set.Set(c)
		}
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			return fmt.Errorf("sched_setaffinity(%s): %w", o.CPUs, err)
		}
	}
	return nil
}

// SpawnMain is the trampoline: `agent --spawn [opts] -- CMD ARGS`. It never
// returns. The caller (main) must invoke it before starting anything else;
// it locks the goroutine to its OS thread so that the per-thread settings
// applied from the options and the final execve happen on the same thread.
//
// Exit codes when exec does not happen: 2 usage, 126 cannot apply
// options / cannot execute, 127 not found.
func SpawnMain(args []string) {
	runtime.LockOSThread()
	opts, argv, err := protocol.ParseRunArgs(args)
	if err == nil && len(argv) == 0 {
		err = errors.New("missing command")
	}
	if err != nil {
		spawnFail(exitUsage, "spawn: %v", err)
	}
	if err := apply(opts); err != nil {
		spawnFail(exitCannotExec, "%s: %v", argv[0], err)
	}
	path := argv[0]
	if !strings.Contains(path, "/") {
		if path, err = exec.LookPath(path); err != nil {
			spawnFail(exitNotFound, "%s: command not found", argv[0])
		}
	}
	err = syscall.Exec(path, argv, os.Environ())
	if errors.Is(err, syscall.ENOENT) {
		spawnFail(exitNotFound, "%s: command not found", argv[0])
	}
	spawnFail(exitCannotExec, "%s: %v", argv[0], err)
}

func spawnFail(code int, format string, a ...any) {
	fmt.Fprintf(os.Stderr, "oomlab-agent: "+format+"\n", a...)
	os.Exit(code)
}
