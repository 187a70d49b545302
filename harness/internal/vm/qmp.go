package vm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Monitor is a QMP client with the guarantees a harness needs: every call
// has a deadline, events are always drained (the most recent kept), a
// line over maxLine fails the monitor instead of growing memory, and a
// closed socket fails the pending call at once.
//
// Why our own and not github.com/digitalocean/go-qemu's SocketMonitor:
// its Connect and Run block forever when QEMU stops answering, its reader
// wedges once Events() was called and nobody reads it, and its reader
// hands each reply to Run as a slice of its scanner's buffer and reads on
// into that buffer, so an event arriving behind a reply can overwrite the
// reply while Run parses it (a data race the race detector shows with
// TestQMPHugeReplyAndEvents). QMP is one JSON object a line; the client
// is small.
type Monitor struct {
	conn    net.Conn
	timeout time.Duration

	cmd     sync.Mutex  // one command at a time: QMP replies carry no id here
	replies chan []byte // the reader's non-event lines, copied

	mu      sync.Mutex
	events  []Event // the most recent events, bounded
	readErr error   // why the reader ended, once done is closed

	done   chan struct{} // the reader ended
	closed chan struct{}
	once   sync.Once
}

// Event is a QMP event.
type Event struct {
	Event     string         `json:"event"`
	Data      map[string]any `json:"data"`
	Timestamp struct {
		Seconds      int64 `json:"seconds"`
		Microseconds int64 `json:"microseconds"`
	} `json:"timestamp"`
}

// maxEvents bounds the events kept in memory; older ones are dropped.
const maxEvents = 256

// maxLine bounds one QMP line (a reply or an event): the commands the
// harness sends have replies of a few hundred bytes.
const maxLine = 64 << 10

// ErrTimeout is returned when QEMU does not answer a QMP call in time.
var ErrTimeout = errors.New("qmp: no reply in time")

// ErrClosed is returned when the monitor socket closed before the reply
// came (QEMU exited or dropped the connection mid-command).
var ErrClosed = errors.New("monitor connection closed")

// DialMonitor connects to a QMP unix socket and does the capabilities
// handshake, both bounded by timeout.
func DialMonitor(ctx context.Context, socket string, timeout time.Duration) (*Monitor, error) {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, fmt.Errorf("qmp: connect %s: %w", socket, err)
	}
	m := &Monitor{conn: conn, timeout: timeout, replies: make(chan []byte, 1),
		done: make(chan struct{}), closed: make(chan struct{})}
	go m.read()
	if err := m.call(ctx, "handshake", func() error {
		if _, err := m.reply(); err != nil { // the greeting
			return err
		}
		_, err := m.exchange([]byte(`{"execute":"qmp_capabilities"}` + "\n"))
		return err
	}); err != nil {
		m.abandon()
		return nil, err
	}
	return m, nil
}

// read owns the socket's reading side for the monitor's life: events go
// to the ring, every other line (the greeting, replies) to replies.
func (m *Monitor) read() {
	defer close(m.done)
	r := bufio.NewReaderSize(m.conn, maxLine)
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				err = fmt.Errorf("qmp: a line over %d KiB", maxLine>>10)
			} else if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				err = ErrClosed
			}
			m.mu.Lock()
			m.readErr = err
			m.mu.Unlock()
			return
		}
		var e Event
		if json.Unmarshal(line, &e) != nil {
			continue // not JSON: nothing QEMU sends
		}
		if e.Event != "" {
			m.mu.Lock()
			if len(m.events) == maxEvents {
				copy(m.events, m.events[1:])
				m.events = m.events[:maxEvents-1]
			}
			m.events = append(m.events, e)
			m.mu.Unlock()
			continue
		}
		select {
		case m.replies <- bytes.Clone(line): // ReadSlice's buffer is reused
		case <-m.closed:
			return
		}
	}
}

// reply waits for the next non-event line, or the reader's end.
func (m *Monitor) reply() ([]byte, error) {
	select {
	case b := <-m.replies:
		return b, nil
	case <-m.done:
		m.mu.Lock()
		defer m.mu.Unlock()
		return nil, m.readErr
	case <-m.closed:
		return nil, errors.New("monitor closed")
	}
}

// exchange sends one command line and returns its "return" value, or
// QEMU's error.
func (m *Monitor) exchange(req []byte) (json.RawMessage, error) {
	m.conn.SetWriteDeadline(time.Now().Add(m.timeout))
	if _, err := m.conn.Write(req); err != nil {
		return nil, err
	}
	b, err := m.reply()
	if err != nil {
		return nil, err
	}
	var resp struct {
		Return json.RawMessage `json:"return"`
		Error  *struct {
			Class string `json:"class"`
			Desc  string `json:"desc"`
		} `json:"error"`
	}
	if err := json.Unmarshal(b, &resp); err != nil {
		return nil, fmt.Errorf("bad reply: %w", err)
	}
	if resp.Error != nil {
		return nil, fmt.Errorf("%s: %s", resp.Error.Class, resp.Error.Desc)
	}
	return resp.Return, nil
}

// Events returns a copy of the events seen so far (at most the last 256).
func (m *Monitor) Events() []Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Event(nil), m.events...)
}

// call runs f, one command at a time, with a deadline; on timeout the
// monitor is closed, which makes f return.
func (m *Monitor) call(ctx context.Context, what string, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		m.cmd.Lock()
		defer m.cmd.Unlock()
		done <- f()
	}()
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
	var ret json.RawMessage
	err = m.call(ctx, command, func() error {
		var err error
		ret, err = m.exchange(append(b, '\n'))
		return err
	})
	if err != nil {
		return nil, err // after a timeout f may still be writing ret
	}
	return ret, nil
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

// Close disconnects; it never blocks.
func (m *Monitor) Close() error {
	m.abandon()
	return nil
}

// abandon closes the monitor: pending and later calls fail, the reader
// ends.
func (m *Monitor) abandon() {
	m.once.Do(func() {
		close(m.closed)
		m.conn.Close()
	})
}
