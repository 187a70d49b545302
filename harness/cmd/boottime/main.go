// Command boottime prints where the boots of a run went: from the newest
// run under a results directory that ran the scenario (default boot), per
// variant, the median and 95th percentile of each boot phase the runner
// recorded (results.BootPhases: QEMU start -> first console byte -> the
// kernel runs /init -> the agent's ready marker -> the SSH handshake done)
// and of the whole (figures.boot_s), and the wait after it for the guest's
// clocksource to settle before a stress phase may start. It boots nothing; `make bench` runs
// it, after `oomlab run boot --repeat 10` when OOMLAB_BENCH_RUN=1.
//
//	boottime [-results DIR] [SCENARIO]
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"text/tabwriter"

	"gonum.org/v1/gonum/stat"

	"oomlab/harness/internal/results"
)

func main() {
	dir := flag.String("results", "results", "the results directory (one run-id directory per run)")
	flag.Parse()
	scenario := "boot"
	if flag.NArg() > 0 {
		scenario = flag.Arg(0)
	}
	if err := report(os.Stdout, *dir, scenario); err != nil {
		fmt.Fprintln(os.Stderr, "boottime:", err)
		os.Exit(2)
	}
}

// phase is one column: its name and how to read it from a result.
type phase struct {
	name string
	get  func(*results.Result) float64
}

var phases = []phase{
	{"qemu+firmware", func(r *results.Result) float64 { return r.Boot.FirmwareS }},
	{"kernel", func(r *results.Result) float64 { return r.Boot.KernelS }},
	{"agent start", func(r *results.Result) float64 { return r.Boot.InitS }},
	{"ssh", func(r *results.Result) float64 { return r.Boot.ConnectS }},
	{"total", func(r *results.Result) float64 { return r.Figures.BootSeconds }},
	// After the boot, before any stress: the wait for the clocksource
	// to leave tsc-early (scenario/clock.go).
	{"+clock settle", func(r *results.Result) float64 { return r.Boot.ClockS }},
}

// quantile is the empirical p-quantile of xs.
func quantile(p float64, xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return stat.Quantile(p, stat.Empirical, s, nil)
}

func report(w io.Writer, dir, scenario string) error {
	path, run, err := results.Newest(dir, func(res *results.Result) bool { return res.Scenario == scenario && res.Boot != nil })
	if err != nil {
		return err
	}
	if run == nil {
		fmt.Fprintf(w, "boottime: no run of %s with boot phases under %s (OOMLAB_BENCH_RUN=1 make bench runs one)\n", scenario, dir)
		return nil
	}
	fmt.Fprintf(w, "%s: QEMU start -> agent answering, seconds, median / p95, from %s\n", scenario, path)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "VARIANT\tACCEL\tBOOTS")
	for _, p := range phases {
		fmt.Fprintf(tw, "\t%s", p.name)
	}
	fmt.Fprintln(tw)
	var variants []string
	by := map[string][]*results.Result{}
	for _, res := range run.Results {
		if res.Scenario != scenario || res.Boot == nil || res.Figures.BootSeconds <= 0 {
			continue
		}
		if by[res.Variant] == nil {
			variants = append(variants, res.Variant)
		}
		by[res.Variant] = append(by[res.Variant], res)
	}
	for _, v := range variants {
		rs := by[v]
		fmt.Fprintf(tw, "%s\t%s\t%d", v, rs[0].Accel, len(rs))
		for _, p := range phases {
			xs := make([]float64, len(rs))
			for i, r := range rs {
				xs[i] = p.get(r)
			}
			fmt.Fprintf(tw, "\t%.2f / %.2f", quantile(0.5, xs), quantile(0.95, xs))
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}
