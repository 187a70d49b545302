// Package metrics turns one run's console events into the figures oomlab
// reports (kills, kills per OOM event, OOM-to-freed latency, lockups by
// class), and evaluates scenario expectations against them.
package metrics

import (
	"math"
	"sort"
	"strings"

	"oomlab/harness/internal/console"
)

// Figures are the numbers of one guest run.
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

// Compute derives the figures from the events of one run. stressStart is
// the console timestamp of the stress-start marker, if one was seen.
func Compute(events []console.Event, stressStart *float64) Figures {
	f := Figures{ByKind: map[string]int{}}
	var lastInvoked *float64
	invokedFor := map[int]float64{} // victim pid -> time of the OOM invocation that killed it
	killedAt := map[int]float64{}   // victim pid -> time of its kill line
	var kills KillCounter
	for _, e := range events {
		newKill := kills.Add(e)
		f.ByKind[string(e.Kind)]++
		if e.Kind.IsLockup() {
			f.Lockups++
		}
		switch e.Kind {
		case "oom_invoked":
			f.OOMEvents++
			lastInvoked = e.Time
		case "oom_kill":
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
		case "task_exit":
			if e.PID != nil && e.Time != nil {
				if t, ok := killedAt[*e.PID]; ok {
					f.KillToExitMs = append(f.KillToExitMs, (*e.Time-t)*1000)
					delete(killedAt, *e.PID)
				}
			}
		case "oom_reaped":
			f.Reaped++
			if e.PID != nil && e.Time != nil {
				if t, ok := invokedFor[*e.PID]; ok {
					f.OOMToFreedMs = append(f.OOMToFreedMs, (*e.Time-t)*1000)
					delete(invokedFor, *e.PID)
				}
			}
		case "oom_reap_failed":
			f.ReapFailed++
		case "handed_over":
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

// Findings counts everything that should never happen on a healthy guest.
func (f Figures) Findings() int {
	return f.Lockups + f.ByKind["panic"] + f.ByKind["bug"] + f.ByKind["warning"]
}

// Value returns a figure by its scenario name (see scenario.Figures), and
// whether it is defined for this run.
func (f Figures) Value(name string) (float64, bool) {
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	if fam, n, ok := strings.Cut(name, ":"); ok {
		if fam == "left" {
			if f.Left == nil {
				return 0, false
			}
			return float64(f.Left[n]), true
		}
		v, ok := f.Extra[name]
		return v, ok
	}
	switch name {
	case "oom_events":
		return float64(f.OOMEvents), true
	case "oom_kills":
		return float64(f.OOMKills), true
	case "kills_per_oom_event":
		return f.KillsPerOOMEvent, f.OOMEvents > 0
	case "reaped":
		return float64(f.Reaped), true
	case "reap_failed":
		return float64(f.ReapFailed), true
	case "handed_over":
		return float64(f.HandedOver), true
	case "lockups":
		return float64(f.Lockups), true
	case "soft_lockups":
		return float64(f.ByKind["soft_lockup"]), true
	case "hard_lockups":
		return float64(f.ByKind["hard_lockup"]), true
	case "rcu_stalls":
		return float64(f.ByKind["rcu_stall"]), true
	case "hung_tasks":
		return float64(f.ByKind["hung_task"]), true
	case "panics":
		return float64(f.ByKind["panic"]), true
	case "bugs":
		return float64(f.ByKind["bug"]), true
	case "warnings":
		return float64(f.ByKind["warning"]), true
	case "findings":
		return float64(f.Findings()), true
	case "guest_alive":
		return b(f.GuestAlive), true
	case "oom_to_freed_p95_ms":
		if len(f.OOMToFreedMs) == 0 {
			return 0, false
		}
		return Quantile(f.OOMToFreedMs, 0.95), true
	case "kill_to_exit_max_ms":
		if len(f.KillToExitMs) == 0 {
			return 0, false
		}
		return Quantile(f.KillToExitMs, 1), true
	case "first_kill_s":
		if f.FirstKillSeconds == nil {
			return 0, false
		}
		return *f.FirstKillSeconds, true
	}
	// The cost-side figures (cost.go) live in Extra until the figure
	// table takes them over.
	v, ok := f.Extra[name]
	return v, ok
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
