package report

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"

	"oomlab/harness/internal/metrics"
	"oomlab/harness/internal/results"
)

// JUnit XML, the dialect Jenkins, GitLab and GitHub test reporters read:
// one testsuite per scenario x variant, one testcase per repeat.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr,omitempty"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Skipped  int         `xml:"skipped,attr,omitempty"`
	Time     float64     `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      float64       `xml:"time,attr"`
	Skipped   *junitSkipped `xml:"skipped,omitempty"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

// junitSkipped is <skipped message="why"/>.
type junitSkipped struct {
	Message string `xml:"message,attr,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Body    string `xml:",chardata"`
}

// JUnit writes the run as JUnit XML.
func JUnit(w io.Writer, r *results.Run) error {
	out := junitSuites{Name: "oomlab " + r.ID}
	for _, g := range groups(r) {
		s := junitSuite{Name: g.name}
		for _, res := range g.results {
			c := junitCase{
				Name:      fmt.Sprintf("repeat-%d", res.Repeat),
				Classname: g.name,
				Time:      res.WallS,
				SystemOut: "console: " + res.Console + "\n" + junitSummary(&res.Figures),
			}
			switch res.Verdict {
			case results.Skip:
				c.Skipped = &junitSkipped{Message: res.SkipReason}
				s.Skipped++
			case results.Fail:
				c.Failure = &junitProblem{Message: res.Failures[0], Body: strings.Join(res.Failures, "\n")}
				s.Failures++
			case results.Error:
				c.Error = &junitProblem{Message: res.Error, Body: res.Error}
				s.Errors++
			}
			s.Tests++
			s.Time += res.WallS
			s.Cases = append(s.Cases, c)
		}
		out.Tests += s.Tests
		out.Failures += s.Failures
		out.Errors += s.Errors
		out.Skipped += s.Skipped
		out.Suites = append(out.Suites, s)
	}
	// A variant significantly worse than its reference fails the run
	// (package suite): one failed testcase per figure, in a suite of its own.
	if len(r.Regressions) > 0 {
		s := junitSuite{Name: "statistics"}
		for i, why := range r.Regressions {
			s.Cases = append(s.Cases, junitCase{Name: fmt.Sprintf("regression-%d", i+1), Classname: "statistics",
				Failure: &junitProblem{Message: why, Body: why}})
			s.Tests++
			s.Failures++
		}
		out.Tests += s.Tests
		out.Failures += s.Failures
		out.Suites = append(out.Suites, s)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// junitSummary is the figures of the one-line summary, read from the
// figure table: "oom_events=1 oom_kills=1 ... guest_alive=true".
func junitSummary(f *metrics.Figures) string {
	var parts []string
	for _, fig := range metrics.Summary() {
		v, _ := fig.Value(f)
		parts = append(parts, fig.Name+"="+fig.Format(v))
	}
	return strings.Join(parts, " ")
}
