package scenario

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"oomlab/harness/internal/protocol"
)

// Capability is something of the kernel a scenario may need, and how the
// runner checks it: against the built kernel's .config (Config: every
// symbol =y or =m), and in the booted guest before the setup (Paths: each
// must exist). A scenario names what it needs in requires:; a run whose
// kernel lacks one is verdict skip with the reason, never pass.
type Capability struct {
	Name   string
	Doc    string
	Config []string // CONFIG_ symbols without the prefix
	Paths  []string // in the guest (debugfs and sysfs are mounted by then)
}

// capabilities is the table requires: names. Kernels differ: 6.1 has no
// fair server and no buddy hard-lockup detector, the handoff message and
// the fault injection knob exist only on kernels with (part of) the series.
var capabilities = []Capability{
	{Name: "fair_server", Doc: "the fair deadline server and its debugfs knob (6.12+): rthog --fair-server-runtime writes it",
		Config: []string{"DEBUG_FS"}, Paths: []string{"/sys/kernel/debug/sched/fair_server"}},
	{Name: "buddy_hardlockup", Doc: "the buddy hard-lockup detector (6.6+), the one that works under TCG",
		Config: []string{"HARDLOCKUP_DETECTOR", "HARDLOCKUP_DETECTOR_BUDDY"}},
	{Name: "cgroup_v1_freezer", Doc: "the cgroup v1 freezer (mount -t cgroup -o freezer)",
		Config: []string{"CGROUP_FREEZER"}},
	{Name: "lkdtm", Doc: "LKDTM's debugfs trigger (provoke-crash/DIRECT)",
		Config: []string{"LKDTM", "DEBUG_FS"}, Paths: []string{"/sys/kernel/debug/provoke-crash/DIRECT"}},
	{Name: "robust_futex", Doc: "futexes with robust lists (pthread robust mutexes)",
		Config: []string{"FUTEX"}},
	{Name: "suspend_test", Doc: "the PM test mode (/sys/power/pm_test): freeze without suspending",
		Config: []string{"SUSPEND", "PM_SLEEP_DEBUG"}, Paths: []string{"/sys/power/pm_test"}},
	{Name: "handoff_debug", Doc: "dynamic debug, which turns on the series' pr_debug() \"Handed over\" line",
		Config: []string{"DYNAMIC_DEBUG"}, Paths: []string{"/proc/dynamic_debug/control"}},
	{Name: "oom_debug_knob", Doc: "the test-only fault injection (patches/test: /sys/kernel/debug/oom/exit_mmap_idle)",
		Config: []string{"DEBUG_FS"}, Paths: []string{"/sys/kernel/debug/oom/exit_mmap_idle"}},
	// What "rthog --fair-server-runtime 0" needs to leave CFS tasks no time
	// at all beside an RT hog (with RT throttling off): the fair server's
	// knob on 6.12+, or a kernel without a fair server, which shows as the
	// scheduler's debugfs directory without fair_server in it (rthog tells
	// the two apart and fails on anything else).
	{Name: "starve_cfs", Doc: "an RT hog can starve CFS tasks: the fair server's knob (6.12+) or no fair server (before 6.12)",
		Config: []string{"DEBUG_FS"}, Paths: []string{"/sys/kernel/debug/sched"}},
}

// Capabilities is the table requires: names, in order.
func Capabilities() []Capability { return slices.Clone(capabilities) }

// LookupCapability finds a capability by name.
func LookupCapability(name string) (Capability, bool) {
	for _, c := range capabilities {
		if c.Name == name {
			return c, true
		}
	}
	return Capability{}, false
}

func capabilityNames() []string {
	var n []string
	for _, c := range capabilities {
		n = append(n, c.Name)
	}
	return n
}

// Requirement is one entry of requires:: a capability, for every variant
// or only some ("oom_debug_knob" on the +test variants). In YAML it is the
// name alone or {name, variants}.
type Requirement struct {
	Name     string   `yaml:"name"`
	Variants []string `yaml:"variants"`
}

// UnmarshalYAML accepts "name" as well as {name: ..., variants: [...]}.
func (q *Requirement) UnmarshalYAML(unmarshal func(any) error) error {
	var name string
	if err := unmarshal(&name); err == nil {
		*q = Requirement{Name: name}
		return nil
	}
	type plain Requirement
	var p plain
	if err := unmarshal(&p); err != nil {
		return err
	}
	*q = Requirement(p)
	return nil
}

// RunsOn says whether the requirement applies to a variant.
func (q Requirement) RunsOn(variant string) bool { return runsOn(q.Variants, variant) }

// checkRequires validates requires: (called by validate).
func (s *Scenario) checkRequires() (string, string) {
	seen := map[string]bool{}
	for i, q := range s.Requires {
		at := fmt.Sprintf("$.requires[%d]", i)
		if _, ok := LookupCapability(q.Name); !ok {
			return at, fmt.Sprintf("requires[%d]: unknown capability %q (known: %s)", i, q.Name, strings.Join(capabilityNames(), ", "))
		}
		if seen[q.Name] {
			return at, fmt.Sprintf("requires[%d]: %q is named twice", i, q.Name)
		}
		seen[q.Name] = true
		if field, msg := s.checkVariants(at, q.Variants); msg != "" {
			return field, msg
		}
	}
	return "", ""
}

// required is the capabilities the scenario needs on a variant.
func (s *Scenario) required(variant string) []Capability {
	var out []Capability
	for _, q := range s.Requires {
		if c, ok := LookupCapability(q.Name); ok && q.RunsOn(variant) {
			out = append(out, c)
		}
	}
	return out
}

// SkipError ends a run that cannot show what its scenario is about: the
// kernel lacks a capability the scenario requires. judge makes it verdict
// skip with Reason.
type SkipError struct{ Reason string }

func (e *SkipError) Error() string { return "skipped: " + e.Reason }

// checkConfig checks the requirements against the built kernel's .config
// (path; "" when the caller has none: the guest check still runs). It
// needs no guest.
func checkConfig(path string, sc *Scenario, variant string) error {
	caps := sc.required(variant)
	if path == "" || len(caps) == 0 {
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("kernel config for requires: %w", err)
	}
	cfg := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && strings.HasPrefix(k, "CONFIG_") {
			cfg[strings.TrimPrefix(k, "CONFIG_")] = v
		}
	}
	var why []string
	for _, c := range caps {
		var missing []string
		for _, sym := range c.Config {
			if v := cfg[sym]; v != "y" && v != "m" {
				missing = append(missing, "CONFIG_"+sym)
			}
		}
		if len(missing) > 0 {
			why = append(why, fmt.Sprintf("%s (%s): the %s kernel has no %s", c.Name, c.Doc, variant, strings.Join(missing, ", ")))
		}
	}
	if len(why) > 0 {
		return &SkipError{Reason: "requires " + strings.Join(why, "; ")}
	}
	return nil
}

// checkGuest checks the requirements' paths in the booted guest, with one
// agent command, before the setup. An agent that cannot answer is an
// error, not a skip.
func checkGuest(ctx context.Context, sh Shell, sc *Scenario, variant string) error {
	var paths []string
	for _, c := range sc.required(variant) {
		paths = append(paths, c.Paths...)
	}
	if len(paths) == 0 {
		return nil
	}
	out, err := stepOutput(ctx, sh, protocol.ExistsCommand(paths...))
	if err != nil {
		return fmt.Errorf("checking requires in the guest: %w", err)
	}
	have := protocol.ParseExists(string(out))
	var why []string
	for _, c := range sc.required(variant) {
		var missing []string
		for _, p := range c.Paths {
			if ok, said := have[p]; !said {
				return fmt.Errorf("checking requires in the guest: no answer for %s in %q", p, tail(string(out), 200))
			} else if !ok {
				missing = append(missing, p)
			}
		}
		if len(missing) > 0 {
			why = append(why, fmt.Sprintf("%s (%s): the %s guest has no %s", c.Name, c.Doc, variant, strings.Join(missing, ", ")))
		}
	}
	if len(why) > 0 {
		return &SkipError{Reason: "requires " + strings.Join(why, "; ")}
	}
	return nil
}

// skipReason is the reason of a SkipError in err, or "".
func skipReason(err error) string {
	var se *SkipError
	if errors.As(err, &se) {
		return se.Reason
	}
	return ""
}
