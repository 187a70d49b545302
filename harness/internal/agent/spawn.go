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
)

// Re-exec modes of the agent binary (os.Args[1]).
const (
	// SpawnFlag selects the trampoline: `agent --spawn [opts] -- CMD ARGS`.
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
	defaultRTPrio   = 1
	maxOOMScoreAdj  = 1000
	minOOMScoreAdj  = -1000
	procSelfOOMAdj  = "/proc/self/oom_score_adj"
	cgroupProcsFile = "cgroup.procs"
)

// SpawnOptions are the per-command process attributes applied by the
// trampoline before exec. The zero value means: oom_score_adj 0, everything
// else inherited.
type SpawnOptions struct {
	Policy      string // "" (inherit), other, fifo, rr, batch, idle
	Prio        int    // RT priority (fifo/rr only); 0 = default 1
	CPUs        string // CPU list like "0,2-3"; "" = inherit
	OOMScoreAdj int    // always applied; default 0 (NOT inherited, see SpawnMain)
	Nice        *int   // nil = inherit
	Cgroup      string // cgroup v2 directory to join; "" = inherit
}

var policyByName = map[string]int{
	"other": unix.SCHED_NORMAL,
	"fifo":  unix.SCHED_FIFO,
	"rr":    unix.SCHED_RR,
	"batch": unix.SCHED_BATCH,
	"idle":  unix.SCHED_IDLE,
}

// PolicyName maps a scheduling policy number (as in /proc/PID/stat field
// 41) to the names accepted by --policy.
func PolicyName(p uint) string {
	for n, v := range policyByName {
		if uint(v) == p {
			return n
		}
	}
	if p == 6 {
		return "deadline"
	}
	return strconv.FormatUint(uint64(p), 10)
}

// ParseRunArgs parses `[--policy P] [--prio N] [--cpus LIST]
// [--oom-score-adj N] [--nice N] [--cgroup PATH] [--] CMD ARGS...` (flags
// may also be written --flag=value) and returns the options and CMD ARGS.
func ParseRunArgs(args []string) (SpawnOptions, []string, error) {
	var o SpawnOptions
	prioSet := false
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			i++
			break
		}
		if !strings.HasPrefix(a, "--") {
			break
		}
		name, val, hasVal := strings.Cut(a[2:], "=")
		if !hasVal {
			if i+1 >= len(args) {
				return o, nil, fmt.Errorf("option --%s needs a value", name)
			}
			i++
			val = args[i]
		}
		var err error
		switch name {
		case "policy":
			if _, ok := policyByName[val]; !ok {
				return o, nil, fmt.Errorf("unknown policy %q (want other|fifo|rr|batch|idle)", val)
			}
			o.Policy = val
		case "prio":
			o.Prio, err = strconv.Atoi(val)
			prioSet = true
		case "cpus":
			_, err = ParseCPUList(val)
			o.CPUs = val
		case "oom-score-adj":
			o.OOMScoreAdj, err = strconv.Atoi(val)
			if err == nil && (o.OOMScoreAdj < minOOMScoreAdj || o.OOMScoreAdj > maxOOMScoreAdj) {
				err = errors.New("out of range [-1000,1000]")
			}
		case "nice":
			var n int
			n, err = strconv.Atoi(val)
			if err == nil && (n < -20 || n > 19) {
				err = errors.New("out of range [-20,19]")
			}
			o.Nice = &n
		case "cgroup":
			o.Cgroup = val
		default:
			return o, nil, fmt.Errorf("unknown option --%s", name)
		}
		if err != nil {
			return o, nil, fmt.Errorf("--%s %q: %w", name, val, err)
		}
	}
	rt := o.Policy == "fifo" || o.Policy == "rr"
	switch {
	case rt && !prioSet:
		o.Prio = defaultRTPrio
	case rt && (o.Prio < 1 || o.Prio > 99):
		return o, nil, fmt.Errorf("--prio %d out of range [1,99] for %s", o.Prio, o.Policy)
	case !rt && prioSet && o.Prio != 0:
		return o, nil, errors.New("--prio needs --policy fifo or rr")
	}
	return o, args[i:], nil
}

// Args renders o back into trampoline flags. --oom-score-adj is always
// present so the trampoline never leaves the agent's -1000 in place.
func (o SpawnOptions) Args() []string {
	a := []string{"--oom-score-adj", strconv.Itoa(o.OOMScoreAdj)}
	if o.Policy != "" {
		a = append(a, "--policy", o.Policy)
		if o.Policy == "fifo" || o.Policy == "rr" {
			a = append(a, "--prio", strconv.Itoa(o.Prio))
		}
	}
	if o.CPUs != "" {
		a = append(a, "--cpus", o.CPUs)
	}
	if o.Nice != nil {
		a = append(a, "--nice", strconv.Itoa(*o.Nice))
	}
	if o.Cgroup != "" {
		a = append(a, "--cgroup", o.Cgroup)
	}
	return a
}

// ParseCPUList parses a kernel-style CPU list ("0,2-3").
func ParseCPUList(s string) (unix.CPUSet, error) {
	var set unix.CPUSet
	if strings.TrimSpace(s) == "" {
		return set, errors.New("empty CPU list")
	}
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return set, fmt.Errorf("bad CPU %q", part)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				return set, fmt.Errorf("bad CPU range %q", part)
			}
		}
		if a < 0 || b < a || b >= len(set)*64 {
			return set, fmt.Errorf("bad CPU range %q", part)
		}
		for c := a; c <= b; c++ {
			set.Set(c)
		}
	}
	return set, nil
}

// apply sets the attributes on the calling process/thread. It must run on
// the thread that will call execve: scheduling policy, nice and affinity are
// per-thread attributes on Linux and execve keeps exactly the calling
// thread's values (all other threads are destroyed).
func (o SpawnOptions) apply() error {
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
			attr.Policy = uint32(policyByName[o.Policy])
			attr.Priority = 0
			if o.Policy == "fifo" || o.Policy == "rr" {
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
		set, err := ParseCPUList(o.CPUs)
		if err != nil {
			return err
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
// applied by SpawnOptions and the final execve happen on the same thread.
//
// Exit codes when exec does not happen: 2 usage, 126 cannot apply
// options / cannot execute, 127 not found.
func SpawnMain(args []string) {
	runtime.LockOSThread()
	opts, argv, err := ParseRunArgs(args)
	if err == nil && len(argv) == 0 {
		err = errors.New("missing command")
	}
	if err != nil {
		spawnFail(exitUsage, "spawn: %v", err)
	}
	if err := opts.apply(); err != nil {
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
