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
	type runs struct {
		variants []string
		figs     map[string][]*metrics.Figures
	}
	var order []string
	by := map[string]*runs{}
	for _, res := range r.Results {
		if res == nil || res.Verdict == results.Skip {
			continue
		}
		s := by[res.Scenario]
		if s == nil {
			s = &runs{figs: map[string][]*metrics.Figures{}}
			by[res.Scenario] = s
			order = append(order, res.Scenario)
		}
		if s.figs[res.Variant] == nil {
			s.variants = append(s.variants, res.Variant)
		}
		s.figs[res.Variant] = append(s.figs[res.Variant], &res.Figures)
	}
	var out []string
	for _, sc := range order {
		s := by[sc]
		ref := Reference(s.variants)
		passed := passedEverywhere(s.figs[ref])
		for _, v := range s.variants {
			if v == ref {
				continue
			}
			for _, c := range passed {
				var how []string
				for i, f := range s.figs[v] {
					if st := selftestStatus(f, c); st != "passes" {
						how = append(how, fmt.Sprintf("%s in run %d", st, i+1))
					}
				}
				if len(how) > 0 {
					out = append(out, fmt.Sprintf("%s: selftest %s passes on %s, %s on %s",
						sc, c, ref, strings.Join(how, ", "), v))
				}
			}
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
	byGroup := func(r *results.Run) (map[[2]string][]*metrics.Figures, [][2]string) {
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
	ga, _ := byGroup(a)
	gb, order := byGroup(b)
	var out []string
	for _, k := range order {
		for _, c := range passedEverywhere(ga[k]) {
			var how []string
			for i, f := range gb[k] {
				if st := selftestStatus(f, c); st != "passes" {
					how = append(how, fmt.Sprintf("%s in run %d", st, i+1))
				}
			}
			if len(how) > 0 {
				out = append(out, fmt.Sprintf("%s/%s: selftest %s passes in %s, %s in %s",
					k[0], k[1], c, runName(a), strings.Join(how, ", "), runName(b)))
			}
		}
	}
	return out
}
