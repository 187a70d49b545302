package scenario

import (
	"sync"
	"time"
)

// Progress is where one guest run is, as Env.Progress hears it: at each
// phase, each round's start and end, and each OOM kill or lockup the
// console shows.
type Progress struct {
	Scenario string
	Variant  string
	Repeat   int
	Phase    Phase
	Round    int // the round running or last run (0: none yet)
	Rounds   int // the scenario's rounds
	OOMKills int // so far, every round
	Lockups  int // so far, every round (soft, hard, RCU stall, hung task)
	Started  time.Time
	Elapsed  time.Duration // since Started, when this was reported
	Verdict  string        // PhaseDone: pass, fail or error
}

// Phase is a phase of a guest run.
type Phase string

// The phases of a guest run, in order.
const (
	PhaseBoot     Phase = "boot"
	PhaseSetup    Phase = "setup"
	PhaseRound    Phase = "round"
	PhaseTeardown Phase = "teardown"
	PhaseDone     Phase = "done"
)

// progress holds a guest run's Progress and reports every change to fn;
// a nil *progress or fn reports nothing. It is called from the runner and
// from the console reader, so fn must be safe for concurrent use.
type progress struct {
	mu sync.Mutex
	fn func(Progress)
	p  Progress
}

func newProgress(fn func(Progress), sc *Scenario, variant string, repeat int, started time.Time) *progress {
	return &progress{fn: fn, p: Progress{Scenario: sc.Name, Variant: variant, Repeat: repeat, Phase: PhaseBoot,
		Rounds: max(sc.Rounds, 1), Started: started}}
}

// update changes the progress under its lock and reports it.
func (pr *progress) update(f func(*Progress)) {
	if pr == nil || pr.fn == nil {
		return
	}
	pr.mu.Lock()
	f(&pr.p)
	pr.p.Elapsed = time.Since(pr.p.Started)
	p := pr.p
	fn := pr.fn
	pr.mu.Unlock()
	fn(p)
}

func (pr *progress) phase(ph Phase) { pr.update(func(p *Progress) { p.Phase = ph }) }

func (pr *progress) round(n int) {
	pr.update(func(p *Progress) { p.Phase, p.Round = PhaseRound, n })
}

// findings is the eventLog's callback for kills and lockups.
func (pr *progress) findings(kills, lockups int) {
	pr.update(func(p *Progress) { p.OOMKills, p.Lockups = kills, lockups })
}
