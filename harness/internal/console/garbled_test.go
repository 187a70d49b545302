package console

import "testing"

func TestTwoStamps(t *testing.T) {
	for line, want := range map[string]bool{
		"[    1.000000] random: crng init done":                       false,
		"<4>[    1.000000] random: crng init done":                    false,
		"[    1.000000][  T1] [drm] [  78] pid":                       false,
		"[    1.000000][  T1] wat[    1.000001][   C0] chdog: BUG: x": true,
		"[    1.0[    1.000001][   C0] BUG: x":                        false, // one stamp and a fragment
		"Nov 23 10:00:00 h kernel: [    1.000000] a [    1.500000] b": true,
		"x [ 1.5 ] y [ 2. ] z [3.1":                                   false,
		"":                                                            false,
		"[":                                                           false,
		"[    1.000000]":                                              false,
		"[    1.000000][    2.000000]":                                true,
	} {
		if got := twoStamps([]byte(line)); got != want {
			t.Errorf("twoStamps(%q) = %v, want %v", line, got, want)
		}
	}
}

func TestPlausible(t *testing.T) {
	at := func(t float64, cpu, pid int) header {
		return header{time: t, hasTime: true, stamped: true, callerCPU: cpu, callerPID: pid}
	}
	rec := at(10, -1, 1)
	rec.record = true
	for _, c := range []struct {
		name string
		h, e header
		want bool
	}{
		{"same time, other CPU", at(10, -1, 1), at(10, 0, -1), true},
		{"slightly earlier", at(10, -1, 1), at(9.5, 0, -1), true},
		{"too early", at(10, -1, 1), at(8.9, 0, -1), false},
		{"at the window's end", at(10, -1, 1), at(10+garbledWindow, 0, -1), true},
		{"too late", at(10, -1, 1), at(10.1+garbledWindow, 0, -1), false},
		{"same caller", at(10, -1, 7), at(10, -1, 7), false},
		{"no callers", at(10, -1, -1), at(10, -1, -1), true},
		{"record", rec, at(10, 0, -1), false},
		{"no time", header{stamped: true, callerCPU: -1, callerPID: -1}, at(10, 0, -1), false},
	} {
		if got := plausible(c.h, c.e); got != c.want {
			t.Errorf("%s: plausible = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestGarbledField checks that only recovered events say how.
func TestGarbledField(t *testing.T) {
	p := NewParser()
	evs := p.Feed([]byte("[   48.123456][    C1] wat[   48.123460][    C0] chdog: BUG: soft lockup - CPU#1 stuck for 26s! [spin:92]"))
	if len(evs) != 1 || evs[0].Kind != SoftLockup || evs[0].Fields["garbled"] != "spliced" || *evs[0].CPU != 1 || *evs[0].Time != 48.123456 {
		t.Fatalf("spliced: %+v", evs)
	}
	evs = p.Feed([]byte("[   49.000000][   T93] journald: Sen[   49.000100][    C0] rcu: INFO: rcu_preempt self-detected stall on CPU"))
	if len(evs) != 1 || evs[0].Fields["garbled"] != "tail" || *evs[0].CPU != 0 || *evs[0].Time != 49.0001 {
		t.Fatalf("tail: %+v", evs)
	}
	evs = p.Feed([]byte("[   50.000000][    C1] watchdog: BUG: soft lockup - CPU#1 stuck for 26s! [spin:92]"))
	if len(evs) != 1 || evs[0].Fields["garbled"] != "" {
		t.Fatalf("plain: %+v", evs)
	}
}
