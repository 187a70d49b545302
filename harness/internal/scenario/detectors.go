package scenario

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"oomlab/harness/internal/console"
	"oomlab/harness/internal/protocol"
	"oomlab/harness/internal/results"
)

// Detector timing: a scenario that provokes the guest kernel's own lockup
// detectors names them (detectors:), and its stress phase lasts as long as
// the guest's actual settings make them take, read from the guest after
// the setup, and no longer than until each has reported. A fixed duration
// turned a slower kernel or another default into a FAIL; waiting for the
// largest possible bound every time would cost minutes per run.

// guestValue is one setting a detector runs on, as the guest exposes it.
type guestValue struct {
	name string // as run.json's detector_timing.values and the errors name it
	path string // read with the agent's cat
	def  int64  // the 6.12 default, for the estimate before boot (bootValues)
	// off says why the detector cannot report with this value, "" if it can.
	off func(v int64) string
	// boot are the kernel command line's names for it besides the
	// sysctl.kernel.<name> / <module>.<param> that path gives.
	boot []string
}

var (
	valWatchdogThresh = guestValue{name: "watchdog_thresh", path: "/proc/sys/kernel/watchdog_thresh", def: 10,
		boot: []string{"watchdog_thresh"},
		off: func(v int64) string {
			return offWhen(v <= 0, "the lockup detectors are off")
		}}
	// soft_watchdog and nmi_watchdog read back whether the detector runs,
	// not what was asked for (proc_watchdog_common() in kernel/watchdog.c):
	// nmi_watchdog is 0 on a kernel whose hard lockup detector could not
	// start (the perf one under TCG, without a PMU).
	valSoftWatchdog = guestValue{name: "soft_watchdog", path: "/proc/sys/kernel/soft_watchdog", def: 1,
		off: func(v int64) string {
			return offWhen(v == 0, "the soft lockup detector is off (nowatchdog, nosoftlockup or kernel.watchdog=0)")
		}}
	valNMIWatchdog = guestValue{name: "nmi_watchdog", path: "/proc/sys/kernel/nmi_watchdog", def: 1,
		off: func(v int64) string {
			return offWhen(v == 0, "no hard lockup detector runs (nmi_watchdog=0, or neither a perf NMI nor the buddy detector)")
		}}
	valRCUStallTimeout  = guestValue{name: "rcu_cpu_stall_timeout", path: "/sys/module/rcupdate/parameters/rcu_cpu_stall_timeout", def: 21}
	valRCUStallSuppress = guestValue{name: "rcu_cpu_stall_suppress", path: "/sys/module/rcupdate/parameters/rcu_cpu_stall_suppress", def: 0,
		off: func(v int64) string {
			return offWhen(v != 0, "RCU CPU stall warnings are suppressed")
		}}
	valHungTimeout = guestValue{name: "hung_task_timeout_secs", path: "/proc/sys/kernel/hung_task_timeout_secs", def: 120,
		off: func(v int64) string {
			return offWhen(v <= 0, "khungtaskd checks nothing")
		}}
	valHungInterval = guestValue{name: "hung_task_check_interval_secs", path: "/proc/sys/kernel/hung_task_check_interval_secs", def: 0}
	// hung_task_warnings counts down with every report (check_hung_task());
	// -1 is no limit.
	valHungWarnings = guestValue{name: "hung_task_warnings", path: "/proc/sys/kernel/hung_task_warnings", def: 10,
		off: func(v int64) string {
			return offWhen(v == 0, "khungtaskd has no reports left to print")
		}}
)

// offWhen is why when cond holds, else "".
func offWhen(cond bool, why string) string {
	if cond {
		return why
	}
	return ""
}

// detector is one of the guest's detectors a scenario can wait for: the
// console event it reports as, the values it runs on and how late it can
// report once provoked.
type detector struct {
	kind   console.Kind
	doc    string
	values []guestValue
	// bound is the latest the detector reports after the condition it
	// detects began, from the kernel's code, and the formula with the
	// values put in.
	bound func(v map[string]int64) (time.Duration, string)
}

// tsUnit is the soft lockup detector's clock tick: get_timestamp() in
// kernel/watchdog.c is running_clock() >> 30, units of 1.07 s.
const tsUnit = time.Duration(1 << 30)

var detectorTable = []detector{
	{kind: console.SoftLockup, doc: "the soft lockup detector: a CPU that does not schedule for 2 x watchdog_thresh",
		values: []guestValue{valWatchdogThresh, valSoftWatchdog}, bound: softLockupBound},
	{kind: console.HardLockup, doc: "the hard lockup detector: a CPU that takes no timer interrupt for about watchdog_thresh",
		values: []guestValue{valWatchdogThresh, valNMIWatchdog}, bound: hardLockupBound},
	{kind: console.RCUStall, doc: "RCU CPU stall warnings: a grace period held up for rcu_cpu_stall_timeout",
		values: []guestValue{valRCUStallTimeout, valRCUStallSuppress}, bound: rcuStallBound},
	{kind: console.HungTask, doc: "khungtaskd: a task in D state for hung_task_timeout_secs",
		values: []guestValue{valHungTimeout, valHungInterval, valHungWarnings}, bound: hungTaskBound},
}

// softLockupBound, from kernel/watchdog.c (the same in 6.1 and 6.12): the
// per-CPU watchdog_timer_fn() runs every sample_period =
// get_softlockup_thresh() / NUM_SAMPLE_PERIODS = 2 x thresh / 5
// (set_sample_period()), and is_softlockup() reports once get_timestamp()
// is more than get_softlockup_thresh() = 2 x thresh units past the CPU's
// report timestamp. softlockup_fn(), the stopper work that renews that
// timestamp, last ran before the CPU started spinning with preemption
// off, or, when the stuck CPU printed as it began (LKDTM's "Performing
// direct entry" line: the serial console driver's touch_nmi_watchdog()
// calls touch_softlockup_watchdog()), the next timer after that restarted
// the period (update_report_ts()). The report comes at most (2 x thresh
// + 1) units and two sample periods after the spin began. Measured under
// TCG, thresh 5: 12.6 s (6.12) and 13.9 s (6.1) after the stress start,
// "stuck for 13s" both.
func softLockupBound(v map[string]int64) (time.Duration, string) {
	t := v[valWatchdogThresh.name]
	sample := time.Duration(2*t) * time.Second / 5
	b := time.Duration(2*t+1)*tsUnit + 2*sample
	return b, fmt.Sprintf("(2 x watchdog_thresh + 1) x 1.07s + 2 sample periods of 2 x watchdog_thresh / 5, watchdog_thresh %d", t)
}

// hardLockupBound, from kernel/watchdog_buddy.c (6.6+): a CPU checks its
// neighbour every third of its hrtimer ticks (3 sample periods, 1.2 x
// thresh; watchdog_buddy_check_hardlockup()), and
// watchdog_hardlockup_check() reports when the neighbour's hrtimer count
// did not move since the previous check: at the second check after the
// spin began. A touch_nmi_watchdog() on the stuck CPU just before (the
// serial console driver touches it with every line it prints) makes one
// check pass: three checks, 3.6 x thresh. The perf NMI detector (6.1, and
// 6.12 with a PMU) checks every thresh s (hw_nmi_get_sample_period()) the
// same way: 3 x thresh, within the bound.
func hardLockupBound(v map[string]int64) (time.Duration, string) {
	t := v[valWatchdogThresh.name]
	b := 3 * 3 * time.Duration(2*t) * time.Second / 5
	return b, fmt.Sprintf("3 buddy checks of 3 sample periods (2 x watchdog_thresh / 5), watchdog_thresh %d", t)
}

// rcuStallDelayDelta is RCU_STALL_DELAY_DELTA (kernel/rcu/tree_stall.h):
// 5 s with CONFIG_PROVE_RCU, else 0. The guest does not show its config,
// so the bound counts it always.
const rcuStallDelayDelta = 5 * time.Second

// rcuStallBound, from kernel/rcu/tree_stall.h (6.1 and 6.12): a grace
// period's stall time is its start plus rcu_jiffies_till_stall_check()
// (record_gp_stall_check_time()): rcu_cpu_stall_timeout clamped to
// 3..300 s, plus RCU_STALL_DELAY_DELTA. check_cpu_stall() runs from the
// scheduling-clock tick. A grace period is under way when the spin begins
// or starts moments later (a live guest queues RCU callbacks all the
// time): 1 s for that and the tick.
func rcuStallBound(v map[string]int64) (time.Duration, string) {
	t := min(max(v[valRCUStallTimeout.name], 3), 300)
	b := time.Duration(t)*time.Second + rcuStallDelayDelta + time.Second
	return b, fmt.Sprintf("rcu_cpu_stall_timeout (3..300) + RCU_STALL_DELAY_DELTA 5s + 1s grace period start and tick, rcu_cpu_stall_timeout %d", v[valRCUStallTimeout.name])
}

// hungTaskBound, from kernel/hung_task.c (the same in 6.1 and 6.12):
// khungtaskd (watchdog()) checks every interval =
// hung_task_check_interval_secs, or hung_task_timeout_secs when that is 0,
// at most the timeout. check_hung_task() notes the time of the first check
// that sees the task blocked (its switch count changed since the last
// check) and reports it at the first check at least the timeout after
// that: 1 + ceil(timeout / interval) intervals after the task blocked.
// Each sleep is a timer-wheel timeout (schedule_timeout_interruptible())
// that expires up to 1/8 late (kernel/time/timer.c: a wheel level's
// granularity is 1/8 of the shortest timeout it holds). Writing either
// sysctl wakes khungtaskd to sleep again on the new interval
// (proc_dohung_task_timeout_secs() handles both), so a value the setup
// wrote is in force at once.
func hungTaskBound(v map[string]int64) (time.Duration, string) {
	timeout, iv := v[valHungTimeout.name], v[valHungInterval.name]
	interval := iv
	if interval <= 0 {
		interval = timeout
	}
	interval = min(interval, timeout)
	checks := 1 + (timeout+interval-1)/interval
	b := time.Duration(checks) * time.Duration(interval) * time.Second * 9 / 8
	return b, fmt.Sprintf("(1 + ceil(timeout / interval)) checks x interval x 9/8 timer slack, hung_task_timeout_secs %d, hung_task_check_interval_secs %d", timeout, iv)
}

// lookupDetector finds a detector by its event kind's name.
func lookupDetector(name string) (detector, bool) {
	for _, d := range detectorTable {
		if string(d.kind) == name {
			return d, true
		}
	}
	return detector{}, false
}

func detectorNames() []string {
	var n []string
	for _, d := range detectorTable {
		n = append(n, string(d.kind))
	}
	return n
}

// DetectorDoc describes a detector a scenario can name in detectors:.
type DetectorDoc struct {
	Name  string
	Doc   string
	Paths []string // read in the guest after the setup
}

// Detectors is the table detectors: names, in order.
func Detectors() []DetectorDoc {
	var out []DetectorDoc
	for _, d := range detectorTable {
		dd := DetectorDoc{Name: string(d.kind), Doc: d.doc}
		for _, v := range d.values {
			dd.Paths = append(dd.Paths, v.path)
		}
		out = append(out, dd)
	}
	return out
}

// The margin of a detector wait: the bound plus a quarter plus 15 s.
// Under TCG on a loaded host the guest's timers fire late (the console
// shows "hrtimer: interrupt took ... ns"), by more the longer the wait;
// and every report is a backtrace of tens of lines through a 115200-baud
// serial console (about 11 KB/s), so a report queued behind others (the
// hung task's behind the soft lockup's and the RCU stall's) reaches the
// host seconds after its detector fired. The stress phase ends as soon as
// every detector has reported: the margin costs time only when one does
// not.
const (
	detectorSlackDiv = 4
	detectorMargin   = 15 * time.Second
)

// stressorStart is what the bounds allow the stressor that provokes a
// detector to get going after the stress-start marker: the agent forks
// and execs it and it writes to debugfs, a few hundred ms under TCG.
const stressorStart = time.Second

// detectorPlan is the stress phase of a detector scenario.
type detectorPlan struct {
	kinds  []console.Kind
	bound  time.Duration // the latest any of them reports, from the stress start
	wait   time.Duration // the stress phase at its longest
	worst  string        // the detector with the largest bound and its values, for errors
	timing *results.DetectorTiming
}

// planDetectors computes the plan for the named detectors from their
// values; startAfter (the latest stressor start) and stressorStart are
// added to every bound, which counts from the stress-start marker.
// A value that turns a detector off is an error naming it; where says
// where the values come from ("in the guest").
func planDetectors(names []string, v map[string]int64, startAfter time.Duration, where string) (*detectorPlan, error) {
	p := &detectorPlan{timing: &results.DetectorTiming{Values: map[string]int64{}}}
	for _, name := range names {
		d, ok := lookupDetector(name)
		if !ok {
			return nil, fmt.Errorf("unknown detector %q (known: %s)", name, strings.Join(detectorNames(), ", "))
		}
		for _, gv := range d.values {
			val, ok := v[gv.name]
			if !ok {
				return nil, fmt.Errorf("%s: no value for %s", name, gv.name)
			}
			p.timing.Values[gv.name] = val
			if gv.off != nil {
				if why := gv.off(val); why != "" {
					return nil, fmt.Errorf("%s: %s is %d %s: %s", name, gv.name, val, where, why)
				}
			}
		}
		b, how := d.bound(v)
		b += startAfter + stressorStart
		p.kinds = append(p.kinds, d.kind)
		p.timing.Detectors = append(p.timing.Detectors, results.DetectorBound{Name: name, BoundS: round1(b.Seconds()), How: how})
		if b > p.bound {
			p.bound = b
			p.worst = fmt.Sprintf("%s by %.1fs (%s)", name, b.Seconds(), how)
		}
	}
	p.wait = p.bound + p.bound/detectorSlackDiv + detectorMargin
	p.timing.BoundS, p.timing.WaitS = round1(p.bound.Seconds()), round1(p.wait.Seconds())
	return p, nil
}

func round1(s float64) float64 { return math.Round(s*10) / 10 }

// latestStart is the latest start_after of the scenario's stressors: the
// detectors' clocks start when the stressor that provokes them does.
func (s *Scenario) latestStart() time.Duration {
	var d time.Duration
	for _, st := range s.Stressors {
		d = max(d, st.StartAfter.D())
	}
	return d
}

// staticDetectorPlan is the plan as the scenario's command line and
// sysctls set the values, 6.12's defaults for the rest: the estimate
// before boot that the default timeout and validation use.
func (s *Scenario) staticDetectorPlan() (*detectorPlan, error) {
	return planDetectors(s.Detectors, bootValues(DefaultCmdline+" "+s.Guest.Cmdline, s.Guest.Sysctls), s.latestStart(), "as guest.cmdline and guest.sysctls set it")
}

// allValues is every value of the detector table, once each, in order.
func allValues() []guestValue {
	var out []guestValue
	seen := map[string]bool{}
	for _, d := range detectorTable {
		for _, v := range d.values {
			if !seen[v.name] {
				seen[v.name] = true
				out = append(out, v)
			}
		}
	}
	return out
}

// bootNames are the names under which a kernel command line sets a value:
// sysctl.kernel.<name> for a /proc/sys file, <module>.<param> for a
// module parameter, and its own boot parameters.
func (gv guestValue) bootNames() []string {
	names := append([]string(nil), gv.boot...)
	if rest, ok := strings.CutPrefix(gv.path, "/proc/sys/"); ok {
		names = append(names, "sysctl."+strings.ReplaceAll(rest, "/", "."))
	}
	if rest, ok := strings.CutPrefix(gv.path, "/sys/module/"); ok {
		if mod, param, ok := strings.Cut(rest, "/parameters/"); ok {
			names = append(names, mod+"."+param)
		}
	}
	return names
}

// bootValues are the detector values a guest with this kernel command
// line and these sysctls (applied by the agent at its start) has, taking
// 6.12's defaults for the rest. A value that is no integer is left at its
// default.
func bootValues(cmdline string, sysctls map[string]string) map[string]int64 {
	v := map[string]int64{}
	for _, gv := range allValues() {
		v[gv.name] = gv.def
	}
	set := func(gv guestValue, s string) {
		if n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64); err == nil {
			v[gv.name] = n
		}
	}
	for _, f := range strings.Fields(cmdline) {
		k, val, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		for _, gv := range allValues() {
			for _, n := range gv.bootNames() {
				if k == n {
					set(gv, val)
				}
			}
		}
	}
	for k, val := range sysctls {
		for _, gv := range allValues() {
			if rest, ok := strings.CutPrefix(gv.path, "/proc/sys/"); ok && k == strings.ReplaceAll(rest, "/", ".") {
				set(gv, val)
			}
		}
	}
	return v
}

// readDetectorValues reads the values the named detectors run on from
// the guest: one exists for all of them (a missing file is an error
// naming it and the detector that needs it), then a cat each.
func readDetectorValues(ctx context.Context, sh Shell, names []string) (map[string]int64, error) {
	var vals []guestValue
	needs := map[string]string{} // value -> the first detector that needs it
	for _, name := range names {
		d, _ := lookupDetector(name) // validated
		for _, gv := range d.values {
			if _, ok := needs[gv.name]; !ok {
				needs[gv.name] = name
				vals = append(vals, gv)
			}
		}
	}
	var paths []string
	for _, gv := range vals {
		paths = append(paths, gv.path)
	}
	out, err := stepOutput(ctx, sh, protocol.ExistsCommand(paths...))
	if err != nil {
		return nil, fmt.Errorf("reading the detector timing: %w", err)
	}
	have := protocol.ParseExists(string(out))
	for _, gv := range vals {
		if ok, said := have[gv.path]; !said {
			return nil, fmt.Errorf("reading the detector timing: no answer for %s in %q", gv.path, tail(string(out), 200))
		} else if !ok {
			return nil, fmt.Errorf("detectors: %s: the guest has no %s (the detector is not built into this kernel)", needs[gv.name], gv.path)
		}
	}
	v := map[string]int64{}
	for _, gv := range vals {
		out, err := stepOutput(ctx, sh, protocol.JoinWords("cat", gv.path))
		if err != nil {
			return nil, fmt.Errorf("reading the detector timing: %w", err)
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("detectors: %s: %s is %q, not a number", needs[gv.name], gv.path, tail(strings.TrimSpace(string(out)), 60))
		}
		v[gv.name] = n
	}
	return v, nil
}

// detectorSeen is when each kind first reported in round n of evs
// (rounds: assignRounds(evs)), on the console clock from the round's
// stress-start marker; kinds not seen, or seen without a timestamp, are
// missing.
func detectorSeen(evs []console.Event, rounds []int, n int, kinds []console.Kind) map[console.Kind]float64 {
	var start *float64
	for i, e := range evs {
		if e.Kind == console.StressStart && rounds[i] == n && e.Time != nil {
			start = e.Time
			break
		}
	}
	out := map[console.Kind]float64{}
	if start == nil {
		return out
	}
	for i, e := range evs {
		if rounds[i] != n || e.Time == nil {
			continue
		}
		for _, k := range kinds {
			if e.Kind == k {
				if _, ok := out[k]; !ok {
					out[k] = *e.Time - *start
				}
			}
		}
	}
	return out
}

// line is the plan in one line for the run log: the values read, each
// bound, the wait.
func (p *detectorPlan) line() string {
	var vals, bounds []string
	for _, gv := range allValues() {
		if n, ok := p.timing.Values[gv.name]; ok {
			vals = append(vals, fmt.Sprintf("%s %d", gv.name, n))
		}
	}
	for _, d := range p.timing.Detectors {
		bounds = append(bounds, fmt.Sprintf("%s by %.1fs", d.Name, d.BoundS))
	}
	return fmt.Sprintf("detector timing: %s: %s; stress phase until all have reported, at most %.1fs (+%d%% +%s)",
		strings.Join(vals, ", "), strings.Join(bounds, ", "), p.wait.Seconds(), 100/detectorSlackDiv, detectorMargin)
}

// seenLine says when each detector reported in round n (console clock
// from the round's marker) and how long the stress phase lasted.
func (p *detectorPlan) seenLine(evs []console.Event, n int, elapsed time.Duration) string {
	seen := detectorSeen(evs, assignRounds(evs), n, p.kinds)
	var out []string
	for i, k := range p.kinds {
		if s, ok := seen[k]; ok {
			out = append(out, fmt.Sprintf("%s at %.1fs", k, s))
		} else {
			out = append(out, fmt.Sprintf("%s not seen (bound %.1fs)", k, p.timing.Detectors[i].BoundS))
		}
	}
	return fmt.Sprintf("detectors: %s; stress phase %.1fs of at most %.1fs", strings.Join(out, ", "), elapsed.Seconds(), p.wait.Seconds())
}
