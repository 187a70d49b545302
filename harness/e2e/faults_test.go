package e2e

import (
	"bufio"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeQEMU writes a QEMU for fault injection: the real one, with the
// -kernel image cut to half its size (a guest that never boots: the
// decompressor fails, and under -no-reboot QEMU exits with status 0 and
// not a byte on the console). With fill set it first fills that file's
// file system (a results disk that fills while the guest runs). Any
// other invocation (--version) is the real QEMU's.
func fakeQEMU(t *testing.T, fill string) string {
	t.Helper()
	dir := t.TempDir()
	script := `#!/bin/sh
dir=$(dirname "$0")
n=$#
k=0
for a do
  if [ "$k" = 1 ]; then
    head -c $(($(stat -c %s "$a") / 2)) "$a" > "$dir/bzImage.half"
    a="$dir/bzImage.half"
    if [ -n "` + fill + `" ]; then cat /dev/zero > "` + fill + `" 2>/dev/null; fi
  fi
  k=0
  [ "$a" = -kernel ] && k=1
  set -- "$@" "$a"
done
shift $n
exec qemu-system-x86_64 "$@"
`
	p := filepath.Join(dir, "qemu")
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// exitCode is the exit status of a finished command, -1 when it did not
// exit normally.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err == nil {
		return 0
	}
	return -1
}

// noQEMUWith fails the test for every QEMU process still running whose
// command line contains s (a path only this test's guests use).
func noQEMUWith(t *testing.T, s string) {
	t.Helper()
	cmds, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, c := range cmds {
		b, err := os.ReadFile(c)
		if err != nil || !strings.Contains(string(b), "qemu-system") || !strings.Contains(string(b), s) {
			continue
		}
		pid := filepath.Base(filepath.Dir(c))
		t.Errorf("QEMU pid %s is still running", pid)
	}
}

// stderrLines runs cmd with its stderr captured (and copied to the
// test's) and returns the stderr lines and the exit error.
func stderrLines(t *testing.T, cmd *exec.Cmd) ([]string, error) {
	t.Helper()
	var b strings.Builder
	cmd.Stderr = io.MultiWriter(&b, os.Stderr)
	err := cmd.Run()
	return strings.Split(strings.TrimSpace(b.String()), "\n"), err
}

// watchQEMUs collects the pids of pid's QEMU children until stop closes.
func watchQEMUs(pid int, stop <-chan struct{}) <-chan []int {
	out := make(chan []int, 1)
	go func() {
		seen := map[int]bool{}
		var all []int
		for {
			for _, q := range qemuChildren(pid) {
				if !seen[q] {
					seen[q] = true
					all = append(all, q)
				}
			}
			select {
			case <-stop:
				out <- all
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return out
}

// TestTruncatedKernel: a guest that never boots (a real QEMU with half of
// the cached bzImage) must end with verdict error and a one-line reason
// well within the scenario's timeout, run.json complete and readable,
// exit status 2 and no QEMU left.
func TestTruncatedKernel(t *testing.T) {
	dir := t.TempDir()
	qemu := fakeQEMU(t, "")
	start := time.Now()
	lines, err := stderrLines(t, oomlab(t, "run", "smoke", "--variants", "baseline", "--results", dir, "--qemu", qemu))
	took := time.Since(start)
	if code := exitCode(err); code != 2 {
		t.Errorf("exit status %d (%v), want 2", code, err)
	}
	r := readRun(t, dir)
	if !r.Complete || len(r.Results) != 1 {
		t.Fatalf("run: complete %v, %d results", r.Complete, len(r.Results))
	}
	res := r.Results[0]
	if res.Verdict != "error" || res.Error == "" || strings.Contains(res.Error, "\n") {
		t.Errorf("verdict %s, error %q: want error with a one-line reason", res.Verdict, res.Error)
	}
	// smoke's timeout is 180 s; a guest that cannot boot must not use it.
	if took > 60*time.Second {
		t.Errorf("took %v, want well within the 180 s timeout", took)
	}
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "oomlab: ") {
		t.Errorf("last line %q is not oomlab's one-line error", last)
	}
	noQEMUWith(t, filepath.Dir(qemu))
	t.Logf("truncated bzImage -> verdict error %q after %.2fs (oomlab exited after %.2fs)", res.Error, res.WallS, took.Seconds())
}

// TestResultsDiskFull: the results disk fills while a guest runs (a tmpfs
// of 1 MB, filled by the fake QEMU as it starts). Saving the run after
// the guest must fail with one line naming run.json, exit status 2, and
// leave the run.json saved before it intact and readable. Needs root to
// mount the tmpfs; skipped where that is not permitted.
func TestResultsDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	qemu := fakeQEMU(t, filepath.Join(dir, "filler"))
	lines, err := stderrLines(t, oomlab(t, "run", "smoke", "--variants", "baseline", "--results", dir, "--qemu", qemu))
	if code := exitCode(err); code != 2 {
		t.Errorf("exit status %d (%v), want 2", code, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "filler")); err != nil {
		t.Fatalf("the fake QEMU did not fill the disk: %v", err)
	}
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "oomlab: writing ") || !strings.Contains(last, "/run.json:") || !strings.Contains(last, "no space left on device") {
		t.Errorf("last line %q: want oomlab's one line naming run.json and the full disk", last)
	}
	// The record saved when the run began (before the disk filled).
	var r runJSON
	runDir := readRunInto(t, dir, &r)
	if r.Complete || len(r.Results) != 0 {
		t.Errorf("run.json: complete %v, %d results; want the first record, untouched", r.Complete, len(r.Results))
	}
	if left, _ := filepath.Glob(filepath.Join(runDir, ".*.tmp-*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	noQEMUWith(t, filepath.Dir(qemu))
	t.Logf("the error: %s", last)
}

// TestQEMUKilled: QEMU SIGKILLed from outside while its guest runs (the
// host's OOM killer, an operator): that guest run gets verdict error
// naming the signal, not a FAIL charged to the kernel; the suite goes on
// to the next guest, which passes (a rerun works); run.json is complete
// and readable, exit status 2, no QEMU left.
func TestQEMUKilled(t *testing.T) {
	dir := t.TempDir()
	cmd := oomlab(t, "run", "smoke", "--variants", "baseline", "--repeat", "2", "--results", dir)
	cmd.Stderr = nil // read below
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := make(chan int, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			os.Stderr.Write(append(sc.Bytes(), '\n'))
			// The first guest is up: kill its QEMU as it starts the
			// stress phase.
			if !sent && strings.Contains(sc.Text(), "smoke-baseline-1: agent ready") {
				sent = true
				qs := qemuChildren(cmd.Process.Pid)
				for _, q := range qs {
					syscall.Kill(q, syscall.SIGKILL)
				}
				killed <- len(qs)
			}
		}
		close(killed)
	}()
	stopWatch := make(chan struct{})
	qemus := watchQEMUs(cmd.Process.Pid, stopWatch)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(3 * time.Minute):
		cmd.Process.Kill()
		t.Fatal("oomlab did not end within 3 minutes")
	}
	close(stopWatch)
	all := <-qemus
	if len(all) < 2 {
		t.Errorf("saw %d QEMU processes, want one per guest", len(all))
	}
	for _, q := range all {
		if alive(q) {
			syscall.Kill(q, syscall.SIGKILL)
			t.Errorf("QEMU pid %d outlived oomlab", q)
		}
	}
	if n := <-killed; n != 1 {
		t.Fatalf("killed %d QEMU processes, want the first guest's one", n)
	}
	if code := exitCode(err); code != 2 {
		t.Errorf("exit status %d (%v), want 2 (a guest run with verdict error)", code, err)
	}
	r := readRun(t, dir)
	if !r.Complete || len(r.Results) != 2 {
		t.Fatalf("run: complete %v, %d results; want the suite to go on to both guests", r.Complete, len(r.Results))
	}
	first, second := r.Results[0], r.Results[1]
	if first.Verdict != "error" || !strings.Contains(first.Error, "killed by signal 9") {
		t.Errorf("killed guest: verdict %s, error %q; want error naming signal 9", first.Verdict, first.Error)
	}
	if second.Verdict != "pass" {
		t.Errorf("the guest after: verdict %s, failures %v, error %q", second.Verdict, second.Failures, second.Error)
	}
	t.Logf("killed guest: %s %q", first.Verdict, first.Error)
}
