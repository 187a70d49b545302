package selftests

import (
	"context"
	"reflect"
	"testing"

	"oomlab/harness/internal/metrics"
	"oomlab/harness/internal/protocol"
	"oomlab/harness/internal/results"
	"oomlab/harness/internal/scenario"
)

func TestWrap(t *testing.T) {
	sets := map[string]*Set{
		"baseline": {Dir: "/c/base", Built: map[string]string{"test_memcontrol": "test_memcontrol", "mrelease_test": "mrelease_test"}},
		"patched":  {Dir: "/c/patched", Built: map[string]string{"test_memcontrol": "test_memcontrol"}, Skipped: map[string]string{"mrelease_test": "gcc failed: error: x"}},
	}
	sc := &scenario.Scenario{Name: "selftests", Stressors: []scenario.Stressor{
		{Name: "test_memcontrol", Command: "test_memcontrol", Count: 1},
		{Name: "mrelease_test", Command: "mrelease_test", Count: 1},
		{Name: "hog", Command: "memhog --mb 1", Count: 1},
	}}
	type call struct {
		stressors []string
		commands  []string
	}
	var got []call
	next := func(_ context.Context, env scenario.Env, sc *scenario.Scenario, variant string, _ int) *results.Result {
		var cmds []string
		for _, st := range sc.Stressors {
			cmds = append(cmds, st.Command)
		}
		got = append(got, call{env.Stressors, cmds})
		return &results.Result{}
	}
	run := Wrap(sets, next)
	env := scenario.Env{Stressors: []string{"/bin/stressors/memhog"}}
	run(context.Background(), env, sc, "baseline", 1)
	run(context.Background(), env, sc, "patched", 1)
	run(context.Background(), env, sc, "patched:1", 1) // no set at all
	run(context.Background(), env, &scenario.Scenario{Name: "smoke", Stressors: []scenario.Stressor{{Name: "hog", Command: "memhog"}}}, "baseline", 1)

	skip := func(v, why string) string {
		return protocol.JoinWords("echo", "1..0 # SKIP not built from the "+v+" tree: "+why)
	}
	want := []call{
		{[]string{"/bin/stressors/memhog", "/c/base/test_memcontrol", "/c/base/mrelease_test"},
			[]string{"test_memcontrol", "mrelease_test", "memhog --mb 1"}},
		{[]string{"/bin/stressors/memhog", "/c/patched/test_memcontrol"},
			[]string{"test_memcontrol", skip("patched", "gcc failed: error: x"), "memhog --mb 1"}},
		{[]string{"/bin/stressors/memhog"},
			[]string{skip("patched:1", "no selftests were built for the patched:1 kernel"), skip("patched:1", "no selftests were built for the patched:1 kernel"), "memhog --mb 1"}},
		{[]string{"/bin/stressors/memhog"}, []string{"memhog"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	// The caller's scenario and env are not changed.
	if sc.Stressors[1].Command != "mrelease_test" || len(env.Stressors) != 1 {
		t.Errorf("Wrap changed its arguments: %q %q", sc.Stressors[1].Command, env.Stressors)
	}
	// What the stand-in prints is a skip of the whole program, not a pass.
	words, err := protocol.SplitWords(skip("patched", "gcc failed: error: x"))
	if err != nil {
		t.Fatal(err)
	}
	f := metrics.Compute(metrics.Facts{Exits: []metrics.Exit{{Name: "mrelease_test", Output: words[1] + "\n"}}})
	if f.Extra["selftest_skip:mrelease_test"] != 1 {
		t.Errorf("the stand-in's output %q is no skip: %v", words[1], f.Extra)
	}
	if _, ok := f.Extra["selftest:mrelease_test"]; ok {
		t.Errorf("the stand-in passes: %v", f.Extra)
	}
	if u := Used([]*scenario.Scenario{sc}); !reflect.DeepEqual(u, []string{"test_memcontrol", "mrelease_test"}) {
		t.Errorf("Used: %v", u)
	}
}
