package report

import (
	"bytes"
	"strings"
	"testing"

	"oomlab/harness/internal/ktap"
	"oomlab/harness/internal/results"
)

// The selftest cases of a guest run are nested under its repeat line, and
// the whole report still reads as KTAP with them at the third level.
func TestKTAPSelftestCases(t *testing.T) {
	rec := &results.Run{ID: "r", Version: "v", Results: []*results.Result{{
		Scenario: "kselftest-memcontrol", Variant: "baseline", Repeat: 1, Verdict: results.Pass,
		Stressors: []results.StressorExit{
			{Name: "test-memcontrol", ExitCode: 1, Output: "ok 1 test_memcg_subtree_control\nnot ok 2 test_memcg_min\nok 3 # SKIP test_memcg_sock\n"},
			{Name: "mrelease-test", Output: "TAP version 13\n1..0 # SKIP not built from the baseline tree: gcc failed\n"},
			{Name: "hog", Output: "allocated 1 MB\n"},
		},
	}}}
	var b bytes.Buffer
	KTAP(&b, rec)
	out := b.String()
	if !strings.Contains(out, "        not ok 2 test-memcontrol.test_memcg_min\n") ||
		!strings.Contains(out, "        ok 3 test-memcontrol.test_memcg_sock # SKIP\n") ||
		!strings.Contains(out, "        ok 4 mrelease-test # SKIP not built from the baseline tree: gcc failed\n") {
		t.Errorf("cases missing:\n%s", out)
	}
	got := map[string]ktap.Status{}
	for _, f := range ktap.Parse(out).Flatten() {
		got[f.Key] = f.Status
	}
	want := map[string]ktap.Status{
		"kselftest-memcontrol.baseline.repeat-1.test-memcontrol.test_memcg_subtree_control": ktap.Pass,
		"kselftest-memcontrol.baseline.repeat-1.test-memcontrol.test_memcg_min":             ktap.Fail,
		"kselftest-memcontrol.baseline.repeat-1.test-memcontrol.test_memcg_sock":            ktap.Skip,
		"kselftest-memcontrol.baseline.repeat-1":                                            ktap.Pass,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q (all %v)", k, got[k], v, got)
		}
	}
}
