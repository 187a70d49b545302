package report

// The HTML report: one self-contained file (inline CSS, inline SVG, no
// script, no external URL) written as report.html next to run.json, and
// by 'oomlab report RUN --format html'. Its links (console logs, metrics,
// KTAP, JUnit) are relative to the run directory.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"oomlab/harness/internal/compare"
	"oomlab/harness/internal/console"
	"oomlab/harness/internal/metrics"
	"oomlab/harness/internal/protocol"
	"oomlab/harness/internal/results"
)

// runEvent is one line of events.jsonl.
type runEvent struct {
	Scenario string `json:"scenario"`
	Variant  string `json:"variant"`
	Repeat   int    `json:"repeat"`
	Round    int    `json:"round"`
	console.Event
}

// loadEvents reads events.jsonl of a run directory, by guest run; a
// missing or damaged file gives what could be read.
func loadEvents(dir string) map[[3]string][]runEvent {
	out := map[[3]string][]runEvent{}
	f, err := os.Open(filepath.Join(dir, "events.jsonl"))
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<22)
	for sc.Scan() {
		var e runEvent
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue
		}
		k := runKey(e.Scenario, e.Variant, e.Repeat)
		out[k] = append(out[k], e)
	}
	return out
}

func runKey(s, v string, rep int) [3]string { return [3]string{s, v, fmt.Sprint(rep)} }

// loadSamples reads a metrics-<scenario>-<variant>-<n>.jsonl file.
func loadSamples(path string) ([]protocol.Sample, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []protocol.Sample
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<22)
	for sc.Scan() {
		var s protocol.Sample
		if json.Unmarshal(sc.Bytes(), &s) == nil {
			out = append(out, s)
		}
	}
	return out, sc.Err()
}

// alignSamples puts the samples on the console's time axis.
//
// The agent stamps each sample with CLOCK_MONOTONIC (protocol.Sample.Mono)
// and the kernel stamps printk lines with local_clock(); in a guest both
// count from boot and agree to within a few ms (checked on real runs: the
// vmstat oom_kill counter steps within one sample interval of the
// "Killed process" line), so Mono is used as the console time unchanged.
// Only a file without Mono stamps (all 0: an old agent) is aligned by its
// first sample to the first stress_start event, at the sampling interval
// implied by the sequence numbers (250 ms), which is the best the data
// allows there.
func alignSamples(ss []protocol.Sample, events []runEvent) []timeSample {
	haveMono := false
	for _, s := range ss {
		haveMono = haveMono || s.Mono > 0
	}
	start := 0.0
	for _, e := range events {
		if e.Kind == console.StressStart && e.Time != nil {
			start = *e.Time
			break
		}
	}
	out := make([]timeSample, 0, len(ss))
	for i, s := range ss {
		t := s.Mono
		if !haveMono {
			t = start + 0.25*float64(s.Seq)
		}
		ts := timeSample{T: t, AvailMB: float64(s.MemAvailableKB) / 1024, MemTotal: float64(s.MemTotalKB) / 1024}
		// PSI full as the share of the interval since the previous
		// sample (from the cumulative total): avg10 lags by seconds,
		// longer than many of these runs.
		if i > 0 && s.PSI && ss[i-1].PSI && s.MemFullTotalUS >= ss[i-1].MemFullTotalUS {
			if dt := (t - out[i-1].T) * 1e6; dt > 0 {
				ts.FullPct, ts.HasFull = float64(s.MemFullTotalUS-ss[i-1].MemFullTotalUS)/dt*100, true
			}
		}
		out = append(out, ts)
	}
	return out
}

// roundSpans are the rounds of a guest run on the console time axis: a
// round starts at its marker (the stress_start event whose round is its
// number) and lasts its wall_s (marker to end of its settle). A run
// recorded without rounds shades its one stress phase (the first marker,
// stress_s long).
func roundSpans(res *results.Result, events []runEvent) []span {
	var out []span
	marker := func(round int) (float64, bool) {
		for _, e := range events {
			if e.Kind == console.StressStart && e.Time != nil && (e.Round == round || round == 0) {
				return *e.Time, true
			}
		}
		return 0, false
	}
	for _, r := range res.Rounds {
		t, ok := marker(r.Round)
		if !ok && len(res.Rounds) == 1 {
			t, ok = marker(0)
		}
		if !ok {
			continue
		}
		label := fmt.Sprintf("round %d", r.Round)
		if r.Verdict != results.None {
			label += ": " + strings.ToUpper(r.Verdict.String())
		}
		out = append(out, span{From: t, To: t + math.Max(r.WallS, 0.01), Label: label})
	}
	if len(res.Rounds) == 0 {
		if t, ok := marker(0); ok && res.Figures.StressSeconds > 0 {
			out = append(out, span{From: t, To: t + res.Figures.StressSeconds, Label: "stress phase"})
		}
	}
	return out
}

// latencyFigures are the figure table's rows with samples (the
// distributions the statistics pool).
func latencyFigures() []metrics.Figure {
	var out []metrics.Figure
	for _, f := range metrics.Table {
		if f.Samples != nil {
			out = append(out, f)
		}
	}
	return out
}

// href is a relative link to a file of the run directory. "./" keeps a
// name with a colon ("console-x-patched:2+test-1.log") from reading as
// a URL scheme.
func href(name string) string {
	return "./" + url.PathEscape(filepath.Base(name))
}

// anchor is an id for a scenario or guest run.
func anchor(parts ...string) string {
	s := strings.Join(parts, "-")
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

func verdictCell(v results.Verdict) string {
	n := v.String()
	if n == "" {
		n = "none"
	}
	return fmt.Sprintf(`<td class="v v-%s">%s</td>`, n, strings.ToUpper(n))
}

func cmpVerdictCell(v metrics.Verdict) string {
	cls := map[metrics.Verdict]string{metrics.Better: "better", metrics.Worse: "worse", metrics.NoDifference: "same"}[v]
	if cls == "" {
		cls = "few"
	}
	sym := map[string]string{"better": "&#9660; ", "worse": "&#9650; "}[cls] // ▼ better, ▲ worse
	return fmt.Sprintf(`<td class="v c-%s">%s%s</td>`, cls, sym, esc(strings.ToUpper(string(v))))
}

const css = `
:root{--fg:#1b1f24;--muted:#57606a;--line:#d0d7de;--bg2:#f6f8fa}
*{box-sizing:border-box}
html{background:#fff}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--fg);margin:0;background:#fff}
main{max-width:1240px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:26px;margin:8px 0 4px}h2{font-size:21px;margin:32px 0 8px;border-bottom:2px solid var(--line);padding-bottom:4px}
h3{font-size:17px;margin:20px 0 6px}
.muted,.note{color:var(--muted)}.note{font-size:13px}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:8px 0}
dl.facts dt{font-weight:600}dl.facts dd{margin:0}
.wrap{overflow-x:auto;margin:6px 0 10px}
table{border-collapse:collapse;font-size:13.5px;min-width:50%}
th,td{border:1px solid var(--line);padding:3px 7px;text-align:left;vertical-align:top}
th{background:var(--bg2);font-weight:600;white-space:nowrap}
table.cmp td,table.runs td{white-space:nowrap}
table.runs thead th{white-space:normal;vertical-align:bottom}
tr.group th{background:#e9eef4;text-align:left;font-size:14px}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tbody tr:nth-child(even){background:#fbfcfd}
code,.mono{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12.5px}
.v{font-weight:700;white-space:nowrap}
.v-pass,.c-better{color:#0a6b2e;background:#e6f4ea}
.v-fail,.c-worse{color:#a40e26;background:#fde7ea}
.v-error{color:#7a2e00;background:#fff0d9}
.v-skip,.v-none,.c-same,.c-few{color:var(--muted)}
.c-few{font-style:italic;font-weight:400}
.badge{display:inline-block;padding:2px 10px;border-radius:4px;font-weight:700;margin-left:8px;font-size:18px;vertical-align:middle}
ul.regr li{color:#a40e26}
nav ul{columns:3;margin:4px 0}
svg.plot{display:block;max-width:100%;height:auto;margin:6px 0 14px;border:1px solid var(--line);background:#fff}
svg text{font-family:system-ui,"DejaVu Sans",sans-serif;fill:#1b1f24}
svg .ptitle{font-size:15px;font-weight:600}svg .tick{font-size:12px;fill:#444}svg .vlabel{font-size:14px;font-weight:600}
svg .mletter{font-size:12px;font-weight:700}
svg .grid{stroke:#e4e7eb;stroke-width:1}svg .axis{stroke:#444;stroke-width:1}
svg .frame{fill:none;stroke:#888}svg .band{fill:#f4f6f8}
svg .median{stroke:#000;stroke-width:3.5}svg .medthin{stroke:#000;stroke-width:1.2}
svg .rlabel{paint-order:stroke;stroke:#fff;stroke-width:3px;font-weight:600}
svg .round rect{fill:#eef1f5}svg .round.odd rect{fill:#e0e5ec}
svg .gap rect{fill:#fff3d6;fill-opacity:0.8}svg .memdot{fill:#0072B2}
svg .mem{fill:none;stroke:#0072B2;stroke-width:2.5}svg .psi{fill:none;stroke:#D55E00;stroke-width:2;stroke-dasharray:6 3}
.fails{margin:2px 0 8px 0;font-size:13px}.fails li{color:#a40e26}
`

// HTML writes the report of run r, read from (and linking into) its run
// directory dir: events.jsonl and the metrics files are read from there.
// Files that are missing are said so in the report, not an error; the
// error is the writer's.
func HTML(w io.Writer, r *results.Run, dir string) error {
	var b strings.Builder
	rep := compare.Within(r)
	events := loadEvents(dir)
	verdict := r.Verdict
	if verdict == results.None {
		verdict = r.ComputeVerdict()
	}
	vname := verdict.String()
	title := "oomlab run " + r.ID
	fmt.Fprintf(&b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>%s: %s</title>\n<style>%s</style>\n</head>\n<body>\n<main>\n",
		esc(title), strings.ToUpper(vname), css)

	// Header.
	partial := ""
	if len(r.Missing) > 0 {
		partial = fmt.Sprintf(` <span class="muted">(partial: merged without %d guest runs, listed in run.json)</span>`, len(r.Missing))
	} else if !r.Complete {
		partial = ` <span class="muted">(partial: the run has not finished or was killed)</span>`
	}
	fmt.Fprintf(&b, "<header>\n<h1>%s <span class=\"badge v v-%s\">%s</span>%s</h1>\n", esc(title), esc(vname), esc(strings.ToUpper(vname)), partial)
	b.WriteString("<dl class=\"facts\">\n")
	fact := func(k, v string) { fmt.Fprintf(&b, "<dt>%s</dt><dd>%s</dd>\n", esc(k), v) }
	fact("oomlab version", "<code>"+esc(r.Version)+"</code>")
	fin := "-"
	if r.Finished != nil {
		fin = r.Finished.UTC().Format("2006-01-02 15:04:05 UTC")
	}
	fact("started / finished", esc(r.Started.UTC().Format("2006-01-02 15:04:05 UTC"))+" / "+esc(fin))
	fact("host", fmt.Sprintf("%s: %d CPUs, %d MB, Linux %s; %s", esc(r.Host.Name), r.Host.CPUs, r.Host.MemMB, esc(r.Host.Kernel), esc(r.Host.QEMU)))
	if sh := r.Shard; sh != nil {
		mine := 0
		for _, u := range sh.Units {
			if u.Shard == sh.Index {
				mine++
			}
		}
		fact("shard", fmt.Sprintf("%d/%d: %d of the suite's %d guest runs (statistics of this part only; <code>oomlab merge</code> joins the shards)", sh.Index, sh.Count, mine, len(sh.Units)))
	}
	for _, m := range r.MergedFrom {
		fact(fmt.Sprintf("shard %d/%d", m.Index, m.Count), fmt.Sprintf("run <code>%s</code> on %s (%d CPUs), from <code>%s</code>", esc(m.ID), esc(m.Host.Name), m.Host.CPUs, esc(m.Dir)))
	}
	fact("files", fmt.Sprintf(`<a href="%s">run.json</a> · <a href="%s">events.jsonl</a> · <a href="%s">report.ktap</a> · <a href="%s">junit.xml</a>`,
		href("run.json"), href("events.jsonl"), href("report.ktap"), href("junit.xml")))
	b.WriteString("</dl>\n")
	oneSource := len(r.Kernels) > 0
	for _, k := range r.Kernels {
		oneSource = oneSource && k.SourceID == r.Kernels[0].SourceID
	}
	b.WriteString("<h3>Kernels</h3>\n")
	if oneSource {
		fmt.Fprintf(&b, "<p class=\"note\">All built from %s.</p>\n", esc(r.Kernels[0].SourceID))
	}
	b.WriteString("<div class=\"wrap\"><table id=\"kernels\">\n<thead><tr><th scope=\"col\">variant</th><th scope=\"col\">release</th><th scope=\"col\">cache key</th><th scope=\"col\">cache hit</th><th scope=\"col\">source</th></tr></thead>\n<tbody>\n")
	for _, k := range r.Kernels {
		src := k.SourceID
		if oneSource {
			src = "(above)"
		}
		key := k.Key
		if len(key) > 16 {
			key = key[:16] + "…"
		}
		fmt.Fprintf(&b, "<tr><th scope=\"row\">%s</th><td><code>%s</code></td><td><code title=\"%s\">%s</code></td><td>%v</td><td class=\"note\">%s</td></tr>\n",
			esc(k.Variant), esc(k.Release), esc(k.Key), esc(key), k.Cached, esc(src))
	}
	b.WriteString("</tbody></table></div>\n")
	regs := r.Regressions
	if len(regs) == 0 {
		for _, row := range rep.Regressions() {
			regs = append(regs, row.Reason())
		}
	}
	if len(regs) > 0 {
		b.WriteString("<h3>Regressions</h3>\n<ul class=\"regr\" id=\"regressions\">\n")
		for _, s := range regs {
			fmt.Fprintf(&b, "<li>REGRESSION %s</li>\n", esc(s))
		}
		b.WriteString("</ul>\n")
	} else {
		b.WriteString("<p id=\"regressions\">No regression: no variant is significantly worse than its reference on any figure.</p>\n")
	}
	b.WriteString("</header>\n")

	// Scenarios in run order, with their variants.
	var scenarios []string
	byScen := map[string][]*results.Result{}
	for _, res := range r.Results {
		if res == nil {
			continue
		}
		if byScen[res.Scenario] == nil {
			scenarios = append(scenarios, res.Scenario)
		}
		byScen[res.Scenario] = append(byScen[res.Scenario], res)
	}
	b.WriteString("<nav><h3>Scenarios</h3><ul>\n")
	for _, sc := range scenarios {
		v := results.Pass
		for _, res := range byScen[sc] {
			v = v.Worst(res.Verdict)
		}
		fmt.Fprintf(&b, "<li><a href=\"#%s\">%s</a> <span class=\"v v-%s\">%s</span></li>\n", anchor("scenario", sc), esc(sc), v, strings.ToUpper(v.String()))
	}
	b.WriteString("</ul></nav>\n")

	// The comparison of every variant with its reference.
	b.WriteString("<section id=\"comparisons\">\n<h2>Variants compared with their reference</h2>\n")
	if len(rep.Rows) == 0 {
		b.WriteString("<p class=\"muted\">No scenario ran more than one variant.</p>\n")
	} else {
		b.WriteString("<div class=\"wrap\"><table id=\"comparison-table\" class=\"cmp\">\n<thead><tr><th scope=\"col\">figure</th><th scope=\"col\">reference &#8594; variant</th><th scope=\"col\">reference side</th><th scope=\"col\">variant side</th><th scope=\"col\">ratio of medians [95% CI]</th><th scope=\"col\">p</th><th scope=\"col\">test</th><th scope=\"col\">verdict</th></tr></thead>\n<tbody>\n")
		last := ""
		for _, row := range rep.Rows {
			if row.Scenario != last {
				fmt.Fprintf(&b, "<tr class=\"group\"><th colspan=\"8\" scope=\"rowgroup\"><a href=\"#%s\">%s</a></th></tr>\n", anchor("scenario", row.Scenario), esc(row.Scenario))
				last = row.Scenario
			}
			p := "-"
			if row.P != nil {
				p = fmt.Sprintf("%.3g", *row.P)
			}
			fmt.Fprintf(&b, "<tr><td><code>%s</code></td><td>%s &#8594; %s</td><td class=\"n\">%s</td><td class=\"n\">%s</td><td class=\"n\">%s</td><td class=\"n\">%s</td><td title=\"%s\">%s</td>%s</tr>\n",
				esc(row.Figure), esc(row.Reference), esc(row.Variant), esc(side(row.RefSide)), esc(side(row.VarSide)),
				esc(row.Ratio.String()), p, esc(row.Test), esc(shortTest(row.Test)), cmpVerdictCell(row.Verdict))
		}
		b.WriteString("</tbody></table></div>\n")
		fmt.Fprintf(&b, "<p class=\"note\">Two-sided tests at alpha = %.2g. Distributions: median (N), Mann-Whitney U (MW: exact, permutation, or normal approximation with tie correction), ratio of medians with a %d-resample bootstrap CI. Rates: bad runs / runs, Fisher's exact test. Fewer than %d samples or runs on a side: %s. Verdicts are written out; colour (red worse, green better) only repeats them.</p>\n",
			rep.Alpha, rep.Resamples, metrics.MinSamples, metrics.TooFew)
	}
	b.WriteString("</section>\n")

	// Distributions per group.
	b.WriteString("<section id=\"distributions\">\n<h2>Latency distributions</h2>\n<div class=\"wrap\"><table id=\"distribution-table\" class=\"cmp\">\n<thead><tr><th scope=\"col\">variant</th><th scope=\"col\">runs</th><th scope=\"col\">distribution</th><th scope=\"col\">N</th><th scope=\"col\">p50 [95% CI]</th><th scope=\"col\">p95 [95% CI]</th><th scope=\"col\">p99 [95% CI]</th></tr></thead>\n<tbody>\n")
	last := ""
	for _, g := range rep.Groups {
		for _, s := range g.Stats {
			if s.N == 0 {
				continue
			}
			if g.Scenario != last {
				fmt.Fprintf(&b, "<tr class=\"group\"><th colspan=\"7\" scope=\"rowgroup\"><a href=\"#%s\">%s</a></th></tr>\n", anchor("scenario", g.Scenario), esc(g.Scenario))
				last = g.Scenario
			}
			p50 := estimate(s.P50, s.N)
			if s.P50 != nil && s.P50.CI == nil {
				p50 += " (no CI)"
			}
			fmt.Fprintf(&b, "<tr><td>%s</td><td class=\"n\">%d</td><td><code>%s</code>, %s</td><td class=\"n\">%d</td><td class=\"n\">%s</td><td class=\"n\">%s</td><td class=\"n\">%s</td></tr>\n",
				esc(g.Variant), g.Runs, esc(s.Name), esc(s.Unit), s.N, esc(p50), esc(estimate(s.P95, s.N)), esc(estimate(s.P99, s.N)))
		}
	}
	b.WriteString("</tbody></table></div>\n")
	fmt.Fprintf(&b, "<p class=\"note\">Pooled over the repeats of each scenario x variant (guest runs that ended in an error excluded); groups without samples are left out. Nearest-rank percentiles with %d-resample percentile-bootstrap 95%% CIs: a CI needs N &#8805; %d, a p95 N &#8805; %d, a p99 N &#8805; %d (\"%s\" otherwise).</p>\n</section>\n",
		metrics.Resamples, metrics.MinSamples, metrics.MinSamples, metrics.MinSamplesP99, metrics.TooFew)

	// Per scenario.
	groups := map[[2]string]compare.Group{}
	for _, g := range rep.Groups {
		groups[[2]string{g.Scenario, g.Variant}] = g
	}
	for _, sc := range scenarios {
		runs := byScen[sc]
		fmt.Fprintf(&b, "<section class=\"scenario\" id=\"%s\">\n<h2>Scenario <code>%s</code></h2>\n", anchor("scenario", sc), esc(sc))
		fmt.Fprintf(&b, "<p class=\"note\">Every guest run is a test case in <a href=\"%s\">report.ktap</a> and <a href=\"%s\">junit.xml</a>.</p>\n", href("report.ktap"), href("junit.xml"))
		anyRounds := false
		for _, res := range runs {
			anyRounds = anyRounds || len(res.Rounds) > 1
		}
		fmt.Fprintf(&b, "<div class=\"wrap\"><table class=\"runs\" id=\"%s\">\n<thead><tr><th scope=\"col\">variant</th><th scope=\"col\">rep</th><th scope=\"col\">verdict</th><th scope=\"col\">logs</th>", anchor("runs", sc))
		if anyRounds {
			b.WriteString("<th scope=\"col\">rounds</th>")
		}
		b.WriteString("<th scope=\"col\">boot s</th><th scope=\"col\">OOM ev</th><th scope=\"col\">kills</th><th scope=\"col\">kills/ev</th><th scope=\"col\">reaped</th><th scope=\"col\">handed</th><th scope=\"col\">reap fail</th><th scope=\"col\">OOM&#8594;freed p50 ms</th><th scope=\"col\">kill&#8594;exit max ms</th><th scope=\"col\">lockups</th><th scope=\"col\">alive</th></tr></thead>\n<tbody>\n")
		for _, res := range runs {
			f := res.Figures
			p50, kx, kpe := "-", "-", "-"
			if len(f.OOMToFreedMs) > 0 {
				p50 = metrics.Num(metrics.Quantile(f.OOMToFreedMs, 0.5))
			}
			if len(f.KillToExitMs) > 0 {
				kx = metrics.Num(metrics.Quantile(f.KillToExitMs, 1))
			}
			if f.OOMEvents > 0 {
				kpe = fmt.Sprintf("%.2f", f.KillsPerOOMEvent)
			}
			links := fmt.Sprintf(`<a class="console" href="%s">console</a>`, href(res.Console))
			if res.Console == "" { // skipped before a guest booted
				links = "-"
			}
			if res.Metrics != "" {
				links += fmt.Sprintf(` · <a href="%s">metrics</a>`, href(res.Metrics))
			}
			links += fmt.Sprintf(` · <a href="#%s">timeline</a>`, anchor("timeline", res.Scenario, res.Variant, fmt.Sprint(res.Repeat)))
			fmt.Fprintf(&b, "<tr><th scope=\"row\">%s</th><td class=\"n\">%d</td>%s<td>%s</td>", esc(res.Variant), res.Repeat, verdictCell(res.Verdict), links)
			if anyRounds {
				fmt.Fprintf(&b, "<td>%s</td>", esc(roundsCell(res.Rounds)))
			}
			fmt.Fprintf(&b, "<td class=\"n\"%s>%.1f</td><td class=\"n\">%d</td><td class=\"n\">%d</td><td class=\"n\">%s</td><td class=\"n\">%d</td><td class=\"n\">%d</td><td class=\"n\">%d</td><td class=\"n\">%s</td><td class=\"n\">%s</td><td class=\"n\">%d</td><td>%v</td></tr>\n",
				bootTitle(res.Boot), f.BootSeconds, f.OOMEvents, f.OOMKills, kpe, f.Reaped, f.HandedOver, f.ReapFailed, p50, kx, f.Lockups, f.GuestAlive)
		}
		b.WriteString("</tbody></table></div>\n")
		var fails []string
		for _, res := range runs {
			for _, m := range res.Failures {
				fails = append(fails, fmt.Sprintf("FAIL %s#%d: %s", res.Variant, res.Repeat, m))
			}
			// A round's failures are among the result's already, as
			// "round N: ...".
			if res.Error != "" {
				fails = append(fails, fmt.Sprintf("ERROR %s#%d: %s", res.Variant, res.Repeat, res.Error))
			}
			if res.SkipReason != "" {
				fails = append(fails, fmt.Sprintf("SKIP %s#%d: %s", res.Variant, res.Repeat, res.SkipReason))
			}
		}
		if len(fails) > 0 {
			b.WriteString("<ul class=\"fails\">\n")
			for _, m := range fails {
				fmt.Fprintf(&b, "<li>%s</li>\n", esc(m))
			}
			b.WriteString("</ul>\n")
		}

		// One plot per latency figure with samples in any variant.
		var variants []string
		for _, res := range runs {
			if len(variants) == 0 || variants[len(variants)-1] != res.Variant {
				dup := false
				for _, v := range variants {
					dup = dup || v == res.Variant
				}
				if !dup {
					variants = append(variants, res.Variant)
				}
			}
		}
		for _, fig := range latencyFigures() {
			var sg []stripGroup
			total := 0
			for _, v := range variants {
				g := groups[[2]string{sc, v}]
				d := g.Samples.Dists[fig.DistName()]
				total += len(d.Values)
				sg = append(sg, stripGroup{Variant: v, Values: d.Values, Stats: distStats(g, fig.DistName())})
			}
			if total == 0 && fig.Field == "extra" {
				continue // a scenario-specific figure this scenario does not have
			}
			if total == 0 {
				fmt.Fprintf(&b, "<p class=\"note\">No <code>%s</code> samples in any variant: no plot.</p>\n", esc(fig.Field))
				continue
			}
			fmt.Fprintf(&b, "<h3>Distribution of <code>%s</code> per variant <span class=\"note\">(every sample; figure <code>%s</code> is one statistic of it)</span></h3>\n", esc(fig.DistName()), esc(fig.Name))
			stripPlot(&b, anchor("dist", sc, fig.DistName()), fig.DistName(), fig.Unit, sg)
		}

		// One timeline per guest run.
		for _, res := range runs {
			ev := events[runKey(res.Scenario, res.Variant, res.Repeat)]
			id := anchor("timeline", res.Scenario, res.Variant, fmt.Sprint(res.Repeat))
			name := fmt.Sprintf("%s / %s #%d", res.Scenario, res.Variant, res.Repeat)
			fmt.Fprintf(&b, "<h3>Timeline: %s <span class=\"v v-%s\">%s</span></h3>\n", esc(name), res.Verdict, strings.ToUpper(res.Verdict.String()))
			var samples []timeSample
			if res.Metrics == "" {
				b.WriteString("<p class=\"note\">No metrics file for this guest run: events only.</p>\n")
			} else if ss, err := loadSamples(filepath.Join(dir, filepath.Base(res.Metrics))); err != nil {
				fmt.Fprintf(&b, "<p class=\"note\">%s: %s</p>\n", esc(filepath.Base(res.Metrics)), esc(errText(err)))
			} else {
				samples = alignSamples(ss, ev)
			}
			var tev []timeEvent
			for _, e := range ev {
				if e.Time != nil {
					tev = append(tev, timeEvent{T: *e.Time, Kind: e.Kind, Text: e.Text})
				}
			}
			timeline(&b, id, name, samples, tev, roundSpans(res, ev))
		}
		b.WriteString("</section>\n")
	}
	b.WriteString("<footer class=\"note\"><p>Generated by oomlab from run.json, events.jsonl and the metrics files of this directory. Times on the timelines are the guest's console (printk) time; the metrics samples are stamped with the guest's CLOCK_MONOTONIC, the same clock to within milliseconds.</p></footer>\n</main>\n</body>\n</html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// roundsCell says how many rounds ran and which did not pass:
// "3, all PASS", "3: 2 FAIL".
func roundsCell(rs []results.RoundResult) string {
	var bad []string
	for _, r := range rs {
		if r.Verdict != results.Pass {
			bad = append(bad, fmt.Sprintf("%d %s", r.Round, strings.ToUpper(r.Verdict.String())))
		}
	}
	if len(bad) == 0 {
		return fmt.Sprintf("%d, all PASS", len(rs))
	}
	return fmt.Sprintf("%d: %s", len(rs), strings.Join(bad, ", "))
}

// shortTest abbreviates a test's name for the table (the full name is
// the cell's title and in the note under it).
func shortTest(t string) string {
	switch t {
	case metrics.TestMWExact:
		return "MW exact"
	case metrics.TestMWPermutation:
		return "MW permutation"
	case metrics.TestMWNormal:
		return "MW normal"
	case metrics.TestFisher:
		return "Fisher"
	}
	return t
}

// errText is an error without the directory it was read from, so the
// report reads the same wherever the run directory is.
func errText(err error) string {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Op + ": " + pe.Err.Error()
	}
	return err.Error()
}

// renderHTML is HTML into a buffer.
func renderHTML(r *results.Run, dir string) ([]byte, error) {
	var buf bytes.Buffer
	err := HTML(&buf, r, dir)
	return buf.Bytes(), err
}

// bootTitle is the boot cell's hover text: where the boot's time went.
func bootTitle(p *results.BootPhases) string {
	if p == nil {
		return ""
	}
	return fmt.Sprintf(` title="QEMU and firmware %.2f s, kernel %.2f s, agent start %.2f s, SSH %.2f s; then %.2f s for the clocksource to settle"`,
		p.FirmwareS, p.KernelS, p.InitS, p.ConnectS, p.ClockS)
}
