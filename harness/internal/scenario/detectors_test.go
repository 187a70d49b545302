package scenario

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"oomlab/harness/internal/console"
	"oomlab/harness/internal/protocol"
	"oomlab/harness/internal/results"
)

// guestDefaults are a guest's detector values as oomlab's 6.12 guests
// have them in detector-selftest.
func guestDefaults() map[string]int64 {
	return map[string]int64{
		"watchdog_thresh": 5, "soft_watchdog": 1, "nmi_watchdog": 1,
		"rcu_cpu_stall_timeout": 21, "rcu_cpu_stall_suppress": 0,
		"hung_task_timeout_secs": 30, "hung_task_check_interval_secs": 5, "hung_task_warnings": 10,
	}
}

func with(v map[string]int64, kv ...any) map[string]int64 {
	out := map[string]int64{}
	for k, n := range v {
		out[k] = n
	}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i].(string)] = int64(kv[i+1].(int))
	}
	return out
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func TestDetectorBounds(t *testing.T) {
	unit := float64(1<<30) / 1e9 // get_timestamp()'s 1.07 s
	for _, c := range []struct {
		name     string
		detector string
		v        map[string]int64
		want     time.Duration // without the stressor start
	}{
		{"soft thresh 5", "soft_lockup", guestDefaults(), secs(11*unit + 4)},
		{"soft thresh 10", "soft_lockup", with(guestDefaults(), "watchdog_thresh", 10), secs(21*unit + 8)},
		{"hard thresh 5", "hard_lockup", guestDefaults(), 18 * time.Second},
		{"rcu 21", "rcu_stall", guestDefaults(), 27 * time.Second},
		{"rcu clamped up", "rcu_stall", with(guestDefaults(), "rcu_cpu_stall_timeout", 1), 9 * time.Second},
		{"rcu clamped down", "rcu_stall", with(guestDefaults(), "rcu_cpu_stall_timeout", 900), 306 * time.Second},
		{"hung 30 every 5", "hung_task", guestDefaults(), secs(7 * 5 * 1.125)},
		{"hung 30 interval 0", "hung_task", with(guestDefaults(), "hung_task_check_interval_secs", 0), secs(2 * 30 * 1.125)},
		{"hung interval above timeout", "hung_task", with(guestDefaults(), "hung_task_check_interval_secs", 100), secs(2 * 30 * 1.125)},
		{"hung 30 every 7", "hung_task", with(guestDefaults(), "hung_task_check_interval_secs", 7), secs(6 * 7 * 1.125)},
		{"hung 120 (6.1 and 6.12 default)", "hung_task", with(guestDefaults(), "hung_task_timeout_secs", 120, "hung_task_check_interval_secs", 0), secs(2 * 120 * 1.125)},
	} {
		p, err := planDetectors([]string{c.detector}, c.v, 0, "in the guest")
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		want := c.want + stressorStart
		if d := p.bound - want; d < -time.Millisecond || d > time.Millisecond {
			t.Errorf("%s: bound %v, want %v", c.name, p.bound, want)
		}
		if p.wait != p.bound+p.bound/4+15*time.Second {
			t.Errorf("%s: wait %v for bound %v", c.name, p.wait, p.bound)
		}
	}
}

func TestDetectorPlan(t *testing.T) {
	p, err := planDetectors([]string{"soft_lockup", "rcu_stall", "hung_task"}, guestDefaults(), 2*time.Second, "in the guest")
	if err != nil {
		t.Fatal(err)
	}
	hung := secs(7*5*1.125) + 2*time.Second + stressorStart // the largest, with the stressor's start_after
	if p.bound != hung || !strings.HasPrefix(p.worst, "hung_task by 42.4s") {
		t.Errorf("bound %v (%s), want %v from hung_task", p.bound, p.worst, hung)
	}
	tm := p.timing
	if len(tm.Detectors) != 3 || tm.Detectors[2].Name != "hung_task" || tm.Detectors[2].BoundS != 42.4 || tm.BoundS != 42.4 || tm.WaitS != 68 {
		t.Errorf("timing %+v", tm)
	}
	if _, ok := tm.Values["nmi_watchdog"]; ok || tm.Values["hung_task_check_interval_secs"] != 5 || len(tm.Values) != 7 {
		t.Errorf("values %v: want those of the three detectors only", tm.Values)
	}
	if want := "rcu_cpu_stall_timeout 21, rcu_cpu_stall_suppress 0, hung_task_timeout_secs 30"; !strings.Contains(p.line(), want) {
		t.Errorf("log line %q lacks %q", p.line(), want)
	}

	for _, c := range []struct {
		detector string
		v        map[string]int64
		want     string
	}{
		{"soft_lockup", with(guestDefaults(), "watchdog_thresh", 0), "soft_lockup: watchdog_thresh is 0 in the guest: the lockup detectors are off"},
		{"soft_lockup", with(guestDefaults(), "soft_watchdog", 0), "soft_lockup: soft_watchdog is 0 in the guest"},
		{"hard_lockup", with(guestDefaults(), "nmi_watchdog", 0), "hard_lockup: nmi_watchdog is 0 in the guest"},
		{"rcu_stall", with(guestDefaults(), "rcu_cpu_stall_suppress", 1), "rcu_stall: rcu_cpu_stall_suppress is 1 in the guest"},
		{"hung_task", with(guestDefaults(), "hung_task_timeout_secs", 0), "hung_task: hung_task_timeout_secs is 0 in the guest"},
		{"hung_task", with(guestDefaults(), "hung_task_warnings", 0), "hung_task: hung_task_warnings is 0 in the guest"},
		{"hung_task", map[string]int64{"hung_task_timeout_secs": 30}, "hung_task: no value for hung_task_check_interval_secs"},
		{"softlockup", guestDefaults(), `unknown detector "softlockup"`},
	} {
		_, err := planDetectors([]string{c.detector}, c.v, 0, "in the guest")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %v: error %v, want %q", c.detector, c.v, err, c.want)
		}
	}
}

func TestBootValues(t *testing.T) {
	v := bootValues(DefaultCmdline+" watchdog_thresh=7 rcupdate.rcu_cpu_stall_timeout=40 sysctl.kernel.hung_task_warnings=-1 sysctl.kernel.soft_watchdog=x",
		map[string]string{"kernel.hung_task_check_interval_secs": "5", "kernel.watchdog_thresh": "3"})
	want := map[string]int64{
		"watchdog_thresh":       3, // the agent's sysctl comes after the command line
		"soft_watchdog":         1, // not a number: the default
		"rcu_cpu_stall_timeout": 40, "hung_task_timeout_secs": 30, "hung_task_check_interval_secs": 5,
		"hung_task_warnings": -1, "nmi_watchdog": 1, "rcu_cpu_stall_suppress": 0,
	}
	for k, n := range want {
		if v[k] != n {
			t.Errorf("%s = %d, want %d", k, v[k], n)
		}
	}
	if len(v) != len(want) {
		t.Errorf("values %v", v)
	}
}

// detectorShell answers the exists and cat commands of readDetectorValues
// with the values given (as the files' text); every path not given is
// missing.
func detectorShell(vals map[string]string) *fakeShell {
	sh := &fakeShell{outputs: map[string]fakeOutput{}}
	present := map[string]bool{}
	for _, gv := range allValues() {
		if text, ok := vals[gv.name]; ok {
			present[gv.path] = true
			sh.outputs[protocol.JoinWords("cat", gv.path)] = fakeOutput{out: text}
		}
	}
	sh.outputFor = func(cmd string) (fakeOutput, bool) {
		args, ok := strings.CutPrefix(cmd, protocol.CmdExists+" ")
		if !ok {
			return fakeOutput{}, false
		}
		var out strings.Builder
		for _, p := range strings.Fields(args) {
			fmt.Fprintf(&out, "%d %s\n", map[bool]int{true: 1}[present[p]], p)
		}
		return fakeOutput{out: out.String()}, true
	}
	return sh
}

func selftestValues() map[string]string {
	out := map[string]string{}
	for k, n := range guestDefaults() {
		out[k] = fmt.Sprintf("%d\n", n)
	}
	return out
}

func TestReadDetectorValues(t *testing.T) {
	names := []string{"soft_lockup", "rcu_stall", "hung_task"}
	t.Run("read", func(t *testing.T) {
		sh := detectorShell(selftestValues())
		v, err := readDetectorValues(context.Background(), sh, names)
		if err != nil {
			t.Fatal(err)
		}
		if v["watchdog_thresh"] != 5 || v["hung_task_check_interval_secs"] != 5 || v["rcu_cpu_stall_timeout"] != 21 || len(v) != 7 {
			t.Errorf("values %v", v)
		}
		if sh.count("output cat /proc/sys/kernel/watchdog_thresh") != 1 || sh.index("output cat /proc/sys/kernel/nmi_watchdog") >= 0 {
			t.Errorf("calls %v: each value of the named detectors once, no other", sh.Calls())
		}
	})
	t.Run("missing file", func(t *testing.T) {
		vals := selftestValues()
		delete(vals, "hung_task_check_interval_secs")
		_, err := readDetectorValues(context.Background(), detectorShell(vals), names)
		want := "detectors: hung_task: the guest has no /proc/sys/kernel/hung_task_check_interval_secs (the detector is not built into this kernel)"
		if err == nil || err.Error() != want {
			t.Errorf("error %v, want %q", err, want)
		}
	})
	t.Run("not a number", func(t *testing.T) {
		vals := selftestValues()
		vals["rcu_cpu_stall_timeout"] = "Y\n"
		_, err := readDetectorValues(context.Background(), detectorShell(vals), names)
		if err == nil || !strings.Contains(err.Error(), `rcu_stall: /sys/module/rcupdate/parameters/rcu_cpu_stall_timeout is "Y", not a number`) {
			t.Errorf("error %v", err)
		}
	})
}

// detectorScenario is detector-selftest for the fakes: two background
// stressors that provoke the detectors, a timeout of an hour unless the
// test says otherwise (the early end is the only way out).
func detectorScenario() *Scenario {
	return &Scenario{
		Name: "t", Rounds: 1, Timeout: Duration(time.Hour), Settle: Duration(time.Millisecond),
		Detectors: []string{"soft_lockup", "rcu_stall", "hung_task"},
		Stressors: []Stressor{
			{Name: "soft", Command: "write DIRECT SOFTLOCKUP", Count: 1, Background: true},
			{Name: "hung", Command: "write DIRECT HUNG_TASK", Count: 1, Background: true},
		},
	}
}

// detectorLines are the detectors' reports at 12, 21 and 34 s after the
// marker at 3 s.
var detectorLines = []string{
	"[   15.100000] watchdog: BUG: soft lockup - CPU#1 stuck for 13s! [oomlab-agent:82]",
	"[   24.100000] rcu: INFO: rcu_sched self-detected stall on CPU",
	"[   37.100000] INFO: task oomlab-agent:83 blocked for more than 30 seconds.",
}

func TestDetectorStressEndsWhenAllReported(t *testing.T) {
	sc := detectorScenario()
	sc.watchdogAuto = true
	sh := detectorShell(selftestValues())
	ts := newTestSession(t, sc, sh)
	ts.watchdog, ts.waits.watchTick = 10*time.Second, 10*time.Millisecond
	sh.kmsgTo = func(text string) { ts.fm.print("[    3.100000] " + text) }
	sh.beatEvery = time.Millisecond // the agent lives: the watchdog stays quiet
	sh.onCall = func(c string) {
		switch c {
		case "spawn write DIRECT HUNG_TASK":
			// Two of three: the phase must go on.
			go func() {
				ts.fm.print(detectorLines[:2]...)
				time.Sleep(50 * time.Millisecond) // a chance to end wrongly; the check below cannot fail a correct runner
				if sh.index("census") >= 0 {
					t.Error("the stress phase ended before the hung task was reported")
				}
				ts.fm.print(detectorLines[2])
			}()
		case "poweroff":
			go ts.fm.die(nil)
		}
	}
	r, f, err := ts.run(t, context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// The wait is 66 s: the run ended in time (within) only because every
	// detector reported.
	if f.stress <= 0 || sh.index("census") < 0 {
		t.Errorf("facts %+v, calls %v", f, sh.Calls())
	}
	if i, j := sh.index("output cat /proc/sys/kernel/hung_task_timeout_secs"), sh.index("kmsg oomlab: stress start t-patched-0 round 1"); i < 0 || i > j {
		t.Errorf("the values were not read before the stress phase: %v", sh.Calls())
	}
	tm := r.DetectorTiming
	if tm == nil || tm.Values["hung_task_timeout_secs"] != 30 || tm.BoundS != 40.4 || tm.WaitS != 65.5 {
		t.Fatalf("detector timing %+v", tm)
	}
	if ts.watchdog != secs(40.375)+watchdogMargin {
		t.Errorf("host watchdog %v, want the bound plus its margin", ts.watchdog)
	}
	figures(r, sc, ts.events, f)
	for i, want := range []float64{12, 21, 34} {
		if s := tm.Detectors[i].SeenS; s == nil || *s != want {
			t.Errorf("%s seen at %v, want %v", tm.Detectors[i].Name, s, want)
		}
	}
	if !strings.Contains(ts.logged(), "t-patched-0: detector timing: watchdog_thresh 5, soft_watchdog 1,") ||
		!strings.Contains(ts.logged(), "detectors: soft_lockup at 12.0s, rcu_stall at 21.0s, hung_task at 34.0s; stress phase") {
		t.Errorf("log:\n%s", ts.logged())
	}
}

func TestDetectorStressErrors(t *testing.T) {
	t.Run("missing file", func(t *testing.T) {
		vals := selftestValues()
		delete(vals, "rcu_cpu_stall_suppress")
		sh := detectorShell(vals)
		ts := newTestSession(t, detectorScenario(), sh)
		r, _, err := ts.run(t, context.Background())
		if err == nil || !strings.Contains(err.Error(), "rcu_stall: the guest has no /sys/module/rcupdate/parameters/rcu_cpu_stall_suppress") {
			t.Fatalf("error %v", err)
		}
		if sh.index("spawn write DIRECT SOFTLOCKUP") >= 0 || r.DetectorTiming != nil {
			t.Errorf("the stress phase ran without its timing: %v", sh.Calls())
		}
		// An error, not a failure and not a skip: the detector scenario is
		// there to catch a detector dropped from the kernel config.
		judge(r, ts.sc, "patched", err)
		if r.Verdict != results.Error {
			t.Errorf("verdict %s", r.Verdict)
		}
	})
	t.Run("detector off", func(t *testing.T) {
		vals := selftestValues()
		vals["hung_task_timeout_secs"] = "0\n"
		sh := detectorShell(vals)
		ts := newTestSession(t, detectorScenario(), sh)
		_, _, err := ts.run(t, context.Background())
		if err == nil || err.Error() != "detectors: hung_task: hung_task_timeout_secs is 0 in the guest: khungtaskd checks nothing" {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("bound exceeds the timeout", func(t *testing.T) {
		vals := selftestValues()
		vals["hung_task_timeout_secs"], vals["hung_task_check_interval_secs"] = "120\n", "0\n"
		sc := detectorScenario()
		sc.Timeout = Duration(150 * time.Second)
		sh := detectorShell(vals)
		ts := newTestSession(t, sc, sh)
		ctx, cancel := context.WithTimeout(context.Background(), sc.Timeout.D())
		defer cancel()
		r, _, err := ts.run(t, ctx)
		if err == nil {
			t.Fatal("no error")
		}
		msg := err.Error()
		for _, want := range []string{"hung_task by 271.0s", "hung_task_timeout_secs 120, hung_task_check_interval_secs 0", "in the guest", "timeout 2m30s leaves", "raise timeout to at least 6m"} {
			if !strings.Contains(msg, want) {
				t.Errorf("error %q lacks %q", msg, want)
			}
		}
		if strings.Contains(msg, "\n") || sh.index("spawn write DIRECT HUNG_TASK") >= 0 {
			t.Errorf("error %q, calls %v: one line, nothing started", msg, sh.Calls())
		}
		if r.DetectorTiming == nil || r.DetectorTiming.BoundS != 271 {
			t.Errorf("the timing read is not recorded: %+v", r.DetectorTiming)
		}
	})
}

func TestEventLogSeenAll(t *testing.T) {
	l := newEventLog()
	kinds := []string{"soft_lockup", "hung_task"}
	ks := planKinds(t, kinds)
	l.line([]byte("[    1.000000] oomlab: stress start t round 1"))
	l.line([]byte(detectorLines[0]))
	if l.seenAll(1, ks) {
		t.Error("all seen after the soft lockup alone")
	}
	l.line([]byte(detectorLines[2]))
	if !l.seenAll(1, ks) || l.seenAll(2, ks) {
		t.Error("round 1 has both, round 2 has not begun")
	}
	l.line([]byte("[   50.000000] oomlab: stress start t round 2"))
	if l.seenAll(2, ks) {
		t.Error("round 2 counts round 1's reports")
	}
}

func planKinds(t *testing.T, names []string) []console.Kind {
	t.Helper()
	p, err := planDetectors(names, guestDefaults(), 0, "")
	if err != nil {
		t.Fatal(err)
	}
	return p.kinds
}

func TestParseDetectors(t *testing.T) {
	s, err := Parse("t.yaml", []byte("name: t\nguest:\n  sysctls:\n    kernel.hung_task_check_interval_secs: \"5\"\n    kernel.watchdog_thresh: \"5\"\ndetectors: [soft_lockup, rcu_stall, hung_task]\nstressors:\n  - command: write x\n    background: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	// No duration; the default timeout holds boot, teardown and the wait
	// as the command line (hung task 30 s) and sysctls set the values.
	wait := secs(7*5*1.125) + stressorStart
	wait += wait/4 + 15*time.Second
	if s.Duration != 0 || s.LongestStress() != wait || s.Timeout.D() != 120*time.Second+wait || !s.watchdogAuto {
		t.Errorf("duration %v, longest stress %v (want %v), timeout %v, watchdog auto %v", s.Duration.D(), s.LongestStress(), wait, s.Timeout.D(), s.watchdogAuto)
	}
	if s, err := Parse("t.yaml", []byte("name: t\ndetectors: [hard_lockup]\nwatchdog: 30s\n")); err != nil || s.watchdogAuto {
		t.Errorf("an explicit watchdog is taken for the default (%v)", err)
	}

	for _, c := range []struct{ name, yaml, want string }{
		{"unknown", "name: t\ndetectors: [soft_lockup, softlockup]\n", `t.yaml:2:26: detectors[1]: unknown detector "softlockup" (known: soft_lockup, hard_lockup, rcu_stall, hung_task)`},
		{"twice", "name: t\ndetectors:\n  - hung_task\n  - hung_task\n", `t.yaml:4:5: detectors[1]: "hung_task" is named twice`},
		{"with duration", "name: t\ndetectors: [hung_task]\nduration: 45s\n", "t.yaml:3:11: duration: a scenario with detectors waits as long as the guest's detectors need"},
		{"turned off", "name: t\nguest:\n  sysctls:\n    kernel.hung_task_timeout_secs: \"0\"\ndetectors: [hung_task]\n",
			"t.yaml:5:12: detectors: hung_task: hung_task_timeout_secs is 0 as guest.cmdline and guest.sysctls set it: khungtaskd checks nothing"},
		{"timeout too short", "name: t\ndetectors: [rcu_stall]\ntimeout: 40s\n", "t.yaml:3:10: timeout 40s is too short for the detectors' wait of 50s per round (rcu_stall by 28.0s (rcu_cpu_stall_timeout"},
		{"start after the timeout", "name: t\ndetectors: [rcu_stall]\ntimeout: 200s\nstressors:\n  - command: x\n    start_after: 300s\n", "stressors[0].start_after 5m0s must be within the timeout 3m20s"},
	} {
		_, err := Parse("t.yaml", []byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %v, want one line with %q", c.name, err, c.want)
		}
	}
}
