package scenario

import (
	"fmt"
	"strings"

	"oomlab/harness/internal/results"
)

// No false pass: a run whose stressors did not run as the scenario
// designed them shows nothing, whatever its figures say. How a stressor
// instance ended counts as:
//
//   - exited with status 0: as designed;
//   - SIGKILL while the runner had not stopped it: the OOM killer (the
//     agent sends signals only when the runner stops a stressor, and then
//     the exit is marked still_running);
//   - stopped by the runner at the end of the stress phase (a background
//     hog, a victim that never died, a waiter still waiting): not a
//     failure of the stressor; the figures (running:<name>, left:<comm>)
//     say whether that was expected;
//   - any other end (a non-zero status, or a signal other than SIGKILL:
//     SEGV, ABRT, TERM, ...) makes the run an error naming the stressor,
//     its exit and the last line it printed, unless the stressor says
//     may_fail: true (its exit status is what the scenario measures, e.g.
//     a check or a timed write whose failure an expectation judges).

// exitProblem says what is wrong with how one stressor instance ended,
// or "".
func exitProblem(st *Stressor, e results.StressorExit) string {
	if e.Running || (st != nil && st.MayFail) {
		return ""
	}
	var how string
	switch {
	case e.Signal == "KILL":
		return ""
	case e.Signal != "":
		how = "was killed by SIG" + e.Signal
	case e.ExitCode != 0:
		how = fmt.Sprintf("exited with status %d", e.ExitCode)
	default:
		return ""
	}
	name := fmt.Sprintf("%s#%d", e.Name, e.Instance)
	if e.Round > 0 {
		name += fmt.Sprintf(" in round %d", e.Round)
	}
	msg := fmt.Sprintf("stressor %s %s", name, how)
	if line := lastLine(e.Output); line != "" {
		msg += fmt.Sprintf(" (%s)", line)
	}
	return msg + ": the run did not go as designed (may_fail: true if that is allowed)"
}

// exitProblems lists the problems of exits, one per stressor name (the
// first instance's), in order.
func exitProblems(sc *Scenario, exits []results.StressorExit) []string {
	var out []string
	seen := map[string]bool{}
	for _, e := range exits {
		if seen[e.Name] {
			continue
		}
		if sc.Rounds <= 1 {
			e.Round = 0 // one round: no need to name it
		}
		if p := exitProblem(sc.stressor(e.Name), e); p != "" {
			seen[e.Name] = true
			out = append(out, p)
		}
	}
	return out
}

// judgeExits turns a pass or fail into an error when a stressor did not
// run as designed (see above), the run's and each round's; the failures
// of the expectations are kept. It runs after judge has judged the
// figures.
func judgeExits(r *results.Result, sc *Scenario) {
	if r.Verdict != results.Pass && r.Verdict != results.Fail {
		return
	}
	for i := range r.Rounds {
		rr := &r.Rounds[i]
		if p := exitProblems(sc, rr.Stressors); len(p) > 0 && rr.Verdict != results.Error {
			rr.Verdict, rr.Error = results.Error, strings.Join(p, "; ")
		}
	}
	if p := exitProblems(sc, r.Stressors); len(p) > 0 {
		r.Verdict, r.Error = results.Error, strings.Join(p, "; ")
	}
}

// stressor is the scenario's stressor of that name, or nil.
func (s *Scenario) stressor(name string) *Stressor {
	for i := range s.Stressors {
		if s.Stressors[i].Name == name {
			return &s.Stressors[i]
		}
	}
	return nil
}

// lastLine is the last non-empty line of out, at most 200 bytes.
func lastLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return tail(strings.TrimSpace(lines[len(lines)-1]), 200)
}
