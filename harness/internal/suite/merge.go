package suite

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"oomlab/harness/internal/atomicfile"
	"oomlab/harness/internal/console"
	"oomlab/harness/internal/report"
	"oomlab/harness/internal/results"
)

// shardDir is one shard's run directory as merge reads it.
type shardDir struct {
	dir string
	rec *results.Run
}

// Merge joins the run directories of the shards of one suite ('oomlab run
// --shard i/n' on n machines) into the new run directory out: one
// run.json with every guest run in the order an unsharded run has them
// and the kernels once each, events.jsonl, the console logs and metrics
// files (hard-linked when they can be, else copied), and every report
// rendered again from the whole, so that its statistics are those of one
// run on one machine.
//
// Shards that do not belong together (another oomlab version, another
// unit list, a variant whose kernel differs), a shard given twice, a
// result that is not one of its shard's units, are errors; so are a
// missing shard and an incomplete one unless allowPartial, which merges
// what there is into a run that is not complete and lists the units that
// did not run (results.Run.Missing). Every error is one line naming the
// directory and the problem. out is made in a temporary directory beside
// it and renamed into place: a failed merge leaves nothing behind.
// warnf hears what merge did not copy (a console log named in run.json
// but missing from the shard's directory).
func Merge(dirs []string, out string, allowPartial bool, warnf func(string, ...any)) (*results.Run, error) {
	if warnf == nil {
		warnf = func(string, ...any) {}
	}
	if len(dirs) == 0 {
		return nil, errors.New("no shard directories given")
	}
	shards, err := loadShards(dirs)
	if err != nil {
		return nil, err
	}
	first := shards[0]
	units := first.rec.Shard.Units
	unitIndex := make(map[results.UnitKey]int, len(units))
	for k, u := range units {
		unitIndex[u.Key()] = k
	}
	byIndex := map[int]*shardDir{}
	kernels := map[string]results.Kernel{}
	kernelFrom := map[string]string{}
	placed := make([]*results.Result, len(units))
	from := make([]*shardDir, len(units))
	for _, s := range shards {
		sh := s.rec.Shard
		if o := byIndex[sh.Index]; o != nil {
			return nil, fmt.Errorf("%s: shard %d/%d again (also %s): pass each shard once", s.dir, sh.Index, sh.Count, o.dir)
		}
		byIndex[sh.Index] = s
		for _, k := range s.rec.Kernels {
			if have, ok := kernels[k.Variant]; ok && have.Key != k.Key {
				return nil, fmt.Errorf("%s: kernel %s has cache key %.16s, but %s's has %.16s: every shard must boot the same kernels (same source, patches and --kconfig)",
					s.dir, k.Variant, k.Key, kernelFrom[k.Variant], have.Key)
			} else if !ok {
				kernels[k.Variant], kernelFrom[k.Variant] = k, s.dir
			}
		}
		for i, res := range s.rec.Results {
			if res == nil {
				return nil, fmt.Errorf("%s/run.json: results[%d]: null", s.dir, i)
			}
			k, ok := unitIndex[res.Key()]
			if !ok || units[k].Shard != sh.Index {
				return nil, fmt.Errorf("%s/run.json: results[%d] (%s/%s#%d) is not one of shard %d/%d's units (shard.units)",
					s.dir, i, res.Scenario, res.Variant, res.Repeat, sh.Index, sh.Count)
			}
			if placed[k] != nil {
				return nil, fmt.Errorf("%s/run.json: results[%d] (%s) is there twice", s.dir, i, units[k])
			}
			placed[k], from[k] = res, s
		}
	}

	// What did not run: whole shards first (the likelier mistake: a
	// directory left out), then the units of incomplete shards.
	var missing []string
	for i := 1; i <= first.rec.Shard.Count; i++ {
		if byIndex[i] != nil {
			continue
		}
		var us []string
		for _, u := range units {
			if u.Shard == i {
				us = append(us, u.String())
			}
		}
		if !allowPartial {
			return nil, fmt.Errorf("shard %d/%d is missing (%s): pass its run directory too, or --allow-partial to merge without it",
				i, first.rec.Shard.Count, summarize(us))
		}
		missing = append(missing, us...)
	}
	// A shard that says it is not complete is not, even with a result
	// for each unit: its last guest run was interrupted.
	incomplete := len(missing) > 0
	for _, s := range shards {
		var us []string
		for k, u := range units {
			if u.Shard == s.rec.Shard.Index && placed[k] == nil {
				us = append(us, u.String())
			}
		}
		if len(us) == 0 && s.rec.Complete {
			continue
		}
		if !allowPartial {
			what := "every guest run has a result, but the run did not finish"
			if len(us) > 0 {
				what = summarize(us) + " did not run"
			}
			return nil, fmt.Errorf("%s: shard %d/%d is incomplete (complete: %v; %s): run it again, or --allow-partial to merge what it has",
				s.dir, s.rec.Shard.Index, s.rec.Shard.Count, s.rec.Complete, what)
		}
		incomplete = true
		missing = append(missing, us...)
	}
	// Missing in plan order, whichever way it was found.
	slices.SortStableFunc(missing, func(a, b string) int { return unitOrder(units, a) - unitOrder(units, b) })

	rec := &results.Run{Schema: results.SchemaVersion, Version: first.rec.Version, ID: filepath.Base(filepath.Clean(out)),
		Host: byIndexOrder(byIndex)[0].rec.Host, Missing: missing}
	for _, v := range first.rec.Shard.Variants {
		if k, ok := kernels[v]; ok {
			rec.Kernels = append(rec.Kernels, k)
		}
	}
	for _, res := range placed { // in plan order, as an unsharded run has them
		if res != nil {
			rec.Results = append(rec.Results, res)
		}
	}
	var finished time.Time
	for _, s := range byIndexOrder(byIndex) {
		r := s.rec
		if rec.Started.IsZero() || r.Started.Before(rec.Started) {
			rec.Started = r.Started
		}
		if r.Finished != nil && r.Finished.After(finished) {
			finished = *r.Finished
		}
		rec.MergedFrom = append(rec.MergedFrom, results.ShardRun{Index: r.Shard.Index, Count: r.Shard.Count, ID: r.ID, Dir: s.dir,
			Host: r.Host, Started: r.Started, Finished: r.Finished, Complete: r.Complete})
	}
	if !incomplete {
		rec.Finished, rec.Complete = &finished, true
		rec.Verdict, rec.Regressions = Verdict(rec)
	}

	tmp, err := newOutDir(out)
	if err != nil {
		return nil, err
	}
	if err := fill(tmp, rec, placed, from, warnf); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	if err := os.Rename(tmp, out); err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("--out %s: %v", out, err)
	}
	if d, err := os.Open(filepath.Dir(filepath.Clean(out))); err == nil {
		d.Sync() // the rename survives a crash
		d.Close()
	}
	return rec, nil
}

// loadShards reads every directory's run.json and checks that they are
// shards of one suite, run by one oomlab.
func loadShards(dirs []string) ([]*shardDir, error) {
	var out []*shardDir
	for _, d := range dirs {
		rec, err := results.Load(d)
		if err != nil {
			return nil, err
		}
		sh := rec.Shard
		switch {
		case sh == nil:
			return nil, fmt.Errorf("%s: not a shard (its run.json has no shard): merge joins the runs of 'oomlab run --shard i/n'", d)
		case sh.Count < 1 || sh.Index < 1 || sh.Index > sh.Count:
			return nil, fmt.Errorf("%s/run.json: shard %d/%d: want 1 <= index <= count", d, sh.Index, sh.Count)
		case results.UnitsHash(sh.Units, sh.Variants) != sh.UnitsHash:
			return nil, fmt.Errorf("%s/run.json: shard.units_hash does not match shard.units and shard.variants: the file was changed after the run", d)
		}
		s := &shardDir{dir: d, rec: rec}
		if len(out) > 0 {
			f := out[0]
			switch {
			case rec.Version != f.rec.Version:
				return nil, fmt.Errorf("%s: oomlab version %q, but %s's is %q: run every shard with the same oomlab build", d, rec.Version, f.dir, f.rec.Version)
			case sh.Count != f.rec.Shard.Count:
				return nil, fmt.Errorf("%s: shard %d/%d, but %s is shard %d/%d: run every shard with the same n", d, sh.Index, sh.Count, f.dir, f.rec.Shard.Index, f.rec.Shard.Count)
			case sh.UnitsHash != f.rec.Shard.UnitsHash:
				return nil, fmt.Errorf("%s: its unit list (shard.units_hash %.12s) differs from %s's (%.12s): run every shard with the same scenarios, --variants and --repeat",
					d, sh.UnitsHash, f.dir, f.rec.Shard.UnitsHash)
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// byIndexOrder lists the shards found by their index.
func byIndexOrder(m map[int]*shardDir) []*shardDir {
	var out []*shardDir
	for _, s := range m {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *shardDir) int { return a.rec.Shard.Index - b.rec.Shard.Index })
	return out
}

func unitOrder(units []results.Unit, name string) int {
	return slices.IndexFunc(units, func(u results.Unit) bool { return u.String() == name })
}

// summarize names a few units and counts the rest, to keep an error on one
// line.
func summarize(us []string) string {
	const show = 3
	s := fmt.Sprintf("%d guest run", len(us))
	if len(us) != 1 {
		s += "s"
	}
	if len(us) <= show {
		return s + ": " + strings.Join(us, ", ")
	}
	return fmt.Sprintf("%s: %s and %d more", s, strings.Join(us[:show], ", "), len(us)-show)
}

// newOutDir makes the temporary directory out is built in: beside out, so
// that the final rename stays on one file system. out itself must not
// exist yet, or be an empty directory.
func newOutDir(out string) (string, error) {
	out = filepath.Clean(out)
	if ents, err := os.ReadDir(out); err == nil && len(ents) > 0 {
		return "", fmt.Errorf("--out %s: exists and is not empty: name a new directory", out)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("--out %s: %v", out, err)
	}
	parent := filepath.Dir(out)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("--out %s: %v", out, err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(out)+".merge-*")
	if err != nil {
		return "", fmt.Errorf("--out %s: %v", out, err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("--out %s: %v", out, err)
	}
	return tmp, nil
}

// fill writes the merged run into dir: the shards' console logs and
// metrics files, each guest run's events (read back from its shard's
// events.jsonl), then run.json, events.jsonl and the reports.
func fill(dir string, rec *results.Run, placed []*results.Result, from []*shardDir, warnf func(string, ...any)) error {
	events := map[*shardDir]map[results.UnitKey][]shardEvent{}
	taken := map[string]bool{}
	for k, res := range placed {
		if res == nil {
			continue
		}
		s := from[k]
		if events[s] == nil {
			ev, err := readEvents(s.dir)
			if err != nil {
				return err
			}
			events[s] = ev
		}
		res.Events, res.EventRounds = nil, nil
		for _, e := range events[s][res.Key()] {
			res.Events = append(res.Events, e.Event)
			res.EventRounds = append(res.EventRounds, e.Round)
		}
		for _, name := range []*string{&res.Console, &res.Metrics} {
			if *name == "" {
				continue
			}
			if filepath.Base(*name) != *name {
				return fmt.Errorf("%s/run.json: %s/%s#%d: file %q is not a name in the run directory", s.dir, res.Scenario, res.Variant, res.Repeat, *name)
			}
			dst := *name
			if taken[dst] {
				// Two guest runs with one file name: keep both.
				dst = fmt.Sprintf("shard%d-%s", s.rec.Shard.Index, dst)
			}
			ok, err := linkOrCopy(filepath.Join(s.dir, *name), filepath.Join(dir, dst))
			if err != nil {
				return err
			}
			if !ok {
				warnf("merge: %s/%s: missing; the merged run names it but lacks it", s.dir, *name)
				continue
			}
			taken[dst], *name = true, dst
		}
	}
	return report.Save(dir, rec)
}

// shardEvent is one line of a shard's events.jsonl (results.Save).
type shardEvent struct {
	Scenario string `json:"scenario"`
	Variant  string `json:"variant"`
	Repeat   int    `json:"repeat"`
	Round    int    `json:"round"`
	console.Event
}

// readEvents reads a run directory's events.jsonl by guest run.
func readEvents(dir string) (map[results.UnitKey][]shardEvent, error) {
	name := filepath.Join(dir, "events.jsonl")
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[results.UnitKey][]shardEvent{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	for n := 1; sc.Scan(); n++ {
		var e shardEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("%s:%d: %v", name, n, err)
		}
		k := results.UnitKey{Scenario: e.Scenario, Variant: e.Variant, Repeat: e.Repeat}
		out[k] = append(out[k], e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	return out, nil
}

// linkOrCopy puts src at dst: a hard link when both are on one file
// system (the shard's files are not written again once its guest run has
// ended), else a copy written atomically. It says false when src does not
// exist.
func linkOrCopy(src, dst string) (bool, error) {
	if err := os.Link(src, dst); err == nil {
		return true, nil
	}
	in, err := os.Open(src)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer in.Close()
	b, err := io.ReadAll(in)
	if err != nil {
		return false, fmt.Errorf("%s: %v", src, err)
	}
	return true, atomicfile.Write(dst, b, 0o644)
}
