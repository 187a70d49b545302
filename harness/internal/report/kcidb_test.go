package report

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"oomlab/harness/internal/metrics"
	"oomlab/harness/internal/results"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/kcidb/*.golden.json from the writer's output")

const kcidbSchemaFile = "testdata/kcidb/kcidb-v05_03-subset.schema.json"

// kcidbSchema compiles the schema with format assertions on: date-time
// and uri are checked, as kcidb-io does with a format checker.
func kcidbSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	sch, err := c.Compile(kcidbSchemaFile)
	if err != nil {
		t.Fatalf("schema: %v", err)
	}
	return sch
}

// renderKCIDB writes the run and returns the JSON and its decoded form.
func renderKCIDB(t *testing.T, r *results.Run, o KCIDBOptions) ([]byte, any) {
	t.Helper()
	var b bytes.Buffer
	if err := KCIDB(&b, r, o); err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatalf("output is not JSON: %v", err)
	}
	return b.Bytes(), doc
}

func decodeKCIDB(t *testing.T, b []byte) kcidbReport {
	t.Helper()
	var rep kcidbReport
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatal(err)
	}
	return rep
}

// kcidbSynthetic has every verdict, two variants (one with a colon and
// a plus in its name), a guest run of three rounds, a sweep case whose
// name is no path segment, and an error with a NUL and a long tail.
func kcidbSynthetic() *results.Run {
	at := time.Date(2026, 11, 30, 1, 2, 3, 400, time.UTC)
	first := 1.5
	return &results.Run{
		Schema: results.SchemaVersion, Version: "test", ID: "20261130-010203-abcdef", Started: at,
		Host: results.Host{Name: "lab", CPUs: 2, MemMB: 4096, Kernel: "6.1.0", QEMU: "QEMU emulator version 7.2"},
		Kernels: []results.Kernel{
			{Variant: "baseline", Release: "6.12.117-oomlab-baseline", Key: strings.Repeat("a", 64),
				SourceID: "debian linux-source-6.12 6.12.117-1~deb12u1 (/usr/src/linux-source-6.12.tar.xz sha256:585a4a074597)"},
			{Variant: "patched:2+test", Release: "6.12.117-oomlab-patched-2-test", Key: strings.Repeat("b", 64),
				SourceID: "git /src/linux@0123456789ab+changes:ba9876543210"},
		},
		Results: []*results.Result{
			{Scenario: "smoke", Variant: "baseline", Repeat: 1, Verdict: results.Pass, Accel: "kvm", Started: at, WallS: 12.5,
				Console: "console-smoke-baseline-1.log",
				Figures: metrics.Figures{OOMEvents: 2, OOMKills: 2, KillsPerOOMEvent: 1, BootSeconds: 2.25, FirstKillSeconds: &first,
					OOMToFreedMs: []float64{10, 30}, GuestAlive: true, Left: map[string]int{"init": 1},
					Extra: map[string]float64{"killed:hog": 2, "probe:pages": 7}}},
			{Scenario: "smoke", Variant: "baseline", Repeat: 2, Verdict: results.Fail, Accel: "kvm", Started: at.Add(time.Minute),
				Failures: []string{"lockups = 1, expected == 0"}, Figures: metrics.Figures{Lockups: 1}},
			{Scenario: "smoke", Variant: "patched:2+test", Repeat: 1, Verdict: results.Error, Accel: "tcg", Started: at.Add(2 * time.Minute),
				Error: "agent did not answer\x00" + strings.Repeat("é", 9000)},
			{Scenario: "needs-cgroup", Variant: "patched:2+test", Repeat: 1, Verdict: results.Skip, SkipReason: "no CONFIG_MEMCG"},
			{Scenario: "storm[tasks=8,mem=64M]", Sweep: "storm", Case: []results.Param{{Name: "tasks", Value: "8"}, {Name: "mem", Value: "64M"}},
				Variant: "patched:2+test", Repeat: 1, Verdict: results.Fail, Accel: "tcg", Started: at.Add(3 * time.Minute),
				Failures: []string{"guest_alive = false, expected == 1"},
				Rounds: []results.RoundResult{
					{Round: 1, Verdict: results.Pass, StartS: 5, WallS: 10},
					{Round: 2, Verdict: results.Pass, StartS: 15, WallS: 10},
					{Round: 3, Verdict: results.Fail, StartS: 25, WallS: 10, Failures: []string{"guest_alive = false, expected == 1"}},
				}},
		},
	}
}

func testsByID(rep kcidbReport) map[string]kcidbTest {
	m := map[string]kcidbTest{}
	for _, t := range rep.Tests {
		m[t.ID] = t
	}
	return m
}

func TestKCIDBSyntheticValidates(t *testing.T) {
	b, doc := renderKCIDB(t, kcidbSynthetic(), KCIDBOptions{LogURLBase: "https://ci.example.org/runs/x/"})
	if err := kcidbSchema(t).Validate(doc); err != nil {
		t.Fatalf("output does not validate: %v\n%s", err, b)
	}
	rep := decodeKCIDB(t, b)
	if len(rep.Checkouts) != 2 || len(rep.Builds) != 2 {
		t.Fatalf("checkouts %d builds %d, want 2 and 2", len(rep.Checkouts), len(rep.Builds))
	}
	tests := testsByID(rep)
	const run = "oomlab:20261130-010203-abcdef/"
	for id, want := range map[string]string{
		run + "smoke/baseline/1":                               "PASS",
		run + "smoke/baseline/2":                               "FAIL",
		run + "smoke/patched:2+test/1":                         "ERROR",
		run + "needs-cgroup/patched:2+test/1":                  "SKIP",
		run + "storm[tasks=8,mem=64M]/patched:2+test/1":        "FAIL",
		run + "storm[tasks=8,mem=64M]/patched:2+test/1/round1": "PASS",
		run + "storm[tasks=8,mem=64M]/patched:2+test/1/round3": "FAIL",
		run + "smoke/baseline/1/oom_kills":                     "DONE",
		run + "smoke/baseline/2/lockups":                       "FAIL", // its expectation failed
		run + "smoke/baseline/2/oom_kills":                     "DONE",
	} {
		if got, ok := tests[id]; !ok {
			t.Errorf("no test %s", id)
		} else if got.Status != want {
			t.Errorf("%s: status %q, want %q", id, got.Status, want)
		}
	}
	for id, test := range tests {
		if strings.HasPrefix(id, run+"needs-cgroup/") && id != run+"needs-cgroup/patched:2+test/1" {
			t.Errorf("a skipped guest run has figure test %s", id)
		}
		if strings.HasPrefix(id, run+"smoke/baseline/") && test.BuildID != rep.Builds[0].ID {
			t.Errorf("%s: build %s, want the baseline's %s", id, test.BuildID, rep.Builds[0].ID)
		}
	}
	if _, ok := tests[run+"smoke/baseline/1/round1"]; ok {
		t.Error("a guest run of one round has a round test")
	}

	pass := tests[run+"smoke/baseline/1"]
	if pass.Path != "oomlab.smoke" || pass.StartTime != "2026-11-30T01:02:03.0000004Z" || pass.Duration != 12.5 ||
		pass.LogURL != "https://ci.example.org/runs/x/console-smoke-baseline-1.log" {
		t.Errorf("guest run test: %+v", pass)
	}
	for id, want := range map[string]kcidbNumber{
		"oom_kills":           {Value: 2},
		"boot_s":              {Value: 2.25, Unit: "s", Prefix: "metric"},
		"first_kill_s":        {Value: 1.5, Unit: "s", Prefix: "metric"},
		"oom_to_freed_p95_ms": {Value: 30, Unit: "ms"},
		"killed:hog":          {Value: 2},
		"probe:pages":         {Value: 7},
		"left:init":           {Value: 1},
	} {
		got, ok := tests[run+"smoke/baseline/1/"+id]
		if !ok || got.Number == nil || *got.Number != want {
			t.Errorf("figure %s: %+v, want number %+v", id, got, want)
		}
	}
	if p := tests[run+"smoke/baseline/1/killed:hog"].Path; p != "oomlab.smoke.killed.hog" {
		t.Errorf("family figure path %q", p)
	}
	sweep := tests[run+"storm[tasks=8,mem=64M]/patched:2+test/1/round2"]
	if sweep.Path != "oomlab.storm_tasks_8_mem_64M_.round2" || sweep.StartTime != "2026-11-30T01:05:18.0000004Z" {
		t.Errorf("round test: path %q start %q", sweep.Path, sweep.StartTime)
	}
	if e := tests[run+"smoke/patched:2+test/1"].LogExcerpt; len(e) > 16384 || strings.Contains(e, "\x00") || !strings.HasPrefix(e, "agent did not answer") {
		t.Errorf("error excerpt: %d bytes, starts %.30q", len(e), e)
	}

	base, patched := rep.Checkouts[0], rep.Checkouts[1]
	if base.PatchsetHash == nil || *base.PatchsetHash != "" || base.TreeName != "debian" || base.Misc["debian_version"] != "6.12.117-1~deb12u1" {
		t.Errorf("baseline checkout: %+v", base)
	}
	if patched.PatchsetHash != nil || patched.GitCommitName != "0123456789ab" || patched.TreeName != "linux" ||
		patched.Misc["patches"] != "the first 2 patches of the series and the test-only series" {
		t.Errorf("patched checkout: %+v", patched)
	}
	if b := rep.Builds[1]; b.ID != "oomlab:build-"+strings.Repeat("b", 64) || b.CheckoutID != patched.ID || b.Architecture != "x86_64" {
		t.Errorf("patched build: %+v", b)
	}
}

// The schema is strict enough to catch what would make a KCIDB server
// refuse the submission: if these validated, the tests above would prove
// nothing.
func TestKCIDBSchemaRejects(t *testing.T) {
	sch := kcidbSchema(t)
	b, _ := renderKCIDB(t, sampleRun(), KCIDBOptions{})
	for name, mutate := range map[string]func(m map[string]any){
		"status":         func(m map[string]any) { testAt(m, 0)["status"] = "BROKEN" },
		"id sans origin": func(m map[string]any) { testAt(m, 0)["id"] = "no-origin" },
		"path":           func(m map[string]any) { testAt(m, 0)["path"] = "oomlab.smoke:1" },
		"unknown field":  func(m map[string]any) { testAt(m, 0)["verdict"] = "pass" },
		"no build_id":    func(m map[string]any) { delete(testAt(m, 0), "build_id") },
		"start_time":     func(m map[string]any) { testAt(m, 0)["start_time"] = "yesterday" },
		"log_url":        func(m map[string]any) { testAt(m, 0)["log_url"] = "console.log" },
		"prefix":         func(m map[string]any) { testAt(m, 1)["number"] = map[string]any{"value": 1, "prefix": "kilo"} },
		"version":        func(m map[string]any) { m["version"] = map[string]any{"major": 4} },
	} {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		mutate(m)
		if err := sch.Validate(m); err == nil {
			t.Errorf("%s: the mutated report validates", name)
		}
	}
}

func testAt(m map[string]any, i int) map[string]any {
	return m["tests"].([]any)[i].(map[string]any)
}

// Real runs: the trimmed one the HTML tests use (five variants, pass and
// error) and a small one with a failed expectation.
func TestKCIDBRealRunsValidate(t *testing.T) {
	sch := kcidbSchema(t)
	for _, dir := range []string{"testdata/run-645e39", "testdata/kcidb/run-c3d5d0"} {
		r, err := results.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		b, doc := renderKCIDB(t, r, KCIDBOptions{})
		if err := sch.Validate(doc); err != nil {
			t.Errorf("%s: output does not validate: %v", dir, err)
			continue
		}
		rep := decodeKCIDB(t, b)
		if len(rep.Builds) != len(r.Kernels) || len(rep.Checkouts) != len(r.Kernels) {
			t.Errorf("%s: %d builds, %d checkouts for %d kernels", dir, len(rep.Builds), len(rep.Checkouts), len(r.Kernels))
		}
		runs := 0
		for _, test := range rep.Tests {
			if strings.Count(test.Path, ".") == 1 {
				runs++
			}
		}
		if runs != len(r.Results) {
			t.Errorf("%s: %d guest run tests for %d results", dir, runs, len(r.Results))
		}
	}
}

// The same run gives the same bytes, so the same ids; ids are unique per
// object type and every reference points at an object in the report.
func TestKCIDBDeterministicIDs(t *testing.T) {
	r, err := results.Load("testdata/run-645e39")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := renderKCIDB(t, r, KCIDBOptions{})
	r2, _ := results.Load("testdata/run-645e39")
	b, _ := renderKCIDB(t, r2, KCIDBOptions{})
	if !bytes.Equal(a, b) {
		t.Fatal("two renders of the same run differ")
	}
	for _, run := range []*results.Run{r, kcidbSynthetic()} {
		out, _ := renderKCIDB(t, run, KCIDBOptions{Origin: "my_lab"})
		rep := decodeKCIDB(t, out)
		ids := map[string]bool{}
		for _, c := range rep.Checkouts {
			ids[c.ID] = true
		}
		for _, bd := range rep.Builds {
			if ids[bd.ID] || !ids[bd.CheckoutID] {
				t.Errorf("build %s: duplicate, or checkout %s missing", bd.ID, bd.CheckoutID)
			}
			ids[bd.ID] = true
		}
		for _, ts := range rep.Tests {
			if ids[ts.ID] || !ids[ts.BuildID] {
				t.Errorf("test %s: duplicate, or build %s missing", ts.ID, ts.BuildID)
			}
			ids[ts.ID] = true
		}
		for id := range ids {
			if !strings.HasPrefix(id, "my_lab:") {
				t.Errorf("id %s lacks the origin", id)
			}
		}
	}
}

func TestKCIDBOptionsChecked(t *testing.T) {
	for _, o := range []KCIDBOptions{{Origin: "My-Lab"}, {LogURLBase: "runs/x"}} {
		if err := KCIDB(&bytes.Buffer{}, sampleRun(), o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

// The golden file is the whole output for a small real run: a change of
// the mapping shows in review as a diff of it (go test -update rewrites it).
func TestKCIDBGolden(t *testing.T) {
	r, err := results.Load("testdata/kcidb/run-c3d5d0")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := renderKCIDB(t, r, KCIDBOptions{})
	golden := filepath.Join("testdata", "kcidb", "run-c3d5d0.golden.json")
	if *updateGolden {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (go test -run KCIDBGolden -update rewrites it):\n%s", golden, got)
	}
}

// A record that lists a kernel's patches and compiler gives its checkout
// KCIDB's patchset_hash (SHA-256 over the newline-terminated SHA-256 of
// each patch, in order) and its build the compiler.
func TestKCIDBPatchsetHashAndCompiler(t *testing.T) {
	r := kcidbSynthetic()
	r.Kernels[1].Patches = []results.Patch{
		{Name: "0001-a.patch", SHA256: strings.Repeat("1", 64)},
		{Name: "0002-b.patch", SHA256: strings.Repeat("2", 64)},
	}
	r.Kernels[1].Compiler = "gcc (Debian 12.2.0-14+deb12u1) 12.2.0"
	b, doc := renderKCIDB(t, r, KCIDBOptions{})
	if err := kcidbSchema(t).Validate(doc); err != nil {
		t.Fatalf("schema: %v", err)
	}
	sum := sha256.Sum256([]byte(strings.Repeat("1", 64) + "\n" + strings.Repeat("2", 64) + "\n"))
	want := hex.EncodeToString(sum[:])
	rep := decodeKCIDB(t, b)
	var hashes []string
	for _, c := range rep.Checkouts {
		if c.PatchsetHash != nil {
			hashes = append(hashes, *c.PatchsetHash)
		}
	}
	if !slices.Contains(hashes, want) || !slices.Contains(hashes, "") {
		t.Errorf("patchset hashes %q, want the baseline's \"\" and %s", hashes, want)
	}
	var compilers []string
	for _, bd := range rep.Builds {
		compilers = append(compilers, bd.Compiler)
	}
	if !slices.Contains(compilers, r.Kernels[1].Compiler) {
		t.Errorf("build compilers %q, want %q among them", compilers, r.Kernels[1].Compiler)
	}
}
