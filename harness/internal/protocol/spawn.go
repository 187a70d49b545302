package protocol

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
)

// Spawn is how the agent starts one command: the process attributes its
// trampoline applies before exec. The zero value means oom_score_adj 0
// (never the agent's own -1000) and everything else inherited.
//
// A scenario's stressor carries a Spawn (its YAML fields are the ones
// below), the host checks it with Validate and sends it with Command (the
// `run` options are its only wire encoding); the agent decodes it with
// ParseRunArgs into this same type, and hands it to its trampoline in the
// same encoding.
type Spawn struct {
	Policy      string `yaml:"policy"` // "" (inherit), other, fifo, rr, batch, idle
	Prio        int    `yaml:"prio"`   // RT priority, fifo/rr only: 1..99
	CPUs        string `yaml:"cpus"`   // affinity, a CPU list like "0,2-3"; "" = inherit
	OOMScoreAdj int    `yaml:"oom_score_adj"`
	Nice        *int   `yaml:"nice"`   // nil = inherit
	Cgroup      string `yaml:"cgroup"` // directory whose cgroup.procs to join; "" = inherit
}

// Scheduling policies by name, as the kernel numbers them (SCHED_NORMAL,
// SCHED_FIFO, ... in include/uapi/linux/sched.h). The names are those of
// Spawn.Policy and ProcInfo.Policy.
var policies = []struct {
	name string
	num  uint
}{
	{"other", 0}, {"fifo", 1}, {"rr", 2}, {"batch", 3}, {"idle", 5},
}

// policyDeadline is SCHED_DEADLINE: reported by ps, never set by Spawn.
const policyDeadline = 6

// policyNames is the list for error messages.
const policyNames = "other, fifo, rr, batch or idle"

// Ranges of the numeric Spawn fields.
const (
	MinRTPrio, MaxRTPrio           = 1, 99
	MinOOMScoreAdj, MaxOOMScoreAdj = -1000, 1000
	MinNice, MaxNice               = -20, 19
	// MaxCPUs bounds a CPU list (the kernel's cpu_set_t of glibc and of
	// x/sys/unix holds 1024).
	MaxCPUs = 1024
	// DefaultRTPrio is what ParseRunArgs uses for fifo/rr without --prio.
	DefaultRTPrio = 1
)

// PolicyNumber returns the kernel's number for a policy name ("" has none).
func PolicyNumber(name string) (uint, bool) {
	for _, p := range policies {
		if p.name == name {
			return p.num, true
		}
	}
	return 0, false
}

// PolicyName maps a scheduling policy number (as in /proc/PID/stat field
// 41) to its name; unknown numbers are returned as digits.
func PolicyName(num uint) string {
	for _, p := range policies {
		if p.num == num {
			return p.name
		}
	}
	if num == policyDeadline {
		return "deadline"
	}
	return strconv.FormatUint(uint64(num), 10)
}

// RealTime says whether the policy takes an RT priority.
func (s Spawn) RealTime() bool { return s.Policy == "fifo" || s.Policy == "rr" }

// FieldError is what Validate returns: Field is the name of the bad field
// as written in YAML, Msg one line that starts with it.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Msg }

func fieldErr(field, format string, a ...any) error {
	return &FieldError{Field: field, Msg: field + " " + fmt.Sprintf(format, a...)}
}

// Validate checks every field; the error is a *FieldError naming the first
// bad one.
func (s Spawn) Validate() error {
	if s.Policy != "" {
		if _, ok := PolicyNumber(s.Policy); !ok {
			return fieldErr("policy", "%q: want %s", s.Policy, policyNames)
		}
	}
	switch {
	case s.RealTime() && (s.Prio < MinRTPrio || s.Prio > MaxRTPrio):
		return fieldErr("prio", "%d: fifo/rr need %d..%d", s.Prio, MinRTPrio, MaxRTPrio)
	case !s.RealTime() && s.Prio != 0:
		return fieldErr("prio", "%d: only policy fifo or rr has a priority", s.Prio)
	}
	if s.CPUs != "" {
		if _, err := ParseCPUList(s.CPUs); err != nil {
			return fieldErr("cpus", "%q: %v", s.CPUs, err)
		}
	}
	if s.OOMScoreAdj < MinOOMScoreAdj || s.OOMScoreAdj > MaxOOMScoreAdj {
		return fieldErr("oom_score_adj", "%d out of range %d..%d", s.OOMScoreAdj, MinOOMScoreAdj, MaxOOMScoreAdj)
	}
	if s.Nice != nil && (*s.Nice < MinNice || *s.Nice > MaxNice) {
		return fieldErr("nice", "%d out of range %d..%d", *s.Nice, MinNice, MaxNice)
	}
	if s.Cgroup != "" && (!path.IsAbs(s.Cgroup) || strings.ContainsAny(s.Cgroup, "\x00\n")) {
		return fieldErr("cgroup", "%q: want an absolute directory such as /sys/fs/cgroup/victim", s.Cgroup)
	}
	return nil
}

// ParseCPUList parses a kernel-style CPU list ("0,2-3") into the CPU
// numbers it names, in the order written.
func ParseCPUList(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("empty CPU list")
	}
	var cpus []int
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("bad CPU %q", part)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				return nil, fmt.Errorf("bad CPU range %q", part)
			}
		}
		if a < 0 || b < a || b >= MaxCPUs {
			return nil, fmt.Errorf("bad CPU range %q", part)
		}
		for c := a; c <= b; c++ {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

// The `run` options, the one encoding of a Spawn on a command line. The
// agent's trampoline takes the same options.
const (
	optPolicy      = "policy"
	optPrio        = "prio"
	optCPUs        = "cpus"
	optNice        = "nice"
	optCgroup      = "cgroup"
	optOOMScoreAdj = "oom-score-adj"
)

// Args encodes s as `run` options. --oom-score-adj is always present so
// that a command never keeps the agent's -1000.
func (s Spawn) Args() []string {
	var a []string
	if s.Policy != "" {
		a = append(a, "--"+optPolicy, s.Policy)
		if s.RealTime() {
			a = append(a, "--"+optPrio, strconv.Itoa(s.Prio))
		}
	}
	if s.CPUs != "" {
		a = append(a, "--"+optCPUs, s.CPUs)
	}
	if s.Nice != nil {
		a = append(a, "--"+optNice, strconv.Itoa(*s.Nice))
	}
	if s.Cgroup != "" {
		a = append(a, "--"+optCgroup, s.Cgroup)
	}
	return append(a, "--"+optOOMScoreAdj, strconv.Itoa(s.OOMScoreAdj))
}

// Command is the agent command line that runs cmdline (itself an agent
// command line: words split by SplitWords) with the attributes of s:
// `run OPTIONS -- CMDLINE`.
func (s Spawn) Command(cmdline string) string {
	return CmdRun + " " + JoinWords(s.Args()...) + " -- " + cmdline
}

// ParseRunArgs decodes `[--policy P] [--prio N] [--cpus LIST]
// [--oom-score-adj N] [--nice N] [--cgroup DIR] [--] CMD ARGS...` (each
// option may also be written --opt=value), validates the result and
// returns it with CMD ARGS. fifo and rr without --prio get DefaultRTPrio.
func ParseRunArgs(args []string) (Spawn, []string, error) {
	var s Spawn
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
				return s, nil, fmt.Errorf("option --%s needs a value", name)
			}
			i++
			val = args[i]
		}
		var err error
		switch name {
		case optPolicy:
			s.Policy = val
		case optPrio:
			s.Prio, err = strconv.Atoi(val)
			prioSet = true
		case optCPUs:
			s.CPUs = val
		case optOOMScoreAdj:
			s.OOMScoreAdj, err = strconv.Atoi(val)
		case optNice:
			var n int
			n, err = strconv.Atoi(val)
			s.Nice = &n
		case optCgroup:
			s.Cgroup = val
		default:
			return s, nil, fmt.Errorf("unknown option --%s", name)
		}
		if err != nil {
			return s, nil, fmt.Errorf("--%s %q: not a number", name, val)
		}
	}
	if s.RealTime() && !prioSet {
		s.Prio = DefaultRTPrio
	}
	if err := s.Validate(); err != nil {
		return s, nil, err
	}
	return s, args[i:], nil
}
