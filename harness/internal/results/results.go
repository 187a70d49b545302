// Package results is the record of a run: run.json (Run, its kernels, host
// and one Result per guest run), the typed verdicts, and the atomic writes
// every output file goes through. It is written by the runner and the suite
// loop and read by report; it knows nothing about how a run is made.
package results

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"oomlab/harness/internal/atomicfile"
	"oomlab/harness/internal/console"
	"oomlab/harness/internal/metrics"
)

// SchemaVersion is bumped on any incompatible change of run.json.
const SchemaVersion = 1

// Run is run.json.
type Run struct {
	Schema   int        `json:"schema_version"`
	Version  string     `json:"oomlab_version"`
	ID       string     `json:"run_id"`
	Started  time.Time  `json:"started"`
	Finished *time.Time `json:"finished,omitempty"` // nil while running or when killed: a partial result
	Complete bool       `json:"complete"`
	Host     Host       `json:"host"`
	Kernels  []Kernel   `json:"kernels"`
	Results  []*Result  `json:"results"`
	Verdict  Verdict    `json:"verdict,omitempty"` // set when the run is complete
	// Regressions say why a complete run failed although its guest runs
	// passed: a variant significantly worse than its reference on a
	// figure (package compare), one line each.
	Regressions []string `json:"regressions,omitempty"`
}

// Host is the machine the run ran on.
type Host struct {
	Name   string `json:"name"`
	CPUs   int    `json:"cpus"`
	MemMB  int    `json:"mem_mb"`
	Kernel string `json:"kernel"`
	QEMU   string `json:"qemu"`
}

// Kernel describes one built kernel of the run.
type Kernel struct {
	Variant  string `json:"variant"`
	Release  string `json:"release"`
	Key      string `json:"cache_key"`
	Cached   bool   `json:"cache_hit"`
	BzImage  string `json:"bzimage"`
	SourceID string `json:"source_id"`
}

// Result is one guest run of one scenario on one variant.
type Result struct {
	Scenario  string          `json:"scenario"`
	Variant   string          `json:"variant"`
	Repeat    int             `json:"repeat"`
	Verdict   Verdict         `json:"verdict"`
	Failures  []string        `json:"failures,omitempty"` // expectations that did not hold
	Error     string          `json:"error,omitempty"`    // why the run could not complete
	Accel     string          `json:"accel"`
	Figures   metrics.Figures `json:"figures"`
	Stressors []StressorExit  `json:"stressors,omitempty"`
	Steps     []StepResult    `json:"steps,omitempty"` // setup and actions, in the order they ran
	Console   string          `json:"console_log"`
	Metrics   string          `json:"metrics_log,omitempty"`
	Started   time.Time       `json:"started"`
	WallS     float64         `json:"wall_s"`
	Events    []console.Event `json:"-"` // written to events.jsonl
}

// StressorExit is how one stressor instance ended.
type StressorExit struct {
	Name     string `json:"name"`
	Instance int    `json:"instance"`
	ExitCode int    `json:"exit_code"`
	Signal   string `json:"signal,omitempty"`
	Running  bool   `json:"still_running,omitempty"` // stopped by the runner at the end of the phase
	Output   string `json:"output,omitempty"`        // tail of stdout+stderr
}

// ExitFacts are the stressor exits as facts for metrics.Compute.
func ExitFacts(exits []StressorExit) []metrics.Exit {
	out := make([]metrics.Exit, len(exits))
	for i, e := range exits {
		out[i] = metrics.Exit{Name: e.Name, ExitCode: e.ExitCode, Signal: e.Signal, Running: e.Running}
	}
	return out
}

// StepResult is how one setup step or action went.
type StepResult struct {
	Phase    string  `json:"phase"`          // setup, action
	AtS      float64 `json:"at_s,omitempty"` // actions: seconds from the stress start, as run
	Command  string  `json:"command"`
	Error    string  `json:"error,omitempty"` // non-zero exit or transport error
	Output   string  `json:"output,omitempty"`
	Tolerate bool    `json:"may_fail,omitempty"`
}

// ComputeVerdict is the verdict of the whole run: the worst of its results.
func (r *Run) ComputeVerdict() Verdict {
	v := Pass
	for _, res := range r.Results {
		v = v.Worst(res.Verdict)
	}
	return v
}

// Save writes run.json and events.jsonl atomically into dir.
func Save(dir string, r *Run) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, "run.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	var ev bytes.Buffer
	enc := json.NewEncoder(&ev)
	for _, res := range r.Results {
		for _, e := range res.Events {
			enc.Encode(struct {
				Scenario string `json:"scenario"`
				Variant  string `json:"variant"`
				Repeat   int    `json:"repeat"`
				console.Event
			}{res.Scenario, res.Variant, res.Repeat, e})
		}
	}
	return atomicfile.Write(filepath.Join(dir, "events.jsonl"), ev.Bytes(), 0o644)
}

// Load reads run.json from a run directory.
func Load(dir string) (*Run, error) {
	b, err := os.ReadFile(filepath.Join(dir, "run.json"))
	if err != nil {
		return nil, err
	}
	var r Run
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s/run.json: %v", dir, err)
	}
	if r.Schema != SchemaVersion {
		return nil, fmt.Errorf("%s/run.json: schema version %d, this oomlab reads %d", dir, r.Schema, SchemaVersion)
	}
	return &r, nil
}
