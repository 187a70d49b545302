package console

import (
	"fmt"
	"strings"
	"testing"
)

// want describes an expected event; nil pointers and absent fields mean
// "must be absent" for time/cpu/pid, and fields is a required subset
// (with "-" meaning the key must be absent).
type want struct {
	kind   Kind
	line   int
	time   *float64
	cpu    *int
	pid    *int
	comm   string
	fields map[string]string
}

func f64(v float64) *float64 { return &v }

func checkEvent(t *testing.T, got Event, w want) {
	t.Helper()
	if got.Kind != w.kind || got.Line != w.line {
		t.Fatalf("got %s at line %d, want %s at line %d (%+v)", got.Kind, got.Line, w.kind, w.line, got)
	}
	eqPtr := func(name string, g, w any) {
		t.Helper()
		if fmt.Sprint(deref(g)) != fmt.Sprint(deref(w)) {
			t.Errorf("%s %s: got %v, want %v", got.Kind, name, deref(g), deref(w))
		}
	}
	eqPtr("time", got.Time, w.time)
	eqPtr("cpu", got.CPU, w.cpu)
	eqPtr("pid", got.PID, w.pid)
	if got.Comm != w.comm {
		t.Errorf("%s comm: got %q, want %q", got.Kind, got.Comm, w.comm)
	}
	for k, v := range w.fields {
		g, ok := got.Fields[k]
		switch {
		case v == "-" && ok:
			t.Errorf("%s field %s: got %q, want absent", got.Kind, k, g)
		case v != "-" && g != v:
			t.Errorf("%s field %s: got %q, want %q (all: %v)", got.Kind, k, g, v, got.Fields)
		}
	}
}

func deref(p any) any {
	switch v := p.(type) {
	case *float64:
		if v != nil {
			return *v
		}
	case *int:
		if v != nil {
			return *v
		}
	}
	return "nil"
}

// feedAll feeds lines to a new parser, then flushes, collecting events.
func feedAll(lines ...string) []Event {
	p := NewParser()
	var evs []Event
	for _, l := range lines {
		evs = append(evs, p.Feed([]byte(l))...)
	}
	return append(evs, p.Flush()...)
}

func TestRecognisers(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		want  []want
	}{
		{
			name:  "oom invoked 6.x, invoker pid from caller id",
			lines: []string{"[   24.871902][   T78] memhog invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, oom_score_adj=0"},
			want: []want{{kind: OOMInvoked, line: 1, time: f64(24.871902), pid: intPtr(78), comm: "memhog",
				fields: map[string]string{"gfp_mask": "0x140cca", "gfp_flags": "GFP_HIGHUSER_MOVABLE|__GFP_COMP", "order": "0", "oom_score_adj": "0"}}},
		},
		{
			name:  "oom invoked 3.x with oom_adj, no flags decode",
			lines: []string{"app.out invoked oom-killer: gfp_mask=0x200da, order=0, oom_adj=0, oom_score_adj=0"},
			want: []want{{kind: OOMInvoked, line: 1, comm: "app.out",
				fields: map[string]string{"gfp_mask": "0x200da", "gfp_flags": "-", "oom_adj": "0"}}},
		},
		{
			name:  "invoked oom-killer in prose is not an event (comm > 15 bytes)",
			lines: []string{"Then the machine invoked oom-killer: gfp_mask=0x0, order=0, oom_score_adj=0"},
		},
		{
			name: "5.x+ kill with oom-kill summary, cpuset constraint and comma nodemask",
			lines: []string{
				"[ 5.0] oom-kill:constraint=CONSTRAINT_MEMORY_POLICY,nodemask=0-1,3,cpuset=/,mems_allowed=0-3,global_oom,task_memcg=/a,b,task=memhog,pid=5,uid=0",
				"[ 5.1] Out of memory: Killed process 5 (memhog) total-vm:100kB, anon-rss:90kB, file-rss:4kB, shmem-rss:0kB, UID:0 pgtables:8kB oom_score_adj:-17",
			},
			want: []want{{kind: OOMKill, line: 2, time: f64(5.1), pid: intPtr(5), comm: "memhog",
				fields: map[string]string{"constraint": "mempolicy", "nodemask": "0-1,3", "task_memcg": "/a,b", "mems_allowed": "0-3",
					"total_vm_kb": "100", "anon_rss_kb": "90", "file_rss_kb": "4", "shmem_rss_kb": "0", "uid": "0", "pgtables_kb": "8", "oom_score_adj": "-17"}}},
		},
		{
			name: "oom-kill summary for another pid is not applied",
			lines: []string{
				"oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/x,mems_allowed=0,global_oom,task_memcg=/,task=a,pid=5,uid=0",
				"Memory cgroup out of memory: Killed process 6 (b) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB",
			},
			want: []want{{kind: OOMKill, line: 2, pid: intPtr(6), comm: "b", fields: map[string]string{"constraint": "memcg", "cpuset": "-"}}},
		},
		{
			name: "oom_kill_allocating_task",
			lines: []string{
				"Out of memory (oom_kill_allocating_task): Killed process 7 (x y) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:1000 pgtables:4kB oom_score_adj:0",
			},
			want: []want{{kind: OOMKill, line: 1, pid: intPtr(7), comm: "x y",
				fields: map[string]string{"constraint": "global", "policy": "oom_kill_allocating_task", "uid": "1000"}}},
		},
		{
			name: "4.x Kill process + Killed process is one event; a sacrificed child is the victim",
			lines: []string{
				"[ 9.0] Out of memory: Kill process 100 (parent) score 900 or sacrifice child",
				"[ 9.1] Killed process 101 (child (1)) total-vm:8kB, anon-rss:4kB, file-rss:0kB, shmem-rss:0kB",
			},
			want: []want{{kind: OOMKill, line: 2, time: f64(9.1), pid: intPtr(101), comm: "child (1)",
				fields: map[string]string{"score": "900", "selected_pid": "100", "selected_comm": "parent", "constraint": "global", "unconfirmed": "-"}}},
		},
		{
			name:  "4.x Kill process without Killed process is reported at end of stream",
			lines: []string{"Memory cgroup out of memory: Kill process 100 (a) score 1000 or sacrifice child", "noise"},
			want: []want{{kind: OOMKill, line: 1, pid: intPtr(100), comm: "a",
				fields: map[string]string{"constraint": "memcg", "unconfirmed": "true", "score": "1000"}}},
		},
		{
			name: "oom_reaper lines",
			lines: []string{
				"[ 1.0][  T30] oom_reaper: reaped process 78 (memhog), now anon-rss:0kB, file-rss:12kB, shmem-rss:4kB",
				"[ 1.1][  T30] oom_reaper: unable to reap pid:79 (mem hog)",
			},
			want: []want{
				{kind: OOMReaped, line: 1, time: f64(1), pid: intPtr(78), comm: "memhog",
					fields: map[string]string{"anon_rss_kb": "0", "file_rss_kb": "12", "shmem_rss_kb": "4"}},
				{kind: OOMReapFailed, line: 2, time: f64(1.1), pid: intPtr(79), comm: "mem hog"},
			},
		},
		{
			name:  "direct reap by an allocating task (oomlab patch 3)",
			lines: []string{"[ 3.0][  T88] oom_reaper: reaped process 70 (idle victim), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB, direct by 88 (memhog) after 118ms"},
			want: []want{{kind: OOMReaped, line: 1, time: f64(3), pid: intPtr(70), comm: "idle victim",
				fields: map[string]string{"anon_rss_kb": "0", "file_rss_kb": "0", "shmem_rss_kb": "0",
					"reaper_pid": "88", "reaper_comm": "memhog", "direct_after_ms": "118"}}},
		},
		{
			name:  "handed over, caller id is not the victim",
			lines: []string{"[ 2.0][  T30] Handed over 78 to exit path.", "oom_reaper: Handed over pid:79 (memhog) to exit path"},
			want: []want{
				{kind: HandedOver, line: 1, time: f64(2), pid: intPtr(78)},
				{kind: HandedOver, line: 2, pid: intPtr(79), comm: "memhog"},
			},
		},
		{
			name: "oomlab agent exit markers; a mention is not one",
			lines: []string{
				"[ 9.5][   T61] oomlab-agent: exit pid=70 comm=threadhog signal=KILL",
				"[ 9.6][   T61] oomlab-agent: exit pid=71 comm=memhog status=0",
				"[ 9.7][   T61] oomlab: note oomlab-agent: exit pid=72 comm=x signal=KILL",
				"oomlab-agent: exit pid=73 comm=x signal=KILL and more",
			},
			want: []want{
				{kind: TaskExit, line: 1, time: f64(9.5), pid: intPtr(70), comm: "threadhog", fields: map[string]string{"signal": "KILL"}},
				{kind: TaskExit, line: 2, time: f64(9.6), pid: intPtr(71), comm: "memhog", fields: map[string]string{"status": "0"}},
			},
		},
		{
			name: "oomlab stress start marker; a mention is not one",
			lines: []string{
				"[    4.250000][   T70] oomlab: stress start smoke-baseline-1",
				"[    5.000000] oomlab: stress start",
				"[    6.000000] note: oomlab: stress start x",
				"oomlab: stress start a b",
				"[    7.500000] oomlab: stress start tetsuo-rt-idle-baseline-0 round 12",
				"[    7.600000] oomlab: stress start x round two",
			},
			want: []want{
				{kind: StressStart, line: 1, time: f64(4.25), fields: map[string]string{"run": "smoke-baseline-1"}},
				{kind: StressStart, line: 2, time: f64(5)},
				{kind: StressStart, line: 5, time: f64(7.5), fields: map[string]string{"run": "tetsuo-rt-idle-baseline-0", "round": "12"}},
			},
		},
		{
			name: "stressor markers and freezer failures",
			lines: []string{
				"[ 9.5][   T61] oomlab: mark robust_released pid=71 owner=70 result=owner_died",
				"[ 9.6] oomlab: mark oom_round ms=12.5 killed=1 round=3",
				"[ 9.7] oomlab: marked robust_released pid=72",
				"[ 9.8] oomlab: mark Bad pid=73",
				"[20.1] Freezing user space processes failed after 20.003 seconds (1 tasks refusing to freeze, wq_busy=0):",
				"[20.2] Freezing user space processes completed (elapsed 0.001 seconds)",
				"Freezing of tasks failed after 20.01 seconds (1 tasks refusing to freeze, wq_busy=0):",
			},
			want: []want{
				{kind: Marker, line: 1, time: f64(9.5), pid: intPtr(71), fields: map[string]string{"name": "robust_released", "owner": "70", "result": "owner_died"}},
				{kind: Marker, line: 2, time: f64(9.6), fields: map[string]string{"name": "oom_round", "ms": "12.5", "killed": "1", "round": "3"}},
				{kind: FreezeFailed, line: 5, time: f64(20.1), fields: map[string]string{"what": "user space processes", "outcome": "failed"}},
				{kind: FreezeFailed, line: 7, fields: map[string]string{"what": "tasks", "outcome": "failed"}},
			},
		},
		{
			name: "soft lockup: message pid wins over caller, comm with colons",
			lines: []string{
				"[ 48.1][    T5] watchdog: BUG: soft lockup - CPU#3 stuck for 22s! [kworker/3:1H:120]",
				"BUG: soft lockup - CPU#0 stuck for 61s! [a.out:9]",
			},
			want: []want{
				{kind: SoftLockup, line: 1, time: f64(48.1), cpu: intPtr(3), pid: intPtr(120), comm: "kworker/3:1H", fields: map[string]string{"stuck_seconds": "22"}},
				{kind: SoftLockup, line: 2, cpu: intPtr(0), pid: intPtr(9), comm: "a.out", fields: map[string]string{"stuck_seconds": "61"}},
			},
		},
		{
			name: "hard lockup formats",
			lines: []string{
				"watchdog: Watchdog detected hard LOCKUP on cpu 3",
				"NMI watchdog: Watchdog detected hard LOCKUP on cpu 2",
				"[ 3.0][   C0] watchdog: CPU0: Watchdog detected hard LOCKUP on cpu 1",
			},
			want: []want{
				{kind: HardLockup, line: 1, cpu: intPtr(3)},
				{kind: HardLockup, line: 2, cpu: intPtr(2)},
				{kind: HardLockup, line: 3, time: f64(3), cpu: intPtr(1), fields: map[string]string{"detected_by": "0"}},
			},
		},
		{
			name:  "Hard LOCKUP panic alone also reports the hard lockup, on the printing CPU",
			lines: []string{"[ 7.0][   C2] Kernel panic - not syncing: Hard LOCKUP"},
			want: []want{
				{kind: HardLockup, line: 1, time: f64(7), cpu: intPtr(2), fields: map[string]string{"via": "panic"}},
				{kind: Panic, line: 1, time: f64(7), cpu: intPtr(2), fields: map[string]string{"reason": "Hard LOCKUP"}},
			},
		},
		{
			name: "Hard LOCKUP panic after the lockup line is just a panic",
			lines: []string{
				"NMI watchdog: Watchdog detected hard LOCKUP on cpu 1",
				"Kernel panic - not syncing: Hard LOCKUP",
			},
			want: []want{
				{kind: HardLockup, line: 1, cpu: intPtr(1)},
				{kind: Panic, line: 2, fields: map[string]string{"reason": "Hard LOCKUP"}},
			},
		},
		{
			name: "rcu stall flavors",
			lines: []string{
				"[ 1.0][   C3] rcu: INFO: rcu_sched self-detected stall on CPU",
				"[ 2.0][   C0] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:",
				"INFO: rcu_bh detected stalls on CPUs/tasks: { 1} (detected by 0, t=2102 jiffies)",
				"INFO: rcu_sched detected expedited stalls on CPUs/tasks: { 3-... } 21002 jiffies s: 1229 root: 0x8/.",
				"rcu: INFO: rcu_tasks_trace detected stalls on tasks:",
			},
			want: []want{
				{kind: RCUStall, line: 1, time: f64(1), cpu: intPtr(3), fields: map[string]string{"rcu_flavor": "rcu_sched", "stall": "self"}},
				{kind: RCUStall, line: 2, time: f64(2), fields: map[string]string{"rcu_flavor": "rcu_preempt", "stall": "others"}},
				{kind: RCUStall, line: 3, fields: map[string]string{"rcu_flavor": "rcu_bh", "stall": "others"}},
				{kind: RCUStall, line: 4, fields: map[string]string{"rcu_flavor": "rcu_sched", "stall": "expedited"}},
				{kind: RCUStall, line: 5, fields: map[string]string{"rcu_flavor": "rcu_tasks_trace", "stall": "tasks"}},
			},
		},
		{
			name: "hung task: caller CPU of khungtaskd is not the subject",
			lines: []string{
				"[ 1.0][   C3] INFO: task khugepaged:50 blocked for more than 120 seconds.",
				"INFO: task kworker/u8:3:4512 blocked for 62 seconds.",
			},
			want: []want{
				{kind: HungTask, line: 1, time: f64(1), pid: intPtr(50), comm: "khugepaged", fields: map[string]string{"blocked_seconds": "120"}},
				{kind: HungTask, line: 2, pid: intPtr(4512), comm: "kworker/u8:3", fields: map[string]string{"blocked_seconds": "62"}},
			},
		},
		{
			name:  "panic reason",
			lines: []string{"[ 9.5][    T1] Kernel panic - not syncing: Out of memory: system-wide panic_on_oom is enabled"},
			want: []want{{kind: Panic, line: 1, time: f64(9.5), pid: intPtr(1),
				fields: map[string]string{"reason": "Out of memory: system-wide panic_on_oom is enabled"}}},
		},
		{
			name: "bugs",
			lines: []string{
				"kernel BUG at mm/oom_kill.c:123!",
				"[ 1.0][  T77] BUG: KASAN: use-after-free in __oom_reap_task_mm+0x1a/0x1c0",
				"BUG: unable to handle page fault for address: ffffed1000000001",
				"BUG: scheduling while atomic: memhog/78/0x00000002",
				"BUG: Bad page state in process memhog  pfn:01234",
			},
			want: []want{
				{kind: Bug, line: 1, fields: map[string]string{"location": "mm/oom_kill.c:123"}},
				{kind: Bug, line: 2, time: f64(1), pid: intPtr(77), fields: map[string]string{"sanitizer": "KASAN", "bug_type": "use-after-free", "function": "__oom_reap_task_mm+0x1a/0x1c0"}},
				{kind: Bug, line: 3, fields: map[string]string{"address": "ffffed1000000001"}},
				{kind: Bug, line: 4, pid: intPtr(78), comm: "memhog", fields: map[string]string{"reason": "scheduling while atomic: memhog/78/0x00000002"}},
				{kind: Bug, line: 5, comm: "memhog"},
			},
		},
		{
			name: "warnings",
			lines: []string{
				"------------[ cut here ]------------",
				"WARNING: CPU: 1 PID: 123 at mm/page_alloc.c:4567 __alloc_pages+0x2a1/0x460",
				"[ 3.0][ T200] WARNING: CPU: 0 PID: 200 at warn_func+0x10/0x20",
				"WARNING: at kernel/watchdog.c:245 watchdog_overflow_callback+0x9c/0xd0()",
				"[ 4.0][ T201] WARNING: possible recursive locking detected",
				"WARNING: memhog/201 still has locks held!",
			},
			want: []want{
				{kind: Warning, line: 2, cpu: intPtr(1), pid: intPtr(123), fields: map[string]string{"location": "mm/page_alloc.c:4567", "function": "__alloc_pages+0x2a1/0x460"}},
				{kind: Warning, line: 3, time: f64(3), cpu: intPtr(0), pid: intPtr(200), fields: map[string]string{"location": "-", "function": "warn_func+0x10/0x20"}},
				{kind: Warning, line: 4, fields: map[string]string{"location": "kernel/watchdog.c:245"}},
				{kind: Warning, line: 5, time: f64(4), pid: intPtr(201), fields: map[string]string{"reason": "possible recursive locking detected"}},
				{kind: Warning, line: 6, pid: intPtr(201), comm: "memhog"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := feedAll(tt.lines...)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d events, want %d: %+v", len(got), len(tt.want), got)
			}
			for i := range got {
				checkEvent(t, got[i], tt.want[i])
			}
		})
	}
}

// A lost "Killed process" line must not hold a 4.x selection forever: it
// is reported (once) when it can no longer complete.
func TestSelectionExpires(t *testing.T) {
	p := NewParser()
	if evs := p.Feed([]byte("Out of memory: Kill process 100 (a) score 1 or sacrifice child")); len(evs) != 0 {
		t.Fatalf("selection alone emitted %v", evs)
	}
	var got []Event
	for i := 0; i < selectWindow+10; i++ {
		got = append(got, p.Feed([]byte("some unrelated line"))...)
	}
	if len(got) != 1 || got[0].Kind != OOMKill || got[0].Line != 1 || got[0].Fields["unconfirmed"] != "true" {
		t.Fatalf("got %+v, want one unconfirmed oom_kill for line 1", got)
	}
	// A late "Killed process" is then an ordinary kill of its own.
	evs := p.Feed([]byte("Killed process 100 (a) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB"))
	if len(evs) != 1 || evs[0].Fields["score"] != "" {
		t.Fatalf("late Killed process: %+v", evs)
	}
	if evs := p.Flush(); len(evs) != 0 {
		t.Fatalf("Flush after completion: %+v", evs)
	}
}

func TestContextExpires(t *testing.T) {
	lines := []string{"oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/c,mems_allowed=0,global_oom,task_memcg=/,task=a,pid=5,uid=0"}
	for i := 0; i < contextWindow+1; i++ {
		lines = append(lines, "x")
	}
	lines = append(lines, "Out of memory: Killed process 5 (a) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB")
	got := feedAll(lines...)
	if len(got) != 1 || got[0].Fields["cpuset"] != "" {
		t.Fatalf("stale oom-kill summary applied: %+v", got)
	}
}

func TestHardLockupPanicWindow(t *testing.T) {
	lines := []string{"watchdog: Watchdog detected hard LOCKUP on cpu 1"}
	for i := 0; i < hardLockupWindow+1; i++ {
		lines = append(lines, "x")
	}
	lines = append(lines, "Kernel panic - not syncing: Hard LOCKUP")
	var kinds []string
	for _, e := range feedAll(lines...) {
		kinds = append(kinds, string(e.Kind))
	}
	if got := strings.Join(kinds, ","); got != "hard_lockup,hard_lockup,panic" {
		t.Fatalf("got %s", got)
	}
}

// Context state must stay bounded whatever a hostile line contains.
func TestContextBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("oom-kill:constraint=CONSTRAINT_NONE")
	for i := 0; i < 5000; i++ {
		fmt.Fprintf(&b, ",k%d=v,nodemask=%d,%d", i, i, i)
	}
	p := NewParser()
	p.Feed([]byte(b.String()))
	if !p.ctx.active || len(p.ctx.fields) > len(oomContextKeys) {
		t.Fatalf("context has %d fields", len(p.ctx.fields))
	}
	for k, v := range p.ctx.fields {
		if len(v) > maxFieldLen {
			t.Errorf("field %s is %d bytes", k, len(v))
		}
	}
}

func TestKinds(t *testing.T) {
	if len(AllKinds) != 19 {
		t.Fatalf("AllKinds has %d kinds", len(AllKinds))
	}
	seen := map[Kind]bool{}
	lockups := 0
	for _, k := range AllKinds {
		if seen[k] {
			t.Errorf("duplicate kind %s", k)
		}
		seen[k] = true
		if k.IsLockup() {
			lockups++
		}
	}
	if lockups != 6 || !WorkqueueLockup.IsLockup() || !RCUKthreadStarved.IsLockup() || !SilentHang.IsLockup() || AgentLost.IsLockup() || OOMKill.IsLockup() || Panic.IsLockup() {
		t.Errorf("IsLockup is wrong (%d lockup kinds)", lockups)
	}
	for _, r := range rules {
		if r.kind != "" && !seen[r.kind] {
			t.Errorf("rule %q yields %s, not in AllKinds", r.re, r.kind)
		}
	}
}
