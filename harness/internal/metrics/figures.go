// Package metrics makes the figures of a guest run and checks a scenario's
// expectations against them.
//
// Every figure is defined once, in the table (table.go): its name (used by
// expectations, run.json and the reports), unit, one-line doc, the field of
// the JSON figures it is read from, and how its value is read. Compute is
// the one place where the figures are made from the facts of a run (console
// events, census, stressor exits, probes, boot and stress time, whether the
// guest answered); Evaluate (expect.go) checks conditions on them.
package metrics

import (
	"math"
	"sort"
	"time"

	"oomlab/harness/internal/console"
)

// Figures are the numbers of one guest run, as run.json records them. Each
// JSON field is read by some row of the figure table.
type Figures struct {
	BootSeconds      float64        `json:"boot_s"`     // QEMU start -> agent answered over SSH
	StressSeconds    float64        `json:"stress_s"`   // length of the stress phase
	OOMEvents        int            `json:"oom_events"` // "invoked oom-killer"
	OOMKills         int            `json:"oom_kills"`  // victims killed
	KillsPerOOMEvent float64        `json:"kills_per_oom_event"`
	Reaped           int            `json:"reaped"`          // oom_reaper: reaped process
	ReapFailed       int            `json:"reap_failed"`     // oom_reaper: unable to reap
	HandedOver       int            `json:"handed_over"`     // Handed over <pid> to exit path.
	Lockups          int            `json:"lockups"`         // all lockup classes
	ByKind           map[string]int `json:"by_kind"`         // every event kind seen, counted
	FirstKillSeconds *float64       `json:"first_kill_s"`    // stress start -> first kill (console clock)
	OOMToFreedMs     []float64      `json:"oom_to_freed_ms"` // per reaped victim (OOM reaper or direct): its OOM invocation -> reaped
	// KillToExitMs: per victim the agent started and saw reaped, its
	// "Killed process" line -> the agent's exit marker (the whole thread
	// group gone and waited for).
	KillToExitMs []float64 `json:"kill_to_exit_ms,omitempty"`
	GuestAlive   bool      `json:"guest_alive"`
	// Left counts user-space processes by name when the stress phase
	// ended (nil: the guest could not be asked).
	Left map[string]int `json:"left,omitempty"`
	// Extra holds the figures a scenario names itself: "killed:<stressor>",
	// "running:", "exited:", "failed:" and "probe:<name>".
	Extra map[string]float64 `json:"extra,omitempty"`
}

// Facts is everything a guest run observed that figures are made from.
type Facts struct {
	// Events are the console events of the run, in order. The first
	// stress_start marker among them is the start of the stress phase on
	// the console clock.
	Events     []console.Event
	Boot       time.Duration // QEMU start -> agent answered
	Stress     time.Duration // length of the stress phase
	GuestAlive bool          // the agent answered after the stress phase
	// Left is the census: user-space processes by name when the stress
	// phase ended; nil when the guest could not be asked.
	Left map[string]int
	// Stressors names every stressor of the scenario, so that each has its
	// killed/running/exited/failed figures, 0 when no instance ended so.
	Stressors []string
	Exits     []Exit             // how each stressor instance ended
	Probes    map[string]float64 // what each probe read, by probe name
	// WorseIf are the scenario's bad outcomes (figure -> condition, as
	// in expect): each becomes worse_if:<figure> <condition>, 1 when the
	// run had it, compared between variants as a rate (see WorseIfRate).
	WorseIf map[string]string
}

// Exit is how one stressor instance ended.
type Exit struct {
	Name     string // the stressor's name
	ExitCode int
	Signal   string // "" when it exited
	Running  bool   // still running when the stress phase ended
	Output   string // the tail of its output: test output (KTAP) becomes selftest figures
}

// KillCounter counts OOM kills the way the figures do, one event at a
// time, so that a live stop condition and the final figures agree:
// memory.oom.group kills print the chosen victim a second time from the
// group walk (6.12 and earlier), which is one task and one kill within an
// OOM event.
type KillCounter struct {
	Kills     int
	killedNow map[int]bool // victims of the current OOM event
}

// Add takes the next event and says whether it is a new kill.
func (k *KillCounter) Add(e console.Event) bool {
	switch e.Kind {
	case console.OOMInvoked:
		k.killedNow = nil
	case console.OOMKill:
		if e.PID != nil {
			if k.killedNow[*e.PID] {
				return false
			}
			if k.killedNow == nil {
				k.killedNow = map[int]bool{}
			}
			k.killedNow[*e.PID] = true
		}
		k.Kills++
		return true
	}
	return false
}

// Compute makes the figures of one run from its facts.
func Compute(in Facts) Figures {
	f := fromEvents(in.Events)
	f.BootSeconds = in.Boot.Seconds()
	f.StressSeconds = in.Stress.Seconds()
	f.GuestAlive = in.GuestAlive
	f.Left = in.Left
	f.Extra = stressorFigures(in.Stressors, in.Exits)
	selftestFigures(f.Extra, in.Exits)
	for k, v := range in.Probes {
		f.Extra["probe:"+k] = v
	}
	for k, v := range Cost(in.Events) {
		f.Extra[k] = v
	}
	for fig, cond := range in.WorseIf {
		c, err := ParseCondition(cond)
		v, ok := f.Value(fig)
		if err != nil || !ok {
			continue // validated by the scenario; no value, no outcome
		}
		bad := 0.0
		if c.Holds(v) {
			bad = 1
		}
		f.Extra[WorseIfFamily+":"+WorseIfName(fig, c)] = bad
	}
	return f
}

// WorseIfFamily is the family of the scenarios' worse_if outcomes.
const WorseIfFamily = "worse_if"

// WorseIfName is the member name, and the rate's name, of a worse_if
// condition: "oom_kills > 1".
func WorseIfName(fig string, c Condition) string { return fig + " " + c.String() }

// fromEvents makes the figures the console shows.
func fromEvents(evs []console.Event) Figures {
	f := Figures{ByKind: map[string]int{}}
	var stressStart, lastInvoked *float64
	invokedFor := map[int]float64{} // victim pid -> time of the OOM invocation that killed it
	killedAt := map[int]float64{}   // victim pid -> time of its kill line
	var kills KillCounter
	for _, e := range evs {
		if e.Kind == console.StressStart {
			// The runner's own marker: a time, not a finding to count.
			if stressStart == nil {
				stressStart = e.Time
			}
			continue
		}
		newKill := kills.Add(e)
		f.ByKind[string(e.Kind)]++
		if e.Kind.IsLockup() {
			f.Lockups++
		}
		switch e.Kind {
		case console.OOMInvoked:
			f.OOMEvents++
			lastInvoked = e.Time
		case console.OOMKill:
			if !newKill {
				f.ByKind["oom_kill_repeated"]++
				continue
			}
			f.OOMKills++
			if e.Time != nil && stressStart != nil && f.FirstKillSeconds == nil {
				d := *e.Time - *stressStart
				f.FirstKillSeconds = &d
			}
			if e.PID != nil && lastInvoked != nil {
				invokedFor[*e.PID] = *lastInvoked
			}
			if e.PID != nil && e.Time != nil {
				killedAt[*e.PID] = *e.Time
			}
		case console.TaskExit:
			if e.PID != nil && e.Time != nil {
				if t, ok := killedAt[*e.PID]; ok {
					f.KillToExitMs = append(f.KillToExitMs, (*e.Time-t)*1000)
					delete(killedAt, *e.PID)
				}
			}
		case console.OOMReaped:
			f.Reaped++
			if e.PID != nil && e.Time != nil {
				if t, ok := invokedFor[*e.PID]; ok {
					f.OOMToFreedMs = append(f.OOMToFreedMs, (*e.Time-t)*1000)
					delete(invokedFor, *e.PID)
				}
			}
		case console.OOMReapFailed:
			f.ReapFailed++
		case console.HandedOver:
			// Not a latency: the line is printed when the OOM reaper looks,
			// OOM_REAPER_DELAY after the kill, however early the exit path
			// freed the memory.
			f.HandedOver++
		}
	}
	if f.OOMEvents > 0 {
		f.KillsPerOOMEvent = float64(f.OOMKills) / float64(f.OOMEvents)
	}
	return f
}

// stressorFigures counts, per stressor, how its instances ended.
func stressorFigures(names []string, exits []Exit) map[string]float64 {
	m := map[string]float64{}
	for _, n := range names {
		for _, fam := range []string{"killed", "running", "exited", "failed"} {
			m[fam+":"+n] = 0
		}
	}
	for _, e := range exits {
		switch {
		case e.Running:
			m["running:"+e.Name]++
		case e.Signal == "KILL":
			m["killed:"+e.Name]++
		case e.Signal == "" && e.ExitCode == 0:
			m["exited:"+e.Name]++
		case e.Signal == "":
			m["failed:"+e.Name]++
		}
	}
	return m
}

// Findings counts everything that should never happen on a healthy guest.
func (f Figures) Findings() int {
	return f.Lockups + f.ByKind["panic"] + f.ByKind["bug"] + f.ByKind["warning"] + f.ByKind["agent_lost"] + f.ByKind["qemu_exited"]
}

// Value returns a figure by its name (a table row, or family:name), and
// whether it is defined for this run.
func (f Figures) Value(name string) (float64, bool) {
	if fig := Lookup(name); fig != nil {
		return fig.Value(&f)
	}
	if fam, member := FamilyOf(name); fam != nil {
		return fam.Value(&f, member)
	}
	return 0, false
}

// Quantile returns the q-quantile of xs (nearest rank, xs unsorted).
func Quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	if i < 0 {
		i = 0
	}
	return s[i]
}
