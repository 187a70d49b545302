package metrics

// The cost side of OOM handling (issue #12): what a faster OOM path may
// break or make slower for everybody else. Each figure is a pure function
// of one run's console events; Cost collects them for Figures.Extra under
// the names in CostFigures.

import (
	"sort"
	"strconv"

	"oomlab/harness/internal/console"
)

// CostFigures names the cost-side figures Cost computes, with their docs.
var CostFigures = map[string]string{
	"futex_waiters":          "robust-mutex waiters that blocked on a mutex held by the victim ('mark robust_waiting')",
	"futex_waiters_released": "of those, the ones that got EOWNERDEAD",
	"futex_waiters_hung":     "of those, the ones never released by the end of the run (timed out, or still blocked)",
	"futex_release_max_ms":   "longest time from the mutex owner's OOM kill to a waiter's EOWNERDEAD (kernel clock)",
	"oom_lock_hold_max_ms":   "longest 'invoked oom-killer' -> first 'Killed process' line of the same OOM event, both printed under oom_lock",
	"oom_lock_hold_p50_ms":   "median of the same over the OOM events that killed",
	"direct_reaps":           "reaps done by an allocating task under oom_lock (', direct by ...'); their hold time is not on the console",
	"kill_to_reaped_max_ms":  "longest time from a victim's 'Killed process' line to its reap (OOM reaper or direct)",
	"reap_left_max_kb":       "most memory (anon+file+shmem rss) a reap left behind in a victim: what the reaper cannot free",
	"oom_rounds":             "oomloop rounds ('mark oom_round'): memcg OOMs of a bystander cgroup",
	"oom_round_max_ms":       "longest oomloop round (fork -> child OOM-killed -> reaped by the parent)",
	"oom_round_p50_ms":       "median oomloop round",
	"oom_round_at_reap_ms":   "longest oomloop round in progress when a victim's reap line was printed (a direct reap zaps under oom_lock, the oom_reaper does not)",
	"timed_write_max_ms":     "longest timedwrite write ('mark timed_write'), e.g. freeze to /sys/power/state (with pm_test=freezer: freeze, the pm_test_delay, thaw)",
	"timed_write_failed":     "timedwrite writes that failed (errno != 0), e.g. EBUSY: the freeze or oom_killer_disable() failed",
	"freeze_failed":          "'Freezing ... failed/aborted' lines of the PM freezer",
}

// costRows are the cost-side figures' rows of the figure table: their
// values are in Figures.Extra (Compute puts them there). A direction is
// given only where it is unambiguous; per-run latencies are compared as a
// distribution of one value per run.
func costRows() []Figure {
	type spec struct {
		unit   string
		better Direction
		dist   bool // compare the per-run values as a distribution
	}
	specs := map[string]spec{
		"futex_waiters":          {Count, None, false},
		"futex_waiters_released": {Count, None, false},
		"futex_waiters_hung":     {Count, Lower, false},
		"futex_release_max_ms":   {Millis, Lower, true},
		"oom_lock_hold_max_ms":   {Millis, Lower, true},
		"oom_lock_hold_p50_ms":   {Millis, None, false},
		"direct_reaps":           {Count, None, false},
		"kill_to_reaped_max_ms":  {Millis, Lower, true},
		"reap_left_max_kb":       {"KiB", None, false},
		"oom_rounds":             {Count, None, false},
		"oom_round_max_ms":       {Millis, Lower, true},
		"oom_round_p50_ms":       {Millis, None, false},
		"oom_round_at_reap_ms":   {Millis, Lower, true},
		"timed_write_max_ms":     {Millis, None, false},
		"timed_write_failed":     {Count, Lower, false},
		"freeze_failed":          {Count, Lower, false},
	}
	names := make([]string, 0, len(CostFigures))
	for n := range CostFigures {
		names = append(names, n)
	}
	sort.Strings(names)
	rows := make([]Figure, 0, len(names))
	for _, n := range names {
		sp, name := specs[n], n
		fig := Figure{Name: name, Unit: sp.unit, Doc: CostFigures[name], Field: "extra",
			Better: sp.better, Compare: true,
			Value: func(f *Figures) (float64, bool) { v, ok := f.Extra[name]; return v, ok }}
		if sp.dist {
			fig.Samples = func(f *Figures) []float64 {
				if v, ok := f.Extra[name]; ok {
					return []float64{v}
				}
				return nil
			}
		}
		rows = append(rows, fig)
	}
	return rows
}

func init() { Table = append(Table, costRows()...) }

// Cost computes the cost-side figures of one run. Counts are always
// present; latencies only when there was something to measure.
func Cost(events []console.Event) map[string]float64 {
	m := map[string]float64{}
	rf := RobustFutex(events)
	m["futex_waiters"] = float64(rf.Waiters)
	m["futex_waiters_released"] = float64(rf.Released)
	m["futex_waiters_hung"] = float64(rf.Hung)
	if len(rf.ReleaseMs) > 0 {
		m["futex_release_max_ms"] = Quantile(rf.ReleaseMs, 1)
	}
	if h := OOMLockHoldMs(events); len(h) > 0 {
		m["oom_lock_hold_max_ms"] = Quantile(h, 1)
		m["oom_lock_hold_p50_ms"] = Quantile(h, 0.5)
	}
	m["direct_reaps"] = float64(DirectReaps(events))
	if k := KillToReapedMs(events); len(k) > 0 {
		m["kill_to_reaped_max_ms"] = Quantile(k, 1)
	}
	if left, ok := ReapLeftMaxKB(events); ok {
		m["reap_left_max_kb"] = left
	}
	rounds := MarkerValues(events, "oom_round", "ms")
	m["oom_rounds"] = float64(len(rounds))
	if len(rounds) > 0 {
		m["oom_round_max_ms"] = Quantile(rounds, 1)
		m["oom_round_p50_ms"] = Quantile(rounds, 0.5)
	}
	if r := RoundsAtReapMs(events); len(r) > 0 {
		m["oom_round_at_reap_ms"] = Quantile(r, 1)
	}
	if w := MarkerValues(events, "timed_write", "ms"); len(w) > 0 {
		m["timed_write_max_ms"] = Quantile(w, 1)
	}
	failed := 0
	for _, e := range markers(events, "timed_write") {
		if e.Fields["errno"] != "0" {
			failed++
		}
	}
	m["timed_write_failed"] = float64(failed)
	freeze := 0
	for _, e := range events {
		if e.Kind == console.FreezeFailed {
			freeze++
		}
	}
	m["freeze_failed"] = float64(freeze)
	return m
}

// RobustFutexResult is what the robust-mutex waiters saw.
type RobustFutexResult struct {
	Waiters, Released, Hung int
	ReleaseMs               []float64 // per released waiter: owner's kill -> EOWNERDEAD
}

// RobustFutex pairs robustmutex's markers: a waiter ("robust_waiting") is
// released by its "robust_released ... result=owner_died" marker and hung
// otherwise (no release marker, a timeout, or a release without
// EOWNERDEAD). The release latency is timed from the OOM kill of the
// owner named in the marker.
func RobustFutex(events []console.Event) RobustFutexResult {
	var r RobustFutexResult
	killed := map[string]float64{} // pid -> time of its first kill line
	waiting := map[int]bool{}
	released := map[int]bool{}
	for _, e := range events {
		switch {
		case e.Kind == console.OOMKill && e.PID != nil && e.Time != nil:
			k := strconv.Itoa(*e.PID)
			if _, ok := killed[k]; !ok {
				killed[k] = *e.Time
			}
		case isMarker(e, "robust_waiting") && e.PID != nil:
			if !waiting[*e.PID] {
				waiting[*e.PID] = true
				r.Waiters++
			}
		case isMarker(e, "robust_released") && e.PID != nil && waiting[*e.PID] && !released[*e.PID]:
			if e.Fields["result"] != "owner_died" {
				continue
			}
			released[*e.PID] = true
			r.Released++
			if t, ok := killed[e.Fields["owner"]]; ok && e.Time != nil {
				r.ReleaseMs = append(r.ReleaseMs, (*e.Time-t)*1000)
			}
		}
	}
	r.Hung = r.Waiters - r.Released
	return r
}

// OOMLockHoldMs returns, per OOM event that killed, the time from its
// "invoked oom-killer" line (printed right after oom_lock is taken) to its
// first "Killed process" line, both printed under oom_lock (a lower bound
// of the hold). Later kill lines are not counted: a memory.oom.group's
// members and the kill of a rate-limited event (which prints no
// invocation line) look alike on the console. Invocations with no kill
// line, or without timestamps, are left out. The oom_reaper's "reaped"
// lines come from its kthread and a direct reap happens in a later
// out_of_memory() call, so neither is part of the invocation's hold.
func OOMLockHoldMs(events []console.Event) []float64 {
	var out []float64
	var start *float64
	for _, e := range events {
		switch e.Kind {
		case console.OOMInvoked:
			start = e.Time
		case console.OOMKill:
			if start != nil && e.Time != nil {
				out = append(out, (*e.Time-*start)*1000)
			}
			start = nil
		}
	}
	return out
}

// DirectReaps counts reaps done by an allocating task (the v1 series'
// ", direct by <pid> (<comm>) after <n>ms" suffix).
func DirectReaps(events []console.Event) int {
	n := 0
	for _, e := range events {
		if e.Kind == console.OOMReaped && e.Fields["reaper_pid"] != "" {
			n++
		}
	}
	return n
}

// KillToReapedMs returns, per victim reaped after its kill line, the time
// from "Killed process" to "oom_reaper: reaped process" (either reaper).
func KillToReapedMs(events []console.Event) []float64 {
	var out []float64
	killed := map[int]float64{}
	for _, e := range events {
		if e.PID == nil || e.Time == nil {
			continue
		}
		switch e.Kind {
		case console.OOMKill:
			if _, ok := killed[*e.PID]; !ok {
				killed[*e.PID] = *e.Time
			}
		case console.OOMReaped:
			if t, ok := killed[*e.PID]; ok {
				out = append(out, (*e.Time-t)*1000)
				delete(killed, *e.PID)
			}
		}
	}
	return out
}

// ReapLeftMaxKB is the most rss (anon + file + shmem) any reap line says
// the victim still had after the reap; false when no reap line had them.
func ReapLeftMaxKB(events []console.Event) (float64, bool) {
	best, ok := 0.0, false
	for _, e := range events {
		if e.Kind != console.OOMReaped {
			continue
		}
		sum, any := 0.0, false
		for _, k := range []string{"anon_rss_kb", "file_rss_kb", "shmem_rss_kb"} {
			if v, err := strconv.ParseFloat(e.Fields[k], 64); err == nil {
				sum += v
				any = true
			}
		}
		if any && (!ok || sum > best) {
			best, ok = sum, true
		}
	}
	return best, ok
}

// RoundsAtReapMs returns the length of every oomloop round ("mark
// oom_round ms=M", printed when the round ended, so it spans [t-M, t]) that
// was in progress when an "oom_reaper: reaped" line (either reaper) was
// printed: the bystander OOMs that overlapped a reap.
func RoundsAtReapMs(events []console.Event) []float64 {
	var reaps []float64
	for _, e := range events {
		if e.Kind == console.OOMReaped && e.Time != nil {
			reaps = append(reaps, *e.Time)
		}
	}
	var out []float64
	for _, e := range markers(events, "oom_round") {
		ms, err := strconv.ParseFloat(e.Fields["ms"], 64)
		if err != nil || e.Time == nil {
			continue
		}
		for _, t := range reaps {
			if t <= *e.Time && t >= *e.Time-ms/1000 {
				out = append(out, ms)
				break
			}
		}
	}
	return out
}

// MarkerValues returns the numeric field of every marker of that name
// (markers whose field is missing or not a number are skipped).
func MarkerValues(events []console.Event, name, field string) []float64 {
	var out []float64
	for _, e := range markers(events, name) {
		if v, err := strconv.ParseFloat(e.Fields[field], 64); err == nil {
			out = append(out, v)
		}
	}
	return out
}

func markers(events []console.Event, name string) []console.Event {
	var out []console.Event
	for _, e := range events {
		if isMarker(e, name) {
			out = append(out, e)
		}
	}
	return out
}

func isMarker(e console.Event, name string) bool {
	return e.Kind == console.Marker && e.Fields["name"] == name
}
