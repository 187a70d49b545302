package grid

import (
	"bytes"
	"strings"
	"testing"

	"oomlab/harness/internal/metrics"
	"oomlab/harness/internal/results"
)

func res(variant string, v results.Verdict, freed []float64, labels ...string) *results.Result {
	r := &results.Result{Scenario: "x", Sweep: "sw", Variant: variant, Verdict: v, KeyFigure: "oom_to_freed_p95_ms",
		Figures: metrics.Figures{OOMToFreedMs: freed}}
	for i, n := range []string{"hogs", "fs", "cpus"} {
		r.Case = append(r.Case, results.Param{Name: n, Value: labels[i]})
	}
	return r
}

func TestGrid(t *testing.T) {
	rec := &results.Run{Results: []*results.Result{
		{Scenario: "smoke", Variant: "baseline"}, // no sweep: no grid
		res("baseline", results.Pass, []float64{2100, 2150}, "1", "on", "2"),
		res("baseline", results.Fail, nil, "1", "off", "2"),
		res("baseline", results.Pass, []float64{2200}, "1", "on", "4"),
		res("patched", results.Pass, []float64{12}, "1", "on", "2"),
		res("baseline", results.Pass, []float64{3000}, "1", "on", "2"), // a repeat: median of 2150 and 3000
		res("baseline", results.Error, nil, "2", "on", "4"),
	}}
	gs := Grids(rec)
	if len(gs) != 2 || gs[0].Variant != "baseline" || gs[1].Variant != "patched" {
		t.Fatalf("grids %+v", gs)
	}
	g := gs[0]
	if strings.Join(g.Axes, ",") != "hogs,fs,cpus" || strings.Join(g.Columns, ",") != "2,4" || len(g.Rows) != 3 {
		t.Errorf("shape %v %v %v", g.Axes, g.Columns, g.Rows)
	}
	if c := g.Cells[0][0]; c.Runs != 2 || c.String() != "PASS 2150 ms" {
		t.Errorf("cell 1,on,2: %+v %s", c, c)
	}
	var buf bytes.Buffer
	Table(&buf, rec)
	want := `GRID sw on baseline (cells: verdict and oom_to_freed_p95_ms)
hogs  fs   cpus=2        cpus=4
1     on   PASS 2150 ms  PASS 2200 ms
1     off  FAIL          -
2     on   -             ERROR

GRID sw on patched (cells: verdict and oom_to_freed_p95_ms)
hogs  fs  cpus=2
1     on  PASS 12 ms
`
	if buf.String() != want {
		t.Errorf("table\n%s\nwant\n%s", buf.String(), want)
	}
	buf.Reset()
	Table(&buf, &results.Run{Results: []*results.Result{{Scenario: "smoke"}}})
	if buf.Len() != 0 {
		t.Errorf("no sweep: %q", buf.String())
	}
}
