package suite

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"oomlab/harness/internal/kbuild"
	"oomlab/harness/internal/results"
	"oomlab/harness/internal/scenario"
)

func TestAutoBudget(t *testing.T) {
	for _, c := range []struct {
		cores, memMB int
		want         Budget
	}{
		{2, 24000, Budget{Guests: 4, CPUs: 4, MemMB: 18000, Auto: true}},
		{16, 64000, Budget{Guests: 32, CPUs: 32, MemMB: 48000, Auto: true}},
		{1, 1000, Budget{Guests: 2, CPUs: 2, MemMB: 750, Auto: true}},
		{0, -5, Budget{Guests: 2, CPUs: 2, MemMB: 0, Auto: true}}, // nonsense in: one core, no memory
	} {
		if got := AutoBudget(c.cores, c.memMB); got != c.want {
			t.Errorf("AutoBudget(%d, %d) = %+v, want %+v", c.cores, c.memMB, got, c.want)
		}
	}
	if got := FixedBudget(3, 2, 24000); got != (Budget{Guests: 3, CPUs: 4, MemMB: 18000}) {
		t.Errorf("FixedBudget(3, 2, 24000) = %+v", got)
	}
}

// How many guests of a shape the auto budget of a host runs at once: the
// CPU slots bound it on a small host, the memory on one with little free.
func TestAutoBudgetHolds(t *testing.T) {
	for _, c := range []struct {
		cores, memMB, cpus, guestMB, want int
	}{
		{2, 24000, 2, 256, 2}, // this lab's host and smoke/idle: two at once
		{2, 24000, 4, 384, 1}, // a 4-vCPU guest fills 2 cores x 2
		{8, 24000, 2, 256, 8},
		{8, 1200, 2, 256, 2}, // 900 MB usable, 406 MB a guest
		{8, 300, 2, 256, 1},  // too big for the budget: still runs, alone
		{1, 24000, 4, 256, 1},
	} {
		b := AutoBudget(c.cores, c.memMB)
		var running []shape
		for b.fits(running, shape{cpus: c.cpus, memMB: c.guestMB}) && len(running) < 100 {
			running = append(running, shape{cpus: c.cpus, memMB: c.guestMB})
		}
		if len(running) != c.want {
			t.Errorf("%d cores, %d MB: %d guests of %d vCPUs, %d MB at once, want %d", c.cores, c.memMB, len(running), c.cpus, c.guestMB, c.want)
		}
	}
}

func TestBudgetFits(t *testing.T) {
	g := shape{cpus: 2, memMB: 256}
	ts := shape{cpus: 2, memMB: 256, alone: true}
	wide := Budget{Guests: 8, CPUs: 100, MemMB: 100000}
	for _, c := range []struct {
		name    string
		b       Budget
		running []shape
		next    shape
		want    bool
	}{
		{"serial: the first", Budget{}, nil, g, true},
		{"serial: a second", Budget{}, []shape{g}, g, false},
		{"timing-sensitive on an empty host", wide, nil, ts, true},
		{"timing-sensitive beside one", wide, []shape{g}, ts, false},
		{"beside a timing-sensitive one", wide, []shape{ts}, g, false},
		{"guest count", Budget{Guests: 2, CPUs: 100, MemMB: 100000}, []shape{g, g}, g, false},
		{"vCPU slots full", Budget{Guests: 8, CPUs: 4, MemMB: 100000}, []shape{g}, shape{cpus: 3, memMB: 256}, false},
		{"vCPU slots exactly", Budget{Guests: 8, CPUs: 4, MemMB: 100000}, []shape{g}, g, true},
		{"memory with QEMU's overhead", Budget{Guests: 8, CPUs: 100, MemMB: 2*256 + 2*QEMUOverheadMB - 1}, []shape{g}, g, false},
		{"memory exactly", Budget{Guests: 8, CPUs: 100, MemMB: 2*256 + 2*QEMUOverheadMB}, []shape{g}, g, true},
	} {
		if got := c.b.fits(c.running, c.next); got != c.want {
			t.Errorf("%s: fits %v, want %v", c.name, got, c.want)
		}
	}
}

func TestParseJobs(t *testing.T) {
	if n, auto, err := ParseJobs("auto"); err != nil || !auto || n != 0 {
		t.Errorf("auto: %d %v %v", n, auto, err)
	}
	if n, auto, err := ParseJobs("3"); err != nil || auto || n != 3 {
		t.Errorf("3: %d %v %v", n, auto, err)
	}
	for _, bad := range []string{"", "0", "-1", "65", "two", "Auto"} {
		if _, _, err := ParseJobs(bad); err == nil || !strings.HasPrefix(err.Error(), "--jobs") || !strings.Contains(err.Error(), "or auto") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// gate is a fake guest run that starts, says so on started and ends
// when the test releases it (or, with untilCancel, when its context
// ends): the test decides the order in which guest runs end. It counts
// how many run at once and notes every start that broke the rules.
type gate struct {
	started chan string
	budget  Budget
	// untilCancel: the guest runs end only with the context.
	untilCancel bool

	mu       sync.Mutex
	release  map[string]chan struct{}
	running  map[string]bool
	maxAt    int
	bad      []string
	starts   []string
	returned int
}

func newGate(b Budget) *gate {
	return &gate{started: make(chan string, 100), budget: b, release: map[string]chan struct{}{}, running: map[string]bool{}}
}

func key(sc *scenario.Scenario, variant string, repeat int) string {
	return fmt.Sprintf("%s/%s#%d", sc.Name, variant, repeat)
}

func (g *gate) ch(k string) chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.release[k] == nil {
		g.release[k] = make(chan struct{})
	}
	return g.release[k]
}

func (g *gate) run(ctx context.Context, env scenario.Env, sc *scenario.Scenario, variant string, repeat int) *results.Result {
	k := key(sc, variant, repeat)
	g.mu.Lock()
	for other := range g.running {
		if sc.TimingSensitive || strings.HasPrefix(other, "ts") {
			g.bad = append(g.bad, fmt.Sprintf("%s started beside %s", k, other))
		}
	}
	g.running[k] = true
	g.starts = append(g.starts, k)
	g.maxAt = max(g.maxAt, len(g.running))
	if len(g.running) > max(g.budget.Guests, 1) {
		g.bad = append(g.bad, fmt.Sprintf("%s: %d running", k, len(g.running)))
	}
	g.mu.Unlock()
	env.Progress(scenario.Progress{Scenario: sc.Name, Variant: variant, Repeat: repeat, Phase: scenario.PhaseBoot})
	g.started <- k
	v := results.Pass
	if g.untilCancel {
		<-ctx.Done()
		v = results.Error
	} else {
		<-g.ch(k)
	}
	g.mu.Lock()
	delete(g.running, k)
	g.returned++
	g.mu.Unlock()
	return &results.Result{Scenario: sc.Name, Variant: variant, Repeat: repeat, Verdict: v, WallS: 1}
}

// wait takes n start reports, failing the test after a minute (a
// scheduler that never starts them: a deadlock guard, not a timing goal).
func (g *gate) wait(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	for range n {
		select {
		case k := <-g.started:
			out = append(out, k)
		case <-time.After(time.Minute):
			t.Fatalf("only %d of %d guest runs started: %v", len(out), n, out)
		}
	}
	return out
}

func jobsPlan(scs []*scenario.Scenario, b Budget, g *gate) Plan {
	p := NewPlan(scs, kbuild.Request{Want: []string{"baseline", "patched"}}, 0)
	p.Budget = b
	p.RunGuest = g.run
	return p
}

func planKeys(p Plan) []string {
	var out []string
	for _, g := range p.guests() {
		out = append(out, key(g.sc, g.variant, g.repeat))
	}
	return out
}

func resultKeys(rs []*results.Result) []string {
	var out []string
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%s/%s#%d", r.Scenario, r.Variant, r.Repeat))
	}
	return out
}

// subsequence: every key of part is in whole, in whole's order.
func subsequence(part, whole []string) bool {
	i := 0
	for _, k := range part {
		for i < len(whole) && whole[i] != k {
			i++
		}
		if i == len(whole) {
			return false
		}
		i++
	}
	return true
}

func shared(name string, repeats int) *scenario.Scenario {
	return &scenario.Scenario{Name: name, Guest: scenario.Guest{CPUs: 2, MemoryMB: 256}, Variants: []string{"baseline", "patched"}, Repeats: repeats, Rounds: 1}
}

// Three at once, never four; the guest runs end in the reverse of their
// start, yet run.json lists them in plan order, after each end with the
// unfinished ones absent, and complete at the end.
func TestRunJobsPlanOrder(t *testing.T) {
	rec := &results.Run{}
	dir, err := Create(t.TempDir(), rec)
	if err != nil {
		t.Fatal(err)
	}
	g := newGate(Budget{Guests: 3})
	p := jobsPlan([]*scenario.Scenario{shared("a", 3), shared("b", 2)}, g.budget, g)
	plan := planKeys(p)
	errc := make(chan error, 1)
	go func() { errc <- Run(context.Background(), scenario.Env{Dir: dir}, rec, p, &fakeView{}) }()

	var running, ended []string
	for len(ended) < len(plan) {
		n := min(3, len(plan)-len(ended)) - len(running)
		running = append(running, g.wait(t, n)...)
		if n > 0 && len(ended) > 0 {
			// A guest run starts after the last end was recorded:
			// run.json has it, in plan order, and nothing unfinished.
			saved, err := results.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			got := resultKeys(saved.Results)
			if len(got) != len(ended) || !subsequence(got, plan) || saved.Complete {
				t.Fatalf("after %v ended, run.json has %v (complete %v), plan %v", ended, got, saved.Complete, plan)
			}
		}
		last := running[len(running)-1] // the latest started ends first
		running = running[:len(running)-1]
		ended = append(ended, last)
		close(g.ch(last))
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if g.maxAt != 3 || len(g.bad) > 0 {
		t.Errorf("at most %d at once (want 3): %v", g.maxAt, g.bad)
	}
	if slices.Equal(ended, plan) {
		t.Errorf("the guest runs ended in plan order; the test wants another")
	}
	if got := resultKeys(rec.Results); !slices.Equal(got, plan) {
		t.Errorf("results %v, want plan order %v", got, plan)
	}
	// Each once (their order is the goroutines').
	if starts := slices.Sorted(slices.Values(g.starts)); !slices.Equal(starts, slices.Sorted(slices.Values(plan))) {
		t.Errorf("started %v, want each of %v once", g.starts, plan)
	}
	saved, err := results.Load(dir)
	if err != nil || !saved.Complete || !slices.Equal(resultKeys(saved.Results), plan) {
		t.Errorf("final run.json: complete %v, %v, %v", saved.Complete, resultKeys(saved.Results), err)
	}
}

// A timing-sensitive guest run waits until the shared ones before it have
// ended (these do run side by side), runs with nothing beside it, and the
// shared ones after it wait for it to end.
func TestRunJobsTimingSensitiveWaits(t *testing.T) {
	rec := &results.Run{}
	dir, err := Create(t.TempDir(), rec)
	if err != nil {
		t.Fatal(err)
	}
	ts := shared("ts", 1)
	ts.TimingSensitive = true
	g := newGate(Budget{Guests: 4})
	p := jobsPlan([]*scenario.Scenario{shared("a", 1), ts, shared("b", 1)}, g.budget, g)
	errc := make(chan error, 1)
	go func() { errc <- Run(context.Background(), scenario.Env{Dir: dir}, rec, p, nil) }()
	first := g.wait(t, 2)
	if !slices.Equal(first, []string{"a/baseline#1", "a/patched#1"}) && !slices.Equal(first, []string{"a/patched#1", "a/baseline#1"}) {
		t.Fatalf("first started %v", first)
	}
	close(g.ch(first[0]))
	close(g.ch(first[1]))
	for _, want := range []string{"ts/baseline#1", "ts/patched#1"} {
		if k := g.wait(t, 1)[0]; k != want {
			t.Fatalf("started %s, want %s alone", k, want)
		}
		close(g.ch(want))
	}
	rest := g.wait(t, 2)
	close(g.ch(rest[0]))
	close(g.ch(rest[1]))
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if len(g.bad) > 0 || g.maxAt != 2 {
		t.Errorf("max %d at once, %v", g.maxAt, g.bad)
	}
}

// SIGINT: the context ends while three guest runs are running; each of
// them ends, nothing more starts, and Run returns only after all three,
// with the partial record (those three, in plan order) saved.
func TestRunJobsCancel(t *testing.T) {
	rec := &results.Run{}
	dir, err := Create(t.TempDir(), rec)
	if err != nil {
		t.Fatal(err)
	}
	g := newGate(Budget{Guests: 3})
	g.untilCancel = true
	p := jobsPlan([]*scenario.Scenario{shared("a", 2), shared("b", 2)}, g.budget, g)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- Run(ctx, scenario.Env{Dir: dir}, rec, p, nil) }()
	g.wait(t, 3)
	cancel()
	if err := <-errc; err != context.Canceled {
		t.Errorf("Run: %v, want context.Canceled", err)
	}
	g.mu.Lock()
	starts, returned := len(g.starts), g.returned
	g.mu.Unlock()
	if starts != 3 || returned != 3 {
		t.Errorf("%d started, %d returned before Run did; want 3 and 3", starts, returned)
	}
	saved, err := results.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := planKeys(p)[:3]
	if got := resultKeys(saved.Results); saved.Complete || !slices.Equal(got, want) {
		t.Errorf("partial run.json: complete %v, %v, want %v", saved.Complete, got, want)
	}
}

// A shard's guest runs run side by side too, and only they.
func TestRunJobsShard(t *testing.T) {
	rec := &results.Run{}
	dir, err := Create(t.TempDir(), rec)
	if err != nil {
		t.Fatal(err)
	}
	g := newGate(Budget{Guests: 2})
	p := jobsPlan([]*scenario.Scenario{shared("a", 4)}, g.budget, g)
	p.Shard = Shard{2, 2}
	mine := planKeys(p)
	if len(mine) != 4 {
		t.Fatalf("shard 2/2 of 8: %v", mine)
	}
	errc := make(chan error, 1)
	go func() { errc <- Run(context.Background(), scenario.Env{Dir: dir}, rec, p, nil) }()
	for range 2 {
		two := g.wait(t, 2)
		close(g.ch(two[1]))
		close(g.ch(two[0]))
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if g.maxAt != 2 || len(g.bad) > 0 || !slices.Equal(resultKeys(rec.Results), mine) {
		t.Errorf("max %d at once, %v; results %v, want %v", g.maxAt, g.bad, resultKeys(rec.Results), mine)
	}
}

// A guest run that panics in its goroutine panics Run, in the caller's
// goroutine, where oomlab's handler kills every QEMU.
func TestRunJobsPanic(t *testing.T) {
	rec := &results.Run{}
	dir, err := Create(t.TempDir(), rec)
	if err != nil {
		t.Fatal(err)
	}
	p := NewPlan([]*scenario.Scenario{shared("a", 2)}, kbuild.Request{Want: []string{"baseline", "patched"}}, 0)
	p.Budget = Budget{Guests: 2}
	p.RunGuest = func(context.Context, scenario.Env, *scenario.Scenario, string, int) *results.Result { panic("boom") }
	defer func() {
		if v := recover(); v != "boom" {
			t.Errorf("recovered %v, want boom", v)
		}
	}()
	Run(context.Background(), scenario.Env{Dir: dir}, rec, p, nil)
	t.Error("Run returned")
}
