package compare

import (
	"fmt"
	"sort"
	"strings"

	"oomlab/harness/internal/metrics"
	"oomlab/harness/internal/results"
)

// SelftestRegressions is the exact rule for kernel selftests (the
// "selftest:" figures, metrics.SelftestFamily), not a statistic: a case
// that passed in every run of a scenario's reference (baseline) must pass
// in every run of every other variant. Failing, being skipped (a skip is
// not a pass: a variant whose tree could not build the program, or whose
// kernel lost what the case needs) or not running at all (the program
// crashed, bailed out or was cut before it) is a regression, one line per
// case and variant. A case that failed or was skipped on the reference
// gates nothing: fail -> fail is the kernel's or the guest's, not the
// variant's. Guest runs skipped by requires: are not runs.
func SelftestRegressions(r *results.Run) []string {
	figs, order := groupFigures(r)
	var scenarios []string
	variants := map[string][]string{}
	for _, k := range order {
		if variants[k[0]] == nil {
			scenarios = append(scenarios, k[0])
		}
		variants[k[0]] = append(variants[k[0]], k[1])
	}
	var out []string
	for _, sc := range scenarios {
		ref := Reference(variants[sc])
		for _, v := range variants[sc] {
			if v == ref {
				continue
			}
			for _, reg := range regressed(figs[[2]string{sc, ref}], figs[[2]string{sc, v}]) {
				out = append(out, fmt.Sprintf("%s: selftest %s passes on %s, %s on %s", sc, reg.name, ref, reg.how, v))
			}
		}
	}
	return out
}

// groupFigures is r's figures by scenario x variant, in the order the
// run has them; guest runs skipped by requires: are not runs.
func groupFigures(r *results.Run) (map[[2]string][]*metrics.Figures, [][2]string) {
	m := map[[2]string][]*metrics.Figures{}
	var order [][2]string
	for _, res := range r.Results {
		if res == nil || res.Verdict == results.Skip {
			continue
		}
		k := [2]string{res.Scenario, res.Variant}
		if m[k] == nil {
			order = append(order, k)
		}
		m[k] = append(m[k], &res.Figures)
	}
	return m, order
}

// caseRegression is a case that passed in every reference run and how it
// went in the runs where it did not pass ("fails in run 2, ...").
type caseRegression struct{ name, how string }

// regressed applies the rule to one reference and one other set of runs.
func regressed(ref, other []*metrics.Figures) []caseRegression {
	var out []caseRegression
	for _, c := range passedEverywhere(ref) {
		var how []string
		for i, f := range other {
			if st := selftestStatus(f, c); st != "passes" {
				how = append(how, fmt.Sprintf("%s in run %d", st, i+1))
			}
		}
		if len(how) > 0 {
			out = append(out, caseRegression{c, strings.Join(how, ", ")})
		}
	}
	return out
}

// passedEverywhere lists the cases ("<stressor>.<case>", or "<stressor>"
// for the program's completion) that are 1 in every one of figs.
func passedEverywhere(figs []*metrics.Figures) []string {
	if len(figs) == 0 {
		return nil
	}
	count := map[string]int{}
	for _, f := range figs {
		for k, v := range f.Extra {
			if c, ok := strings.CutPrefix(k, metrics.SelftestFamily+":"); ok && v == 1 {
				count[c]++
			}
		}
	}
	var out []string
	for c, n := range count {
		if n == len(figs) {
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return out
}

// selftestStatus says how case c went in one run.
func selftestStatus(f *metrics.Figures, c string) string {
	if v, ok := f.Extra[metrics.SelftestFamily+":"+c]; ok {
		if v == 1 {
			return "passes"
		}
		if !strings.Contains(c, ".") {
			return "did not run to its end"
		}
		return "fails"
	}
	if f.Extra[metrics.SelftestSkipFamily+":"+c] == 1 {
		return "is skipped"
	}
	prog, _, _ := strings.Cut(c, ".")
	if f.Extra[metrics.SelftestSkipFamily+":"+prog] == 1 {
		return "is skipped (the whole program)"
	}
	return "did not run (the program crashed or stopped before it)"
}

// SelftestRegressionsBetween applies the same rule between two runs (A
// the reference): for every scenario x variant both have, a case that
// passed in every run of it in A must pass in every run of it in B.
func SelftestRegressionsBetween(a, b *results.Run) []string {
	ga, _ := groupFigures(a)
	gb, order := groupFigures(b)
	var out []string
	for _, k := range order {
		for _, reg := range regressed(ga[k], gb[k]) {
			out = append(out, fmt.Sprintf("%s/%s: selftest %s passes in %s, %s in %s",
				k[0], k[1], reg.name, runName(a), reg.how, runName(b)))
		}
	}
	return out
}
