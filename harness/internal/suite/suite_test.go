package suite

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"oomlab"
	"oomlab/harness/internal/kbuild"
	"oomlab/harness/internal/metrics"
	"oomlab/harness/internal/results"
	"oomlab/harness/internal/scenario"
)

func TestBuiltin(t *testing.T) {
	b, err := LoadBuiltin(oomlab.Assets)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(b.SetNames(), ","); got != "quick,patches,selftest,cost,sweep,selftests" {
		t.Errorf("sets in file order: %s", got)
	}
	scs, err := b.Resolve([]string{"quick", "smoke", "idle", "selftest"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range scs {
		names = append(names, s.Name)
	}
	if strings.Join(names, ",") != "smoke,idle,detector-selftest,detector-hardlockup,silent-hang" {
		t.Errorf("resolved %v", names)
	}
	if _, err := b.Resolve([]string{"nope"}); err == nil || !strings.Contains(err.Error(), "sets: quick, patches, selftest") {
		t.Errorf("unknown name: %v", err)
	}
	if _, err := b.Resolve([]string{"/nonexistent.yaml"}); err == nil || !strings.Contains(err.Error(), "/nonexistent.yaml") {
		t.Errorf("missing file: %v", err)
	}
}

func TestResolveSweep(t *testing.T) {
	b, err := LoadBuiltin(oomlab.Assets)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(b.Names(), "tetsuo-sweep") || slices.ContainsFunc(b.Names(), func(n string) bool { return strings.Contains(n, "[") }) {
		t.Errorf("names %v: the sweep once, no case", b.Names())
	}
	all, err := b.Resolve([]string{"sweep"})
	if err != nil || len(all) != 16 || all[0].Name != "tetsuo-sweep[rt_hogs=1,victim_policy=idle,fair_server=on,cpus=2]" {
		t.Fatalf("set sweep: %d cases, %v", len(all), err)
	}
	two, err := b.Resolve([]string{"tetsuo-sweep[rt_hogs=1,victim_policy=idle,cpus=2]", all[1].Name})
	if err != nil || len(two) != 3 || two[1].Name != "tetsuo-sweep[rt_hogs=1,victim_policy=idle,fair_server=off,cpus=2]" || two[2] != all[1] {
		t.Errorf("selector: %v %v", two, err)
	}
	if _, err := b.Resolve([]string{"tetsuo-sweep[cpus=3]"}); err == nil || !strings.Contains(err.Error(), "selects no case") {
		t.Errorf("empty selection: %v", err)
	}
	if _, err := b.Resolve([]string{"tetsuo-sweep[cpus]"}); err == nil {
		t.Error("bad selector: no error")
	}
}

func TestParseSets(t *testing.T) {
	scs := map[string]*scenario.Scenario{"smoke": {Name: "smoke"}}
	for _, c := range []struct{ src, want string }{
		{"- name: a\n  scenarios: [nope]\n", `names "nope"`},
		{"- name: a\n  scenarios: [smoke]\n- name: a\n  scenarios: [smoke]\n", "defined twice"},
		{"- name: smoke\n  scenarios: [smoke]\n", "name of a scenario"},
		{"- name: a\n", "names no scenario"},
		{"- scenarios: [smoke]\n", "has no name"},
		{"- name: a\n  scenario: [smoke]\n", "sets.yaml: "},
	} {
		_, err := ParseSets("sets.yaml", []byte(c.src), scs)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: %v, want one line with %q", c.src, err, c.want)
		}
	}
}

// A plan that runs nothing still leaves a complete record.
func TestRunEmpty(t *testing.T) {
	root := t.TempDir()
	rec := &results.Run{Version: "test"}
	dir, err := Create(root, rec)
	if err != nil {
		t.Fatal(err)
	}
	p := NewPlan([]*scenario.Scenario{{Name: "idle", Variants: []string{"baseline"}}}, kbuild.Request{Want: []string{"patched"}}, 0)
	if len(p.Variants) != 0 {
		t.Errorf("planned %v", p.Variants)
	}
	if err := Run(context.Background(), scenario.Env{Dir: dir}, rec, p, nil); err != nil {
		t.Fatal(err)
	}
	got, err := results.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Complete || got.Verdict != results.Pass || got.ID != filepath.Base(dir) {
		t.Errorf("record %+v", got)
	}
	for _, f := range []string{"run.json", "events.jsonl", "report.ktap", "junit.xml"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
}

// TestVerdictRegression: guest runs that all pass, but a patched variant
// with a lockup in 7 of 8 runs against none of 8 on baseline (Fisher's
// exact p = 0.0014): the run fails, and says why.
func TestVerdictRegression(t *testing.T) {
	rec := &results.Run{}
	add := func(v string, locked int) {
		for i := range 8 {
			f := metrics.Figures{GuestAlive: true}
			if i < locked {
				f.Lockups = 1
			}
			rec.Results = append(rec.Results, &results.Result{Scenario: "s", Variant: v, Repeat: i + 1, Verdict: results.Pass, Figures: f})
		}
	}
	add("baseline", 0)
	add("patched", 0)
	if v, why := Verdict(rec); v != results.Pass || why != nil {
		t.Errorf("same figures: %v %q", v, why)
	}
	add("patched:1", 7)
	v, why := Verdict(rec)
	if v != results.Fail || len(why) != 1 || !strings.HasPrefix(why[0], "s: patched:1 is WORSE than baseline on lockups > 0 (Fisher's exact, p = 0.0014") {
		t.Errorf("regression: %v %q", v, why)
	}
}

// Repeats interleave the variants (baseline#1, patched#1, baseline#2, ...)
// so that a drifting host load is shared by every variant.
func TestGuestOrderInterleavesVariants(t *testing.T) {
	scs := []*scenario.Scenario{
		{Name: "a", Variants: []string{"baseline", "patched"}, Repeats: 2},
		{Name: "b", Variants: []string{"baseline"}, Repeats: 1},
	}
	p := NewPlan(scs, kbuild.Request{Want: []string{"baseline", "patched"}}, 0)
	var got []string
	for _, g := range p.guests() {
		got = append(got, g.sc.Name+"/"+g.variant+"#"+string(rune('0'+g.repeat)))
	}
	want := []string{"a/baseline#1", "a/patched#1", "a/baseline#2", "a/patched#2", "b/baseline#1"}
	if !slices.Equal(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
}
