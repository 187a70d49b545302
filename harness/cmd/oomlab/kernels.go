package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"oomlab"
	"oomlab/harness/internal/kbuild"
)

// kernelFlags are the flags every command that needs kernels shares.
type kernelFlags struct {
	kernelSrc string
	patches   string
	cache     string
	jobs      int
	jobsFlag  string // its name: --jobs on build, --build-jobs on run (whose --jobs is guests)
	kconfig   []string
}

// add registers the flags on c; jobsFlag names the compile jobs' flag.
func (k *kernelFlags) add(c *cobra.Command, jobsFlag string) {
	c.Flags().StringVar(&k.kernelSrc, "kernel-src", "", "kernel tree to build (default: Debian's linux-source-6.12, installed and unpacked on demand)")
	c.Flags().StringVar(&k.patches, "patches", "", "patch series directory with a 'series' file (default: the series built into oomlab)")
	c.Flags().StringVar(&k.cache, "cache", "", "cache directory (default: $XDG_CACHE_HOME/oomlab or ~/.cache/oomlab)")
	k.jobsFlag = jobsFlag
	c.Flags().IntVar(&k.jobs, jobsFlag, runtime.NumCPU(), "parallel compile jobs")
	c.Flags().StringArrayVar(&k.kconfig, "kconfig", nil, "kconfig fragment FILE, or DIR of *.config fragments, merged after the built-in ones (e.g. kconfig/debug.config: lockdep, KASAN); repeatable")
}

// sources returns the BASE file, the series and the kconfig fragments.
func (k *kernelFlags) sources() ([]byte, fs.FS, []kbuild.Fragment, error) {
	if k.jobs < 1 || k.jobs > 1024 {
		return nil, nil, nil, &exitError{2, fmt.Errorf("--%s %d out of range 1..1024 (parallel compile jobs)", k.jobsFlag, k.jobs)}
	}
	var series fs.FS
	if k.patches != "" {
		st, err := os.Stat(k.patches)
		if err != nil || !st.IsDir() {
			return nil, nil, nil, &exitError{2, fmt.Errorf("--patches %s: not a directory (give the directory holding 'series')", k.patches)}
		}
		if _, err := os.Stat(path.Join(k.patches, "series")); err != nil {
			return nil, nil, nil, &exitError{2, fmt.Errorf("--patches %s: no 'series' file (list the patches in order, one per line)", k.patches)}
		}
		series = os.DirFS(k.patches)
	} else {
		sub, err := fs.Sub(oomlab.Assets, "patches")
		if err != nil {
			return nil, nil, nil, err
		}
		series = sub
	}
	base, err := fs.ReadFile(oomlab.Assets, "patches/BASE")
	if err != nil {
		return nil, nil, nil, err
	}
	if b, err := fs.ReadFile(series, "BASE"); err == nil {
		base = b
	}
	names, err := fs.Glob(oomlab.Assets, "kconfig/*.config")
	if err != nil {
		return nil, nil, nil, err
	}
	sort.Strings(names)
	var frags []kbuild.Fragment
	for _, n := range names {
		// debug.config (lockdep, KASAN) is opt-in: it makes TCG guests slow.
		if strings.HasSuffix(n, "/debug.config") {
			continue
		}
		data, err := fs.ReadFile(oomlab.Assets, n)
		if err != nil {
			return nil, nil, nil, err
		}
		frags = append(frags, kbuild.Fragment{Name: n, Data: data})
	}
	for _, p := range k.kconfig {
		user, err := userFragments(p)
		if err != nil {
			return nil, nil, nil, &exitError{2, fmt.Errorf("--kconfig: %v", err)}
		}
		frags = append(frags, user...)
	}
	return base, series, frags, nil
}

// userFragments reads --kconfig FILE|DIR: from the file system, or, when
// no such path exists there, from the fragments built into oomlab (so that
// kconfig/debug.config works from any directory).
func userFragments(p string) ([]kbuild.Fragment, error) {
	if _, err := os.Stat(p); err == nil {
		return kbuild.ReadFragments(p)
	}
	name := path.Clean(p)
	st, err := fs.Stat(oomlab.Assets, name)
	if err != nil || !strings.HasPrefix(name, "kconfig/") {
		return kbuild.ReadFragments(p) // the error names the file
	}
	files := []string{name}
	if st.IsDir() {
		files, _ = fs.Glob(oomlab.Assets, path.Join(name, "*.config"))
	}
	var out []kbuild.Fragment
	for _, f := range files {
		data, err := fs.ReadFile(oomlab.Assets, f)
		if err != nil {
			return nil, err
		}
		frag := kbuild.Fragment{Name: f, Data: data}
		if err := kbuild.CheckFragment(frag); err != nil {
			return nil, err
		}
		out = append(out, frag)
	}
	return out, nil
}

// buildKernels builds (or finds in the cache) one kernel per variant.
func buildKernels(ctx context.Context, k *kernelFlags, variants []string) (map[string]*kbuild.Result, error) {
	base, series, frags, err := k.sources()
	if err != nil {
		return nil, err
	}
	cache := cacheDir(k.cache)
	out := map[string]*kbuild.Result{}
	for _, v := range variants {
		prog := newBuildProgress(v)
		res, err := kbuild.Build(ctx, kbuild.Options{
			CacheDir: cache, KernelSrc: k.kernelSrc, BaseFile: base, Series: series,
			Variant: v, Fragments: frags, Jobs: k.jobs, Progress: prog.update,
			AllowInstall: os.Geteuid() == 0,
		})
		prog.done(res, err)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, &exitError{2, fmt.Errorf("build %s kernel: %v", v, err)}
		}
		out[v] = res
	}
	return out, nil
}

// buildProgress shows a kernel build: a live spinner line on a terminal,
// one line per phase (and every 30 s) in logs and CI.
type buildProgress struct {
	variant  string
	tty      bool
	p        *mpb.Progress
	bar      *mpb.Bar
	status   atomic.Value // kbuild.Status
	phase    string
	lastLine time.Time
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0 && os.Getenv("CI") == ""
}

func newBuildProgress(variant string) *buildProgress {
	b := &buildProgress{variant: variant, tty: isTerminal(os.Stderr)}
	b.status.Store(kbuild.Status{Phase: "starting"})
	if b.tty {
		b.p = mpb.New(mpb.WithOutput(os.Stderr), mpb.WithWidth(16))
		b.bar = b.p.New(0, mpb.SpinnerStyle(),
			mpb.PrependDecorators(decor.Name("kernel "+variant+" ")),
			mpb.AppendDecorators(decor.Any(func(decor.Statistics) string {
				st := b.status.Load().(kbuild.Status)
				return fmt.Sprintf(" %-10s %6s  %5d files", st.Phase, st.Elapsed.Truncate(time.Second), st.Compiled)
			})),
			mpb.BarFillerClearOnComplete(),
		)
	}
	return b
}

func (b *buildProgress) update(st kbuild.Status) {
	b.status.Store(st)
	if b.tty {
		return
	}
	if st.Phase != b.phase || time.Since(b.lastLine) > 30*time.Second {
		b.phase, b.lastLine = st.Phase, time.Now()
		fmt.Fprintf(os.Stderr, "kernel %s: %s (%s, %d files compiled)\n", b.variant, st.Phase, st.Elapsed.Truncate(time.Second), st.Compiled)
	}
}

func (b *buildProgress) done(res *kbuild.Result, err error) {
	if b.tty {
		if err != nil {
			b.bar.Abort(false)
		} else {
			b.bar.SetTotal(-1, true)
		}
		b.p.Wait()
	}
	if err == nil {
		how := fmt.Sprintf("built in %s", res.Duration.Truncate(time.Second))
		if res.Cached {
			how = "cache hit"
		}
		fmt.Fprintf(os.Stderr, "kernel %s: %s %s (%s)\n", b.variant, res.KernelRelease, how, res.BzImage)
		if res.Pruned != "" {
			fmt.Fprintln(os.Stderr, res.Pruned)
		}
	}
}

func newBuildCmd() *cobra.Command {
	var k kernelFlags
	var variant string
	c := &cobra.Command{
		Use:   "build",
		Short: "build the baseline and/or patched kernel (cached by content hash)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req, err := k.request(variant)
			if err != nil {
				return err
			}
			_, err = buildKernels(cmd.Context(), &k, req.Want)
			return err
		},
	}
	k.add(c, "jobs")
	c.Flags().StringVar(&variant, "variant", "all", "baseline, patched, patched:N (first N patches), a comma list, all (patched only when the series is not empty) or bisect (baseline and every prefix of the series)")
	return c
}

// request reads --variant/--variants against the series in use.
func (k *kernelFlags) request(s string) (kbuild.Request, error) {
	_, series, _, err := k.sources()
	if err != nil {
		return kbuild.Request{}, err
	}
	req, err := kbuild.ParseRequest(s, series)
	if err != nil {
		return kbuild.Request{}, &exitError{2, err}
	}
	return req, nil
}
