package report

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"

	"oomlab/harness/internal/compare"
	"oomlab/harness/internal/metrics"
	"oomlab/harness/internal/results"
)

const skipWhy = "requires fair_server (the fair deadline server): the baseline guest has no /sys/kernel/debug/sched/fair_server"

func skipRun() *results.Run {
	return &results.Run{Schema: results.SchemaVersion, Version: "test", ID: "r1", Results: []*results.Result{
		{Scenario: "tetsuo", Variant: "baseline", Repeat: 1, Verdict: results.Skip, SkipReason: skipWhy},
		{Scenario: "smoke", Variant: "baseline", Repeat: 1, Verdict: results.Pass, Console: "c.log", Figures: metrics.Figures{OOMKills: 1, GuestAlive: true}},
	}}
}

// A run skipped for a missing requirement shows as SKIP with its reason
// in every format, and is never counted as a pass or a run.
func TestSkipInEveryFormat(t *testing.T) {
	r := skipRun()

	var k bytes.Buffer
	KTAP(&k, r)
	if !strings.Contains(k.String(), "    ok 1 repeat-1 # SKIP "+skipWhy+"\n") || !strings.Contains(k.String(), "\nok 1 tetsuo.baseline\n") {
		t.Errorf("KTAP:\n%s", k.String())
	}

	var j bytes.Buffer
	if err := JUnit(&j, r); err != nil {
		t.Fatal(err)
	}
	var s junitSuites
	if err := xml.Unmarshal(j.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	c := s.Suites[0].Cases[0]
	if c.Skipped == nil || c.Skipped.Message != skipWhy || c.Failure != nil || c.Error != nil || s.Suites[0].Skipped != 1 || s.Skipped != 1 {
		t.Errorf("JUnit: %s", j.String())
	}
	if !strings.Contains(j.String(), `<skipped message="requires fair_server`) {
		t.Errorf("JUnit lacks <skipped message=...>:\n%s", j.String())
	}

	var tb bytes.Buffer
	Table(&tb, r)
	if !strings.Contains(tb.String(), "tetsuo    baseline  1    SKIP") || !strings.Contains(tb.String(), "  SKIP tetsuo/baseline#1: "+skipWhy+"\n") {
		t.Errorf("text:\n%s", tb.String())
	}

	var h bytes.Buffer
	if err := HTML(&h, r, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	page := h.String()
	if !strings.Contains(page, `<td class="v v-skip">SKIP</td>`) || !strings.Contains(page, "<li>SKIP baseline#1: "+esc(skipWhy)+"</li>") {
		t.Errorf("HTML lacks the SKIP cell or reason")
	}
	if strings.Contains(page, `href=""`) {
		t.Errorf("HTML links to an empty console log")
	}

	// Not a pass, not a run, no figures in the statistics.
	for _, sum := range Summaries(r) {
		if sum.Scenario == "tetsuo" && (sum.Runs != 0 || sum.Passed != 0 || sum.Dead != 0 || sum.Skipped != 1) {
			t.Errorf("summary %+v", sum)
		}
	}
	gs := compare.Groups(r)
	if len(gs) != 2 || gs[0].Runs != 0 || gs[1].Runs != 1 {
		t.Errorf("groups %+v", gs)
	}
	var cmp bytes.Buffer
	Compare(&cmp, r) // the groups stay aligned with the summaries
	if !strings.Contains(cmp.String(), "tetsuo    baseline  0/0") {
		t.Errorf("compare:\n%s", cmp.String())
	}
}
