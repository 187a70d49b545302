package metrics

import (
	"reflect"
	"testing"
)

func TestSelftestFigures(t *testing.T) {
	const memcg = "TAP version 13\n1..3\nok 1 test_memcg_min\nnot ok 2 test_memcg_low\nok 3 # SKIP test_memcg_swap_max\n"
	cases := []struct {
		name string
		exit Exit
		want map[string]float64
	}{
		{"cases and completion", Exit{Name: "memcg", ExitCode: 1, Output: memcg}, map[string]float64{
			"selftest:memcg": 1, "selftest:memcg.test_memcg_min": 1, "selftest:memcg.test_memcg_low": 0,
			"selftest_skip:memcg.test_memcg_swap_max": 1,
		}},
		// A crash: the cases it printed count, the program did not end.
		{"crash", Exit{Name: "memcg", Signal: "SEGV", Output: "TAP version 13\n1..3\nok 1 test_memcg_min\n"}, map[string]float64{
			"selftest:memcg": 0, "selftest:memcg.test_memcg_min": 1,
		}},
		// Stopped by the runner at the end of the stress phase: not a completion.
		{"stopped", Exit{Name: "memcg", Running: true, Output: memcg}, map[string]float64{
			"selftest:memcg": 0, "selftest:memcg.test_memcg_min": 1, "selftest:memcg.test_memcg_low": 0,
			"selftest_skip:memcg.test_memcg_swap_max": 1,
		}},
		{"bail out", Exit{Name: "mrelease", ExitCode: 1, Output: "TAP version 13\n1..1\nBail out! process_mrelease: EINVAL\n"}, map[string]float64{
			"selftest:mrelease": 0,
		}},
		// The whole program skipped: no pass anywhere.
		{"skip all", Exit{Name: "kmem", ExitCode: 4, Output: "TAP version 13\n1..0 # SKIP not built from the patched tree: gcc failed\n"}, map[string]float64{
			"selftest_skip:kmem": 1,
		}},
		// Hung before its first result and stopped: only the version
		// line oomlab's builds print first; a failed program all the same.
		{"silent hang", Exit{Name: "kill", Signal: "KILL", Output: "TAP version 13\n"}, map[string]float64{
			"selftest:kill": 0,
		}},
		{"not test output", Exit{Name: "memhog", Output: "allocated 60 MB\n"}, map[string]float64{}},
		// An exit status outside kselftest's codes (127: not found after a
		// header?) is not a completion.
		{"odd exit", Exit{Name: "memcg", ExitCode: 127, Output: "1..1\nok 1 a\n"}, map[string]float64{
			"selftest:memcg": 0, "selftest:memcg.a": 1,
		}},
	}
	for _, c := range cases {
		m := map[string]float64{}
		selftestFigures(m, []Exit{c.exit})
		if !reflect.DeepEqual(m, c.want) {
			t.Errorf("%s: %v, want %v", c.name, m, c.want)
		}
	}
	// Two instances: a case passes only if it passed in both.
	m := map[string]float64{}
	selftestFigures(m, []Exit{{Name: "x", Output: "1..1\nok 1 a\n"}, {Name: "x", ExitCode: 1, Output: "1..1\nnot ok 1 a\n"}, {Name: "x", Output: "1..1\nok 1 a\n"}})
	if m["selftest:x.a"] != 0 || m["selftest:x"] != 1 {
		t.Errorf("instances: %v", m)
	}
	// Through Compute and Value, as expectations read them.
	f := Compute(Facts{Stressors: []string{"memcg"}, Exits: []Exit{{Name: "memcg", ExitCode: 1, Output: memcg}}})
	if v, ok := f.Value("selftest:memcg.test_memcg_low"); !ok || v != 0 {
		t.Errorf("Value(selftest:memcg.test_memcg_low) = %v, %v", v, ok)
	}
	if _, ok := f.Value("selftest:memcg.test_memcg_swap_max"); ok {
		t.Error("a skipped case has a selftest: figure")
	}
}
