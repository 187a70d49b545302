package report

import (
	"fmt"
	"io"
	"text/tabwriter"

	"oomlab/harness/internal/metrics"
)

// Summary is one scenario x variant over all its repeats.
type Summary struct {
	Scenario, Variant string
	Runs, Passed      int
	Lockups           int
	Kills, OOMEvents  int
	HandedOver        int
	Reaped            int
	ReapFailed        int
	Dead              int       // runs where the agent did not answer afterwards
	FreedMs           []float64 // OOM -> freed over all repeats
}

// Summaries groups the results by scenario and variant, in run order.
func Summaries(r *Run) []Summary {
	var out []Summary
	for _, g := range groups(r) {
		s := Summary{Scenario: g.results[0].Scenario, Variant: g.results[0].Variant}
		for _, res := range g.results {
			f := res.Figures
			s.Runs++
			if res.Verdict == "pass" {
				s.Passed++
			}
			if !f.GuestAlive {
				s.Dead++
			}
			s.Lockups += f.Lockups
			s.Kills += f.OOMKills
			s.OOMEvents += f.OOMEvents
			s.HandedOver += f.HandedOver
			s.Reaped += f.Reaped
			s.ReapFailed += f.ReapFailed
			s.FreedMs = append(s.FreedMs, f.OOMToFreedMs...)
		}
		out = append(out, s)
	}
	return out
}

// Compare prints baseline and patched side by side, one row per
// scenario x variant, aggregated over repeats.
func Compare(w io.Writer, r *Run) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tVARIANT\tPASS\tLOCKUPS\tDEAD\tKILLS/EV\tREAPED\tHANDED\tREAP FAIL\tOOM->FREED p50 ms\tp95 ms\tN")
	for _, s := range Summaries(r) {
		kpe, p50, p95 := "-", "-", "-"
		if s.OOMEvents > 0 {
			kpe = fmt.Sprintf("%.2f", float64(s.Kills)/float64(s.OOMEvents))
		}
		if len(s.FreedMs) > 0 {
			p50 = fmt.Sprintf("%.0f", metrics.Quantile(s.FreedMs, 0.5))
			p95 = fmt.Sprintf("%.0f", metrics.Quantile(s.FreedMs, 0.95))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%d\t%d\t%s\t%d\t%d\t%d\t%s\t%s\t%d\n",
			s.Scenario, s.Variant, s.Passed, s.Runs, s.Lockups, s.Dead, kpe, s.Reaped, s.HandedOver, s.ReapFailed, p50, p95, len(s.FreedMs))
	}
	tw.Flush()
}
