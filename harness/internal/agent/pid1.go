package agent

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"oomlab/harness/internal/protocol"
)

type mountSpec struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
	optional               bool // fs type may be compiled out: ENODEV is silent
}

// guestMounts are mounted by PID 1 in this order (after /dev, see RunInit).
// All are best effort: a missing filesystem type only costs the feature.
var guestMounts = []mountSpec{
	{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "", false},
	{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "", false},
	{"cgroup2", "/sys/fs/cgroup", "cgroup2", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "", false},
	{"debugfs", "/sys/kernel/debug", "debugfs", 0, "", true},
	{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "mode=620,ptmxmode=666", true},
	{"tmpfs", "/dev/shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777", false},
	{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777", false},
	{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=755", false},
}

func mount(m mountSpec) error {
	if err := os.MkdirAll(m.target, 0o755); err != nil {
		return err
	}
	err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data)
	if errors.Is(err, unix.EBUSY) || (m.optional && errors.Is(err, unix.ENODEV)) {
		return nil // already mounted / not built into this kernel
	}
	if err != nil {
		return fmt.Errorf("mount %s on %s: %w", m.fstype, m.target, err)
	}
	return nil
}

// RunInit is main() when the agent is PID 1. It never returns: if PID 1
// exits the kernel panics, so every failure is logged and init keeps
// reaping.
//
// Why PID 1 only reaps and the SSH server is a child: PID 1 inherits every
// orphan and must wait4(-1) for them, which would steal exit statuses from
// the server's exec.Cmd children if both lived in one process. Keeping the
// server separate also lets PID 1 restart it if it crashes.
func RunInit(configPath string) {
	// Go installs handlers for all signals and its default action for
	// SIGTERM/SIGINT/... is to exit, which from PID 1 panics the kernel.
	// Catch them (rather than SIG_IGN, which children would inherit).
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT,
		syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGPWR)
	go func() {
		for s := range sigs {
			consoleLog(false, "init: ignoring signal %v", s)
		}
	}()

	if err := mount(mountSpec{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755", false}); err != nil {
		logErr("init: %v", err)
	}
	setupConsole()
	for _, m := range guestMounts {
		if err := mount(m); err != nil {
			logErr("init: %v", err)
		}
	}

	cfg, err := protocol.LoadConfig(configPath)
	if err != nil {
		logErr("init: FATAL: config: %v; powering off", err)
		time.Sleep(time.Second)
		unix.Sync()
		// A restart ends QEMU (-no-reboot) even on a machine with no
		// power-off (no ACPI); the power-off only if the restart failed.
		_ = unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
		_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
		reapForever()
	}
	_ = os.Setenv("PATH", strings.Join(cfg.PathDirs, ":"))
	enableCgroupControllers("/sys/fs/cgroup")
	setupNetwork(cfg)

	// Unratelimited /dev/kmsg so `kmsg` markers are never dropped; the
	// config may override it.
	sysctls := map[string]string{"kernel.printk_devkmsg": "on"}
	for k, v := range cfg.Sysctls {
		sysctls[k] = v
	}
	if err := ApplySysctls(sysctls); err != nil {
		logErr("init: %v", err)
	}
	// The agent (and the server child, which inherits it) must survive any
	// OOM situation it is asked to create; spawned commands get 0 back from
	// the trampoline.
	if err := os.WriteFile(procSelfOOMAdj, []byte("-1000"), 0); err != nil {
		logErr("init: oom_score_adj: %v", err)
	}

	var ln *os.File
	for ln == nil {
		if ln, err = listenFile(cfg.ListenAddr); err != nil {
			logErr("init: listen %s: %v", cfg.ListenAddr, err)
			time.Sleep(time.Second)
		}
	}
	var once sync.Once
	ready := func() {
		once.Do(func() {
			fmt.Fprintln(os.Stdout, protocol.ReadyMarker)
			consoleLog(false, "listening on %s", cfg.ListenAddr)
		})
	}
	superviseAndReap(func() (int, error) { return startServer(configPath, ln, ready) })
}

// setupConsole points stdin/stdout/stderr at /dev/console: if the initramfs
// had no /dev/console the kernel started us with nothing (or /dev/null from
// the Go runtime) on them.
func setupConsole() {
	fd, err := unix.Open("/dev/console", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	for i := 0; i < 3; i++ {
		_ = unix.Dup3(fd, i, 0)
	}
	if fd > 2 {
		unix.Close(fd)
	}
}

func enableCgroupControllers(root string) {
	data, err := os.ReadFile(root + "/cgroup.controllers")
	if err != nil {
		logErr("init: cgroup2: %v", err)
		return
	}
	// One write per controller: a single failing one must not block the
	// others (e.g. cpu with RT tasks present).
	for c := range strings.FieldsSeq(string(data)) {
		if err := writeFile(root+"/cgroup.subtree_control", []byte("+"+c)); err != nil {
			logErr("init: enable cgroup controller %s: %v", c, err)
		}
	}
}

func setupNetwork(cfg protocol.Config) {
	if _, err := os.Stat("/proc/net"); err != nil && cfg.IPCIDR == "" {
		return // a kernel without CONFIG_NET: the agent talks over a port
	}
	if err := ConfigureInterface("lo", ""); err != nil {
		logErr("init: lo: %v", err)
	}
	if cfg.IPCIDR == "" {
		return
	}
	// virtio-net may still be probing when init starts.
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; {
		err = ConfigureInterface("eth0", cfg.IPCIDR)
		if err == nil || !errors.Is(err, unix.ENODEV) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		logErr("init: eth0: %v", err)
		return
	}
	if cfg.Gateway != "" {
		if err := AddDefaultRoute(cfg.Gateway); err != nil {
			logErr("init: %v", err)
		}
	}
}

// listenFile creates the server's listening socket in PID 1. The socket
// outlives server restarts (connections queue in the backlog meanwhile) and
// exists before the ready marker is printed. For a "vport:<name>" address
// it is the open port instead, which PID 1 keeps open for the same reason
// (a host connected meanwhile sees its bytes wait in the port).
func listenFile(addr string) (*os.File, error) {
	if name := portName(addr); name != "" {
		dev, err := waitForPort(name, 10*time.Second)
		if err != nil {
			return nil, err
		}
		// Opened blocking, without the Go poller: PID 1 only holds it;
		// the server makes its copy non-blocking.
		fd, err := unix.Open(dev, unix.O_RDWR|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", dev, err)
		}
		return os.NewFile(uintptr(fd), dev), nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer l.Close() // the dup returned by File keeps the socket alive
	return l.(*net.TCPListener).File()
}

// selfPath is protocol.AgentPath when it exists (in the guest: the image
// links it to /init, and executing through it names the server and every
// trampoline "oomlab-agent"), else the binary itself (tests, other setups).
func selfPath() string {
	if _, err := os.Stat(protocol.AgentPath); err == nil {
		return protocol.AgentPath
	}
	if exe, err := os.Executable(); err == nil {
		return exe
	}
	return "/proc/self/exe"
}

// startServer starts `oomlab-agent --serve` with the listener as fd 3 and
// a readiness pipe as fd 4.
func startServer(configPath string, ln *os.File, ready func()) (int, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	self := selfPath()
	p, err := os.StartProcess(self,
		[]string{self, ServeFlag, "--config", configPath, "--listen-fd", "3", "--ready-fd", "4"},
		&os.ProcAttr{Files: []*os.File{os.Stdin, os.Stdout, os.Stderr, ln, w}})
	w.Close()
	if err != nil {
		r.Close()
		return 0, err
	}
	go func() {
		defer r.Close()
		buf := make([]byte, 16)
		if n, _ := r.Read(buf); n > 0 {
			ready()
		}
	}()
	pid := p.Pid
	// Never Wait on p: the reaper below collects it with wait4(-1).
	_ = p.Release()
	return pid, nil
}

// superviseAndReap is PID 1's main loop: wait4(-1) reaps every orphan, and
// the server is restarted (with backoff) whenever it is the one that died.
func superviseAndReap(start func() (int, error)) {
	const minBackoff, maxBackoff = 200 * time.Millisecond, 10 * time.Second
	backoff := minBackoff
	server := 0
	var started, nextStart time.Time
	for {
		if server == 0 && !time.Now().Before(nextStart) {
			pid, err := start()
			if err != nil {
				logErr("init: start server: %v", err)
				nextStart = time.Now().Add(backoff)
				backoff = min(2*backoff, maxBackoff)
			} else {
				server, started = pid, time.Now()
			}
		}
		// While no server runs, poll so that a pending restart is not
		// held up by orphans that never exit.
		opts := 0
		if server == 0 {
			opts = unix.WNOHANG
		}
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, opts, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || pid <= 0 { // ECHILD or nothing to reap (WNOHANG)
			if err != nil {
				server = 0 // cannot happen while it runs; be safe
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if pid != server {
			continue // an orphan
		}
		logErr("init: server exited (%s), restarting", describeWait(ws))
		server = 0
		if time.Since(started) > 30*time.Second {
			backoff = minBackoff
		}
		nextStart = time.Now().Add(backoff)
		backoff = min(2*backoff, maxBackoff)
	}
}

func describeWait(ws unix.WaitStatus) string {
	if ws.Signaled() {
		return "signal " + protocol.SignalName(ws.Signal())
	}
	return "status " + strconv.Itoa(ws.ExitStatus())
}

// inheritedListener is the listener PID 1 passed as fd: a TCP socket, or
// a virtio-serial port.
func inheritedListener(fd int) (net.Listener, error) {
	f := os.NewFile(uintptr(fd), "listener")
	if isCharDevice(f) {
		// Close-on-exec, so that commands do not inherit the port, and
		// non-blocking before the poller sees it (NewFile takes a
		// non-blocking fd as pollable): deadlines need the poller.
		nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
		f.Close()
		if err == nil {
			err = unix.SetNonblock(nfd, true)
		}
		if err != nil {
			return nil, fmt.Errorf("port fd %d: %w", fd, err)
		}
		return newPortListener(os.NewFile(uintptr(nfd), "vport"))
	}
	l, err := net.FileListener(f) // dups with O_CLOEXEC ...
	f.Close()                     // ... so commands do not inherit fd N
	return l, err
}

func reapForever() {
	for {
		var ws unix.WaitStatus
		if _, err := unix.Wait4(-1, &ws, 0, nil); errors.Is(err, unix.ECHILD) {
			time.Sleep(time.Second)
		}
	}
}

// ServerMain is `agent --serve [--config PATH] [--listen-fd N] [--ready-fd
// N]`: the SSH server process. Without --listen-fd it listens on
// Config.ListenAddr itself (handy for running the agent by hand).
func ServerMain(args []string) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	configPath := fs.String("config", protocol.ConfigPath, "config file")
	listenFD := fs.Int("listen-fd", -1, "inherited listening socket")
	readyFD := fs.Int("ready-fd", -1, "pipe to signal readiness on")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	cfg, err := protocol.LoadConfig(*configPath)
	if err != nil {
		logErr("serve: %v", err)
		return 1
	}
	s, err := NewServer(cfg)
	if err != nil {
		logErr("serve: %v", err)
		return 1
	}
	s.Logf = func(format string, a ...any) { consoleLog(false, format, a...) }
	s.SelfExe = selfPath()
	// Only a server started by the guest init may power the machine off.
	if os.Getppid() == 1 {
		s.Reboot = unix.Reboot
	}
	var l net.Listener
	switch {
	case *listenFD >= 0:
		l, err = inheritedListener(*listenFD)
	case portName(cfg.ListenAddr) != "":
		var f *os.File
		if f, err = openPort(portName(cfg.ListenAddr), 10*time.Second); err == nil {
			l, err = newPortListener(f)
		}
	default:
		l, err = net.Listen("tcp", cfg.ListenAddr)
	}
	if err != nil {
		logErr("serve: listen: %v", err)
		return 1
	}
	if *readyFD >= 0 {
		f := os.NewFile(uintptr(*readyFD), "ready")
		_, _ = f.WriteString("ready\n")
		f.Close()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := s.Serve(ctx, l); err != nil {
		logErr("serve: %v", err)
		return 1
	}
	return 0
}
