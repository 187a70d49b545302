package metrics

import (
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"gonum.org/v1/gonum/stat/distuv"

	"oomlab/harness/internal/console"
)

func near(got, want, tol float64) bool { return math.Abs(got-want) <= tol }

// Worked by hand: x = {1.1, 3.3}, y = {2.2, 4.4, 5.5}.
// U of x = pairs with x > y: 1.1 beats none, 3.3 beats 2.2: U = 1.
// The C(5,2) = 10 placements of two x's among five values, with U = the
// number of y's before each x: positions (0,1):0 (0,2):1 (0,3):2 (0,4):3
// (1,2):2 (1,3):3 (1,4):4 (2,3):4 (2,4):5 (3,4):6, so the counts of
// U = 0..6 are 1 1 2 2 2 1 1. U = 1 is below the mean 3:
// P(U <= 1) = 2/10, two-sided p = 2 * 0.2 = 0.4
// (R: wilcox.test(c(1.1, 3.3), c(2.2, 4.4, 5.5)) gives W = 1, p-value = 0.4).
func TestMannWhitneyByHand(t *testing.T) {
	if got := uCounts(2, 3); !reflect.DeepEqual(got, []float64{1, 1, 2, 2, 2, 1, 1}) {
		t.Errorf("uCounts(2, 3) = %v", got)
	}
	r := MannWhitney([]float64{1.1, 3.3}, []float64{2.2, 4.4, 5.5}, 1)
	if r.U != 1 || !near(r.P, 0.4, 1e-12) || r.Test != TestMWExact {
		t.Errorf("got %+v, want U 1, p 0.4, exact", r)
	}
	// Symmetric: the other way round U = 6 - 1 = 5, same p.
	r = MannWhitney([]float64{2.2, 4.4, 5.5}, []float64{1.1, 3.3}, 1)
	if r.U != 5 || !near(r.P, 0.4, 1e-12) {
		t.Errorf("reversed: got %+v, want U 5, p 0.4", r)
	}
}

// Complete separation of 5 and 5: only 2 of the C(10,5) = 252 orderings are
// as extreme, p = 2/252 = 0.007937 (R: wilcox.test(1:5, 6:10): W = 0,
// p-value = 0.007937).
func TestMannWhitneyExactReference(t *testing.T) {
	r := MannWhitney([]float64{1, 2, 3, 4, 5}, []float64{6, 7, 8, 9, 10}, 1)
	if r.U != 0 || !near(r.P, 2.0/252, 1e-12) {
		t.Errorf("got %+v, want U 0, p %.6f", r, 2.0/252)
	}
}

// With ties R's wilcox.test uses the normal approximation with tie and
// continuity correction. x = 1 2 2 3 4 5 6 7 8 9, y = 5 6 7 8 9 10 11 12 12 13:
// pooled ranks of x: 1, 2.5, 2.5, 4, 5, 6.5, 8.5, 10.5, 12.5, 14.5 = 67.5,
// U = 67.5 - 10*11/2 = 12.5. Ties: seven pairs (2 5 6 7 8 9 12), sum t^3-t = 42.
// sigma = sqrt(10*10/12 * (21 - 42/(20*19))) = sqrt(8.3333 * 20.88947) = 13.19390,
// z = (12.5 - 50 + 0.5)/13.19390 = -2.804327, p = 2*Phi(-2.804327) = 0.005042
// (R: W = 12.5, p-value = 0.005042).
func TestMannWhitneyNormalReference(t *testing.T) {
	x := []float64{1, 2, 2, 3, 4, 5, 6, 7, 8, 9}
	y := []float64{5, 6, 7, 8, 9, 10, 11, 12, 12, 13}
	r := MannWhitney(x, y, 1)
	if r.U != 12.5 || !near(r.P, 0.005042179, 1e-8) || r.Test != TestMWNormal {
		t.Errorf("got %+v, want U 12.5, p 0.005042, normal", r)
	}
}

// Small samples with ties: the permutation p is close to the exact
// permutation p of the same data. x = {1, 1, 2}, y = {3, 3, 4, 4}: mid-ranks
// 1.5 1.5 3 | 4.5 4.5 6.5 6.5, U of x = 6 - 6 = 0, mean 3*4/2 = 6. Of the
// C(7,3) = 35 ways to label three ranks x, as extreme (|U - 6| >= 6) is
// only rank sum 6 ({1.5, 1.5, 3}: 1 way); the other end, {6.5, 6.5, 4.5},
// sums to 17.5 (U = 11.5): the ties make it less extreme. Exact
// permutation p = 1/35 = 0.0286.
func TestMannWhitneyPermutation(t *testing.T) {
	r := MannWhitney([]float64{1, 1, 2}, []float64{3, 3, 4, 4}, Seed("perm"))
	if r.Test != TestMWPermutation || r.U != 0 || !near(r.P, 1.0/35, 0.005) {
		t.Errorf("got %+v, want U 0, p ~ %.4f by permutation", r, 1.0/35)
	}
	if again := MannWhitney([]float64{1, 1, 2}, []float64{3, 3, 4, 4}, Seed("perm")); again != r {
		t.Errorf("not reproducible: %+v then %+v", r, again)
	}
}

// The lady tasting tea: [[3,1],[1,3]] p = 0.4857 (R: fisher.test). The
// tables as or less likely than it are x = 0, 1, 3, 4 of the hypergeometric
// (1 + 16 + 16 + 1)/70 = 34/70 = 0.485714.
// Wikipedia's dieting example [[1,9],[11,3]]: p = 0.002759.
func TestFisherExact(t *testing.T) {
	for _, c := range []struct {
		a, b, c, d int
		p          float64
	}{
		{3, 1, 1, 3, 34.0 / 70},
		{1, 9, 11, 3, 0.002759456},
		{0, 5, 0, 5, 1},
		{5, 0, 0, 5, 2.0 / 252},
	} {
		if got := FisherExact(c.a, c.b, c.c, c.d); !near(got, c.p, 1e-6) {
			t.Errorf("Fisher [[%d %d] [%d %d]] = %.6f, want %.6f", c.a, c.b, c.c, c.d, got, c.p)
		}
	}
}

func TestQuantileSmallSets(t *testing.T) {
	for _, c := range []struct {
		xs      []float64
		q, want float64
	}{
		{[]float64{3, 1, 2}, 0.5, 2},
		{[]float64{10, 20, 30, 40}, 0.5, 20}, // nearest rank: the 2nd of 4
		{[]float64{10, 20, 30, 40}, 0.95, 40},
		{[]float64{5, 1, 4, 2, 3}, 0.95, 5},
		{[]float64{5, 1, 4, 2, 3}, 0.2, 1},
		{[]float64{5, 1, 4, 2, 3}, 0.21, 2},
		{[]float64{7}, 0.99, 7},
	} {
		if got := Quantile(c.xs, c.q); got != c.want {
			t.Errorf("Quantile(%v, %g) = %g, want %g", c.xs, c.q, got, c.want)
		}
		s := append([]float64(nil), c.xs...)
		Quantile(s, 0) // unsorted input untouched
		if !reflect.DeepEqual(s, c.xs) {
			t.Errorf("Quantile sorted its input")
		}
	}
}

func TestDescribeTooFew(t *testing.T) {
	st := Describe("oom_to_freed_ms", Dist{Unit: Millis, Values: []float64{1, 2, 3, 4}})
	if st.N != 4 || st.P50 == nil || st.P50.Value != 2 || st.P50.CI != nil || st.P95 != nil || st.P99 != nil {
		t.Errorf("N=4: %+v", st)
	}
	if notes := strings.Join(st.Notes, "; "); !strings.Contains(notes, "p95: too few samples (N=4, needs 5)") ||
		!strings.Contains(notes, "p99: too few samples (N=4, needs 20)") {
		t.Errorf("notes %q", notes)
	}
	st = Describe("oom_to_freed_ms", Dist{Values: []float64{5, 1, 4, 2, 3}})
	if st.P95 == nil || st.P95.Value != 5 || st.P95.CI == nil || st.P50.CI == nil || st.P99 != nil {
		t.Errorf("N=5: %+v", st)
	}
	if lo, hi := st.P50.CI[0], st.P50.CI[1]; lo > 3 || hi < 3 || lo < 1 || hi > 5 {
		t.Errorf("p50 CI [%g, %g] does not hold 3 within the data", lo, hi)
	}
	if again := Describe("oom_to_freed_ms", Dist{Values: []float64{5, 1, 4, 2, 3}}); !reflect.DeepEqual(again, st) {
		t.Errorf("a re-render differs: %+v vs %+v", again, st)
	}
	xs := make([]float64, 20)
	for i := range xs {
		xs[i] = float64(i + 1)
	}
	if st := Describe("x", Dist{Values: xs}); st.P99 == nil || st.P99.Value != 20 || len(st.Notes) != 0 {
		t.Errorf("N=20: %+v", st)
	}
	if st := Describe("x", Dist{}); st.P50 != nil || len(st.Notes) != 3 {
		t.Errorf("N=0: %+v", st)
	}
}

// The 95% bootstrap CI of the median of 51 draws from Exp(1) holds the
// true median ln 2 in at least 90% of 200 seeded trials.
func TestBootstrapCoverage(t *testing.T) {
	truth := math.Ln2
	covered := 0
	const trials = 200
	for i := range trials {
		d := distuv.Exponential{Rate: 1, Src: rand.NewPCG(uint64(i), 42)}
		xs := make([]float64, 51)
		for j := range xs {
			xs[j] = d.Rand()
		}
		lo, hi := BootstrapCI(xs, func(s []float64) float64 { return sortedQuantile(s, 0.5) }, uint64(1000+i))
		if lo <= truth && truth <= hi {
			covered++
		}
	}
	if covered < trials*90/100 {
		t.Errorf("coverage %d/%d, want >= 90%%", covered, trials)
	}
	t.Logf("coverage %d/%d", covered, trials)
}

func TestCompareVerdicts(t *testing.T) {
	slow := []float64{2100, 2150, 2120, 2200, 2180, 2130, 2160}
	fast := []float64{80, 95, 91, 88, 120, 85}
	group := func(lat []float64, lockups ...int) Samples {
		var figs []Figures
		for i, l := range lockups {
			f := Figures{Lockups: l, GuestAlive: true, OOMEvents: 1, OOMKills: 1, KillsPerOOMEvent: 1}
			if i == 0 {
				f.OOMToFreedMs = lat
			}
			figs = append(figs, f)
		}
		return Collect(figs)
	}
	base := group(slow, 0, 0, 0, 0, 0, 0, 0, 0)
	good := group(fast, 0, 0, 0, 0, 0, 0, 0, 0)
	bad := group(slow, 1, 1, 1, 1, 1, 1, 0, 1)
	find := func(cs []Comparison, fig string) Comparison {
		for _, c := range cs {
			if c.Figure == fig {
				return c
			}
		}
		t.Fatalf("no comparison of %s in %+v", fig, cs)
		return Comparison{}
	}
	cs := Compare(base, good)
	c := find(cs, "oom_to_freed_ms")
	if c.Verdict != Better || c.Test != TestMWExact || c.Ratio == nil || c.Ratio.CI == nil || c.Ratio.CI[1] > 0.1 || *c.P >= Alpha {
		t.Errorf("fast vs slow: %+v", c)
	}
	if c := find(cs, "kill_to_exit_ms"); c.Verdict != TooFewVerd {
		t.Errorf("no samples: %+v", c)
	}
	if c := find(cs, "lockups > 0"); c.Verdict != NoDifference || *c.P != 1 || c.Test != TestFisher {
		t.Errorf("lockups equal: %+v", c)
	}
	if c := find(Compare(good, base), "oom_to_freed_ms"); c.Verdict != Worse {
		t.Errorf("slow vs fast: %+v", c)
	}
	// 7/8 runs with a lockup against 0/8: p = 0.0014 (Fisher), worse.
	c = find(Compare(base, bad), "lockups > 0")
	if c.Verdict != Worse || !near(*c.P, FisherExact(7, 1, 0, 8), 1e-12) || *c.VarSide.Events != 7 || c.VarSide.N != 8 {
		t.Errorf("lockups: %+v", c)
	}
	for _, name := range []string{"guest_alive == false", "kills_per_oom_event > 1", "hung_tasks > 0"} {
		if c := find(cs, name); c.Verdict != NoDifference {
			t.Errorf("%s: %+v", name, c)
		}
	}
	// Three runs each: too few for a verdict, however different.
	few := group(fast, 1, 1, 1)
	if c := find(Compare(group(slow, 0, 0, 0), few), "lockups > 0"); c.Verdict != TooFewVerd || c.P == nil {
		t.Errorf("3 vs 3: %+v", c)
	}
}

func TestCollectHungFamily(t *testing.T) {
	s := Collect([]Figures{
		{Extra: map[string]float64{"probe:hung_waiters": 2, "probe:other": 5}},
		{Extra: map[string]float64{"probe:hung_waiters": 0}},
	})
	if r, ok := s.Rates["probe:hung_waiters > 0"]; !ok || r.Events != 1 || r.Trials != 2 {
		t.Errorf("hung family rate: %+v", s.Rates)
	}
	if _, ok := s.Rates["probe:other > 0"]; ok {
		t.Errorf("a probe without a direction is compared: %+v", s.Rates)
	}
}

// A scenario's worse_if outcome is a rate of bad runs under its own name,
// and more of them on a variant is a difference Fisher's test can find.
func TestWorseIfRate(t *testing.T) {
	run := func(kills int) Figures {
		var ev []console.Event
		for i := 0; i < kills; i++ {
			ev = append(ev, console.Event{Kind: console.OOMKill, Line: i + 1})
		}
		return Compute(Facts{Events: ev, WorseIf: map[string]string{"oom_kills": "> 1"}})
	}
	if v := run(2).Extra["worse_if:oom_kills > 1"]; v != 1 {
		t.Fatalf("2 kills: worse_if = %v, want 1", v)
	}
	var base, patched []Figures
	for i := 0; i < 10; i++ {
		base = append(base, run(1))
		patched = append(patched, run(2))
	}
	b, p := Collect(base), Collect(patched)
	if r := p.Rates["oom_kills > 1"]; r.Events != 10 || r.Trials != 10 {
		t.Fatalf("patched rate %+v", r)
	}
	found := false
	for _, c := range Compare(b, p) {
		if c.Figure == "oom_kills > 1" {
			found = true
			if c.Verdict != Worse {
				t.Errorf("0/10 -> 10/10: verdict %v, want worse", c.Verdict)
			}
		}
	}
	if !found {
		t.Error("no comparison of oom_kills > 1")
	}
}
