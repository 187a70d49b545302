package metrics

import (
	"math"
	"strings"
	"testing"

	"oomlab/harness/internal/console"
)

const log = `[    4.000000] oomlab: stress start t-baseline-1
[   10.000000] memhog invoked oom-killer: gfp_mask=0x140dca(GFP_HIGHUSER_MOVABLE|__GFP_COMP|__GFP_ZERO), order=0, oom_score_adj=0
[   10.100000] Out of memory: Killed process 70 (idlevictim) total-vm:170000kB, anon-rss:163840kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:400kB oom_score_adj:1000
[   12.300000] oom_reaper: reaped process 70 (idlevictim), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB
[   13.000000] memhog invoked oom-killer: gfp_mask=0x140dca(GFP_HIGHUSER_MOVABLE|__GFP_COMP|__GFP_ZERO), order=0, oom_score_adj=0
[   13.010000] Out of memory: Killed process 88 (memhog) total-vm:170000kB, anon-rss:163840kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:400kB oom_score_adj:0
[   13.020000] Out of memory: Killed process 89 (memhog) total-vm:170000kB, anon-rss:163840kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:400kB oom_score_adj:0
[   15.050000] Handed over 88 to exit path.
[   20.000000] watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [rthog:75]
[   21.000000] rcu: Hierarchical RCU implementation.
`

func events(t *testing.T) []console.Event { return scan(t, log) }

func scan(t *testing.T, log string) []console.Event {
	t.Helper()
	var evs []console.Event
	if err := console.Scan(strings.NewReader(log), func(e console.Event) error {
		evs = append(evs, e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestCompute(t *testing.T) {
	f := Compute(Facts{Events: events(t)})
	if f.OOMEvents != 2 || f.OOMKills != 3 || f.Reaped != 1 || f.HandedOver != 1 || f.Lockups != 1 {
		t.Fatalf("counts wrong: %+v", f)
	}
	if f.KillsPerOOMEvent != 1.5 {
		t.Errorf("kills per OOM event %v, want 1.5", f.KillsPerOOMEvent)
	}
	if f.FirstKillSeconds == nil || math.Abs(*f.FirstKillSeconds-6.1) > 1e-9 {
		t.Errorf("first kill %v, want 6.1 (from the stress_start marker)", f.FirstKillSeconds)
	}
	if _, ok := f.ByKind["stress_start"]; ok {
		t.Errorf("the runner's marker is counted as an event kind: %v", f.ByKind)
	}
	if _, ok := f.Value("nofamily:x"); ok {
		t.Error("unknown family has a value")
	}
	// 70: invoked 10.0 -> reaped 12.3; 88 was handed over, which says
	// nothing about when its memory was freed.
	want := []float64{2300}
	if len(f.OOMToFreedMs) != 1 || math.Abs(f.OOMToFreedMs[0]-want[0]) > 1e-6 {
		t.Errorf("OOM->freed %v, want %v", f.OOMToFreedMs, want)
	}
	if v, ok := f.Value("oom_to_freed_p95_ms"); !ok || math.Abs(v-2300) > 1e-6 {
		t.Errorf("p95 %v %v", v, ok)
	}
	if v, _ := f.Value("findings"); v != 1 {
		t.Errorf("findings %v, want 1 (the soft lockup; the RCU banner is not one)", v)
	}
	if _, ok := f.Value("no_such_figure"); ok {
		t.Error("unknown figure has a value")
	}
}

func TestComputeEmpty(t *testing.T) {
	f := Compute(Facts{})
	if f.OOMKills != 0 || f.FirstKillSeconds != nil {
		t.Errorf("%+v", f)
	}
	if _, ok := f.Value("kills_per_oom_event"); ok {
		t.Error("kills per OOM event defined without OOM events")
	}
	if _, ok := f.Value("oom_to_freed_p95_ms"); ok {
		t.Error("latency defined without any reap")
	}
}

func TestQuantile(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3}
	if q := Quantile(xs, 0.5); q != 3 {
		t.Errorf("median %v", q)
	}
	if q := Quantile(xs, 0.95); q != 5 {
		t.Errorf("p95 %v", q)
	}
	if !math.IsNaN(Quantile(nil, 0.5)) {
		t.Error("quantile of nothing is a number")
	}
	if xs[0] != 5 {
		t.Error("Quantile sorted its input in place")
	}
}

// A memory.oom.group kill prints the chosen victim twice (6.12): one task
// is one kill.
func TestOOMGroupRepeatedVictim(t *testing.T) {
	const group = `[    4.083445][   T54] memhog invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0
[    4.135653][   T54] Memory cgroup out of memory: Killed process 54 (memhog) total-vm:60388kB, anon-rss:58624kB, file-rss:0kB, shmem-rss:584kB, UID:0 pgtables:152kB oom_score_adj:0
[    4.141330][   T54] Tasks in /group are going to be killed due to memory.oom.group set
[    4.143348][   T54] Memory cgroup out of memory: Killed process 53 (memhog) total-vm:50148kB, anon-rss:47616kB, file-rss:0kB, shmem-rss:648kB, UID:0 pgtables:132kB oom_score_adj:0
[    4.149403][   T54] Memory cgroup out of memory: Killed process 54 (memhog) total-vm:60388kB, anon-rss:58624kB, file-rss:0kB, shmem-rss:584kB, UID:0 pgtables:152kB oom_score_adj:0
[    4.150008][   T54] Memory cgroup out of memory: Killed process 59 (memhog) total-vm:48100kB, anon-rss:46592kB, file-rss:0kB, shmem-rss:648kB, UID:0 pgtables:128kB oom_score_adj:0
[    9.000000][   T60] memhog invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0
[    9.100000][   T60] Memory cgroup out of memory: Killed process 54 (memhog) total-vm:60388kB, anon-rss:58624kB, file-rss:0kB, shmem-rss:584kB, UID:0 pgtables:152kB oom_score_adj:0
`
	var evs []console.Event
	console.Scan(strings.NewReader(group), func(e console.Event) error { evs = append(evs, e); return nil })
	f := Compute(Facts{Events: evs})
	// The second event's kill of pid 54 counts: another event, another kill.
	if f.OOMEvents != 2 || f.OOMKills != 4 || f.ByKind["oom_kill_repeated"] != 1 || f.KillsPerOOMEvent != 2 {
		t.Errorf("events %d kills %d repeated %d kills/event %g", f.OOMEvents, f.OOMKills, f.ByKind["oom_kill_repeated"], f.KillsPerOOMEvent)
	}
	// The runner's live count (stop_when) is the same count.
	var k KillCounter
	for _, e := range evs {
		k.Add(e)
	}
	if k.Kills != f.OOMKills {
		t.Errorf("live kill count %d, figures %d", k.Kills, f.OOMKills)
	}
}

func TestKillToExit(t *testing.T) {
	const l = `[   10.000000] memhog invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0
[   10.100000] Out of memory: Killed process 70 (threadhog) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:1000
[   10.400000] oomlab-agent: exit pid=71 comm=memhog status=0
[   10.850000] oomlab-agent: exit pid=70 comm=threadhog signal=KILL
[   11.000000] oomlab-agent: exit pid=70 comm=threadhog signal=KILL
`
	var evs []console.Event
	console.Scan(strings.NewReader(l), func(e console.Event) error { evs = append(evs, e); return nil })
	f := Compute(Facts{Events: evs})
	if len(f.KillToExitMs) != 1 || math.Abs(f.KillToExitMs[0]-750) > 0.01 {
		t.Errorf("kill to exit = %v, want [750]", f.KillToExitMs)
	}
	if v, ok := f.Value("kill_to_exit_max_ms"); !ok || math.Abs(v-750) > 0.01 {
		t.Errorf("kill_to_exit_max_ms = %g %v", v, ok)
	}
	if f.Findings() != 0 {
		t.Errorf("exit markers are not findings: %d", f.Findings())
	}
}
