package metrics

import (
	"math"
	"testing"

	"oomlab/harness/internal/console"
)

// parse feeds console lines through the real parser.
func parse(t *testing.T, lines ...string) []console.Event {
	t.Helper()
	p := console.NewParser()
	var out []console.Event
	for _, l := range lines {
		out = append(out, p.Feed([]byte(l))...)
	}
	return append(out, p.Flush()...)
}

func nearCost(a, b float64) bool { return math.Abs(a-b) < 1e-6 }

func TestRobustFutex(t *testing.T) {
	ev := parse(t,
		"[    5.000000] oomlab: mark robust_owner pid=70",
		"[    6.000000] oomlab: mark robust_waiting pid=80 owner=70",
		"[    6.100000] oomlab: mark robust_waiting pid=81 owner=70",
		"[    6.200000] oomlab: mark robust_waiting pid=82 owner=70",
		"[    6.300000] oomlab: mark robust_waiting pid=82 owner=70", // repeated: one waiter
		"[    9.000000] memhog invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, oom_score_adj=0",
		"[    9.100000] Out of memory: Killed process 70 (robustmutex) total-vm:1000kB, anon-rss:900kB, file-rss:0kB, shmem-rss:4kB, UID:0 pgtables:8kB oom_score_adj:1000",
		"[    9.700000] oomlab: mark robust_released pid=80 owner=70 result=owner_died",
		"[    9.800000] oomlab: mark robust_released pid=80 owner=70 result=owner_died", // counted once
		"[   12.000000] oomlab: mark robust_released pid=81 owner=70 result=acquired",   // not EOWNERDEAD: hung
		"[   12.000000] oomlab: mark robust_released pid=99 owner=70 result=owner_died", // never waited
	)
	r := RobustFutex(ev)
	if r.Waiters != 3 || r.Released != 1 || r.Hung != 2 {
		t.Fatalf("waiters %d released %d hung %d, want 3 1 2", r.Waiters, r.Released, r.Hung)
	}
	if len(r.ReleaseMs) != 1 || !nearCost(r.ReleaseMs[0], 600) {
		t.Errorf("release ms %v, want [600]", r.ReleaseMs)
	}

	// No kill of the owner on the console: released, but no latency.
	r = RobustFutex(parse(t,
		"[1.0] oomlab: mark robust_waiting pid=80 owner=70",
		"[2.0] oomlab: mark robust_released pid=80 owner=70 result=owner_died"))
	if r.Released != 1 || r.Hung != 0 || len(r.ReleaseMs) != 0 {
		t.Errorf("%+v", r)
	}
	m := Cost(nil)
	if m["futex_waiters"] != 0 || m["futex_waiters_hung"] != 0 {
		t.Errorf("empty run: %v", m)
	}
	if _, ok := m["futex_release_max_ms"]; ok {
		t.Errorf("latency without a release: %v", m)
	}
}

const (
	invoked = "memhog invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, oom_score_adj=0"
	kill70  = "Out of memory: Killed process 70 (idlevictim) total-vm:1000kB, anon-rss:160000kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:8kB oom_score_adj:1000"
)

func TestOOMLockHold(t *testing.T) {
	ev := parse(t,
		"[   10.000000] "+invoked,
		"[   10.050000] Mem-Info:",
		"[   10.200000] "+kill70,
		// The oom_reaper kthread, not under the lock.
		"[   12.300000] oom_reaper: reaped process 70 (idlevictim), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB",
		// A memory.oom.group event: three kills, the hold ends at the
		// first (the others look like a rate-limited event's kill).
		"[   20.000000] "+invoked,
		"[   20.100000] Memory cgroup out of memory: Killed process 71 (memhog) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:8kB oom_score_adj:0",
		"[   20.150000] Memory cgroup out of memory: Killed process 72 (memhog) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:8kB oom_score_adj:0",
		"[   20.400000] Memory cgroup out of memory: Killed process 73 (memhog) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:8kB oom_score_adj:0",
		// An invocation that killed nothing is no sample.
		"[   30.000000] "+invoked,
		"[   31.000000] "+invoked,
		"[   31.010000] "+kill70,
	)
	h := OOMLockHoldMs(ev)
	want := []float64{200, 100, 10}
	if len(h) != len(want) {
		t.Fatalf("holds %v, want %v", h, want)
	}
	for i := range want {
		if !nearCost(h[i], want[i]) {
			t.Errorf("hold %d = %v, want %v", i, h[i], want[i])
		}
	}
	m := Cost(ev)
	if !nearCost(m["oom_lock_hold_max_ms"], 200) || !nearCost(m["oom_lock_hold_p50_ms"], 100) {
		t.Errorf("figures %v", m)
	}
	// Kill line at 31.01 of pid 70 again: the first kill counts.
	if k := KillToReapedMs(ev); len(k) != 1 || !nearCost(k[0], 2100) {
		t.Errorf("kill->reaped %v, want [2100]", k)
	}
}

func TestOOMLockHoldRateLimited(t *testing.T) {
	// The second event's dump was rate limited: no invocation line, so
	// its kill must not extend the first event's hold.
	h := OOMLockHoldMs(parse(t,
		"[ 12.20] oomloop invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=1000",
		"[ 12.23] Memory cgroup out of memory: Killed process 98 (oomloop) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:8kB oom_score_adj:1000",
		"[ 12.24] oomlab: mark oom_round ms=107.8 killed=1 round=10",
		"[ 12.63] Memory cgroup out of memory: Killed process 99 (oomloop) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:8kB oom_score_adj:1000",
	))
	if len(h) != 1 || !nearCost(h[0], 30) {
		t.Errorf("holds %v, want [30]", h)
	}
}

func TestDirectReapsAndLeft(t *testing.T) {
	ev := parse(t,
		"[ 1.0] "+invoked,
		"[ 1.1] "+kill70,
		"[ 1.25] oom_reaper: reaped process 70 (idlevictim), now anon-rss:100kB, file-rss:20kB, shmem-rss:150000kB, direct by 88 (memhog) after 118ms",
		"[ 3.0] oom_reaper: reaped process 71 (memhog), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB",
	)
	if n := DirectReaps(ev); n != 1 {
		t.Errorf("direct reaps %d, want 1", n)
	}
	if v, ok := ReapLeftMaxKB(ev); !ok || v != 150120 {
		t.Errorf("left %v %v, want 150120", v, ok)
	}
	if k := KillToReapedMs(ev); len(k) != 1 || !nearCost(k[0], 150) {
		t.Errorf("kill->reaped %v, want [150]", k)
	}
	if _, ok := ReapLeftMaxKB(nil); ok {
		t.Error("left without reaps")
	}
}

func TestMarkerFigures(t *testing.T) {
	ev := parse(t,
		"[ 1.0] oomlab: mark oom_round ms=40.5 killed=1 round=1",
		"[ 1.2] oomlab: mark oom_round ms=30 killed=1 round=2",
		"[ 1.4] oomlab: mark oom_round ms=900 killed=1 round=3",
		"[ 1.5] oomlab: mark oom_round killed=1 round=4", // no ms: skipped
		"[ 9.0] oomlab: mark timed_write ms=5012.3 errno=0 path=/sys/power/state",
		"[ 30.0] Freezing user space processes failed after 20.003 seconds (1 tasks refusing to freeze, wq_busy=0):",
		"[ 30.1] oomlab: mark timed_write ms=20100 errno=16 path=/sys/power/state",
	)
	m := Cost(ev)
	for k, want := range map[string]float64{
		"oom_rounds": 3, "oom_round_max_ms": 900, "oom_round_p50_ms": 40.5,
		"timed_write_max_ms": 20100, "timed_write_failed": 1, "freeze_failed": 1,
		"direct_reaps": 0, "futex_waiters": 0,
	} {
		if got, ok := m[k]; !ok || !nearCost(got, want) {
			t.Errorf("%s = %v (%v), want %v", k, got, ok, want)
		}
	}
	for k := range m {
		if _, ok := CostFigures[k]; !ok {
			t.Errorf("Cost returns %s, which CostFigures does not document", k)
		}
	}
}

func TestRoundsAtReap(t *testing.T) {
	ev := parse(t,
		"[ 10.00] oomlab: mark oom_round ms=100 killed=1 round=1", // 9.9-10.0
		"[ 10.90] oom_reaper: reaped process 70 (idlevictim), now anon-rss:0kB, file-rss:0kB, shmem-rss:8kB, direct by 92 (memhog) after 120ms",
		"[ 11.00] oomlab: mark oom_round ms=300 killed=1 round=2",  // 10.7-11.0: overlaps
		"[ 11.50] oomlab: mark oom_round ms=1000 killed=1 round=3", // 10.5-11.5: overlaps
		"[ 12.00] oomlab: mark oom_round ms=400 killed=1 round=4",  // 11.6-12.0
	)
	r := RoundsAtReapMs(ev)
	if len(r) != 2 || r[0] != 300 || r[1] != 1000 {
		t.Errorf("rounds at reap %v, want [300 1000]", r)
	}
	if m := Cost(ev); m["oom_round_at_reap_ms"] != 1000 {
		t.Errorf("oom_round_at_reap_ms = %v", m["oom_round_at_reap_ms"])
	}
	if r := RoundsAtReapMs(ev[:1]); len(r) != 0 {
		t.Errorf("no reap, rounds %v", r)
	}
}

func TestValueFallsBackToExtra(t *testing.T) {
	f := Figures{Extra: map[string]float64{"futex_waiters_hung": 1}}
	if v, ok := f.Value("futex_waiters_hung"); !ok || v != 1 {
		t.Errorf("Value = %v, %v", v, ok)
	}
	if _, ok := f.Value("oom_lock_hold_max_ms"); ok {
		t.Error("a figure not computed has a value")
	}
}
