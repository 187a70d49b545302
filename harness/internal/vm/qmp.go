package vm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/digitalocean/go-qemu/qmp"
)

// Monitor wraps go-qemu's QMP socket monitor with the guarantees the library
// does not give: every call has a deadline, and the event stream is always
// drained.
//
// Why: qmp.SocketMonitor.Connect and Run block forever when QEMU stops
// answering, and its reader goroutine blocks on the events channel once
// Events() was called and nobody reads it, which in turn wedges Run and
// Disconnect. Replies over 64 KiB kill the reader (bufio.Scanner limit). So
// every library call here runs in a goroutine we can abandon, and one
// goroutine owns the events channel for the monitor's whole life.
//
// Known library bugs we live with (no release fixes them): its reader
// hands a reply over as a slice of the bufio.Scanner buffer it goes on
// scanning into, so an event right behind a reply can overwrite the reply
// while Run parses it (digitalocean/go-qemu issue 226; `go test -race`
// shows it in TestQMPHugeReplyAndEvents), and an event between the
// capabilities handshake and its reply shifts every later reply by one
// (pull request 210). Either way a call gets a wrong or unparsable reply:
// the few calls we make (query-status, inject-nmi, quit) treat
// that as a failed call, and nothing of a run's verdict is read from QMP
// replies alone.
type Monitor struct {
	mon     *qmp.SocketMonitor
	timeout time.Duration

	mu     sync.Mutex
	events []qmp.Event // the most recent events, bounded
	closed chan struct{}
	once   sync.Once
}

// maxEvents bounds the events kept in memory; older ones are dropped.
const maxEvents = 256

// ErrTimeout is returned when QEMU does not answer a QMP call in time.
var ErrTimeout = errors.New("qmp: no reply in time")

// ErrClosed is returned when the monitor socket closed before the reply
// came (QEMU exited or dropped the connection mid-command).
var ErrClosed = errors.New("monitor connection closed")

// DialMonitor connects to a QMP unix socket and does the capabilities
// handshake, both bounded by timeout.
func DialMonitor(ctx context.Context, socket string, timeout time.Duration) (*Monitor, error) {
	mon, err := qmp.NewSocketMonitor("unix", socket, timeout)
	if err != nil {
		return nil, fmt.Errorf("qmp: connect %s: %w", socket, err)
	}
	m := &Monitor{mon: mon, timeout: timeout, closed: make(chan struct{})}
	if err := m.call(ctx, "handshake", func() error { return mon.Connect() }); err != nil {
		m.abandon()
		return nil, err
	}
	events, err := mon.Events(context.Background())
	if err != nil {
		m.abandon()
		return nil, err
	}
	go m.drain(events)
	return m, nil
}

// drain owns the events channel until the library closes it (when the
// socket closes), so the library's reader can never block on it.
func (m *Monitor) drain(events <-chan qmp.Event) {
	for e := range events {
		m.mu.Lock()
		if len(m.events) == maxEvents {
			copy(m.events, m.events[1:])
			m.events = m.events[:maxEvents-1]
		}
		m.events = append(m.events, e)
		m.mu.Unlock()
	}
}

// Events returns a copy of the events seen so far (at most the last 256).
func (m *Monitor) Events() []qmp.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]qmp.Event(nil), m.events...)
}

// call runs f with a deadline; on timeout f is left running in its goroutine
// and the socket is closed, which makes it return eventually.
func (m *Monitor) call(ctx context.Context, what string, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("qmp %s: %w", what, err)
		}
		return nil
	case <-ctx.Done():
		m.abandon()
		return fmt.Errorf("qmp %s: %w after %s", what, ErrTimeout, m.timeout)
	case <-m.closed:
		return fmt.Errorf("qmp %s: monitor closed", what)
	}
}

// Run executes one QMP command and returns its "return" value.
func (m *Monitor) Run(ctx context.Context, command string, args any) (json.RawMessage, error) {
	req := map[string]any{"execute": command}
	if args != nil {
		req["arguments"] = args
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	b = append(b, '\n') // QEMU ignores it; line-based peers need it
	var raw []byte
	err = m.call(ctx, command, func() error {
		var err error
		raw, err = m.mon.Run(b)
		// The library's reader forwards only lines that parse as JSON,
		// so a syntax error here is its empty reply on a closed socket
		// (QEMU died mid-command): say that, not "unexpected end of
		// JSON input".
		var se *json.SyntaxError
		if errors.As(err, &se) {
			err = ErrClosed
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	var resp struct {
		Return json.RawMessage `json:"return"`
	}
	if err := json.Unmarshal(raw, &resp); err != nil {
		return nil, fmt.Errorf("qmp %s: bad reply: %w", command, err)
	}
	return resp.Return, nil
}

// Status returns the run state ("running", "paused", "shutdown", ...).
func (m *Monitor) Status(ctx context.Context) (string, error) {
	raw, err := m.Run(ctx, "query-status", nil)
	if err != nil {
		return "", err
	}
	var st struct {
		Status string `json:"status"`
	}
	err = json.Unmarshal(raw, &st)
	return st.Status, err
}

// Close disconnects; it never blocks for longer than the monitor timeout.
func (m *Monitor) Close() error {
	m.abandon()
	return nil
}

// abandon closes the socket without waiting for the library: Disconnect can
// block until its reader goroutine finishes, so it runs in the background.
func (m *Monitor) abandon() {
	m.once.Do(func() {
		close(m.closed)
		go m.mon.Disconnect()
	})
}
