package scenario

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"oomlab/harness/internal/protocol"
	"oomlab/harness/internal/results"
)

func TestRequiresParse(t *testing.T) {
	sc, err := Parse("r.yaml", []byte(`name: r
variants: [baseline, "patched:2+test"]
requires:
  - fair_server
  - {name: oom_debug_knob, variants: ["patched:2+test"]}
stressors:
  - command: memhog
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(sc.Requires) != 2 || sc.Requires[0].Name != "fair_server" || sc.Requires[1].Variants[0] != "patched:2+test" {
		t.Fatalf("requires = %+v", sc.Requires)
	}
	names := func(v string) string {
		var n []string
		for _, c := range sc.required(v) {
			n = append(n, c.Name)
		}
		return strings.Join(n, ",")
	}
	if names("baseline") != "fair_server" || names("patched:2+test") != "fair_server,oom_debug_knob" {
		t.Errorf("required: baseline %q, +test %q", names("baseline"), names("patched:2+test"))
	}

	for _, tc := range []struct{ yaml, want string }{
		{"requires: [fair_servr]", `r.yaml:1:12: requires[0]: unknown capability "fair_servr" (known: fair_server, buddy_hardlockup,`},
		{"requires: [lkdtm, lkdtm]", `requires[1]: "lkdtm" is named twice`},
		{"requires: [{name: lkdtm, variants: [\"patched:9\"]}]", `requires[0]: variant "patched:9" is not in variants`},
	} {
		_, err := Parse("r.yaml", []byte(tc.yaml+"\nname: r\nstressors: [{command: memhog}]\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

// Every capability can be checked somewhere, and its doc says what it is.
func TestCapabilityTable(t *testing.T) {
	for _, c := range Capabilities() {
		if c.Doc == "" || len(c.Config)+len(c.Paths) == 0 {
			t.Errorf("%s: no doc or no check", c.Name)
		}
	}
	for _, n := range []string{"fair_server", "buddy_hardlockup", "cgroup_v1_freezer", "lkdtm", "robust_futex", "suspend_test", "handoff_debug", "oom_debug_knob", "starve_cfs"} {
		if _, ok := LookupCapability(n); !ok {
			t.Errorf("capability %s missing", n)
		}
	}
}

func writeConfig(t *testing.T, lines ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckConfig(t *testing.T) {
	sc := &Scenario{Requires: []Requirement{{Name: "buddy_hardlockup"}, {Name: "lkdtm", Variants: []string{"patched"}}}}
	// 6.1: no buddy detector.
	cfg := writeConfig(t, "CONFIG_HARDLOCKUP_DETECTOR=y", "# CONFIG_HARDLOCKUP_DETECTOR_BUDDY is not set", "CONFIG_LKDTM=y", "CONFIG_DEBUG_FS=y")
	err := checkConfig(cfg, sc, "baseline")
	want := "requires buddy_hardlockup (the buddy hard-lockup detector (6.6+), the one that works under TCG): the baseline kernel has no CONFIG_HARDLOCKUP_DETECTOR_BUDDY"
	if skipReason(err) != want {
		t.Errorf("skip %q, want %q (err %v)", skipReason(err), want, err)
	}
	ok := writeConfig(t, "CONFIG_HARDLOCKUP_DETECTOR=y", "CONFIG_HARDLOCKUP_DETECTOR_BUDDY=y", "CONFIG_LKDTM=m", "CONFIG_DEBUG_FS=y")
	if err := checkConfig(ok, sc, "patched"); err != nil {
		t.Errorf("all there (=m counts): %v", err)
	}
	noLKDTM := writeConfig(t, "CONFIG_HARDLOCKUP_DETECTOR=y", "CONFIG_HARDLOCKUP_DETECTOR_BUDDY=y")
	if err := checkConfig(noLKDTM, sc, "baseline"); err != nil {
		t.Errorf("lkdtm is required on patched only: %v", err)
	}
	if r := skipReason(checkConfig(noLKDTM, sc, "patched")); !strings.Contains(r, "lkdtm") || !strings.Contains(r, "CONFIG_LKDTM, CONFIG_DEBUG_FS") {
		t.Errorf("patched: %q", r)
	}
	if err := checkConfig("", sc, "baseline"); err != nil {
		t.Errorf("no config path: %v", err)
	}
	if err := checkConfig(filepath.Join(t.TempDir(), "gone"), sc, "baseline"); err == nil || skipReason(err) != "" {
		t.Errorf("unreadable config must be an error, not a skip: %v", err)
	}
}

// Run skips on the .config before any guest boots.
func TestRunSkipsOnConfig(t *testing.T) {
	sc := &Scenario{Name: "t", Timeout: Duration(time.Minute), Requires: []Requirement{{Name: "suspend_test"}}}
	cfg := writeConfig(t, "CONFIG_SUSPEND=y")
	r := Run(context.Background(), Env{Kernels: map[string]string{"baseline": "/nonexistent/bzImage"}, Configs: map[string]string{"baseline": cfg}, Dir: t.TempDir()}, sc, "baseline", 1)
	if r.Verdict != results.Skip || !strings.Contains(r.SkipReason, "suspend_test") || !strings.Contains(r.SkipReason, "CONFIG_PM_SLEEP_DEBUG") || r.Error != "" {
		t.Errorf("verdict %s, skip %q, error %q", r.Verdict, r.SkipReason, r.Error)
	}
	if r.Console != "" {
		t.Errorf("a guest was started: console %q", r.Console)
	}
}

// The guest check is one command before the setup; a missing path skips
// the run with the reason, and nothing else runs.
func TestGuestRequires(t *testing.T) {
	sc := &Scenario{
		Requires:  []Requirement{{Name: "fair_server"}, {Name: "robust_futex"}, {Name: "oom_debug_knob", Variants: []string{"baseline+test"}}},
		Setup:     []Step{{Command: "write /x 1"}},
		Stressors: []Stressor{{Name: "rt", Command: "rthog", Count: 1}},
	}
	cmd := protocol.ExistsCommand("/sys/kernel/debug/sched/fair_server")

	t.Run("missing", func(t *testing.T) {
		sh := &fakeShell{outputs: map[string]fakeOutput{cmd: {out: "0 /sys/kernel/debug/sched/fair_server\n"}}}
		ts := newTestSession(t, sc, sh)
		r, _, err := ts.run(t, context.Background())
		judge(r, sc, "patched", err)
		if r.Verdict != results.Skip || !strings.Contains(r.SkipReason, "fair_server") || !strings.Contains(r.SkipReason, "the patched guest has no /sys/kernel/debug/sched/fair_server") {
			t.Errorf("verdict %s, reason %q", r.Verdict, r.SkipReason)
		}
		if calls := sh.Calls(); len(calls) != 1 || calls[0] != "output "+cmd {
			t.Errorf("calls %v: want the one check and nothing after it", calls)
		}
	})
	t.Run("present", func(t *testing.T) {
		sh := &fakeShell{outputs: map[string]fakeOutput{cmd: {out: "1 /sys/kernel/debug/sched/fair_server\n"}}}
		ts := newTestSession(t, sc, sh)
		ts.sc.Duration = Duration(time.Millisecond)
		go func() { waitFor(t, "stressor", func() bool { return sh.index("spawn rthog") >= 0 }); ts.fm.die(nil) }()
		_, _, err := ts.run(t, context.Background())
		if err != nil {
			t.Fatal(err)
		}
		// The check, the clocksource (clock.go), then the setup.
		if i, j := sh.index("output "+cmd), sh.index("output write /x 1"); i != 0 || j != 2 {
			t.Errorf("check at %d, setup at %d: want the check first and the setup third (%v)", i, j, sh.Calls())
		}
	})
	t.Run("no answer", func(t *testing.T) {
		sh := &fakeShell{outputs: map[string]fakeOutput{cmd: {out: "garbage"}}}
		ts := newTestSession(t, sc, sh)
		r, _, err := ts.run(t, context.Background())
		judge(r, sc, "patched", err)
		if r.Verdict != results.Error || !strings.Contains(r.Error, "no answer for /sys/kernel/debug/sched/fair_server") {
			t.Errorf("verdict %s, error %q", r.Verdict, r.Error)
		}
	})
	t.Run("nothing to check", func(t *testing.T) {
		sc := &Scenario{Requires: []Requirement{{Name: "robust_futex"}}}
		sh := &fakeShell{}
		if err := checkGuest(context.Background(), sh, sc, "patched"); err != nil || len(sh.Calls()) != 0 {
			t.Errorf("err %v, calls %v", err, sh.Calls())
		}
	})
}

// The shipped scenarios say what they need (issue #16): a kernel without
// it skips them instead of passing them.
func TestShippedRequires(t *testing.T) {
	scs, err := LoadDir(os.DirFS(filepath.Join("..", "..", "..")), "scenarios")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		// Starving the victim adapts to a kernel without a fair server
		// (6.1: RT throttling off is all it takes); letting it run 50 ms
		// a second needs the fair server itself.
		"tetsuo-rt-idle":              "starve_cfs",
		"rt-idle-handoff":             "fair_server,handoff_debug",
		"robust-futex-waiter":         "fair_server,robust_futex",
		"robust-futex-waiter-starved": "starve_cfs,robust_futex",
		"detector-hardlockup":         "lkdtm,buddy_hardlockup",
		"detector-selftest":           "lkdtm",
		"frozen-threadgroup":          "cgroup_v1_freezer",
		"suspend-with-victim":         "suspend_test,starve_cfs",
		"memcg-storm":                 "starve_cfs",
		"oom-lock-hold":               "starve_cfs",
		"smoke":                       "",
	}
	for name, w := range want {
		sc := scs[name]
		if sc == nil {
			t.Errorf("no scenario %s", name)
			continue
		}
		var got []string
		for _, c := range sc.required(sc.Variants[0]) {
			got = append(got, c.Name)
		}
		if strings.Join(got, ",") != w {
			t.Errorf("%s requires %v, want %s", name, got, w)
		}
	}
	em := scs["exit-mmap-starved"]
	for v, w := range map[string]int{"baseline": 1, "patched:2+test": 2, "patched:3+test": 2} {
		if n := len(em.required(v)); n != w {
			t.Errorf("exit-mmap-starved on %s requires %d, want %d", v, n, w)
		}
	}
	for _, c := range Cases(scs, "tetsuo-sweep") {
		if len(c.required("baseline")) != 1 {
			t.Errorf("%s: requires %v", c.Name, c.Requires)
		}
	}
}
