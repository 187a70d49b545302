package report

import (
	"fmt"
	"io"
	"strings"

	"oomlab/harness/internal/ktap"
	"oomlab/harness/internal/metrics"
	"oomlab/harness/internal/results"
)

// group is all repeats of one scenario on one variant, in run order.
type group struct {
	name    string // scenario.variant
	results []*results.Result
}

func groups(r *results.Run) []group {
	var out []group
	idx := map[string]int{}
	for _, res := range r.Results {
		name := res.Scenario + "." + res.Variant
		i, ok := idx[name]
		if !ok {
			i = len(out)
			idx[name] = i
			out = append(out, group{name: name})
		}
		out[i].results = append(out[i].results, res)
	}
	return out
}

// ktapText keeps a diagnostic on one line: KTAP has no escaping.
func ktapText(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "#", "")), " ")
}

// KTAP writes the run as KTAP version 1 (Documentation/dev-tools/ktap.rst):
// one subtest per scenario x variant, with one test line per repeat.
func KTAP(w io.Writer, r *results.Run) {
	gs := groups(r)
	fmt.Fprintf(w, "KTAP version 1\n# oomlab %s run %s\n1..%d\n", r.Version, r.ID, len(gs))
	for i, g := range gs {
		fmt.Fprintf(w, "    KTAP version 1\n    # Subtest: %s\n    1..%d\n", g.name, len(g.results))
		ok := true
		for j, res := range g.results {
			fmt.Fprintf(w, "    # repeat %d: %s\n", res.Repeat, ktapSummary(&res.Figures))
			for _, msg := range res.Failures {
				fmt.Fprintf(w, "    # %s\n", ktapText(msg))
			}
			selftestKTAP(w, res)
			switch res.Verdict {
			case results.Pass:
				fmt.Fprintf(w, "    ok %d repeat-%d\n", j+1, res.Repeat)
			case results.Skip:
				fmt.Fprintf(w, "    ok %d repeat-%d # SKIP %s\n", j+1, res.Repeat, ktapText(res.SkipReason))
			case results.Error:
				ok = false
				fmt.Fprintf(w, "    not ok %d repeat-%d # error: %s\n", j+1, res.Repeat, ktapText(res.Error))
			default:
				ok = false
				fmt.Fprintf(w, "    not ok %d repeat-%d\n", j+1, res.Repeat)
			}
		}
		status := "ok"
		if !ok {
			status = "not ok"
		}
		fmt.Fprintf(w, "%s %d %s\n", status, i+1, g.name)
	}
	// A variant significantly worse than its reference fails the run
	// (package suite): say so, as a diagnostic of the whole run.
	for _, why := range r.Regressions {
		fmt.Fprintf(w, "# REGRESSION %s\n", ktapText(why))
	}
}

// ktapSummary is the figures of the one-line summary, read from the
// figure table: "1 OOM events, 1 kills, ..., boot 2.10s, alive true".
func ktapSummary(f *metrics.Figures) string {
	var parts []string
	for _, fig := range metrics.Summary() {
		v, _ := fig.Value(f)
		switch fig.Unit {
		case metrics.Count:
			parts = append(parts, fig.Format(v)+" "+fig.Label)
		case metrics.Seconds:
			parts = append(parts, fig.Label+" "+fig.Format(v)+"s")
		default:
			parts = append(parts, fig.Label+" "+fig.Format(v))
		}
	}
	return strings.Join(parts, ", ")
}

// selftestKTAP writes the cases of the kernel selftests a guest run ran
// (stressors whose output is KTAP) as the subtests of its repeat line, one
// level deeper, named <stressor>.<case> as their figures are: KTAP readers
// (kunit.py parse) then see each case, which the programs' own output,
// often without a version line or plan (test_memcontrol prints neither),
// does not give them.
func selftestKTAP(w io.Writer, res *results.Result) {
	type line struct {
		key    string
		status ktap.Status
		reason string
	}
	var lines []line
	for _, e := range res.Stressors {
		r := ktap.Parse(e.Output)
		if !r.Found() {
			continue
		}
		if r.Plan == 0 && len(r.Cases) == 0 {
			lines = append(lines, line{e.Name, ktap.Skip, r.PlanSkip})
			continue
		}
		for _, c := range r.Flatten() {
			lines = append(lines, line{e.Name + "." + c.Key, c.Status, c.Reason})
		}
		if r.BailOut != "" || r.Truncated || e.Signal != "" {
			lines = append(lines, line{e.Name, ktap.Fail, "did not run to its end"})
		}
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintf(w, "        KTAP version 1\n        # Subtest: repeat-%d\n        1..%d\n", res.Repeat, len(lines))
	for i, l := range lines {
		switch l.status {
		case ktap.Pass:
			fmt.Fprintf(w, "        ok %d %s\n", i+1, l.key)
		case ktap.Skip:
			skip := "# SKIP"
			if why := ktapText(l.reason); why != "" {
				skip += " " + why
			}
			fmt.Fprintf(w, "        ok %d %s %s\n", i+1, l.key, skip)
		default:
			fmt.Fprintf(w, "        not ok %d %s\n", i+1, l.key)
		}
	}
}
