package scenario

import (
	"context"
	"strings"
	"testing"
	"time"

	"oomlab/harness/internal/guest"
	"oomlab/harness/internal/metrics"
	"oomlab/harness/internal/results"
)

func TestExitProblem(t *testing.T) {
	st := &Stressor{Name: "rt"}
	mayFail := &Stressor{Name: "check", MayFail: true}
	open := "rthog: open /sys/kernel/debug/sched/fair_server/cpu1/runtime: No such file or directory\n"
	for _, tc := range []struct {
		name string
		st   *Stressor
		e    results.StressorExit
		want string // "" or a substring of the problem
	}{
		{"exit 0", st, results.StressorExit{Name: "rt"}, ""},
		{"OOM kill", st, results.StressorExit{Name: "rt", ExitCode: 137, Signal: "KILL"}, ""},
		{"stopped by the runner", st, results.StressorExit{Name: "rt", ExitCode: 137, Signal: "KILL", Running: true}, ""},
		{"stopped, no status", st, results.StressorExit{Name: "rt", Running: true}, ""},
		{"exit 1", st, results.StressorExit{Name: "rt", ExitCode: 1, Output: "started\n" + open + "\n"},
			"stressor rt#0 exited with status 1 (rthog: open /sys/kernel/debug/sched/fair_server/cpu1/runtime: No such file or directory): the run did not go as designed"},
		{"round", st, results.StressorExit{Name: "rt", Instance: 1, Round: 3, ExitCode: 2}, "stressor rt#1 in round 3 exited with status 2: "},
		{"segv", st, results.StressorExit{Name: "rt", ExitCode: 139, Signal: "SEGV"}, "stressor rt#0 was killed by SIGSEGV"},
		{"may_fail exit", mayFail, results.StressorExit{Name: "check", ExitCode: 1}, ""},
		{"may_fail signal", mayFail, results.StressorExit{Name: "check", Signal: "ABRT"}, ""},
		{"unknown stressor", nil, results.StressorExit{Name: "x", ExitCode: 1}, "stressor x#0 exited with status 1"},
	} {
		got := exitProblem(tc.st, tc.e)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// The run: every expectation held, but rthog exited 1, so nothing
// starved the victim: an error, never a pass (and each round says so).
func TestJudgeStressorFailedIsError(t *testing.T) {
	sc := &Scenario{Rounds: 2, Stressors: []Stressor{{Name: "victim"}, {Name: "rt", Background: true}, {Name: "waiter", MayFail: true}},
		Expect: map[string]string{"guest_alive": "true"}}
	bad := results.StressorExit{Name: "rt", ExitCode: 1, Round: 2, Output: "rthog: open /sys/kernel/debug/sched/fair_server/cpu1/runtime: No such file or directory"}
	r := &results.Result{
		Figures: mustFigures(t, true),
		Stressors: []results.StressorExit{
			{Name: "victim", ExitCode: 137, Signal: "KILL", Round: 1}, {Name: "rt", Running: true, Signal: "KILL", Round: 1}, {Name: "waiter", ExitCode: 1, Round: 1},
			{Name: "victim", ExitCode: 137, Signal: "KILL", Round: 2}, bad,
		},
		Rounds: []results.RoundResult{
			{Round: 1, Figures: mustFigures(t, true), Stressors: []results.StressorExit{{Name: "rt", Running: true}, {Name: "waiter", ExitCode: 1}}},
			{Round: 2, Figures: mustFigures(t, true), Stressors: []results.StressorExit{bad}},
		},
	}
	judge(r, sc, "baseline", nil)
	if r.Verdict != results.Error || !strings.Contains(r.Error, "stressor rt#0 in round 2 exited with status 1 (rthog: open /sys/kernel/debug/sched/fair_server/cpu1/runtime") {
		t.Errorf("run: %s %q", r.Verdict, r.Error)
	}
	if r.Rounds[0].Verdict != results.Pass || r.Rounds[1].Verdict != results.Error || !strings.Contains(r.Rounds[1].Error, "stressor rt#0") {
		t.Errorf("rounds: %+v", r.Rounds)
	}

	// A failed expectation stays listed under the error.
	sc.Expect["oom_kills"] = ">= 1"
	r.Verdict, r.Error, r.Failures = 0, "", nil
	judge(r, sc, "baseline", nil)
	if r.Verdict != results.Error || len(r.Failures) == 0 {
		t.Errorf("with a failure: %s %v", r.Verdict, r.Failures)
	}
}

func mustFigures(t *testing.T, alive bool) (f metrics.Figures) {
	t.Helper()
	r := &results.Result{}
	figures(r, &Scenario{}, newEventLog(), &facts{alive: alive})
	return r.Figures
}

// Through the runner's phases with fakes: a background hog that exits 1
// right after its start makes the guest run an error; one that the
// runner stops at the end does not.
func TestRunnerStressorExitIsError(t *testing.T) {
	for _, tc := range []struct {
		name    string
		end     *guest.Result
		mayFail bool
		want    results.Verdict
	}{
		{"exits 1", exited(1), false, results.Error},
		{"exits 1, may_fail", exited(1), true, results.Pass},
		{"stopped at the end", nil, false, results.Pass},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := &Scenario{Name: "t", Duration: Duration(200 * time.Millisecond),
				Stressors: []Stressor{{Name: "rt", Command: "rthog", Count: 1, Background: true, MayFail: tc.mayFail}},
				Expect:    map[string]string{"guest_alive": "true"}}
			sh := &fakeShell{}
			ts := newTestSession(t, sc, sh)
			if tc.end != nil {
				sh.onCall = func(c string) {
					if c == "spawn rthog" {
						go sh.jobsOf("rthog")[0].end(tc.end)
					}
				}
			}
			go func() {
				waitFor(t, "the teardown", func() bool { return sh.index("poweroff") >= 0 })
				ts.fm.die(nil)
			}()
			r, f, err := ts.run(t, context.Background())
			figures(r, sc, ts.events, f)
			judge(r, sc, "patched", err)
			if r.Verdict != tc.want {
				t.Errorf("verdict %s (error %q), want %s", r.Verdict, r.Error, tc.want)
			}
			if tc.want == results.Error && !strings.Contains(r.Error, "stressor rt#0 exited with status 1 (rthog started)") {
				t.Errorf("error %q", r.Error)
			}
		})
	}
}
