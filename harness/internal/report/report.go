// Package report writes what a run found: run.json (the schema-versioned
// record every other output is rendered from), events.jsonl, and the
// terminal table.
package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"oomlab/harness/internal/atomicfile"
	"oomlab/harness/internal/console"
	"oomlab/harness/internal/scenario"
)

// SchemaVersion is bumped on any incompatible change of run.json.
const SchemaVersion = 1

// Kernel describes one built kernel of the run.
type Kernel struct {
	Variant  string `json:"variant"`
	Release  string `json:"release"`
	Key      string `json:"cache_key"`
	Cached   bool   `json:"cache_hit"`
	BzImage  string `json:"bzimage"`
	SourceID string `json:"source_id"`
}

// Run is run.json.
type Run struct {
	Schema   int                `json:"schema_version"`
	Version  string             `json:"oomlab_version"`
	ID       string             `json:"run_id"`
	Started  time.Time          `json:"started"`
	Finished *time.Time         `json:"finished,omitempty"` // nil while running or when killed: a partial result
	Complete bool               `json:"complete"`
	Host     Host               `json:"host"`
	Kernels  []Kernel           `json:"kernels"`
	Results  []*scenario.Result `json:"results"`
	Verdict  string             `json:"verdict,omitempty"` // pass, fail, error
}

// Host is the machine the run ran on.
type Host struct {
	Name   string `json:"name"`
	CPUs   int    `json:"cpus"`
	MemMB  int    `json:"mem_mb"`
	Kernel string `json:"kernel"`
	QEMU   string `json:"qemu"`
}

// Verdict is error if any run errored, else fail if any failed, else pass.
func (r *Run) ComputeVerdict() string {
	v := "pass"
	for _, res := range r.Results {
		switch res.Verdict {
		case "error":
			return "error"
		case "fail":
			v = "fail"
		}
	}
	return v
}

// Save writes run.json and events.jsonl atomically into dir. It is called
// after every guest run, so a killed oomlab leaves a readable partial run.
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
	if err := atomicfile.Write(filepath.Join(dir, "events.jsonl"), ev.Bytes(), 0o644); err != nil {
		return err
	}
	var kt, ju bytes.Buffer
	KTAP(&kt, r)
	if err := JUnit(&ju, r); err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, "report.ktap"), kt.Bytes(), 0o644); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, "junit.xml"), ju.Bytes(), 0o644)
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

// Table prints one row per guest run and the failures under it.
func Table(w io.Writer, r *Run) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tVARIANT\tREP\tVERDICT\tBOOT s\tOOM EV\tKILLS\tKILLS/EV\tREAPED\tHANDED\tREAP FAIL\tOOM->FREED p50 ms\tLOCKUPS\tALIVE")
	for _, res := range r.Results {
		f := res.Figures
		p50 := "-"
		if len(f.OOMToFreedMs) > 0 {
			p50 = fmt.Sprintf("%.0f", quantile(f.OOMToFreedMs, 0.5))
		}
		kpe := "-"
		if f.OOMEvents > 0 {
			kpe = fmt.Sprintf("%.2f", f.KillsPerOOMEvent)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%.1f\t%d\t%d\t%s\t%d\t%d\t%d\t%s\t%d\t%v\n",
			res.Scenario, res.Variant, res.Repeat, strings.ToUpper(res.Verdict), f.BootSeconds,
			f.OOMEvents, f.OOMKills, kpe, f.Reaped, f.HandedOver, f.ReapFailed, p50, f.Lockups, f.GuestAlive)
	}
	tw.Flush()
	for _, res := range r.Results {
		for _, msg := range res.Failures {
			fmt.Fprintf(w, "  FAIL %s/%s#%d: %s\n", res.Scenario, res.Variant, res.Repeat, msg)
		}
		if res.Error != "" {
			fmt.Fprintf(w, "  ERROR %s/%s#%d: %s\n", res.Scenario, res.Variant, res.Repeat, res.Error)
		}
	}
}
