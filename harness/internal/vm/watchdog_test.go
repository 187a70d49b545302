package vm

import (
	"testing"
	"time"
)

func TestWatchdogCheck(t *testing.T) {
	t0 := time.Unix(1000, 0)
	w := NewWatchdog(10*time.Second, t0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	if f, _ := w.Check(at(9.9)); f != Alive {
		t.Errorf("before the timeout: %q", f)
	}
	// An idle guest prints nothing, its agent answers: alive.
	for s := 0.25; s < 30; s += 0.25 {
		w.Heartbeat(at(s))
	}
	if f, _ := w.Check(at(30)); f != Alive {
		t.Errorf("idle guest with a live agent: %q", f)
	}
	// The agent goes quiet at 30 s, the console keeps printing: agent lost.
	for s := 31.0; s < 45; s += 2 {
		w.Console(at(s))
	}
	if f, _ := w.Check(at(39)); f != Alive {
		t.Errorf("9 s without the agent: %q", f)
	}
	if f, since := w.Check(at(40.5)); f != AgentLost || !since.Equal(at(29.75)) {
		t.Errorf("agent quiet 10.75 s, console alive: %q since %v", f, since)
	}
	// The console goes quiet too (its last line at 43 s): a silent hang
	// once it has been quiet for half the timeout.
	if f, _ := w.Check(at(47.9)); f != AgentLost {
		t.Errorf("console quiet 4.9 s: %q", f)
	}
	if f, since := w.Check(at(48.1)); f != SilentHang || !since.Equal(at(29.75)) {
		t.Errorf("both quiet: %q since %v", f, since)
	}
	// What the guest printed as it went quiet is part of the hang: the
	// agent's last beat at 60 s, the busy loop's start line at 60.5 s.
	w2 := NewWatchdog(10*time.Second, at(0))
	w2.Heartbeat(at(60))
	w2.Console(at(60.5))
	if f, _ := w2.Check(at(70.1)); f != SilentHang {
		t.Errorf("a line right after the last heartbeat: %q", f)
	}
	// An older stamp does not move time back.
	w.Heartbeat(at(1))
	if f, _ := w.Check(at(53.5)); f != SilentHang {
		t.Errorf("after an old heartbeat: %q", f)
	}
	// Off.
	if f, _ := (&Watchdog{}).Check(at(1e6)); f != Alive {
		t.Errorf("zero timeout: %q", f)
	}
}
