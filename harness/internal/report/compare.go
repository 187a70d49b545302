package report

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"oomlab/harness/internal/compare"
	"oomlab/harness/internal/metrics"
	"oomlab/harness/internal/results"
)

// Summary is one scenario x variant over all its repeats.
type Summary struct {
	Scenario, Variant string
	Runs, Passed      int
	Skipped           int // runs not made: the kernel lacks what the scenario requires
	Lockups           int
	Kills, OOMEvents  int
	HandedOver        int
	Reaped            int
	ReapFailed        int
	Dead              int       // runs where the agent did not answer afterwards
	FreedMs           []float64 // OOM -> freed over all repeats
	ExitMs            []float64 // kill -> victim exited, over all repeats
}

// Summaries groups the results by scenario and variant, in run order.
func Summaries(r *results.Run) []Summary {
	var out []Summary
	for _, g := range groups(r) {
		s := Summary{Scenario: g.results[0].Scenario, Variant: g.results[0].Variant}
		for _, res := range g.results {
			if res.Verdict == results.Skip {
				s.Skipped++
				continue // no guest ran: no figures
			}
			f := res.Figures
			s.Runs++
			if res.Verdict == results.Pass {
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
			s.ExitMs = append(s.ExitMs, f.KillToExitMs...)
		}
		out = append(out, s)
	}
	return out
}

// Compare prints baseline and patched side by side, one row per
// scenario x variant, aggregated over repeats: counts, and for each latency
// distribution (pooled over repeats) N, p50 and p95 with their 95%
// bootstrap CIs ("too few samples" below metrics.MinSamples for a p95).
func Compare(w io.Writer, r *results.Run) {
	groups := compare.Groups(r)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tVARIANT\tPASS\tLOCKUPS\tDEAD\tKILLS/EV\tREAPED\tHANDED\tREAP FAIL\tOOM->FREED N\tp50 ms [95% CI]\tp95 ms [95% CI]\tKILL->EXIT N\tp50 ms [95% CI]\tp95 ms [95% CI]")
	for i, s := range Summaries(r) {
		kpe := "-"
		if s.OOMEvents > 0 {
			kpe = fmt.Sprintf("%.2f", float64(s.Kills)/float64(s.OOMEvents))
		}
		fr, ex := distStats(groups[i], "oom_to_freed_ms"), distStats(groups[i], "kill_to_exit_ms")
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%d\t%d\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%d\t%s\t%s\n",
			s.Scenario, s.Variant, s.Passed, s.Runs, s.Lockups, s.Dead, kpe, s.Reaped, s.HandedOver, s.ReapFailed,
			fr.N, estimate(fr.P50, fr.N), estimate(fr.P95, fr.N), ex.N, estimate(ex.P50, ex.N), estimate(ex.P95, ex.N))
	}
	tw.Flush()
}

// Differences prints, per scenario, the figures that differ between its
// variants: those of the figure table marked for comparison (kills, reaps,
// handoffs) and every family figure (how stressors ended, what probes read,
// which processes were left), as the mean over repeats with the range when
// the repeats disagree. Probes are printed even when they agree, since a
// scenario adds them to be read.
func Differences(w io.Writer, r *results.Run) {
	type scen struct {
		name     string
		variants []string
		figs     map[string]map[string][]float64 // figure -> variant -> values
	}
	// The members of each family a scenario's runs have figures for: a
	// census lists only the names it found, and any other name that a
	// census of the same scenario found had 0 processes in that run, which
	// is the figure a scenario cares about.
	members := map[string]map[string]bool{} // scenario -> "family:name"
	for _, res := range r.Results {
		for _, fam := range metrics.Families {
			for _, n := range fam.Members(&res.Figures) {
				if members[res.Scenario] == nil {
					members[res.Scenario] = map[string]bool{}
				}
				members[res.Scenario][fam.Name+":"+n] = true
			}
		}
	}
	var order []*scen
	byName := map[string]*scen{}
	for _, res := range r.Results {
		if res.Verdict == results.Error || res.Verdict == results.Skip {
			continue
		}
		s := byName[res.Scenario]
		if s == nil {
			s = &scen{name: res.Scenario, figs: map[string]map[string][]float64{}}
			byName[res.Scenario] = s
			order = append(order, s)
		}
		if !slices.Contains(s.variants, res.Variant) {
			s.variants = append(s.variants, res.Variant)
		}
		add := func(fig string, v float64) {
			if s.figs[fig] == nil {
				s.figs[fig] = map[string][]float64{}
			}
			s.figs[fig][res.Variant] = append(s.figs[fig][res.Variant], v)
		}
		f := &res.Figures
		for _, fig := range metrics.Table {
			if v, ok := fig.Value(f); fig.Compare && ok {
				add(fig.Name, v)
			}
		}
		for name := range members[res.Scenario] {
			if v, ok := f.Value(name); ok {
				add(name, v)
			}
		}
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	header := false
	for _, s := range order {
		if len(s.variants) < 2 {
			continue
		}
		names := make([]string, 0, len(s.figs))
		for k := range s.figs {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			row := make([]string, len(s.variants))
			same := true
			for i, v := range s.variants {
				row[i] = "-"
				if vals := s.figs[k][v]; len(vals) > 0 {
					row[i] = meanRange(vals)
				}
				if row[i] != row[0] {
					same = false
				}
			}
			if same && !strings.HasPrefix(k, "probe:") {
				continue
			}
			if !header {
				fmt.Fprintln(tw, "SCENARIO\tFIGURE\tVARIANT: MEAN (RANGE) OVER REPEATS")
				header = true
			}
			cols := make([]string, len(row))
			for i := range row {
				cols[i] = s.variants[i] + ": " + row[i]
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", s.name, k, strings.Join(cols, "\t"))
		}
	}
	tw.Flush()
}

func meanRange(xs []float64) string {
	lo, hi, sum := xs[0], xs[0], 0.0
	for _, x := range xs {
		lo, hi, sum = min(lo, x), max(hi, x), sum+x
	}
	m := sum / float64(len(xs))
	if lo == hi {
		return fmt.Sprintf("%g", m)
	}
	return fmt.Sprintf("%.3g (%g-%g)", m, lo, hi)
}
