package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"oomlab/harness/internal/metrics"
	"oomlab/harness/internal/results"
)

func TestReport(t *testing.T) {
	dir := t.TempDir()
	save := func(id string, res ...*results.Result) {
		t.Helper()
		d := filepath.Join(dir, id)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := results.Save(d, &results.Run{Schema: results.SchemaVersion, ID: id, Complete: true, Results: res}); err != nil {
			t.Fatal(err)
		}
	}
	guest := func(variant string, wall float64, samples ...float64) *results.Result {
		return &results.Result{Scenario: "tetsuo-rt-idle", Variant: variant, WallS: wall, Figures: metrics.Figures{OOMToFreedMs: samples},
			Rounds: make([]results.RoundResult, len(samples))}
	}
	save("20261130-000000-aaaaaa", guest("baseline", 60, 1, 2))
	save("20261130-010000-bbbbbb", guest("baseline", 60, 2200, 2200, 2200), guest("baseline", 120, 2100, 2300, 2200), guest("patched", 90, 5, 6, 7))
	save("20261130-020000-cccccc", &results.Result{Scenario: "smoke", Variant: "baseline", WallS: 10})
	os.WriteFile(filepath.Join(dir, "README.md"), []byte("x"), 0o644)

	var out bytes.Buffer
	if err := report(&out, dir, "tetsuo-rt-idle"); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	// The newest run with the scenario: 6 samples in 180 s on baseline.
	if !strings.Contains(s, "20261130-010000-bbbbbb") {
		t.Errorf("not the newest run with the scenario:\n%s", s)
	}
	for _, want := range []string{"baseline  2      6       6        180.0   3.0           2.0          120", "patched   1      3       3        90.0    3.0           2.0          120"} {
		if !strings.Contains(s, want) {
			t.Errorf("no line %q in\n%s", want, s)
		}
	}
	out.Reset()
	if err := report(&out, dir, "nothing"); err != nil || !strings.Contains(out.String(), "no run of nothing") {
		t.Errorf("%v %q", err, out.String())
	}
}
