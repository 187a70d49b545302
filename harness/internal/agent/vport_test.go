package agent

import (
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakePort is a portListener over one end of a socket pair, standing in
// for a virtio-serial port (the real one needs a guest: the e2e tests boot
// one); the test decides when the "host" is connected.
func fakePort(t *testing.T) (*portListener, *os.File, *atomic.Bool) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	port := os.NewFile(uintptr(fds[0]), "vport-fake")
	host := os.NewFile(uintptr(fds[1]), "host")
	l, err := newPortListener(port)
	if err != nil {
		t.Fatal(err)
	}
	l.poll = time.Millisecond
	var up atomic.Bool
	l.connected = func() (bool, error) { return up.Load(), nil }
	t.Cleanup(func() { l.Close(); host.Close() })
	return l, host, &up
}

func acceptAsync(l net.Listener) chan net.Conn {
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			close(ch)
			return
		}
		ch <- c
	}()
	return ch
}

// Accept waits for the host; one connection at a time; Close wakes a
// reader stuck in Read and gives the port to the next Accept, which gets
// the bytes sent after it.
func TestPortListenerOneConnectionAtATime(t *testing.T) {
	l, host, up := fakePort(t)
	ch := acceptAsync(l)
	select {
	case <-ch:
		t.Fatal("Accept returned while the host was not connected")
	case <-time.After(30 * time.Millisecond):
	}
	up.Store(true)
	var c1 net.Conn
	select {
	case c1 = <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("Accept did not return once the host connected")
	}
	if c1 == nil {
		t.Fatal("Accept failed")
	}
	ch2 := acceptAsync(l)
	select {
	case <-ch2:
		t.Fatal("a second connection while the first is open")
	case <-time.After(30 * time.Millisecond):
	}

	readErr := make(chan error, 1)
	go func() {
		_, err := c1.Read(make([]byte, 8))
		readErr <- err
	}()
	time.Sleep(20 * time.Millisecond) // the reader is in Read
	c1.Close()
	select {
	case err := <-readErr:
		if err == nil {
			t.Error("Read after Close returned data")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake the reader")
	}
	var c2 net.Conn
	select {
	case c2 = <-ch2:
	case <-time.After(5 * time.Second):
		t.Fatal("the port was not handed to the next Accept")
	}
	if _, err := host.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	_ = c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c2.Read(buf)
	if err != nil || string(buf[:n]) != "hello" {
		t.Errorf("second connection read %q, %v", buf[:n], err)
	}
	if _, err := c1.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("write on a closed connection: %v", err)
	}
	c2.Close()
}

// The host going away ends the connection with io.EOF (the port's read
// returns 0, as a socket's does here).
func TestPortConnEOFWhenHostLeaves(t *testing.T) {
	l, host, up := fakePort(t)
	up.Store(true)
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	host.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 8)); !errors.Is(err, io.EOF) {
		t.Errorf("Read after the host left: %v, want io.EOF", err)
	}
}

// Close ends a waiting Accept.
func TestPortListenerClose(t *testing.T) {
	l, _, _ := fakePort(t)
	ch := acceptAsync(l)
	time.Sleep(10 * time.Millisecond)
	l.Close()
	select {
	case c, ok := <-ch:
		if ok {
			t.Errorf("Accept after Close returned %v", c)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept did not end with Close")
	}
}

func TestPortName(t *testing.T) {
	if got := portName("vport:org.oomlab.agent"); got != "org.oomlab.agent" {
		t.Errorf("portName = %q", got)
	}
	if got := portName(":22"); got != "" {
		t.Errorf("portName(:22) = %q", got)
	}
}

// Close also wakes a writer stuck on a host that stopped reading, and the
// port goes to the next Accept only once that writer has left.
func TestPortConnCloseWakesWriter(t *testing.T) {
	l, _, up := fakePort(t)
	up.Store(true)
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	wrote := make(chan error, 1)
	go func() {
		_, err := c.Write(make([]byte, 16<<20)) // far more than the socket buffer
		wrote <- err
	}()
	select {
	case err := <-wrote:
		t.Fatalf("a 16 MB write to a host that reads nothing returned: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	c.Close()
	select {
	case err := <-wrote:
		if err == nil {
			t.Error("the stuck write succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake the writer")
	}
	next := acceptAsync(l)
	select {
	case c2 := <-next:
		if c2 == nil {
			t.Fatal("Accept failed")
		}
		c2.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("the port was not handed to the next Accept")
	}
}
