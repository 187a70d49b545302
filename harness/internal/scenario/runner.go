package scenario

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
	AgentBin  string
	Stressors []string // static binaries, copied to /bin in the guest
	QEMU      string
	Accel     string // auto, kvm, tcg
	Dir       string // results/<run-id>
	Log       func(format string, args ...any)
}

// Run boots one guest and runs the scenario in it. It always returns a
// Result; infrastructure failures have Verdict "error".
//
// The run goes in phases, each a function of the machine and the agent's
// shell (the Machine and Shell interfaces): boot (boot, dialAgent), setup
// (setupPhase), stress (stressPhase), census and probes (censusPhase),
// teardown (stopStressors, shutdown), figures and verdict (figures,
// judge). runGuest strings together the phases after boot.
func Run(ctx context.Context, env Env, sc *Scenario, variant string, repeat int) *results.Result {
	r := &results.Result{Scenario: sc.Name, Variant: variant, Repeat: repeat, Started: time.Now()}
	err := run(ctx, env, sc, variant, repeat, r)
	r.WallS = time.Since(r.Started).Seconds()
	judge(r, sc, variant, err)
	return r
}

// judge is the verdict: an error if the run could not complete, else
// whether the figures meet the scenario's expectations for the variant.
func judge(r *results.Result, sc *Scenario, variant string, err error) {
	if err != nil {
		r.Verdict, r.Error = results.Error, err.Error()
		return
	}
	r.Failures = metrics.Evaluate(sc.Expectations(variant), r.Figures)
	r.Verdict = results.Pass
	if len(r.Failures) > 0 {
		r.Verdict = results.Fail
	}
}

// eventLog collects console events as they stream in.
type eventLog struct {
	mu     sync.Mutex
	parser *console.Parser
	events []console.Event
	kills  metrics.KillCounter // as the figures count them, for stop_when
}

func newEventLog() *eventLog { return &eventLog{parser: console.NewParser()} }

// line is the machine's console callback.
func (l *eventLog) line(b []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.parser.Feed(b) {
		l.kills.Add(e)
		l.events = append(l.events, e)
	}
}

func (l *eventLog) killCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.kills.Kills
}

func (l *eventLog) snapshot() []console.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]console.Event(nil), l.events...)
}

// facts is what the phases found out, besides the console and the
// stressor exits, that the figures are computed from.
type facts struct {
	alive  bool          // the agent answered after the stress phase
	boot   time.Duration // QEMU start -> agent answered
	stress time.Duration // length of the stress phase
	left   map[string]int
	probes map[string]float64
}

// figures computes the run's figures from its console events, its stressor
// exits and the facts. It runs however the run ended, so that a run that
// died half way still reports what its console showed.
func figures(r *results.Result, sc *Scenario, events *eventLog, f *facts) {
	r.Events = events.snapshot()
	r.Figures = metrics.Compute(metrics.Facts{
		Events: r.Events, Boot: f.boot, Stress: f.stress, GuestAlive: f.alive,
		Left: f.left, Stressors: sc.StressorNames(), Exits: results.ExitFacts(r.Stressors), Probes: f.probes,
	})
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
}

var defaultWaits = waits{
	killGrace: 10 * time.Second,
	stopProc:  5 * time.Second,
	ping:      15 * time.Second,
	poweroff:  5 * time.Second,
	metrics:   250 * time.Millisecond,
}

func run(ctx context.Context, env Env, sc *Scenario, variant string, repeat int, r *results.Result) error {
	logf := env.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	kernel, ok := env.Kernels[variant]
	if !ok {
		return fmt.Errorf("no %s kernel built", variant)
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
	f := &facts{probes: map[string]float64{}}
	// Deferred before the machine's Stop, so it runs after it: the
	// console has been read to the end.
	defer figures(r, sc, events, f)

	logf("%s: booting %s kernel (%d vCPUs, %d MB)", base, variant, sc.Guest.CPUs, sc.Guest.MemoryMB)
	v, sh, err := boot(ctx, env, sc, kernel, tmp, conLog, events.line)
	if v != nil {
		defer v.Stop(stopGrace)
		r.Accel = v.Accel
	}
	if err != nil {
		return err
	}
	defer sh.Close()
	f.boot = time.Since(v.Started)
	logf("%s: agent ready after %.2fs (%s)", base, f.boot.Seconds(), v.Accel)
	f.alive = true

	g := &session{sc: sc, variant: variant, base: base, dir: env.Dir, m: v, sh: sh, events: events, logf: logf, waits: defaultWaits}
	return runGuest(ctx, g, r, f)
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
		ListenAddr: fmt.Sprintf(":%d", vm.GuestSSHPort),
		IPCIDR:     vm.GuestCIDR,
		Gateway:    vm.GuestGateway,
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
	sh, err := dialAgent(ctx, v, v.SSHAddr, func(ctx context.Context) (Shell, error) {
		c, err := guest.Dial(ctx, v.SSHAddr, keys, handshakeTimeout)
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
}

// runGuest runs the phases after boot: setup, stress, census and probes,
// teardown. What they find goes into r and f; the caller computes the
// figures and the verdict however this ends. An error is an
// infrastructure failure; a guest that died is not one (the figures tell
// that story).
func runGuest(ctx context.Context, g *session, r *results.Result, f *facts) error {
	steps, err := setupPhase(ctx, g.sh, g.sc, g.variant)
	r.Steps = append(r.Steps, steps...)
	if err != nil {
		return err
	}

	// Metrics stream for the whole stress phase; they also tell us the
	// agent is alive, without extra round trips.
	r.Metrics = "metrics-" + g.base + ".jsonl"
	mfile, err := os.Create(filepath.Join(g.dir, r.Metrics))
	if err != nil {
		return err
	}
	stopMetrics := streamMetrics(ctx, g.sh, g.waits.metrics, mfile)

	st, err := stressPhase(ctx, g.m, g.sh, g.sc, g.variant, stressMarker(g.base), g.events, g.waits.killGrace)
	if err != nil {
		stopMetrics()
		return err
	}
	f.stress = st.elapsed
	r.Steps = append(r.Steps, st.actions...)

	// What is left and what the probes read is taken before the runner
	// stops anything: a victim that escaped a kill must still be there.
	if !isDone(g.m.Done()) {
		f.left, f.probes = censusPhase(ctx, g.sh, g.sc, g.variant, func(format string, args ...any) {
			g.logf(g.base+": "+format, args...)
		})
	}

	// Today the end of the stressors and the settle take their full time
	// even past the scenario timeout: they get ctx without its deadline.
	late := context.WithoutCancel(ctx)
	r.Stressors = stopStressors(late, st.procs, g.waits.stopProc)
	stopMetrics()

	if isDone(g.m.Done()) { // ExitError is only set by then
		f.alive = false
		pause(late, g.sc.Settle.D())
		return nil // the figures (panic, lockups) tell the story; QEMU exiting is not an infrastructure error
	}
	pause(late, g.sc.Settle.D())
	f.alive = g.sh.Ping(ctx, g.waits.ping) == nil
	g.logf("%s: stress phase %.1fs, %d OOM kills, agent alive: %v", g.base, time.Since(st.start).Seconds(), g.events.killCount(), f.alive)
	if f.alive {
		shutdown(ctx, g.m, g.sh, g.waits.poweroff)
	}
	return nil
}
