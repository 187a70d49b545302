// Package console turns kernel log lines into typed events (OOM kills,
// lockups, stalls, panics, BUGs, WARNINGs).
//
// It reads what the kernel prints wherever it ends up: a QEMU serial
// console, dmesg (plain, -T, -x, --time-format iso, -r), /dev/kmsg records,
// journalctl -k, /var/log/kern.log, LKML pastes and syzkaller reports, from
// kernels 3.x to 6.x. Recognisers are anchored at the start of the kernel
// message (after all prefixes are stripped), so text that merely mentions
// an OOM, a stall or a BUG is not an event.
package console

// Kind names an event type. The string values are part of the JSON output
// of `oomlab scan` and must stay stable.
type Kind string

// Event kinds.
const (
	OOMInvoked    Kind = "oom_invoked"     // "<comm> invoked oom-killer: gfp_mask=..."
	OOMKill       Kind = "oom_kill"        // "[Out of memory: ]Killed process N (comm) ..."
	OOMReaped     Kind = "oom_reaped"      // "oom_reaper: reaped process N (comm), now ..."
	OOMReapFailed Kind = "oom_reap_failed" // "oom_reaper: unable to reap pid:N (comm)"
	HandedOver    Kind = "handed_over"     // "Handed over N to exit path." (oomlab debug patch)
	SoftLockup    Kind = "soft_lockup"     // "BUG: soft lockup - CPU#n stuck for Ns! [comm:pid]"
	HardLockup    Kind = "hard_lockup"     // "Watchdog detected hard LOCKUP on cpu n"
	RCUStall      Kind = "rcu_stall"       // "INFO: rcu_sched self-detected stall on CPU" ...
	HungTask      Kind = "hung_task"       // "INFO: task comm:pid blocked for more than N seconds."
	Panic         Kind = "panic"           // "Kernel panic - not syncing: reason"
	Bug           Kind = "bug"             // "BUG: ...", "kernel BUG at file:line!", GPF
	Warning       Kind = "warning"         // "WARNING: CPU: n PID: n at file:line func", lockdep
	// WorkqueueLockup: "BUG: workqueue lockup - pool cpus=1 ... stuck for
	// 58s!" (kernel/workqueue.c wq_watchdog_timer_fn, 4.5+): work queued
	// on a pool made no progress.
	WorkqueueLockup Kind = "workqueue_lockup"
	// RCUKthreadStarved: "rcu: rcu_sched kthread starved for 2102
	// jiffies! g3 f0x0 RCU_GP_WAIT_FQS(5) ->state=0x0 ->cpu=0" (part of
	// an RCU stall report, 4.15+): the grace-period kthread did not get a
	// CPU, typically because real-time work owns every one.
	RCUKthreadStarved Kind = "rcu_kthread_starved"
	// The host's own findings, synthesised by oomlab's runner, never
	// parsed from a log (they are not in AllKinds).
	//
	// SilentHang: no console output and no agent heartbeat for the
	// scenario's watchdog time; the event carries the backtraces the host
	// got out of the guest afterwards (sysrq over the serial line, NMI) in
	// Fields["backtrace"].
	SilentHang Kind = "silent_hang"
	// AgentLost: the agent stopped answering for the watchdog time while
	// the console was still printing.
	AgentLost Kind = "agent_lost"
	// QEMUExited: the machine exited by itself before the runner powered
	// it off, without a kernel panic on the console.
	QEMUExited Kind = "qemu_exited"
	// TaskExit is oomlab's own marker, written to /dev/kmsg by the guest
	// agent when a command it started has been reaped ("oomlab-agent: exit
	// pid=N comm=C signal=KILL"), so that a victim's exit shares the
	// kernel's clock with its kill.
	TaskExit Kind = "task_exit"
	// StressStart is oomlab's own marker, written to /dev/kmsg by the
	// runner when each round of the stress phase starts ("oomlab: stress
	// start <run> round <n>", fields run and round), so that figures like
	// the time to the first kill use the kernel's clock and every event
	// can be given to its round.
	StressStart Kind = "stress_start"
	// Marker is a stressor's own named marker written to /dev/kmsg
	// ("oomlab: mark robust_released pid=71 owner=70 result=owner_died"):
	// Fields["name"] is the name, every key=value is a field, pid= the PID.
	Marker Kind = "marker"
	// FreezeFailed is the PM freezer giving up: "Freezing user space
	// processes failed after 20.003 seconds (1 tasks refusing to freeze,
	// wq_busy=0):" (also "aborted", and 3.x/4.x "Freezing of tasks failed").
	FreezeFailed Kind = "freeze_failed"
	// HungTaskBlocker names the lock owner of a hung task (6.14+
	// CONFIG_DETECT_HUNG_TASK_BLOCKER: "INFO: task A:1 is blocked on a
	// mutex likely owned by task B:2."). It follows the task's hung_task
	// event and is not a lockup of its own: PID/Comm are the blocked task,
	// fields blocker_pid, blocker_comm and lock name the owner and lock.
	HungTaskBlocker Kind = "hung_task_blocker"
)

// AllKinds lists every Kind the parser can emit.
var AllKinds = []Kind{
	OOMInvoked, OOMKill, OOMReaped, OOMReapFailed, HandedOver,
	SoftLockup, HardLockup, RCUStall, HungTask, WorkqueueLockup, RCUKthreadStarved,
	Panic, Bug, Warning, TaskExit, StressStart, Marker, FreezeFailed,
	HungTaskBlocker,
}

// IsLockup reports whether k means that a CPU or a task made no progress.
func (k Kind) IsLockup() bool {
	switch k {
	case SoftLockup, HardLockup, RCUStall, HungTask, WorkqueueLockup, RCUKthreadStarved, SilentHang:
		return true
	}
	return false
}

// MaxTextLen bounds Event.Text in bytes.
const MaxTextLen = 512

// maxFieldLen bounds each Event.Fields value and Event.Comm in bytes; a
// cgroup path can be long but nothing we extract needs more.
const maxFieldLen = 256

// Event is one recognised kernel log message.
type Event struct {
	Kind Kind `json:"kind"`
	// Line is the 1-based line number in the stream.
	Line int `json:"line"`
	// Time is seconds from the printk [ ] stamp (or /dev/kmsg usec); nil
	// when the line carries no such stamp (dmesg -T, journal without -o
	// short-monotonic, plain pastes).
	Time *float64 `json:"time"`
	// CPU is the CPU the event is about: the locked-up CPU, the CPU named
	// in a WARNING, else the printing CPU from a [Cn] caller id when that
	// CPU is the subject. Nil if unknown.
	CPU *int `json:"cpu"`
	// PID is the task the event is about: the victim for oom_kill,
	// oom_reaped, oom_reap_failed and handed_over; the stuck task for
	// soft_lockup and hung_task; the current task for oom_invoked, panic,
	// bug and warning (from the message or a [Tn] caller id). Nil if unknown.
	PID  *int   `json:"pid"`
	Comm string `json:"comm,omitempty"`
	// Text is the message without prefixes, valid UTF-8, at most
	// MaxTextLen bytes.
	Text string `json:"text"`
	// Fields holds extra values, all as strings: anon_rss_kb, file_rss_kb,
	// shmem_rss_kb, total_vm_kb, pgtables_kb, uid, oom_score_adj, score,
	// constraint (global, memcg, cpuset, mempolicy), gfp_mask, gfp_flags,
	// order, stuck_seconds, blocked_seconds, rcu_flavor, stall, reason,
	// location (file:line), function, detected_by, blocker_pid,
	// blocker_comm, lock, garbled (how a garbled console line was read:
	// tail, spliced or stamp; see garbled.go), ...
	Fields map[string]string `json:"fields,omitempty"`
}

func (e *Event) setField(k, v string) {
	if v == "" {
		return
	}
	if e.Fields == nil {
		e.Fields = make(map[string]string, 4)
	}
	e.Fields[k] = clean(v, maxFieldLen)
}

func intPtr(v int) *int { return &v }
