package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/prometheus/procfs"
	"github.com/spf13/cobra"

	"oomlab"
	"oomlab/harness/internal/compare"
	"oomlab/harness/internal/grid"
	"oomlab/harness/internal/kbuild"
	"oomlab/harness/internal/report"
	"oomlab/harness/internal/results"
	"oomlab/harness/internal/scenario"
	"oomlab/harness/internal/selftests"
	"oomlab/harness/internal/suite"
)

func newRunCmd() *cobra.Command {
	var (
		k          kernelFlags
		variants   string
		repeat     int
		resultsDir string
		accel      string
		qemu       string
		binDir     string
		shard      string
		jobs       string
	)
	c := &cobra.Command{
		Use:   "run [SCENARIO|FILE.yaml|SET...]",
		Short: "boot guests and run scenarios; results go to results/<run-id>/",
		Long: "run builds (or takes from the cache) the kernels, boots one QEMU guest per scenario, variant\n" +
			"and repeat, runs the scenario's stressors and checks its expectations.\n" +
			"Sets (default quick):\n" + setsHelp() +
			"Exit status: 0 all expectations held, 1 one failed, 2 usage or infrastructure error.",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = []string{"quick"}
			}
			if repeat < 0 || repeat > 10000 {
				return &exitError{2, fmt.Errorf("--repeat %d out of range 1..10000", repeat)}
			}
			if accel != "auto" && accel != "kvm" && accel != "tcg" {
				return &exitError{2, fmt.Errorf("--accel %q: want auto, kvm or tcg", accel)}
			}
			njobs, auto, err := suite.ParseJobs(jobs)
			if err != nil {
				return &exitError{2, err}
			}
			var sh suite.Shard
			if shard != "" {
				if sh, err = suite.ParseShard(shard); err != nil {
					return &exitError{2, err}
				}
			}
			if _, err := exec.LookPath(qemu); err != nil {
				return &exitError{2, fmt.Errorf("QEMU binary %q not found (apt-get install qemu-system-x86, or pass --qemu PATH)", qemu)}
			}
			b, err := builtin()
			if err != nil {
				return err
			}
			scs, err := b.Resolve(args)
			if err != nil {
				return &exitError{2, err}
			}
			req, err := k.request(variants)
			if err != nil {
				return err
			}
			agentBin, stressors, err := guestBinaries(binDir)
			if err != nil {
				return err
			}
			// Only build the variants some scenario will run.
			plan := suite.NewPlan(scs, req, repeat)
			if len(plan.Variants) == 0 {
				return &exitError{2, fmt.Errorf("no scenario runs any of the variants %v", req.Want)}
			}
			plan.Shard = sh
			if plan.Budget, err = jobsBudget(njobs, auto); err != nil {
				return &exitError{2, err}
			}
			if sh.Count > 0 {
				fmt.Fprintf(os.Stderr, "shard %s: %d of the suite's %d guest runs\n", sh, plan.Guests(), len(plan.Units()))
			}
			ctx := cmd.Context()
			// A shard builds only the kernels its own guest runs boot.
			kernels, err := buildKernels(ctx, &k, plan.ShardVariants())
			if err != nil {
				return err
			}

			// Upstream selftests, from each variant's own tree, only
			// when a scenario runs one.
			var tests map[string]*selftests.Set
			if len(selftests.Used(scs)) > 0 {
				if tests, err = buildSelftests(ctx, &k, plan.ShardVariants()); err != nil {
					return err
				}
				plan.RunGuest = selftests.Wrap(tests, plan.RunGuest)
			}

			rec := &results.Run{Version: version, Host: suite.HostInfo(qemu), Shard: plan.ShardRecord()}
			if plan.Budget.Guests > 1 {
				rec.Jobs = plan.Budget.String()
			}
			env := scenario.Env{Kernels: map[string]string{}, Configs: map[string]string{}, AgentBin: agentBin, Stressors: stressors, QEMU: qemu, Accel: accel,
				Log: func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }}
			for _, v := range plan.ShardVariants() {
				kr := kernels[v]
				env.Kernels[v] = kr.BzImage
				env.Configs[v] = kr.Config
				rec.Kernels = append(rec.Kernels, results.Kernel{Variant: v, Release: kr.KernelRelease, Key: kr.Key, Cached: kr.Cached, BzImage: kr.BzImage, SourceID: kr.SourceID,
					Compiler: kr.Compiler, Patches: recordPatches(kr.Patches), Selftests: selftestRecord(tests[v])})
			}
			if env.Dir, err = suite.Create(resultsDir, rec); err != nil {
				return &exitError{2, err}
			}
			fmt.Fprintf(os.Stderr, "results: %s\n", env.Dir)
			if plan.Budget.Guests > 1 {
				fmt.Fprintf(os.Stderr, "jobs: %s\n", plan.Budget)
			}
			// A live line per running guest on a terminal (stdout and
			// stderr both, CI unset); log lines otherwise.
			var view suite.View
			if isTerminal(os.Stdout) && isTerminal(os.Stderr) {
				view = suite.NewBarView(os.Stderr)
				env.Log = view.Log
			}
			if err := suite.Run(ctx, env, rec, plan, view); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return &exitError{2, err}
			}
			return summary(rec, env.Dir)
		},
	}
	k.add(c, "build-jobs")
	c.Flags().StringVar(&jobs, "jobs", "1", "guests run at once: N, or auto (host cores x 2 in vCPUs, 3/4 of MemAvailable); within that budget either way, and timing-sensitive scenarios alone")
	c.Flags().StringVar(&variants, "variants", "all", "baseline, patched, patched:N (first N patches), a comma list, all (what each scenario lists) or bisect (baseline and every prefix of the series)")
	c.Flags().IntVar(&repeat, "repeat", 0, "repeats per scenario and variant (default: the scenario's own)")
	c.Flags().StringVar(&resultsDir, "results", "results", "where run directories are created")
	c.Flags().StringVar(&accel, "accel", "auto", "auto (KVM when it works, else TCG), kvm or tcg")
	c.Flags().StringVar(&qemu, "qemu", "qemu-system-x86_64", "QEMU binary")
	c.Flags().StringVar(&shard, "shard", "", "run only shard i of n (e.g. 2/4): a deterministic part of the guest runs, the same on every machine; join the shards with 'oomlab merge'")
	c.Flags().StringVar(&binDir, "bin-dir", "", "directory with oomlab-agent and stressors/ (default: next to the oomlab binary)")
	return c
}

// jobsBudget is the budget of --jobs: n guests (auto: as many as the
// budget holds) within this host's cores and MemAvailable.
func jobsBudget(n int, auto bool) (suite.Budget, error) {
	if n == 1 && !auto {
		return suite.Budget{Guests: 1}, nil // serial: no bound to read
	}
	mi, err := procfs.NewDefaultFS()
	var mem *uint64
	if err == nil {
		var m procfs.Meminfo
		if m, err = mi.Meminfo(); err == nil {
			mem = m.MemAvailable
		}
	}
	if err == nil && mem == nil {
		err = errors.New("no MemAvailable line")
	}
	if err != nil {
		return suite.Budget{}, fmt.Errorf("--jobs: cannot read MemAvailable from /proc/meminfo (%v); run with --jobs 1", err)
	}
	avail := int(*mem / 1024)
	if auto {
		return suite.AutoBudget(runtime.NumCPU(), avail), nil
	}
	return suite.FixedBudget(n, runtime.NumCPU(), avail), nil
}

// summary prints what 'oomlab report' prints and where the run is, and
// maps the run's verdict to the exit status (a run that is not complete,
// a merge with --allow-partial, by the worst of its guest runs).
func summary(rec *results.Run, dir string) error {
	printText(rec)
	fmt.Printf("\nresults: %s/run.json\nreport:  %s/report.html\n", dir, dir)
	v := rec.Verdict
	if !rec.Complete {
		v = rec.ComputeVerdict()
	}
	switch v {
	case results.Fail:
		return errExpectation
	case results.Error:
		return &exitError{2, fmt.Errorf("some guest runs failed to complete; see %s/run.json", dir)}
	}
	return nil
}

// builtin loads the scenarios and sets compiled into oomlab.
func builtin() (*suite.Builtin, error) {
	b, err := suite.LoadBuiltin(oomlab.Assets)
	if err != nil {
		return nil, &exitError{2, fmt.Errorf("built-in scenarios: %v", err)}
	}
	return b, nil
}

// setsHelp lists every built-in set for the help text, one a line.
func setsHelp() string {
	b, err := builtin()
	if err != nil {
		return "  (" + err.Error() + ")\n"
	}
	var s strings.Builder
	for _, set := range b.Sets {
		fmt.Fprintf(&s, "  %-10s %s\n", set.Name, strings.Join(set.Scenarios, ", "))
	}
	return s.String()
}

// guestBinaries finds the agent and the stressors built by 'make build'.
func guestBinaries(dir string) (string, []string, error) {
	if dir == "" {
		exe, err := os.Executable()
		if err != nil {
			return "", nil, err
		}
		dir = filepath.Dir(exe)
	}
	agentBin := filepath.Join(dir, "oomlab-agent")
	if _, err := os.Stat(agentBin); err != nil {
		return "", nil, &exitError{2, fmt.Errorf("guest agent %s not found (run 'make build', or pass --bin-dir)", agentBin)}
	}
	stressors, _ := filepath.Glob(filepath.Join(dir, "stressors", "*"))
	if len(stressors) == 0 {
		return "", nil, &exitError{2, fmt.Errorf("no stressors in %s/stressors (run 'make build', or pass --bin-dir)", dir)}
	}
	return agentBin, stressors, nil
}

// recordPatches is the run record's copy of the patches a kernel applied.
func recordPatches(ps []kbuild.PatchID) []results.Patch {
	var out []results.Patch
	for _, p := range ps {
		out = append(out, results.Patch{Name: p.Name, SHA256: p.SHA256})
	}
	return out
}

// printText prints a run as 'oomlab report' does: the guest runs, the
// variants side by side, the figures that differ, the comparisons with
// their statistics, and the sweep grids.
func printText(rec *results.Run) {
	report.Table(os.Stdout, rec)
	fmt.Println()
	report.Compare(os.Stdout, rec)
	fmt.Println()
	report.Differences(os.Stdout, rec)
	fmt.Println()
	report.Comparisons(os.Stdout, compare.Within(rec))
	if len(grid.Grids(rec)) > 0 {
		fmt.Println()
		grid.Table(os.Stdout, rec)
	}
}
