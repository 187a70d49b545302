package agent

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"oomlab/harness/internal/protocol"
)

// The agent's SSH server can listen on a virtio-serial port instead of a
// TCP socket (protocol.Config.ListenAddr "vport:<name>"). The host end is a
// UNIX socket QEMU serves: no network stack in the guest, no port to
// forward, and no user-net SYN that QEMU's slirp retransmits only after
// 3 s when the guest was not listening yet (which made every boot take
// 3.2 s). A port is one byte stream at a time, so the listener below
// hands out one connection per host connection.

// vportClass is where the kernel lists the ports with their names
// (drivers/char/virtio_console.c, show_port_name); the devices are
// /dev/vportNpM (devtmpfs), without udev's /dev/virtio-ports links.
const vportClass = "/sys/class/virtio-ports"

// findPort returns the device of the port called name.
func findPort(name string) (string, error) {
	dirs, _ := filepath.Glob(filepath.Join(vportClass, "*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "name"))
		if err == nil && strings.TrimSpace(string(b)) == name {
			return "/dev/" + filepath.Base(d), nil
		}
	}
	return "", fmt.Errorf("no virtio-serial port named %q under %s (%d ports): %w", name, vportClass, len(dirs), os.ErrNotExist)
}

// waitForPort returns the device of the port called name, waiting up to
// wait for the driver to have probed it (virtio-mmio devices may probe
// after init starts).
func waitForPort(name string, wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	for {
		dev, err := findPort(name)
		if err == nil || time.Now().After(deadline) {
			return dev, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// openPort opens the port called name for a server of its own (the Go
// poller makes it non-blocking), waiting for it as waitForPort does.
func openPort(name string, wait time.Duration) (*os.File, error) {
	dev, err := waitForPort(name, wait)
	if err != nil {
		return nil, err
	}
	return os.OpenFile(dev, os.O_RDWR, 0)
}

// isCharDevice says whether f is a character device (a port passed as
// the listening fd) rather than a socket.
func isCharDevice(f *os.File) bool {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return st.Mode&unix.S_IFMT == unix.S_IFCHR
}

// portListener is a net.Listener over one virtio-serial port. Accept
// returns a connection once the host end is connected and no other
// connection is open; a connection ends (Read returns io.EOF) when the host
// disconnects, and the next Accept waits for the host to come back.
type portListener struct {
	f      *os.File
	rc     syscall.RawConn
	free   chan struct{} // holds a token while no connection is open
	closed chan struct{}
	once   sync.Once
	// poll is how long Accept sleeps between looks at the host side:
	// the port reports EPOLLHUP all the time the host is away, so
	// waiting in poll(2) for it to clear would spin.
	poll time.Duration
	// connected is hostConnected; tests replace it.
	connected func() (bool, error)
}

// newPortListener serves on the port open as f. f must be non-blocking,
// so that deadlines work and Close can wake a reader: the Go poller
// handles the port like a tty.
func newPortListener(f *os.File) (*portListener, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	l := &portListener{f: f, rc: rc, free: make(chan struct{}, 1), closed: make(chan struct{}), poll: 20 * time.Millisecond}
	l.connected = l.hostConnected
	l.free <- struct{}{}
	return l, nil
}

// hostConnected reads the port's state: EPOLLHUP while nothing is
// connected to the host end (port_fops_poll).
func (l *portListener) hostConnected() (bool, error) {
	var connected bool
	var perr error
	err := l.rc.Control(func(fd uintptr) {
		p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if _, perr = unix.Poll(p, 0); perr == nil {
			connected = p[0].Revents&unix.POLLHUP == 0
		}
	})
	if err == nil && perr != nil && !errors.Is(perr, unix.EINTR) {
		err = perr
	}
	return connected, err
}

func (l *portListener) Accept() (net.Conn, error) {
	select {
	case <-l.free:
	case <-l.closed:
		return nil, net.ErrClosed
	}
	for {
		ok, err := l.connected()
		if err != nil {
			l.free <- struct{}{}
			return nil, err
		}
		if ok {
			break
		}
		select {
		case <-l.closed:
			l.free <- struct{}{}
			return nil, net.ErrClosed
		case <-time.After(l.poll):
		}
	}
	_ = l.f.SetDeadline(time.Time{})
	return &portConn{l: l}, nil
}

func (l *portListener) Close() error {
	l.once.Do(func() { close(l.closed); l.f.Close() })
	return nil
}

func (l *portListener) Addr() net.Addr { return portAddr(l.f.Name()) }

// portConn is one host connection on the port. Close does not close the
// port: it wakes a Read or Write still waiting (the SSH reader goroutine,
// a writer facing a host that left), waits for them to leave so that they
// cannot take or send the next connection's bytes, and hands the port back
// to Accept.
type portConn struct {
	l      *portListener
	mu     sync.Mutex
	closed bool
	// inflight are the Reads and Writes under way, which Close waits for.
	inflight sync.WaitGroup
}

// enter counts a Read or Write in, unless the connection is closed.
func (c *portConn) enter() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.inflight.Add(1)
	return true
}

func (c *portConn) Read(b []byte) (int, error) {
	if !c.enter() {
		return 0, net.ErrClosed
	}
	defer c.inflight.Done()
	n, err := c.l.f.Read(b)
	if errors.Is(err, io.EOF) {
		return n, io.EOF // the host end went away
	}
	return n, err
}

func (c *portConn) Write(b []byte) (int, error) {
	if !c.enter() {
		return 0, net.ErrClosed
	}
	defer c.inflight.Done()
	return c.l.f.Write(b)
}

func (c *portConn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	// A writer can wait too: with the host gone the port never becomes
	// writable, and its bytes must not reach the next host connection.
	_ = c.l.f.SetDeadline(time.Unix(1, 0))
	c.inflight.Wait()
	c.l.free <- struct{}{}
	return nil
}

func (c *portConn) LocalAddr() net.Addr  { return portAddr(c.l.f.Name()) }
func (c *portConn) RemoteAddr() net.Addr { return portAddr("host") }

func (c *portConn) SetDeadline(t time.Time) error {
	if c.isClosed() {
		return net.ErrClosed
	}
	return c.l.f.SetDeadline(t)
}

func (c *portConn) SetReadDeadline(t time.Time) error {
	if c.isClosed() {
		return net.ErrClosed
	}
	return c.l.f.SetReadDeadline(t)
}

func (c *portConn) SetWriteDeadline(t time.Time) error {
	if c.isClosed() {
		return net.ErrClosed
	}
	return c.l.f.SetWriteDeadline(t)
}

func (c *portConn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

type portAddr string

func (a portAddr) Network() string { return "vport" }
func (a portAddr) String() string  { return string(a) }

// portName is the port name in a "vport:<name>" listen address, "" for
// any other address.
func portName(addr string) string {
	name, ok := strings.CutPrefix(addr, protocol.VportPrefix)
	if !ok {
		return ""
	}
	return name
}
