package console

import "regexp"

// rule is one row of the recogniser table: a pattern anchored at the start
// of the kernel message, the kind it yields, and how its fields are filled.
//
// Named groups fill the event generically: "cpu", "pid" and "comm" go to
// the Event fields of the same name, a name starting with '_' is only for
// the build hook, and any other name becomes Fields[name].
type rule struct {
	kind Kind // "" for context-only rows, which feed later events
	// needle must occur in the raw line. All needles are looked for in
	// one pass (prefilter.go) before any prefix parsing or regexp work,
	// which keeps the parser fast on the 99.9% of lines that are noise.
	needle string
	re     *regexp.Regexp
	// caller: the printing task/CPU is the subject of the event, so a
	// [Tn]/[Cn] caller id fills PID/CPU when the message names none.
	caller bool
	fields map[string]string // constant fields
	// build refines the event and may use or update parser context; it
	// returns false to drop the event (context-only rows).
	build func(p *Parser, ev *Event, m match) bool

	names []string // re.SubexpNames()
	bit   uint32   // prefilter bit of needle
}

// Comm is at most TASK_COMM_LEN-1 = 15 bytes in every kernel; bounding it
// where it leads the message keeps "... invoked oom-killer:" from matching
// prose.
const commLead = `(?P<comm>.{1,15}?)`

// oomMessage is the "message" argument of oom_kill_process(): which OOM
// killer ran: global, memory cgroup, or "(oom_kill_allocating_task)" when
// vm.oom_kill_allocating_task is set.
const oomMessage = `(?P<_message>(?:Memory cgroup o|O)ut of memory(?: \([a-z_]+\))?)`

// Optional pr_fmt prefixes of the lockup detectors: none in old 3.x,
// "NMI watchdog: " while soft and hard lockups shared kernel/watchdog.c
// (up to 4.13) and for the perf hard-lockup detector after the 4.14 split,
// "watchdog: " for kernel/watchdog.c since 4.14.
const watchdogPrefix = `(?:(?:NMI )?watchdog: )?`

// rcuPrefix: RCU got pr_fmt "rcu: " around 4.19/4.20; older stall
// reports start with "INFO:".
const rcuPrefix = `(?:rcu: )?`

// rules is ordered: the first matching row wins, so specific rows (soft
// lockup) come before general ones (any "BUG: ").
var rules = []rule{
	// mm/oom_kill.c dump_header(), all versions. Older kernels add
	// "oom_adj=" (2.6/3.x) or "nodemask=" (some 4.x) and print gfp_mask
	// without the decoded flags; build parses any key=value list.
	{kind: OOMInvoked, needle: "invoked oom-killer", caller: true,
		re:    re(`^` + commLead + ` invoked oom-killer: (?P<_args>.*)$`),
		build: buildOOMInvoked},

	// dump_oom_summary()/dump_oom_victim(), 4.19+: one-line context of
	// the kill that follows; it yields no event itself.
	{needle: "oom-kill:",
		re:    re(`^oom-kill:(?P<_args>constraint=.*)$`),
		build: buildOOMContext},

	// oom_kill_process() until the "sacrifice child" heuristic was
	// removed in the 5.x series: victim selection, followed by the
	// "Killed process" line (of a child if one was sacrificed). 2.6.x
	// said "kill process ... or a child". Held until "Killed process".
	{needle: "ill process",
		re:    re(`^` + oomMessage + `: [Kk]ill process (?P<pid>\d+) \((?P<comm>.*)\) score (?P<score>\d+) or (?:sacrifice child|a child)$`),
		build: buildOOMSelect},

	// __oom_kill_process(). Without the message prefix while the
	// selection line above existed; "Out of memory: Killed process ..."
	// after. The key:value list grew over time (shmem-rss: in 4.x;
	// UID:, pgtables:, oom_score_adj: in 5.x), so build parses any list.
	{kind: OOMKill, needle: "Killed process",
		re:    re(`^(?:` + oomMessage + `: )?Killed process (?P<pid>\d+) \((?P<comm>.*)\)(?:,? (?P<_kv>total-vm:.*))?$`),
		build: buildOOMKill},

	// oom_reaper (4.6+).
	{kind: OOMReaped, needle: "oom_reaper",
		// oomlab's direct-reaping patch appends ", direct by <pid>
		// (<comm>) after <n>ms" when an allocating task did the reap.
		re:    re(`^oom_reaper: reaped process (?P<pid>\d+) \((?P<comm>.*)\), now (?P<_kv>.*?)(?:, direct by (?P<reaper_pid>\d+) \((?P<reaper_comm>.*)\) after (?P<direct_after_ms>\d+)ms)?$`),
		build: buildKV},
	{kind: OOMReapFailed, needle: "oom_reaper",
		re: re(`^oom_reaper: unable to reap pid: ?(?P<pid>\d+) \((?P<comm>.*)\)$`)},

	// Debug line of the 2018 "hand over MMF_OOM_SKIP to exit path"
	// patch, carried by oomlab's kernel patch set.
	{kind: HandedOver, needle: "Handed over",
		re: re(`^(?:oom_reaper: )?Handed over (?:pid:)?(?P<pid>\d+)(?: \((?P<comm>.*)\))? to exit path\.?$`)},

	// oomlab's guest agent: a command it started was reaped.
	{kind: TaskExit, needle: "oomlab-agent: exit",
		re: re(`^oomlab-agent: exit pid=(?P<pid>\d+) comm=(?P<comm>\S*) (?:signal=(?P<signal>[A-Z0-9]+)|status=(?P<status>\d+))$`)},

	// oomlab's runner: a round of the stress phase starts ("oomlab:
	// stress start <run> round <n>"; older runners wrote no round).
	{kind: StressStart, needle: "oomlab: stress start",
		re: re(`^oomlab: stress start(?: (?P<run>\S+))?(?: round (?P<round>\d+))?$`)},

	// oomlab's stressors: "oomlab: mark <name> key=value ...".
	{kind: Marker, needle: "oomlab: mark ",
		re:    re(`^oomlab: mark (?P<name>[a-z0-9_]+)(?P<_kv>(?: [a-z0-9_]+=\S*)*)\s*$`),
		build: buildMarker},

	// kernel/power/process.c try_to_freeze_tasks(): the freezer gave up
	// (suspend, hibernation, PM test mode).
	{kind: FreezeFailed, needle: "Freezing ",
		re: re(`^Freezing (?:of )?(?P<what>tasks|user space processes|remaining freezable tasks) (?P<outcome>failed|aborted)`)},

	// kernel/watchdog.c watchdog_timer_fn(), all versions.
	{kind: SoftLockup, needle: "soft lockup",
		re: re(`^` + watchdogPrefix + `BUG: soft lockup - CPU#(?P<cpu>\d+) stuck for (?P<stuck_seconds>\d+)s! \[(?P<comm>.*):(?P<pid>\d+)\]`)},

	// watchdog_hardlockup_check(): "Watchdog detected hard LOCKUP on cpu
	// N" since 3.x (the text of a WARN in 3.x, pr_emerg later). Some 6.x
	// kernels (from 6.5, when the buddy detector came; gone again in
	// 6.12) print "CPU3: Watchdog detected hard LOCKUP on cpu 1", where 3
	// is the reporting CPU.
	{kind: HardLockup, needle: "LOCKUP",
		re: re(`^` + watchdogPrefix + `(?:CPU(?P<detected_by>\d+): )?Watchdog detected hard LOCKUP on cpu (?P<cpu>\d+)`)},

	// kernel/rcu/tree_stall.h (tree.c in older kernels). 3.x printed the
	// stalled CPUs on the same line ("on CPU { 2} (t=..."), later kernels
	// on the next lines.
	{kind: RCUStall, needle: "INFO: ", caller: true, fields: map[string]string{"stall": "self"},
		re: re(`^` + rcuPrefix + `INFO: (?P<rcu_flavor>rcu_\w+) self-detected stall on CPU(?:\s*\{\s*(?P<cpu>\d+)\s*\})?`)},
	// kernel/rcu/tree_exp.h (expedited grace periods, 4.x+).
	{kind: RCUStall, needle: "INFO: ", fields: map[string]string{"stall": "expedited"},
		re: re(`^` + rcuPrefix + `INFO: (?P<rcu_flavor>rcu_\w+) detected expedited stalls`)},
	// kernel/rcu/tasks.h (update.c in older kernels): rcu_tasks,
	// rcu_tasks_trace, rcu_tasks_rude.
	{kind: RCUStall, needle: "INFO: ", fields: map[string]string{"stall": "tasks"},
		re: re(`^` + rcuPrefix + `INFO: (?P<rcu_flavor>rcu_tasks\w*) detected stalls`)},
	// Including "detected stall, but suppressed full report due to a
	// stuck CSD-lock" (6.x).
	{kind: RCUStall, needle: "INFO: ", fields: map[string]string{"stall": "others"},
		re: re(`^` + rcuPrefix + `INFO: (?P<rcu_flavor>rcu_\w+) detected stalls?\b`)},

	// kernel/rcu/tree_stall.h rcu_check_gp_kthread_starvation() (4.15+;
	// "g3 c2" in 4.x, "g-1187" later): printed inside a stall report, a
	// class of its own: the grace-period kthread got no CPU.
	{kind: RCUKthreadStarved, needle: "kthread starved",
		re: re(`^` + rcuPrefix + `(?P<rcu_flavor>rcu_\w+) kthread starved for (?P<starved_jiffies>\d+) jiffies!(?:.*->cpu=(?P<cpu>\d+))?`)},

	// kernel/hung_task.c, all versions. Old kernels print the timeout,
	// newer ones the time actually blocked ("more than 143 seconds");
	// some debug patches print "blocked for 62 seconds".
	{kind: HungTask, needle: "INFO: task ",
		re: re(`^INFO: task (?P<comm>.*):(?P<pid>\d+) blocked for (?:more than )?(?P<blocked_seconds>\d+) seconds`)},

	// kernel/hung_task.c of 7.0-era kernels reports a task waiting in
	// io_schedule() as "INFO: task dd:456 blocked in I/O wait for more
	// than 122 seconds." (seen in 2026 reports; the printk is newer than
	// the stored sources read for issue #14).
	{kind: HungTask, needle: "INFO: task ", fields: map[string]string{"wait": "io"},
		re: re(`^INFO: task (?P<comm>.*):(?P<pid>\d+) blocked in I/O wait for more than (?P<blocked_seconds>\d+) seconds`)},

	// kernel/hung_task.c debug_show_blocker()
	// (CONFIG_DETECT_HUNG_TASK_BLOCKER), printed after the task dump of
	// a hung task: the mutex owner since 6.14, the last holder of a
	// semaphore since 6.16 (no "is"), the owner of an rw-semaphore since
	// 6.16 with how each side holds it ("<reader>"/"<writer>"). comm is
	// arbitrary, so both ends of the line are anchored.
	{kind: HungTaskBlocker, needle: "INFO: task ", fields: map[string]string{"lock": "mutex"},
		re: re(`^INFO: task (?P<comm>.*?):(?P<pid>\d+) is blocked on a mutex likely owned by task (?P<blocker_comm>.*?):(?P<blocker_pid>\d+)\.?$`)},
	{kind: HungTaskBlocker, needle: "INFO: task ", fields: map[string]string{"lock": "semaphore"},
		re: re(`^INFO: task (?P<comm>.*?):(?P<pid>\d+) blocked on a semaphore likely last held by task (?P<blocker_comm>.*?):(?P<blocker_pid>\d+)\.?$`)},
	{kind: HungTaskBlocker, needle: "INFO: task ", fields: map[string]string{"lock": "rw-semaphore"},
		re: re(`^INFO: task (?P<comm>.*?):(?P<pid>\d+) <(?P<blocked_as>reader|writer)> blocked on an rw-semaphore likely owned by task (?P<blocker_comm>.*?):(?P<blocker_pid>\d+) <(?P<blocker_holds_as>reader|writer)>$`)},
	// The same, when the owner cannot be found: lock only.
	{kind: HungTaskBlocker, needle: "INFO: task ",
		re: re(`^INFO: task (?P<comm>.*?):(?P<pid>\d+) is blocked on (?:a |an )(?P<lock>mutex|semaphore|rw-semaphore), but the (?:owner|last holder) is not found\.?$`)},

	// kernel/panic.c panic(), all versions. The "---[ end Kernel panic"
	// trailer does not match the anchor.
	{kind: Panic, needle: "Kernel panic", caller: true,
		re:    re(`^Kernel panic - not syncing:? ?(?P<reason>.*)$`),
		build: buildPanic},

	// kernel/workqueue.c wq_watchdog_timer_fn() (4.5+): "BUG: workqueue
	// lockup - pool cpus=1 node=0 flags=0x0 nice=0 stuck for 58s!"; an
	// unbound pool says "pool 4". Before the generic "BUG: " row.
	{kind: WorkqueueLockup, needle: "BUG",
		re: re(`^BUG: workqueue lockup - pool(?: cpus=(?P<pool_cpus>[0-9,-]+))?.*? stuck for (?P<stuck_seconds>\d+)s!`)},

	// lib/bug.c report_bug(): "kernel BUG at mm/oom_kill.c:123!"; 6.x
	// without CONFIG_DEBUG_BUGVERBOSE: "Kernel BUG at func+0x1/0x2
	// [verbose debug info unavailable]".
	{kind: Bug, needle: "BUG", caller: true,
		re: re(`^[Kk]ernel BUG at (?P<location>\S+?)!?(?:\s.*)?$`)},
	// Every other "BUG: " (page fault, KASAN, scheduling while atomic,
	// spinlock lockup, workqueue lockup, bad page state ...).
	{kind: Bug, needle: "BUG", caller: true,
		re:    re(`^BUG: (?P<reason>.+)$`),
		build: buildBugDetail},
	// arch/x86/kernel/traps.c: "general protection fault: 0000 [#1] SMP"
	// (4.x), "general protection fault, probably for non-canonical
	// address 0x...: 0000 [#1]" (5.5+), prefixed "Oops: " in recent 6.x.
	{kind: Bug, needle: "protection fault", caller: true,
		re: re(`^(?:Oops: )?(?P<reason>general protection fault\b.*)$`)},

	// arch/powerpc/kernel/watchdog.c (pr_fmt "watchdog: ", 4.13+): its
	// own SMP hard-lockup detector, which reports a CPU that stopped
	// touching the watchdog itself or, from another CPU, a list of them
	// ("CPU 0 detected hard LOCKUP on other CPUs 2-3"; cpu is then unset).
	// No other row matches these, so they sit with this series' rows.
	{kind: HardLockup, needle: "LOCKUP",
		re: re(`^watchdog: CPU (?P<cpu>\d+) self-detected hard LOCKUP @ (?P<function>\S+)`)},
	{kind: HardLockup, needle: "LOCKUP",
		re: re(`^watchdog: CPU (?P<detected_by>\d+) detected hard LOCKUP on other CPUs (?P<cpus>[\d,-]+)`)},

	// kernel/panic.c __warn() since 6.19-rc1 (28ea295f941e): "WARNING:
	// file:line at func+0x1/0x2, CPU#1: comm/2" ("WARNING: at func...,
	// CPU#1: comm/2" without CONFIG_DEBUG_BUGVERBOSE). Before the older
	// row, which would take the second form's "func+0x1/0x2," as the
	// function. The comma before CPU# was missing in the posted RFC.
	{kind: Warning, needle: "WARNING",
		re: re(`^WARNING: (?:(?P<location>\S+:\d+) )?at (?P<function>\S+?),? CPU#(?P<cpu>\d+): (?P<comm>.*)/(?P<pid>\d+)$`)},
	// kernel/panic.c __warn(): "WARNING: CPU: 1 PID: 2 at file:line
	// func+0x1/0x2" since 3.x (without file:line when
	// !CONFIG_DEBUG_BUGVERBOSE); "WARNING: at file:line func()" before.
	{kind: Warning, needle: "WARNING", caller: true,
		re: re(`^WARNING: (?:CPU: (?P<cpu>\d+) PID: (?P<pid>\d+) )?at (?:(?P<location>\S+:\d+) )?(?P<function>\S+)`)},
	// Lockdep and RCU-lockdep report headers (kernel/locking/lockdep.c);
	// "WARNING: ..." since 4.1x, "[ INFO: possible ... ]" before.
	{kind: Warning, needle: "WARNING", caller: true,
		re: re(`^WARNING: (?P<reason>possible (?:recursive locking|circular locking dependency|irq lock inversion dependency) detected|suspicious RCU usage|inconsistent lock state|lock held when returning to user space!|lock held at task exit time!|held lock freed!|bad unlock balance detected!|bad contention detected!|Nested lock was not taken|chain_key collision|[A-Z]+-safe -> [A-Z]+-unsafe lock order detected|(?P<comm>\S+)/(?P<pid>\d+) still has locks held!)$`)},
}

// bugDetails refine a "BUG: <reason>": each row is tried against the
// reason and the first match fills fields by the same group-name rules.
var bugDetails = []*regexp.Regexp{
	// kernel/sched/core.c
	re(`^scheduling while atomic: (?P<comm>.*)/(?P<pid>\d+)/0x[0-9a-f]+$`),
	re(`^sleeping function called from invalid context at (?P<location>\S+:\d+)$`),
	// mm/kasan/report.c and friends: "KASAN: slab-use-after-free in f+0x1/0x2".
	re(`^(?P<sanitizer>KASAN|KFENCE|KMSAN|KCSAN): (?P<bug_type>[\w-]+(?: [\w-]+)*?) in (?P<function>\S+)`),
	// arch/x86/mm/fault.c: 5.0+ wording, then 4.x wording.
	re(`^kernel NULL pointer dereference, address: (?P<address>[0-9a-fx]+)`),
	re(`^unable to handle page fault for address: (?P<address>[0-9a-fx]+)`),
	re(`^unable to handle kernel (?:NULL pointer dereference|paging request) at (?P<address>[0-9a-fx]+)`),
	// kernel/workqueue.c
	re(`^workqueue lockup - pool .* stuck for (?P<stuck_seconds>\d+)s!`),
	// kernel/locking/spinlock_debug.c
	re(`^(?:spinlock|rwlock) .* on CPU#(?P<cpu>\d+), (?P<comm>.*?)/(?P<pid>\d+)`),
	// mm/page_alloc.c
	re(`^Bad page state in process (?P<comm>.*?)\s+pfn:`),
}

func re(s string) *regexp.Regexp { return regexp.MustCompile(s) }

// needles are the distinct rule needles; bit i of a prefilter mask is set
// when needles[i] occurs in the line.
var (
	needles [][]byte
	filter  *prefilter
)

func init() {
	for i := range rules {
		r := &rules[i]
		r.names = r.re.SubexpNames()
		n := -1
		for j, nd := range needles {
			if string(nd) == r.needle {
				n = j
			}
		}
		if n < 0 {
			n = len(needles)
			needles = append(needles, []byte(r.needle))
		}
		r.bit = 1 << n
	}
	if len(needles) > 32 {
		panic("console: too many needles for a uint32 mask")
	}
	filter = newPrefilter(needles)
}
