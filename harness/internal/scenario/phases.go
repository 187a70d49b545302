package scenario

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"oomlab/harness/internal/console"
	"oomlab/harness/internal/guest"
	"oomlab/harness/internal/protocol"
	"oomlab/harness/internal/results"
	"oomlab/harness/internal/tailbuf"
)

// The phases of a run after boot. Each takes the machine and the agent's
// shell as the Machine and Shell interfaces, and a context that bounds
// every wait in it.

// stepTimeout bounds one setup step, action or probe: they are agent
// builtins and small commands, and a guest that cannot answer one in this
// time is reported by the figures, not waited for.
const stepTimeout = 30 * time.Second

// setupPhase runs the variant's setup steps in order. A failing step ends
// the run with an error unless it may fail; the steps that ran are
// returned either way.
func setupPhase(ctx context.Context, sh Shell, sc *Scenario, variant string) ([]results.StepResult, error) {
	var out []results.StepResult
	for _, st := range sc.Setup {
		if !st.RunsOn(variant) {
			continue
		}
		res := runStep(ctx, sh, "setup", st, 0)
		out = append(out, res)
		if res.Error != "" && !st.MayFail {
			return out, fmt.Errorf("setup %q: %s", st.Command, res.Error)
		}
	}
	return out, nil
}

// stepOutput runs one small agent command within stepTimeout.
func stepOutput(ctx context.Context, sh Shell, cmd string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	return sh.Output(ctx, cmd)
}

func runStep(ctx context.Context, sh Shell, phase string, st Step, at time.Duration) results.StepResult {
	res := results.StepResult{Phase: phase, Command: st.Command, Tolerate: st.MayFail}
	if phase == "action" {
		res.AtS = at.Seconds()
	}
	out, err := stepOutput(ctx, sh, st.Command)
	res.Output = tail(string(out), 1024)
	if err != nil {
		res.Error = err.Error()
	}
	return res
}

// streamMetrics writes the agent's samples to w, one JSON object a line,
// and calls beat for each (the agent's heartbeat for the host watchdog),
// until the returned stop is called; stop waits for the stream to end and
// closes w. A stream that ends by itself is opened again a second later:
// without it the watchdog would take a live agent for lost.
func streamMetrics(ctx context.Context, sh Shell, interval time.Duration, w io.WriteCloser, beat func()) (stop func()) {
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		enc := json.NewEncoder(w)
		for {
			sh.Metrics(mctx, interval, func(s protocol.Sample) {
				enc.Encode(s)
				beat()
			})
			if pause(mctx, time.Second); mctx.Err() != nil {
				return
			}
		}
	}()
	return func() {
		cancel()
		<-done
		w.Close()
	}
}

// stressMarker is the line the runner writes into the guest's kernel log
// when round n of the stress phase starts; the console parser makes it a
// stress_start event (fields run and round), the zero of the round on the
// console clock and the mark from which events belong to the round.
func stressMarker(base string, n int) string {
	return fmt.Sprintf("oomlab: stress start %s round %d", base, n)
}

// stressed is what the stress phase leaves to the phases after it.
type stressed struct {
	start   time.Time
	elapsed time.Duration        // length of the stress phase
	procs   []*proc              // every stressor instance, ended or not
	actions []results.StepResult // the actions as they ran
}

// stressEnd is when a stress phase ends, besides stop_when.
type stressEnd struct {
	wait time.Duration // the phase at its longest: the duration, or a detector scenario's wait
	// detectors end the phase as soon as an event of each kind is on
	// the console in the round (a detector scenario's).
	detectors []console.Kind
	killGrace time.Duration // left to the foreground stressors once stop_when's kills are seen
}

// durationEnd is the end of a scenario's stress phase without detectors.
func durationEnd(sc *Scenario, killGrace time.Duration) stressEnd {
	return stressEnd{wait: sc.Duration.D(), killGrace: killGrace}
}

// stressPhase writes the stress-start marker, starts the actions and the
// stressors and returns when the phase is over (see waitStress), the
// stressors still as they are. The console's events feed stop_when and
// the detectors through events, counted from round's marker on.
func stressPhase(ctx context.Context, m Machine, sh Shell, sc *Scenario, variant string, round int, marker string, events *eventLog, end stressEnd) (stressed, error) {
	if err := sh.Kmsg(ctx, marker); err != nil {
		return stressed{}, fmt.Errorf("stress start marker: %w", err)
	}
	st := stressed{start: time.Now()}
	actx, acancel := context.WithCancel(ctx)
	defer acancel()
	actionsDone := make(chan []results.StepResult, 1)
	go func() { actionsDone <- runActions(actx, sh, sc, variant, st.start) }()
	procs, err := startStressors(ctx, sh, sc)
	if err != nil {
		acancel()
		<-actionsDone
		return stressed{}, err
	}
	waitStress(ctx, m, sc, round, procs, events, end)
	st.elapsed = time.Since(st.start)
	acancel()
	st.procs, st.actions = procs, <-actionsDone
	return st, nil
}

// runActions runs the actions for a variant at their times from the stress
// start, one after the other, until ctx ends (the end of the stress phase).
func runActions(ctx context.Context, sh Shell, sc *Scenario, variant string, start time.Time) []results.StepResult {
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
		out = append(out, runStep(ctx, sh, "action", st, time.Since(start)))
	}
	return out
}

// proc is one stressor instance.
type proc struct {
	name     string
	instance int
	p        guest.Job
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

// startStressors starts every instance of every stressor, in the order of
// their start_after (measured from the call); the stressors end with ctx.
// If one cannot be started, those already started are closed.
func startStressors(ctx context.Context, sh Shell, sc *Scenario) ([]*proc, error) {
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
			p, err := sh.StartSpawn(ctx, st.Spawn, st.Command, out, out)
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

// waitStress returns when a stop condition holds, end.wait is over, the
// machine exited, or ctx ended. The stop conditions, on the console
// events of the round: every foreground stressor ended (all_exited);
// stop_when's OOM reaps were seen; stop_when's OOM kills were seen and
// then every foreground stressor ended or end.killGrace passed; every
// one of end.detectors reported.
func waitStress(ctx context.Context, m Machine, sc *Scenario, round int, procs []*proc, events *eventLog, end stressEnd) {
	done := make(chan struct{}, len(procs))
	fg := 0
	for _, p := range procs {
		if !p.bg {
			fg++
			go func(p *proc) { <-p.done; done <- struct{}{} }(p)
		}
	}
	deadline := time.After(end.wait)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	ended := 0
	var grace <-chan time.Time
	for {
		// Enough kills: give the victims a moment to be reaped by their
		// parent so their exit signal is recorded, then stop.
		if grace == nil && sc.StopWhen.OOMKills > 0 && events.killCount(round) >= sc.StopWhen.OOMKills {
			grace = time.After(end.killGrace)
		}
		// Every detector the scenario provokes has spoken.
		if len(end.detectors) > 0 && events.seenAll(round, end.detectors) {
			return
		}
		// The victim's memory is free: what the round measures is over.
		if sc.StopWhen.OOMReaped > 0 && events.reapCount(round) >= sc.StopWhen.OOMReaped {
			return
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
		case <-m.Done():
			return
		case <-ctx.Done():
			return
		}
	}
}

// censusPhase reads what is left in the guest (nil if the agent could not
// say) and what the variant's probes read; a probe that fails is logged
// and left out.
func censusPhase(ctx context.Context, sh Shell, sc *Scenario, variant string, logf func(format string, args ...any)) (map[string]int, map[string]float64) {
	left := census(ctx, sh)
	probed := map[string]float64{}
	for _, p := range sc.Probes {
		if !p.RunsOn(variant) {
			continue
		}
		if val, err := probe(ctx, sh, p); err == nil {
			probed[p.Name] = val
		} else {
			logf("probe %s: %v", p.Name, err)
		}
	}
	return left, probed
}

// census counts user-space processes by name (kernel threads left out).
func census(ctx context.Context, sh Shell) map[string]int {
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	m, err := sh.Census(ctx)
	if err != nil {
		return nil
	}
	return m
}

// probe runs a probe's command and reads its number.
func probe(ctx context.Context, sh Shell, p Probe) (float64, error) {
	out, err := stepOutput(ctx, sh, p.Command)
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

// stopStressors is the first half of the teardown: it ends what still runs
// (closing the session makes the agent kill the process group), waits up
// to wait for them to be reported ended, and collects how each ended. The
// wait ends with ctx; when ctx has already ended (the scenario timeout, an
// interrupt, a hung guest whose connection was dropped) the stressors get
// stopGraceLate, so that those that end at once are still reported.
func stopStressors(ctx context.Context, procs []*proc, wait time.Duration) []results.StressorExit {
	running := make([]bool, len(procs))
	for i, p := range procs {
		if !isDone(p.done) {
			running[i] = true
			p.p.Close()
		}
	}
	wctx, wait := ctx, wait
	if ctx.Err() != nil {
		wctx, wait = context.Background(), min(wait, stopGraceLate)
	}
	wctx, cancel := context.WithTimeout(wctx, wait)
	defer cancel()
	var out []results.StressorExit
	for i, p := range procs {
		e := results.StressorExit{Name: p.name, Instance: p.instance, Running: running[i]}
		select {
		case <-p.done:
		case <-wctx.Done():
		}
		if isDone(p.done) && p.res != nil {
			e.ExitCode, e.Signal = p.res.ExitCode, p.res.Signal
		}
		e.Output = p.out.String()
		out = append(out, e)
	}
	return out
}

// stopGraceLate is what stopStressors gives the stressors past the end of
// its context.
const stopGraceLate = 300 * time.Millisecond

// shutdown is the end of the teardown: a clean poweroff through the agent,
// then the wait for the machine to exit, all within wait. The machine's
// Stop (deferred by the caller) is the fallback.
func shutdown(ctx context.Context, m Machine, sh Shell, wait time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	// The guest may go down before the agent's answer is through: only a
	// refusal means there is nothing to wait for.
	var refused *guest.CommandError
	if err := sh.Poweroff(ctx); !errors.As(err, &refused) {
		select {
		case <-m.Done():
		case <-ctx.Done():
		}
	}
}

// pause waits d or until ctx ends.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
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
