package scenario

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"oomlab/harness/internal/agent"
	"oomlab/harness/internal/console"
	"oomlab/harness/internal/guest"
	"oomlab/harness/internal/initramfs"
	"oomlab/harness/internal/metrics"
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

// StressorExit is how one stressor instance ended.
type StressorExit struct {
	Name     string `json:"name"`
	Instance int    `json:"instance"`
	ExitCode int    `json:"exit_code"`
	Signal   string `json:"signal,omitempty"`
	Running  bool   `json:"still_running,omitempty"` // stopped by the runner at the end of the phase
	Output   string `json:"output,omitempty"`        // tail of stdout+stderr
}

// StepResult is how one setup step or action went.
type StepResult struct {
	Phase    string  `json:"phase"`          // setup, action
	AtS      float64 `json:"at_s,omitempty"` // actions: seconds from the stress start, as run
	Command  string  `json:"command"`
	Error    string  `json:"error,omitempty"` // non-zero exit or transport error
	Output   string  `json:"output,omitempty"`
	Tolerate bool    `json:"may_fail,omitempty"`
}

// Result is one guest run of one scenario on one variant.
type Result struct {
	Scenario  string          `json:"scenario"`
	Variant   string          `json:"variant"`
	Repeat    int             `json:"repeat"`
	Verdict   string          `json:"verdict"` // pass, fail, error
	Failures  []string        `json:"failures,omitempty"`
	Error     string          `json:"error,omitempty"`
	Accel     string          `json:"accel"`
	Figures   metrics.Figures `json:"figures"`
	Stressors []StressorExit  `json:"stressors,omitempty"`
	Steps     []StepResult    `json:"steps,omitempty"` // setup and actions, in the order they ran
	Console   string          `json:"console_log"`
	Metrics   string          `json:"metrics_log,omitempty"`
	Started   time.Time       `json:"started"`
	WallS     float64         `json:"wall_s"`
	Events    []console.Event `json:"-"`
}

var stampRE = regexp.MustCompile(`^\[\s*([0-9]+\.[0-9]+)\]`)

// Run boots one guest and runs the scenario in it. It always returns a
// Result; infrastructure failures have Verdict "error".
func Run(ctx context.Context, env Env, sc *Scenario, variant string, repeat int) *Result {
	r := &Result{Scenario: sc.Name, Variant: variant, Repeat: repeat, Started: time.Now()}
	err := run(ctx, env, sc, variant, repeat, r)
	r.WallS = time.Since(r.Started).Seconds()
	switch {
	case err != nil:
		r.Verdict, r.Error = "error", err.Error()
	default:
		r.Failures = Evaluate(sc, variant, r.Figures)
		r.Verdict = "pass"
		if len(r.Failures) > 0 {
			r.Verdict = "fail"
		}
	}
	return r
}

// Evaluate checks the scenario's expectations against the figures.
func Evaluate(sc *Scenario, variant string, f metrics.Figures) []string {
	var fails []string
	exp := sc.Expectations(variant)
	for _, name := range sortedKeys(exp) {
		c, _ := ParseCondition(exp[name])
		v, ok := f.Value(name)
		if !ok {
			fails = append(fails, fmt.Sprintf("%s: no value in this run (expected %s)", name, c))
			continue
		}
		if !c.Holds(v) {
			fails = append(fails, fmt.Sprintf("%s = %g, expected %s", name, v, c))
		}
	}
	return fails
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := range keys { // tiny maps: insertion sort keeps this dependency-free
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}

// eventLog collects console events as they stream in.
type eventLog struct {
	mu          sync.Mutex
	parser      *console.Parser
	events      []console.Event
	kills       metrics.KillCounter // as the figures count them, for stop_when
	stressStart *float64
}

func (l *eventLog) line(b []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.parser.Feed(b) {
		l.kills.Add(e)
		l.events = append(l.events, e)
	}
	if l.stressStart == nil && bytes.Contains(b, []byte("oomlab: stress start")) {
		if m := stampRE.FindSubmatch(b); m != nil {
			if t, err := strconv.ParseFloat(string(m[1]), 64); err == nil {
				l.stressStart = &t
			}
		}
	}
}

func (l *eventLog) killCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.kills.Kills
}

func run(ctx context.Context, env Env, sc *Scenario, variant string, repeat int, r *Result) error {
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
	cfg, err := json.Marshal(agent.Config{
		ListenAddr:     ":22",
		HostKeyPEM:     keys.HostKeyPEM,
		AuthorizedKeys: keys.ClientAuthorized,
		IPCIDR:         "10.0.2.15/24",
		Gateway:        "10.0.2.2",
		Sysctls:        sc.Guest.Sysctls,
		PathDirs:       []string{"/bin"},
	})
	if err != nil {
		return err
	}
	img, err := initramfs.Build(initramfs.Guest{
		Agent:     env.AgentBin,
		Stressors: env.Stressors,
		Files:     map[string][]byte{strings.TrimPrefix(agent.ConfigPath, "/"): cfg},
	})
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "oomlab-guest-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	initrd := filepath.Join(tmp, "initrd.cpio")
	f, err := os.Create(initrd)
	if err != nil {
		return err
	}
	if _, err := img.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
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
		r.Figures = metrics.Compute(events.events, events.stressStart)
		cost := metrics.Cost(events.events)
		events.mu.Unlock()
		r.Figures.GuestAlive = alive
		r.Figures.BootSeconds = boot.Seconds()
		r.Figures.StressSeconds = stress.Seconds()
		r.Figures.Left = left
		r.Figures.Extra = stressorFigures(sc, r.Stressors)
		for k, v := range probed {
			r.Figures.Extra["probe:"+k] = v
		}
		for k, v := range cost {
			r.Figures.Extra[k] = v
		}
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
		c.Metrics(mctx, 250*time.Millisecond, func(s agent.Sample) { enc.Encode(s) })
	}()
	stopMetrics := func() {
		mcancel()
		<-mdone
		mfile.Close()
	}

	if _, err := c.Output(ctx, "kmsg oomlab: stress start "+base); err != nil {
		stopMetrics()
		return fmt.Errorf("stress start marker: %w", err)
	}
	stressStart := time.Now()
	actx, acancel := context.WithCancel(ctx)
	actionsDone := make(chan []StepResult, 1)
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
		if p, err := c.Start(ctx, "poweroff", io.Discard, io.Discard); err == nil {
			select {
			case <-v.Done():
			case <-time.After(5 * time.Second):
			}
			p.Close()
		}
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

func runStep(ctx context.Context, c *guest.Client, phase string, st Step, at time.Duration) StepResult {
	res := StepResult{Phase: phase, Command: st.Command, Tolerate: st.MayFail}
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
func runActions(ctx context.Context, c *guest.Client, sc *Scenario, variant string, start time.Time) []StepResult {
	steps := append([]Step(nil), sc.Actions...)
	sort.SliceStable(steps, func(i, j int) bool { return steps[i].At < steps[j].At })
	var out []StepResult
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
	out, err := stepOutput(ctx, c, "ps")
	if err != nil {
		return nil
	}
	var procs []agent.ProcInfo
	if json.Unmarshal(out, &procs) != nil {
		return nil
	}
	m := map[string]int{}
	for _, p := range procs {
		if p.PID == 2 || p.PPID == 2 {
			continue
		}
		m[p.Comm]++
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

// stressorFigures counts, per stressor, how its instances ended.
func stressorFigures(sc *Scenario, exits []StressorExit) map[string]float64 {
	m := map[string]float64{}
	for _, st := range sc.Stressors {
		for _, fam := range []string{"killed", "running", "exited", "failed"} {
			m[fam+":"+st.Name] = 0
		}
	}
	for _, e := range exits {
		switch {
		case e.Running:
			m["running:"+e.Name]++
		case e.Signal == "KILL":
			m["killed:"+e.Name]++
		case e.Signal == "" && e.ExitCode == 0:
			m["exited:"+e.Name]++
		case e.Signal == "":
			m["failed:"+e.Name]++
		}
	}
	return m
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
		if e := v.ExitError(); e != nil || isDone(v.Done()) {
			return nil, fmt.Errorf("guest died before the agent answered: %v", e)
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
			cmd := runCommand(st)
			out := &tailbuf.Buffer{Max: 4096}
			p, err := c.Start(ctx, cmd, out, out)
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

// runCommand wraps a stressor in the agent's run builtin, which sets its
// scheduling class, affinity, cgroup and oom_score_adj before exec.
func runCommand(st Stressor) string {
	args := []string{"run"}
	if st.Policy != "" {
		args = append(args, "--policy", st.Policy)
	}
	if st.Prio != 0 {
		args = append(args, "--prio", strconv.Itoa(st.Prio))
	}
	if st.CPUs != "" {
		args = append(args, "--cpus", st.CPUs)
	}
	if st.Cgroup != "" {
		args = append(args, "--cgroup", st.Cgroup)
	}
	args = append(args, "--oom-score-adj", strconv.Itoa(st.OOMScoreAdj), "--")
	return strings.Join(args, " ") + " " + st.Command
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
func stopStressors(procs []*proc) []StressorExit {
	var out []StressorExit
	for _, p := range procs {
		e := StressorExit{Name: p.name, Instance: p.instance}
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
