package ktap

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.want from the parser")

// render is what a golden file holds: the header facts and every flattened
// case, one a line.
func render(r *Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "found=%v version=%q plan=%d plan_skip=%q bail_out=%q truncated=%v\n",
		r.Found(), r.Version, r.Plan, r.PlanSkip, r.BailOut, r.Truncated)
	for _, f := range r.Flatten() {
		fmt.Fprintf(&b, "%s %s", f.Key, f.Status)
		if f.Reason != "" {
			fmt.Fprintf(&b, " (%s)", f.Reason)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// TestGolden parses each testdata/*.ktap and compares with its .want, which
// was checked by hand against the input (go test -update rewrites them).
func TestGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.ktap")
	if len(files) < 8 {
		t.Fatalf("want the 8 testdata cases, found %d", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			in, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			got := render(Parse(string(in)))
			want := strings.TrimSuffix(f, ".ktap") + ".want"
			if *update {
				os.WriteFile(want, []byte(got), 0o644)
			}
			w, err := os.ReadFile(want)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(w) {
				t.Errorf("%s:\ngot:\n%s\nwant:\n%s", f, got, w)
			}
		})
	}
}

// The facts the golden files encode, asserted directly as well, so that an
// -update that records a wrong parse does not pass silently.
func TestFacts(t *testing.T) {
	read := func(name string) *Result {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return Parse(string(b))
	}
	status := func(r *Result) map[string]Status {
		m := map[string]Status{}
		for _, f := range r.Flatten() {
			m[f.Key] = f.Status
		}
		return m
	}

	ks := status(read("kselftest.ktap"))
	for k, want := range map[string]Status{
		"test_memcg_subtree_control": Pass,
		"test_memcg_min":             Fail,
		"test_memcg_swap_max":        Skip, // kselftest: the name is in the SKIP directive
		"4":                          Pass, // XFAIL counts as a pass; its name is in the directive too
		"5":                          Fail, // "not ok 5 # error name"
	} {
		if ks[k] != want {
			t.Errorf("kselftest %s: %q, want %q (all: %v)", k, ks[k], want, ks)
		}
	}

	if r := read("skip_all.ktap"); r.Plan != 0 || r.PlanSkip != "cgroup v2 isn't mounted" || len(r.Cases) != 0 {
		t.Errorf("skip_all: plan %d skip %q cases %d", r.Plan, r.PlanSkip, len(r.Cases))
	}

	n := status(read("nested.ktap"))
	if n["oom.oom_reap_slow"] != Fail || n["oom.oom_group"] != Skip || n["oom"] != Fail || n["reaper.reap"] != Pass || n["reaper"] != Pass {
		t.Errorf("nested: %v", n)
	}

	tr := read("truncated.ktap")
	if !tr.Truncated || len(tr.Cases) != 2 {
		t.Errorf("truncated: truncated %v, %d cases (the cut line is no result)", tr.Truncated, len(tr.Cases))
	}

	if b := read("bailout.ktap"); b.BailOut != "process_mrelease: Invalid argument" || !b.Truncated {
		t.Errorf("bailout: %q truncated %v", b.BailOut, b.Truncated)
	}

	tail := read("tail_only.ktap")
	ts := status(tail)
	if !tail.Found() || tail.Plan != -1 || ts["test_memcg_oom_group_parent_events"] != Fail || ts["9"] != Pass {
		t.Errorf("tail only: found %v plan %d %v", tail.Found(), tail.Plan, ts)
	}

	nt := status(read("nested_truncated.ktap"))
	if nt["first"] != Pass || nt["2"] != Fail || nt["2.a"] != Pass {
		t.Errorf("nested truncated: %v (the subtest without its result line is a failed case)", nt)
	}

	if r := read("not_ktap.ktap"); r.Found() {
		t.Errorf("not_ktap: found test output in %+v", r)
	}
}

func TestDuplicateKeys(t *testing.T) {
	r := Parse("1..2\nok 1 same\nok 1 same\nnot ok 2 same\n")
	f := r.Flatten()
	if len(f) != 2 || f[0].Key != "same" || f[1].Key != "same#2" || f[1].Status != Fail {
		t.Errorf("duplicates: %+v", f)
	}
}
