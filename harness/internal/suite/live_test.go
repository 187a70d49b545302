package suite

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"oomlab/harness/internal/kbuild"
	"oomlab/harness/internal/results"
	"oomlab/harness/internal/scenario"
)

type fakeView struct {
	mu     sync.Mutex
	st     []Status
	closed bool
}

func (v *fakeView) Update(s Status) {
	v.mu.Lock()
	v.st = append(v.st, s)
	v.mu.Unlock()
}
func (v *fakeView) Log(string, ...any) {}
func (v *fakeView) Close()             { v.closed = true }

func sc(name string, rounds int, d time.Duration) *scenario.Scenario {
	return &scenario.Scenario{Name: name, Rounds: rounds, Duration: scenario.Duration(d), Settle: scenario.Duration(time.Second),
		RoundSettle: scenario.Duration(time.Second), Timeout: scenario.Duration(time.Hour), Variants: []string{"baseline", "patched"}}
}

func TestRunReportsEveryGuest(t *testing.T) {
	rec := &results.Run{}
	dir, err := Create(t.TempDir(), rec)
	if err != nil {
		t.Fatal(err)
	}
	// No kernels: every guest run ends at once as an error, which is
	// enough to see what the view hears.
	p := NewPlan([]*scenario.Scenario{sc("a", 1, time.Minute), sc("b", 3, time.Minute)}, kbuild.Request{Want: []string{"baseline", "patched"}}, 1)
	v := &fakeView{}
	if err := Run(context.Background(), scenario.Env{Dir: dir, Kernels: map[string]string{}}, rec, p, v); err != nil {
		t.Fatal(err)
	}
	if !v.closed {
		t.Error("view not closed")
	}
	var got []string
	for i, s := range v.st {
		got = append(got, fmt.Sprintf("%d/%d %s %s", s.Guest, s.Guests, s.Key(), s.Verdict))
		if s.Phase != scenario.PhaseDone || s.SuiteETA < s.ETA {
			t.Errorf("status %d: %+v", i, s)
		}
	}
	want := "1/4 a/baseline#1 error,2/4 a/patched#1 error,3/4 b/baseline#1 error,4/4 b/patched#1 error"
	if strings.Join(got, ",") != want {
		t.Errorf("statuses %v, want %s", got, want)
	}
}

func TestEstimator(t *testing.T) {
	a, b := sc("a", 2, 30*time.Second), sc("b", 1, 30*time.Second)
	sw := sc("sw[x=2]", 1, 30*time.Second)
	sw.Sweep = "sw"
	e := &estimator{}
	// Nominal: boot, the rounds at their longest, the settles.
	if g := e.guess(a); g != bootGuess+60*time.Second+2*time.Second {
		t.Errorf("nominal a: %s", g)
	}
	// The same scenario's finished runs win; others scale by nominal.
	e.add(a, 36*time.Second) // nominal 72 s: half
	if g := e.guess(a); g != 36*time.Second {
		t.Errorf("a after one run: %s", g)
	}
	if g := e.guess(b); g != (bootGuess+31*time.Second)/2 {
		t.Errorf("b scaled by a: %s", g)
	}
	other := sc("sw[x=1]", 1, 30*time.Second)
	other.Sweep = "sw"
	e.add(other, 41*time.Second) // nominal 41 s: as long as nominal
	if g := e.guess(sw); g != 41*time.Second {
		t.Errorf("a case from its sweep's: %s", g)
	}
	// ETA: the guess less the elapsed time; past it, the rounds left at
	// the pace of those done.
	if eta := e.eta(a, scenario.Progress{Elapsed: 10 * time.Second, Round: 1, Rounds: 2}); eta != 26*time.Second {
		t.Errorf("eta %s", eta)
	}
	if eta := e.eta(a, scenario.Progress{Phase: scenario.PhaseRound, Elapsed: 40 * time.Second, Round: 2, Rounds: 2}); eta != 40*time.Second {
		t.Errorf("eta past the guess %s", eta)
	}
	if eta := e.eta(a, scenario.Progress{Phase: scenario.PhaseRound, Elapsed: 40 * time.Second, Round: 1, Rounds: 2}); eta != 0 {
		t.Errorf("eta past the guess in round 1 %s", eta)
	}
	if eta := e.eta(a, scenario.Progress{Phase: scenario.PhaseTeardown, Elapsed: 10 * time.Second, Round: 2, Rounds: 2}); eta != 0 {
		t.Errorf("eta in the teardown %s", eta)
	}
}

func TestLogView(t *testing.T) {
	var lines []string
	v := NewLogView(func(f string, a ...any) { lines = append(lines, fmt.Sprintf(f, a...)) })
	p := scenario.Progress{Scenario: "s", Variant: "baseline", Repeat: 1, Rounds: 3, Phase: scenario.PhaseBoot}
	st := func(p scenario.Progress) Status {
		return Status{Progress: p, Guest: 2, Guests: 5, ETA: 40 * time.Second, SuiteETA: 3 * time.Minute}
	}
	v.Update(st(p))
	p.Phase, p.Round = scenario.PhaseRound, 1
	v.Update(st(p))
	p.OOMKills = 1
	v.Update(st(p)) // a kill: no line of its own
	p.Round, p.Elapsed = 2, 12*time.Second
	v.Update(st(p))
	p.Lockups = 1
	v.Update(st(p))
	p.Phase, p.Verdict = scenario.PhaseDone, "fail"
	v.Update(st(p))
	want := []string{
		"[2/5] s/baseline#1: expect 40s (suite: 3m0s left)",
		"s/baseline#1: round 1/3 at 0s, ETA 40s, 0 OOM kills, 0 lockups so far",
		"s/baseline#1: round 2/3 at 12s, ETA 40s, 1 OOM kills, 0 lockups so far",
		"s/baseline#1: lockup seen on the console (1 so far)",
		"s/baseline#1: FAIL",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("lines\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

func TestBarView(t *testing.T) {
	var buf bytes.Buffer
	v := NewBarView(&buf)
	p := scenario.Progress{Scenario: "s", Variant: "baseline", Repeat: 1, Rounds: 2, Phase: scenario.PhaseRound, Round: 1, Started: time.Now(), OOMKills: 2}
	v.Update(Status{Progress: p, Guest: 1, Guests: 1})
	time.Sleep(300 * time.Millisecond) // one refresh
	v.Log("a log line")
	p.Phase, p.Verdict = scenario.PhaseDone, "pass"
	v.Update(Status{Progress: p, Guest: 1, Guests: 1})
	v.Close()
	out := buf.String()
	for _, want := range []string{"s/baseline#1", "round 1/2", "kills 2", "a log line", "PASS  s/baseline#1 in 0:00: 2 OOM kills, 0 lockups"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in %q", want, out)
		}
	}
}

// With guests side by side, a line each, and the suite line says how many
// run.
func TestBarViewParallel(t *testing.T) {
	var buf bytes.Buffer
	v := NewBarView(&buf)
	for _, variant := range []string{"baseline", "patched"} {
		p := scenario.Progress{Scenario: "s", Variant: variant, Repeat: 1, Rounds: 1, Phase: scenario.PhaseBoot, Started: time.Now()}
		v.Update(Status{Progress: p, Guest: 1, Guests: 4, Running: 2})
	}
	time.Sleep(300 * time.Millisecond) // one refresh
	v.Close()
	out := buf.String()
	for _, want := range []string{"s/baseline#1", "s/patched#1", "(2 running)"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in %q", want, out)
		}
	}
}
