package agent

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSuperviseAndReap runs PID 1's main loop for real: the test binary is
// re-executed as PID 1 of a new PID namespace. Its "server" is a shell that
// leaves an orphan behind and exits; the loop must restart it every time and
// reap the orphans (which the kernel reparents to PID 1).
func TestSuperviseAndReap(t *testing.T) {
	if os.Getenv("OOMLAB_REAPER_CHILD") == "1" {
		reaperChild(t)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for a PID namespace")
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestSuperviseAndReap$")
	cmd.Env = append(os.Environ(), "OOMLAB_REAPER_CHILD=1", "OOMLAB_SH="+sh, "OOMLAB_TMP="+t.TempDir())
	cmd.SysProcAttr = &unix.SysProcAttr{Cloneflags: unix.CLONE_NEWPID}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		if strings.Contains(err.Error(), "operation not permitted") {
			t.Skipf("cannot create PID namespace: %v", err)
		}
		t.Fatal(err)
	}
	// Killing the namespace's init kills every process in it.
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	starts := 0
	timeout := time.After(20 * time.Second)
	for starts < 4 {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("child exited after %d starts; stderr:\n%s", starts, stderr.String())
			}
			if strings.HasPrefix(l, "start ") {
				starts++
			}
		case <-timeout:
			t.Fatalf("only %d server starts; stderr:\n%s", starts, stderr.String())
		}
	}
	// All orphans (sleep 0.05) are long done: none may be left as a zombie
	// of our PID 1.
	deadline := time.Now().Add(3 * time.Second)
	for {
		z := zombiesOf(cmd.Process.Pid)
		if len(z) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("unreaped zombies of PID 1: %v", z)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(stderr.String(), "server exited (status 0), restarting") {
		t.Errorf("no restart log; stderr:\n%s", stderr.String())
	}
}

func zombiesOf(ppid int) []int {
	var z []int
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[0] == "Z" && f[1] == strconv.Itoa(ppid) {
			pid, _ := strconv.Atoi(strings.Fields(s)[0])
			z = append(z, pid)
		}
	}
	return z
}

func reaperChild(t *testing.T) {
	if os.Getpid() != 1 {
		t.Fatalf("not PID 1 (%d)", os.Getpid())
	}
	kmsgPath = filepath.Join(os.Getenv("OOMLAB_TMP"), "kmsg") // keep the host's log clean
	sh := os.Getenv("OOMLAB_SH")
	n := 0
	superviseAndReap(func() (int, error) {
		n++
		fmt.Printf("start %d\n", n)
		// The subshell exits at once, orphaning its sleep.
		p, err := os.StartProcess(sh, []string{"sh", "-c", "(sleep 0.05 &); sleep 0.3"},
			&os.ProcAttr{Files: []*os.File{nil, os.Stderr, os.Stderr}})
		if err != nil {
			return 0, err
		}
		pid := p.Pid
		_ = p.Release()
		return pid, nil
	})
}

// lockedBuffer collects a child's stderr while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
