package vm

import (
	"bufio"
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeQMP is a QMP server for fault injection only: it speaks just enough of
// the protocol to reach the behaviour under test.
func fakeQMP(t *testing.T, serve func(c net.Conn, r *bufio.Reader)) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "qmp.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c, bufio.NewReader(c))
			}()
		}
	}()
	return sock
}

const banner = `{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": []}}` + "\n"

func handshake(c net.Conn, r *bufio.Reader) bool {
	c.Write([]byte(banner))
	if _, err := r.ReadString('\n'); err != nil {
		return false
	}
	c.Write([]byte(`{"return": {}}` + "\n"))
	return true
}

func within(t *testing.T, d time.Duration, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { f(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("did not return within %s", d)
	}
}

func TestQMPSilentServer(t *testing.T) {
	sock := fakeQMP(t, func(c net.Conn, r *bufio.Reader) { time.Sleep(time.Hour) })
	within(t, 3*time.Second, func() {
		_, err := DialMonitor(context.Background(), sock, 300*time.Millisecond)
		if !errors.Is(err, ErrTimeout) {
			t.Errorf("got %v, want ErrTimeout", err)
		}
	})
}

func TestQMPCommandNeverAnswered(t *testing.T) {
	sock := fakeQMP(t, func(c net.Conn, r *bufio.Reader) {
		if handshake(c, r) {
			time.Sleep(time.Hour)
		}
	})
	m, err := DialMonitor(context.Background(), sock, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	within(t, 3*time.Second, func() {
		if _, err := m.Status(context.Background()); !errors.Is(err, ErrTimeout) {
			t.Errorf("got %v, want ErrTimeout", err)
		}
		// after a timeout the monitor is closed: later calls fail fast
		if _, err := m.Run(context.Background(), "quit", nil); err == nil {
			t.Error("call on an abandoned monitor succeeded")
		}
		m.Close()
	})
}

// TestQMPHugeReplyAndEvents: a flood of events nobody asked for must not
// wedge the monitor, and a reply over 64 KiB must fail, not hang.
func TestQMPHugeReplyAndEvents(t *testing.T) {
	sock := fakeQMP(t, func(c net.Conn, r *bufio.Reader) {
		if !handshake(c, r) {
			return
		}
		for i := 0; i < 1000; i++ {
			c.Write([]byte(`{"event": "RTC_CHANGE", "data": {"offset": 1}, "timestamp": {"seconds": 1, "microseconds": 2}}` + "\n"))
		}
		r.ReadString('\n')
		c.Write([]byte(`{"return": {"status": "running", "running": true}}` + "\n"))
		r.ReadString('\n')
		c.Write([]byte(`{"return": "` + strings.Repeat("x", 100<<10) + `"}` + "\n"))
		time.Sleep(time.Hour)
	})
	m, err := DialMonitor(context.Background(), sock, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	within(t, 5*time.Second, func() {
		st, err := m.Status(context.Background())
		if err != nil || st != "running" {
			t.Errorf("status = %q, %v", st, err)
		}
		if _, err := m.Run(context.Background(), "query-qmp-schema", nil); err == nil {
			t.Error("a 100 KiB reply succeeded; the library cannot read it, we must see an error")
		}
	})
	if n := len(m.Events()); n == 0 || n > maxEvents {
		t.Errorf("kept %d events, want 1..%d", n, maxEvents)
	}
}

// TestQMPClosedMidCommand: QEMU dies (or drops the monitor) after reading a
// command and before answering it. The call must fail at once with an
// error naming the command, not wait for its timeout, and so must every
// later call on that monitor; Close must still return.
func TestQMPClosedMidCommand(t *testing.T) {
	sock := fakeQMP(t, func(c net.Conn, r *bufio.Reader) {
		if handshake(c, r) {
			r.ReadString('\n') // the command, never answered
		}
		// serve returns: the connection is closed
	})
	// A timeout far above the bound below: an error within the bound
	// can only come from seeing the close.
	m, err := DialMonitor(context.Background(), sock, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	within(t, 10*time.Second, func() {
		_, err := m.Status(context.Background())
		if !errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), "query-status") {
			t.Errorf("got %v, want ErrClosed naming query-status", err)
		}
		t.Logf("the error: %v", err)
		if _, err := m.Run(context.Background(), "quit", nil); err == nil {
			t.Error("a call after the close succeeded")
		}
		m.Close()
	})
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		c    Config
		want string
	}{
		{Config{QEMU: "/nonexistent/qemu"}, "apt-get install qemu-system-x86"},
		{Config{QEMU: "true", Kernel: "/nonexistent/bzImage"}, "kernel image"},
		{Config{QEMU: "true", Kernel: "/dev/null", Initrd: "/dev/null", CPUs: 0, MemoryMB: 256}, "cpus 0"},
		{Config{QEMU: "true", Kernel: "/dev/null", Initrd: "/dev/null", CPUs: 2, MemoryMB: 1}, "memory 1 MB"},
		{Config{QEMU: "true", Kernel: "/dev/null", Initrd: "/dev/null", CPUs: 2, MemoryMB: 256, Accel: "xen"}, `accel "xen"`},
	}
	for _, c := range cases {
		_, err := Start(context.Background(), c.c)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Start(%+v) = %v, want error containing %q", c.c, err, c.want)
		}
	}
}

// A socket that is bound but not yet listening (QEMU between bind() and
// listen()) refuses the connection; Start retries exactly that error.
func TestDialMonitorRefusedIsRecognisable(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "qmp.sock")
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: sock}); err != nil {
		t.Fatal(err)
	}
	_, err = DialMonitor(context.Background(), sock, 300*time.Millisecond)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("DialMonitor on a bound, not listening socket: %v; want ECONNREFUSED", err)
	}
}
