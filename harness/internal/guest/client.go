package guest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"oomlab/harness/internal/protocol"
)

// Sample is one metrics sample, as protocol defines it.
type Sample = protocol.Sample

// ErrHostKeyMismatch is returned by Dial when the server presents a host key
// other than Keys.HostPublic. Dial does not retry on it.
var ErrHostKeyMismatch = errors.New("guest: host key mismatch")

// ErrAuth is returned by Dial when the agent rejects the client key. Dial
// does not retry on it.
var ErrAuth = errors.New("guest: authentication rejected")

// Client is an SSH connection to the guest agent. It is safe for
// concurrent use; every command runs in its own session.
type Client struct {
	conn *ssh.Client
	addr string
}

// Dial connects to the agent at addr, retrying with backoff until it
// succeeds or ctx is done. addr is host:port (TCP), or the path of the
// UNIX socket behind which QEMU serves the guest's virtio-serial port
// (vm.VM.AgentSock).
//
// Over TCP, retrying is essential: QEMU user networking accepts the
// forwarded port before the guest listens and then closes or stalls the
// connection. ssh.ClientConfig.Timeout covers only the TCP connect, so each
// attempt's handshake is bounded by handshakeTimeout via a deadline on the
// net.Conn (cleared once the handshake is done). Over a port the first
// connect is the one: the bytes wait in the port until the agent opens
// it, so the handshake is bounded by ctx alone, and only a connect that
// fails (the socket not there yet) or a stream that ends is retried. A host
// key mismatch or rejected client key ends the retries at once.
func Dial(ctx context.Context, addr string, keys *Keys, handshakeTimeout time.Duration) (*Client, error) {
	if handshakeTimeout <= 0 {
		handshakeTimeout = 10 * time.Second
	}
	network := "tcp"
	if isUnix(addr) {
		network, handshakeTimeout = "unix", 0
	}
	backoff := 50 * time.Millisecond
	var lastErr error
	for {
		c, err := dialOnce(ctx, network, addr, keys, handshakeTimeout)
		if err == nil {
			return c, nil
		}
		if errors.Is(err, ErrHostKeyMismatch) || errors.Is(err, ErrAuth) {
			return nil, err
		}
		lastErr = err
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("guest: dial %s: %w (last error: %v)", addr, ctx.Err(), lastErr)
		case <-t.C:
		}
		backoff = min(2*backoff, time.Second)
	}
}

// isUnix says whether addr is a UNIX socket path rather than host:port.
func isUnix(addr string) bool { return strings.HasPrefix(addr, "/") }

// dialOnce is one attempt; handshakeTimeout 0 bounds the handshake by ctx
// alone.
func dialOnce(ctx context.Context, network, addr string, keys *Keys, handshakeTimeout time.Duration) (*Client, error) {
	d := net.Dialer{Timeout: handshakeTimeout}
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	var deadline time.Time // none: ctx alone (stop below)
	if handshakeTimeout > 0 {
		deadline = time.Now().Add(handshakeTimeout)
	}
	if dl, ok := ctx.Deadline(); ok && (deadline.IsZero() || dl.Before(deadline)) {
		deadline = dl
	}
	_ = conn.SetDeadline(deadline)
	// Abort a handshake in progress when ctx is cancelled.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })

	hostKeyMismatch := false
	cfg := &ssh.ClientConfig{
		User: "root",
		Auth: []ssh.AuthMethod{ssh.PublicKeys(keys.Client)},
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			if !bytes.Equal(key.Marshal(), keys.HostPublic.Marshal()) {
				hostKeyMismatch = true
				return ErrHostKeyMismatch
			}
			return nil
		},
		HostKeyAlgorithms: []string{keys.HostPublic.Type()},
	}
	sc, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	stopped := stop()
	if err != nil {
		conn.Close()
		switch {
		case hostKeyMismatch:
			return nil, fmt.Errorf("guest: dial %s: %w (got a different key)", addr, ErrHostKeyMismatch)
		case strings.Contains(err.Error(), "unable to authenticate"):
			return nil, fmt.Errorf("guest: dial %s: %w: %v", addr, ErrAuth, err)
		}
		return nil, err
	}
	if !stopped {
		// ctx was cancelled right at the end of the handshake.
		sc.Close()
		return nil, ctx.Err()
	}
	_ = conn.SetDeadline(time.Time{})
	return &Client{conn: ssh.NewClient(sc, chans, reqs), addr: addr}, nil
}

// Close closes the connection; the agent kills everything still running
// in its sessions.
func (c *Client) Close() error { return c.conn.Close() }

// SSH exposes the underlying SSH client (for port forwarding, raw
// sessions, ...).
func (c *Client) SSH() *ssh.Client { return c.conn }

// Result is how a remote command ended.
type Result struct {
	ExitCode int    // exit status; 128+signal number when killed by a signal
	Signal   string // "" or the signal name without "SIG", e.g. "KILL" (OOM kill), "SEGV"
}

// Killed reports whether the command died from SIGKILL (e.g. the OOM
// killer).
func (r *Result) Killed() bool { return r != nil && r.Signal == "KILL" }

func (r *Result) String() string {
	if r.Signal != "" {
		return "signal " + r.Signal
	}
	return fmt.Sprintf("exit status %d", r.ExitCode)
}

// Process is a command started with Start.
type Process struct {
	sess    *ssh.Session
	ctx     context.Context
	done    chan struct{}
	gone    chan struct{} // closed when the agent never confirmed the end after ctx was done
	res     *Result
	err     error
	ctxErr  error // ctx's error if it was done when the command ended
	stopCtx func() bool
}

// endGrace is how long a cancelled command gets, first to report its
// exit signal, then for the agent to confirm the closed session.
const endGrace = time.Second

// Start runs cmd (agent command syntax, see package protocol) in the
// background. stdout/stderr may be nil to discard; they are written from
// other goroutines. When ctx is cancelled the remote process group is sent
// SIGKILL and the session is closed.
//
// Every step is bounded by ctx, whatever the guest does: opening the
// session and starting the command wait for the agent's replies, which a
// hung guest never sends (x/crypto/ssh has no deadline of its own there),
// so they run in a goroutine that is left behind on ctx's end (it closes
// what it gets later; closing the Client ends it for good).
func (c *Client) Start(ctx context.Context, cmd string, stdout, stderr io.Writer) (*Process, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("guest: start %q: %w", cmd, err)
	}
	type started struct {
		sess *ssh.Session
		err  error
	}
	ch := make(chan started, 1)
	go func() {
		sess, err := c.conn.NewSession()
		if err != nil {
			ch <- started{err: fmt.Errorf("guest: new session: %w", err)}
			return
		}
		sess.Stdout, sess.Stderr = stdout, stderr
		if err := sess.Start(cmd); err != nil {
			sess.Close()
			ch <- started{err: fmt.Errorf("guest: start %q: %w", cmd, err)}
			return
		}
		ch <- started{sess: sess}
	}()
	var sess *ssh.Session
	select {
	case st := <-ch:
		if st.err != nil {
			return nil, st.err
		}
		sess = st.sess
	case <-ctx.Done():
		go func() {
			if st := <-ch; st.sess != nil {
				st.sess.Close()
			}
		}()
		return nil, fmt.Errorf("guest: start %q: the agent did not answer: %w", cmd, ctx.Err())
	}
	p := &Process{sess: sess, ctx: ctx, done: make(chan struct{}), gone: make(chan struct{})}
	go p.wait()
	p.stopCtx = context.AfterFunc(ctx, func() {
		_ = sess.Signal(ssh.SIGKILL)
		// Give the agent a moment to report exit-signal, then drop the
		// session (which also makes the agent kill the group).
		select {
		case <-p.done:
			return
		case <-time.After(endGrace):
		}
		sess.Close()
		// A hung guest never confirms the close: give up on it.
		select {
		case <-p.done:
		case <-time.After(endGrace):
			close(p.gone)
		}
	})
	return p, nil
}

func (p *Process) wait() {
	defer close(p.done)
	err := p.sess.Wait()
	var ee *ssh.ExitError
	switch {
	case err == nil:
		p.res = &Result{}
	case errors.As(err, &ee):
		p.res = &Result{ExitCode: ee.ExitStatus(), Signal: ee.Signal()}
		// x/crypto/ssh only knows the RFC 4254 signal numbers (USR1 -> 128).
		if n, ok := protocol.ParseSignal(ee.Signal()); ok && ee.Signal() != "" {
			p.res.ExitCode = 128 + int(n)
		}
	default:
		p.err = err
	}
	p.ctxErr = p.ctx.Err()
	p.sess.Close()
}

// Wait waits for the command to end. If the Process' context was cancelled
// the error is the context's error; the Result is still returned when the
// agent reported one (normally Signal "KILL").
//
// Wait returns at the latest 2 s after ctx's end (endGrace twice): when
// the agent never confirmed the end, the error is the context's.
func (p *Process) Wait() (*Result, error) {
	select {
	case <-p.done:
	case <-p.gone:
		return nil, fmt.Errorf("guest: the agent never confirmed the end of the command: %w", p.ctx.Err())
	}
	p.stopCtx()
	if p.ctxErr != nil {
		return p.res, p.ctxErr
	}
	if p.err != nil {
		return nil, fmt.Errorf("guest: %w", p.err)
	}
	return p.res, nil
}

// Signal sends sig to the command's process group.
func (p *Process) Signal(sig ssh.Signal) error { return p.sess.Signal(sig) }

// Close closes the session; the agent SIGKILLs the command's process group
// if it is still running.
func (p *Process) Close() error { return p.sess.Close() }

// Run runs cmd and waits for it. See Start for ctx handling.
func (c *Client) Run(ctx context.Context, cmd string, stdout, stderr io.Writer) (*Result, error) {
	p, err := c.Start(ctx, cmd, stdout, stderr)
	if err != nil {
		return nil, err
	}
	return p.Wait()
}

// CommandError is returned by Output when the command did not exit 0.
type CommandError struct {
	Cmd    string
	Result Result
	Stderr string
}

func (e *CommandError) Error() string {
	msg := fmt.Sprintf("guest: %q: %s", e.Cmd, e.Result.String())
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += ": " + s
	}
	return msg
}

// Output runs cmd and returns its stdout. A non-zero exit or a signal is a
// *CommandError that includes stderr.
func (c *Client) Output(ctx context.Context, cmd string) ([]byte, error) {
	var stdout, stderr syncBuffer
	res, err := c.Run(ctx, cmd, &stdout, &stderr)
	if err != nil {
		return stdout.Bytes(), err
	}
	if res.ExitCode != 0 || res.Signal != "" {
		return stdout.Bytes(), &CommandError{Cmd: cmd, Result: *res, Stderr: stderr.String()}
	}
	return stdout.Bytes(), nil
}

// Ping checks that the agent still runs commands: it runs `true` with the
// given timeout.
func (c *Client) Ping(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := c.Output(ctx, protocol.CmdTrue)
	return err
}

// Job is a command started in the background as a caller sees it that
// only waits for its end or ends it: *Process is one. It is what
// StartSpawn returns, so that a stand-in for the agent (the scenario
// runner's fakes) can start its own.
type Job interface {
	// Wait waits for the command to end (see Process.Wait).
	Wait() (*Result, error)
	// Close ends the command if it still runs (see Process.Close).
	Close() error
}

var _ Job = (*Process)(nil)

// StartSpawn starts cmdline (agent command syntax) with the process
// attributes of s (scheduling policy, CPUs, cgroup, oom_score_adj), like
// Start. s should have passed s.Validate(); the agent refuses it otherwise
// (exit status 2).
func (c *Client) StartSpawn(ctx context.Context, s protocol.Spawn, cmdline string, stdout, stderr io.Writer) (Job, error) {
	p, err := c.Start(ctx, s.Command(cmdline), stdout, stderr)
	if err != nil {
		return nil, err // not a Job holding a nil *Process
	}
	return p, nil
}

// Kmsg writes text as one line into the guest's kernel log, where it gets
// the printk timestamp of the kernel's own lines.
func (c *Client) Kmsg(ctx context.Context, text string) error {
	_, err := c.Output(ctx, protocol.KmsgCommand(text))
	return err
}

// Procs lists the guest's processes (kernel threads included).
func (c *Client) Procs(ctx context.Context) ([]protocol.ProcInfo, error) {
	out, err := c.Output(ctx, protocol.CmdPs)
	if err != nil {
		return nil, err
	}
	var procs []protocol.ProcInfo
	if err := json.Unmarshal(out, &procs); err != nil {
		return nil, fmt.Errorf("guest: ps: %w", err)
	}
	return procs, nil
}

// Census counts the guest's user-space processes by name (comm; zombies
// included, kernel threads left out).
func (c *Client) Census(ctx context.Context) (map[string]int, error) {
	procs, err := c.Procs(ctx)
	if err != nil {
		return nil, err
	}
	m := map[string]int{}
	for _, p := range procs {
		if !p.KernelThread() {
			m[p.Comm]++
		}
	}
	return m, nil
}

// Poweroff asks the agent to power the guest off. It returns once the
// agent has acknowledged; the guest goes down about 100 ms later (the
// caller waits for the VM to exit).
func (c *Client) Poweroff(ctx context.Context) error {
	_, err := c.Output(ctx, protocol.CmdPoweroff)
	return err
}

// Metrics runs the agent's `metrics` builtin and calls fn for every sample
// (in the calling goroutine; a slow fn back-pressures the guest) until ctx
// is done, which is the normal way to stop and returns nil. Any other end
// of the stream is an error.
func (c *Client) Metrics(ctx context.Context, interval time.Duration, fn func(Sample)) error {
	ms := max(interval.Milliseconds(), 10)
	pr, pw := io.Pipe()
	var stderr syncBuffer
	p, err := c.Start(ctx, protocol.MetricsCommand(ms), pw, &stderr)
	if err != nil {
		return err
	}
	waitErr := make(chan error, 1)
	go func() {
		res, err := p.Wait()
		if err == nil && (res.ExitCode != 0 || res.Signal != "") {
			err = &CommandError{Cmd: protocol.CmdMetrics, Result: *res, Stderr: stderr.String()}
		}
		pw.Close()
		waitErr <- err
	}()
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	var decodeErr error
	for sc.Scan() {
		var s Sample
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			decodeErr = fmt.Errorf("guest: metrics: bad sample %q: %w", sc.Text(), err)
			p.Close()
			break
		}
		fn(s)
	}
	// Unblock the session's stdout copier if we stopped reading early.
	pr.CloseWithError(io.ErrClosedPipe)
	err = <-waitErr
	switch {
	case ctx.Err() != nil:
		return nil
	case decodeErr != nil:
		return decodeErr
	case err != nil:
		return err
	}
	return errors.New("guest: metrics stream ended")
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of the SSH
// session's stdout and stderr copiers and readers in other goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.b.Bytes())
}

func (b *syncBuffer) String() string { return string(b.Bytes()) }
