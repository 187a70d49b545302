package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var exe string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "oomlab-cli-")
	if err != nil {
		panic(err)
	}
	exe = filepath.Join(dir, "oomlab")
	if out, err := exec.Command("go", "build", "-o", exe, ".").CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func run(t *testing.T, dir string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(exe, args...)
	cmd.Dir = dir
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

// TestBadInput: one clear line naming the thing and the fix, exit 2, and no
// results directory left behind.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("name: x\nguest:\n  cpus: many\n"), 0o644)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown scenario", []string{"run", "no-such-scenario"}, `unknown scenario "no-such-scenario"`},
		{"repeat range", []string{"run", "smoke", "--repeat", "-3"}, "--repeat -3 out of range"},
		{"bad accel", []string{"run", "smoke", "--accel", "xen"}, `--accel "xen"`},
		{"no qemu", []string{"run", "smoke", "--qemu", "/nonexistent/qemu"}, "apt-get install qemu-system-x86"},
		{"no agent", []string{"run", "smoke", "--qemu", "true", "--bin-dir", dir}, "run 'make build'"},
		{"bad variant", []string{"build", "--variant", "fast"}, `variant "fast"`},
		{"bad prefix variant", []string{"build", "--variant", "patched:x"}, `variant "patched:x": want baseline, patched, patched:N`},
		{"bad jobs", []string{"build", "--jobs", "0"}, "--jobs 0 out of range"},
		{"bad run jobs", []string{"run", "smoke", "--jobs", "0"}, `--jobs "0": want a number of guests run at once, 1..64, or auto`},
		{"run jobs word", []string{"run", "smoke", "--jobs", "all"}, `--jobs "all"`},
		{"bad build-jobs", []string{"run", "smoke", "--qemu", "true", "--build-jobs", "0"}, "--build-jobs 0 out of range 1..1024 (parallel compile jobs)"},
		{"build has no build-jobs", []string{"build", "--build-jobs", "4"}, "unknown flag: --build-jobs"},
		{"no patches dir", []string{"build", "--patches", "/nonexistent"}, "--patches /nonexistent: not a directory"},
		{"bad kernel tree", []string{"build", "--variant", "baseline", "--kernel-src", dir, "--cache", filepath.Join(dir, "cache")}, dir},
		{"unknown flag", []string{"run", "--frobnicate"}, "unknown flag"},
		{"bad scenario file", []string{"validate", bad}, "bad.yaml:3:"},
		{"missing scan file", []string{"scan", "/nonexistent/log"}, "/nonexistent/log"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, stderr, code := run(t, dir, c.args...)
			if code != 2 {
				t.Errorf("exit code %d, want 2 (stderr %q)", code, stderr)
			}
			if !strings.Contains(stderr, c.want) {
				t.Errorf("stderr %q does not mention %q", stderr, c.want)
			}
			if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic") {
				t.Errorf("traceback on bad input: %s", stderr)
			}
			if _, err := os.Stat(filepath.Join(dir, "results")); err == nil {
				t.Errorf("a results directory was left behind")
			}
		})
	}
}

func TestScanPrintsJSONLines(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "console.log")
	os.WriteFile(log, []byte("[   12.500000] memhog invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, oom_score_adj=0\n"+
		"[   12.600000] rcu: Hierarchical RCU implementation.\n"+
		"[   12.700000] Out of memory: Killed process 231 (memhog) total-vm:262144kB, anon-rss:200000kB, file-rss:4kB, shmem-rss:0kB, UID:0 pgtables:500kB oom_score_adj:0\n"), 0o644)
	stdout, stderr, code := run(t, dir, "scan", log)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 events (the RCU banner is not one), got %d:\n%s", len(lines), stdout)
	}
	var e struct {
		Kind string   `json:"kind"`
		Line int      `json:"line"`
		Time *float64 `json:"time"`
		PID  *int     `json:"pid"`
		Comm string   `json:"comm"`
	}
	if err := json.Unmarshal([]byte(lines[1]), &e); err != nil {
		t.Fatal(err)
	}
	if e.Kind != "oom_kill" || e.Line != 3 || e.Time == nil || *e.Time != 12.7 || e.PID == nil || *e.PID != 231 || e.Comm != "memhog" {
		t.Errorf("oom_kill event wrong: %s", lines[1])
	}
	// stdin works too
	cmd := exec.Command(exe, "scan")
	cmd.Stdin = strings.NewReader("[    1.000000] Kernel panic - not syncing: Hard LOCKUP\n")
	out, err := cmd.Output()
	if err != nil || !strings.Contains(string(out), `"kind":"panic"`) {
		t.Errorf("scan from stdin: %v %s", err, out)
	}
}

func TestListAndValidate(t *testing.T) {
	stdout, _, code := run(t, t.TempDir(), "list")
	if code != 0 || !strings.Contains(stdout, "smoke") || !strings.Contains(stdout, "quick") {
		t.Errorf("list: exit %d\n%s", code, stdout)
	}
	smoke, _ := filepath.Abs("../../../scenarios/smoke.yaml")
	stdout, _, code = run(t, t.TempDir(), "validate", smoke)
	if code != 0 || !strings.Contains(stdout, "ok") {
		t.Errorf("validate smoke.yaml: exit %d %s", code, stdout)
	}
	sweep, _ := filepath.Abs("../../../scenarios/tetsuo-sweep.yaml")
	stdout, _, code = run(t, t.TempDir(), "validate", sweep)
	if code != 0 || !strings.Contains(stdout, "ok (sweep of 16 cases)") {
		t.Errorf("validate tetsuo-sweep.yaml: exit %d %s", code, stdout)
	}
	stdout, _, _ = run(t, t.TempDir(), "list")
	if !strings.Contains(stdout, "tetsuo-sweep                 sweep of 16 cases (rt_hogs, victim_policy, fair_server, cpus)") || strings.Contains(stdout, "tetsuo-sweep[") {
		t.Errorf("list: the sweep once, with its cases counted:\n%s", stdout)
	}
}

func TestBuiltinSets(t *testing.T) {
	b, err := builtin()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(b.SetNames(), ",") != "quick,patches,selftest,cost,sweep,selftests" {
		t.Errorf("sets %v", b.SetNames())
	}
}

// list prints the sets in file order, every time; run's help names them all.
func TestListSetsInOrder(t *testing.T) {
	b, _ := builtin()
	first, _, _ := run(t, t.TempDir(), "list")
	for i := 0; i < 3; i++ {
		again, _, _ := run(t, t.TempDir(), "list")
		if again != first {
			t.Fatalf("list output changes between calls:\n%s\n%s", first, again)
		}
	}
	last := -1
	for _, s := range b.Sets {
		i := strings.Index(first, "\n"+s.Name+" ")
		if i < last {
			t.Errorf("set %s out of file order:\n%s", s.Name, first)
		}
		last = i
	}
	help, _, _ := run(t, t.TempDir(), "run", "--help")
	for _, s := range b.Sets {
		if !strings.Contains(help, "  "+s.Name+" ") {
			t.Errorf("run --help does not list set %s:\n%s", s.Name, help)
		}
	}
	fields, _, _ := run(t, t.TempDir(), "list", "--fields")
	for _, want := range []string{"oom_to_freed_p95_ms", "boot_s", "killed:<name>", "probe:<name>", "hung_task              khungtaskd"} {
		if !strings.Contains(fields, want) {
			t.Errorf("list --fields lacks %s:\n%s", want, fields)
		}
	}
}

// --kconfig reaches the built-in debug.config from any directory, and a
// bad fragment is one line naming the file.
func TestKconfigFlag(t *testing.T) {
	dir := t.TempDir()
	_, stderr, code := run(t, dir, "build", "--kconfig", "kconfig/debug.config", "--variant", "fast")
	if code != 2 || !strings.Contains(stderr, `variant "fast"`) {
		t.Errorf("kconfig/debug.config not accepted: exit %d %s", code, stderr)
	}
	bad := filepath.Join(dir, "typo.config")
	os.WriteFile(bad, []byte("CONFIG_LOCKDEP y\n"), 0o644)
	for _, c := range []struct{ arg, want string }{
		{bad, "typo.config:1: cannot parse"},
		{filepath.Join(dir, "none.config"), "none.config"},
	} {
		_, stderr, code := run(t, dir, "build", "--kconfig", c.arg)
		if code != 2 || !strings.Contains(stderr, "--kconfig: ") || !strings.Contains(stderr, c.want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("--kconfig %s: exit %d, stderr %q", c.arg, code, stderr)
		}
	}
}

// writeRun writes a run.json with 6 repeats of s on baseline and patched,
// patched's OOM -> freed latencies scaled by factor.
func writeRun(t *testing.T, id string, factor float64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), id)
	os.MkdirAll(dir, 0o755)
	var res []map[string]any
	for _, v := range []string{"baseline", "patched"} {
		for i := range 6 {
			lat := 2000.0 + 10*float64(i)
			if v == "patched" {
				lat *= factor
			}
			res = append(res, map[string]any{"scenario": "s", "variant": v, "repeat": i + 1, "verdict": "pass",
				"figures": map[string]any{"guest_alive": true, "oom_events": 1, "oom_kills": 1, "kills_per_oom_event": 1, "oom_to_freed_ms": []float64{lat}}})
		}
	}
	b, _ := json.Marshal(map[string]any{"schema_version": 1, "run_id": id, "complete": true, "verdict": "pass", "results": res})
	os.WriteFile(filepath.Join(dir, "run.json"), b, 0o644)
	return dir
}

func TestCompareRuns(t *testing.T) {
	a, same, slower := writeRun(t, "a", 1), writeRun(t, "b", 1), writeRun(t, "c", 3)
	out, errOut, code := run(t, ".", "compare", a, same)
	if code != 0 || !strings.Contains(out, "NO DIFFERENCE") || !strings.Contains(out, "alpha = 0.05") {
		t.Errorf("same runs: exit %d\n%s%s", code, out, errOut)
	}
	// Patched three times slower in B than in A: a regression, exit 1.
	out, _, code = run(t, ".", "compare", a, slower)
	if code != 1 || !strings.Contains(out, "REGRESSION s: c:patched is WORSE than a:patched on oom_to_freed_ms (Mann-Whitney U (exact), p = 0.00216") {
		t.Errorf("slower: exit %d\n%s", code, out)
	}
	out, _, code = run(t, ".", "compare", a, slower, "--format", "json")
	var rep struct {
		Alpha  float64 `json:"alpha"`
		Groups []struct {
			Stats []struct {
				Name string `json:"name"`
				N    int    `json:"n"`
				P95  *struct {
					Value float64    `json:"value"`
					CI    [2]float64 `json:"ci95"`
				} `json:"p95"`
			} `json:"stats"`
		} `json:"groups"`
		Rows []struct {
			Variant string  `json:"variant"`
			Figure  string  `json:"figure"`
			P       float64 `json:"p"`
			Verdict string  `json:"verdict"`
		} `json:"comparisons"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 1 || rep.Alpha != 0.05 || len(rep.Groups) != 4 || len(rep.Rows) == 0 {
		t.Fatalf("json: exit %d, %v\n%s", code, err, out)
	}
	// Mann-Whitney 6 vs 6, complete separation: p = 2/C(12,6) = 2/924 = 0.00216.
	for _, r := range rep.Rows {
		if r.Variant == "patched" && r.Figure == "oom_to_freed_ms" && (r.Verdict != "worse" || r.P < 0.00216 || r.P > 0.00217) {
			t.Errorf("oom_to_freed_ms: %+v", r)
		}
	}
	if s := rep.Groups[0].Stats[1]; s.Name != "oom_to_freed_ms" || s.N != 6 || s.P95 == nil || s.P95.Value != 2050 {
		t.Errorf("stats: %+v", s)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"compare", a, "/no/such/run"}, "compare: open /no/such/run/run.json: no such file or directory"},
		{[]string{"compare", a}, "accepts 2 arg(s)"},
		{[]string{"compare", a, same, "--format", "html"}, `--format "html"`},
	} {
		_, errOut, code := run(t, ".", c.args...)
		if code != 2 || !strings.Contains(errOut, c.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q, want one line with %q", c.args, code, errOut, c.want)
		}
	}
}

func TestReportJSONHasStatistics(t *testing.T) {
	dir := writeRun(t, "r", 3)
	out, errOut, code := run(t, ".", "report", dir, "--format", "json")
	var r struct {
		ID    string `json:"run_id"`
		Stats struct {
			Rows []struct {
				Variant string `json:"variant"`
				Figure  string `json:"figure"`
				Verdict string `json:"verdict"`
			} `json:"comparisons"`
		} `json:"statistics"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != 0 || r.ID != "r" || len(r.Stats.Rows) == 0 {
		t.Fatalf("exit %d, %v\n%s%s", code, err, out, errOut)
	}
	if r.Stats.Rows[0].Figure != "kill_to_exit_ms" || r.Stats.Rows[1].Figure != "oom_to_freed_ms" || r.Stats.Rows[1].Verdict != "worse" {
		t.Errorf("rows: %+v", r.Stats.Rows)
	}
	out, _, _ = run(t, ".", "report", dir)
	if !strings.Contains(out, "REGRESSION s: patched is WORSE than baseline on oom_to_freed_ms") {
		t.Errorf("text report lacks the regression:\n%s", out)
	}
}

// TestCacheCommand: listing and a dry-run prune of a temporary cache; a bad
// --max-size is one line naming the flag.
func TestCacheCommand(t *testing.T) {
	cache := t.TempDir()
	for _, k := range []string{"aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"} {
		os.MkdirAll(filepath.Join(cache, "kernels", k), 0o755)
		os.WriteFile(filepath.Join(cache, "kernels", k, "bzImage"), bytes.Repeat([]byte{1}, 64<<10), 0o644)
		os.WriteFile(filepath.Join(cache, "kernels", k, "meta.json"), []byte(`{"key":"`+k+`","variant":"baseline","kernel_release":"6.12-x"}`), 0o644)
	}
	stdout, stderr, code := run(t, cache, "cache", "--cache", cache)
	if code != 0 || !strings.Contains(stdout, "KIND") || !strings.Contains(stdout, "aaaaaaaaaaaa  baseline 6.12-x") {
		t.Errorf("cache: code %d\n%s%s", code, stdout, stderr)
	}
	stdout, stderr, code = run(t, cache, "cache", "prune", "--cache", cache, "--max-size", "0", "--dry-run")
	if code != 0 || strings.Count(stdout, "would remove kernel") != 2 {
		t.Errorf("prune --dry-run: code %d\n%s%s", code, stdout, stderr)
	}
	if ents, _ := os.ReadDir(filepath.Join(cache, "kernels")); len(ents) != 2 {
		t.Errorf("dry run removed something: %v", ents)
	}
	for _, bad := range []string{"lots", "-5G", "10XB"} {
		_, stderr, code = run(t, cache, "cache", "prune", "--cache", cache, "--max-size", bad)
		if code != 2 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, "--max-size") {
			t.Errorf("--max-size %s: code %d, stderr %q", bad, code, stderr)
		}
	}
	stdout, _, code = run(t, cache, "cache", "prune", "--cache", cache, "--max-size", "0")
	if ents, _ := os.ReadDir(filepath.Join(cache, "kernels")); code != 0 || len(ents) != 0 {
		t.Errorf("prune: code %d, left %v\n%s", code, ents, stdout)
	}
}

func TestReportHTML(t *testing.T) {
	dir := writeRun(t, "r", 3)
	out, errOut, code := run(t, ".", "report", dir, "--format", "html")
	if code != 0 || !strings.HasPrefix(out, "<!DOCTYPE html>") || !strings.Contains(out, "REGRESSION s: patched is WORSE than baseline on oom_to_freed_ms") {
		t.Fatalf("exit %d, stderr %q\n%.600s", code, errOut, out)
	}
}

func TestReportKCIDB(t *testing.T) {
	dir := writeRun(t, "r", 3)
	out, errOut, code := run(t, ".", "report", dir, "--format", "kcidb", "--kcidb-origin", "my_lab")
	var rep struct {
		Version struct{ Major int } `json:"version"`
		Tests   []struct {
			ID     string `json:"id"`
			Origin string `json:"origin"`
			Path   string `json:"path"`
			Status string `json:"status"`
		} `json:"tests"`
	}
	if err := json.Unmarshal([]byte(out), &rep); code != 0 || err != nil {
		t.Fatalf("exit %d, %v, stderr %q\n%.600s", code, err, errOut, out)
	}
	if rep.Version.Major != 5 || len(rep.Tests) == 0 || rep.Tests[0].ID != "my_lab:r/s/baseline/1" ||
		rep.Tests[0].Origin != "my_lab" || rep.Tests[0].Path != "oomlab.s" || rep.Tests[0].Status != "PASS" {
		t.Errorf("kcidb report: %+v", rep)
	}
	_, errOut, code = run(t, ".", "report", dir, "--format", "kcidb", "--kcidb-origin", "My Lab")
	if code != 2 || !strings.Contains(errOut, `kcidb origin "My Lab"`) || strings.Count(errOut, "\n") != 1 {
		t.Errorf("bad origin: exit %d, stderr %q", code, errOut)
	}
}

// run --jobs is guests at once; the compile jobs moved to --build-jobs
// (build keeps --jobs).
func TestJobsFlags(t *testing.T) {
	dir := t.TempDir()
	runHelp, _, _ := run(t, dir, "run", "--help")
	buildHelp, _, _ := run(t, dir, "build", "--help")
	for _, c := range []struct {
		help, want string
	}{
		{runHelp, "--jobs string"},
		{runHelp, "guests run at once: N, or auto"},
		{runHelp, "--build-jobs int"},
		{buildHelp, "--jobs int"},
	} {
		if !strings.Contains(c.help, c.want) {
			t.Errorf("help has no %q", c.want)
		}
	}
	if strings.Contains(buildHelp, "build-jobs") {
		t.Error("build has --build-jobs")
	}
}
