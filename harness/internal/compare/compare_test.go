package compare

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"oomlab/harness/internal/metrics"
	"oomlab/harness/internal/results"
)

// synth makes n runs of scenario s on variant v, each with the freed
// latencies lat (one sample per run, cycling) and a lockup in the first
// `locked` runs.
func synth(r *results.Run, s, v string, n int, lat []float64, locked int) {
	for i := range n {
		f := metrics.Figures{OOMEvents: 1, OOMKills: 1, KillsPerOOMEvent: 1, GuestAlive: true,
			OOMToFreedMs: []float64{lat[i%len(lat)]}}
		if i < locked {
			f.Lockups = 1
		}
		r.Results = append(r.Results, &results.Result{Scenario: s, Variant: v, Repeat: i + 1, Verdict: results.Pass, Figures: f})
	}
}

func row(t *testing.T, rep Report, scenario, variant, fig string) Row {
	t.Helper()
	for _, r := range rep.Rows {
		if r.Scenario == scenario && r.Variant == variant && r.Figure == fig {
			return r
		}
	}
	t.Fatalf("no row %s/%s/%s in %+v", scenario, variant, fig, rep.Rows)
	return Row{}
}

func TestWithin(t *testing.T) {
	slow := []float64{2100, 2150, 2120, 2200, 2180, 2130, 2160, 2110}
	fast := []float64{80, 95, 91, 88, 120, 85, 99, 90}
	r := &results.Run{ID: "r"}
	synth(r, "tetsuo", "patched", 8, fast, 0) // run order: the reference is still baseline
	synth(r, "tetsuo", "baseline", 8, slow, 0)
	synth(r, "tetsuo", "patched:4", 8, slow, 7)
	synth(r, "exit-mmap", "patched:2+test", 8, fast, 0) // no baseline: the first variant is the reference
	synth(r, "exit-mmap", "patched:3+test", 8, slow, 0)
	rep := Within(r)
	if len(rep.Groups) != 5 || rep.Groups[0].Runs != 8 || rep.Groups[0].Stats[1].Name != "oom_to_freed_ms" || rep.Groups[0].Stats[1].P95 == nil {
		t.Fatalf("groups: %+v", rep.Groups)
	}
	if c := row(t, rep, "tetsuo", "patched", "oom_to_freed_ms"); c.Reference != "baseline" || c.Verdict != metrics.Better {
		t.Errorf("patched: %+v", c)
	}
	if c := row(t, rep, "tetsuo", "patched:4", "lockups > 0"); c.Verdict != metrics.Worse {
		t.Errorf("patched:4 lockups: %+v", c)
	}
	if c := row(t, rep, "tetsuo", "patched:4", "oom_to_freed_ms"); c.Verdict != metrics.NoDifference {
		t.Errorf("patched:4 freed: %+v", c)
	}
	if c := row(t, rep, "exit-mmap", "patched:3+test", "oom_to_freed_ms"); c.Reference != "patched:2+test" || c.Verdict != metrics.Worse {
		t.Errorf("exit-mmap: %+v", c)
	}
	reg := rep.Regressions()
	if len(reg) != 2 {
		t.Fatalf("regressions: %+v", reg)
	}
	if why := reg[0].Reason(); !strings.Contains(why, "tetsuo: patched:4 is WORSE than baseline on lockups > 0 (Fisher's exact, p = ") {
		t.Errorf("reason %q", why)
	}
	// The JSON has both sides and no NaN.
	if _, err := json.Marshal(rep); err != nil {
		t.Error(err)
	}
}

func TestFailedRunsAndErrors(t *testing.T) {
	r := &results.Run{}
	synth(r, "s", "baseline", 6, []float64{1}, 0)
	synth(r, "s", "patched", 6, []float64{1}, 0)
	for _, res := range r.Results[6:] {
		res.Verdict, res.Figures = results.Error, metrics.Figures{} // no guest: not a dead guest
	}
	rep := Within(r)
	if c := row(t, rep, "s", "patched", metrics.FailedRuns); c.Verdict != metrics.Worse || *c.VarSide.Events != 6 {
		t.Errorf("failed runs: %+v", c)
	}
	if c := row(t, rep, "s", "patched", "guest_alive == false"); c.VarSide.N != 0 || c.Verdict != metrics.TooFewVerd {
		t.Errorf("error runs counted as dead guests: %+v", c)
	}
}

func TestBetweenTestdata(t *testing.T) {
	rep, err := Runs("testdata/tetsuo-a", "testdata/tetsuo-b/run.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Groups) != 2 || rep.Groups[0].Run != "20261130-000312-6a87a2" {
		t.Fatalf("groups: %+v", rep.Groups)
	}
	c := row(t, rep, "tetsuo-rt-idle", "patched", "oom_to_freed_ms")
	// 3 samples a side: a p-value, but too few for a verdict.
	if c.RefSide.N != 3 || c.VarSide.N != 3 || c.P == nil || c.Verdict != metrics.TooFewVerd || c.RefRun != "20261130-000312-6a87a2" {
		t.Errorf("%+v", c)
	}
	if len(rep.Regressions()) != 0 {
		t.Errorf("regressions: %+v", rep.Regressions())
	}
}

func TestBetweenBadInput(t *testing.T) {
	a := &results.Run{ID: "a"}
	synth(a, "s", "baseline", 1, []float64{1}, 0)
	b := &results.Run{ID: "b"}
	synth(b, "t", "baseline", 1, []float64{1}, 0)
	if _, err := Between(a, b); err == nil || !strings.Contains(err.Error(), "no scenario x variant in common") {
		t.Errorf("disjoint runs: %v", err)
	}
	b.Results[0].Variant = ""
	if _, err := Between(a, b); err == nil || err.Error() != "run b: results[0].variant: empty" {
		t.Errorf("empty variant: %v", err)
	}
	if _, err := Between(a, &results.Run{ID: "c"}); err == nil || err.Error() != "run c: results: empty" {
		t.Errorf("empty run: %v", err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "run.json"), []byte(`{"schema_version": 1, "results": [{"figures": {"oom_kills": "x"}}]}`), 0o644)
	if _, err := Runs("testdata/tetsuo-a", dir); err == nil || !strings.Contains(err.Error(), dir+"/run.json") || !strings.Contains(err.Error(), "oom_kills") {
		t.Errorf("bad json: %v", err)
	}
}
