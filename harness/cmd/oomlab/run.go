package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"oomlab"
	"oomlab/harness/internal/kbuild"
	"oomlab/harness/internal/report"
	"oomlab/harness/internal/scenario"
)

// sets are named groups of scenarios.
var sets = map[string][]string{
	"quick": {"smoke", "idle"},
	// patches: one scenario per behaviour of the series, in series order
	// (see README, "What proves each patch").
	"patches": {"rt-idle-handoff", "exit-mmap-starved", "tetsuo-rt-idle", "frozen-threadgroup",
		"clone-vm-sharers", "oom-score-adj-consistency", "vfork-parent", "memcg-oom-group"},
	"selftest": {"detector-selftest", "detector-hardlockup"},
	// cost: what a faster OOM path may break or slow down for everybody
	// else (issue #12); a patched variant worse than baseline fails.
	"cost": {"robust-futex-waiter", "robust-futex-waiter-starved", "memcg-storm",
		"shmem-victim", "oom-lock-hold", "suspend-with-victim"},
}

func newRunCmd() *cobra.Command {
	var (
		k        kernelFlags
		variants string
		repeat   int
		results  string
		accel    string
		qemu     string
		binDir   string
	)
	c := &cobra.Command{
		Use:   "run [SCENARIO|FILE.yaml|SET...]",
		Short: "boot guests and run scenarios; results go to results/<run-id>/",
		Long: "run builds (or takes from the cache) the kernels, boots one QEMU guest per scenario, variant\n" +
			"and repeat, runs the scenario's stressors and checks its expectations.\n" +
			"Sets: quick (smoke, idle). Exit status: 0 all expectations held, 1 one failed, 2 usage or infrastructure error.",
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
			if _, err := exec.LookPath(qemu); err != nil {
				return &exitError{2, fmt.Errorf("QEMU binary %q not found (apt-get install qemu-system-x86, or pass --qemu PATH)", qemu)}
			}
			scs, err := resolveScenarios(args)
			if err != nil {
				return err
			}
			want, err := parseVariants(variants, &k)
			if err != nil {
				return err
			}
			agentBin, stressors, err := guestBinaries(binDir)
			if err != nil {
				return err
			}
			// Only build the variants some scenario will run; "all" also
			// takes the series prefixes (patched:N) scenarios ask for.
			vlist, selected := planVariants(scs, want, variants == "all")
			if len(vlist) == 0 {
				return &exitError{2, fmt.Errorf("no scenario runs any of the variants %v", want)}
			}
			ctx := cmd.Context()
			kernels, err := buildKernels(ctx, &k, vlist)
			if err != nil {
				return err
			}

			id := time.Now().UTC().Format("20060102-150405") + "-" + randHex(3)
			dir := filepath.Join(results, id)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return &exitError{2, fmt.Errorf("results directory: %v", err)}
			}
			run := &report.Run{Schema: report.SchemaVersion, Version: version, ID: id, Started: time.Now(), Host: hostInfo(qemu)}
			env := scenario.Env{Kernels: map[string]string{}, AgentBin: agentBin, Stressors: stressors, QEMU: qemu, Accel: accel, Dir: dir,
				Log: func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }}
			for _, v := range vlist {
				kr := kernels[v]
				env.Kernels[v] = kr.BzImage
				run.Kernels = append(run.Kernels, report.Kernel{Variant: v, Release: kr.KernelRelease, Key: kr.Key, Cached: kr.Cached, BzImage: kr.BzImage, SourceID: kr.SourceID})
			}
			if err := report.Save(dir, run); err != nil {
				return &exitError{2, err}
			}
			fmt.Fprintf(os.Stderr, "results: %s\n", dir)
			for _, sc := range scs {
				n := sc.Repeats
				if repeat > 0 {
					n = repeat
				}
				for _, v := range vlist {
					if !selected(sc, v) {
						continue
					}
					for i := 1; i <= n && ctx.Err() == nil; i++ {
						res := scenario.Run(ctx, env, sc, v, i)
						run.Results = append(run.Results, res)
						if err := report.Save(dir, run); err != nil {
							return &exitError{2, err}
						}
						fmt.Fprintf(os.Stderr, "%s/%s#%d: %s\n", sc.Name, v, i, strings.ToUpper(res.Verdict))
					}
				}
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			now := time.Now()
			run.Finished, run.Complete, run.Verdict = &now, true, run.ComputeVerdict()
			if err := report.Save(dir, run); err != nil {
				return &exitError{2, err}
			}
			report.Table(os.Stdout, run)
			fmt.Println()
			report.Compare(os.Stdout, run)
			fmt.Println()
			report.Differences(os.Stdout, run)
			fmt.Printf("\nresults: %s/run.json\n", dir)
			switch run.Verdict {
			case "fail":
				return errExpectation
			case "error":
				return &exitError{2, fmt.Errorf("some guest runs failed to complete; see %s/run.json", dir)}
			}
			return nil
		},
	}
	k.add(c)
	c.Flags().StringVar(&variants, "variants", "all", "baseline, patched, patched:N (first N patches), a comma list, all (what each scenario lists) or bisect (baseline and every prefix of the series)")
	c.Flags().IntVar(&repeat, "repeat", 0, "repeats per scenario and variant (default: the scenario's own)")
	c.Flags().StringVar(&results, "results", "results", "where run directories are created")
	c.Flags().StringVar(&accel, "accel", "auto", "auto (KVM when it works, else TCG), kvm or tcg")
	c.Flags().StringVar(&qemu, "qemu", "qemu-system-x86_64", "QEMU binary")
	c.Flags().StringVar(&binDir, "bin-dir", "", "directory with oomlab-agent and stressors/ (default: next to the oomlab binary)")
	return c
}

// planVariants decides which variants each scenario runs on: what the
// scenario lists and the user asked for (with "all", its patched:N too when
// the series is not empty), and a prefix of the series asked for by name
// wherever the whole series runs (smoke on every prefix with --variants
// bisect). It returns the kernels to build, in reading order.
func planVariants(scs []*scenario.Scenario, want []string, all bool) ([]string, func(*scenario.Scenario, string) bool) {
	selected := func(sc *scenario.Scenario, v string) bool {
		if slices.Contains(sc.Variants, v) && (slices.Contains(want, v) || (all && slices.Contains(want, "patched") && strings.HasPrefix(v, "patched:"))) {
			return true
		}
		return slices.Contains(want, v) && strings.HasPrefix(v, "patched:") && slices.Contains(sc.Variants, "patched")
	}
	need := map[string]bool{}
	for _, sc := range scs {
		for _, v := range append(append([]string(nil), sc.Variants...), want...) {
			if selected(sc, v) {
				need[v] = true
			}
		}
	}
	return sortVariants(need), selected
}

// sortVariants orders variants the way a reader compares them: baseline,
// then growing prefixes of the series, then the whole series.
func sortVariants(set map[string]bool) []string {
	rank := func(v string) int {
		switch _, n, _ := kbuild.ParseVariant(v); {
		case v == "baseline":
			return 0
		case n > 0:
			return n
		}
		return 1 << 20
	}
	var out []string
	for v := range set {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return rank(out[i]) < rank(out[j]) })
	return out
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// builtinScenarios loads the scenarios compiled into oomlab.
func builtinScenarios() (map[string]*scenario.Scenario, error) {
	return scenario.LoadDir(oomlab.Assets, "scenarios")
}

// resolveScenarios turns names, set names and file paths into scenarios.
func resolveScenarios(args []string) ([]*scenario.Scenario, error) {
	builtin, err := builtinScenarios()
	if err != nil {
		return nil, &exitError{2, fmt.Errorf("built-in scenarios: %v", err)}
	}
	var out []*scenario.Scenario
	seen := map[string]bool{}
	add := func(s *scenario.Scenario) {
		if !seen[s.Name] {
			seen[s.Name] = true
			out = append(out, s)
		}
	}
	for _, a := range args {
		switch {
		case strings.HasSuffix(a, ".yaml") || strings.HasSuffix(a, ".yml"):
			data, err := os.ReadFile(a)
			if err != nil {
				return nil, &exitError{2, fmt.Errorf("scenario file: %v", err)}
			}
			s, err := scenario.Parse(a, data)
			if err != nil {
				return nil, &exitError{2, err}
			}
			add(s)
		case sets[a] != nil:
			for _, n := range sets[a] {
				add(builtin[n])
			}
		case builtin[a] != nil:
			add(builtin[a])
		default:
			return nil, &exitError{2, fmt.Errorf("unknown scenario %q (known: %s; sets: quick; or give a .yaml file)", a, strings.Join(names(builtin), ", "))}
		}
	}
	return out, nil
}

func names(m map[string]*scenario.Scenario) []string {
	var n []string
	for k := range m {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
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

func hostInfo(qemu string) report.Host {
	h := report.Host{CPUs: runtime.NumCPU()}
	h.Name, _ = os.Hostname()
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		h.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int
		fmt.Sscanf(string(b), "MemTotal: %d kB", &kb)
		h.MemMB = kb / 1024
	}
	if out, err := exec.Command(qemu, "--version").Output(); err == nil {
		h.QEMU = strings.SplitN(string(out), "\n", 2)[0]
	}
	return h
}
