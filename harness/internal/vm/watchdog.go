package vm

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Watchdog is the host's view of a guest's signs of life: console output
// and agent heartbeats. The guest's own detectors (soft/hard lockup, RCU
// stall, hung task, workqueue watchdog) report most hangs on the console;
// a guest that prints nothing and whose agent stopped answering for
// Timeout is hung in a way they do not see (every CPU taken by real-time
// work with throttling off, a detector that cannot run): the host must
// find out by itself and ask the guest for evidence (Sysrq, InjectNMI).
//
// Check tells the state from the two timestamps; the caller polls it and
// acts. It is safe for concurrent use.
type Watchdog struct {
	Timeout time.Duration

	mu      sync.Mutex
	console time.Time // last console line
	agent   time.Time // last agent heartbeat
}

// Finding is what the watchdog concluded.
type Finding string

// Findings of Check.
const (
	Alive Finding = ""
	// SilentHang: no agent heartbeat for Timeout and no console output
	// in the second half of it.
	SilentHang Finding = "silent_hang"
	// AgentLost: no agent heartbeat for Timeout while the console still
	// printed in the second half of it (a kernel reporting lockups, a
	// livelock in user space).
	AgentLost Finding = "agent_lost"
)

// NewWatchdog starts a watchdog as if both signs of life were seen at now.
func NewWatchdog(timeout time.Duration, now time.Time) *Watchdog {
	return &Watchdog{Timeout: timeout, console: now, agent: now}
}

// Console notes console output at t.
func (w *Watchdog) Console(t time.Time) {
	w.mu.Lock()
	if t.After(w.console) {
		w.console = t
	}
	w.mu.Unlock()
}

// Heartbeat notes an answer of the agent at t.
func (w *Watchdog) Heartbeat(t time.Time) {
	w.mu.Lock()
	if t.After(w.agent) {
		w.agent = t
	}
	w.mu.Unlock()
}

// Check says what is wrong at now and since when the agent has been
// silent (the zero time when it is Alive). The agent is what decides: a
// healthy idle guest prints nothing for minutes, but its agent answers
// every sampling interval. The console counts as alive when it printed in
// the second half of the agent's silence: what a guest prints as it goes
// quiet (the busy loop's own start line, printed a moment after the
// agent's last sample) is part of the hang, not a sign of life.
func (w *Watchdog) Check(now time.Time) (Finding, time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.Timeout <= 0 || now.Sub(w.agent) < w.Timeout {
		return Alive, time.Time{}
	}
	if now.Sub(w.console) < w.Timeout/2 {
		return AgentLost, w.agent
	}
	return SilentHang, w.agent
}

// Quiet is how long the agent and the console have been quiet at now.
func (w *Watchdog) Quiet(now time.Time) (agent, console time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return now.Sub(w.agent), now.Sub(w.console)
}

// Sysrq sends a magic sysrq key to the guest over its serial console: a
// BREAK (the stdio mux's "C-a b") and, 300 ms later, the key, which the
// kernel's 8250 driver hands to the sysrq handler in interrupt context
// (CONFIG_MAGIC_SYSRQ_SERIAL, sysrq_always_enabled): it works while every
// CPU runs a real-time busy loop, as long as interrupts are taken. 'l'
// backtraces every CPU (by NMI), 't' every task, 'w' the blocked ones,
// 'm' memory.
func (v *VM) Sysrq(ctx context.Context, key byte) error {
	if v.stdin == nil {
		return errors.New("vm: no serial input")
	}
	v.stdinMu.Lock()
	defer v.stdinMu.Unlock()
	if _, err := v.stdin.Write([]byte{0x01, 'b'}); err != nil {
		return fmt.Errorf("vm: serial break: %w", err)
	}
	t := time.NewTimer(300 * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	if _, err := v.stdin.Write([]byte{key}); err != nil {
		return fmt.Errorf("vm: sysrq %c: %w", key, err)
	}
	return nil
}

// InjectNMI sends an NMI to every vCPU over QMP (inject-nmi). A 6.12
// guest prints "Uhhuh. NMI received for unknown reason" on each: proof
// that the CPUs still take NMIs, without backtraces (those come from
// Sysrq 'l').
func (v *VM) InjectNMI(ctx context.Context) error {
	if v.QMP == nil {
		return errors.New("vm: no QMP monitor")
	}
	_, err := v.QMP.Run(ctx, "inject-nmi", nil)
	return err
}

// LastOutput is when the guest last wrote to its console (the zero time
// before its first byte).
func (v *VM) LastOutput() time.Time {
	n := v.output.last.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}
