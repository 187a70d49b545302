// Package stressortest tests the command lines of the static C stressors in
// stressors/. It builds them with make into a temporary directory and runs
// them on the host: --help, an unknown option, bad and missing values, and a
// few real runs that allocate a bounded amount of memory and end by
// themselves.
//
// Host safety: rthog is never allowed to reach its SCHED_FIFO busy loop,
// and nothing runs that allocates without a bound. Every command line starts
// with guard options (see guard) chosen so that, were the option under test
// wrongly accepted or ignored, the program would fail early, exit, or sleep
// on a few MiB until the timeout kills its whole process group.
package stressortest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runTimeout bounds every run; the machine may be busy building kernels.
const runTimeout = 30 * time.Second

// guard holds, per program, options that bound a run if parsing goes wrong.
// rthog's --cpu 1023 makes sched_setaffinity fail (exit 1) before it turns
// SCHED_FIFO, on any host with fewer than 1024 CPUs.
var guard = map[string][]string{
	"memhog":     {"--mb", "1", "--chunk-mb", "1"},
	"rthog":      {"--cpu", "1023"},
	"idlevictim": {"--mb", "1", "--chunk-mb", "1", "--hold"},
	"threadhog":  {"--threads", "1", "--mb", "1", "--chunk-mb", "1", "--hold"},
	"clonevm":    {"--children", "1", "--mb", "1", "--hold"},
	"vforker":    {"--mb", "1", "--rounds", "1"},
	// robustmutex: a waiter on a file that cannot exist gives up at once.
	"robustmutex": {"--waiter", "--file", "/nonexistent-oomlab/robust", "--start-s", "0"},
	// oomloop: one round of a child allocating 1 MiB (no OOM on a host).
	"oomloop": {"--mb", "1", "--rounds", "1", "--pause-ms", "0"},
	// timedwrite takes FILE VALUE last; with no FILE it only parses.
	"timedwrite": nil,
}

var programs = []string{"memhog", "rthog", "idlevictim", "threadhog", "clonevm", "vforker",
	"robustmutex", "oomloop", "timedwrite"}

type result struct {
	code           int
	stdout, stderr string
}

// build compiles the stressors into a temporary directory.
func build(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("gcc not found")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make not found")
	}
	if runtime.NumCPU() >= 1024 {
		t.Skip("rthog's guard needs a host with fewer than 1024 CPUs")
	}
	src, err := filepath.Abs("../../stressors")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	cmd := exec.Command("make", "--no-print-directory", "-C", src, "OUT="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make: %v\n%s", err, b)
	}
	return out
}

// run runs one stressor in its own process group; on timeout the whole
// group is killed (clonevm's CLONE_VM children are processes of their own).
func run(t *testing.T, dir, prog string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(dir, prog), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if errors.Is(err, exec.ErrWaitDelay) {
		// The program ended but left children holding its output.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		t.Errorf("%s %q: left children behind", prog, args)
	}
	if ctx.Err() != nil {
		t.Fatalf("%s %q: still running after %v (stdout %q, stderr %q)",
			prog, args, runTimeout, stdout.String(), stderr.String())
	}
	r := result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
	if r.code < 0 {
		t.Fatalf("%s %q: %v (stderr %q)", prog, args, cmd.ProcessState, r.stderr)
	}
	return r
}

func guarded(prog string, args ...string) []string {
	return append(append([]string(nil), guard[prog]...), args...)
}

func TestStressors(t *testing.T) {
	dir := build(t)

	t.Run("help", func(t *testing.T) {
		for _, prog := range programs {
			for _, h := range []string{"--help", "-h"} {
				r := run(t, dir, prog, guarded(prog, h)...)
				if r.code != 0 || !strings.HasPrefix(r.stdout, "usage: ") || r.stderr != "" {
					t.Errorf("%s %s: exit %d, stdout %q, stderr %q; want exit 0 and a usage line",
						prog, h, r.code, r.stdout, r.stderr)
				}
			}
		}
	})

	t.Run("unknown option", func(t *testing.T) {
		for _, prog := range programs {
			r := run(t, dir, prog, guarded(prog, "--frobnicate")...)
			if r.code != 2 || !(strings.Contains(r.stderr, "--frobnicate") || strings.Contains(r.stderr, "usage: ")) {
				t.Errorf("%s --frobnicate: exit %d, stderr %q; want exit 2 naming the option or showing usage",
					prog, r.code, r.stderr)
			}
		}
	})

	// One out-of-range value per program, and the same option without a
	// value at the end of the command line.
	bad := []struct {
		prog, opt, val string
	}{
		{"memhog", "--chunk-mb", "0"},
		{"memhog", "--mb", "-1"},
		{"memhog", "--mb", "1x"},
		{"rthog", "--prio", "100"},
		{"rthog", "--cpu", "-1"},
		{"idlevictim", "--oom-score-adj", "1001"},
		{"idlevictim", "--mb", "0"},
		{"threadhog", "--threads", "0"},
		{"threadhog", "--oom-score-adj", "-1001"},
		{"clonevm", "--children", "0"},
		{"clonevm", "--check-score-adj", "1001"},
		{"vforker", "--parent-oom-score-adj", "1001"},
		{"vforker", "--child-oom-score-adj", "abc"},
		{"idlevictim", "--shmem-mb", "-1"},
		{"robustmutex", "--oom-score-adj", "1001"},
		{"robustmutex", "--cpu", "-1"},
		{"robustmutex", "--timeout-s", "x"},
		{"oomloop", "--mb", "0"},
		{"oomloop", "--pause-ms", "60001"},
		{"timedwrite", "--oom-score-adj", "-1001"},
	}
	t.Run("bad value", func(t *testing.T) {
		for _, c := range bad {
			r := run(t, dir, c.prog, guarded(c.prog, c.opt, c.val)...)
			line := strings.TrimSuffix(r.stderr, "\n")
			if r.code != 2 || line == "" || strings.Contains(line, "\n") ||
				!(strings.Contains(line, ": "+c.val) || strings.HasPrefix(line, "usage: ")) {
				t.Errorf("%s %s %s: exit %d, stderr %q; want exit 2 and one line naming the value or showing usage",
					c.prog, c.opt, c.val, r.code, r.stderr)
			}
		}
	})
	t.Run("missing value", func(t *testing.T) {
		for _, c := range bad {
			r := run(t, dir, c.prog, guarded(c.prog, c.opt)...)
			if r.code != 2 || !strings.Contains(r.stderr, "usage: ") {
				t.Errorf("%s %s: exit %d, stderr %q; want exit 2 and usage",
					c.prog, c.opt, r.code, r.stderr)
			}
		}
	})

	t.Run("required arguments", func(t *testing.T) {
		for _, c := range [][]string{
			{"idlevictim", "--mb", "1", "--shmem-mb", "2", "--hold"}, // more shmem than memory
			{"robustmutex", "--file", "/nonexistent-oomlab/robust"},  // no role
			{"robustmutex", "--waiter"},                              // no file
			{"robustmutex", "--waiter", "--file"},                    // file without a value
			{"oomloop", "--rounds", "1"},                             // no --mb
			{"timedwrite", "/nonexistent-oomlab/x"},                  // FILE without VALUE
		} {
			if r := run(t, dir, c[0], c[1:]...); r.code != 2 {
				t.Errorf("%q: exit %d, stderr %q; want exit 2", c, r.code, r.stderr)
			}
		}
	})

	t.Run("idlevictim needs --mb", func(t *testing.T) {
		r := run(t, dir, "idlevictim", "--hold", "--chunk-mb", "1")
		if r.code != 2 || !strings.HasPrefix(r.stderr, "usage: ") {
			t.Errorf("exit %d, stderr %q; want exit 2 and usage", r.code, r.stderr)
		}
	})

	// Real runs that end by themselves. idlevictim and threadhog never do
	// (they hold or rewrite their memory until killed), and rthog is a
	// SCHED_FIFO busy loop: those are not run.
	exited0 := regexp.MustCompile(`(?m)^child \d+ exited 0$`)
	t.Run("memhog", func(t *testing.T) {
		for _, args := range [][]string{
			{"--mb", "8"},
			{"--mb", "2m", "--chunk-mb", "1"},
			{"--mb", "0g", "--mb", "2"},
		} {
			if r := run(t, dir, "memhog", args...); r.code != 0 {
				t.Errorf("memhog %q: exit %d, stderr %q", args, r.code, r.stderr)
			}
		}
		// Counts take the size units too, as they always have.
		args := []string{"--mb", "4", "--chunk-mb", "2", "--rate-mb-s", "1g", "--forks", "2m"}
		r := run(t, dir, "memhog", args...)
		if n := len(exited0.FindAllString(r.stdout, -1)); r.code != 0 || n != 2 {
			t.Errorf("memhog %q: exit %d, %d children exited 0, stdout %q stderr %q",
				args, r.code, n, r.stdout, r.stderr)
		}
	})

	t.Run("clonevm check-score-adj", func(t *testing.T) {
		r := run(t, dir, "clonevm", "--children", "3", "--mb", "2", "--hold", "--check-score-adj", "500")
		if r.code != 0 || strings.Count(r.stdout, "4 sharers checked, 0 inconsistent") != 2 {
			t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("robustmutex owner dies, waiter gets EOWNERDEAD", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "robust")
		owner := exec.Command(filepath.Join(dir, "robustmutex"), "--owner", "--file", file, "--mb", "1", "--chunk-mb", "1", "--hold")
		owner.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := owner.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan result, 1)
		go func() {
			// The waiter waits for the owner's lock itself; the timeout
			// bounds it if the owner's death is never seen.
			done <- run(t, dir, "robustmutex", "--waiter", "--file", file, "--start-s", "20", "--timeout-s", "20")
		}()
		time.Sleep(500 * time.Millisecond)
		syscall.Kill(-owner.Process.Pid, syscall.SIGKILL)
		owner.Wait()
		r := <-done
		if r.code != 0 || !strings.Contains(r.stdout, "released: EOWNERDEAD") {
			t.Errorf("waiter: exit %d, stdout %q, stderr %q; want exit 0 and EOWNERDEAD", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("robustmutex waiter times out on a live owner", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "robust")
		owner := exec.Command(filepath.Join(dir, "robustmutex"), "--owner", "--file", file, "--hold")
		owner.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := owner.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { syscall.Kill(-owner.Process.Pid, syscall.SIGKILL); owner.Wait() }()
		r := run(t, dir, "robustmutex", "--waiter", "--file", file, "--start-s", "20", "--timeout-s", "1")
		if r.code != 3 || !strings.Contains(r.stdout, "timed out") {
			t.Errorf("exit %d, stdout %q, stderr %q; want exit 3", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("oomloop and timedwrite", func(t *testing.T) {
		if r := run(t, dir, "oomloop", "--mb", "2", "--rounds", "3", "--pause-ms", "1"); r.code != 0 || r.stdout != "oomloop done\n" {
			t.Errorf("oomloop: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
		f := filepath.Join(t.TempDir(), "knob")
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if r := run(t, dir, "timedwrite", f, "freeze"); r.code != 0 || !strings.HasSuffix(r.stdout, "ok\n") {
			t.Errorf("timedwrite: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
		if b, _ := os.ReadFile(f); string(b) != "freeze" {
			t.Errorf("timedwrite wrote %q", b)
		}
		if r := run(t, dir, "timedwrite", "/nonexistent-oomlab/x", "freeze"); r.code != 1 {
			t.Errorf("timedwrite to a missing file: exit %d, stdout %q", r.code, r.stdout)
		}
	})

	t.Run("vforker", func(t *testing.T) {
		r := run(t, dir, "vforker", "--mb", "4", "--rounds", "2")
		if n := len(exited0.FindAllString(r.stdout, -1)); r.code != 0 || n != 2 {
			t.Errorf("--mb 4 --rounds 2: exit %d, %d children exited 0, stdout %q stderr %q",
				r.code, n, r.stdout, r.stderr)
		}
		r = run(t, dir, "vforker", "--mb", "1", "--parent-oom-score-adj", "1000", "--child-oom-score-adj", "1000")
		if r.code != 0 || len(exited0.FindAllString(r.stdout, -1)) != 1 {
			t.Errorf("oom_score_adj 1000: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
		// A negative value parses; the child exits 3 if it may not lower
		// its oom_score_adj (no CAP_SYS_RESOURCE).
		r = run(t, dir, "vforker", "--mb", "1", "--child-oom-score-adj", "-1000")
		if ok, _ := regexp.MatchString(`^child \d+ exited [03]\n$`, r.stdout); r.code != 0 || !ok {
			t.Errorf("--child-oom-score-adj -1000: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
	})
}
