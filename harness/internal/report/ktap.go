package report

import (
	"fmt"
	"io"
	"strings"

	"oomlab/harness/internal/scenario"
)

// group is all repeats of one scenario on one variant, in run order.
type group struct {
	name    string // scenario.variant
	results []*scenario.Result
}

func groups(r *Run) []group {
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
func KTAP(w io.Writer, r *Run) {
	gs := groups(r)
	fmt.Fprintf(w, "KTAP version 1\n# oomlab %s run %s\n1..%d\n", r.Version, r.ID, len(gs))
	for i, g := range gs {
		fmt.Fprintf(w, "    KTAP version 1\n    # Subtest: %s\n    1..%d\n", g.name, len(g.results))
		ok := true
		for j, res := range g.results {
			f := res.Figures
			fmt.Fprintf(w, "    # repeat %d: %d OOM events, %d kills, %d reaped, %d handed over, %d lockups, boot %.2fs, alive %v\n",
				res.Repeat, f.OOMEvents, f.OOMKills, f.Reaped, f.HandedOver, f.Lockups, f.BootSeconds, f.GuestAlive)
			for _, msg := range res.Failures {
				fmt.Fprintf(w, "    # %s\n", ktapText(msg))
			}
			switch res.Verdict {
			case "pass":
				fmt.Fprintf(w, "    ok %d repeat-%d\n", j+1, res.Repeat)
			case "error":
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
}
