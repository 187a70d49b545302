package suite

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"oomlab/harness/internal/scenario"
)

// Status is a running guest run as a View sees it: where the runner is
// (scenario.Progress), its place in the suite and the time left.
type Status struct {
	scenario.Progress
	Guest, Guests int           // its place in the suite (1-based) and how many there are
	ETA           time.Duration // this guest run's expected time left
	SuiteETA      time.Duration // the whole suite's, this guest run included
	Running       int           // guest runs running now (oomlab run --jobs), this one included
}

// Key names the guest run: scenario/variant#repeat.
func (s Status) Key() string { return fmt.Sprintf("%s/%s#%d", s.Scenario, s.Variant, s.Repeat) }

// where is "round 2/10", or the phase.
func (s Status) where() string {
	switch s.Phase {
	case scenario.PhaseRound:
		return fmt.Sprintf("round %d/%d", s.Round, s.Rounds)
	case scenario.PhaseDone:
		return strings.ToUpper(s.Verdict)
	}
	return string(s.Phase)
}

// View shows a suite as it runs. Update may be called from several
// goroutines at once.
type View interface {
	Update(Status)
	Log(format string, args ...any)
	Close() // the suite ended: nothing is shown any more
}

// estimator tells how long the guest runs of a suite take: from each
// scenario's nominal length (rounds x duration and settles, and a boot)
// until guest runs have finished, then from their wall times, those of
// the same scenario first (the same sweep next), else every finished run
// scaled by its nominal length.
type estimator struct {
	mu   sync.Mutex
	done []finished
}

type finished struct {
	name, sweep string
	nominal     time.Duration
	wall        time.Duration
}

// bootGuess is the nominal boot and teardown of a guest under TCG.
const bootGuess = 10 * time.Second

// nominal is a guest run of sc at its longest stress phases.
func nominal(sc *scenario.Scenario) time.Duration {
	n := max(sc.Rounds, 1)
	return bootGuess + time.Duration(n)*sc.LongestStress() + time.Duration(n-1)*sc.RoundSettle.D() + sc.Settle.D()
}

func (e *estimator) add(sc *scenario.Scenario, wall time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.done = append(e.done, finished{sc.Name, sc.Sweep, nominal(sc), wall})
}

// guess is the expected wall time of a guest run of sc.
func (e *estimator) guess(sc *scenario.Scenario) time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	nom := nominal(sc)
	for _, same := range []func(f finished) bool{
		func(f finished) bool { return f.name == sc.Name },
		func(f finished) bool { return sc.Sweep != "" && f.sweep == sc.Sweep },
		func(finished) bool { return true },
	} {
		var wall, fnom time.Duration
		for _, f := range e.done {
			if same(f) {
				wall += f.wall
				fnom += f.nominal
			}
		}
		if fnom > 0 {
			return time.Duration(float64(nom) * float64(wall) / float64(fnom))
		}
	}
	return nom
}

// eta is the time left of a guest run of sc that has run for elapsed:
// its guess less elapsed, or, past the guess, the rest of its rounds at
// the pace of those done.
func (e *estimator) eta(sc *scenario.Scenario, p scenario.Progress) time.Duration {
	switch p.Phase {
	case scenario.PhaseTeardown, scenario.PhaseDone:
		return 0
	}
	left := e.guess(sc) - p.Elapsed
	if left < 0 && p.Phase == scenario.PhaseRound && p.Round > 1 {
		left = p.Elapsed / time.Duration(p.Round-1) * time.Duration(p.Rounds-p.Round+1)
	}
	return max(left, 0)
}

// logView writes a log line when a guest run starts, when each of its
// rounds starts (with rounds), at each lockup and with its verdict: for
// logs and CI.
type logView struct {
	logf func(string, ...any)
	mu   sync.Mutex
	last map[string]scenario.Progress
}

// NewLogView is the plain View: lines through logf.
func NewLogView(logf func(string, ...any)) View {
	return &logView{logf: logf, last: map[string]scenario.Progress{}}
}

func (v *logView) Update(s Status) {
	v.mu.Lock()
	prev, seen := v.last[s.Key()]
	v.last[s.Key()] = s.Progress
	v.mu.Unlock()
	switch {
	case !seen:
		v.logf("[%d/%d] %s: expect %s (suite: %s left)", s.Guest, s.Guests, s.Key(), short(s.ETA), short(s.SuiteETA))
	case s.Phase == scenario.PhaseRound && s.Rounds > 1 && s.Round != prev.Round:
		v.logf("%s: round %d/%d at %s, ETA %s, %d OOM kills, %d lockups so far", s.Key(), s.Round, s.Rounds, short(s.Elapsed), short(s.ETA), s.OOMKills, s.Lockups)
	case s.Lockups > prev.Lockups:
		v.logf("%s: lockup seen on the console (%d so far)", s.Key(), s.Lockups)
	case s.Phase == scenario.PhaseDone:
		v.logf("%s: %s", s.Key(), strings.ToUpper(s.Verdict))
	}
}

func (v *logView) Log(format string, args ...any) { v.logf(format, args...) }
func (v *logView) Close()                         {}

// barView is the terminal View: one mpb line per running guest run (with
// oomlab run --jobs, several),
//
//	tetsuo-sweep[...]/baseline#1  round 2/3    0:41  ETA 0:20  kills 2  lockups 0  [=====>----]
//
// and a last line for the suite; a guest run that ends leaves one line
// above them with its verdict, and log lines go above them too. The
// decorators, which mpb calls from its own goroutines, read the states
// through atomics only: mu, held around mpb calls, is never theirs.
type barView struct {
	p     *mpb.Progress
	mu    sync.Mutex // bars
	bars  map[string]*guestBar
	suite *mpb.Bar
	state atomic.Pointer[Status] // the latest of any guest run, for the suite line
}

type guestBar struct {
	bar *mpb.Bar
	st  atomic.Pointer[Status]
}

// NewBarView is the terminal View, drawn on w.
func NewBarView(w io.Writer) View {
	v := &barView{p: mpb.New(mpb.WithOutput(w), mpb.WithWidth(160), mpb.WithRefreshRate(250*time.Millisecond), mpb.WithAutoRefresh()), bars: map[string]*guestBar{}}
	v.suite = v.p.New(0, mpb.NopStyle(), mpb.BarPriority(1<<30),
		mpb.PrependDecorators(decor.Any(func(decor.Statistics) string {
			st := v.state.Load()
			if st == nil {
				return "suite: starting"
			}
			// The ETAs go down between reports with the guest's clock.
			running := ""
			if st.Running > 1 {
				running = fmt.Sprintf(" (%d running)", st.Running)
			}
			return fmt.Sprintf("suite: guest %d/%d%s, ETA %s", st.Guest, st.Guests, running, clock(max(st.SuiteETA-(time.Since(st.Started)-st.Elapsed), 0)))
		})))
	return v
}

func (v *barView) Update(s Status) {
	v.state.Store(&s)
	v.mu.Lock()
	defer v.mu.Unlock()
	g := v.bars[s.Key()]
	if g == nil {
		g = &guestBar{}
		g.st.Store(&s)
		g.bar = v.p.New(int64(s.Rounds), mpb.BarStyle().Lbound("[").Rbound("]"),
			mpb.BarWidth(20), mpb.BarRemoveOnComplete(), mpb.BarPriority(s.Guest),
			mpb.PrependDecorators(decor.Any(func(decor.Statistics) string {
				st := g.st.Load()
				// Elapsed ticks between reports; the ETA goes down with it.
				el := time.Since(st.Started)
				return fmt.Sprintf("%-44s %-11s %5s  ETA %5s  kills %-3d lockups %-2d", st.Key(), st.where(), clock(el), clock(max(st.ETA-(el-st.Elapsed), 0)), st.OOMKills, st.Lockups)
			})))
		v.bars[s.Key()] = g
	}
	g.st.Store(&s)
	switch s.Phase {
	case scenario.PhaseRound:
		g.bar.SetCurrent(int64(s.Round - 1))
	case scenario.PhaseTeardown:
		g.bar.SetCurrent(int64(s.Rounds))
	case scenario.PhaseDone:
		fmt.Fprintf(v.p, "%-5s %s in %s: %d OOM kills, %d lockups\n", strings.ToUpper(s.Verdict), s.Key(), clock(s.Elapsed), s.OOMKills, s.Lockups)
		g.bar.SetTotal(-1, true)
		delete(v.bars, s.Key())
	}
}

func (v *barView) Log(format string, args ...any) {
	fmt.Fprintf(v.p, format+"\n", args...)
}

func (v *barView) Close() {
	v.mu.Lock()
	for _, g := range v.bars {
		g.bar.Abort(true)
	}
	v.bars = map[string]*guestBar{}
	v.mu.Unlock()
	v.suite.Abort(true)
	v.p.Wait()
}

// clock is m:ss (h:mm:ss past an hour).
func clock(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%02d", h, m, s)
	}
	return fmt.Sprintf("%d:%02d", m, s)
}

// short is a duration for a log line: 41s, 3m20s.
func short(d time.Duration) string {
	if d >= time.Minute {
		return d.Round(10 * time.Second).String()
	}
	return d.Round(time.Second).String()
}
