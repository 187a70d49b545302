package suite

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"oomlab/harness/internal/compare"
	"oomlab/harness/internal/console"
	"oomlab/harness/internal/kbuild"
	"oomlab/harness/internal/metrics"
	"oomlab/harness/internal/report"
	"oomlab/harness/internal/results"
	"oomlab/harness/internal/scenario"
)

func TestParseShard(t *testing.T) {
	if s, err := ParseShard("2/3"); err != nil || s != (Shard{2, 3}) || s.String() != "2/3" {
		t.Errorf("2/3: %v %v", s, err)
	}
	for _, bad := range []string{"", "3", "0/3", "4/3", "1/0", "a/b", "1/3/4", "-1/3", "1/10001"} {
		if _, err := ParseShard(bad); err == nil || !strings.Contains(err.Error(), "--shard") || !strings.Contains(err.Error(), "e.g.") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// shardScenarios is a small suite of unequal cost: a cheap scenario with
// many repeats, one with rounds, one long one on baseline only.
func shardScenarios() []*scenario.Scenario {
	sec := func(s int) scenario.Duration { return scenario.Duration(time.Duration(s) * time.Second) }
	return []*scenario.Scenario{
		{Name: "a", Variants: []string{"baseline", "patched"}, Repeats: 6, Rounds: 1, Duration: sec(10), Settle: sec(2),
			Expect: map[string]string{"oom_kills": ">= 1"}},
		{Name: "b", Variants: []string{"baseline", "patched"}, Repeats: 2, Rounds: 3, Duration: sec(30), Settle: sec(2), RoundSettle: sec(2),
			Expect: map[string]string{"oom_kills": ">= 1"}},
		{Name: "c", Variants: []string{"baseline"}, Repeats: 1, Rounds: 1, Duration: sec(120), Settle: sec(2),
			Expect: map[string]string{"oom_kills": "== 0"}}, // fails: its guest runs kill
	}
}

func shardPlan(sh Shard) Plan {
	p := NewPlan(shardScenarios(), kbuild.Request{Want: []string{"baseline", "patched"}}, 0)
	p.Shard = sh
	p.RunGuest = fakeGuest
	return p
}

// fakeGuest stands in for a QEMU guest: it writes a console log and a
// metrics file as the runner does and makes the figures from the console
// lines with the real parser and metrics.Compute. The console times (so
// the latencies) depend only on the unit; Started, wall_s and boot_s are
// the clock's, as in a real run.
func fakeGuest(_ context.Context, env scenario.Env, sc *scenario.Scenario, variant string, repeat int) *results.Result {
	r := &results.Result{Scenario: sc.Name, Variant: variant, Repeat: repeat, Started: time.Now(), Accel: "fake"}
	h := fnv.New32a()
	fmt.Fprintf(h, "%s/%s#%d", sc.Name, variant, repeat)
	jitter := float64(h.Sum32()%100) / 1000
	lat := 0.2 + jitter
	if variant == "patched" && sc.Name == "a" {
		lat *= 3 // a regression the verdict must find, sharded or not
	}
	var lines []string
	var rounds []int
	for round := 1; round <= sc.Rounds; round++ {
		t := 10.0 * float64(round)
		pid := 100 + round
		for _, l := range []string{
			fmt.Sprintf("[%12.6f] oomlab: stress start %s-%s-%d", t, sc.Name, variant, repeat),
			fmt.Sprintf("[%12.6f] memhog invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, oom_score_adj=0", t+1),
			fmt.Sprintf("[%12.6f] Out of memory: Killed process %d (memhog) total-vm:1000kB, anon-rss:900kB, file-rss:0kB, shmem-rss:4kB, UID:0 pgtables:8kB oom_score_adj:0", t+1.05, pid),
			fmt.Sprintf("[%12.6f] oom_reaper: reaped process %d (memhog), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB", t+1+lat, pid),
		} {
			lines = append(lines, l)
			rounds = append(rounds, round)
		}
	}
	base := fmt.Sprintf("%s-%s-%d", sc.Name, variant, repeat)
	r.Console, r.Metrics = "console-"+base+".log", "metrics-"+base+".jsonl"
	os.WriteFile(filepath.Join(env.Dir, r.Console), []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	os.WriteFile(filepath.Join(env.Dir, r.Metrics), []byte(fmt.Sprintf(`{"t":%d,"mem_available_kb":%d}`+"\n", repeat, 1000+repeat)), 0o644)
	p := console.NewParser()
	for i, l := range lines {
		evs := p.Feed([]byte(l))
		r.Events = append(r.Events, evs...)
		for range evs {
			r.EventRounds = append(r.EventRounds, rounds[i])
		}
	}
	r.Events = append(r.Events, p.Flush()...)
	for len(r.EventRounds) < len(r.Events) {
		r.EventRounds = append(r.EventRounds, sc.Rounds)
	}
	r.Figures = metrics.Compute(metrics.Facts{Events: r.Events, Boot: time.Since(r.Started), GuestAlive: true})
	for round := 1; round <= sc.Rounds; round++ {
		r.Rounds = append(r.Rounds, results.RoundResult{Round: round, Verdict: results.Pass, StartS: time.Since(r.Started).Seconds()})
	}
	r.Failures = metrics.Evaluate(sc.Expectations(variant), r.Figures)
	r.Verdict = results.Pass
	if len(r.Failures) > 0 {
		r.Verdict = results.Fail
	}
	r.WallS = time.Since(r.Started).Seconds()
	return r
}

// runPlan runs p into a new run directory under root as 'oomlab run'
// does (its kernels: the variants it boots, in plan order).
func runPlan(t *testing.T, root, version string, p Plan) string {
	t.Helper()
	rec := &results.Run{Version: version, Host: results.Host{Name: "fake", CPUs: 2}, Shard: p.ShardRecord()}
	for _, v := range p.ShardVariants() {
		rec.Kernels = append(rec.Kernels, results.Kernel{Variant: v, Release: "6.12-" + v, Key: "key-" + v})
	}
	dir, err := Create(root, rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := Run(context.Background(), scenario.Env{Dir: dir}, rec, p, nil); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestShardAssignment: every machine computes the same assignment, the
// shards are disjoint and together the plan, and the estimated cost is
// balanced to within one guest run.
func TestShardAssignment(t *testing.T) {
	all := shardPlan(Shard{}).Units()
	if len(all) != 17 {
		t.Fatalf("%d units, want 6x2 + 2x2 + 1", len(all))
	}
	for _, n := range []int{1, 2, 3, 5, 17, 40} {
		units := shardPlan(Shard{1, n}).Units()
		if again := shardPlan(Shard{n, n}).Units(); !slices.Equal(units, again) {
			t.Fatalf("n=%d: shard 1 and shard %d see different unit lists", n, n)
		}
		seen := map[results.UnitKey]int{}
		load := make([]time.Duration, n+1)
		var most time.Duration
		for i := 1; i <= n; i++ {
			p := shardPlan(Shard{i, n})
			for _, g := range p.guests() {
				seen[results.UnitKey{Scenario: g.sc.Name, Variant: g.variant, Repeat: g.repeat}]++
				load[i] += nominal(g.sc)
				most = max(most, nominal(g.sc))
			}
		}
		for k, u := range all {
			if seen[u.Key()] != 1 {
				t.Errorf("n=%d: unit %d %s runs in %d shards", n, k, u, seen[u.Key()])
			}
		}
		if len(seen) != len(all) {
			t.Errorf("n=%d: shards ran %d distinct units, want %d", n, len(seen), len(all))
		}
		lo, hi := slices.Min(load[1:]), slices.Max(load[1:])
		if n <= len(all) && hi-lo > most {
			t.Errorf("n=%d: loads %v: spread %v over the longest unit %v", n, load[1:], hi-lo, most)
		}
	}
	// A shard builds only the kernels its units boot.
	for i := 1; i <= 17; i++ {
		p := shardPlan(Shard{i, 17})
		if vs := p.ShardVariants(); len(vs) != 1 || vs[0] != p.guests()[0].variant {
			t.Errorf("shard %d/17: variants %v for %v", i, vs, p.guests())
		}
	}
}

// normalize blanks what differs between two runs of the same units on
// any machines: run ids, clock times and durations, the shards a merged
// run came from.
func normalize(r *results.Run) {
	r.ID, r.Started, r.Finished, r.MergedFrom, r.Shard = "", time.Time{}, nil, nil, nil
	for _, res := range r.Results {
		res.Started, res.WallS = time.Time{}, 0
		res.Figures.BootSeconds, res.Figures.StressSeconds = 0, 0
		for i := range res.Rounds {
			res.Rounds[i].StartS, res.Rounds[i].WallS = 0, 0
		}
	}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestShardMergeEqualsUnsharded runs the suite whole and as three shards
// with the fake guest, merges the shards and compares: the same run
// record (but for timing and ids), the same events, console logs and
// metrics files, the same statistics and verdict.
func TestShardMergeEqualsUnsharded(t *testing.T) {
	root := t.TempDir()
	whole := runPlan(t, root, "v1", shardPlan(Shard{}))
	var shards []string
	for _, i := range []int{3, 1, 2} { // any order
		shards = append(shards, runPlan(t, root, "v1", shardPlan(Shard{i, 3})))
	}
	out := filepath.Join(root, "merged")
	if _, err := Merge(shards, out, false, func(f string, a ...any) { t.Errorf("warning: "+f, a...) }); err != nil {
		t.Fatal(err)
	}
	a, err := results.Load(whole)
	if err != nil {
		t.Fatal(err)
	}
	b, err := results.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if b.ID != "merged" || !b.Complete || b.Finished == nil || len(b.MergedFrom) != 3 || b.MergedFrom[0].Index != 1 || b.MergedFrom[0].Dir != shards[1] {
		t.Errorf("merged record: id %q complete %v merged_from %+v", b.ID, b.Complete, b.MergedFrom)
	}
	if a.Verdict != results.Fail || len(a.Regressions) == 0 {
		t.Fatalf("the unsharded run should fail (c's expectation) with a regression (a's patched): %v %q", a.Verdict, a.Regressions)
	}
	statsA, statsB := compare.Within(a), compare.Within(b)
	for i := range statsB.Groups {
		statsA.Groups[i].Run, statsB.Groups[i].Run = "", ""
	}
	if ja, jb := jsonOf(t, statsA), jsonOf(t, statsB); ja != jb {
		t.Errorf("statistics differ:\n%s\n---\n%s", ja, jb)
	}
	var ta, tb bytes.Buffer
	report.Table(&ta, a)
	report.Table(&tb, b)
	if ta.String() != tb.String() {
		t.Errorf("text tables differ:\n%s---\n%s", ta.String(), tb.String())
	}
	normalize(a)
	normalize(b)
	if ja, jb := jsonOf(t, a), jsonOf(t, b); ja != jb {
		t.Errorf("run records differ:\n%s\n---\n%s", ja, jb)
	}
	files, _ := filepath.Glob(filepath.Join(whole, "*-*"))
	if len(files) != 2*17 {
		t.Fatalf("unsharded run has %d console and metrics files, want 34", len(files))
	}
	for _, f := range append(files, filepath.Join(whole, "events.jsonl")) {
		want, _ := os.ReadFile(f)
		got, err := os.ReadFile(filepath.Join(out, filepath.Base(f)))
		if err != nil || !bytes.Equal(got, want) || len(want) == 0 {
			t.Errorf("%s: merged copy differs (%v)", filepath.Base(f), err)
		}
	}
	for _, f := range []string{"report.ktap", "junit.xml"} {
		if _, err := os.ReadFile(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	// The page links every guest run's console and names the shards.
	page, _ := os.ReadFile(filepath.Join(out, "report.html"))
	for _, want := range []string{`href="./console-b-patched-2.log"`, "<dt>shard 3/3</dt><dd>run <code>" + filepath.Base(shards[0]) + "</code>"} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("merged report.html lacks %s", want)
		}
	}
	if page, _ := os.ReadFile(filepath.Join(shards[0], "report.html")); !bytes.Contains(page, []byte("<dt>shard</dt><dd>3/3: ")) {
		t.Error("a shard's report.html does not say it is one")
	}
	if left, _ := filepath.Glob(filepath.Join(root, ".merged.merge-*")); len(left) != 0 {
		t.Errorf("temporary directories left: %v", left)
	}
}

// TestMergeRefuses: shards that do not belong together, a missing or
// repeated shard, an incomplete one: one line naming the directory and
// what is wrong, and no output directory.
func TestMergeRefuses(t *testing.T) {
	root := t.TempDir()
	var s [4]string
	for i := 1; i <= 3; i++ {
		s[i] = runPlan(t, root, "v1", shardPlan(Shard{i, 3}))
	}
	otherVersion := runPlan(t, root, "v2", shardPlan(Shard{2, 3}))
	otherN := runPlan(t, root, "v1", shardPlan(Shard{2, 4}))
	p := shardPlan(Shard{2, 3})
	p.Repeat = 2
	otherUnits := runPlan(t, root, "v1", p)
	whole := runPlan(t, root, "v1", shardPlan(Shard{}))

	edit := func(src string, f func(r *results.Run)) string {
		dst := filepath.Join(t.TempDir(), filepath.Base(src))
		os.CopyFS(dst, os.DirFS(src))
		r, err := results.Load(dst)
		if err != nil {
			t.Fatal(err)
		}
		f(r)
		if err := results.Save(dst, r); err != nil {
			t.Fatal(err)
		}
		return dst
	}
	otherKernel := edit(s[2], func(r *results.Run) {
		for i := range r.Kernels {
			r.Kernels[i].Key = "another-key"
		}
	})
	incomplete := edit(s[2], func(r *results.Run) { r.Results, r.Complete, r.Finished = r.Results[:1], false, nil })
	interrupted := edit(s[2], func(r *results.Run) { r.Complete, r.Finished = false, nil })
	tampered := edit(s[2], func(r *results.Run) { r.Shard.Units[0].Shard = 2 })

	cases := []struct {
		name string
		dirs []string
		want string
	}{
		{"missing", []string{s[1], s[3]}, "shard 2/3 is missing ("},
		{"twice", []string{s[1], s[2], s[2], s[3]}, s[2] + ": shard 2/3 again (also " + s[2] + ")"},
		{"version", []string{s[1], otherVersion, s[3]}, otherVersion + `: oomlab version "v2", but ` + s[1] + `'s is "v1"`},
		{"n", []string{s[1], otherN, s[3]}, otherN + ": shard 2/4, but " + s[1] + " is shard 1/3"},
		{"units", []string{s[1], otherUnits, s[3]}, otherUnits + ": its unit list"},
		{"kernel", []string{s[1], otherKernel, s[3]}, otherKernel + ": kernel "},
		{"incomplete", []string{s[1], incomplete, s[3]}, incomplete + ": shard 2/3 is incomplete (complete: false; "},
		{"interrupted", []string{s[1], interrupted, s[3]}, interrupted + ": shard 2/3 is incomplete (complete: false; every guest run has a result, but the run did not finish)"},
		{"not a shard", []string{whole}, whole + ": not a shard"},
		{"tampered", []string{s[1], tampered, s[3]}, tampered + "/run.json: shard.units_hash does not match"},
		{"none", nil, "no shard directories"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			_, err := Merge(c.dirs, out, false, nil)
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("got %v, want one line with %q", err, c.want)
			}
			if _, err := os.Stat(out); err == nil {
				t.Error("a refused merge left its output directory")
			}
		})
	}
	// --allow-partial: the missing and incomplete shards' units are listed,
	// the run is not complete and has no verdict; a repeated shard is
	// still refused (its guest runs would count twice).
	out := filepath.Join(t.TempDir(), "partial")
	rec, err := Merge([]string{s[1], incomplete}, out, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	want3 := len(shardPlan(Shard{3, 3}).guests())
	want2 := len(shardPlan(Shard{2, 3}).guests()) - 1
	if rec.Complete || rec.Verdict != results.None || rec.Finished != nil || len(rec.Missing) != want2+want3 {
		t.Errorf("partial: complete %v verdict %v missing %d %v, want %d", rec.Complete, rec.Verdict, len(rec.Missing), rec.Missing, want2+want3)
	}
	if page, _ := os.ReadFile(filepath.Join(out, "report.html")); !bytes.Contains(page, []byte("partial: merged without")) {
		t.Error("a partial merge's report.html does not say so")
	}
	if back, err := results.Load(out); err != nil || back.Complete || len(back.Missing) != len(rec.Missing) || len(back.Results) != len(rec.Results) {
		t.Errorf("partial run.json: %v %+v", err, back)
	}
	if rec, err := Merge([]string{s[1], interrupted, s[3]}, filepath.Join(t.TempDir(), "y"), true, nil); err != nil || rec.Complete || len(rec.Missing) != 0 {
		t.Errorf("interrupted shard with --allow-partial: %v, complete %v, missing %v: want not complete", err, rec != nil && rec.Complete, rec)
	}
	if _, err := Merge([]string{s[1], s[1]}, filepath.Join(t.TempDir(), "x"), true, nil); err == nil || !strings.Contains(err.Error(), "again") {
		t.Errorf("repeated shard with --allow-partial: %v", err)
	}
	// An output directory with something in it is not overwritten.
	if _, err := Merge([]string{s[1], s[2], s[3]}, s[1], false, nil); err == nil || !strings.Contains(err.Error(), "--out "+s[1]+": exists and is not empty") {
		t.Errorf("existing --out: %v", err)
	}
}
