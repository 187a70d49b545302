package scenario

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	"oomlab/harness/internal/tailbuf"
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
func Run(ctx context.Context, env Env, sc *Scenario, variant string, repeat int) *results.Result {
	r := &results.Result{Scenario: sc.Name, Variant: variant, Repeat: repeat, Started: time.Now()}
	err := run(ctx, env, sc, variant, repeat, r)
	r.WallS = time.Since(r.Started).Seconds()
	switch {
	case err != nil:
		r.Verdict, r.Error = results.Error, err.Error()
	default:
		r.Failures = metrics.Evaluate(sc.Expectations(variant), r.Figures)
		r.Verdict = results.Pass
		if len(r.Failures) > 0 {
			r.Verdict = results.Fail
		}
	}
	return r
}

// eventLog collects console events as they stream in.
type eventLog struct {
	mu     sync.Mutex
	parser *console.Parser
	events []console.Event
	kills  metrics.KillCounter // as the figures count them, for stop_when
}

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

	keys, err := guest.NewKeys()
	if err != nil {
		return err
	}
	cfg := protocol.Config{
		ListenAddr: fmt.Sprintf(":%d", vm.GuestSSHPort),
		IPCIDR:     vm.GuestCIDR,
		Gateway:    vm.GuestGateway,
		Sysctls:    sc.Guest.Sysctls,
	}
	keys.Apply(&cfg)
	tmp, err := os.MkdirTemp("", "oomlab-guest-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	initrd := filepath.Join(tmp, "initrd.cpio")
	if err := initramfs.WriteFile(initrd, initramfs.Guest{Agent: env.AgentBin, Stressors: env.Stressors, Config: cfg}); err != nil {
		return err
	}

	base := fmt.Sprintf("%s-%s-%d", sc.Name, variant, repeat)
	r.Console = "console-" + base + ".log"
	conLog, err := os.Create(filepath.Join(env.Dir, r.Console))
	if err != nil {
		return err
	}
	defer conLog.Close()
	events := &eventLog{parser: console.NewParser()}
	// Figures are computed however the run ends, so that a run that died
	// half way still reports what its console showed.
	var alive bool
	var boot, stress time.Duration
	var left map[string]int
	probed := map[string]float64{}
	defer func() {
		events.mu.Lock()
		r.Events = events.events
		events.mu.Unlock()
		r.Figures = metrics.Compute(metrics.Facts{
			Events: r.Events, Boot: boot, Stress: stress, GuestAlive: alive,
			Left: left, Stressors: sc.StressorNames(), Exits: results.ExitFacts(r.Stressors), Probes: probed,
		})
	}()

	logf("%s: booting %s kernel (%d vCPUs, %d MB)", base, variant, sc.Guest.CPUs, sc.Guest.MemoryMB)
	v, err := vm.Start(ctx, vm.Config{
		QEMU: env.QEMU, Kernel: kernel, Initrd: initrd,
		Cmdline: DefaultCmdline + " " + sc.Guest.Cmdline,
		CPUs:    sc.Guest.CPUs, MemoryMB: sc.Guest.MemoryMB, Accel: env.Accel,
		Console: conLog, OnLine: events.line,
	})
	if err != nil {
		return err
	}
	defer v.Stop(3 * time.Second)
	r.Accel = v.Accel

	c, err := dial(ctx, v, keys)
	if err != nil {
		return err
	}
	defer c.Close()
	boot = time.Since(v.Started)
	logf("%s: agent ready after %.2fs (%s)", base, boot.Seconds(), v.Accel)
	alive = true

	for _, st := range sc.Setup {
		if !st.RunsOn(variant) {
			continue
		}
		res := runStep(ctx, c, "setup", st, 0)
		r.Steps = append(r.Steps, res)
		if res.Error != "" && !st.MayFail {
			return fmt.Errorf("setup %q: %s", st.Command, res.Error)
		}
	}

	// Metrics stream for the whole stress phase; it also tells us the agent
	// is alive, without extra round trips.
	mctx, mcancel := context.WithCancel(ctx)
	mdone := make(chan struct{})
	r.Metrics = "metrics-" + base + ".jsonl"
	mfile, err := os.Create(filepath.Join(env.Dir, r.Metrics))
	if err != nil {
		mcancel()
		return err
	}
	go func() {
		defer close(mdone)
		enc := json.NewEncoder(mfile)
		c.Metrics(mctx, 250*time.Millisecond, func(s guest.Sample) { enc.Encode(s) })
	}()
	stopMetrics := func() {
		mcancel()
		<-mdone
		mfile.Close()
	}

	if err := c.Kmsg(ctx, "oomlab: stress start "+base); err != nil {
		stopMetrics()
		return fmt.Errorf("stress start marker: %w", err)
	}
	stressStart := time.Now()
	actx, acancel := context.WithCancel(ctx)
	actionsDone := make(chan []results.StepResult, 1)
	go func() { actionsDone <- runActions(actx, c, sc, variant, stressStart) }()
	procs, err := startStressors(ctx, c, sc)
	if err != nil {
		acancel()
		<-actionsDone
		stopMetrics()
		return err
	}
	waitStress(ctx, v, sc, procs, events)
	stress = time.Since(stressStart)
	acancel()
	r.Steps = append(r.Steps, <-actionsDone...)
	// What is left and what the probes read is taken before the runner
	// stops anything: a victim that escaped a kill must still be there.
	if !isDone(v.Done()) {
		left = census(ctx, c)
		for _, p := range sc.Probes {
			if p.RunsOn(variant) {
				if val, err := probe(ctx, c, p); err == nil {
					probed[p.Name] = val
				} else {
					logf("%s: probe %s: %v", base, p.Name, err)
				}
			}
		}
	}
	r.Stressors = stopStressors(procs)
	stopMetrics()

	if v.ExitError() != nil || isDone(v.Done()) {
		alive = false
		time.Sleep(sc.Settle.D())
		return nil // the figures (panic, lockups) tell the story; QEMU exiting is not an infrastructure error
	}
	time.Sleep(sc.Settle.D())
	pctx, pcancel := context.WithTimeout(ctx, 15*time.Second)
	alive = c.Ping(pctx, 15*time.Second) == nil
	pcancel()
	logf("%s: stress phase %.1fs, %d OOM kills, agent alive: %v", base, time.Since(stressStart).Seconds(), events.killCount(), alive)

	// Clean shutdown through the agent; Stop (deferred) is the fallback.
	if alive {
		// The guest may go down before the agent's answer is through: only
		// a refusal means there is nothing to wait for.
		pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
		var refused *guest.CommandError
		if err := c.Poweroff(pctx); !errors.As(err, &refused) {
			select {
			case <-v.Done():
			case <-pctx.Done():
			}
		}
		pcancel()
	}
	return nil
}

// stepTimeout bounds one setup step, action or probe: they are agent
// builtins and small commands, and a guest that cannot answer one in this
// time is reported by the figures, not waited for.
const stepTimeout = 30 * time.Second

// stepOutput runs one small agent command within stepTimeout.
func stepOutput(ctx context.Context, c *guest.Client, cmd string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	return c.Output(ctx, cmd)
}

func runStep(ctx context.Context, c *guest.Client, phase string, st Step, at time.Duration) results.StepResult {
	res := results.StepResult{Phase: phase, Command: st.Command, Tolerate: st.MayFail}
	if phase == "action" {
		res.AtS = at.Seconds()
	}
	out, err := stepOutput(ctx, c, st.Command)
	res.Output = tail(string(out), 1024)
	if err != nil {
		res.Error = err.Error()
	}
	return res
}

// runActions runs the actions for a variant at their times from the stress
// start, one after the other, until ctx ends (the end of the stress phase).
func runActions(ctx context.Context, c *guest.Client, sc *Scenario, variant string, start time.Time) []results.StepResult {
	steps := append([]Step(nil), sc.Actions...)
	sort.SliceStable(steps, func(i, j int) bool { return steps[i].At < steps[j].At })
	var out []results.StepResult
	for _, st := range steps {
		if !st.RunsOn(variant) {
			continue
		}
		if d := st.At.D() - time.Since(start); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return out
			}
		}
		if ctx.Err() != nil {
			return out
		}
		out = append(out, runStep(ctx, c, "action", st, time.Since(start)))
	}
	return out
}

// census counts user-space processes by name (kernel threads left out).
func census(ctx context.Context, c *guest.Client) map[string]int {
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	m, err := c.Census(ctx)
	if err != nil {
		return nil
	}
	return m
}

// probe runs a probe's command and reads its number.
func probe(ctx context.Context, c *guest.Client, p Probe) (float64, error) {
	out, err := stepOutput(ctx, c, p.Command)
	if err != nil {
		return 0, err
	}
	return ParseProbe(string(out), p.Field)
}

// ParseProbe reads the number a probe's command printed: the whole output,
// or the value after field on the first line starting with it ("field N",
// "field: N" or "field=N").
func ParseProbe(out, field string) (float64, error) {
	s := strings.TrimSpace(out)
	if field != "" {
		s = ""
		for _, line := range strings.Split(out, "\n") {
			rest, ok := strings.CutPrefix(strings.TrimSpace(line), field)
			if ok && rest != "" && strings.ContainsRune(" \t:=", rune(rest[0])) {
				s = strings.TrimLeft(rest, " \t:=")
				if f := strings.Fields(s); len(f) > 0 {
					s = f[0]
				}
				break
			}
		}
		if s == "" {
			return 0, fmt.Errorf("no line %q in the output", field)
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("not a number: %q", tail(s, 60))
	}
	return v, nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

func isDone(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// dial connects to the agent, giving up early when QEMU exits.
func dial(ctx context.Context, v *vm.VM, keys *guest.Keys) (*guest.Client, error) {
	dctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	go func() {
		select {
		case <-v.Done():
			cancel()
		case <-dctx.Done():
		}
	}()
	c, err := guest.Dial(dctx, v.SSHAddr, keys, 3*time.Second)
	if err != nil {
		if e := v.ExitError(); e != nil {
			return nil, fmt.Errorf("guest died before the agent answered: %v", e)
		}
		if isDone(v.Done()) {
			return nil, errors.New("QEMU exited (status 0) before the agent answered")
		}
		return nil, fmt.Errorf("agent did not answer on %s: %w", v.SSHAddr, err)
	}
	return c, nil
}

type proc struct {
	name     string
	instance int
	p        *guest.Process
	out      *tailbuf.Buffer
	bg       bool
	done     chan struct{} // closed when Wait returned; res is set then
	res      *guest.Result
}

// watch calls Wait exactly once and publishes the result.
func (p *proc) watch() {
	p.done = make(chan struct{})
	go func() {
		p.res, _ = p.p.Wait()
		close(p.done)
	}()
}

func startStressors(ctx context.Context, c *guest.Client, sc *Scenario) ([]*proc, error) {
	var procs []*proc
	order := append([]Stressor(nil), sc.Stressors...)
	sort.SliceStable(order, func(i, j int) bool { return order[i].StartAfter < order[j].StartAfter })
	t0 := time.Now()
	for _, st := range order {
		if d := st.StartAfter.D() - time.Since(t0); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
		}
		for i := 0; i < st.Count; i++ {
			out := &tailbuf.Buffer{Max: 4096}
			p, err := c.StartSpawn(ctx, st.Spawn, st.Command, out, out)
			if err != nil {
				for _, q := range procs {
					q.p.Close()
				}
				return nil, fmt.Errorf("start stressor %s: %w", st.Name, err)
			}
			pr := &proc{name: st.Name, instance: i, p: p, out: out, bg: st.Background}
			pr.watch()
			procs = append(procs, pr)
		}
	}
	return procs, nil
}

// killGrace is how long the stress phase goes on after the wanted number of
// OOM kills, waiting for the foreground stressors to end.
const killGrace = 10 * time.Second

// waitStress returns when a stop condition holds, the duration is over,
// the guest died, or ctx ended.
func waitStress(ctx context.Context, v *vm.VM, sc *Scenario, procs []*proc, events *eventLog) {
	done := make(chan struct{}, len(procs))
	fg := 0
	for _, p := range procs {
		if !p.bg {
			fg++
			go func(p *proc) { <-p.done; done <- struct{}{} }(p)
		}
	}
	deadline := time.After(sc.Duration.D())
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	ended := 0
	var grace <-chan time.Time
	for {
		// Enough kills: give the victims a moment to be reaped by their
		// parent so their exit signal is recorded, then stop.
		if grace == nil && sc.StopWhen.OOMKills > 0 && events.killCount() >= sc.StopWhen.OOMKills {
			grace = time.After(killGrace)
		}
		if (sc.StopWhen.AllExited || grace != nil) && fg > 0 && ended == fg {
			return
		}
		if grace != nil && fg == 0 {
			return
		}
		select {
		case <-grace:
			return
		case <-done:
			ended++
		case <-tick.C:
		case <-deadline:
			return
		case <-v.Done():
			return
		case <-ctx.Done():
			return
		}
	}
}

// stopStressors ends what still runs (closing the session makes the agent
// kill the process group) and collects how each ended.
func stopStressors(procs []*proc) []results.StressorExit {
	var out []results.StressorExit
	for _, p := range procs {
		e := results.StressorExit{Name: p.name, Instance: p.instance}
		if !isDone(p.done) {
			e.Running = true
			p.p.Close()
			select {
			case <-p.done:
			case <-time.After(5 * time.Second):
			}
		}
		if isDone(p.done) && p.res != nil {
			e.ExitCode, e.Signal = p.res.ExitCode, p.res.Signal
		}
		e.Output = p.out.String()
		out = append(out, e)
	}
	return out
}
