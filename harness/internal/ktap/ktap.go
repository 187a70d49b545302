// Package ktap reads the test output of kernel selftests: KTAP version 1
// (Documentation/dev-tools/ktap.rst) and the TAP 13 dialect that
// tools/testing/selftests/kselftest.h prints.
//
// It reads what a run actually keeps of a program's output, which may be
// its tail only, or cut short by a crash: a result line stands on its own
// and counts without the version line or the plan before it, and the
// result says when the output ended before the plan was met.
package ktap

import (
	"regexp"
	"strconv"
	"strings"
)

// Status is the outcome of one test case.
type Status string

// Outcomes. An "ok ... # XFAIL" (failed as expected) is a pass, as
// kselftest counts it; "not ok ... # SKIP" is a skip, as KTAP says.
const (
	Pass Status = "pass"
	Fail Status = "fail"
	Skip Status = "skip"
)

// Case is one test line, with the subtests printed before it.
type Case struct {
	Number int
	// Name is the description on the test line. kselftest prints a
	// skipped case as "ok N # SKIP <name>", with the name in the
	// directive: then Name is empty and Reason holds it.
	Name      string
	Status    Status
	Directive string // SKIP, XFAIL, TODO, error, ... ("" when none)
	Reason    string // the text after the directive
	Subtests  []Case
	// Plan and Truncated describe the subtests: the plan of the nested
	// test (-1: none seen) and whether fewer results than planned came.
	Plan      int
	Truncated bool
}

// Result is one test program's output.
type Result struct {
	Version string // "KTAP version 1", "TAP version 13" ("" when not seen)
	// Plan is the number of tests the program announced, -1 when no plan
	// line was seen. A plan of 0 with PlanSkip set is a program that
	// skipped itself as a whole ("1..0 # SKIP <reason>").
	Plan     int
	PlanSkip string
	Cases    []Case
	// BailOut is the reason of a "Bail out!" line: the program gave up
	// (kselftest's ksft_exit_fail_msg); the cases after it did not run.
	BailOut string
	// Truncated: the output ended before as many top-level results came
	// as the plan announced (a crash, a timeout, a kill).
	Truncated bool
}

// Found says whether out looked like test output at all: a version line,
// a plan or a result line.
func (r *Result) Found() bool {
	return r.Version != "" || r.Plan >= 0 || len(r.Cases) > 0 || r.BailOut != ""
}

var (
	reVersion = regexp.MustCompile(`^(K?TAP version \d+)\s*$`)
	rePlan    = regexp.MustCompile(`^1\.\.(\d+)\s*(?:#\s*(.*))?$`)
	reResult  = regexp.MustCompile(`^(ok|not ok)\s+(\d+)\b\s*(?:-\s+)?(.*)$`)
	reBailOut = regexp.MustCompile(`^Bail out!\s*(.*)$`)
)

// level is one nesting level of the test being read: the results of a
// test's subtests are indented further than the test's own line.
type level struct {
	indent int
	plan   int
	cases  []Case
}

// Parse reads out. Lines that are not KTAP (diagnostics, a program's own
// output, other processes' lines) are ignored. Nesting is by indentation,
// as KTAP writes subtests: a subtest's lines are indented further than the
// test line that closes it, which comes after them.
func Parse(out string) *Result {
	r := &Result{Plan: -1}
	var stack []*level // stack[0] is the top level
	top := func() *level { return stack[len(stack)-1] }
	// pop ends the innermost subtest: its test line never came (a crash
	// or a cut), so it is kept as a failed case, not dropped.
	pop := func() {
		l := top()
		stack = stack[:len(stack)-1]
		p := top()
		p.cases = append(p.cases, Case{Number: len(p.cases) + 1, Status: Fail,
			Directive: "truncated", Reason: "the output ended before this test's result line",
			Subtests: l.cases, Plan: l.plan, Truncated: l.plan < 0 || len(l.cases) < l.plan})
	}
	lines := strings.Split(strings.ReplaceAll(out, "\r\n", "\n"), "\n")
	// Every KTAP line ends with a newline: a last line without one was
	// cut (the program died while printing, or the capture ended), and
	// "ok 3 test_kmem_pro" of "ok 3 test_kmem_proc_kpagecgroup" is no
	// result.
	lines = lines[:len(lines)-1]
	for _, raw := range lines {
		trimmed := strings.TrimLeft(raw, " \t")
		line := strings.TrimRight(trimmed, " \t")
		kind := ""
		switch {
		case reVersion.MatchString(line):
			kind = "version"
		case rePlan.MatchString(line):
			kind = "plan"
		case reResult.MatchString(line):
			kind = "result"
		case reBailOut.MatchString(line):
			kind = "bail"
		default:
			continue // diagnostics ("# ..."), other output
		}
		indent := len(raw) - len(trimmed)
		if stack == nil {
			stack = []*level{{indent: indent, plan: -1}}
		}
		if indent < stack[0].indent {
			indent = stack[0].indent
		}
		// A line less indented than the subtest on top ends it: the
		// subtest just below the line's level is closed by the line if
		// that is a result; any deeper one never got its result.
		for len(stack) > 1 && top().indent > indent && stack[len(stack)-2].indent > indent {
			pop()
		}
		var closed *level
		if len(stack) > 1 && top().indent > indent {
			if kind == "result" {
				closed = top()
				stack = stack[:len(stack)-1]
			} else {
				pop()
			}
		}
		if indent > top().indent {
			stack = append(stack, &level{indent: indent, plan: -1})
		}
		l := top()
		switch kind {
		case "version":
			if len(stack) == 1 && r.Version == "" {
				r.Version = reVersion.FindStringSubmatch(line)[1]
			}
		case "plan":
			m := rePlan.FindStringSubmatch(line)
			n, _ := strconv.Atoi(m[1])
			l.plan = n
			if len(stack) == 1 {
				r.Plan = n
				if d, rest := directive(m[2]); n == 0 && strings.EqualFold(d, "SKIP") {
					r.PlanSkip = rest
				}
			}
		case "bail":
			r.BailOut = reBailOut.FindStringSubmatch(line)[1]
		case "result":
			c := parseResult(reResult.FindStringSubmatch(line))
			if closed != nil {
				c.Subtests, c.Plan = closed.cases, closed.plan
				c.Truncated = closed.plan >= 0 && len(closed.cases) < closed.plan
				if c.Truncated && c.Status == Pass {
					c.Status = Fail // a test cannot pass with subtests missing
				}
			}
			l.cases = append(l.cases, c)
		}
	}
	if stack == nil {
		return r
	}
	r.Truncated = len(stack) > 1
	for len(stack) > 1 {
		pop()
	}
	r.Cases = stack[0].cases
	r.Truncated = r.Truncated || r.Plan > 0 && len(r.Cases) < r.Plan
	return r
}

// parseResult reads "ok|not ok N [- ]description [# DIRECTIVE reason]".
func parseResult(m []string) Case {
	n, _ := strconv.Atoi(m[2])
	c := Case{Number: n, Status: Pass, Plan: -1}
	if m[1] == "not ok" {
		c.Status = Fail
	}
	desc := m[3]
	if i := strings.Index(desc, "#"); i >= 0 {
		c.Directive, c.Reason = directive(desc[i+1:])
		desc = desc[:i]
	}
	c.Name = strings.TrimSpace(desc)
	switch strings.ToUpper(c.Directive) {
	case "SKIP":
		c.Status = Skip
	case "XFAIL":
		// kselftest's ksft_test_result_xfail prints "ok N # XFAIL": it
		// failed the way it is known to, which kselftest counts as a pass.
	}
	return c
}

// directive splits "SKIP reason" into the directive word and the rest.
func directive(s string) (string, string) {
	s = strings.TrimSpace(s)
	word, rest, _ := strings.Cut(s, " ")
	return word, strings.TrimSpace(rest)
}

// Key is the name a case is compared by across runs: its name when it is
// one word (test_memcg_min), kselftest's skip line's reason when that is one
// word (the skipped case's name: "ok 5 # SKIP test_memcg_swap_max"), else
// its number. A description of several words may carry numbers of the run
// ("Success reaping a child with 2MB of memory allocations"), which would
// make the same case look like a different one on another kernel.
func (c Case) Key() string {
	if isWord(c.Name) {
		return c.Name
	}
	if c.Name == "" && c.Status == Skip && isWord(c.Reason) {
		return c.Reason
	}
	return strconv.Itoa(c.Number)
}

func isWord(s string) bool {
	if s == "" || len(s) > 100 {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r == '-' || r == '.' || r == ':' || r == '/' || r == '[' || r == ']' || r == '=' || r == ',' ||
			'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9') {
			return false
		}
	}
	return true
}

// Flat is one case with its path of keys from the top ("suite.case").
type Flat struct {
	Key    string
	Status Status
	Reason string
}

// Flatten lists every case, subtests before the test that holds them, with
// keys joined by dots; keys made unique by appending "#N" (the number).
func (r *Result) Flatten() []Flat {
	var out []Flat
	seen := map[string]bool{}
	seenAt := map[string]int{}
	var walk func(prefix string, cs []Case)
	walk = func(prefix string, cs []Case) {
		for _, c := range cs {
			k := prefix + c.Key()
			if seenAt[k] == c.Number && c.Number > 0 {
				// The same line again: a forked child flushed a copy
				// of the parent's stdio buffer when it exited.
				continue
			}
			seenAt[k] = c.Number
			if seen[k] {
				k += "#" + strconv.Itoa(c.Number)
			}
			seen[k] = true
			walk(k+".", c.Subtests)
			reason := c.Reason
			if c.Status == Skip && c.Name == "" && reason == c.Key() {
				reason = ""
			}
			out = append(out, Flat{Key: k, Status: c.Status, Reason: reason})
		}
	}
	walk("", r.Cases)
	return out
}
