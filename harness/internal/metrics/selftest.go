package metrics

import (
	"oomlab/harness/internal/ktap"
)

// Selftest figure families: a stressor whose output is KTAP/TAP (an
// upstream kernel selftest, tools/testing/selftests) gets one figure per
// test case, so that run.json, the reports and expectations see each case,
// and the suite can hold every variant to what passed on its reference.
const (
	// SelftestFamily: "selftest:<stressor>.<case>" is 1 when the case
	// passed, 0 when it failed; "selftest:<stressor>" is 1 when the
	// program ran to its end (every planned result printed, no "Bail
	// out!", no signal, not stopped by the runner), 0 when it did not,
	// which covers a crash: the cases it never reached have no figure.
	SelftestFamily = "selftest"
	// SelftestSkipFamily: "selftest_skip:<stressor>.<case>" is 1 for a
	// skipped case, "selftest_skip:<stressor>" 1 for a program that
	// skipped itself as a whole ("1..0 # SKIP reason"). A skip has no
	// "selftest:" figure: it is not a pass.
	SelftestSkipFamily = "selftest_skip"
)

// kselftest exit codes (kselftest.h): a program that ends with one of
// these ended by itself, whatever its cases did.
const (
	ksftPass  = 0
	ksftFail  = 1
	ksftXFail = 2
	ksftXPass = 3
	ksftSkip  = 4
)

// selftestFigures adds the figures of every exit whose output is test
// output. Several instances of one stressor share their figures: a case
// is a pass only if it passed in each (min of the values).
func selftestFigures(m map[string]float64, exits []Exit) {
	set := func(k string, v float64) {
		if old, ok := m[k]; ok && old < v {
			return
		}
		m[k] = v
	}
	for _, e := range exits {
		r := ktap.Parse(e.Output)
		if !r.Found() {
			continue
		}
		if r.Plan == 0 && len(r.Cases) == 0 {
			m[SelftestSkipFamily+":"+e.Name] = 1
			continue
		}
		complete := 0.0
		if !e.Running && e.Signal == "" && r.BailOut == "" && !r.Truncated &&
			e.ExitCode >= ksftPass && e.ExitCode <= ksftSkip {
			complete = 1
		}
		set(SelftestFamily+":"+e.Name, complete)
		for _, c := range r.Flatten() {
			k := e.Name + "." + c.Key
			switch c.Status {
			case ktap.Pass:
				set(SelftestFamily+":"+k, 1)
			case ktap.Fail:
				set(SelftestFamily+":"+k, 0)
			case ktap.Skip:
				m[SelftestSkipFamily+":"+k] = 1
			}
		}
	}
}
