// Package suite runs a set of scenarios on the kernels they ask for: it
// reads the named sets (scenarios/sets.yaml), turns command-line names into
// scenarios, and loops over scenario x variant x repeat, one guest each,
// keeping the run record (package results) on disk after every guest run.
package suite

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"oomlab/harness/internal/compare"
	"oomlab/harness/internal/kbuild"
	"oomlab/harness/internal/report"
	"oomlab/harness/internal/results"
	"oomlab/harness/internal/scenario"
)

// Plan is what a suite runs.
type Plan struct {
	Scenarios []*scenario.Scenario
	Request   kbuild.Request // which variants each scenario runs on
	Variants  []string       // the kernels built, in reading order
	Repeat    int            // repeats per scenario and variant; 0: the scenario's own
	Shard     Shard          // the part of the plan to run (zero: all of it)
	Budget    Budget         // how many guests run at once (zero: one)
	// RunGuest runs one guest run (nil: scenario.Run); the suite's tests
	// run whole plans through it without QEMU.
	RunGuest func(ctx context.Context, env scenario.Env, sc *scenario.Scenario, variant string, repeat int) *results.Result
}

// NewPlan plans the kernels for the scenarios and the variants asked for.
func NewPlan(scs []*scenario.Scenario, req kbuild.Request, repeat int) Plan {
	lists := make([][]string, len(scs))
	for i, sc := range scs {
		lists[i] = sc.Variants
	}
	return Plan{Scenarios: scs, Request: req, Variants: req.Plan(lists...), Repeat: repeat}
}

// Create makes a new run directory under root and writes its first,
// empty record there.
func Create(root string, rec *results.Run) (string, error) {
	rec.Schema = results.SchemaVersion
	rec.ID = NewRunID()
	rec.Started = time.Now()
	dir := filepath.Join(root, rec.ID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("results directory: %v", err)
	}
	return dir, report.Save(dir, rec)
}

// guestRun is one guest run of a plan.
type guestRun struct {
	sc      *scenario.Scenario
	variant string
	repeat  int
}

// Guests is how many guest runs the plan's shard has (all of the plan's
// when it is not sharded).
func (p Plan) Guests() int { return len(p.guests()) }

// guests are the guest runs of the plan's shard (all of them when it is
// not sharded), in the order they run.
func (p Plan) guests() []guestRun {
	if !p.Shard.sharded() {
		return p.allGuests()
	}
	gs, sh := p.all()
	var out []guestRun
	for k, g := range gs {
		if sh[k] == p.Shard.Index {
			out = append(out, g)
		}
	}
	return out
}

// allGuests are every guest run of the plan, in the order an unsharded
// run runs them: per scenario, repeat after repeat, each repeat on every
// variant. Interleaved, the variants meet the same host: a load that
// drifts over a long run (other guests, a build) slows every variant alike
// instead of the last one only, which would bias every timing comparison
// between them.
func (p Plan) allGuests() []guestRun {
	var out []guestRun
	for _, sc := range p.Scenarios {
		n := sc.Repeats
		if p.Repeat > 0 {
			n = p.Repeat
		}
		for i := 1; i <= n; i++ {
			for _, v := range p.Variants {
				if p.Request.Runs(sc.Variants, v) {
					out = append(out, guestRun{sc, v, i})
				}
			}
		}
	}
	return out
}

// Run runs the plan in env (env.Dir is the run directory, env.Kernels the
// kernel of each planned variant), within p.Budget (the zero Budget: one
// guest at a time), and completes rec when every guest ran. rec.Results
// are in plan order whatever the order the guest runs end in; the record
// is saved after each, with the guest runs that have not ended yet absent.
// It stops early, with the partial record saved, when ctx ends: no guest
// starts after that, and Run returns when the running ones have (the
// runner stops its guest when ctx ends). view shows the guest runs as
// they go (nil: log lines through env.Log, see NewLogView); Run closes it.
func Run(ctx context.Context, env scenario.Env, rec *results.Run, p Plan, view View) error {
	logf := env.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if view == nil {
		view = NewLogView(logf)
	}
	defer view.Close()
	runGuest := p.RunGuest
	if runGuest == nil {
		runGuest = scenario.Run
	}
	guests := p.guests()
	est := &estimator{}
	type done struct {
		k     int
		res   *results.Result
		panic any // the guest run's goroutine panicked with this
	}
	var (
		ended   = make(chan done, len(guests)) // never blocks a guest run, even after a panic
		running = map[int]shape{}
		prior   = rec.Results[:len(rec.Results):len(rec.Results)]
		slots   = make([]*results.Result, len(guests)) // by plan position
		started atomic.Int64                           // guest runs not yet started: guests[started:]
		width   atomic.Int64                           // guest runs running now
		next    int
		saveErr error
	)
	// A save error ends the running guest runs too: a run that cannot
	// keep its record should not go on for minutes.
	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// suiteETA is a guest run's own time left and that of the guest runs
	// not yet started, spread over as many as run now (serially: their
	// sum, as before; in parallel a guess, the budget and the timing-
	// sensitive scenarios decide how many will share the host).
	suiteETA := func(own time.Duration) time.Duration {
		var rest time.Duration
		for _, g := range guests[started.Load():] {
			rest += est.guess(g.sc)
		}
		return own + rest/time.Duration(max(width.Load(), 1))
	}
	shapes := func() []shape {
		out := make([]shape, 0, len(running))
		for _, s := range running {
			out = append(out, s)
		}
		return out
	}
	record := func(d done) {
		delete(running, d.k)
		est.add(guests[d.k].sc, time.Duration(d.res.WallS*float64(time.Second)))
		slots[d.k] = d.res
		rec.Results = prior
		for _, r := range slots {
			if r != nil {
				rec.Results = append(rec.Results, r)
			}
		}
		if err := report.Save(env.Dir, rec); err != nil && saveErr == nil {
			saveErr = err
			cancel()
		}
	}
	for {
		// Start every guest run that fits, in plan order; stop starting
		// on a cancelled context or a record that cannot be saved.
		for ctx.Err() == nil && saveErr == nil && next < len(guests) && p.Budget.fits(shapes(), shapeOf(guests[next])) {
			k, g := next, guests[next]
			next++
			started.Store(int64(next))
			running[k] = shapeOf(g)
			genv := env
			genv.Progress = func(pr scenario.Progress) {
				s := Status{Progress: pr, Guest: k + 1, Guests: len(guests), ETA: est.eta(g.sc, pr), Running: int(width.Load())}
				s.SuiteETA = suiteETA(s.ETA)
				view.Update(s)
			}
			go func() {
				// A panic goes on in Run's goroutine, where the
				// caller's handler (oomlab's: kill every QEMU, exit 2)
				// can see it; here it would end the process as is.
				defer func() {
					if v := recover(); v != nil {
						ended <- done{k: k, panic: v}
					}
				}()
				ended <- done{k: k, res: runGuest(gctx, genv, g.sc, g.variant, g.repeat)}
			}()
		}
		width.Store(int64(len(running)))
		if len(running) == 0 {
			break
		}
		d := <-ended
		if d.panic != nil {
			panic(d.panic)
		}
		record(d)
	}
	if saveErr != nil {
		return saveErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	now := time.Now()
	rec.Finished, rec.Complete = &now, true
	rec.Verdict, rec.Regressions = Verdict(rec)
	return report.Save(env.Dir, rec)
}

// Verdict is the final verdict of a complete run: the worst of its guest
// runs, and fail when any variant of a scenario is significantly worse
// than the scenario's reference (baseline) on any figure, at
// metrics.Alpha (compare.Within), or a kernel selftest case that passed on
// the reference fails on a variant (compare.SelftestRegressions); the
// reasons are one line per figure or case.
func Verdict(rec *results.Run) (results.Verdict, []string) {
	v := rec.ComputeVerdict()
	var why []string
	for _, row := range compare.Within(rec).Regressions() {
		why = append(why, row.Reason())
	}
	// Kernel selftests: a case that passes on baseline must pass on
	// every variant (an exact rule, no statistics).
	why = append(why, compare.SelftestRegressions(rec)...)
	if len(why) > 0 {
		v = v.Worst(results.Fail)
	}
	return v, why
}

// HostInfo describes the machine for the record.
func HostInfo(qemu string) results.Host {
	h := results.Host{CPUs: runtime.NumCPU()}
	h.Name, _ = os.Hostname()
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		h.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int
		fmt.Sscanf(string(b), "MemTotal: %d kB", &kb)
		h.MemMB = kb / 1024
	}
	if out, err := exec.Command(qemu, "--version").Output(); err == nil {
		h.QEMU = strings.SplitN(string(out), "\n", 2)[0]
	}
	return h
}

// NewRunID is a new run's id: its start time (UTC) and a random suffix.
func NewRunID() string {
	return time.Now().UTC().Format("20060102-150405") + "-" + randHex(3)
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
