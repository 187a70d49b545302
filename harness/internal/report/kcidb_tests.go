package report

import (
	"cmp"
	"fmt"
	"math"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"oomlab/harness/internal/metrics"
	"oomlab/harness/internal/results"
)

// kcidbTests are the tests of one guest run: the run itself
// (oomlab.<scenario>), each round when there were several
// (oomlab.<scenario>.round<N>), and each figure it has a value for
// (oomlab.<scenario>.<figure>; "killed:victim" is oomlab.<scenario>.killed.victim).
// A skipped guest run measured nothing, so it has no figure tests.
func kcidbTests(r *results.Run, res *results.Result, buildID string, o KCIDBOptions) []kcidbTest {
	// "/" is in none of run id, scenario, variant or figure names, so
	// the id is unambiguous; the schema only asks for "<origin>:".
	id := fmt.Sprintf("%s:%s/%s/%s/%d", o.Origin, r.ID, res.Scenario, res.Variant, res.Repeat)
	path := "oomlab." + kcidbPathSegment(res.Scenario)
	env := kcidbEnv(r, res)
	misc := map[string]any{
		"run_id":         r.ID,
		"oomlab_version": r.Version,
		"scenario":       res.Scenario,
		"variant":        res.Variant,
		"repeat":         res.Repeat,
	}
	if res.Console != "" {
		misc["console_log"] = res.Console
	}
	if res.Metrics != "" {
		misc["metrics_log"] = res.Metrics
	}
	if res.Sweep != "" {
		misc["sweep"] = res.Sweep
		misc["case"] = res.Case
	}
	run := kcidbTest{
		ID: id, Origin: o.Origin, BuildID: buildID, Path: path,
		Comment:     fmt.Sprintf("%s on %s, repeat %d", res.Scenario, res.Variant, res.Repeat),
		Status:      kcidbStatus(res.Verdict),
		StartTime:   kcidbTime(res.Started),
		Duration:    res.WallS,
		LogExcerpt:  kcidbExcerpt(res.Failures, res.Error, res.SkipReason),
		Environment: env,
		Misc:        misc,
	}
	if o.LogURLBase != "" && res.Console != "" {
		run.LogURL = o.LogURLBase + "/" + url.PathEscape(res.Console)
	}
	out := []kcidbTest{run}
	if len(res.Rounds) > 1 {
		for _, rd := range res.Rounds {
			t := kcidbTest{
				ID: fmt.Sprintf("%s/round%d", id, rd.Round), Origin: o.Origin, BuildID: buildID,
				Path:        fmt.Sprintf("%s.round%d", path, rd.Round),
				Comment:     fmt.Sprintf("%s on %s, repeat %d, round %d", res.Scenario, res.Variant, res.Repeat, rd.Round),
				Status:      kcidbStatus(rd.Verdict),
				Duration:    rd.WallS,
				LogExcerpt:  kcidbExcerpt(rd.Failures, rd.Error, ""),
				Environment: env,
				Misc:        map[string]any{"run_id": r.ID, "round": rd.Round, "start_s": rd.StartS},
			}
			if !res.Started.IsZero() {
				t.StartTime = kcidbTime(res.Started.Add(time.Duration(rd.StartS * float64(time.Second))))
			}
			out = append(out, t)
		}
	}
	if res.Verdict == results.Skip || res.Verdict == results.None {
		return out
	}
	failed := map[string]bool{}
	for _, line := range res.Failures {
		if name := metrics.FailedFigure(line); name != "" {
			failed[name] = true
		}
	}
	for _, f := range kcidbFigures(&res.Figures) {
		if math.IsNaN(f.value) || math.IsInf(f.value, 0) {
			continue // JSON has no such numbers
		}
		// A measurement is DONE; one whose expectation did not hold is
		// what failed the guest run.
		status := "DONE"
		if failed[f.name] {
			status = "FAIL"
		}
		n := kcidbNumberOf(f.value, f.unit)
		out = append(out, kcidbTest{
			ID: id + "/" + f.name, Origin: o.Origin, BuildID: buildID,
			Path:      path + "." + f.path,
			Comment:   f.doc,
			Status:    status,
			Number:    &n,
			StartTime: run.StartTime,
			Misc:      map[string]any{"run_id": r.ID, "figure": f.name, "unit": f.unit},
		})
	}
	return out
}

// kcidbExcerpt is what says why a guest run or round did not pass.
func kcidbExcerpt(failures []string, err, skip string) string {
	lines := append([]string(nil), failures...)
	for _, s := range []string{err, skip} {
		if s != "" {
			lines = append(lines, s)
		}
	}
	return kcidbText(strings.Join(lines, "\n"), 1<<14)
}

// kcidbEnv is the machine a guest run ran on: a QEMU guest on the host.
func kcidbEnv(r *results.Run, res *results.Result) *kcidbEnvironment {
	h := r.Host
	return &kcidbEnvironment{
		Comment: kcidbText(fmt.Sprintf("QEMU guest (%s) on %s", cmp.Or(res.Accel, "accel unknown"), cmp.Or(h.Name, "unknown host")), 1<<14),
		Misc: map[string]any{
			"accel":       res.Accel,
			"host":        h.Name,
			"host_cpus":   h.CPUs,
			"host_mem_mb": h.MemMB,
			"host_kernel": h.Kernel,
			"qemu":        h.QEMU,
		},
	}
}

// kcidbFigure is one figure of a guest run with its value.
type kcidbFigure struct {
	name, path, unit, doc string
	value                 float64
}

// kcidbFigures are the figures a guest run has a value for, read from the
// figure table (in its order) and the families (members sorted): names,
// units and docs are the table's.
func kcidbFigures(f *metrics.Figures) []kcidbFigure {
	var out []kcidbFigure
	for i := range metrics.Table {
		fig := &metrics.Table[i]
		if v, ok := fig.Value(f); ok {
			out = append(out, kcidbFigure{fig.Name, kcidbPathSegment(fig.Name), fig.Unit, fig.Doc, v})
		}
	}
	for i := range metrics.Families {
		fam := &metrics.Families[i]
		members := fam.Members(f)
		sort.Strings(members)
		for _, m := range members {
			if v, ok := fam.Value(f, m); ok {
				out = append(out, kcidbFigure{
					name:  fam.Name + ":" + m,
					path:  kcidbPathSegment(fam.Name) + "." + kcidbPathSegment(m),
					unit:  fam.Unit,
					doc:   strings.ReplaceAll(fam.Doc, "<name>", strconv.Quote(m)),
					value: v,
				})
			}
		}
	}
	return out
}

// kcidbNumberOf puts a figure's unit the schema's way: a unit symbol for
// times ("s" with metric prefixes for display; "ms" already has its
// prefix), none for counts, ratios and booleans, which are dimensionless.
func kcidbNumberOf(v float64, unit string) kcidbNumber {
	switch unit {
	case metrics.Seconds:
		return kcidbNumber{Value: v, Unit: "s", Prefix: "metric"}
	case metrics.Millis:
		return kcidbNumber{Value: v, Unit: "ms"}
	}
	return kcidbNumber{Value: v}
}
