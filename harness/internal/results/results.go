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
	// Jobs says how the guests shared the host when more than one ran at
	// once ('oomlab run --jobs'): boot and timing figures of such a run
	// are not comparable with a serial run's. Empty: one at a time.
	Jobs string `json:"jobs,omitempty"`
	// Shard is set on a run of part of a suite ('oomlab run --shard
	// i/n'); MergedFrom on the run 'oomlab merge' made of such shards,
	// and Missing there lists the units no shard ran (a merge with
	// --allow-partial: the run is then not complete).
	Shard      *Shard     `json:"shard,omitempty"`
	MergedFrom []ShardRun `json:"merged_from,omitempty"`
	Missing    []string   `json:"missing,omitempty"`
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
	// The compiler (gcc --version) and the applied patches in order, name
	// and SHA-256 (none: baseline); records before they existed lack them.
	Compiler string  `json:"compiler,omitempty"`
	Patches  []Patch `json:"patches,omitempty"`
	// Selftests is the build of the upstream selftests the run's
	// scenarios ran, from this kernel's own source tree (none: no
	// scenario ran one).
	Selftests *SelftestBuild `json:"selftests,omitempty"`
}

// SelftestBuild is one variant's build of upstream selftests.
type SelftestBuild struct {
	Key    string `json:"cache_key"` // <cache>/selftests/<key>
	Cached bool   `json:"cache_hit"`
	Tree   string `json:"tree"` // the variant's source tree
	// BuiltIn is the tree the cached programs were compiled in when it
	// is another variant's: the build's inputs (uapi headers, syscall
	// tables, selftest sources) are the same in both, so are the programs.
	BuiltIn string   `json:"built_in,omitempty"`
	Built   []string `json:"built"`
	// Skipped maps a program that did not build to the reason; its
	// guest runs record it as skipped, never passed.
	Skipped map[string]string `json:"skipped,omitempty"`
}

// Patch is one patch applied to a kernel: its path in the series and the
// SHA-256 of its contents.
type Patch struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
}

// Result is one guest run of one scenario on one variant. With rounds
// (a scenario's "rounds: N"), the stress phase ran up to N times in the
// one guest: Rounds holds each round's own figures, and the fields of the
// Result are the whole guest run's (Figures over every round's events and
// exits; Stressors and Steps every round's, each with its round number).
type Result struct {
	Scenario string `json:"scenario"`
	// Sweep, Case and KeyFigure are set for a case of a sweep (a
	// scenario file with a matrix): the sweep's name, the case's label
	// on each axis in axis order, and the figure its grid shows.
	Sweep     string   `json:"sweep,omitempty"`
	Case      []Param  `json:"case,omitempty"`
	KeyFigure string   `json:"key_figure,omitempty"`
	Variant   string   `json:"variant"`
	Repeat    int      `json:"repeat"`
	Verdict   Verdict  `json:"verdict"`
	Failures  []string `json:"failures,omitempty"` // expectations that did not hold
	Error     string   `json:"error,omitempty"`    // why the run could not complete
	// SkipReason says why the verdict is skip: the kernel lacks what
	// the scenario requires (requires:).
	SkipReason string          `json:"skip_reason,omitempty"`
	Accel      string          `json:"accel"`
	Figures    metrics.Figures `json:"figures"`
	Stressors  []StressorExit  `json:"stressors,omitempty"`
	Steps      []StepResult    `json:"steps,omitempty"` // setup and actions, in the order they ran
	// Rounds are the rounds of the stress phase that ran, in order (one
	// for a scenario without rounds); a run that ended early keeps the
	// rounds before.
	Rounds  []RoundResult   `json:"rounds,omitempty"`
	Console string          `json:"console_log"`
	Metrics string          `json:"metrics_log,omitempty"`
	Started time.Time       `json:"started"`
	WallS   float64         `json:"wall_s"`
	Events  []console.Event `json:"-"` // written to events.jsonl
	// EventRounds is, for each of Events, its round (0: before the first
	// round's marker); written to events.jsonl with the event.
	EventRounds []int `json:"-"`
	// DetectorTiming is, for a scenario that waits for the guest's own
	// detectors (detectors:), what the runner read from the guest before
	// the stress phase and the wait it computed from it.
	DetectorTiming *DetectorTiming `json:"detector_timing,omitempty"`
	// Boot is where the boot's time went (figures.boot_s is the sum),
	// from the host's clock: what `make bench` tables.
	Boot *BootPhases `json:"boot_phases,omitempty"`
}

// BootPhases splits a boot (QEMU start -> the agent answered over SSH) at
// what the host sees of it: the first console byte, the kernel's "Run
// /init as init process" line and the agent's ready marker. A phase whose
// end was not seen is 0 and the next one takes its time.
type BootPhases struct {
	FirmwareS float64 `json:"firmware_s"` // QEMU start -> first console byte (QEMU, firmware, kernel decompression)
	KernelS   float64 `json:"kernel_s"`   // -> the kernel runs /init
	InitS     float64 `json:"init_s"`     // -> the agent's ready marker (mounts, sysctls, server start)
	ConnectS  float64 `json:"connect_s"`  // -> the SSH handshake done
	// ClockS is the wait after the boot, before the setup, for the
	// guest's clocksource to leave tsc-early (scenario/clock.go): not
	// in boot_s, but before any stress phase can start.
	ClockS float64 `json:"clock_settle_s"`
}

// DetectorTiming is what a detector scenario read from its guest after the
// setup (the sysctls and module parameters the detectors run on) and the
// stress phase computed from them: it ends when every detector has
// reported, at the latest after WaitS.
type DetectorTiming struct {
	// Values are the guest's values by name (watchdog_thresh,
	// hung_task_timeout_secs, rcu_cpu_stall_timeout, ...), as read.
	Values    map[string]int64 `json:"values"`
	Detectors []DetectorBound  `json:"detectors"`
	BoundS    float64          `json:"bound_s"` // the latest any of them can report, from the stress start
	WaitS     float64          `json:"wait_s"`  // the stress phase at its longest: BoundS and the margin
}

// DetectorBound is one detector's bound and when it reported.
type DetectorBound struct {
	Name   string  `json:"name"`    // the console event kind: soft_lockup, hard_lockup, rcu_stall, hung_task
	BoundS float64 `json:"bound_s"` // the latest it can report, from the stress start
	How    string  `json:"how"`     // the bound's formula with the guest's values
	// SeenS is when its first report came in the first round, on the
	// console clock from the round's stress-start marker; nil: not seen.
	SeenS *float64 `json:"seen_s,omitempty"`
}

// Param is one axis of a sweep's case and its label.
type Param struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// RoundResult is one round of the stress phase within a guest run: the
// stressors started afresh, the actions at their times, the census and
// probes, the stressors stopped and the round settle. Its figures are made
// from the console events between its stress-start marker and the next
// round's (boot_s is 0: the boot is the guest run's), its census, probes
// and stressor exits; guest_alive says whether the agent answered after
// the round.
type RoundResult struct {
	Round     int             `json:"round"` // 1, 2, ...
	Verdict   Verdict         `json:"verdict,omitempty"`
	Failures  []string        `json:"failures,omitempty"`
	Error     string          `json:"error,omitempty"` // why the round could not run (it ended the guest run)
	Figures   metrics.Figures `json:"figures"`
	Stressors []StressorExit  `json:"stressors,omitempty"`
	Steps     []StepResult    `json:"steps,omitempty"` // the round's actions
	StartS    float64         `json:"start_s"`         // seconds from the guest run's start to the round's marker
	WallS     float64         `json:"wall_s"`          // marker -> end of the round settle
}

// StressorExit is how one stressor instance ended.
type StressorExit struct {
	Name     string `json:"name"`
	Instance int    `json:"instance"`
	ExitCode int    `json:"exit_code"`
	Signal   string `json:"signal,omitempty"`
	Round    int    `json:"round,omitempty"`         // the round that started it
	Running  bool   `json:"still_running,omitempty"` // stopped by the runner at the end of the phase
	Output   string `json:"output,omitempty"`        // tail of stdout+stderr
}

// ExitFacts are the stressor exits as facts for metrics.Compute.
func ExitFacts(exits []StressorExit) []metrics.Exit {
	out := make([]metrics.Exit, len(exits))
	for i, e := range exits {
		out[i] = metrics.Exit{Name: e.Name, ExitCode: e.ExitCode, Signal: e.Signal, Running: e.Running, Output: e.Output}
	}
	return out
}

// StepResult is how one setup step or action went.
type StepResult struct {
	Phase    string  `json:"phase"`           // setup, action
	AtS      float64 `json:"at_s,omitempty"`  // actions: seconds from the stress start, as run
	Round    int     `json:"round,omitempty"` // actions: the round
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
		for i, e := range res.Events {
			round := 0
			if i < len(res.EventRounds) {
				round = res.EventRounds[i]
			}
			enc.Encode(struct {
				Scenario string `json:"scenario"`
				Variant  string `json:"variant"`
				Repeat   int    `json:"repeat"`
				Round    int    `json:"round,omitempty"`
				console.Event
			}{res.Scenario, res.Variant, res.Repeat, round, e})
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

// Newest finds the newest run under dir (one run-id directory per run)
// with a result that has what the caller looks for; run ids begin with
// their start time, so they sort by name. Directories that are not runs,
// or runs of another schema, are passed over. No such run: "", nil, nil.
func Newest(dir string, has func(*Result) bool) (string, *Run, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", nil, err
	}
	// ReadDir sorts by name: newest last.
	for i := len(entries) - 1; i >= 0; i-- {
		if !entries[i].IsDir() {
			continue
		}
		n := entries[i].Name()
		run, err := Load(filepath.Join(dir, n))
		if err != nil {
			continue
		}
		for _, res := range run.Results {
			if has(res) {
				return filepath.Join(dir, n), run, nil
			}
		}
	}
	return "", nil, nil
}
