package suite

import (
	"strings"
	"testing"

	"oomlab/harness/internal/metrics"
	"oomlab/harness/internal/results"
)

// The run verdict applies the selftest rule: every guest run passed its
// expectations, yet a case passing on baseline and failing on patched
// fails the run with a REGRESSION reason; fail -> fail does not.
func TestVerdictSelftestRegression(t *testing.T) {
	run := func(patched float64) *results.Run {
		return &results.Run{Results: []*results.Result{
			{Scenario: "selftests", Variant: "baseline", Verdict: results.Pass, Figures: metrics.Figures{GuestAlive: true,
				Extra: map[string]float64{"selftest:test_memcontrol.test_memcg_min": 1, "selftest:test_memcontrol.test_memcg_low": 0}}},
			{Scenario: "selftests", Variant: "patched", Verdict: results.Pass, Figures: metrics.Figures{GuestAlive: true,
				Extra: map[string]float64{"selftest:test_memcontrol.test_memcg_min": patched, "selftest:test_memcontrol.test_memcg_low": 0}}},
		}}
	}
	if v, why := Verdict(run(1)); v != results.Pass || len(why) != 0 {
		t.Errorf("pass -> pass, fail -> fail: %v %q", v, why)
	}
	v, why := Verdict(run(0))
	if v != results.Fail || len(why) != 1 || !strings.Contains(why[0], "test_memcontrol.test_memcg_min passes on baseline, fails in run 1 on patched") {
		t.Errorf("pass -> fail: %v %q", v, why)
	}
}
