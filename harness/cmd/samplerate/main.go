// Command samplerate prints how fast a scenario yields latency samples:
// from the newest run under a results directory that ran the scenario, per
// variant, the OOM -> freed samples (oom_to_freed_ms of every guest run),
// the guest runs and their wall time, and samples per boot, per minute and
// per hour of guest wall time (boot, rounds and teardown included). It
// boots nothing; `make bench` runs it after the scanner benchmarks.
//
//	samplerate [-results DIR] [SCENARIO]    (default: tetsuo-rt-idle)
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"oomlab/harness/internal/results"
)

func main() {
	dir := flag.String("results", "results", "the results directory (one run-id directory per run)")
	flag.Parse()
	scenario := "tetsuo-rt-idle"
	if flag.NArg() > 0 {
		scenario = flag.Arg(0)
	}
	if err := report(os.Stdout, *dir, scenario); err != nil {
		fmt.Fprintln(os.Stderr, "samplerate:", err)
		os.Exit(2)
	}
}

// Rate is one variant's sample rate in one run.
type Rate struct {
	Variant string
	Boots   int     // guest runs
	Rounds  int     // rounds that ran, over every guest run
	Samples int     // oom_to_freed_ms samples
	WallS   float64 // guest wall time, summed
}

// PerHour is samples per hour of guest wall time.
func (r Rate) PerHour() float64 {
	if r.WallS <= 0 {
		return 0
	}
	return float64(r.Samples) * 3600 / r.WallS
}

// Rates are the sample rates of a scenario in a run, by variant in the
// order the run has them.
func Rates(run *results.Run, scenario string) []Rate {
	var out []Rate
	idx := map[string]int{}
	for _, res := range run.Results {
		if res.Scenario != scenario {
			continue
		}
		i, ok := idx[res.Variant]
		if !ok {
			i = len(out)
			idx[res.Variant] = i
			out = append(out, Rate{Variant: res.Variant})
		}
		r := &out[i]
		r.Boots++
		r.Rounds += max(len(res.Rounds), 1)
		r.Samples += len(res.Figures.OOMToFreedMs)
		r.WallS += res.WallS
	}
	return out
}

func report(w io.Writer, dir, scenario string) error {
	path, run, err := results.Newest(dir, func(res *results.Result) bool { return res.Scenario == scenario })
	if err != nil {
		return err
	}
	if run == nil {
		fmt.Fprintf(w, "samplerate: no run of %s under %s (OOMLAB_BENCH_RUN=1 make bench runs one)\n", scenario, dir)
		return nil
	}
	state := ""
	if !run.Complete {
		state = " (incomplete)"
	}
	fmt.Fprintf(w, "%s: OOM -> freed samples per hour of guest time, from %s%s\n", scenario, path, state)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIANT\tBOOTS\tROUNDS\tSAMPLES\tWALL s\tSAMPLES/BOOT\tSAMPLES/MIN\tSAMPLES/HOUR")
	for _, r := range Rates(run, scenario) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.0f\n", r.Variant, r.Boots, r.Rounds, r.Samples, r.WallS,
			float64(r.Samples)/float64(r.Boots), r.PerHour()/60, r.PerHour())
	}
	return tw.Flush()
}
