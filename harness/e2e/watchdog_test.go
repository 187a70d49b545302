package e2e

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// silentHangWatchdog and the time the hogs take to own every vCPU after
// the stress-start marker (rt1 starts 1 s after rt0), from
// scenarios/silent-hang.yaml.
const (
	silentHangWatchdog = 20 * time.Second
	silentHangOwned    = 1500 * time.Millisecond
)

type hangRun struct {
	Complete bool `json:"complete"`
	Results  []struct {
		Verdict string  `json:"verdict"`
		Error   string  `json:"error"`
		WallS   float64 `json:"wall_s"`
		Rounds  []struct {
			StartS float64 `json:"start_s"`
			WallS  float64 `json:"wall_s"`
		} `json:"rounds"`
		Figures struct {
			ByKind map[string]int `json:"by_kind"`
		} `json:"figures"`
	} `json:"results"`
}

func readHangRun(t *testing.T, dir string) (*hangRun, string) {
	t.Helper()
	var r hangRun
	d := readRunInto(t, dir, &r)
	return &r, d
}

// TestSilentHang: every vCPU of the guest is owned by a SCHED_FIFO busy
// loop and its own detectors are quiet; the host watchdog must classify
// the run silent_hang within the watchdog time + 10 s of the hang, with
// backtraces that name rthog on both CPUs, and the verdict must pass.
func TestSilentHang(t *testing.T) {
	dir := t.TempDir()
	start := time.Now()
	out, err := oomlab(t, "run", "silent-hang", "--variants", "baseline", "--results", dir).Output()
	t.Logf("oomlab run silent-hang (%.1fs):\n%s", time.Since(start).Seconds(), out)
	if err != nil {
		t.Errorf("oomlab run silent-hang: %v", err)
	}
	r, runDir := readHangRun(t, dir)
	if len(r.Results) != 1 || len(r.Results[0].Rounds) != 1 {
		t.Fatalf("results %+v", r.Results)
	}
	res := r.Results[0]
	if res.Verdict != "pass" || res.Figures.ByKind["silent_hang"] != 1 {
		t.Errorf("verdict %s (%s), by kind %v", res.Verdict, res.Error, res.Figures.ByKind)
	}
	// The round runs from the marker to the guest stopped.
	took := time.Duration(res.Rounds[0].WallS * float64(time.Second))
	if limit := silentHangOwned + silentHangWatchdog + 10*time.Second; took > limit {
		t.Errorf("verdict %v after the stress start, want within %v", took, limit)
	}
	t.Logf("stress start -> guest stopped with a silent_hang verdict: %.1fs", took.Seconds())

	f, err := os.Open(filepath.Join(runDir, "events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	found := false
	for sc.Scan() {
		var e struct {
			Kind   string            `json:"kind"`
			Text   string            `json:"text"`
			Fields map[string]string `json:"fields"`
		}
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.Kind != "silent_hang" {
			continue
		}
		found = true
		t.Logf("%s; on the CPUs: %s", e.Text, e.Fields["cpus"])
		if e.Fields["cpus"] == "" || strings.Count(e.Fields["cpus"], ":rthog/") != 2 {
			t.Errorf("the backtraces do not name rthog on both CPUs: cpus %q", e.Fields["cpus"])
		}
		bt := e.Fields["backtrace"]
		if !strings.Contains(bt, "NMI backtrace for cpu 0") || !strings.Contains(bt, "NMI backtrace for cpu 1") {
			t.Errorf("no NMI backtrace of every CPU in:\n%s", bt)
		}
	}
	if !found {
		t.Error("no silent_hang event in events.jsonl")
	}
}

// TestSIGTERMHungGuest: SIGTERM while the guest is hung (the case:
// oomlab ignored it until the hogs ended) ends oomlab within 5 s, with the
// run kept (complete false, the run's verdict error "interrupted") and no
// QEMU left.
func TestSIGTERMHungGuest(t *testing.T) {
	dir := t.TempDir()
	cmd := oomlab(t, "run", "silent-hang", "--variants", "baseline", "--results", dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var qemus []int
	for end := time.Now().Add(2 * time.Minute); len(qemus) == 0 && time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		qemus = qemuChildren(cmd.Process.Pid)
	}
	if len(qemus) == 0 {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("no QEMU child appeared")
	}
	// Hung: both hogs started (boot ~3-5 s under TCG), the watchdog not
	// yet fired.
	time.Sleep(12 * time.Second)
	sent := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("oomlab did not exit within 30s of SIGTERM")
	}
	took := time.Since(sent)
	t.Logf("SIGTERM -> exit: %.2fs", took.Seconds())
	if took > 5*time.Second {
		t.Errorf("oomlab took %v to exit after SIGTERM, want within 5s", took)
	}
	for _, q := range qemus {
		if alive(q) {
			syscall.Kill(q, syscall.SIGKILL)
			t.Errorf("QEMU pid %d outlived oomlab", q)
		}
	}
	r, _ := readHangRun(t, dir)
	if r.Complete || len(r.Results) != 1 || r.Results[0].Verdict != "error" || r.Results[0].Error != "interrupted" {
		t.Errorf("run: complete %v, results %+v", r.Complete, r.Results)
	}
}
