package results

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"oomlab/harness/internal/console"
	"oomlab/harness/internal/metrics"
)

func TestVerdictJSON(t *testing.T) {
	for _, v := range []Verdict{Skip, Pass, Fail, Error} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != `"`+v.String()+`"` {
			t.Errorf("%v marshals to %s", v, b)
		}
		var back Verdict
		if err := json.Unmarshal(b, &back); err != nil || back != v {
			t.Errorf("%s: round trip %v %v", b, back, err)
		}
	}
	var v Verdict
	if err := json.Unmarshal([]byte(`"maybe"`), &v); err == nil {
		t.Error(`"maybe" is a verdict`)
	}
	if Pass.Worst(Error) != Error || Fail.Worst(Pass) != Fail || Skip.Worst(Pass) != Pass {
		t.Error("Worst is wrong")
	}
}

// run.json keeps the names it always had; verdict is left out until the
// run is complete.
func TestRunJSONFields(t *testing.T) {
	r := &Run{Schema: SchemaVersion, ID: "x", Results: []*Result{{Scenario: "s", Variant: "baseline", Repeat: 1, Verdict: Fail,
		Stressors: []StressorExit{{Name: "a", Running: true}}, Steps: []StepResult{{Phase: "setup", Command: "c", Tolerate: true}}}}}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{`"schema_version":1`, `"oomlab_version"`, `"run_id":"x"`, `"complete":false`, `"host":{"name"`, `"kernels":null`,
		`"verdict":"fail"`, `"figures":{"boot_s":0`, `"console_log"`, `"wall_s"`, `"still_running":true`, `"may_fail":true`} {
		if !strings.Contains(s, want) {
			t.Errorf("run.json lacks %s:\n%s", want, s)
		}
	}
	if strings.Count(s, `"verdict"`) != 1 {
		t.Errorf("an incomplete run has a verdict:\n%s", s)
	}
	r.Verdict = r.ComputeVerdict()
	if r.Verdict != Fail {
		t.Errorf("run verdict %v", r.Verdict)
	}
}

func TestSaveLoad(t *testing.T) {
	dir := t.TempDir()
	r := &Run{Schema: SchemaVersion, ID: "r", Results: []*Result{{Scenario: "s", Verdict: Pass, Figures: metrics.Figures{OOMKills: 2}}}}
	if err := Save(dir, r); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Results[0].Verdict != Pass || got.Results[0].Figures.OOMKills != 2 {
		t.Errorf("round trip: %+v", got.Results[0])
	}
	if _, err := os.Stat(filepath.Join(dir, "events.jsonl")); err != nil {
		t.Error(err)
	}
}

// Rounds: each with its own figures in run.json, and every event of
// events.jsonl with its round.
func TestRoundsSaveLoad(t *testing.T) {
	dir := t.TempDir()
	res := &Result{Scenario: "s", Verdict: Pass, Figures: metrics.Figures{OOMKills: 2},
		Rounds: []RoundResult{
			{Round: 1, Verdict: Pass, Figures: metrics.Figures{OOMKills: 1, OOMToFreedMs: []float64{2200}}, Stressors: []StressorExit{{Name: "v", Round: 1, Signal: "KILL"}}},
			{Round: 2, Verdict: Fail, Failures: []string{"x"}, Figures: metrics.Figures{OOMKills: 1}, Steps: []StepResult{{Phase: "action", Command: "a", Round: 2}}},
		},
		Events:      []console.Event{{Kind: console.Warning}, {Kind: console.StressStart}, {Kind: console.OOMKill}},
		EventRounds: []int{0, 1, 1},
	}
	if err := Save(dir, &Run{Schema: SchemaVersion, ID: "r", Results: []*Result{res}}); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	rs := got.Results[0].Rounds
	if len(rs) != 2 || rs[0].Figures.OOMToFreedMs[0] != 2200 || rs[0].Stressors[0].Round != 1 || rs[1].Verdict != Fail || rs[1].Steps[0].Round != 2 {
		t.Errorf("rounds round trip: %+v", rs)
	}
	b, err := os.ReadFile(filepath.Join(dir, "events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 3 || strings.Contains(lines[0], `"round"`) || !strings.Contains(lines[2], `"round":1`) {
		t.Errorf("events.jsonl:\n%s", b)
	}
}
