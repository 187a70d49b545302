package scenario

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"oomlab/harness/internal/console"
	"oomlab/harness/internal/guest"
	"oomlab/harness/internal/initramfs"
	"oomlab/harness/internal/metrics"
	"oomlab/harness/internal/protocol"
	"oomlab/harness/internal/results"
	"oomlab/harness/internal/vm"
)

// DefaultCmdline is what every guest kernel gets before the scenario's own
// parameters. panic=-1 with QEMU's -no-reboot turns a panic into a QEMU
// exit we can see; the hung-task timeout is cut to fit a test run.
const DefaultCmdline = "panic=-1 sysrq_always_enabled sysctl.kernel.hung_task_timeout_secs=30"

// Env is what the runner needs from the outside: built kernels and guest
// binaries, and where to put results.
type Env struct {
	Kernels   map[string]string // variant -> bzImage
	Configs   map[string]string // variant -> its .config, for requires: (none: only the guest checks)
	AgentBin  string
	Stressors []string // static binaries, copied to /bin in the guest
	QEMU      string
	Accel     string // auto, kvm, tcg
	Dir       string // results/<run-id>
	Log       func(format string, args ...any)
	// Progress, if set, hears where each guest run is (see Progress):
	// called from more than one goroutine, it must not block for long.
	Progress func(Progress)
}

// Run boots one guest and runs the scenario in it. It always returns a
// Result; infrastructure failures have Verdict "error".
//
// The run goes in phases, each a function of the machine and the agent's
// shell (the Machine and Shell interfaces): boot (boot, dialAgent), setup
// (setupPhase), then per round (runRound) stress (stressPhase), census and
// probes (censusPhase) and the stressors stopped (stopStressors), then the
// teardown (shutdown), figures and verdict (figures, judge). runGuest
// strings together the phases after boot.
func Run(ctx context.Context, env Env, sc *Scenario, variant string, repeat int) *results.Result {
	r := &results.Result{Scenario: sc.Name, Variant: variant, Repeat: repeat, Started: time.Now(),
		Sweep: sc.Sweep, Case: sc.Case, KeyFigure: sc.KeyFigure}
	pr := newProgress(env.Progress, sc, variant, repeat, r.Started)
	err := run(ctx, env, sc, variant, repeat, r, pr)
	if ctx.Err() != nil {
		// SIGINT/SIGTERM: whatever the phases made of their cancelled
		// calls, the run did not end by itself.
		err = ErrInterrupted
	}
	r.WallS = time.Since(r.Started).Seconds()
	judge(r, sc, variant, err)
	pr.update(func(p *Progress) { p.Phase, p.Verdict = PhaseDone, r.Verdict.String() })
	return r
}

// ErrInterrupted is the error of a run whose context was cancelled from
// outside (SIGINT, SIGTERM): its verdict is error "interrupted".
var ErrInterrupted = errors.New("interrupted")

// judge is the verdict: an error if the run could not complete, else
// whether the figures meet the scenario's expectations for the variant.
// A scenario without rounds is judged on the guest run's figures, as
// before rounds. With rounds, each round is a sample and is judged on its
// own figures (its failures are the run's, prefixed "round N: "), and a
// run that ended before its last round (the guest died or stopped
// answering) fails. Rounds that ran before an error keep their verdicts.
func judge(r *results.Result, sc *Scenario, variant string, err error) {
	want := sc.Expectations(variant)
	for i := range r.Rounds {
		rr := &r.Rounds[i]
		if rr.Error != "" {
			rr.Verdict = results.Error
			continue
		}
		rr.Failures = metrics.Evaluate(want, rr.Figures)
		rr.Verdict = results.Pass
		if len(rr.Failures) > 0 {
			rr.Verdict = results.Fail
		}
	}
	if why := skipReason(err); why != "" { // requires: (requires.go)
		r.Verdict, r.SkipReason = results.Skip, why
		return
	}
	if err != nil {
		r.Verdict, r.Error = results.Error, err.Error()
		return
	}
	if sc.Rounds <= 1 {
		r.Failures = metrics.Evaluate(want, r.Figures)
		for i := range r.Rounds { // the one round is the guest run
			r.Rounds[i].Failures, r.Rounds[i].Verdict = r.Failures, results.Pass
			if len(r.Failures) > 0 {
				r.Rounds[i].Verdict = results.Fail
			}
		}
	} else {
		r.Failures = nil
		for _, rr := range r.Rounds {
			for _, f := range rr.Failures {
				r.Failures = append(r.Failures, fmt.Sprintf("round %d: %s", rr.Round, f))
			}
		}
		if len(r.Rounds) < sc.Rounds {
			r.Failures = append(r.Failures, fmt.Sprintf("rounds: %d of %d ran (the guest died or its agent stopped answering)", len(r.Rounds), sc.Rounds))
		}
	}
	r.Verdict = results.Pass
	if len(r.Failures) > 0 {
		r.Verdict = results.Fail
	}
	judgeExits(r, sc) // a stressor that did not run as designed: error (exits.go)
}

// eventLog collects console events as they stream in, and counts the kills
// and reaps of the latest round whose marker it has seen, for stop_when.
type eventLog struct {
	mu     sync.Mutex
	parser *console.Parser
	events []console.Event
	round  int                  // of the latest stress_start marker seen (0: none yet)
	kills  metrics.KillCounter  // of that round, as the figures count them
	reaped int                  // of that round
	kinds  map[console.Kind]int // events of that round by kind
	// allKills and lockups count every round; onFindings, if set, hears
	// them whenever one changes (outside the lock).
	allKills, lockups int
	onFindings        func(kills, lockups int)

	wd     *vm.Watchdog // told of every console line, once set (watch)
	tap    []string     // raw console lines while tapping (the watchdog's evidence)
	tapOn  bool
	tapMax int
}

// watch makes every console line from now on a sign of life for wd.
func (l *eventLog) watch(wd *vm.Watchdog) {
	l.mu.Lock()
	l.wd = wd
	l.mu.Unlock()
}

// startTap starts keeping the raw console lines, at most max of them.
func (l *eventLog) startTap(max int) {
	l.mu.Lock()
	l.tap, l.tapOn, l.tapMax = nil, true, max
	l.mu.Unlock()
}

// stopTap stops keeping the raw console lines and returns them.
func (l *eventLog) stopTap() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tapOn = false
	return l.tap
}

// add appends an event the host found (the watchdog's, qemu_exited).
func (l *eventLog) add(e console.Event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

// has says whether an event of kind k was seen.
func (l *eventLog) has(k console.Kind) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.events {
		if e.Kind == k {
			return true
		}
	}
	return false
}

func newEventLog() *eventLog { return &eventLog{parser: console.NewParser()} }

// line is the machine's console callback.
func (l *eventLog) line(b []byte) {
	l.mu.Lock()
	changed := false
	if l.wd != nil && !timingNoise(b) {
		l.wd.Console(time.Now())
	}
	if l.tapOn && len(l.tap) < l.tapMax {
		l.tap = append(l.tap, tail(strings.TrimRight(string(b), "\r\n"), maxEvidenceLine))
	}
	for _, e := range l.parser.Feed(b) {
		if e.Kind == console.StressStart {
			l.round = markerRound(e, l.round)
			l.kills, l.reaped, l.kinds = metrics.KillCounter{}, 0, nil
		}
		if l.kinds == nil {
			l.kinds = map[console.Kind]int{}
		}
		l.kinds[e.Kind]++
		before := l.kills.Kills
		l.kills.Add(e)
		if l.kills.Kills != before {
			l.allKills += l.kills.Kills - before
			changed = true
		}
		if e.Kind.IsLockup() {
			l.lockups++
			changed = true
		}
		if e.Kind == console.OOMReaped {
			l.reaped++
		}
		l.events = append(l.events, e)
	}
	kills, lockups, fn := l.allKills, l.lockups, l.onFindings
	l.mu.Unlock()
	if changed && fn != nil {
		fn(kills, lockups)
	}
}

// killCount is the number of OOM kills in round n so far: 0 until its
// marker is on the console.
func (l *eventLog) killCount(n int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.round != n {
		return 0
	}
	return l.kills.Kills
}

// reapCount is the number of oom_reaped events in round n so far.
func (l *eventLog) reapCount(n int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.round != n {
		return 0
	}
	return l.reaped
}

// seenAll says whether round n has had an event of each of kinds so far.
func (l *eventLog) seenAll(n int, kinds []console.Kind) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.round != n {
		return false
	}
	for _, k := range kinds {
		if l.kinds[k] == 0 {
			return false
		}
	}
	return true
}

func (l *eventLog) snapshot() []console.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]console.Event(nil), l.events...)
}

// markerRound is the round of a stress_start marker: its round field, or
// the round after prev for a marker without one.
func markerRound(e console.Event, prev int) int {
	if n, err := strconv.Atoi(e.Fields["round"]); err == nil && n > 0 {
		return n
	}
	return prev + 1
}

// assignRounds gives every event its round: the latest round whose
// stress_start marker precedes it by console timestamp (0: before the
// first marker). An event without a timestamp, and every event when the
// markers have none, goes by the order of the stream instead. A marker is
// in its own round.
func assignRounds(evs []console.Event) []int {
	type marker struct {
		round int
		t     float64
	}
	var ms []marker
	out := make([]int, len(evs))
	cur := 0
	for i, e := range evs {
		if e.Kind == console.StressStart {
			cur = markerRound(e, cur)
			if e.Time != nil {
				ms = append(ms, marker{cur, *e.Time})
			}
		}
		out[i] = cur
	}
	if len(ms) == 0 {
		return out
	}
	sort.SliceStable(ms, func(i, j int) bool { return ms[i].t < ms[j].t })
	for i, e := range evs {
		if e.Time == nil || e.Kind == console.StressStart {
			continue
		}
		k := sort.Search(len(ms), func(j int) bool { return ms[j].t > *e.Time })
		if k == 0 {
			out[i] = 0
		} else {
			out[i] = ms[k-1].round
		}
	}
	return out
}

// facts is what the phases found out, besides the console and the
// stressor exits, that the figures are computed from.
type facts struct {
	alive  bool          // the agent answered after the (last) round
	boot   time.Duration // QEMU start -> agent answered
	stress time.Duration // length of the stress phase, every round's
	left   map[string]int
	probes map[string]float64
	rounds []*roundFacts // the rounds that started, in order
}

// roundFacts is what one round found out.
type roundFacts struct {
	n       int
	startS  float64       // guest run start -> the round's marker
	stress  time.Duration // length of the round's stress phase
	wall    time.Duration // marker -> end of the round's settle
	alive   bool          // the agent answered after the round
	left    map[string]int
	probes  map[string]float64
	exits   []results.StressorExit
	actions []results.StepResult
	err     error // the round could not run
}

// figures computes the run's figures from its console events, its stressor
// exits and the facts: the whole guest run's, and each round's from the
// events assigned to it. It runs however the run ended, so that a run that
// died half way still reports what its console showed.
func figures(r *results.Result, sc *Scenario, events *eventLog, f *facts) {
	r.Events = events.snapshot()
	r.EventRounds = assignRounds(r.Events)
	var exits []results.StressorExit
	for _, rf := range f.rounds {
		exits = append(exits, rf.exits...)
	}
	r.Figures = metrics.Compute(metrics.Facts{
		Events: r.Events, Boot: f.boot, Stress: f.stress, GuestAlive: f.alive,
		Left: f.left, Stressors: sc.StressorNames(), Exits: results.ExitFacts(exits), Probes: f.probes,
		WorseIf: sc.WorseIf,
	})
	byRound := map[int][]console.Event{}
	for i, e := range r.Events {
		byRound[r.EventRounds[i]] = append(byRound[r.EventRounds[i]], e)
	}
	if t := r.DetectorTiming; t != nil {
		var kinds []console.Kind
		for _, d := range t.Detectors {
			kinds = append(kinds, console.Kind(d.Name))
		}
		seen := detectorSeen(r.Events, r.EventRounds, 1, kinds)
		for i := range t.Detectors {
			if s, ok := seen[console.Kind(t.Detectors[i].Name)]; ok {
				s = round1(s)
				t.Detectors[i].SeenS = &s
			}
		}
	}
	r.Rounds = nil
	for _, rf := range f.rounds {
		rr := results.RoundResult{
			Round: rf.n, Stressors: rf.exits, Steps: rf.actions,
			StartS: rf.startS, WallS: rf.wall.Seconds(),
			Figures: metrics.Compute(metrics.Facts{
				Events: byRound[rf.n], Stress: rf.stress, GuestAlive: rf.alive,
				Left: rf.left, Stressors: sc.StressorNames(), Exits: results.ExitFacts(rf.exits), Probes: rf.probes,
				WorseIf: sc.WorseIf,
			}),
		}
		if rf.err != nil {
			rr.Error = rf.err.Error()
		}
		r.Rounds = append(r.Rounds, rr)
	}
}

// Bounds of the boot, which only the real machine goes through.
const (
	dialTimeout      = 90 * time.Second // QEMU start -> agent answers
	handshakeTimeout = 3 * time.Second  // one SSH handshake attempt
	stopGrace        = 3 * time.Second  // QMP quit -> SIGKILL
)

// waits are the runner's fixed waits after boot, in one place; the tests
// shorten them.
type waits struct {
	killGrace time.Duration // stress phase after stop_when's kills, for the foreground stressors to end
	stopProc  time.Duration // per stressor stopped at the end, for the agent to report its end
	ping      time.Duration // the liveness check after the settle
	poweroff  time.Duration // agent acknowledgement and machine exit
	metrics   time.Duration // sampling interval of the metrics stream
	watchTick time.Duration // how often the host watchdog looks
	capture   time.Duration // how long the watchdog collects the guest's evidence
}

var defaultWaits = waits{
	killGrace: 10 * time.Second,
	stopProc:  5 * time.Second,
	ping:      15 * time.Second,
	poweroff:  5 * time.Second,
	metrics:   250 * time.Millisecond,
	watchTick: 250 * time.Millisecond,
	capture:   6 * time.Second,
}

func run(ctx context.Context, env Env, sc *Scenario, variant string, repeat int, r *results.Result, pr *progress) (err error) {
	logf := env.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	kernel, ok := env.Kernels[variant]
	if !ok {
		return fmt.Errorf("no %s kernel built", variant)
	}
	if err := checkConfig(env.Configs[variant], sc, variant); err != nil {
		return err // requires: against the .config, no guest (requires.go)
	}
	ctx, cancel := context.WithTimeout(ctx, sc.Timeout.D())
	defer cancel()

	tmp, err := os.MkdirTemp("", "oomlab-guest-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	base := fmt.Sprintf("%s-%s-%d", sc.Name, variant, repeat)
	r.Console = "console-" + base + ".log"
	conLog, err := os.Create(filepath.Join(env.Dir, r.Console))
	if err != nil {
		return err
	}
	defer conLog.Close()
	events := newEventLog()
	events.onFindings = pr.findings
	f := &facts{probes: map[string]float64{}}
	// Deferred before the machine's Stop, so it runs after it: the
	// console has been read to the end.
	defer figures(r, sc, events, f)

	pr.phase(PhaseBoot)
	logf("%s: booting %s kernel (%d vCPUs, %d MB)", base, variant, sc.Guest.CPUs, sc.Guest.MemoryMB)
	var clock bootClock
	v, sh, err := boot(ctx, env, sc, kernel, tmp, conLog, clock.watch(events.line))
	if v != nil {
		defer func() {
			v.Stop(stopGrace)
			// QEMU killed by a signal oomlab did not send (host OOM
			// killer, kill -9) is an infrastructure error, and the
			// cause of whatever error the phases saw: without this it
			// was a FAIL (guest_alive false) on the kernel.
			if e := v.KilledFromOutside(); e != nil {
				err = e
			}
		}()
		r.Accel = v.Accel
	}
	if err != nil {
		return err
	}
	defer sh.Close()
	f.boot = time.Since(v.Started)
	r.Boot = clock.phases(v.Started, v.FirstOutput(), time.Now())
	logf("%s: agent ready after %.2fs (%s)", base, f.boot.Seconds(), v.Accel)
	f.alive = true
	pr.phase(PhaseSetup)

	g := &session{sc: sc, variant: variant, base: base, dir: env.Dir, m: v, sh: sh, events: events, logf: logf, waits: defaultWaits,
		progress: pr, watchdog: sc.Watchdog.D()}
	err = runGuest(ctx, g, r, f)
	if err == nil && g.finding() == nil && (g.timedOut || ctx.Err() != nil) {
		err = fmt.Errorf("timeout: the guest run did not end within %s", sc.Timeout.D())
	}
	return err
}

// bootClock notes when the host saw the boot's milestones on the console.
type bootClock struct {
	mu          sync.Mutex
	init, ready time.Time
}

// The boot's milestones on the console, as bytes for bytes.Contains on
// every line: initLine is init/main.c's run_init_process(), printed before
// the kernel executes /init (the agent); readyLine the agent's marker.
var (
	initLine  = []byte("Run /init as init process")
	readyLine = []byte(protocol.ReadyMarker)
)

// watch returns onLine with the milestones noted first.
func (b *bootClock) watch(onLine func([]byte)) func([]byte) {
	return func(line []byte) {
		b.mu.Lock()
		if b.init.IsZero() && bytes.Contains(line, initLine) {
			b.init = time.Now()
		}
		if b.ready.IsZero() && bytes.Contains(line, readyLine) {
			b.ready = time.Now()
		}
		b.mu.Unlock()
		onLine(line)
	}
}

// phases splits start -> answered at the milestones seen, in order.
func (b *bootClock) phases(start, first, answered time.Time) *results.BootPhases {
	b.mu.Lock()
	defer b.mu.Unlock()
	marks := []time.Time{first, b.init, b.ready, answered}
	out := make([]float64, len(marks))
	prev := start
	for i, m := range marks {
		if m.IsZero() || m.Before(prev) || m.After(answered) {
			continue // not seen: the next phase takes its time
		}
		out[i] = m.Sub(prev).Seconds()
		prev = m
	}
	return &results.BootPhases{FirmwareS: out[0], KernelS: out[1], InitS: out[2], ConnectS: out[3]}
}

// boot is the first phase: a fresh key pair, the guest's initramfs (in
// tmp), the machine, whose console goes to log and line by line to onLine,
// and the agent. It returns the machine as soon as it runs, with the
// error of the dial if that failed: the caller stops it either way.
func boot(ctx context.Context, env Env, sc *Scenario, kernel, tmp string, log io.Writer, onLine func([]byte)) (*vm.VM, Shell, error) {
	keys, err := guest.NewKeys()
	if err != nil {
		return nil, nil, err
	}
	cfg := protocol.Config{
		ListenAddr: protocol.VportPrefix + vm.AgentPort,
		Sysctls:    sc.Guest.Sysctls,
	}
	keys.Apply(&cfg)
	initrd := filepath.Join(tmp, "initrd.cpio")
	if err := initramfs.WriteFile(initrd, initramfs.Guest{Agent: env.AgentBin, Stressors: env.Stressors, Config: cfg}); err != nil {
		return nil, nil, err
	}
	v, err := vm.Start(ctx, vm.Config{
		QEMU: env.QEMU, Kernel: kernel, Initrd: initrd,
		Cmdline: DefaultCmdline + " " + sc.Guest.Cmdline,
		CPUs:    sc.Guest.CPUs, MemoryMB: sc.Guest.MemoryMB, Accel: env.Accel,
		Console: log, OnLine: onLine,
	})
	if err != nil {
		return nil, nil, err
	}
	sh, err := dialAgent(ctx, v, v.AgentSock, func(ctx context.Context) (Shell, error) {
		c, err := guest.Dial(ctx, v.AgentSock, keys, handshakeTimeout)
		if err != nil {
			return nil, err // not a Shell holding a nil *guest.Client
		}
		return c, nil
	})
	return v, sh, err
}

// dialAgent connects to the agent at addr within dialTimeout, giving up
// early when the machine exits.
func dialAgent(ctx context.Context, m Machine, addr string, connect func(context.Context) (Shell, error)) (Shell, error) {
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	go func() {
		select {
		case <-m.Done():
			cancel()
		case <-dctx.Done():
		}
	}()
	sh, err := connect(dctx)
	if err != nil {
		if e := m.ExitError(); e != nil {
			return nil, fmt.Errorf("guest died before the agent answered: %v", e)
		}
		if isDone(m.Done()) {
			return nil, errors.New("QEMU exited (status 0) before the agent answered")
		}
		return nil, fmt.Errorf("agent did not answer on %s: %w", addr, err)
	}
	return sh, nil
}

// session is one booted guest as the phases after boot see it.
type session struct {
	sc      *Scenario
	variant string
	base    string // <scenario>-<variant>-<repeat>: names the logs and the stress-start marker
	dir     string // where the metrics log goes
	m       Machine
	sh      Shell
	events  *eventLog // fed by the machine's console
	logf    func(format string, args ...any)
	waits   waits
	// progress hears the rounds and the teardown (nil: nobody listens).
	progress *progress
	// watchdog is the host watchdog's time (0: off); see watch.
	watchdog time.Duration
	// plan is a detector scenario's stress phase (nil: the duration's),
	// set after the setup.
	plan *detectorPlan

	mu        sync.Mutex
	detecting chan struct{}  // set when the watchdog found a hang, closed once hang is set
	hang      *console.Event // the watchdog's finding, once it has one
	timedOut  bool           // a stress phase was cut by the scenario timeout
}

// finding is the watchdog's finding (silent_hang, agent_lost), nil while
// it has none. While the watchdog collects its evidence (a few seconds)
// it waits for it, so that a phase ending meanwhile is not taken for a
// healthy one.
func (g *session) finding() *console.Event {
	g.mu.Lock()
	ch := g.detecting
	g.mu.Unlock()
	if ch == nil {
		return nil
	}
	<-ch
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.hang
}

// runGuest runs the phases after boot: setup, then the rounds (each:
// stress, census and probes, stressors stopped, settle, liveness), then
// the teardown. What they find goes into r and f; the caller computes the
// figures and the verdict however this ends. An error is an
// infrastructure failure (a setup step or a round that could not start:
// the rounds before are kept); a guest that died is not one (the figures
// tell that story), it ends the rounds.
func runGuest(ctx context.Context, g *session, r *results.Result, f *facts) error {
	if err := checkGuest(ctx, g.sh, g.sc, g.variant); err != nil {
		return err // requires: in the guest, before the setup (requires.go)
	}
	waited, err := settleClock(ctx, g.sh)
	if r.Boot != nil {
		r.Boot.ClockS = waited.Seconds()
	}
	if err != nil {
		return err
	}
	steps, err := setupPhase(ctx, g.sh, g.sc, g.variant)
	r.Steps = append(r.Steps, steps...)
	if err != nil {
		return err
	}
	if len(g.sc.Detectors) > 0 {
		// After the setup, which may set the values, and before the
		// watchdog, whose time they may raise.
		if err := g.planDetectors(ctx, r); err != nil {
			return err
		}
	}

	// Metrics stream for the whole stress phase, every round; they also
	// tell us the agent is alive, without extra round trips.
	r.Metrics = "metrics-" + g.base + ".jsonl"
	mfile, err := os.Create(filepath.Join(g.dir, r.Metrics))
	if err != nil {
		return err
	}
	// The host watchdog watches the rounds: the metrics samples are the
	// agent's heartbeat, the console lines the kernel's. When it finds the
	// guest hung it cancels ctx (the phases unwind at once) with
	// errHang; runRound then ends the run.
	ctx, hung := context.WithCancelCause(ctx)
	defer hung(nil)
	wd := vm.NewWatchdog(g.watchdog, time.Now())
	g.events.watch(wd)
	stopWatch := g.watch(ctx, wd, hung)
	var once sync.Once
	stop := streamMetrics(ctx, g.sh, g.waits.metrics, mfile, func() { wd.Heartbeat(time.Now()) })
	// The watchdog first: without the stream there is no heartbeat.
	stopMetrics := func() { once.Do(func() { stopWatch(); stop() }) }
	defer stopMetrics()

	rounds := max(g.sc.Rounds, 1)
	for n := 1; n <= rounds; n++ {
		rf := &roundFacts{n: n}
		f.rounds = append(f.rounds, rf)
		g.progress.round(n)
		goOn, err := runRound(ctx, g, rf, n == rounds, stopMetrics, f, r)
		if err != nil {
			return err
		}
		if !goOn {
			return nil
		}
	}
	g.progress.phase(PhaseTeardown)
	shutdown(ctx, g.m, g.sh, g.waits.poweroff)
	return nil
}

// runRound runs round rf.n: the marker, the stress phase, the census and
// probes, the stressors stopped, the settle (round_settle between rounds,
// settle after the last) and the liveness check. It says whether the run
// goes on: not when the machine died or the agent did not answer.
func runRound(ctx context.Context, g *session, rf *roundFacts, last bool, stopMetrics func(), f *facts, r *results.Result) (bool, error) {
	start := time.Now()
	if !r.Started.IsZero() {
		rf.startS = start.Sub(r.Started).Seconds()
	}
	settle := g.sc.RoundSettle.D()
	if last {
		settle = g.sc.Settle.D()
	}
	name := g.base
	if g.sc.Rounds > 1 {
		name = fmt.Sprintf("%s round %d/%d", g.base, rf.n, g.sc.Rounds)
	}
	end := durationEnd(g.sc, g.waits.killGrace)
	if g.plan != nil {
		end.wait, end.detectors = g.plan.wait, g.plan.kinds
	}
	sctx, scancel := g.stressContext(ctx)
	st, err := stressPhase(sctx, g.m, g.sh, g.sc, g.variant, rf.n, stressMarker(g.base, rf.n), g.events, end)
	if errors.Is(sctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		g.mu.Lock()
		g.timedOut = true
		g.mu.Unlock()
	}
	scancel()
	hang := g.finding()
	if err != nil && hang == nil {
		rf.err = err
		rf.wall = time.Since(start)
		return false, fmt.Errorf("round %d: %w", rf.n, err)
	}
	rf.stress = st.elapsed
	f.stress += st.elapsed
	if g.plan != nil {
		g.logf("%s: %s", name, g.plan.seenLine(g.events.snapshot(), rf.n, st.elapsed))
	}
	for _, a := range st.actions {
		a.Round = rf.n
		rf.actions = append(rf.actions, a)
	}
	r.Steps = append(r.Steps, rf.actions...)

	// What is left and what the probes read is taken before the runner
	// stops anything: a victim that escaped a kill must still be there.
	if !isDone(g.m.Done()) && hang == nil {
		rf.left, rf.probes = censusPhase(ctx, g.sh, g.sc, g.variant, func(format string, args ...any) {
			g.logf(name+": "+format, args...)
		})
		f.left, f.probes = rf.left, rf.probes
	}

	// The end of the stressors and the settle are bounded by the
	// scenario timeout like every other wait: the stress phase ended
	// early enough (stressContext) to leave them their time.
	for _, e := range stopStressors(ctx, st.procs, g.waits.stopProc) {
		e.Round = rf.n
		rf.exits = append(rf.exits, e)
		if g.sc.Rounds > 1 {
			e.Output = "" // in the round's copy only
		}
		r.Stressors = append(r.Stressors, e)
	}
	if hang != nil {
		// Nothing in the guest answers: drop the connection, which ends
		// every session with it at once (the metrics stream too), and
		// leave the machine to be stopped.
		g.sh.Close()
	}
	dead := isDone(g.m.Done()) // ExitError is only set by then
	if dead && hang == nil && !g.events.has(console.Panic) {
		g.events.add(qemuExited(g.m.ExitError()))
	}
	if last || dead || hang != nil {
		stopMetrics()
	}
	if hang == nil {
		pause(ctx, settle)
	}
	rf.wall = time.Since(start)
	if dead || hang != nil {
		f.alive, rf.alive = false, false
		if hang != nil {
			g.logf("%s: %s after a stress phase of %.1fs: the guest is stopped", name, hang.Kind, st.elapsed.Seconds())
		}
		return false, nil // the figures (panic, lockups, the watchdog's finding) tell the story; QEMU exiting is not an infrastructure error
	}
	rf.alive = g.sh.Ping(ctx, g.waits.ping) == nil
	f.alive = rf.alive
	g.logf("%s: stress phase %.1fs, %d OOM kills, agent alive: %v", name, st.elapsed.Seconds(), g.events.killCount(rf.n), rf.alive)
	return rf.alive, nil
}

// stressContext is ctx for a stress phase: it ends early enough before
// the scenario timeout (ctx's deadline) to leave the census, the end of
// the stressors, the settle and the poweroff their time: a quarter of the
// timeout, at most 20 s plus the settle.
func (g *session) stressContext(ctx context.Context) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	reserve := g.reserve()
	if !ok || reserve <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithDeadline(ctx, dl.Add(-reserve))
}

// reserve is what stressContext leaves of the timeout after the stress
// phase.
func (g *session) reserve() time.Duration {
	return min(g.sc.Timeout.D()/4, 20*time.Second+g.sc.Settle.D())
}

// planDetectors reads the values of the scenario's detectors from the
// guest and sizes the stress phase from them (detectors.go): recorded in
// r, logged in one line. A missing value, a detector turned off, or a
// wait the timeout cannot hold is an error, one line naming the value.
// The default host watchdog time is raised to the detectors' bound plus
// its margin, so that they speak before it.
func (g *session) planDetectors(ctx context.Context, r *results.Result) error {
	v, err := readDetectorValues(ctx, g.sh, g.sc.Detectors)
	if err != nil {
		return err
	}
	p, err := planDetectors(g.sc.Detectors, v, g.sc.latestStart(), "in the guest")
	if err != nil {
		return fmt.Errorf("detectors: %w", err)
	}
	r.DetectorTiming = p.timing
	g.logf("%s: %s", g.base, p.line())
	rounds := time.Duration(max(g.sc.Rounds, 1))
	need := rounds*p.wait + (rounds-1)*g.sc.RoundSettle.D()
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl) - g.reserve(); left < need {
			spent := g.sc.Timeout.D() - time.Until(dl)
			raise := (spent + need + g.reserve() + 9*time.Second).Truncate(10 * time.Second)
			return fmt.Errorf("detectors: %s in the guest: the stress phase needs up to %.0fs, timeout %s leaves %.0fs after boot and setup: raise timeout to at least %s",
				p.worst, need.Seconds(), g.sc.Timeout.D(), max(left, 0).Seconds(), raise)
		}
	}
	if g.sc.watchdogAuto && g.watchdog > 0 {
		g.watchdog = max(g.watchdog, p.bound+watchdogMargin)
	}
	g.plan = p
	return nil
}

// qemuExited is the host's event for a machine that exited by itself,
// before the poweroff and without a kernel panic.
func qemuExited(err error) console.Event {
	why := "status 0"
	if err != nil {
		why = err.Error()
	}
	return console.Event{Kind: console.QEMUExited, Text: tail("QEMU exited by itself: "+why, console.MaxTextLen),
		Fields: map[string]string{"exit": tail(why, 256)}}
}
