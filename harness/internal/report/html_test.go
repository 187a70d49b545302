package report

import (
	"bytes"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"oomlab/harness/internal/compare"
	"oomlab/harness/internal/console"
	"oomlab/harness/internal/protocol"
	"oomlab/harness/internal/results"
)

// realRun copies testdata/run-645e39 (a trimmed real run) into a
// temporary directory under its real file names ("patched:2+test").
func realRun(t *testing.T) (string, *results.Run) {
	t.Helper()
	src := filepath.Join("testdata", "run-645e39")
	dir := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		name := strings.ReplaceAll(e.Name(), "patched_", "patched:")
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r, err := results.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, r
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func hasClass(n *html.Node, c string) bool {
	v, _ := attr(n, "class")
	for _, f := range strings.Fields(v) {
		if f == c {
			return true
		}
	}
	return false
}

func walk(n *html.Node, f func(*html.Node)) {
	f(n)
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		walk(c, f)
	}
}

// renderParsed renders r's report and parses it as a browser would.
func renderParsed(t *testing.T, r *results.Run, dir string) ([]byte, *html.Node) {
	t.Helper()
	out, err := renderHTML(r, dir)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := html.Parse(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	return out, doc
}

func TestHTMLReportStructure(t *testing.T) {
	dir, r := realRun(t)
	out, doc := renderParsed(t, r, dir)
	tables := map[string]*html.Node{}
	svgs := map[string]*html.Node{}
	var strips, timelines int
	consoleLinks := map[string]bool{}
	walk(doc, func(n *html.Node) {
		if n.Type != html.ElementNode {
			return
		}
		switch n.Data {
		case "script", "link", "img", "iframe", "object", "embed":
			t.Errorf("<%s> in a self-contained report", n.Data)
		case "table":
			id, _ := attr(n, "id")
			tables[id] = n
		case "svg":
			id, _ := attr(n, "id")
			svgs[id] = n
			if hasClass(n, "strip") {
				strips++
			}
			if hasClass(n, "timeline") {
				timelines++
			}
			found := false
			for c := n.FirstChild; c != nil; c = c.NextSibling {
				found = found || c.Type == html.ElementNode && c.Data == "title"
			}
			if !found {
				t.Errorf("svg %s has no <title>", id)
			}
		case "a":
			h, _ := attr(n, "href")
			if hasClass(n, "console") {
				consoleLinks[h] = true
			}
		}
		for _, a := range n.Attr {
			if a.Key != "href" && a.Key != "src" && a.Key != "xlink:href" {
				continue
			}
			u, err := url.Parse(a.Val)
			if err != nil || u.Scheme != "" || u.Host != "" || strings.HasPrefix(a.Val, "//") {
				t.Errorf("<%s %s=%q>: not a relative link (scheme %q)", n.Data, a.Key, a.Val, u.Scheme)
				continue
			}
			if strings.HasPrefix(a.Val, "#") {
				if svgs[a.Val[1:]] == nil && !bytes.Contains(out, []byte(`id="`+a.Val[1:]+`"`)) {
					t.Errorf("link %s: no such id", a.Val)
				}
				continue
			}
			if _, err := os.Stat(filepath.Join(dir, u.Path)); err != nil {
				t.Errorf("link %q: %v", a.Val, err)
			}
		}
	})
	if bytes.Contains(out, []byte("http://")) || bytes.Contains(out, []byte("https://")) {
		t.Error("the report names an external URL")
	}

	// Tables: the header's, the statistics, one per scenario; each with
	// column headers.
	want := []string{"kernels", "comparison-table", "distribution-table"}
	var scenarios []string
	for _, res := range r.Results {
		if len(scenarios) == 0 || scenarios[len(scenarios)-1] != res.Scenario {
			scenarios = append(scenarios, res.Scenario)
			want = append(want, anchor("runs", res.Scenario))
		}
	}
	for _, id := range want {
		tb := tables[id]
		if tb == nil {
			t.Errorf("table %q missing", id)
			continue
		}
		ths := 0
		walk(tb, func(n *html.Node) {
			if n.Type == html.ElementNode && n.Data == "th" {
				if s, _ := attr(n, "scope"); s == "col" {
					ths++
				}
			}
		})
		if ths < 3 {
			t.Errorf("table %q: %d column headers", id, ths)
		}
	}

	// One strip plot per scenario x latency figure with any samples.
	rep := compare.Within(r)
	wantStrips := 0
	for _, sc := range scenarios {
		for _, fig := range latencyFigures() {
			n := 0
			for _, g := range rep.Groups {
				if g.Scenario == sc {
					n += len(g.Samples.Dists[fig.Field].Values)
				}
			}
			if n == 0 {
				continue
			}
			wantStrips++
			if svgs[anchor("dist", sc, fig.Field)] == nil {
				t.Errorf("no plot of %s for %s", fig.Field, sc)
			}
		}
	}
	if strips != wantStrips || wantStrips < 3 {
		t.Errorf("%d strip plots, want %d (>= 3 in the test data)", strips, wantStrips)
	}
	// One timeline and one console link per guest run; a colon in a
	// file name must not read as a URL scheme.
	if timelines != len(r.Results) {
		t.Errorf("%d timelines, want %d", timelines, len(r.Results))
	}
	for _, res := range r.Results {
		if svgs[anchor("timeline", res.Scenario, res.Variant, "1")] == nil {
			t.Errorf("no timeline for %s/%s", res.Scenario, res.Variant)
		}
		if h := "./" + url.PathEscape(res.Console); !consoleLinks[h] {
			t.Errorf("no console link %q", h)
		}
	}
	if !consoleLinks["./console-exit-mmap-starved-patched:2+test-1.log"] {
		t.Errorf("console links: %v", consoleLinks)
	}
	for _, s := range []string{"TOO FEW SAMPLES", "6.12.117-oomlab-patched", "2bbcf3c122c38a2a", `class="v v-error"`, "report.ktap", "junit.xml"} {
		if !bytes.Contains(out, []byte(s)) {
			t.Errorf("report lacks %q", s)
		}
	}
	// The events are marked on the timelines: every kill in events.jsonl.
	kills := 0
	for _, evs := range loadEvents(dir) {
		for _, e := range evs {
			if e.Kind == console.OOMKill {
				kills++
			}
		}
	}
	if got := bytes.Count(out, []byte(`<g class="ev oom_kill">`)); got != kills {
		t.Errorf("%d kills marked, run.json counts %d", got, kills)
	}
}

// Two renders, from two copies of the run in different directories, are
// byte-identical.
func TestHTMLDeterministic(t *testing.T) {
	dir1, r1 := realRun(t)
	dir2, r2 := realRun(t)
	a, err := renderHTML(r1, dir1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := renderHTML(r2, dir2)
	c, _ := renderHTML(r1, dir1)
	if !bytes.Equal(a, b) || !bytes.Equal(a, c) {
		t.Error("renders differ")
	}
}

func TestHTMLRegressionsAndSave(t *testing.T) {
	dir := t.TempDir()
	r := sampleRun()
	r.Regressions = []string{"smoke: patched is WORSE than baseline on oom_to_freed_ms (x, p = 0.01 < 0.05)"}
	if err := Save(dir, r); err != nil {
		t.Fatal(err)
	}
	out, err := os.ReadFile(filepath.Join(dir, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := html.Parse(bytes.NewReader(out)); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"REGRESSION smoke: patched is WORSE", "no metrics samples and no timed console events for this guest run", "agent did not answer"} {
		if !bytes.Contains(out, []byte(s)) {
			t.Errorf("report.html lacks %q", s)
		}
	}
}

func TestRoundSpans(t *testing.T) {
	at := func(v float64) *float64 { return &v }
	res := &results.Result{Rounds: []results.RoundResult{
		{Round: 1, Verdict: results.Pass, WallS: 3},
		{Round: 2, Verdict: results.Fail, WallS: 4},
	}}
	ev := []runEvent{
		{Round: 1, Event: console.Event{Kind: console.StressStart, Time: at(2)}},
		{Round: 1, Event: console.Event{Kind: console.OOMKill, Time: at(3)}},
		{Round: 2, Event: console.Event{Kind: console.StressStart, Time: at(6)}},
	}
	got := roundSpans(res, ev)
	if len(got) != 2 || got[0] != (span{2, 5, "round 1: PASS"}) || got[1] != (span{6, 10, "round 2: FAIL"}) {
		t.Errorf("spans %+v", got)
	}
	// No rounds recorded: the stress phase.
	res = &results.Result{}
	res.Figures.StressSeconds = 7
	if got := roundSpans(res, ev[:1]); len(got) != 1 || got[0] != (span{2, 9, "stress phase"}) {
		t.Errorf("spans %+v", got)
	}
}

func TestAlignSamples(t *testing.T) {
	at := func(v float64) *float64 { return &v }
	ev := []runEvent{{Event: console.Event{Kind: console.StressStart, Time: at(2.5)}}}
	ss := []protocol.Sample{
		{Seq: 0, Mono: 2.6, MemAvailableKB: 2048, PSI: true},
		{Seq: 1, Mono: 2.85, MemAvailableKB: 1024, PSI: true, MemFullTotalUS: 125000},
	}
	got := alignSamples(ss, ev)
	if got[0].T != 2.6 || got[1].AvailMB != 1 || !got[1].HasFull || got[1].FullPct < 49.9 || got[1].FullPct > 50.1 || got[0].HasFull {
		t.Errorf("%+v", got)
	}
	// Without CLOCK_MONOTONIC stamps: from the stress start, 250 ms apart.
	ss[0].Mono, ss[1].Mono = 0, 0
	if got := alignSamples(ss, ev); got[0].T != 2.5 || got[1].T != 2.75 {
		t.Errorf("%+v", got)
	}
}

// A run's boot cell says where the boot went, on hover.
func TestHTMLBootPhases(t *testing.T) {
	dir, r := realRun(t)
	r.Results[0].Boot = &results.BootPhases{FirmwareS: 0.17, KernelS: 0.51, InitS: 0.15, ConnectS: 0.05, ClockS: 0.77}
	_, doc := renderParsed(t, r, dir)
	var titles []string
	walk(doc, func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "td" {
			if v, ok := attr(n, "title"); ok && strings.Contains(v, "QEMU and firmware") {
				titles = append(titles, v)
			}
		}
	})
	want := "QEMU and firmware 0.17 s, kernel 0.51 s, agent start 0.15 s, SSH 0.05 s; then 0.77 s for the clocksource to settle"
	if len(titles) != 1 || titles[0] != want {
		t.Errorf("boot cell titles %q, want one %q", titles, want)
	}
}
