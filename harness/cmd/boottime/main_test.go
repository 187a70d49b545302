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
	boot := func(fw, k, init, ssh float64) *results.Result {
		return &results.Result{Scenario: "boot", Variant: "baseline", Accel: "tcg",
			Figures: metrics.Figures{BootSeconds: fw + k + init + ssh},
			Boot:    &results.BootPhases{FirmwareS: fw, KernelS: k, InitS: init, ConnectS: ssh, ClockS: 0.5}}
	}
	save("20261130-000000-aaaaaa", boot(9, 9, 9, 9))
	save("20261130-010000-bbbbbb", boot(0.1, 0.5, 0.1, 0.1), boot(0.3, 0.5, 0.1, 0.1), boot(0.2, 0.7, 0.2, 0.1))
	// Newer, but from before boot phases were recorded: skipped.
	save("20261130-020000-cccccc", &results.Result{Scenario: "boot", Variant: "baseline", Figures: metrics.Figures{BootSeconds: 3.2}})

	var out bytes.Buffer
	if err := report(&out, dir, "boot"); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	if !strings.Contains(s, "20261130-010000-bbbbbb") {
		t.Errorf("not the newest run with boot phases:\n%s", s)
	}
	// Medians 0.2, 0.5, 0.1, 0.1, total 1.0 (of 0.8, 1.0, 1.2); p95 (empirical) the largest.
	want := "baseline  tcg    3      0.20 / 0.30    0.50 / 0.70  0.10 / 0.20  0.10 / 0.10  1.00 / 1.20  0.50 / 0.50"
	if !strings.Contains(s, want) {
		t.Errorf("no line %q in\n%s", want, s)
	}
	out.Reset()
	if err := report(&out, dir, "nothing"); err != nil || !strings.Contains(out.String(), "no run of nothing") {
		t.Errorf("missing scenario: %q %v", out.String(), err)
	}
}
