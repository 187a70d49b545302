// Package compare turns run records (package results) into the statistics
// of package metrics: it groups the guest runs of a run by scenario x
// variant, pools their figures into samples, and compares every variant of
// a scenario with its reference (baseline, or the first variant the
// scenario ran), or the groups of one run with the same groups of another
// ('oomlab compare RUN_A RUN_B'). Report is the data the terminal, JSON and
// HTML renderers print; nothing here writes.
package compare

import (
	"fmt"
	"path/filepath"
	"strings"

	"oomlab/harness/internal/metrics"
	"oomlab/harness/internal/results"
)

// Group is the runs of one scenario x variant of one run.
type Group struct {
	Run      string              `json:"run,omitempty"`
	Scenario string              `json:"scenario"`
	Variant  string              `json:"variant"`
	Runs     int                 `json:"runs"`
	Samples  metrics.Samples     `json:"samples"`
	Stats    []metrics.DistStats `json:"stats"`
}

// Row is one figure of one variant compared with its reference.
type Row struct {
	Scenario  string `json:"scenario"`
	Reference string `json:"reference"` // variant
	Variant   string `json:"variant"`
	// RefRun and VarRun are the run ids (comparing two runs).
	RefRun string `json:"reference_run,omitempty"`
	VarRun string `json:"variant_run,omitempty"`
	metrics.Comparison
}

// Labels names the two sides of a row (prefixed by their runs when two
// runs are compared) and formats its p-value ("-" when there is none).
func (r Row) Labels() (ref, variant, p string) {
	ref, variant, p = r.Reference, r.Variant, "-"
	if r.RefRun != "" {
		ref, variant = r.RefRun+":"+ref, r.VarRun+":"+variant
	}
	if r.P != nil {
		p = fmt.Sprintf("%.3g", *r.P)
	}
	return ref, variant, p
}

// Reason is the one-line explanation of a row, for the verdict.
func (r Row) Reason() string {
	ref, v, p := r.Labels()
	return fmt.Sprintf("%s: %s is %s than %s on %s (%s, p = %s < %.2g)",
		r.Scenario, v, strings.ToUpper(string(r.Verdict)), ref, r.Figure, r.Test, p, r.Alpha)
}

// Report is the statistics of a run, or of two runs.
type Report struct {
	Alpha     float64 `json:"alpha"`
	Resamples int     `json:"bootstrap_resamples"`
	Groups    []Group `json:"groups"`
	Rows      []Row   `json:"comparisons"`
	// SelftestRegressions are the upstream selftest cases that passed in
	// A and do not in B (Between; the exact rule, no statistics).
	SelftestRegressions []string `json:"selftest_regressions,omitempty"`
}

// Regressions are the rows where a variant is significantly worse than its
// reference.
func (r Report) Regressions() []Row {
	var out []Row
	for _, row := range r.Rows {
		if row.Verdict == metrics.Worse {
			out = append(out, row)
		}
	}
	return out
}

// Groups pools the results of a run by scenario x variant, in the order
// they first ran. Runs that could not complete (verdict error) count in
// failed_runs only: their figures are not the kernel's.
func Groups(r *results.Run) []Group {
	type acc struct {
		g      *Group
		figs   []metrics.Figures
		failed int
	}
	var order []*acc
	by := map[[2]string]*acc{}
	for _, res := range r.Results {
		if res == nil {
			continue
		}
		k := [2]string{res.Scenario, res.Variant}
		a := by[k]
		if a == nil {
			a = &acc{g: &Group{Run: r.ID, Scenario: res.Scenario, Variant: res.Variant}}
			by[k] = a
			order = append(order, a)
		}
		if res.Verdict == results.Skip {
			continue // not run (the kernel lacks what the scenario requires): the group stays, with no runs
		}
		a.g.Runs++
		if res.Verdict == results.Fail || res.Verdict == results.Error {
			a.failed++
		}
		if res.Verdict != results.Error {
			a.figs = append(a.figs, res.Figures)
		}
	}
	out := make([]Group, 0, len(order))
	for _, a := range order {
		a.g.Samples = metrics.Collect(a.figs)
		a.g.Samples.AddRate(metrics.FailedRuns, a.failed, a.g.Runs)
		a.g.Stats = metrics.Summarize(a.g.Samples)
		out = append(out, *a.g)
	}
	return out
}

// Reference is the variant the others of a scenario are compared with:
// baseline when the scenario ran it, else the first variant it ran.
func Reference(variants []string) string {
	for _, v := range variants {
		if v == "baseline" {
			return v
		}
	}
	if len(variants) == 0 {
		return ""
	}
	return variants[0]
}

// Within compares, per scenario, every variant with the reference.
func Within(r *results.Run) Report {
	rep := Report{Alpha: metrics.Alpha, Resamples: metrics.Resamples, Groups: Groups(r)}
	var scenarios []string
	variants := map[string][]string{}
	group := map[[2]string]*Group{}
	for i := range rep.Groups {
		g := &rep.Groups[i]
		if variants[g.Scenario] == nil {
			scenarios = append(scenarios, g.Scenario)
		}
		variants[g.Scenario] = append(variants[g.Scenario], g.Variant)
		group[[2]string{g.Scenario, g.Variant}] = g
	}
	for _, sc := range scenarios {
		ref := Reference(variants[sc])
		for _, v := range variants[sc] {
			if v == ref {
				continue
			}
			for _, c := range metrics.Compare(group[[2]string{sc, ref}].Samples, group[[2]string{sc, v}].Samples) {
				rep.Rows = append(rep.Rows, Row{Scenario: sc, Reference: ref, Variant: v, Comparison: c})
			}
		}
	}
	return rep
}

// Between compares every scenario x variant of b with the same one of a
// (a is the reference). An input that cannot be compared is an error
// naming the run and field.
func Between(a, b *results.Run) (Report, error) {
	for _, r := range []*results.Run{a, b} {
		if err := check(r); err != nil {
			return Report{}, err
		}
	}
	ga, gb := Groups(a), Groups(b)
	rep := Report{Alpha: metrics.Alpha, Resamples: metrics.Resamples}
	inA := map[[2]string]*Group{}
	for i := range ga {
		inA[[2]string{ga[i].Scenario, ga[i].Variant}] = &ga[i]
	}
	for i := range gb {
		g := &gb[i]
		ref := inA[[2]string{g.Scenario, g.Variant}]
		if ref == nil {
			continue
		}
		rep.Groups = append(rep.Groups, *ref, *g)
		for _, c := range metrics.Compare(ref.Samples, g.Samples) {
			rep.Rows = append(rep.Rows, Row{Scenario: g.Scenario, Reference: g.Variant, Variant: g.Variant,
				RefRun: runName(a), VarRun: runName(b), Comparison: c})
		}
	}
	if len(rep.Groups) == 0 {
		return Report{}, fmt.Errorf("%s and %s have no scenario x variant in common (results[].scenario, results[].variant)", runName(a), runName(b))
	}
	rep.SelftestRegressions = SelftestRegressionsBetween(a, b)
	return rep, nil
}

func runName(r *results.Run) string {
	if r.ID != "" {
		return r.ID
	}
	return "run"
}

// check rejects a record that has nothing to compare.
func check(r *results.Run) error {
	if len(r.Results) == 0 {
		return fmt.Errorf("run %s: results: empty", runName(r))
	}
	for i, res := range r.Results {
		if res == nil {
			return fmt.Errorf("run %s: results[%d]: null", runName(r), i)
		}
		if res.Scenario == "" {
			return fmt.Errorf("run %s: results[%d].scenario: empty", runName(r), i)
		}
		if res.Variant == "" {
			return fmt.Errorf("run %s: results[%d].variant: empty", runName(r), i)
		}
	}
	return nil
}

// Runs loads two run directories (or their run.json files) and compares
// them, A the reference: the data 'oomlab compare' prints and an HTML
// report can draw.
func Runs(pathA, pathB string) (Report, error) {
	a, err := load(pathA)
	if err != nil {
		return Report{}, err
	}
	b, err := load(pathB)
	if err != nil {
		return Report{}, err
	}
	return Between(a, b)
}

func load(path string) (*results.Run, error) {
	if filepath.Base(path) == "run.json" {
		path = filepath.Dir(path)
	}
	return results.Load(path)
}
