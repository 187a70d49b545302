// Package e2e runs the real thing: the oomlab binary builds the default
// kernel (cached between runs), boots it under QEMU and runs scenarios in
// the guest over SSH. Enabled by OOMLAB_E2E=1 (make e2e / make test).
package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var bin string

func TestMain(m *testing.M) {
	if os.Getenv("OOMLAB_E2E") != "1" {
		os.Exit(0) // unit runs: nothing here is a unit test
	}
	bin = os.Getenv("OOMLAB_BIN")
	if bin == "" {
		bin = "../../bin"
	}
	os.Exit(m.Run())
}

type runJSON struct {
	Complete bool   `json:"complete"`
	Verdict  string `json:"verdict"`
	Kernels  []struct {
		Variant string `json:"variant"`
		Release string `json:"release"`
	} `json:"kernels"`
	Results []struct {
		Scenario string   `json:"scenario"`
		Variant  string   `json:"variant"`
		Verdict  string   `json:"verdict"`
		Error    string   `json:"error"`
		Failures []string `json:"failures"`
		Accel    string   `json:"accel"`
		WallS    float64  `json:"wall_s"`
		Figures  struct {
			BootS      float64            `json:"boot_s"`
			OOMKills   int                `json:"oom_kills"`
			OOMEvents  int                `json:"oom_events"`
			Lockups    int                `json:"lockups"`
			ByKind     map[string]int     `json:"by_kind"`
			GuestAlive bool               `json:"guest_alive"`
			FirstKillS *float64           `json:"first_kill_s"`
			Extra      map[string]float64 `json:"extra"`
			Left       map[string]int     `json:"left"`
		} `json:"figures"`
		Steps []struct {
			Phase   string `json:"phase"`
			Command string `json:"command"`
			Error   string `json:"error"`
		} `json:"steps"`
		Stressors []struct {
			Signal string `json:"signal"`
		} `json:"stressors"`
	} `json:"results"`
}

func oomlab(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, "oomlab"), args...)
	cmd.Stderr = os.Stderr
	return cmd
}

// readRun reads the single run directory under dir.
func readRun(t *testing.T, dir string) *runJSON {
	t.Helper()
	var r runJSON
	readRunInto(t, dir, &r)
	return &r
}

// readRunInto decodes the single run.json under dir into v and returns
// its directory.
func readRunInto(t *testing.T, dir string, v any) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "*", "run.json"))
	if len(m) != 1 {
		t.Fatalf("want one run.json under %s, found %v", dir, m)
	}
	b, err := os.ReadFile(m[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("run.json is not valid JSON: %v", err)
	}
	return filepath.Dir(m[0])
}

// TestBuildDefaultKernel builds (or takes from the cache) the default
// kernels; a second build must be a cache hit.
func TestBuildDefaultKernel(t *testing.T) {
	if out, err := oomlab(t, "build").Output(); err != nil {
		t.Fatalf("oomlab build: %v\n%s", err, out)
	}
	start := time.Now()
	cmd := oomlab(t, "build", "--variant", "baseline")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("second build: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "cache hit") {
		t.Errorf("second build was not a cache hit:\n%s", stderr.String())
	}
	t.Logf("cache hit took %s", time.Since(start))
}

// TestSmokeAndIdle is the foundation path: a memory hog is OOM-killed, no
// lockup fires, the agent survives; an idle boot has zero findings.
func TestSmokeAndIdle(t *testing.T) {
	dir := t.TempDir()
	cmd := oomlab(t, "run", "smoke", "idle", "--results", dir)
	out, err := cmd.Output()
	t.Logf("oomlab run output:\n%s", out)
	if err != nil {
		t.Errorf("oomlab run smoke idle: %v", err)
	}
	r := readRun(t, dir)
	if !r.Complete {
		t.Error("run.json not marked complete")
	}
	seen := map[string]bool{}
	for _, res := range r.Results {
		seen[res.Scenario] = true
		f := res.Figures
		if res.Verdict != "pass" {
			t.Errorf("%s/%s: verdict %s, failures %v, error %q", res.Scenario, res.Variant, res.Verdict, res.Failures, res.Error)
		}
		if res.Accel != "tcg" && res.Accel != "kvm" {
			t.Errorf("%s: accel %q", res.Scenario, res.Accel)
		}
		if !f.GuestAlive {
			t.Errorf("%s/%s: agent did not answer after the run", res.Scenario, res.Variant)
		}
		if f.Lockups != 0 {
			t.Errorf("%s/%s: %d lockups (%v)", res.Scenario, res.Variant, f.Lockups, f.ByKind)
		}
		switch res.Scenario {
		case "smoke":
			if f.OOMKills < 1 || f.OOMEvents < 1 {
				t.Errorf("smoke/%s: %d OOM events, %d kills; want at least one of each", res.Variant, f.OOMEvents, f.OOMKills)
			}
			killed := false
			for _, s := range res.Stressors {
				killed = killed || s.Signal == "KILL"
			}
			if !killed {
				t.Errorf("smoke/%s: the hog did not end by SIGKILL: %+v", res.Variant, res.Stressors)
			}
			if f.FirstKillS == nil || *f.FirstKillS <= 0 {
				t.Errorf("smoke/%s: no time to first kill", res.Variant)
			}
		case "idle":
			n := 0
			for k, v := range f.ByKind {
				if k != "oom_invoked" && k != "task_exit" {
					n += v
				}
			}
			if n != 0 {
				t.Errorf("idle/%s: findings on an idle boot: %v", res.Variant, f.ByKind)
			}
		}
		t.Logf("%s/%s: boot %.2fs, %d kills", res.Scenario, res.Variant, f.BootS, f.OOMKills)
	}
	if !seen["smoke"] || !seen["idle"] {
		t.Errorf("missing results: %v", seen)
	}
}

// qemuChildren lists the QEMU processes whose parent is pid.
// TestFrozenThreadGroup runs the proof of the whole-thread-group patch on
// both kernels: it exercises the v1 freezer mount, a timed action, a
// cgroup, the per-stressor figures and the process census, and asserts the
// behaviour the series changes: baseline leaves the killed, frozen victim
// behind; patched thaws every thread and the victim is gone.
func TestFrozenThreadGroup(t *testing.T) {
	dir := t.TempDir()
	out, err := oomlab(t, "run", "frozen-threadgroup", "--repeat", "1", "--results", dir).Output()
	t.Logf("oomlab run output:\n%s", out)
	if err != nil {
		t.Errorf("oomlab run frozen-threadgroup: %v", err)
	}
	r := readRun(t, dir)
	variants := map[string]bool{}
	for _, res := range r.Results {
		variants[res.Variant] = true
		f := res.Figures
		if res.Verdict != "pass" {
			t.Errorf("%s: verdict %s, failures %v, error %q", res.Variant, res.Verdict, res.Failures, res.Error)
		}
		if len(res.Steps) != 3 || res.Steps[2].Phase != "action" || res.Steps[2].Error != "" {
			t.Errorf("%s: setup and freeze action did not all run: %+v", res.Variant, res.Steps)
		}
		if f.Left == nil || f.Extra == nil {
			t.Fatalf("%s: no census or stressor figures: %+v", res.Variant, f)
		}
		switch res.Variant {
		case "baseline":
			if f.Extra["running:victim"] != 1 || f.Left["threadhog"] != 1 {
				t.Errorf("baseline: the frozen victim should outlive its kill: %v %v", f.Extra, f.Left)
			}
		case "patched":
			if f.Extra["killed:victim"] != 1 || f.Left["threadhog"] != 0 {
				t.Errorf("patched: the frozen victim should be gone: %v %v", f.Extra, f.Left)
			}
		}
	}
	if !variants["baseline"] || !variants["patched"] {
		t.Errorf("variants run: %v", variants)
	}
}

func qemuChildren(pid int) []int {
	var out []int
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || !strings.Contains(s[:i], "qemu-system") {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 2 && f[1] == strconv.Itoa(pid) {
			n, _ := strconv.Atoi(strings.Fields(s)[0])
			out = append(out, n)
		}
	}
	return out
}

func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] != 'Z'
}

// interrupt starts a run, waits for its guest, sends sig to oomlab and
// checks that no QEMU survives and the partial run.json is readable. For
// SIGINT (handled like SIGTERM, see TestSIGTERMHungGuest) oomlab ends
// within 5 s with status 130, the guest run in progress kept with verdict
// error "interrupted". SIGKILL leaves no time to write: run.json is the
// one saved when the run began, PDEATHSIG takes the QEMU down, and the
// next oomlab is not held up by anything the killed one held (the kernel
// cache's locks).
func interrupt(t *testing.T, sig syscall.Signal) {
	dir := t.TempDir()
	cmd := oomlab(t, "run", "smoke", "--variants", "baseline", "--results", dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var qemus []int
	deadline := time.Now().Add(5 * time.Minute)
	for len(qemus) == 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		qemus = qemuChildren(cmd.Process.Pid)
	}
	if len(qemus) == 0 {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("no QEMU child appeared within 5 minutes")
	}
	time.Sleep(time.Second) // let the guest get going
	sent := time.Now()
	cmd.Process.Signal(sig)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("oomlab did not exit within 60s of %v", sig)
	}
	took := time.Since(sent)
	t.Logf("%v -> exit: %.2fs", sig, took.Seconds())
	if took > 5*time.Second {
		t.Errorf("oomlab took %v to exit after %v, want within 5s", took, sig)
	}
	// PDEATHSIG acts asynchronously after a SIGKILL: give it a moment.
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		left := 0
		for _, q := range qemus {
			if alive(q) {
				left++
			}
		}
		if left == 0 {
			break
		}
	}
	for _, q := range qemus {
		if alive(q) {
			syscall.Kill(q, syscall.SIGKILL)
			t.Errorf("QEMU pid %d outlived oomlab after %v", q, sig)
		}
	}
	r := readRun(t, dir)
	if r.Complete {
		t.Errorf("an interrupted run is marked complete")
	}
	switch sig {
	case syscall.SIGKILL:
		if len(r.Results) != 0 {
			t.Errorf("run.json has %d results; the only save before the kill was the first", len(r.Results))
		}
		if out, err := oomlab(t, "build", "--variant", "baseline").Output(); err != nil {
			t.Errorf("oomlab build after a SIGKILLed run: %v\n%s", err, out)
		}
	default:
		if code := exitCode(err); code != 130 {
			t.Errorf("exit status %d (%v), want 130", code, err)
		}
		if len(r.Results) != 1 || r.Results[0].Verdict != "error" || r.Results[0].Error != "interrupted" {
			t.Errorf("results %+v: want the guest run in progress, verdict error interrupted", r.Results)
		}
	}
}

func TestSIGINTLeavesNoQEMU(t *testing.T)  { interrupt(t, syscall.SIGINT) }
func TestSIGKILLLeavesNoQEMU(t *testing.T) { interrupt(t, syscall.SIGKILL) }
