package scenario

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"oomlab/harness/internal/guest"
)

// settleClock waits out tsc-early, passes over a guest without the file,
// and gives up on a clocksource that never settles.
func TestSettleClock(t *testing.T) {
	cat := "cat " + clocksourcePath
	var reads atomic.Int32
	switching := &fakeShell{outputFor: func(cmd string) (fakeOutput, bool) {
		if cmd != cat {
			return fakeOutput{}, false
		}
		if reads.Add(1) <= 3 {
			return fakeOutput{out: "tsc-early\n"}, true
		}
		return fakeOutput{out: "tsc\n"}, true
	}}
	waited, err := settleClock(context.Background(), switching)
	if err != nil || reads.Load() != 4 || waited < 3*clockPoll {
		t.Errorf("tsc-early x3 then tsc: waited %v after %d reads, %v", waited, reads.Load(), err)
	}

	none := &fakeShell{outputs: map[string]fakeOutput{cat: {err: &guest.CommandError{Cmd: cat, Result: guest.Result{ExitCode: 1}}}}}
	if waited, err := settleClock(context.Background(), none); err != nil || waited != 0 {
		t.Errorf("no clocksource file: waited %v, %v", waited, err)
	}

	saved := clockSettleMax
	clockSettleMax = 200 * time.Millisecond
	defer func() { clockSettleMax = saved }()
	stuck := &fakeShell{outputs: map[string]fakeOutput{cat: {out: "tsc-early\n"}}}
	waited, err = settleClock(context.Background(), stuck)
	if err == nil || !strings.Contains(err.Error(), "still tsc-early") || waited < clockSettleMax {
		t.Errorf("never settles: waited %v, %v", waited, err)
	}
}
