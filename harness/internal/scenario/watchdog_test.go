package scenario

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"oomlab/harness/internal/console"
	"oomlab/harness/internal/guest"
	"oomlab/harness/internal/protocol"
	"oomlab/harness/internal/results"
)

// watchedSession is a test session with the host watchdog on: watchdog
// wd, looked at every 5 ms, evidence collected for capture.
func watchedSession(t *testing.T, sc *Scenario, sh *fakeShell, wd time.Duration) *testSession {
	ts := newTestSession(t, sc, sh)
	ts.watchdog = wd
	ts.waits.watchTick = 5 * time.Millisecond
	ts.waits.capture = 60 * time.Millisecond
	// A 6.12 guest answers sysrq-l with an NMI backtrace of every CPU.
	ts.fm.onSysrq = func(key byte) {
		switch key {
		case 'l':
			ts.fm.print(
				"[   41.100000][    C0] sysrq: Show backtrace of all active CPUs",
				"[   41.100100][    C0] NMI backtrace for cpu 0",
				"[   41.100200][    C0] CPU: 0 UID: 0 PID: 84 Comm: rthog Not tainted 6.12.117-oomlab-baseline #1",
				"[   41.100300][    C0] Sending NMI from CPU 0 to CPUs 1:",
				"[   41.100400][    C1] NMI backtrace for cpu 1",
				"[   41.100500][    C1] CPU: 1 UID: 0 PID: 85 Comm: rthog Not tainted 6.12.117-oomlab-baseline #1",
				"[   41.100600][    C1] RIP: 0033:0x401a2c",
			)
		case 'N':
			ts.fm.print("[   41.200000][    C0] Uhhuh. NMI received for unknown reason 00 on CPU 0.")
		}
	}
	return ts
}

func hangEvent(t *testing.T, evs []console.Event, k console.Kind) console.Event {
	t.Helper()
	for _, e := range evs {
		if e.Kind == k {
			return e
		}
	}
	t.Fatalf("no %s event in %+v", k, evs)
	return console.Event{}
}

// TestWatchdogSilentHang: the agent's heartbeat stops and the console is
// quiet: the watchdog asks for backtraces (sysrq-l, sysrq-w, NMI), makes a
// silent_hang event of them, and the run ends at once without asking the
// agent anything more.
func TestWatchdogSilentHang(t *testing.T) {
	sc := stressScenario()
	sc.Probes = []Probe{{Name: "p", Command: "probe"}}
	sh := &fakeShell{} // one sample, then the agent is gone
	ts := watchedSession(t, sc, sh, 150*time.Millisecond)
	start := time.Now()
	r, f, err := ts.run(t, context.Background())
	took := time.Since(start)
	if err != nil {
		t.Fatalf("a hung guest is no infrastructure error: %v", err)
	}
	if took > time.Second {
		t.Errorf("verdict after %v: watchdog 150ms + evidence 60ms", took)
	}
	if want := []string{"sysrq-l", "sysrq-w", "inject-nmi"}; !slices.Equal(ts.fm.Asked(), want) {
		t.Errorf("asked %v, want %v", ts.fm.Asked(), want)
	}
	for _, c := range []string{"census", "output probe", "ping", "poweroff"} {
		if sh.index(c) >= 0 {
			t.Errorf("%s on a hung guest: %v", c, sh.Calls())
		}
	}
	if sh.index("close") < 0 {
		t.Errorf("the connection to the hung guest was not dropped: %v", sh.Calls())
	}
	if f.alive || len(r.Stressors) != 3 {
		t.Errorf("alive %v, stressors %+v", f.alive, r.Stressors)
	}
	figures(r, sc, ts.events, f)
	ev := hangEvent(t, r.Events, console.SilentHang)
	if !strings.Contains(ev.Fields["backtrace"], "Comm: rthog") || !strings.Contains(ev.Fields["backtrace"], "Uhhuh. NMI") {
		t.Errorf("backtrace %q", ev.Fields["backtrace"])
	}
	if ev.Fields["cpus"] != "0:rthog/84 1:rthog/85" || ev.Fields["asked"] != "sysrq-l sysrq-w inject-nmi" {
		t.Errorf("fields %v", ev.Fields)
	}
	if r.Figures.ByKind["silent_hang"] != 1 || r.Figures.Lockups != 1 || r.Figures.GuestAlive {
		t.Errorf("figures %+v", r.Figures)
	}
	if v, _ := r.Figures.Value("silent_hangs"); v != 1 {
		t.Errorf("silent_hangs %v", v)
	}
	if r.EventRounds[len(r.EventRounds)-1] != 1 {
		t.Errorf("the finding is not in round 1: %v", r.EventRounds)
	}
	judge(r, &Scenario{Expect: map[string]string{"silent_hangs": ">= 1"}}, "patched", nil)
	if r.Verdict != results.Pass {
		t.Errorf("verdict %s %v", r.Verdict, r.Failures)
	}
}

// TestWatchdogTimingNoise: a loaded host makes a hung guest print
// "hrtimer: interrupt took ..." now and then; that is no console alive.
func TestWatchdogTimingNoise(t *testing.T) {
	sc := stressScenario()
	sh := &fakeShell{}
	ts := watchedSession(t, sc, sh, 300*time.Millisecond)
	defer keepPrinting(ts, "[   18.224029][    C1] hrtimer: interrupt took 31518244 ns",
		"[   18.300000][    C0] clocksource: timekeeping watchdog on CPU0: Marking clocksource 'tsc' as unstable because the skew is too large:")()
	r, f, err := ts.run(t, context.Background())
	if err != nil {
		t.Fatal(err)
	}
	figures(r, sc, ts.events, f)
	if r.Figures.ByKind["silent_hang"] != 1 {
		t.Errorf("by kind %v", r.Figures.ByKind)
	}
}

// TestWatchdogAgentLost: the agent stops answering while the kernel keeps
// printing (lockup reports): agent_lost, with the evidence all the same.
func TestWatchdogAgentLost(t *testing.T) {
	sc := stressScenario()
	sh := &fakeShell{}
	ts := watchedSession(t, sc, sh, 150*time.Millisecond)
	defer keepPrinting(ts, "[   25.021050][    C1] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:")()
	r, f, err := ts.run(t, context.Background())
	if err != nil {
		t.Fatal(err)
	}
	figures(r, sc, ts.events, f)
	ev := hangEvent(t, r.Events, console.AgentLost)
	if !strings.Contains(ev.Text, "the console printed") || r.Figures.ByKind["silent_hang"] != 0 || r.Figures.ByKind["agent_lost"] != 1 {
		t.Errorf("event %+v, figures %+v", ev, r.Figures.ByKind)
	}
	if len(ts.fm.Asked()) != 3 {
		t.Errorf("asked %v", ts.fm.Asked())
	}
}

// TestWatchdogLiveAgentQuietConsole: an idle kernel prints nothing for
// longer than the watchdog time, but its agent answers: no finding.
func TestWatchdogLiveAgentQuietConsole(t *testing.T) {
	sc := stressScenario()
	sc.Duration = Duration(1500 * time.Millisecond)
	sh := &fakeShell{beatEvery: 10 * time.Millisecond}
	// 500 ms: 50 heartbeats, with room for a loaded test machine.
	ts := watchedSession(t, sc, sh, 500*time.Millisecond)
	sh.onCall = func(c string) {
		if c == "poweroff" {
			go ts.fm.die(nil)
		}
	}
	r, f, err := ts.run(t, context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if ts.finding() != nil || len(ts.fm.Asked()) != 0 || !f.alive || sh.index("poweroff") < 0 {
		t.Errorf("finding %v, asked %v, alive %v, calls %v", ts.finding(), ts.fm.Asked(), f.alive, sh.Calls())
	}
	// The settle and the poweroff come after the metrics stream: the
	// watchdog, stopped with it, must not take them for a hang.
	figures(r, sc, ts.events, f)
	if r.Figures.Findings() != 0 {
		t.Errorf("findings %v", r.Figures.ByKind)
	}
}

// hungShell is an agent that never answers: every call blocks until its
// context ends, as guest.Client does with a hung guest.
type hungShell struct{ fakeShell }

func (s *hungShell) Output(ctx context.Context, cmd string) ([]byte, error) {
	s.record("output " + cmd)
	<-ctx.Done()
	return nil, ctx.Err()
}

func (s *hungShell) StartSpawn(ctx context.Context, sp protocol.Spawn, cmdline string, stdout, stderr io.Writer) (guest.Job, error) {
	s.record("spawn " + cmdline)
	<-ctx.Done()
	return nil, ctx.Err()
}

func (s *hungShell) Metrics(ctx context.Context, interval time.Duration, fn func(protocol.Sample)) error {
	<-ctx.Done()
	return nil
}

func (s *hungShell) Kmsg(ctx context.Context, text string) error {
	s.record("kmsg " + text)
	<-ctx.Done()
	return ctx.Err()
}

func (s *hungShell) Census(ctx context.Context) (map[string]int, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (s *hungShell) Ping(ctx context.Context, timeout time.Duration) error {
	<-ctx.Done()
	return ctx.Err()
}

func (s *hungShell) Poweroff(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

// TestDeadlinesHungAgent: an agent that never answers, the watchdog off:
// every phase returns by the scenario timeout (the run's context
// deadline), the settle and the stop of the stressors included.
func TestDeadlinesHungAgent(t *testing.T) {
	for _, where := range []string{"setup", "marker", "spawn"} {
		t.Run(where, func(t *testing.T) {
			sc := stressScenario()
			sc.Timeout = Duration(400 * time.Millisecond)
			sc.Settle = Duration(time.Hour)
			switch where {
			case "setup":
				sc.Setup = []Step{{Command: "echo 1 > /knob"}}
			case "spawn":
				sc.Stressors[0].StartAfter = 0
			}
			var sh Shell = &hungShell{}
			fs := &fakeShell{}
			if where == "spawn" {
				// The marker is written, then nothing answers.
				sh = &spawnHung{fakeShell: fs}
			}
			events := newEventLog()
			fm := newFakeMachine(events)
			g := &session{sc: sc, variant: "baseline", base: "t-baseline-1", dir: t.TempDir(), m: fm, sh: sh, events: events,
				logf: func(string, ...any) {}, waits: testWaits}
			g.waits.poweroff = time.Hour
			ctx, cancel := context.WithTimeout(context.Background(), sc.Timeout.D())
			defer cancel()
			start := time.Now()
			var err error
			within(t, "runGuest", func() { err = runGuest(ctx, g, &results.Result{}, &facts{alive: true}) })
			if took := time.Since(start); took > sc.Timeout.D()+stopGraceLate+200*time.Millisecond {
				t.Errorf("runGuest returned after %v, timeout %v", took, sc.Timeout.D())
			}
			if where != "spawn" && err == nil {
				t.Errorf("no error from a %s that never answered", where)
			}
		})
	}
}

// spawnHung writes the marker, then never answers a spawn, a census or a
// ping.
type spawnHung struct{ *fakeShell }

func (s *spawnHung) StartSpawn(ctx context.Context, sp protocol.Spawn, cmdline string, stdout, stderr io.Writer) (guest.Job, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (s *spawnHung) Census(ctx context.Context) (map[string]int, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (s *spawnHung) Ping(ctx context.Context, timeout time.Duration) error {
	<-ctx.Done()
	return ctx.Err()
}

// TestQEMUExitedEvent: a machine that exits by itself without a panic is
// a qemu_exited finding; after a panic it is not (the panic says it).
func TestQEMUExitedEvent(t *testing.T) {
	sc := stressScenario()
	sh := &fakeShell{}
	ts := newTestSession(t, sc, sh)
	sh.onCall = func(c string) {
		if c == "spawn rthog" {
			go ts.fm.die(errors.New("signal: killed"))
		}
	}
	r, f, err := ts.run(t, context.Background())
	if err != nil {
		t.Fatal(err)
	}
	figures(r, sc, ts.events, f)
	ev := hangEvent(t, r.Events, console.QEMUExited)
	if ev.Fields["exit"] != "signal: killed" || r.Figures.Findings() != 1 {
		t.Errorf("event %+v, figures %v", ev, r.Figures.ByKind)
	}
}

// TestRunInterrupted: a run whose context is cancelled from outside
// (SIGINT, SIGTERM) has verdict error "interrupted".
func TestRunInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	sc := &Scenario{Name: "t", Timeout: Duration(time.Minute)}
	r := Run(ctx, Env{Kernels: map[string]string{}, Dir: t.TempDir()}, sc, "baseline", 1)
	if r.Verdict != results.Error || r.Error != "interrupted" {
		t.Errorf("verdict %s error %q", r.Verdict, r.Error)
	}
}

func TestDefaultWatchdog(t *testing.T) {
	for _, c := range []struct {
		cmdline string
		sysctls map[string]string
		want    time.Duration
	}{
		{DefaultCmdline, nil, 55 * time.Second},                        // 4 x watchdog_thresh 10 s, + 15 s
		{DefaultCmdline + " watchdog_thresh=5", nil, 45 * time.Second}, // hung task 30 s
		{"", nil, 135 * time.Second},                                   // the kernel's hung task default, 120 s
		{DefaultCmdline + " rcupdate.rcu_cpu_stall_timeout=60", map[string]string{"kernel.hung_task_timeout_secs": "10"}, 75 * time.Second},
	} {
		if got := DefaultWatchdog(c.cmdline, c.sysctls); got != c.want {
			t.Errorf("DefaultWatchdog(%q, %v) = %v, want %v", c.cmdline, c.sysctls, got, c.want)
		}
	}
}

// TestWatchdogFindingDuringEvidence: the stress phase ends (its duration,
// or the scenario timeout) while the watchdog is still collecting its
// evidence: the round waits for the finding and is not taken for a
// healthy one (no census, no ping of a hung agent).
func TestWatchdogFindingDuringEvidence(t *testing.T) {
	sc := stressScenario()
	sc.Duration = Duration(250 * time.Millisecond)
	sh := &fakeShell{}
	ts := watchedSession(t, sc, sh, 100*time.Millisecond)
	ts.waits.capture = 600 * time.Millisecond
	r, f, err := ts.run(t, context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if ts.finding() == nil || sh.index("census") >= 0 || sh.index("ping") >= 0 || f.alive {
		t.Errorf("finding %v, alive %v, calls %v", ts.finding(), f.alive, sh.Calls())
	}
	figures(r, sc, ts.events, f)
	if r.Figures.ByKind["silent_hang"] != 1 {
		t.Errorf("by kind %v", r.Figures.ByKind)
	}
}

// keepPrinting makes the fake console print lines every 20 ms until the
// returned stop is called: a guest whose kernel keeps talking.
func keepPrinting(ts *testSession, lines ...string) (stop func()) {
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
				ts.fm.print(lines...)
			}
		}
	}()
	return func() { close(done) }
}
