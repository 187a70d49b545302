package scenario

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"oomlab/harness/internal/console"
	"oomlab/harness/internal/guest"
	"oomlab/harness/internal/protocol"
	"oomlab/harness/internal/results"
)

// The runner's phases against fakes of the machine and the agent's shell.
// No test asserts a wall-clock bound tighter than the guard that keeps a
// broken phase from hanging the test; phases that must end early run with
// durations of an hour, so that the only way out is the one under test.

const guard = 20 * time.Second

// fakeMachine is a Machine whose console the test prints to and which the
// test can make die.
type fakeMachine struct {
	done   chan struct{}
	once   sync.Once
	err    error
	onLine func([]byte)

	// onSysrq, if set, answers a sysrq key or an NMI ('N') on the console.
	onSysrq func(key byte)

	mu    sync.Mutex
	stops int
	asked []string // "sysrq-l", "inject-nmi", in order
}

func newFakeMachine(events *eventLog) *fakeMachine {
	return &fakeMachine{done: make(chan struct{}), onLine: events.line}
}

// print sends lines to the console, as the machine would.
func (m *fakeMachine) print(lines ...string) {
	for _, l := range lines {
		m.onLine([]byte(l))
	}
}

// die makes the machine exit with err (nil: status 0).
func (m *fakeMachine) die(err error) {
	m.once.Do(func() {
		m.err = err
		close(m.done)
	})
}

func (m *fakeMachine) Done() <-chan struct{} { return m.done }

func (m *fakeMachine) ExitError() error {
	if !isDone(m.done) {
		return nil
	}
	return m.err
}

func (m *fakeMachine) Stop(time.Duration) {
	m.mu.Lock()
	m.stops++
	m.mu.Unlock()
	m.die(nil)
}

func (m *fakeMachine) Sysrq(ctx context.Context, key byte) error {
	m.mu.Lock()
	m.asked = append(m.asked, "sysrq-"+string(key))
	m.mu.Unlock()
	if m.onSysrq != nil {
		m.onSysrq(key)
	}
	return nil
}

func (m *fakeMachine) InjectNMI(ctx context.Context) error {
	m.mu.Lock()
	m.asked = append(m.asked, "inject-nmi")
	m.mu.Unlock()
	if m.onSysrq != nil {
		m.onSysrq('N')
	}
	return nil
}

func (m *fakeMachine) Asked() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.asked...)
}

var _ Machine = (*fakeMachine)(nil)

// fakeShell is a Shell that records its calls ("output CMD", "spawn CMD",
// "kill CMD" when a job is closed, "kmsg TEXT", "metrics", "census",
// "ping", "poweroff", "close") and answers from a script. onCall, if set,
// runs after each call is recorded, outside the lock.
type fakeShell struct {
	outputs map[string]fakeOutput // by command; default: no output, exit 0
	// outputFor, if set, answers a command before outputs (ok: it did).
	outputFor func(cmd string) (fakeOutput, bool)
	spawnErr  map[string]error // by command line
	// spawnErrFrom makes spawnErr apply from the command line's nth start
	// (1-based) on; 0 or absent: from the first.
	spawnErrFrom map[string]int
	left         map[string]int
	censusErr    error
	kmsgErr      error
	pingErr      error
	poweroffErr  error
	// beatEvery, if set, makes Metrics send a sample at this interval (a
	// live agent's heartbeat); else it sends one and then nothing.
	beatEvery time.Duration
	onCall    func(call string)
	// kmsgTo gets each line written to the kernel log, as the guest's
	// kernel prints it on the console (newTestSession: the fake machine's
	// console, without a timestamp, unless set before).
	kmsgTo func(text string)

	mu     sync.Mutex
	calls  []string
	jobs   []*fakeJob
	spawns map[string]int
}

type fakeOutput struct {
	out string
	err error
}

func (s *fakeShell) record(call string) {
	s.mu.Lock()
	s.calls = append(s.calls, call)
	s.mu.Unlock()
	if s.onCall != nil {
		s.onCall(call)
	}
}

func (s *fakeShell) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

func (s *fakeShell) Jobs() []*fakeJob {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*fakeJob(nil), s.jobs...)
}

// index is the position of the first call equal to c, -1 if none.
func (s *fakeShell) index(c string) int { return slices.Index(s.Calls(), c) }

func (s *fakeShell) Output(ctx context.Context, cmd string) ([]byte, error) {
	err := ctx.Err()
	s.record("output " + cmd)
	if err != nil {
		return nil, err
	}
	o := s.outputs[cmd]
	if s.outputFor != nil {
		if f, ok := s.outputFor(cmd); ok {
			o = f
		}
	}
	return []byte(o.out), o.err
}

func (s *fakeShell) StartSpawn(ctx context.Context, sp protocol.Spawn, cmdline string, stdout, stderr io.Writer) (guest.Job, error) {
	s.mu.Lock()
	if s.spawns == nil {
		s.spawns = map[string]int{}
	}
	s.spawns[cmdline]++
	nth := s.spawns[cmdline]
	s.mu.Unlock()
	if err := s.spawnErr[cmdline]; err != nil && nth >= s.spawnErrFrom[cmdline] {
		s.record("spawn " + cmdline)
		return nil, err
	}
	j := &fakeJob{sh: s, cmd: cmdline, done: make(chan struct{})}
	fmt.Fprintf(stdout, "%s started\n", cmdline)
	// Like guest.Process: the end of ctx kills the command.
	context.AfterFunc(ctx, func() { j.end(&guest.Result{ExitCode: 137, Signal: "KILL"}) })
	s.mu.Lock()
	s.jobs = append(s.jobs, j)
	s.mu.Unlock()
	s.record("spawn " + cmdline)
	return j, nil
}

func (s *fakeShell) Metrics(ctx context.Context, interval time.Duration, fn func(protocol.Sample)) error {
	s.record("metrics")
	fn(protocol.Sample{Seq: 1, MemFreeKB: 1000})
	if s.beatEvery > 0 {
		tick := time.NewTicker(s.beatEvery)
		defer tick.Stop()
		for seq := 2; ; seq++ {
			select {
			case <-tick.C:
				fn(protocol.Sample{Seq: seq, MemFreeKB: 1000})
				continue
			case <-ctx.Done():
			}
			break
		}
	}
	<-ctx.Done()
	s.record("metrics end")
	return nil
}

func (s *fakeShell) Kmsg(ctx context.Context, text string) error {
	s.record("kmsg " + text)
	if s.kmsgErr == nil && s.kmsgTo != nil {
		s.kmsgTo(text)
	}
	return s.kmsgErr
}

func (s *fakeShell) Census(ctx context.Context) (map[string]int, error) {
	s.record("census")
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.left, s.censusErr
}

func (s *fakeShell) Ping(ctx context.Context, timeout time.Duration) error {
	s.record("ping")
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.pingErr
}

func (s *fakeShell) Poweroff(ctx context.Context) error {
	s.record("poweroff")
	return s.poweroffErr
}

func (s *fakeShell) Close() error {
	s.record("close")
	return nil
}

var _ Shell = (*fakeShell)(nil)

// fakeJob is a stressor started by the fake shell; the test ends it with
// end, the runner with Close (which the agent answers with SIGKILL).
type fakeJob struct {
	sh   *fakeShell
	cmd  string
	once sync.Once
	done chan struct{}
	res  *guest.Result
}

func (j *fakeJob) end(res *guest.Result) {
	j.once.Do(func() {
		j.res = res
		close(j.done)
	})
}

func (j *fakeJob) Wait() (*guest.Result, error) {
	<-j.done
	return j.res, nil
}

func (j *fakeJob) Close() error {
	j.sh.record("kill " + j.cmd)
	j.end(&guest.Result{ExitCode: 137, Signal: "KILL"})
	return nil
}

// jobsOf are the jobs started for a command line.
func (s *fakeShell) jobsOf(cmd string) []*fakeJob {
	var out []*fakeJob
	for _, j := range s.Jobs() {
		if j.cmd == cmd {
			out = append(out, j)
		}
	}
	return out
}

var (
	killed = &guest.Result{ExitCode: 137, Signal: "KILL"}
	exited = func(code int) *guest.Result { return &guest.Result{ExitCode: code} }
)

// waitFor polls cond until it holds, failing the test after guard.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// within runs f and fails the test if it has not returned after guard.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(guard):
		t.Fatalf("%s did not return", what)
	}
}

// oomKill is what the console shows for one OOM kill of pid.
func oomKill(pid int) []string {
	return []string{
		fmt.Sprintf("[    5.%06d] memhog invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, oom_score_adj=0", pid),
		fmt.Sprintf("[    5.%06d] Out of memory: Killed process %d (memhog) total-vm:100kB, anon-rss:90kB, file-rss:4kB, shmem-rss:0kB, UID:0 pgtables:8kB oom_score_adj:0", pid+1, pid),
	}
}

var testWaits = waits{
	killGrace: time.Hour, // the foreground stressors' end is the way out
	stopProc:  time.Second,
	ping:      time.Second,
	poweroff:  time.Hour, // the machine's exit is the way out
	metrics:   time.Millisecond,
}

type testSession struct {
	*session
	fm *fakeMachine
	fs *fakeShell

	mu   sync.Mutex
	logs []string
}

func newTestSession(t *testing.T, sc *Scenario, sh *fakeShell) *testSession {
	events := newEventLog()
	ts := &testSession{fm: newFakeMachine(events), fs: sh}
	if sh.kmsgTo == nil {
		sh.kmsgTo = func(text string) { ts.fm.print(text) }
	}
	ts.session = &session{
		sc: sc, variant: "patched", base: "t-patched-0", dir: t.TempDir(),
		m: ts.fm, sh: sh, events: events, waits: testWaits,
		logf: func(format string, args ...any) {
			ts.mu.Lock()
			ts.logs = append(ts.logs, fmt.Sprintf(format, args...))
			ts.mu.Unlock()
		},
	}
	return ts
}

func (ts *testSession) logged() string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return strings.Join(ts.logs, "\n")
}

// run runs the phases after boot, as run does.
func (ts *testSession) run(t *testing.T, ctx context.Context) (*results.Result, *facts, error) {
	t.Helper()
	r := &results.Result{}
	f := &facts{alive: true, probes: map[string]float64{}}
	var err error
	within(t, "runGuest", func() { err = runGuest(ctx, ts.session, r, f) })
	return r, f, err
}

func TestSetupPhase(t *testing.T) {
	sc := &Scenario{Setup: []Step{
		{Command: "a"},
		{Command: "knob", MayFail: true},
		{Command: "baseline-only", Variants: []string{"baseline"}},
		{Command: "must"},
		{Command: "after"},
	}}
	fail := &guest.CommandError{Cmd: "x", Result: guest.Result{ExitCode: 1}, Stderr: "no such file"}

	t.Run("may_fail", func(t *testing.T) {
		sh := &fakeShell{outputs: map[string]fakeOutput{"a": {out: "ok\n"}, "knob": {err: fail}}}
		steps, err := setupPhase(context.Background(), sh, sc, "patched")
		if err != nil {
			t.Fatalf("a may_fail step failing ended the setup: %v", err)
		}
		var cmds []string
		for _, s := range steps {
			cmds = append(cmds, s.Command)
			if s.Phase != "setup" {
				t.Errorf("step %q phase %q", s.Command, s.Phase)
			}
		}
		if want := []string{"a", "knob", "must", "after"}; !slices.Equal(cmds, want) {
			t.Errorf("steps %v, want %v (baseline-only skipped on patched)", cmds, want)
		}
		if steps[0].Output != "ok\n" || steps[0].Error != "" {
			t.Errorf("step a: %+v", steps[0])
		}
		if !steps[1].Tolerate || !strings.Contains(steps[1].Error, "no such file") {
			t.Errorf("step knob: %+v, want a tolerated failure with the stderr", steps[1])
		}
	})

	t.Run("failure", func(t *testing.T) {
		sh := &fakeShell{outputs: map[string]fakeOutput{"must": {err: fail}}}
		steps, err := setupPhase(context.Background(), sh, sc, "baseline")
		if err == nil || !strings.Contains(err.Error(), `setup "must"`) {
			t.Fatalf("error %v, want one naming the step", err)
		}
		if len(steps) != 4 || steps[3].Command != "must" || steps[3].Error == "" {
			t.Errorf("steps %+v: want the four that ran, the last failed", steps)
		}
		if sh.index("output after") >= 0 {
			t.Error("the setup went on after a failing step")
		}
	})

	t.Run("ends the run", func(t *testing.T) {
		sh := &fakeShell{outputs: map[string]fakeOutput{"a": {err: fail}}}
		ts := newTestSession(t, &Scenario{Setup: []Step{{Command: "a"}}, Stressors: []Stressor{{Name: "hog", Command: "memhog", Count: 1}}}, sh)
		r, _, err := ts.run(t, context.Background())
		if err == nil {
			t.Fatal("no error")
		}
		if r.Metrics != "" || len(r.Steps) != 1 || sh.index("spawn memhog") >= 0 || sh.index("metrics") >= 0 {
			t.Errorf("after a failed setup: metrics %q, steps %+v, calls %v", r.Metrics, r.Steps, sh.Calls())
		}
	})
}

func TestActionsRunAtTheirTimes(t *testing.T) {
	sc := &Scenario{Actions: []Step{
		{At: Duration(80 * time.Millisecond), Command: "second"},
		{At: 0, Command: "first"},
		{At: Duration(40 * time.Millisecond), Command: "other variant", Variants: []string{"baseline"}},
		{At: Duration(time.Hour), Command: "never"},
	}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sh := &fakeShell{outputs: map[string]fakeOutput{"second": {err: errors.New("boom")}}}
	sh.onCall = func(c string) {
		if c == "output second" {
			cancel() // the end of the stress phase
		}
	}
	start := time.Now()
	var steps []results.StepResult
	within(t, "runActions", func() { steps = runActions(ctx, sh, sc, "patched", start) })
	if len(steps) != 2 || steps[0].Command != "first" || steps[1].Command != "second" {
		t.Fatalf("steps %+v, want first then second", steps)
	}
	if steps[1].AtS < 0.08 || steps[0].AtS > steps[1].AtS {
		t.Errorf("at %.3fs and %.3fs: an action ran before its time", steps[0].AtS, steps[1].AtS)
	}
	if steps[1].Phase != "action" || steps[1].Error != "boom" {
		t.Errorf("second: %+v", steps[1])
	}
	if sh.index("output other variant") >= 0 || sh.index("output never") >= 0 {
		t.Errorf("calls %v", sh.Calls())
	}
}

func stressScenario() *Scenario {
	return &Scenario{
		Name: "t",
		Stressors: []Stressor{
			{Name: "hog", Command: "memhog", Count: 2},
			{Name: "rt", Command: "rthog", Count: 1, Background: true},
		},
		Duration: Duration(time.Hour),
	}
}

func TestStopWhenOOMKills(t *testing.T) {
	sc := stressScenario()
	sc.StopWhen.OOMKills = 2
	sh := &fakeShell{}
	ts := newTestSession(t, sc, sh)
	type phase struct {
		st  stressed
		err error
	}
	ended := make(chan phase, 1)
	go func() {
		st, err := stressPhase(context.Background(), ts.fm, sh, sc, "patched", 1, stressMarker("t", 1), ts.events, durationEnd(sc, time.Hour))
		ended <- phase{st, err}
	}()
	waitFor(t, "the stressors", func() bool { return len(sh.Jobs()) == 3 })

	// The foreground stressors ending is no stop condition by itself.
	for _, j := range sh.jobsOf("memhog") {
		j.end(killed)
	}
	time.Sleep(300 * time.Millisecond) // a few of waitStress' ticks
	select {
	case <-ended:
		t.Fatal("the stress phase ended before the kills were on the console")
	default:
	}
	// One kill, printed twice, is one kill.
	ts.fm.print(oomKill(100)...)
	ts.fm.print(oomKill(100)[1])
	time.Sleep(300 * time.Millisecond)
	select {
	case <-ended:
		t.Fatal("the stress phase ended after one kill")
	default:
	}
	ts.fm.print(oomKill(101)...)
	var p phase
	within(t, "the stress phase", func() { p = <-ended })
	if p.err != nil {
		t.Fatal(p.err)
	}
	exits := stopStressors(context.Background(), p.st.procs, time.Second)
	want := []results.StressorExit{
		{Name: "hog", Instance: 0, ExitCode: 137, Signal: "KILL", Output: "memhog started\n"},
		{Name: "hog", Instance: 1, ExitCode: 137, Signal: "KILL", Output: "memhog started\n"},
		{Name: "rt", Instance: 0, ExitCode: 137, Signal: "KILL", Running: true, Output: "rthog started\n"},
	}
	if !slices.Equal(exits, want) {
		t.Errorf("exits\n%+v\nwant\n%+v", exits, want)
	}
}

func TestStopWhenOOMKillsGrace(t *testing.T) {
	sc := stressScenario()
	sc.StopWhen.OOMKills = 1
	sh := &fakeShell{}
	ts := newTestSession(t, sc, sh)
	sh.onCall = func(c string) {
		if c == "spawn rthog" {
			ts.fm.print(oomKill(7)...)
		}
	}
	var st stressed
	var err error
	// The foreground stressors never end: the grace after the kill does it.
	within(t, "the stress phase", func() {
		st, err = stressPhase(context.Background(), ts.fm, sh, sc, "patched", 1, stressMarker("t", 1), ts.events, durationEnd(sc, 50*time.Millisecond))
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range stopStressors(context.Background(), st.procs, time.Second) {
		if !e.Running {
			t.Errorf("%s/%d: not running at the end", e.Name, e.Instance)
		}
	}
}

func TestStopWhenAllExited(t *testing.T) {
	sc := stressScenario()
	sc.StopWhen.AllExited = true
	sh := &fakeShell{}
	ts := newTestSession(t, sc, sh)
	sh.onCall = func(c string) {
		if c == "spawn rthog" {
			go func() {
				js := sh.jobsOf("memhog")
				js[0].end(killed)
				js[1].end(exited(3))
			}()
		}
	}
	var st stressed
	var err error
	within(t, "the stress phase", func() {
		st, err = stressPhase(context.Background(), ts.fm, sh, sc, "patched", 1, stressMarker("t", 1), ts.events, durationEnd(sc, time.Hour))
	})
	if err != nil {
		t.Fatal(err)
	}
	if isDone(sh.jobsOf("rthog")[0].done) {
		t.Error("the background stressor was stopped by the stress phase")
	}
	exits := stopStressors(context.Background(), st.procs, time.Second)
	got := fmt.Sprintf("%d %q %v | %d %q %v | %d %q %v",
		exits[0].ExitCode, exits[0].Signal, exits[0].Running,
		exits[1].ExitCode, exits[1].Signal, exits[1].Running,
		exits[2].ExitCode, exits[2].Signal, exits[2].Running)
	if want := `137 "KILL" false | 3 "" false | 137 "KILL" true`; got != want {
		t.Errorf("exits %s, want %s (killed, exited, stopped by the runner)", got, want)
	}
	if sh.index("kill memhog") >= 0 || sh.index("kill rthog") < 0 {
		t.Errorf("the runner closed %v", sh.Calls())
	}
}

func TestStressDuration(t *testing.T) {
	sc := stressScenario()
	sc.Duration = Duration(50 * time.Millisecond)
	sh := &fakeShell{}
	ts := newTestSession(t, sc, sh)
	var st stressed
	within(t, "the stress phase", func() {
		st, _ = stressPhase(context.Background(), ts.fm, sh, sc, "patched", 1, stressMarker("t", 1), ts.events, durationEnd(sc, time.Hour))
	})
	if st.elapsed < 50*time.Millisecond {
		t.Errorf("stress phase %v, shorter than its duration", st.elapsed)
	}
	if len(st.procs) != 3 {
		t.Errorf("%d stressors", len(st.procs))
	}
}

func TestStartAfter(t *testing.T) {
	sc := &Scenario{Stressors: []Stressor{
		{Name: "late", Command: "late", Count: 1, StartAfter: Duration(60 * time.Millisecond)},
		{Name: "early", Command: "early", Count: 2},
	}}
	sh := &fakeShell{}
	t0 := time.Now()
	var at time.Duration
	sh.onCall = func(c string) {
		if c == "spawn late" {
			at = time.Since(t0)
		}
	}
	procs, err := startStressors(context.Background(), sh, sc)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"spawn early", "spawn early", "spawn late"}; !slices.Equal(sh.Calls(), want) {
		t.Errorf("calls %v, want %v", sh.Calls(), want)
	}
	if at < 60*time.Millisecond {
		t.Errorf("late started after %v, before its start_after", at)
	}
	if procs[0].name != "early" || procs[1].instance != 1 || procs[2].name != "late" {
		t.Errorf("procs %+v", procs)
	}
}

func TestRunGuest(t *testing.T) {
	sc := stressScenario()
	sc.StopWhen.OOMKills = 1
	sc.Setup = []Step{{Command: "echo 1 > /knob"}}
	sc.Actions = []Step{{Command: "act"}}
	sc.Probes = []Probe{
		{Name: "vm", Command: "cat /proc/vmstat", Field: "oom_kill"},
		{Name: "bad", Command: "echo abc"},
		{Name: "base", Command: "base", Variants: []string{"baseline"}},
	}
	sc.Expect = map[string]string{"guest_alive": "true", "oom_kills": ">= 1"}
	sh := &fakeShell{
		outputs: map[string]fakeOutput{"cat /proc/vmstat": {out: "nr_free 1\noom_kill 3\n"}, "echo abc": {out: "abc\n"}},
		left:    map[string]int{"rthog": 1, "agent": 1},
	}
	ts := newTestSession(t, sc, sh)
	acted := make(chan struct{})
	sh.onCall = func(c string) {
		switch {
		case c == "output act":
			close(acted)
		case c == "spawn rthog":
			go func() {
				<-acted // the stress phase lasts until the action ran
				ts.fm.print(oomKill(200)...)
				for _, j := range sh.jobsOf("memhog") {
					j.end(killed)
				}
			}()
		case c == "poweroff":
			go ts.fm.die(nil)
		}
	}
	r, f, err := ts.run(t, context.Background())
	if err != nil {
		t.Fatal(err)
	}
	calls := sh.Calls()
	order := []string{"output echo 1 > /knob", "kmsg oomlab: stress start t-patched-0 round 1", "spawn rthog",
		"census", "output cat /proc/vmstat", "kill rthog", "metrics end", "ping", "poweroff"}
	last := -1
	for _, c := range order {
		i := slices.Index(calls, c)
		if i <= last {
			t.Fatalf("%q at %d, want it after %q (calls %v)", c, i, order[max(0, slices.Index(order, c)-1)], calls)
		}
		last = i
	}
	if i := sh.index("output act"); i < sh.index("kmsg oomlab: stress start t-patched-0 round 1") || i > sh.index("census") {
		t.Errorf("the action ran outside the stress phase: %v", calls)
	}
	if sh.index("output base") >= 0 {
		t.Error("a baseline-only probe ran on patched")
	}
	if !f.alive || f.stress <= 0 || f.left["rthog"] != 1 {
		t.Errorf("facts %+v", f)
	}
	if len(f.probes) != 1 || f.probes["vm"] != 3 {
		t.Errorf("probes %v, want vm=3 only", f.probes)
	}
	if !strings.Contains(ts.logged(), `t-patched-0: probe bad: not a number: "abc"`) {
		t.Errorf("the bad probe was not logged:\n%s", ts.logged())
	}
	if len(r.Steps) != 2 || r.Steps[0].Phase != "setup" || r.Steps[1].Phase != "action" {
		t.Errorf("steps %+v", r.Steps)
	}
	if len(r.Stressors) != 3 || !r.Stressors[2].Running || r.Stressors[0].Running {
		t.Errorf("stressors %+v", r.Stressors)
	}
	samples := lines(t, filepath.Join(ts.dir, r.Metrics))
	if r.Metrics != "metrics-t-patched-0.jsonl" || len(samples) == 0 || !strings.Contains(samples[0], `"mem_free_kb":1000`) {
		t.Errorf("metrics log %q: %q", r.Metrics, samples)
	}

	// Figures and verdict, from what the phases found.
	figures(r, sc, ts.events, f)
	judge(r, sc, "patched", nil)
	var start *console.Event
	for i := range r.Events {
		if r.Events[i].Kind == console.StressStart {
			start = &r.Events[i]
		}
	}
	if start == nil || start.Fields["run"] != "t-patched-0" {
		t.Errorf("no stress_start event for the marker in %+v", r.Events)
	}
	if r.Figures.OOMKills != 1 || !r.Figures.GuestAlive || r.Figures.Extra["probe:vm"] != 3 {
		t.Errorf("figures %+v", r.Figures)
	}
	if r.Verdict != results.Pass {
		t.Errorf("verdict %s %v", r.Verdict, r.Failures)
	}
}

func lines(t *testing.T, file string) []string {
	t.Helper()
	fh, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var out []string
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

func TestMachineDiesMidStress(t *testing.T) {
	sc := stressScenario()
	sc.Probes = []Probe{{Name: "p", Command: "probe"}}
	sh := &fakeShell{}
	ts := newTestSession(t, sc, sh)
	sh.onCall = func(c string) {
		if c == "spawn rthog" {
			go func() {
				ts.fm.print("[    9.000000] Kernel panic - not syncing: Out of memory and no killable processes...")
				ts.fm.die(errors.New("exit status 1"))
			}()
		}
	}
	r, f, err := ts.run(t, context.Background())
	if err != nil {
		t.Fatalf("a dead guest is no infrastructure error: %v", err)
	}
	if f.alive {
		t.Error("the guest counts as alive")
	}
	for _, c := range []string{"census", "output probe", "ping", "poweroff"} {
		if sh.index(c) >= 0 {
			t.Errorf("%s on a dead machine", c)
		}
	}
	if f.left != nil || len(f.probes) != 0 {
		t.Errorf("census %v probes %v from a dead machine", f.left, f.probes)
	}
	if len(r.Stressors) != 3 || !r.Stressors[0].Running {
		t.Errorf("stressors %+v", r.Stressors)
	}
	figures(r, sc, ts.events, f)
	if r.Figures.ByKind["panic"] == 0 {
		t.Errorf("the panic on the console is not in the figures: %+v", r.Figures)
	}
}

func TestScenarioTimeoutEndsStress(t *testing.T) {
	sc := stressScenario()
	sh := &fakeShell{}
	ts := newTestSession(t, sc, sh)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sh.onCall = func(c string) {
		if c == "spawn rthog" {
			go cancel()
		}
	}
	r, f, err := ts.run(t, ctx)
	if err != nil {
		t.Fatal(err)
	}
	if f.alive || sh.index("poweroff") >= 0 {
		t.Errorf("alive %v, calls %v: past the timeout the agent cannot answer", f.alive, sh.Calls())
	}
	for _, e := range r.Stressors {
		if e.Signal != "KILL" {
			t.Errorf("%s/%d: %+v, want killed by the end of the context", e.Name, e.Instance, e)
		}
	}
}

func TestStressStartFailures(t *testing.T) {
	t.Run("marker", func(t *testing.T) {
		sh := &fakeShell{kmsgErr: errors.New("kmsg: permission denied")}
		ts := newTestSession(t, stressScenario(), sh)
		r, _, err := ts.run(t, context.Background())
		if err == nil || !strings.Contains(err.Error(), "stress start marker") {
			t.Fatalf("error %v", err)
		}
		if sh.index("spawn memhog") >= 0 || sh.index("metrics end") < 0 || r.Stressors != nil {
			t.Errorf("calls %v, stressors %v", sh.Calls(), r.Stressors)
		}
	})
	t.Run("stressor", func(t *testing.T) {
		sh := &fakeShell{spawnErr: map[string]error{"rthog": errors.New("refused")}}
		sc := stressScenario()
		sc.Actions = []Step{{At: Duration(time.Hour), Command: "never"}}
		ts := newTestSession(t, sc, sh)
		_, _, err := ts.run(t, context.Background())
		if err == nil || !strings.Contains(err.Error(), "start stressor rt: refused") {
			t.Fatalf("error %v", err)
		}
		if n := strings.Count(strings.Join(sh.Calls(), "\n"), "kill memhog"); n != 2 {
			t.Errorf("%d of the started stressors closed, want 2: %v", n, sh.Calls())
		}
		if sh.index("metrics end") < 0 || sh.index("census") >= 0 {
			t.Errorf("calls %v", sh.Calls())
		}
	})
}

func TestCensusPhase(t *testing.T) {
	sc := &Scenario{Probes: []Probe{
		{Name: "fails", Command: "false"},
		{Name: "nofield", Command: "cat", Field: "oom_kill"},
		{Name: "ok", Command: "n"},
	}}
	sh := &fakeShell{
		censusErr: errors.New("ps: broken"),
		outputs: map[string]fakeOutput{
			"false": {err: &guest.CommandError{Cmd: "false", Result: guest.Result{ExitCode: 1}}},
			"cat":   {out: "oom_killer 4\n"},
			"n":     {out: " 42\n"},
		},
	}
	var logs []string
	left, probes := censusPhase(context.Background(), sh, sc, "patched", func(format string, args ...any) {
		logs = append(logs, fmt.Sprintf(format, args...))
	})
	if left != nil {
		t.Errorf("census %v from a failed ps", left)
	}
	if len(probes) != 1 || probes["ok"] != 42 {
		t.Errorf("probes %v, want ok=42 only", probes)
	}
	all := strings.Join(logs, "\n")
	if !strings.Contains(all, "probe fails: guest:") || !strings.Contains(all, `probe nofield: no line "oom_kill"`) {
		t.Errorf("logs %q", logs)
	}
}

func TestShutdown(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		sh := &fakeShell{poweroffErr: &guest.CommandError{Cmd: "poweroff", Result: guest.Result{ExitCode: 1}}}
		m := newFakeMachine(newEventLog())
		within(t, "shutdown", func() { shutdown(context.Background(), m, sh, time.Hour) })
	})
	t.Run("acknowledged", func(t *testing.T) {
		sh := &fakeShell{}
		m := newFakeMachine(newEventLog())
		sh.onCall = func(c string) {
			if c == "poweroff" {
				go func() {
					time.Sleep(20 * time.Millisecond)
					m.die(nil)
				}()
			}
		}
		within(t, "shutdown", func() { shutdown(context.Background(), m, sh, time.Hour) })
		if !isDone(m.Done()) {
			t.Error("shutdown returned before the machine exited")
		}
	})
	t.Run("no answer", func(t *testing.T) {
		// The answer may be lost with the guest going down: wait for the
		// machine anyway, within the bound.
		sh := &fakeShell{poweroffErr: io.EOF}
		m := newFakeMachine(newEventLog())
		within(t, "shutdown", func() { shutdown(context.Background(), m, sh, 50*time.Millisecond) })
	})
}

func TestDialAgent(t *testing.T) {
	blocked := func(ctx context.Context) (Shell, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	cases := []struct {
		name    string
		exit    func(m *fakeMachine)
		connect func(context.Context) (Shell, error)
		want    string
	}{
		{"machine crashed", func(m *fakeMachine) { m.die(errors.New("exit status 1: qemu: boom")) }, blocked,
			"guest died before the agent answered: exit status 1: qemu: boom"},
		{"machine exited", func(m *fakeMachine) { m.die(nil) }, blocked,
			"QEMU exited (status 0) before the agent answered"},
		{"no agent", func(*fakeMachine) {}, func(context.Context) (Shell, error) { return nil, errors.New("handshake failed") },
			"agent did not answer on 127.0.0.1:1: handshake failed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := newFakeMachine(newEventLog())
			go tc.exit(m)
			var err error
			within(t, "dialAgent", func() { _, err = dialAgent(context.Background(), m, "127.0.0.1:1", tc.connect) })
			if err == nil || err.Error() != tc.want {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
	t.Run("answers", func(t *testing.T) {
		sh := &fakeShell{}
		got, err := dialAgent(context.Background(), newFakeMachine(newEventLog()), "a", func(context.Context) (Shell, error) { return sh, nil })
		if err != nil || got != sh {
			t.Errorf("%v %v", got, err)
		}
	})
}

func TestJudge(t *testing.T) {
	sc := &Scenario{Expect: map[string]string{"guest_alive": "true"}, ExpectVariant: map[string]map[string]string{"patched": {"oom_kills": ">= 1"}}}
	r := &results.Result{}
	figures(r, sc, newEventLog(), &facts{alive: true})
	judge(r, sc, "baseline", nil)
	if r.Verdict != results.Pass {
		t.Errorf("baseline: %s %v", r.Verdict, r.Failures)
	}
	judge(r, sc, "patched", nil)
	if r.Verdict != results.Fail || len(r.Failures) != 1 || !strings.Contains(r.Failures[0], "oom_kills") {
		t.Errorf("patched: %s %v", r.Verdict, r.Failures)
	}
	r = &results.Result{}
	judge(r, sc, "patched", errors.New("no patched kernel built"))
	if r.Verdict != results.Error || r.Error != "no patched kernel built" {
		t.Errorf("error: %s %q", r.Verdict, r.Error)
	}
}

func TestRunNoKernel(t *testing.T) {
	sc := &Scenario{Name: "t", Timeout: Duration(time.Minute)}
	r := Run(context.Background(), Env{Kernels: map[string]string{}, Dir: t.TempDir()}, sc, "patched", 0)
	if r.Verdict != results.Error || !strings.Contains(r.Error, "no patched kernel built") {
		t.Errorf("%s %q", r.Verdict, r.Error)
	}
}

// count is how many calls equal c.
func (s *fakeShell) count(c string) int {
	n := 0
	for _, x := range s.Calls() {
		if x == c {
			n++
		}
	}
	return n
}

// roundsSession is a session of a scenario with rounds whose console
// stamps each marker at 10*n s and, once a round's last stressor is
// started, shows one OOM kill of the round's memhog at 10*n+5 s and, with
// reap, its reap 2.2 s later, then ends the round's memhogs. onRound, if
// set, runs instead for the rounds it returns true for.
func roundsSession(t *testing.T, sc *Scenario, sh *fakeShell, reap bool, onRound func(ts *testSession, n int) bool) *testSession {
	var ts *testSession
	var mu sync.Mutex
	round := 0
	sh.kmsgTo = func(text string) {
		mu.Lock()
		round++
		n := round
		mu.Unlock()
		ts.fm.print(fmt.Sprintf("[%12.6f] %s", float64(10*n), text))
	}
	ts = newTestSession(t, sc, sh)
	sh.onCall = func(c string) {
		switch c {
		case "spawn rthog":
			mu.Lock()
			n := round
			mu.Unlock()
			if onRound != nil && onRound(ts, n) {
				return
			}
			go func() {
				// The round's action (at 0) runs before its kill: else
				// the stress phase may end before the action started.
				for i := 0; i < 2000 && len(sc.Actions) > 0 && sh.count("output act") < n; i++ {
					time.Sleep(time.Millisecond)
				}
				pid := 100 + n
				at := float64(10*n + 5)
				ts.fm.print(
					fmt.Sprintf("[%12.6f] memhog invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, oom_score_adj=0", at),
					fmt.Sprintf("[%12.6f] Out of memory: Killed process %d (memhog) total-vm:100kB, anon-rss:90kB, file-rss:4kB, shmem-rss:0kB, UID:0 pgtables:8kB oom_score_adj:0", at+0.001, pid))
				if reap {
					ts.fm.print(fmt.Sprintf("[%12.6f] oom_reaper: reaped process %d (memhog), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB", at+2.2, pid))
				}
				for _, j := range sh.jobsOf("memhog") {
					j.end(killed)
				}
			}()
		case "poweroff":
			go ts.fm.die(nil)
		}
	}
	return ts
}

func roundsScenario(n int) *Scenario {
	sc := stressScenario()
	sc.Rounds = n
	sc.Settle = Duration(time.Millisecond)
	sc.RoundSettle = Duration(time.Millisecond)
	sc.StopWhen.OOMKills = 1
	sc.Actions = []Step{{Command: "act"}}
	sc.Probes = []Probe{{Name: "p", Command: "probe"}}
	sc.Expect = map[string]string{"oom_kills": "== 1", "guest_alive": "true"}
	return sc
}

func TestRounds(t *testing.T) {
	sc := roundsScenario(3)
	sh := &fakeShell{outputs: map[string]fakeOutput{"probe": {out: "7\n"}}, left: map[string]int{"rthog": 1}}
	ts := roundsSession(t, sc, sh, true, nil)
	r, f, err := ts.run(t, context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// N rounds: N markers, N starts of every stressor, a census, probes
	// and a liveness check per round, and one setup, metrics stream and
	// poweroff per boot.
	for n := 1; n <= 3; n++ {
		if c := fmt.Sprintf("kmsg oomlab: stress start t-patched-0 round %d", n); sh.count(c) != 1 {
			t.Errorf("%q %d times", c, sh.count(c))
		}
	}
	for c, want := range map[string]int{"spawn memhog": 6, "spawn rthog": 3, "kill rthog": 3, "census": 3, "output probe": 3,
		"output act": 3, "ping": 3, "metrics": 1, "metrics end": 1, "poweroff": 1} {
		if got := sh.count(c); got != want {
			t.Errorf("%q %d times, want %d (calls %v)", c, got, want, sh.Calls())
		}
	}
	// Each round's census comes before its stressors are stopped, and
	// the next round's marker after the liveness check.
	calls := sh.Calls()
	var order []string
	for _, c := range calls {
		switch c {
		case "census", "kill rthog", "ping", "kmsg oomlab: stress start t-patched-0 round 2", "kmsg oomlab: stress start t-patched-0 round 3", "poweroff":
			order = append(order, c)
		}
	}
	if want := []string{"census", "kill rthog", "ping", "kmsg oomlab: stress start t-patched-0 round 2", "census", "kill rthog", "ping",
		"kmsg oomlab: stress start t-patched-0 round 3", "census", "kill rthog", "ping", "poweroff"}; !slices.Equal(order, want) {
		t.Errorf("order %v, want %v", order, want)
	}

	figures(r, sc, ts.events, f)
	judge(r, sc, "patched", nil)
	if len(r.Rounds) != 3 {
		t.Fatalf("%d rounds in the result", len(r.Rounds))
	}
	for i, rr := range r.Rounds {
		n := i + 1
		fg := rr.Figures
		if rr.Round != n || fg.OOMKills != 1 || fg.Reaped != 1 || len(fg.OOMToFreedMs) != 1 || !fg.GuestAlive || fg.Extra["probe:p"] != 7 || fg.Left["rthog"] != 1 {
			t.Errorf("round %d: %+v", n, rr)
		}
		if fg.FirstKillSeconds == nil || *fg.FirstKillSeconds < 5 || *fg.FirstKillSeconds > 5.01 {
			t.Errorf("round %d: first kill %v s after its marker, want 5", n, fg.FirstKillSeconds)
		}
		if len(rr.Stressors) != 3 || rr.Stressors[0].Round != n || rr.Stressors[0].Output == "" || fg.Extra["killed:hog"] != 2 {
			t.Errorf("round %d stressors %+v", n, rr.Stressors)
		}
		if len(rr.Steps) != 1 || rr.Steps[0].Command != "act" || rr.Steps[0].Round != n {
			t.Errorf("round %d steps %+v", n, rr.Steps)
		}
		if rr.Verdict != results.Pass || rr.WallS <= 0 {
			t.Errorf("round %d: verdict %s %v, wall %v", n, rr.Verdict, rr.Failures, rr.WallS)
		}
	}
	// The whole guest run: every round's kills, samples and exits.
	if r.Figures.OOMKills != 3 || len(r.Figures.OOMToFreedMs) != 3 || r.Figures.Extra["killed:hog"] != 6 || !r.Figures.GuestAlive {
		t.Errorf("whole-run figures %+v", r.Figures)
	}
	if len(r.Stressors) != 9 || r.Stressors[8].Round != 3 || r.Stressors[0].Output != "" {
		t.Errorf("whole-run stressors %+v", r.Stressors)
	}
	// Each round is judged on its own: one kill a round holds though the
	// run has three.
	if r.Verdict != results.Pass {
		t.Errorf("verdict %s %v", r.Verdict, r.Failures)
	}
	rounds := map[int]int{}
	for _, n := range r.EventRounds {
		rounds[n]++
	}
	if rounds[1] != 4 || rounds[2] != 4 || rounds[3] != 4 || rounds[0] != 0 {
		t.Errorf("events per round %v, want 4 each (marker, invoked, kill, reap)", rounds)
	}
	// A round that fails its expectation fails the run, named.
	sc.Expect["probe:p"] = "== 8"
	judge(r, sc, "patched", nil)
	if r.Verdict != results.Fail || len(r.Failures) != 3 || !strings.HasPrefix(r.Failures[1], "round 2: probe:p") {
		t.Errorf("verdict %s %v", r.Verdict, r.Failures)
	}
}

func TestRoundsMachineDies(t *testing.T) {
	sc := roundsScenario(3)
	sh := &fakeShell{}
	ts := roundsSession(t, sc, sh, false, func(ts *testSession, n int) bool {
		if n != 2 {
			return false
		}
		go func() {
			ts.fm.print("[   25.000000] Kernel panic - not syncing: Out of memory and no killable processes...")
			ts.fm.die(errors.New("exit status 1"))
		}()
		return true
	})
	r, f, err := ts.run(t, context.Background())
	if err != nil {
		t.Fatalf("a dead guest is no infrastructure error: %v", err)
	}
	if sh.count("kmsg oomlab: stress start t-patched-0 round 3") != 0 || sh.count("census") != 1 || sh.count("ping") != 1 || sh.count("poweroff") != 0 {
		t.Errorf("calls %v", sh.Calls())
	}
	figures(r, sc, ts.events, f)
	judge(r, sc, "patched", nil)
	if len(r.Rounds) != 2 {
		t.Fatalf("%d rounds, want 2", len(r.Rounds))
	}
	if r1 := r.Rounds[0]; r1.Verdict != results.Pass || r1.Figures.OOMKills != 1 || !r1.Figures.GuestAlive {
		t.Errorf("round 1 was not kept: %+v", r1)
	}
	r2 := r.Rounds[1]
	if r2.Figures.ByKind["panic"] != 1 || r2.Figures.GuestAlive || r2.Verdict != results.Fail || r.Rounds[0].Figures.ByKind["panic"] != 0 {
		t.Errorf("round 2: %+v", r2)
	}
	if r.Figures.GuestAlive || r.Verdict != results.Fail || !slices.Contains(r.Failures, "rounds: 2 of 3 ran (the guest died or its agent stopped answering)") {
		t.Errorf("run: alive %v, verdict %s %v", r.Figures.GuestAlive, r.Verdict, r.Failures)
	}
}

func TestRoundFailsToStart(t *testing.T) {
	sc := roundsScenario(3)
	sh := &fakeShell{spawnErr: map[string]error{"rthog": errors.New("refused")}, spawnErrFrom: map[string]int{"rthog": 2}}
	ts := roundsSession(t, sc, sh, false, nil)
	r, f, err := ts.run(t, context.Background())
	if err == nil || err.Error() != "round 2: start stressor rt: refused" {
		t.Fatalf("error %v", err)
	}
	if sh.count("kill memhog") != 2 || sh.count("metrics end") != 1 || sh.count("kmsg oomlab: stress start t-patched-0 round 3") != 0 {
		t.Errorf("calls %v", sh.Calls())
	}
	figures(r, sc, ts.events, f)
	judge(r, sc, "patched", err)
	if r.Verdict != results.Error || len(r.Rounds) != 2 {
		t.Fatalf("verdict %s, %d rounds", r.Verdict, len(r.Rounds))
	}
	if r.Rounds[0].Verdict != results.Pass || r.Rounds[0].Figures.OOMKills != 1 || len(r.Rounds[0].Stressors) != 3 {
		t.Errorf("round 1 not kept: %+v", r.Rounds[0])
	}
	if r.Rounds[1].Verdict != results.Error || !strings.Contains(r.Rounds[1].Error, "refused") {
		t.Errorf("round 2: %+v", r.Rounds[1])
	}
}

func TestStopWhenOOMReaped(t *testing.T) {
	sc := stressScenario()
	sc.StopWhen.OOMReaped = 1
	sh := &fakeShell{}
	ts := newTestSession(t, sc, sh)
	sh.onCall = func(c string) {
		if c == "spawn rthog" {
			go ts.fm.print(append(oomKill(7), "[    7.300000] oom_reaper: reaped process 7 (memhog), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB")...)
		}
	}
	// The foreground stressors never end and there is no grace: the reap
	// ends the round.
	var st stressed
	var err error
	within(t, "the stress phase", func() {
		st, err = stressPhase(context.Background(), ts.fm, sh, sc, "patched", 1, stressMarker("t", 1), ts.events, durationEnd(sc, time.Hour))
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range stopStressors(context.Background(), st.procs, time.Second) {
		if !e.Running {
			t.Errorf("%s/%d: ended before the runner stopped it", e.Name, e.Instance)
		}
	}
}

func TestEventLogCountsPerRound(t *testing.T) {
	l := newEventLog()
	reap := "[    8.000000] oom_reaper: reaped process 7 (memhog), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB"
	for _, s := range append([]string{"[    1.000000] " + stressMarker("t", 1)}, append(oomKill(7), reap)...) {
		l.line([]byte(s))
	}
	if l.killCount(1) != 1 || l.reapCount(1) != 1 || l.killCount(2) != 0 || l.reapCount(2) != 0 {
		t.Errorf("round 1: %d kills %d reaps; round 2 (marker not seen yet): %d %d", l.killCount(1), l.reapCount(1), l.killCount(2), l.reapCount(2))
	}
	l.line([]byte("[   10.000000] " + stressMarker("t", 2)))
	if l.killCount(2) != 0 || l.reapCount(2) != 0 || l.killCount(1) != 0 {
		t.Errorf("round 2 counts round 1's: %d kills %d reaps", l.killCount(2), l.reapCount(2))
	}
}

func TestAssignRounds(t *testing.T) {
	f := func(x float64) *float64 { return &x }
	ev := func(k console.Kind, t *float64, round string) console.Event {
		e := console.Event{Kind: k, Time: t}
		if round != "" {
			e.Fields = map[string]string{"round": round}
		}
		return e
	}
	evs := []console.Event{
		ev(console.Warning, f(0.5), ""),     // boot: before every marker
		ev(console.StressStart, f(1), "1"),  // round 1
		ev(console.OOMKill, f(2), ""),       // 1
		ev(console.StressStart, f(10), "2"), // 2
		ev(console.OOMReaped, f(4.2), ""),   // printed late, stamped in round 1
		ev(console.OOMKill, nil, ""),        // no time: stream order, 2
		ev(console.OOMKill, f(12), ""),      // 2
		ev(console.StressStart, f(20), ""),  // no round field: the next, 3
		ev(console.Panic, f(25), ""),        // 3
	}
	got := assignRounds(evs)
	if want := []int{0, 1, 1, 2, 1, 2, 2, 3, 3}; !slices.Equal(got, want) {
		t.Errorf("rounds %v, want %v", got, want)
	}
	// Markers without timestamps: stream order.
	for i := range evs {
		evs[i].Time = nil
	}
	if got, want := assignRounds(evs), []int{0, 1, 1, 2, 2, 2, 2, 3, 3}; !slices.Equal(got, want) {
		t.Errorf("untimed: rounds %v, want %v", got, want)
	}
}

// progressLog collects what a progress callback hears.
type progressLog struct {
	mu sync.Mutex
	ps []Progress
}

func (l *progressLog) add(p Progress) {
	l.mu.Lock()
	l.ps = append(l.ps, p)
	l.mu.Unlock()
}

func (l *progressLog) all() []Progress {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Progress(nil), l.ps...)
}

func TestProgressRounds(t *testing.T) {
	sc := roundsScenario(3)
	sc.Name = "prog"
	sh := &fakeShell{}
	ts := roundsSession(t, sc, sh, true, nil)
	var log progressLog
	start := time.Now()
	ts.progress = newProgress(log.add, sc, "patched", 2, start)
	ts.events.onFindings = ts.progress.findings
	if _, _, err := ts.run(t, context.Background()); err != nil {
		t.Fatal(err)
	}
	ps := log.all()
	var rounds []int
	kills := 0
	for i, p := range ps {
		if p.Scenario != "prog" || p.Variant != "patched" || p.Repeat != 2 || p.Rounds != 3 || !p.Started.Equal(start) {
			t.Errorf("report %d: %+v", i, p)
		}
		if i > 0 && (p.Elapsed < ps[i-1].Elapsed || p.OOMKills < ps[i-1].OOMKills || p.Round < ps[i-1].Round) {
			t.Errorf("report %d goes back: %+v after %+v", i, p, ps[i-1])
		}
		if p.Phase == PhaseRound && (len(rounds) == 0 || rounds[len(rounds)-1] != p.Round) {
			rounds = append(rounds, p.Round)
		}
		kills = p.OOMKills
	}
	if !slices.Equal(rounds, []int{1, 2, 3}) {
		t.Errorf("rounds reported %v, want [1 2 3]", rounds)
	}
	if kills != 3 {
		t.Errorf("kills reported %d, want 3 (one a round, counted over the rounds)", kills)
	}
	if last := ps[len(ps)-1]; last.Phase != PhaseTeardown || last.Round != 3 {
		t.Errorf("last report %+v, want the teardown after round 3", last)
	}
	// A lockup on the console is reported as it comes.
	ts.events.line([]byte("[   48.100000] watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [memhog:81]"))
	if ps := log.all(); ps[len(ps)-1].Lockups != 1 || ps[len(ps)-1].OOMKills != 3 {
		t.Errorf("after a soft lockup: %+v", ps[len(ps)-1])
	}
}

func TestProgressOptional(t *testing.T) {
	// No callback: nothing to hear, nothing breaks (the rounds tests run
	// without one too).
	var pr *progress
	pr.round(1)
	pr.findings(1, 0)
	newProgress(nil, roundsScenario(2), "baseline", 1, time.Now()).phase(PhaseSetup)

	// Run reports the end of a guest run with its verdict, even one that
	// could not start.
	var log progressLog
	sc := &Scenario{Name: "t", Timeout: Duration(time.Minute)}
	Run(context.Background(), Env{Kernels: map[string]string{}, Dir: t.TempDir(), Progress: log.add}, sc, "patched", 4)
	ps := log.all()
	if len(ps) != 1 || ps[0].Phase != PhaseDone || ps[0].Verdict != "error" || ps[0].Repeat != 4 || ps[0].Rounds != 1 {
		t.Errorf("reports %+v", ps)
	}
}
