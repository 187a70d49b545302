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
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"oomlab/harness/internal/agent"
	"oomlab/harness/internal/protocol"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// run runs cmd and returns result, stdout, stderr.
func run(t *testing.T, c *Client, cmd string) (*Result, string, string) {
	t.Helper()
	var out, errb syncBuffer
	res, err := c.Run(ctxT(t, 20*time.Second), cmd, &out, &errb)
	if err != nil {
		t.Fatalf("Run(%q): %v (stderr %q)", cmd, err, errb.String())
	}
	return res, out.String(), errb.String()
}

func needBinary(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not available on this host", name)
	}
	return p
}

// statField returns field n (1-based, as in proc(5)) of a /proc/PID/stat line.
func statField(t *testing.T, stat string, n int) string {
	t.Helper()
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		t.Fatalf("bad stat line %q", stat)
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < n-2 {
		t.Fatalf("short stat line %q", stat)
	}
	return f[n-3]
}

func TestBuiltins(t *testing.T) {
	ta := startAgent(t, nil)
	c := ta.client

	if res, out, _ := run(t, c, `echo hello "big world"`); res.ExitCode != 0 || out != "hello big world\n" {
		t.Errorf("echo: %v %q", res, out)
	}
	if res, _, _ := run(t, c, "true"); res.ExitCode != 0 || res.Signal != "" {
		t.Errorf("true: %v", res)
	}
	if res, _, _ := run(t, c, "false"); res.ExitCode != 1 {
		t.Errorf("false: %v", res)
	}
	if res, out, _ := run(t, c, "sysctl kernel.ostype"); res.ExitCode != 0 || out != "kernel.ostype = Linux\n" {
		t.Errorf("sysctl: %v %q", res, out)
	}

	dir := t.TempDir()
	if res, _, e := run(t, c, "mkdir -p "+protocol.QuoteWord(dir+"/x y/z")); res.ExitCode != 0 {
		t.Fatalf("mkdir: %v %s", res, e)
	}
	f := filepath.Join(dir, "x y", "z", "f")
	if res, _, e := run(t, c, protocol.JoinWords("write", f, "3")); res.ExitCode != 0 {
		t.Fatalf("write: %v %s", res, e)
	}
	if res, out, _ := run(t, c, protocol.JoinWords("cat", f)); res.ExitCode != 0 || out != "3\n" {
		t.Errorf("cat: %v %q", res, out)
	}
	if res, _, e := run(t, c, "cat /nonexistent"); res.ExitCode != 1 || !strings.Contains(e, "/nonexistent") {
		t.Errorf("cat missing: %v %q", res, e)
	}

	_, out, _ := run(t, c, "uptime")
	var up protocol.Uptime
	if err := json.Unmarshal([]byte(out), &up); err != nil || up.UptimeS <= 0 || up.MonoS <= 0 {
		t.Errorf("uptime %q: %v %+v", out, err, up)
	}

	_, out, _ = run(t, c, "ps")
	var procs []protocol.ProcInfo
	if err := json.Unmarshal([]byte(out), &procs); err != nil {
		t.Fatalf("ps output: %v", err)
	}
	found := false
	for _, p := range procs {
		if p.PID == os.Getpid() {
			found = true
			if p.Threads < 1 || p.RSSKB <= 0 {
				t.Errorf("ps self: %+v", p)
			}
		}
	}
	if !found {
		t.Errorf("ps lacks pid %d", os.Getpid())
	}

	// Argument errors.
	if res, _, e := run(t, c, `echo "unterminated`); res.ExitCode != 2 || e == "" {
		t.Errorf("bad quoting: %v %q", res, e)
	}
	if res, _, e := run(t, c, "run --policy bogus -- true"); res.ExitCode != 2 || !strings.Contains(e, "bogus") {
		t.Errorf("bad run option: %v %q", res, e)
	}
	if res, _, _ := run(t, c, "run -- poweroff"); res.ExitCode != 2 {
		t.Errorf("run -- poweroff: %v", res)
	}
}

func TestExternalCommands(t *testing.T) {
	sh := needBinary(t, "sh")
	ta := startAgent(t, nil)
	c := ta.client

	if res, _, _ := run(t, c, needBinary(t, "true")); res.ExitCode != 0 {
		t.Errorf("true: %v", res)
	}
	if res, _, _ := run(t, c, "sh -c 'exit 3'"); res.ExitCode != 3 || res.Signal != "" {
		t.Errorf("exit 3: %v", res)
	}
	res, _, _ := run(t, c, sh+" -c 'kill -9 $$'")
	if res.Signal != "KILL" || res.ExitCode != 137 || !res.Killed() {
		t.Errorf("kill -9: %+v", res)
	}
	res, out, errOut := run(t, c, `sh -c 'echo out; echo err >&2; echo "$0 $1" ' "a b" 'c'`)
	if res.ExitCode != 0 || out != "out\na b c\n" || errOut != "err\n" {
		t.Errorf("stdio: %v out=%q err=%q", res, out, errOut)
	}

	// Unknown commands: 127 and one line on stderr, no process spawned.
	for _, cmd := range []string{"no-such-command-xyz --flag", "/nonexistent/bin/x", "run --nice 1 -- no-such-command-xyz"} {
		res, out, errOut := run(t, c, cmd)
		if res.ExitCode != 127 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "not found") {
			t.Errorf("%q: %v out=%q err=%q", cmd, res, out, errOut)
		}
	}

	// Output() includes stderr in its error.
	_, err := c.Output(ctxT(t, 10*time.Second), `sh -c 'echo boom >&2; exit 4'`)
	var ce *CommandError
	if !errors.As(err, &ce) || ce.Result.ExitCode != 4 || !strings.Contains(err.Error(), "boom") {
		t.Errorf("Output error = %v", err)
	}
	if out, err := c.Output(ctxT(t, 10*time.Second), "echo ok"); err != nil || string(out) != "ok\n" {
		t.Errorf("Output = %q, %v", out, err)
	}

	// A large output arrives completely before the exit status.
	res, out, _ = run(t, c, `sh -c 'i=0; while [ $i -lt 20000 ]; do echo line$i; i=$((i+1)); done'`)
	if res.ExitCode != 0 || strings.Count(out, "\n") != 20000 || !strings.HasSuffix(out, "line19999\n") {
		t.Errorf("large output: %v, %d lines", res, strings.Count(out, "\n"))
	}

	// Stdin is forwarded.
	var stdout syncBuffer
	sess, err := c.SSH().NewSession()
	if err != nil {
		t.Fatal(err)
	}
	sess.Stdin = strings.NewReader("from stdin\n")
	sess.Stdout = &stdout
	if err := sess.Run(needBinary(t, "cat")); err != nil || stdout.String() != "from stdin\n" {
		t.Errorf("stdin: %v %q", err, stdout.String())
	}
}

func TestBackgroundChildDoesNotHang(t *testing.T) {
	needBinary(t, "sh")
	needBinary(t, "sleep")
	ta := startAgent(t, nil)
	start := time.Now()
	// The background sleep keeps stdout open; the agent must not wait
	// for it beyond the output grace period.
	res, out, _ := run(t, ta.client, `sh -c 'sleep 4 & echo started'`)
	if res.ExitCode != 0 || out != "started\n" {
		t.Errorf("%v %q", res, out)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v", d)
	}
}

func readOOMAdj(t *testing.T) string {
	b, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestTrampolineOOMScoreAdj: the agent runs at a negative oom_score_adj
// (-1000 in the guest); commands must start at 0 unless asked otherwise.
func TestTrampolineOOMScoreAdj(t *testing.T) {
	cat := needBinary(t, "cat")
	if os.Geteuid() != 0 {
		t.Skip("lowering oom_score_adj needs root")
	}
	ta := startAgent(t, nil)
	old := readOOMAdj(t)
	if err := os.WriteFile("/proc/self/oom_score_adj", []byte("-500"), 0); err != nil {
		t.Skipf("cannot set oom_score_adj: %v", err)
	}
	// Restore so the test runner does not stay protected.
	t.Cleanup(func() {
		if err := os.WriteFile("/proc/self/oom_score_adj", []byte(old), 0); err != nil {
			t.Errorf("restore oom_score_adj: %v", err)
		}
	})

	c := ta.client
	if _, out, _ := run(t, c, "cat /proc/self/oom_score_adj"); strings.TrimSpace(out) != "-500" {
		t.Errorf("in-process builtin sees %q, want the agent's -500", out)
	}
	if _, out, e := run(t, c, cat+" /proc/self/oom_score_adj"); strings.TrimSpace(out) != "0" {
		t.Errorf("external command oom_score_adj = %q (%s), want 0", out, e)
	}
	if _, out, e := run(t, c, "run --oom-score-adj 300 -- "+cat+" /proc/self/oom_score_adj"); strings.TrimSpace(out) != "300" {
		t.Errorf("--oom-score-adj 300: %q %s", out, e)
	}
	// A builtin run as its own process goes through the trampoline too.
	if _, out, e := run(t, c, "run -- cat /proc/self/oom_score_adj"); strings.TrimSpace(out) != "0" {
		t.Errorf("run -- cat (builtin process): %q %s", out, e)
	}
}

func TestTrampolineScheduling(t *testing.T) {
	cat := needBinary(t, "cat")
	ta := startAgent(t, nil)
	c := ta.client

	_, out, e := run(t, c, "run --policy idle -- "+cat+" /proc/self/stat")
	if p := statField(t, out, 41); p != strconv.Itoa(unix.SCHED_IDLE) {
		t.Errorf("--policy idle: policy field %s (%s)", p, e)
	}
	_, out, e = run(t, c, "run --policy batch --nice 7 -- "+cat+" /proc/self/stat")
	if p, n := statField(t, out, 41), statField(t, out, 19); p != strconv.Itoa(unix.SCHED_BATCH) || n != "7" {
		t.Errorf("--policy batch --nice 7: policy %s nice %s (%s)", p, n, e)
	}
	// Builtin in its own process: a different pid, same treatment.
	_, out, e = run(t, c, "run --policy idle -- cat /proc/self/stat")
	if p := statField(t, out, 41); p != strconv.Itoa(unix.SCHED_IDLE) || strings.HasPrefix(out, strconv.Itoa(os.Getpid())+" ") {
		t.Errorf("run --policy idle -- cat (builtin): %q %s", out, e)
	}
	_, out, e = run(t, c, "run --cpus 0 -- "+cat+" /proc/self/status")
	if !strings.Contains(out, "Cpus_allowed_list:\t0\n") {
		t.Errorf("--cpus 0: %s %s", out, e)
	}

	res, out, e := run(t, c, "run --policy fifo --prio 10 -- "+cat+" /proc/self/stat")
	if res.ExitCode == 126 && strings.Contains(e, "not permitted") {
		t.Logf("SCHED_FIFO not permitted here: %s", e)
	} else if p, prio := statField(t, out, 41), statField(t, out, 40); p != strconv.Itoa(unix.SCHED_FIFO) || prio != "10" {
		t.Errorf("--policy fifo --prio 10: policy %s prio %s (%v %s)", p, prio, res, e)
	}

	// A failing option is reported, not silently ignored.
	res, _, e = run(t, c, "run --cgroup /nonexistent/cg -- "+cat+" /dev/null")
	if res.ExitCode != 126 || !strings.Contains(e, "cgroup") {
		t.Errorf("bad cgroup: %v %q", res, e)
	}
}

func TestTrampolineCgroup(t *testing.T) {
	cat := needBinary(t, "cat")
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		t.Skip("no cgroup2 at /sys/fs/cgroup")
	}
	dir, err := os.MkdirTemp("/sys/fs/cgroup", "oomlab-test-")
	if err != nil {
		t.Skipf("cannot create cgroup: %v", err)
	}
	t.Cleanup(func() {
		// The member has exited but may take a moment to leave.
		for i := 0; i < 50; i++ {
			if os.Remove(dir) == nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Errorf("cannot remove %s", dir)
	})
	ta := startAgent(t, nil)
	res, out, e := run(t, ta.client, "run --cgroup "+dir+" -- "+cat+" /proc/self/cgroup")
	if res.ExitCode != 0 && strings.Contains(e, "join cgroup") {
		t.Skipf("cannot join a cgroup here: %s", e)
	}
	if !strings.HasSuffix(strings.TrimSpace(out), "/"+filepath.Base(dir)) {
		t.Errorf("cgroup of command: %q (%v %s)", out, res, e)
	}
}

// processGone reports whether pid no longer exists (or is a zombie).
func processGone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] == 'Z'
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if processGone(pid) {
			return
		}
	}
	t.Errorf("process %d still alive", pid)
	_ = unix.Kill(pid, unix.SIGKILL)
}

// startBackground starts a shell whose background child prints its pid.
func startBackground(t *testing.T, ctx context.Context, c *Client) (*Process, int) {
	t.Helper()
	pr, pw := io.Pipe()
	p, err := c.Start(ctx, `sh -c 'sleep 300 & echo $!; wait'`, pw, nil)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(pr).ReadString('\n')
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	return p, pid
}

func TestCancelKillsProcessGroup(t *testing.T) {
	needBinary(t, "sh")
	needBinary(t, "sleep")
	ta := startAgent(t, nil)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, pid := startBackground(t, ctx, ta.client)
	if processGone(pid) {
		t.Fatalf("background sleep %d not running", pid)
	}
	cancel()
	done := make(chan struct{})
	var res *Result
	var err error
	go func() { res, err = p.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return after cancel")
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Wait error = %v", err)
	}
	if res != nil && res.Signal != "KILL" {
		t.Errorf("result after cancel = %v", res)
	}
	waitGone(t, pid)

	// Closing the session has the same effect.
	p, pid = startBackground(t, context.Background(), ta.client)
	p.Close()
	waitGone(t, pid)

	// Dropping the whole connection too.
	c2, err := Dial(ctxT(t, 10*time.Second), ta.addr, ta.keys, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_, pid = startBackground(t, context.Background(), c2)
	c2.Close()
	waitGone(t, pid)

	// The connection still works for others.
	if err := ta.client.Ping(context.Background(), 5*time.Second); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func TestSignalForwarding(t *testing.T) {
	ta := startAgent(t, nil)
	// Builtin: a signal ends it and is reported as exit-signal.
	p, err := ta.client.Start(context.Background(), "sleep 300", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if err := p.Signal(ssh.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if res, err := p.Wait(); err != nil || res.Signal != "TERM" {
		t.Errorf("builtin sleep + TERM: %v %v", res, err)
	}

	// External: the signal reaches the process group.
	sleep := needBinary(t, "sleep")
	p, err = ta.client.Start(context.Background(), sleep+" 300", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if err := p.Signal(ssh.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	if res, err := p.Wait(); err != nil || res.Signal != "USR1" || res.ExitCode != 128+int(unix.SIGUSR1) {
		t.Errorf("sleep + USR1: %+v %v", res, err)
	}
}

func TestConcurrentSessions(t *testing.T) {
	sleep := needBinary(t, "sleep")
	ta := startAgent(t, nil)
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		cmd := "sleep 0.5"
		if i%2 == 1 {
			cmd = sleep + " 0.5"
		}
		wg.Go(func() {
			res, err := ta.client.Run(context.Background(), cmd, nil, nil)
			if err != nil || res.ExitCode != 0 {
				t.Errorf("%s: %v %v", cmd, res, err)
			}
		})
	}
	wg.Wait()
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("8 concurrent 0.5 s sleeps took %v", d)
	}
}

func TestMetrics(t *testing.T) {
	ta := startAgent(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 1200*time.Millisecond)
	defer cancel()
	var samples []Sample
	start := time.Now()
	err := ta.client.Metrics(ctx, 100*time.Millisecond, func(s Sample) { samples = append(samples, s) })
	if err != nil {
		t.Fatalf("Metrics: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Metrics returned %v after start", d)
	}
	if len(samples) < 2 {
		t.Fatalf("got %d samples", len(samples))
	}
	for i, s := range samples {
		if s.Seq != i || s.MemTotalKB == 0 || s.MemAvailableKB > s.MemTotalKB || len(s.Errors) != 0 {
			t.Errorf("sample %d: %+v", i, s)
		}
		if i > 0 {
			dt := s.Mono - samples[i-1].Mono
			// The ticker may deliver a delayed tick right before the next
			// one on a loaded machine, so only the order is strict.
			if dt <= 0 || dt > 5 {
				t.Errorf("sample %d: mono step %.3f s", i, dt)
			}
			if s.OOMKill < samples[i-1].OOMKill || s.Pgscan < samples[i-1].Pgscan {
				t.Errorf("sample %d: counters went backwards", i)
			}
		}
	}
}

func TestPowerOff(t *testing.T) {
	calls := make(chan int, 2)
	ta := startAgent(t, func(s *agent.Server) {
		s.Reboot = func(cmd int) error { calls <- cmd; return nil }
	})
	if res, _, _ := run(t, ta.client, "poweroff"); res.ExitCode != 0 {
		t.Fatalf("poweroff: %v", res)
	}
	select {
	case cmd := <-calls:
		// A restart: under -no-reboot it ends QEMU on a machine
		// without ACPI, where a power-off only halts the CPUs.
		if cmd != unix.LINUX_REBOOT_CMD_RESTART {
			t.Errorf("reboot cmd %#x, want RESTART", cmd)
		}
	case <-time.After(2 * time.Second):
		t.Error("Reboot hook not called")
	}

	// Without the hook (any server not started by the guest init) the
	// builtins refuse.
	ta2 := startAgent(t, nil)
	if res, _, e := run(t, ta2.client, "reboot"); res.ExitCode != 1 || !strings.Contains(e, "not available") {
		t.Errorf("reboot without hook: %v %q", res, e)
	}
}

func TestSessionRequests(t *testing.T) {
	ta := startAgent(t, nil)
	ok, _, err := ta.client.SSH().SendRequest("keepalive@openssh.com", true, nil)
	if err != nil || !ok {
		t.Errorf("keepalive: %v %v", ok, err)
	}
	if ok, _, _ := ta.client.SSH().SendRequest("tcpip-forward", true, nil); ok {
		t.Error("tcpip-forward accepted")
	}
	sess, err := ta.client.SSH().NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if err := sess.RequestPty("xterm", 24, 80, nil); err == nil {
		t.Error("pty-req accepted")
	}
	if err := sess.Setenv("FOO", "bar"); err != nil {
		t.Errorf("env refused: %v", err)
	}
	if err := sess.Shell(); err == nil {
		t.Error("shell accepted")
	}
	if _, _, err := ta.client.SSH().OpenChannel("direct-tcpip", nil); err == nil {
		t.Error("direct-tcpip channel accepted")
	}
}

func TestAuthentication(t *testing.T) {
	ta := startAgent(t, nil)
	other, err := NewKeys()
	if err != nil {
		t.Fatal(err)
	}

	// Unknown client key.
	wrongClient := *ta.keys
	wrongClient.Client = other.Client
	start := time.Now()
	if _, err := Dial(ctxT(t, 10*time.Second), ta.addr, &wrongClient, 2*time.Second); !errors.Is(err, ErrAuth) {
		t.Errorf("wrong client key: %v", err)
	}
	// Unexpected host key.
	wrongHost := *ta.keys
	wrongHost.HostPublic = other.HostPublic
	if _, err := Dial(ctxT(t, 10*time.Second), ta.addr, &wrongHost, 2*time.Second); !errors.Is(err, ErrHostKeyMismatch) {
		t.Errorf("wrong host key: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("permanent failures were retried (%v)", d)
	}
}

// TestDialSilentServer: a port that accepts and never speaks (QEMU's
// forwarder before the guest listens) must not hang Dial.
// holdSilent accepts every connection on l and holds it open saying
// nothing, until the test ends; it counts them.
func holdSilent(t *testing.T, l net.Listener) *atomic.Int32 {
	var accepted atomic.Int32
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return &accepted
}

func TestDialSilentServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := holdSilent(t, l)
	keys, _ := NewKeys()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	_, err = Dial(ctx, l.Addr().String(), keys, 300*time.Millisecond)
	d := time.Since(start)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Dial error = %v", err)
	}
	if d > 3*time.Second {
		t.Errorf("Dial took %v", d)
	}
	if n := accepted.Load(); n < 2 {
		t.Errorf("only %d attempts in 2 s with a 300 ms handshake timeout", n)
	}
}

// TestDialLateListener: nothing listens for 500 ms, then the agent starts.
func TestDialLateListener(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	keys, _ := NewKeys()
	go func() {
		time.Sleep(500 * time.Millisecond)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("relisten: %v", err)
			return
		}
		serve(t, testConfig(t, keys), l, nil)
	}()
	start := time.Now()
	c, err := Dial(ctxT(t, 10*time.Second), addr, keys, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if time.Since(start) < 400*time.Millisecond {
		t.Error("connected before the listener existed?")
	}
	if err := c.Ping(context.Background(), 5*time.Second); err != nil {
		t.Error(err)
	}
}

// dropListener closes the first n accepted connections right away, like
// QEMU's user-net forwarder before the guest port is open.
type dropListener struct {
	net.Listener
	n atomic.Int32
}

func (d *dropListener) Accept() (net.Conn, error) {
	for {
		c, err := d.Listener.Accept()
		if err != nil || d.n.Add(-1) < 0 {
			return c, err
		}
		c.Close()
	}
}

func TestDialAcceptThenClose(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dl := &dropListener{Listener: l}
	dl.n.Store(3)
	keys, _ := NewKeys()
	serve(t, testConfig(t, keys), dl, nil)
	c, err := Dial(ctxT(t, 10*time.Second), l.Addr().String(), keys, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Ping(context.Background(), 5*time.Second); err != nil {
		t.Error(err)
	}
}

// TestServeProcess runs the real binary the way PID 1 does: `--serve` with
// an inherited listening socket (fd 3) and a readiness pipe (fd 4).
func TestServeProcess(t *testing.T) {
	bin := agentBinary(t)
	if !realBin {
		t.Skip("needs the built agent binary")
	}
	keys, _ := NewKeys()
	cfg := testConfig(t, keys)
	cfgPath := filepath.Join(t.TempDir(), "agent.json")
	data, _ := json.Marshal(cfg)
	if err := os.WriteFile(cfgPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lf, err := l.(*net.TCPListener).File()
	l.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	rr, rw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, agent.ServeFlag, "--config", cfgPath, "--listen-fd", "3", "--ready-fd", "4")
	cmd.ExtraFiles = []*os.File{lf, rw}
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	rw.Close()
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	ready := make(chan string, 1)
	go func() { b, _ := io.ReadAll(rr); ready <- string(b) }()
	select {
	case s := <-ready:
		if s != "ready\n" {
			t.Fatalf("ready pipe got %q; stderr: %s", s, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no readiness; stderr: %s", stderr.String())
	}
	// Like the guest's -1000, but raising needs no privilege: the server
	// runs at 500, its commands must start at 0 anyway.
	adjPath := fmt.Sprintf("/proc/%d/oom_score_adj", cmd.Process.Pid)
	if err := os.WriteFile(adjPath, []byte("500"), 0); err != nil {
		t.Fatal(err)
	}
	c, err := Dial(ctxT(t, 10*time.Second), l.Addr().String(), keys, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for cmdline, want := range map[string]string{
		"cat /proc/self/oom_score_adj":                            "500", // in-process builtin
		"run -- cat /proc/self/oom_score_adj":                     "0",   // builtin as a process
		"run --oom-score-adj 700 -- cat /proc/self/oom_score_adj": "700",
	} {
		if out, err := c.Output(context.Background(), cmdline); err != nil || strings.TrimSpace(string(out)) != want {
			t.Errorf("%s: %q %v, want %s", cmdline, out, err, want)
		}
	}
	if cat, err := exec.LookPath("cat"); err == nil {
		if out, err := c.Output(context.Background(), cat+" /proc/self/oom_score_adj"); err != nil || strings.TrimSpace(string(out)) != "0" {
			t.Errorf("external cat: %q %v, want 0", out, err)
		}
	}
	// The inherited listening socket (fd 3, no O_CLOEXEC) must have been
	// replaced by a close-on-exec dup, or every command would inherit it.
	checkNoInheritableSockets(t, cmd.Process.Pid)
	if out, err := c.Output(context.Background(), "echo hi"); err != nil || string(out) != "hi\n" {
		t.Errorf("echo: %q %v", out, err)
	}
	if err := cmd.Process.Signal(unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("server exit after SIGTERM: %v; stderr: %s", err, stderr.String())
	}
}

func checkNoInheritableSockets(t *testing.T, pid int) {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if !strings.HasPrefix(target, "socket:") {
			continue
		}
		info, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, fd.Name()))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(info), "\n") {
			if v, ok := strings.CutPrefix(l, "flags:"); ok {
				flags, _ := strconv.ParseUint(strings.TrimSpace(v), 8, 64)
				if flags&unix.O_CLOEXEC == 0 {
					t.Errorf("server fd %s (%s) is inheritable", fd.Name(), target)
				}
			}
		}
	}
}

func TestTypedCalls(t *testing.T) {
	rebooted := make(chan int, 1)
	ta := startAgent(t, func(s *agent.Server) {
		s.Reboot = func(cmd int) error { rebooted <- cmd; return nil }
	})
	c := ta.client
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	procs, err := c.Procs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var self *protocol.ProcInfo
	for i := range procs {
		if procs[i].PID == os.Getpid() {
			self = &procs[i]
		}
	}
	if self == nil {
		t.Fatalf("Procs lacks pid %d", os.Getpid())
	}
	census, err := c.Census(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if census[self.Comm] < 1 {
		t.Errorf("Census[%q] = %d, want >= 1 (census %v)", self.Comm, census[self.Comm], census)
	}
	if n := census["kthreadd"]; n != 0 {
		t.Errorf("Census counts kernel threads: kthreadd %d", n)
	}

	nice := 3
	var out syncBuffer
	p, err := c.StartSpawn(ctx, protocol.Spawn{Policy: "batch", Nice: &nice, OOMScoreAdj: 300}, "cat /proc/self/oom_score_adj /proc/self/stat", &out, &out)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := p.Wait(); err != nil || res.ExitCode != 0 {
		t.Fatalf("StartSpawn: %v %v: %s", res, err, out.String())
	}
	adj, stat, _ := strings.Cut(out.String(), "\n")
	if adj != "300" || statField(t, stat, 41) != "3" || statField(t, stat, 19) != "3" {
		t.Errorf("StartSpawn: oom_score_adj %q, stat %q; want 300, policy 3 (batch), nice 3", adj, stat)
	}
	// A Spawn that fails Validate is refused by the agent.
	if res, err := c.Run(ctx, protocol.Spawn{Policy: "fifo", Prio: 100}.Command("true"), nil, nil); err != nil || res.ExitCode != 2 {
		t.Errorf("invalid Spawn: %v %v, want exit status 2", res, err)
	}

	if err := c.Poweroff(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case cmd := <-rebooted:
		if cmd != unix.LINUX_REBOOT_CMD_RESTART {
			t.Errorf("Poweroff made reboot(%#x), want RESTART", cmd)
		}
	case <-time.After(5 * time.Second):
		t.Error("Poweroff did not power off")
	}
}

func TestPoweroffRefused(t *testing.T) {
	ta := startAgent(t, nil) // not the guest init: no Reboot
	err := ta.client.Poweroff(context.Background())
	var ce *CommandError
	if !errors.As(err, &ce) || !strings.Contains(ce.Stderr, "not available") {
		t.Errorf("Poweroff on a server without Reboot: %v", err)
	}
}

// slowListener hands out each accepted connection only after delay and
// counts them: a virtio-serial port whose agent opens it late, the host's
// bytes waiting meanwhile.
type slowListener struct {
	net.Listener
	delay    time.Duration
	accepted atomic.Int32
}

func (l *slowListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
		time.Sleep(l.delay)
	}
	return c, err
}

// Over a UNIX socket (QEMU's end of the agent's port) the first connect is
// the one: the handshake waits for the agent however late it answers,
// past the TCP per-attempt bound, and there is no second attempt.
func TestDialUnixWaitsForAgent(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	inner, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l := &slowListener{Listener: inner, delay: 700 * time.Millisecond}
	keys, _ := NewKeys()
	serve(t, testConfig(t, keys), l, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, sock, keys, 100*time.Millisecond)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	if err := c.Ping(ctx, 5*time.Second); err != nil {
		t.Error(err)
	}
	if n := l.accepted.Load(); n != 1 {
		t.Errorf("%d connections, want 1 (no retry while the agent is late)", n)
	}
}

// A port nobody ever answers on: Dial ends with its context, not before
// and not much after.
func TestDialUnixSilent(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	holdSilent(t, l)
	keys, _ := NewKeys()
	ctx, cancel := context.WithTimeout(context.Background(), 800*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = Dial(ctx, sock, keys, 100*time.Millisecond)
	d := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Dial error = %v, want the context's deadline", err)
	}
	if d < 700*time.Millisecond || d > 3*time.Second {
		t.Errorf("Dial took %v with an 800 ms context", d)
	}
}
