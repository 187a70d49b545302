package report

import (
	"bytes"
	"encoding/xml"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"oomlab/harness/internal/metrics"
	"oomlab/harness/internal/results"
)

func sampleRun() *results.Run {
	return &results.Run{Schema: results.SchemaVersion, Version: "test", ID: "r1", Results: []*results.Result{
		{Scenario: "smoke", Variant: "baseline", Repeat: 1, Verdict: results.Pass, Figures: metrics.Figures{OOMEvents: 1, OOMKills: 1, GuestAlive: true}},
		{Scenario: "smoke", Variant: "baseline", Repeat: 2, Verdict: results.Fail, Failures: []string{"lockups = 1, expected == 0 # really"}},
		{Scenario: "smoke", Variant: "patched", Repeat: 1, Verdict: results.Error, Error: "agent did not answer\non 127.0.0.1:1"},
	}}
}

func TestKTAP(t *testing.T) {
	var b bytes.Buffer
	KTAP(&b, sampleRun())
	out := b.String()
	for _, want := range []string{
		"KTAP version 1\n", "\n1..2\n",
		"    # Subtest: smoke.baseline\n    1..2\n",
		"    ok 1 repeat-1\n", "    not ok 2 repeat-2\n", "    # lockups = 1, expected == 0 really\n",
		"not ok 1 smoke.baseline\n",
		"    not ok 1 repeat-1 # error: agent did not answer on 127.0.0.1:1\n",
		"not ok 2 smoke.patched\n",
		"    # repeat 1: 1 OOM events, 1 kills, 0 reaped, 0 handed over, 0 reap failed, 0 lockups, boot 0.00s, alive true\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("KTAP output lacks %q:\n%s", want, out)
		}
	}
}

func TestJUnitParses(t *testing.T) {
	var b bytes.Buffer
	if err := JUnit(&b, sampleRun()); err != nil {
		t.Fatal(err)
	}
	var s junitSuites
	if err := xml.Unmarshal(b.Bytes(), &s); err != nil {
		t.Fatalf("junit.xml does not parse: %v\n%s", err, b.String())
	}
	if s.Tests != 3 || s.Failures != 1 || s.Errors != 1 || len(s.Suites) != 2 {
		t.Errorf("tests %d failures %d errors %d suites %d", s.Tests, s.Failures, s.Errors, len(s.Suites))
	}
	if s.Suites[0].Cases[1].Failure == nil || s.Suites[1].Cases[0].Error == nil {
		t.Error("failure/error elements missing")
	}
	if out := s.Suites[0].Cases[0].SystemOut; out != "console: \noom_events=1 oom_kills=1 reaped=0 handed_over=0 reap_failed=0 lockups=0 boot_s=0.00 guest_alive=true" {
		t.Errorf("system-out = %q", out)
	}
}

func TestSaveLoad(t *testing.T) {
	dir := t.TempDir()
	r := sampleRun()
	if err := Save(dir, r); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"run.json", "events.jsonl", "report.ktap", "junit.xml"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s not written: %v", f, err)
		}
	}
	got, err := results.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Results) != 3 || got.Results[1].Failures[0] != r.Results[1].Failures[0] {
		t.Errorf("round trip lost data: %+v", got.Results)
	}
	if got.ComputeVerdict() != results.Error {
		t.Errorf("verdict %s, want error", got.ComputeVerdict())
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".*tmp*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
	os.WriteFile(filepath.Join(dir, "run.json"), []byte(`{"schema_version": 99}`), 0o644)
	if _, err := results.Load(dir); err == nil || !strings.Contains(err.Error(), "schema version 99") {
		t.Errorf("future schema accepted: %v", err)
	}
}

func TestTable(t *testing.T) {
	var b bytes.Buffer
	Table(&b, sampleRun())
	out := b.String()
	if !strings.Contains(out, "smoke     baseline  1    PASS") && !strings.Contains(out, "PASS") {
		t.Errorf("table lacks a PASS row:\n%s", out)
	}
	if !strings.Contains(out, "FAIL smoke/baseline#2: lockups = 1") || !strings.Contains(out, "ERROR smoke/patched#1") {
		t.Errorf("table lacks failure lines:\n%s", out)
	}
}

func TestCompare(t *testing.T) {
	r := sampleRun()
	r.Results[0].Figures.OOMToFreedMs = []float64{100, 2000}
	var b bytes.Buffer
	Compare(&b, r)
	out := b.String()
	if !strings.Contains(out, "1/2") || !regexp.MustCompile(`2 +100 +too few samples`).MatchString(out) {
		t.Errorf("comparison lacks pass count, p50 or 'too few samples' for a p95 of 2:\n%s", out)
	}
	s := Summaries(r)
	if len(s) != 2 || s[0].Runs != 2 || s[0].Kills != 1 || s[1].Dead != 1 {
		t.Errorf("summaries wrong: %+v", s)
	}
	r.Results[0].Figures.OOMToFreedMs = []float64{100, 2000, 300, 400, 500}
	b.Reset()
	Compare(&b, r)
	if out := b.String(); !regexp.MustCompile(`5 +400 \[\d+, \d+\] +2000 \[\d+, 2000\]`).MatchString(out) {
		t.Errorf("comparison lacks p50/p95 with CIs for N=5:\n%s", out)
	}
}

func TestDifferences(t *testing.T) {
	res := func(v string, rep int, running, killed, kills float64, left int) *results.Result {
		census := map[string]int{"exe": 2} // a census lists only the names it found
		if left > 0 {
			census["threadhog"] = left
		}
		return &results.Result{Scenario: "frozen", Variant: v, Repeat: rep, Verdict: results.Pass, Figures: metrics.Figures{
			OOMKills: int(kills),
			Extra:    map[string]float64{"running:victim": running, "killed:victim": killed, "exited:hog": 1, "probe:hits": 2},
			Left:     census,
		}}
	}
	r := &results.Run{Results: []*results.Result{
		res("baseline", 1, 1, 0, 1, 1), res("baseline", 2, 1, 0, 2, 1),
		res("patched", 1, 0, 1, 1, 0), res("patched", 2, 0, 1, 1, 0),
		{Scenario: "smoke", Variant: "baseline", Verdict: results.Pass}, // one variant: nothing to compare
	}}
	var b bytes.Buffer
	Differences(&b, r)
	out := b.String()
	for _, want := range []string{"running:victim", "killed:victim", "left:threadhog", "probe:hits", "baseline: 1.5 (1-2)", "patched: 0"} {
		if !strings.Contains(out, want) {
			t.Errorf("differences lack %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`left:threadhog +baseline: 1 +patched: 0`).MatchString(out) {
		t.Errorf("a name missing from a census must count 0:\n%s", out)
	}
	for _, not := range []string{"exited:hog", "left:exe", "smoke"} {
		if strings.Contains(out, not) {
			t.Errorf("differences show %q, which is the same everywhere:\n%s", not, out)
		}
	}
}

func TestRegressionsInKTAPAndJUnit(t *testing.T) {
	r := sampleRun()
	r.Regressions = []string{"smoke: patched is WORSE than baseline on lockups > 0 (Fisher's exact, p = 0.0014 < 0.05)"}
	var b bytes.Buffer
	KTAP(&b, r)
	if !strings.HasSuffix(b.String(), "# REGRESSION smoke: patched is WORSE than baseline on lockups > 0 (Fisher's exact, p = 0.0014 < 0.05)\n") {
		t.Errorf("KTAP lacks the regression:\n%s", b.String())
	}
	b.Reset()
	if err := JUnit(&b, r); err != nil {
		t.Fatal(err)
	}
	var s junitSuites
	if err := xml.Unmarshal(b.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	if s.Tests != 4 || s.Failures != 2 || s.Suites[2].Name != "statistics" || s.Suites[2].Cases[0].Failure.Message != r.Regressions[0] {
		t.Errorf("JUnit: %+v", s)
	}
}
