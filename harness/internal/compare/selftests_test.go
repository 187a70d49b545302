package compare

import (
	"reflect"
	"strings"
	"testing"

	"oomlab/harness/internal/metrics"
	"oomlab/harness/internal/results"
)

func selftestResult(variant string, extra map[string]float64) *results.Result {
	return &results.Result{Scenario: "selftests", Variant: variant, Verdict: results.Pass,
		Figures: metrics.Figures{Extra: extra}}
}

func TestSelftestRegressions(t *testing.T) {
	base := map[string]float64{
		"selftest:memcg": 1, "selftest:memcg.min": 1, "selftest:memcg.low": 0,
		"selftest_skip:memcg.swap": 1,
	}
	cases := []struct {
		name    string
		variant map[string]float64
		want    []string // substrings, one per line, in order
	}{
		{"same", base, nil},
		{"pass to fail fails", map[string]float64{"selftest:memcg": 1, "selftest:memcg.min": 0, "selftest:memcg.low": 0, "selftest_skip:memcg.swap": 1},
			[]string{"selftests: selftest memcg.min passes on baseline, fails in run 1 on patched"}},
		// fail -> fail (low) and skip -> fail (swap) gate nothing: they
		// did not pass on baseline.
		{"fail to fail and skip to fail do not", map[string]float64{"selftest:memcg": 1, "selftest:memcg.min": 1, "selftest:memcg.low": 0, "selftest:memcg.swap": 0}, nil},
		// A skip is not a pass.
		{"pass to skip fails", map[string]float64{"selftest:memcg": 1, "selftest_skip:memcg.min": 1, "selftest:memcg.low": 0},
			[]string{"memcg.min passes on baseline, is skipped in run 1"}},
		// The program crashed before min: it did not end, min never ran.
		{"crash", map[string]float64{"selftest:memcg": 0},
			[]string{"selftest memcg passes on baseline, did not run to its end", "memcg.min passes on baseline, did not run (the program crashed"}},
		// Not built for the variant's tree: the whole program skipped.
		{"not built", map[string]float64{"selftest_skip:memcg": 1},
			[]string{"selftest memcg passes on baseline, is skipped in run 1", "memcg.min passes on baseline, is skipped (the whole program)"}},
	}
	for _, c := range cases {
		rec := &results.Run{Results: []*results.Result{selftestResult("baseline", base), selftestResult("patched", c.variant)}}
		got := SelftestRegressions(rec)
		if len(got) != len(c.want) {
			t.Errorf("%s: %d lines %q, want %d", c.name, len(got), got, len(c.want))
			continue
		}
		for i, w := range c.want {
			if !strings.Contains(got[i], w) {
				t.Errorf("%s: line %d %q lacks %q", c.name, i, got[i], w)
			}
		}
	}
}

// A case that passed in only some baseline runs is not gated (flaky on the
// reference); one failed variant repeat among several is a regression.
func TestSelftestRegressionsRepeats(t *testing.T) {
	rec := &results.Run{Results: []*results.Result{
		selftestResult("baseline", map[string]float64{"selftest:m.a": 1, "selftest:m.b": 1}),
		selftestResult("baseline", map[string]float64{"selftest:m.a": 1, "selftest:m.b": 0}),
		selftestResult("patched", map[string]float64{"selftest:m.a": 1, "selftest:m.b": 0}),
		selftestResult("patched", map[string]float64{"selftest:m.a": 0, "selftest:m.b": 0}),
		// Skipped by requires: not a run, no "did not run" line for it.
		{Scenario: "selftests", Variant: "patched", Verdict: results.Skip},
	}}
	got := SelftestRegressions(rec)
	want := []string{"selftests: selftest m.a passes on baseline, fails in run 2 on patched"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// Between two runs the same exact rule holds per scenario x variant, and
// Between reports it (compare's exit status reads it).
func TestSelftestRegressionsBetween(t *testing.T) {
	a := &results.Run{ID: "A", Complete: true, Results: []*results.Result{
		selftestResult("patched", map[string]float64{"selftest:memcg": 1, "selftest:memcg.min": 1, "selftest:memcg.low": 0}),
	}}
	b := &results.Run{ID: "B", Complete: true, Results: []*results.Result{
		selftestResult("patched", map[string]float64{"selftest:memcg": 1, "selftest:memcg.min": 0, "selftest:memcg.low": 0}),
	}}
	got := SelftestRegressionsBetween(a, b)
	if len(got) != 1 || !strings.Contains(got[0], "selftests/patched: selftest memcg.min passes in A, fails in run 1 in B") {
		t.Errorf("A -> B: %q", got)
	}
	if got := SelftestRegressionsBetween(b, a); len(got) != 0 {
		t.Errorf("B -> A (fail -> pass) is no regression: %q", got)
	}
	rep, err := Between(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.SelftestRegressions) != 1 {
		t.Errorf("Between: %q", rep.SelftestRegressions)
	}
}
