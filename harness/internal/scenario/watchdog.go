package scenario

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"oomlab/harness/internal/console"
	"oomlab/harness/internal/vm"
)

// errHang is the cause of the cancelled context of a run the host
// watchdog found hung.
var errHang = errors.New("host watchdog: the guest is hung")

// Bounds of the evidence attached to the watchdog's event.
const (
	maxEvidenceLines = 400
	maxEvidenceLine  = 240
)

// timingNotes are what a guest kernel prints when the host is slow (TCG
// on a loaded machine): "hrtimer: interrupt took 31518244 ns", the
// clocksource watchdog marking the TSC unstable. Printed from interrupt
// context by a kernel that is otherwise silent, they are no sign of life
// for the watchdog.
var timingNotes = [][]byte{
	[]byte("hrtimer: interrupt took "),
	[]byte("clocksource: "),
	[]byte("tsc: Marking TSC unstable"),
	[]byte("sched_clock: Marking unstable"),
}

// timingNoise says whether a console line is one of the timingNotes.
func timingNoise(line []byte) bool {
	for _, n := range timingNotes {
		if bytes.Contains(line, n) {
			return true
		}
	}
	return false
}

// watch runs the host watchdog until the returned stop is called: every
// watchTick it asks wd; on a finding it collects the guest's evidence
// (evidence), adds the finding to the event log, keeps it for the runner
// (finding) and cancels the run's context with errHang. stop waits for
// the watchdog to end. A zero watchdog time watches nothing.
func (g *session) watch(ctx context.Context, wd *vm.Watchdog, hung context.CancelCauseFunc) (stop func()) {
	if wd.Timeout <= 0 {
		return func() {}
	}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(g.waits.watchTick)
		defer tick.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-tick.C:
			}
			finding, since := wd.Check(time.Now())
			if finding == vm.Alive {
				continue
			}
			found := make(chan struct{})
			g.mu.Lock()
			g.detecting = found
			g.mu.Unlock()
			_, conQuiet := wd.Quiet(time.Now())
			ev := g.evidence(wctx, finding, since, conQuiet, wd.Timeout)
			g.mu.Lock()
			g.hang = &ev
			g.mu.Unlock()
			close(found)
			g.events.add(ev)
			hung(errHang)
			return
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// Evidence is what the watchdog asks a hung guest for, in order, each
// followed by a third of the capture time: sysrq-l (every CPU's
// backtrace, by NMI: names what runs on each CPU), sysrq-w (the blocked
// tasks), then an NMI from QMP (inject-nmi: "Uhhuh. NMI received for
// unknown reason" on a kernel that still takes NMIs).
var evidenceSteps = []struct {
	name string
	do   func(ctx context.Context, m Machine) error
}{
	{"sysrq-l", func(ctx context.Context, m Machine) error { return m.Sysrq(ctx, 'l') }},
	{"sysrq-w", func(ctx context.Context, m Machine) error { return m.Sysrq(ctx, 'w') }},
	{"inject-nmi", func(ctx context.Context, m Machine) error { return m.InjectNMI(ctx) }},
}

// cpuComm is the "CPU: 1 UID: 0 PID: 85 Comm: rthog" line of a backtrace
// (6.x; "CPU: 1 PID: 85 Comm: rthog" before 6.10).
var cpuComm = regexp.MustCompile(`CPU: (\d+) (?:UID: \d+ )?PID: (\d+) Comm: (\S+)`)

// evidence asks the hung guest for backtraces, keeps the console lines of
// the next capture time, and makes the watchdog's event of them: kind
// silent_hang or agent_lost, the lines in Fields["backtrace"], what ran on
// each CPU in Fields["cpus"] ("0:rthog/85 1:rthog/86").
func (g *session) evidence(ctx context.Context, finding vm.Finding, since time.Time, conQuiet, timeout time.Duration) console.Event {
	quiet := time.Since(since)
	what := fmt.Sprintf("no agent heartbeat for %.1fs, no console output for %.1fs", quiet.Seconds(), conQuiet.Seconds())
	if finding == vm.AgentLost {
		what = fmt.Sprintf("no agent heartbeat for %.1fs (the console printed %.1fs ago)", quiet.Seconds(), conQuiet.Seconds())
	}
	g.logf("%s: host watchdog: %s: %s; asking the guest for backtraces", g.base, what, finding)
	g.events.startTap(maxEvidenceLines)
	var asked, failed []string
	for _, st := range evidenceSteps {
		if err := st.do(ctx, g.m); err != nil {
			failed = append(failed, st.name+": "+err.Error())
		} else {
			asked = append(asked, st.name)
		}
		pause(ctx, g.waits.capture/time.Duration(len(evidenceSteps)))
	}
	lines := g.events.stopTap()
	ev := console.Event{
		Kind: console.Kind(finding),
		Text: fmt.Sprintf("host watchdog: %s (watchdog %s)", what, timeout),
		Fields: map[string]string{
			"quiet_s":         strconv.FormatFloat(quiet.Seconds(), 'f', 1, 64),
			"console_quiet_s": strconv.FormatFloat(conQuiet.Seconds(), 'f', 1, 64),
			"watchdog_s":      strconv.FormatFloat(timeout.Seconds(), 'f', 0, 64),
			"asked":           strings.Join(asked, " "),
			"backtrace":       strings.Join(lines, "\n"),
		},
	}
	if len(failed) > 0 {
		ev.Fields["evidence_errors"] = tail(strings.Join(failed, "; "), 512)
	}
	cpus := map[int]string{}
	for _, l := range lines {
		if m := cpuComm.FindStringSubmatch(l); m != nil {
			n, _ := strconv.Atoi(m[1])
			cpus[n] = m[3] + "/" + m[2]
		}
	}
	var ids []int
	for n := range cpus {
		ids = append(ids, n)
	}
	sort.Ints(ids)
	var on []string
	for _, n := range ids {
		on = append(on, fmt.Sprintf("%d:%s", n, cpus[n]))
	}
	if len(on) > 0 {
		ev.Fields["cpus"] = strings.Join(on, " ")
	}
	g.logf("%s: host watchdog: %d console lines of evidence (%s)%s", g.base, len(lines), strings.Join(asked, ", "), map[bool]string{true: "; on the CPUs: " + ev.Fields["cpus"], false: ""}[len(on) > 0])
	return ev
}
