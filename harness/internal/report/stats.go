package report

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"oomlab/harness/internal/compare"
	"oomlab/harness/internal/metrics"
)

// estimate prints a percentile with its CI, or why there is none.
func estimate(e *metrics.Estimate, n int) string {
	if e == nil {
		if n == 0 {
			return "-"
		}
		return metrics.TooFew
	}
	return e.String()
}

func distStats(g compare.Group, name string) metrics.DistStats {
	for _, s := range g.Stats {
		if s.Name == name {
			return s
		}
	}
	return metrics.DistStats{Name: name}
}

// Distributions prints, per group, N and p50/p95/p99 with their 95%
// bootstrap CIs for every latency distribution that has samples.
func Distributions(w io.Writer, rep compare.Report) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	two := false // groups from two runs: say which
	for _, g := range rep.Groups {
		two = two || g.Run != rep.Groups[0].Run
	}
	fmt.Fprint(tw, "SCENARIO\tVARIANT\t")
	if two {
		fmt.Fprint(tw, "RUN\t")
	}
	fmt.Fprintln(tw, "DISTRIBUTION\tN\tp50 [95% CI]\tp95 [95% CI]\tp99 [95% CI]")
	for _, g := range rep.Groups {
		for _, s := range g.Stats {
			if s.N == 0 {
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t", g.Scenario, g.Variant)
			if two {
				fmt.Fprintf(tw, "%s\t", g.Run)
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", s.Name, s.N, estimate(s.P50, s.N), estimate(s.P95, s.N), estimate(s.P99, s.N))
		}
	}
	tw.Flush()
}

// Comparisons prints every figure of every variant against its reference:
// both sides (median or bad runs / runs), the ratio of medians with its
// CI, the p-value, the test and the verdict; then the significance level
// and one REGRESSION line per figure where a variant is worse.
func Comparisons(w io.Writer, rep compare.Report) {
	if len(rep.Rows) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tFIGURE\tREFERENCE\tVARIANT\tREF\tVAR\tRATIO [95% CI]\tp\tTEST\tVERDICT")
	for _, r := range rep.Rows {
		ref, v, p := r.Labels()
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Scenario, r.Figure, ref, v,
			side(r.RefSide), side(r.VarSide), r.Ratio.String(), p, r.Test, strings.ToUpper(string(r.Verdict)))
	}
	tw.Flush()
	fmt.Fprintf(w, "two-sided tests at alpha = %.2g; distributions: median (N), Mann-Whitney U, ratio of medians with a %d-resample bootstrap CI;\n"+
		"rates: bad runs/runs, Fisher's exact test; fewer than %d samples or runs on a side: %s\n",
		rep.Alpha, rep.Resamples, metrics.MinSamples, metrics.TooFew)
	for _, r := range rep.Regressions() {
		fmt.Fprintf(w, "REGRESSION %s\n", r.Reason())
	}
}

func side(s metrics.Side) string {
	switch {
	case s.Events != nil:
		return fmt.Sprintf("%d/%d", *s.Events, s.N)
	case s.Median != nil:
		return fmt.Sprintf("%s (N=%d)", metrics.Num(*s.Median), s.N)
	}
	return fmt.Sprintf("- (N=%d)", s.N)
}
