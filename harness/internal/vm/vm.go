// Package vm runs one QEMU guest: command line, KVM probe with TCG
// fallback, console capture, QMP, and teardown that leaves no QEMU behind.
package vm

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"oomlab/harness/internal/tailbuf"
)

// The agent's SSH stream runs over a virtio-serial port: QEMU serves the
// host end as the UNIX socket VM.AgentSock, the agent in the guest finds
// the port by its name (protocol.VportPrefix + AgentPort is its listen
// address). No network stack in the guest, no forwarded TCP port to pick
// for guests side by side, and the stream is there from the first byte:
// QEMU user networking accepted the forwarded port before the guest
// listened and its slirp retransmitted the lost SYN only after 3 s.
const AgentPort = "org.oomlab.agent"

// Config describes one guest.
type Config struct {
	QEMU     string // binary; default qemu-system-x86_64
	Kernel   string // bzImage
	Initrd   string // newc cpio
	Cmdline  string // kernel command line (console=ttyS0 is added)
	CPUs     int
	MemoryMB int
	Accel    string    // "auto" (KVM if it works, else TCG), "kvm" or "tcg"
	Console  io.Writer // raw console bytes (the console log file)
	OnLine   func(line []byte)
	TempDir  string // for the QMP socket; default os.TempDir()
	// QMPTimeout bounds each QMP command (default 5s).
	QMPTimeout time.Duration
}

// VM is a running guest.
type VM struct {
	Accel     string    // what it really runs with: "kvm" or "tcg"
	AgentSock string    // UNIX socket: the host end of the guest's AgentPort
	Started   time.Time // when QEMU was started
	QMP       *Monitor

	cmd     *exec.Cmd
	sockDir string
	done    chan struct{}
	waitErr error
	stderr  *tailbuf.Buffer
	console sync.WaitGroup
	output  lineCounter

	killed atomic.Bool // Kill sent SIGKILL: an end by a signal is ours

	stdinMu sync.Mutex
	stdin   io.WriteCloser // QEMU's stdin: the serial mux, for BREAK + sysrq key
}

// Errors callers can test for.
var (
	ErrNoQEMU  = errors.New("QEMU binary not found")
	ErrExited  = errors.New("QEMU exited")
	kvmBrokenM sync.Mutex
	kvmBroken  bool // set once a KVM start failed in this process
)

func (c *Config) defaults() error {
	if c.QEMU == "" {
		c.QEMU = "qemu-system-x86_64"
	}
	if _, err := exec.LookPath(c.QEMU); err != nil {
		return fmt.Errorf("%w: %s (install it: apt-get install qemu-system-x86)", ErrNoQEMU, c.QEMU)
	}
	for _, f := range []struct{ what, path string }{{"kernel", c.Kernel}, {"initrd", c.Initrd}} {
		if _, err := os.Stat(f.path); err != nil {
			return fmt.Errorf("vm: %s image %q: %w", f.what, f.path, err)
		}
	}
	if c.CPUs < 1 || c.CPUs > 64 {
		return fmt.Errorf("vm: cpus %d out of range 1..64", c.CPUs)
	}
	if c.MemoryMB < 64 || c.MemoryMB > 65536 {
		return fmt.Errorf("vm: memory %d MB out of range 64..65536", c.MemoryMB)
	}
	switch c.Accel {
	case "":
		c.Accel = "auto"
	case "auto", "kvm", "tcg":
	default:
		return fmt.Errorf("vm: accel %q: want auto, kvm or tcg", c.Accel)
	}
	if c.QMPTimeout == 0 {
		c.QMPTimeout = 5 * time.Second
	}
	return nil
}

// kvmUsable says whether to try KVM at all.
func kvmUsable() bool {
	kvmBrokenM.Lock()
	defer kvmBrokenM.Unlock()
	if kvmBroken {
		return false
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// Start boots the guest. With Accel "auto" it tries KVM first; when QEMU
// dies before the guest printed anything (on some hosts "-cpu host" aborts
// on an MSR the host KVM refuses), it falls back to TCG and remembers that
// for the rest of this process.
func Start(ctx context.Context, c Config) (*VM, error) {
	if err := c.defaults(); err != nil {
		return nil, err
	}
	if c.Accel == "tcg" || (c.Accel == "auto" && !kvmUsable()) {
		return start(ctx, c, "tcg")
	}
	v, err := start(ctx, c, "kvm")
	if err == nil {
		// A KVM guest that is going to fail does so before its first
		// console byte; wait for one or for the exit.
		select {
		case <-v.output.first:
			return v, nil
		case <-v.done:
			// Status 0 is the guest's own end, not KVM's: a kernel
			// that cannot boot (a truncated bzImage) triple-faults
			// before a byte and -no-reboot makes that an exit.
			// Falling back made it look like broken KVM and ran every
			// later guest under TCG; the caller sees this one exited.
			if v.waitErr == nil {
				return v, nil
			}
		case <-time.After(10 * time.Second):
			return v, nil
		case <-ctx.Done():
			v.Kill()
			return nil, ctx.Err()
		}
		err = fmt.Errorf("%w: %s", ErrExited, v.stderr.String())
	}
	if c.Accel == "kvm" {
		return nil, fmt.Errorf("vm: KVM start failed: %v", err)
	}
	v, terr := start(ctx, c, "tcg")
	// Remembered only when TCG starts where KVM did not: a failure both
	// share (a bad image, a bad option) says nothing about KVM.
	if terr == nil {
		kvmBrokenM.Lock()
		kvmBroken = true
		kvmBrokenM.Unlock()
	}
	return v, terr
}

// HandoffDebug is on every guest's command line: dynamic debug for
// mm/oom_kill.c, where the series prints the exit_mmap/oom_reaper handoff,
// and loglevel=8, without which a KERN_DEBUG line never reaches the serial
// console the harness reads.
const HandoffDebug = `dyndbg="file oom_kill.c +p" loglevel=8`

// RebootTriple is on every guest's command line: the microvm has neither
// ACPI nor a keyboard controller, and x86's default reboot would try both
// (over a second of port polling) before the triple fault that, under
// -no-reboot, ends QEMU. A panic (panic=-1) and the agent's poweroff take
// this path.
const RebootTriple = "reboot=t"

// TrustCPURandom is on every guest's command line: the agent's SSH
// handshake needs random bytes, and getrandom() blocks until the kernel's
// RNG is seeded. 6.12 trusts the CPU's RDRAND (which QEMU provides, from
// the host's RNG) by default and is seeded in 40 ms; 6.1 does only with
// CONFIG_RANDOM_TRUST_CPU, off in tinyconfig, and waited 1.2 s for jitter
// entropy, every boot.
const TrustCPURandom = "random.trust_cpu=on"

// TSCReliable is on every guest's command line: without it 6.1 decides
// that an AMD CPU's TSCs with more than one CPU are not synchronized
// (unsynchronized_tsc()) and, the microvm having neither HPET nor the ACPI
// PM timer, ran every test on the jiffies clocksource, without high
// resolution timers. QEMU's vCPUs read one TSC (TCG derives it from the
// host's clock; KVM keeps it in sync), so it is reliable; 6.12 uses it
// either way.
const TSCReliable = "tsc=reliable"

func (c *Config) args(accel, qmpSock, agentSock string) []string {
	cpu := "max"
	accelArg := "tcg,thread=multi"
	if accel == "kvm" {
		cpu, accelArg = "host", "kvm"
	}
	// HandoffDebug turns on the series' "Handed over <pid> to exit path."
	// line, a pr_debug() that costs nothing unless enabled; kernels
	// without it (or without CONFIG_DYNAMIC_DEBUG) ignore the parameter.
	cmdline := strings.TrimSpace("console=ttyS0 " + RebootTriple + " " + TrustCPURandom + " " + TSCReliable + " " + HandoffDebug + " " + c.Cmdline)
	return []string{
		// microvm: no PCI, no ACPI, no firmware tables to walk: qboot
		// jumps to the kernel, SMP comes from the MP table and the
		// virtio-mmio devices from the command line QEMU appends
		// (auto-kernel-cmdline). The legacy PIT, PIC and RTC stay: the
		// kernel calibrates and keeps time with them under TCG.
		"-machine", "microvm,acpi=off",
		"-accel", accelArg,
		"-cpu", cpu,
		"-smp", strconv.Itoa(c.CPUs),
		"-m", strconv.Itoa(c.MemoryMB),
		"-nodefaults", "-no-user-config",
		"-display", "none",
		"-no-reboot", // a guest panic or reboot ends QEMU: we see it as an exit
		"-kernel", c.Kernel,
		"-initrd", c.Initrd,
		"-append", cmdline,
		// mux=on: the mux's escape "C-a b" on stdin sends a serial
		// BREAK, which with CONFIG_MAGIC_SYSRQ_SERIAL makes the next
		// byte a sysrq key (Sysrq): how the host watchdog gets
		// backtraces out of a guest whose CPUs are all taken.
		"-chardev", "stdio,id=con,signal=off,mux=on",
		"-serial", "chardev:con",
		"-qmp", "unix:" + qmpSock + ",server=on,wait=off",
		"-device", "virtio-serial-device,max_ports=2",
		"-chardev", "socket,id=agent,path=" + agentSock + ",server=on,wait=off",
		"-device", "virtserialport,chardev=agent,name=" + AgentPort,
	}
}

func start(ctx context.Context, c Config, accel string) (*VM, error) {
	sockDir, err := os.MkdirTemp(c.TempDir, "oomlab-qmp-")
	if err != nil {
		return nil, err
	}
	v, err := launch(ctx, c, accel, filepath.Join(sockDir, "qmp.sock"), filepath.Join(sockDir, "agent.sock"))
	if err != nil {
		os.RemoveAll(sockDir)
		return nil, err
	}
	v.sockDir = sockDir
	return v, nil
}

func launch(ctx context.Context, c Config, accel, qmpSock, agentSock string) (*VM, error) {
	cmd := exec.Command(c.QEMU, c.args(accel, qmpSock, agentSock)...)
	// Own process group, so a kill reaches everything QEMU started, and
	// SIGKILL when oomlab dies without running any cleanup (even SIGKILL).
	// PDEATHSIG fires when the thread that forked QEMU ends; Go ends a
	// thread only when a goroutine exits locked to it (LockOSThread),
	// which the host never does, so it fires when the process dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	v := &VM{Accel: accel, AgentSock: agentSock, cmd: cmd, done: make(chan struct{}), stderr: &tailbuf.Buffer{Max: 8192}}
	v.output.first = make(chan struct{})
	cmd.Stderr = v.stderr
	if v.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	v.Started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("vm: start %s: %w", c.QEMU, err)
	}
	register(v)
	v.console.Add(1)
	go v.readConsole(stdout, c.Console, c.OnLine)
	go func() {
		v.console.Wait() // reading to EOF before Wait closes the pipe
		v.waitErr = cmd.Wait()
		unregister(v)
		close(v.done)
	}()

	// QEMU creates the QMP socket early; a start failure (bad option, port
	// in use) shows as an exit before it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(qmpSock); err == nil {
			break
		}
		select {
		case <-v.done:
			return nil, fmt.Errorf("vm: %w at start: %s", ErrExited, strings.TrimSpace(v.stderr.String()))
		case <-ctx.Done():
			v.Kill()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			v.Kill()
			return nil, fmt.Errorf("vm: QEMU did not create its QMP socket in 10s")
		}
	}
	// The socket file exists from bind(); until QEMU calls listen() a
	// connect is refused, so that one error is retried until the deadline.
	var mon *Monitor
	for {
		mon, err = DialMonitor(ctx, qmpSock, c.QMPTimeout)
		if err == nil || !errors.Is(err, syscall.ECONNREFUSED) || time.Now().After(deadline) || isClosed(v.done) {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err != nil {
		v.Kill()
		return nil, err
	}
	v.QMP = mon
	return v, nil
}

// readConsole copies the serial console to the log and splits it into lines
// for the parser. Lines are cut at 64 KiB so a flood without newlines
// cannot grow memory.
func (v *VM) readConsole(r io.Reader, log io.Writer, onLine func([]byte)) {
	defer v.console.Done()
	br := bufio.NewReaderSize(r, 64<<10)
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 {
			v.output.saw()
			if log != nil {
				log.Write(chunk)
			}
			if len(line)+len(chunk) <= 64<<10 {
				line = append(line, chunk...)
			}
			if chunk[len(chunk)-1] == '\n' {
				if onLine != nil {
					onLine(bytes.TrimRight(line, "\r\n"))
				}
				line = line[:0]
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if len(line) > 0 && onLine != nil {
				onLine(bytes.TrimRight(line, "\r\n"))
			}
			return
		}
	}
}

// FirstOutput is when the first console byte arrived (zero before): the
// boot's firmware part ends there.
func (v *VM) FirstOutput() time.Time { return v.output.firstTime() }

// Done is closed when QEMU has exited and the console is fully read.
func (v *VM) Done() <-chan struct{} { return v.done }

// ExitError is QEMU's exit status and the tail of its stderr, after Done;
// nil while QEMU runs and after an exit with status 0.
func (v *VM) ExitError() error {
	select {
	case <-v.done:
	default:
		return nil
	}
	if v.waitErr == nil {
		return nil
	}
	return fmt.Errorf("%v: %s", v.waitErr, strings.TrimSpace(v.stderr.String()))
}

// KilledFromOutside is, after Done, an error when QEMU ended by a signal
// this process did not send (the host's OOM killer, an operator's kill -9,
// QEMU's own abort); nil otherwise. Such an end says nothing about the
// guest's kernel, unlike an exit by itself (a guest panic or reboot under
// -no-reboot exits with status 0): the runner makes it an infrastructure
// error, not a failed expectation.
func (v *VM) KilledFromOutside() error {
	if !isClosed(v.done) || v.killed.Load() {
		return nil
	}
	var ee *exec.ExitError
	if errors.As(v.waitErr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return fmt.Errorf("QEMU was killed by signal %d (%v), not by oomlab nor the guest", ws.Signal(), ws.Signal())
		}
	}
	return nil
}

// Stop ends the guest: QMP quit, then SIGKILL to the process group if QEMU
// has not gone within grace. It always returns with QEMU gone.
func (v *VM) Stop(grace time.Duration) {
	select {
	case <-v.done:
		v.cleanup()
		return
	default:
	}
	if v.QMP != nil {
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		v.QMP.Run(ctx, "quit", nil)
		cancel()
	}
	select {
	case <-v.done:
	case <-time.After(grace):
		v.Kill()
	}
	v.cleanup()
}

// Kill sends SIGKILL to QEMU's process group and waits for the exit.
func (v *VM) Kill() {
	v.killed.Store(true)
	if v.cmd.Process != nil {
		syscall.Kill(-v.cmd.Process.Pid, syscall.SIGKILL)
	}
	select {
	case <-v.done:
	case <-time.After(10 * time.Second):
	}
	v.cleanup()
}

func (v *VM) cleanup() {
	if v.stdin != nil {
		v.stdin.Close()
	}
	if v.QMP != nil {
		v.QMP.Close()
	}
	if v.sockDir != "" {
		os.RemoveAll(v.sockDir)
	}
}

// lineCounter notes the first and the latest console output.
type lineCounter struct {
	once    sync.Once
	first   chan struct{}
	firstAt atomic.Int64 // unix nanoseconds
	last    atomic.Int64 // unix nanoseconds
}

func (l *lineCounter) saw() {
	now := time.Now().UnixNano()
	l.last.Store(now)
	l.once.Do(func() { l.firstAt.Store(now); close(l.first) })
}

func (l *lineCounter) firstTime() time.Time {
	if n := l.firstAt.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// The registry of running guests lets KillAll (signal handlers, panics)
// take every QEMU down with oomlab.
var (
	regMu   sync.Mutex
	running = map[*VM]struct{}{}
)

func register(v *VM)   { regMu.Lock(); running[v] = struct{}{}; regMu.Unlock() }
func unregister(v *VM) { regMu.Lock(); delete(running, v); regMu.Unlock() }

// KillAll kills every guest this process started and waits for them.
func KillAll() {
	regMu.Lock()
	vs := make([]*VM, 0, len(running))
	for v := range running {
		vs = append(vs, v)
	}
	regMu.Unlock()
	for _, v := range vs {
		v.Kill()
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
