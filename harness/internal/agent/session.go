package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"oomlab/harness/internal/protocol"
)

// exitInfo is what is reported back on the channel.
type exitInfo struct {
	code   int
	signal string // non-empty: report exit-signal instead of exit-status
	core   bool
}

// signalCause is the context cause used when a builtin is "killed" by a
// signal request.
type signalCause struct{ sig syscall.Signal }

func (c signalCause) Error() string { return "signal " + protocol.SignalName(c.sig) }

// session is one "session" channel.
type session struct {
	srv    *Server
	ch     ssh.Channel
	ctx    context.Context // cancelled when the channel goes away or on a builtin signal
	cancel context.CancelCauseFunc

	mu      sync.Mutex
	pgid    int              // process group of the running external command
	pending []syscall.Signal // signals that arrived before the process existed
	gone    bool             // channel closed by the peer
}

func (s *Server) handleSession(ctx context.Context, nc ssh.NewChannel) {
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	defer ch.Close()
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ss := &session{srv: s, ch: ch, ctx: sctx, cancel: cancel}

	var done chan struct{}
	for req := range reqs {
		switch req.Type {
		case "exec":
			var p struct{ Command string }
			if done != nil || ssh.Unmarshal(req.Payload, &p) != nil {
				_ = req.Reply(false, nil)
				continue
			}
			_ = req.Reply(true, nil)
			done = make(chan struct{})
			go func() {
				defer close(done)
				ss.report(ss.execute(p.Command))
			}()
		case "signal":
			var p struct{ Signal string }
			if ssh.Unmarshal(req.Payload, &p) != nil {
				_ = req.Reply(false, nil)
				continue
			}
			sig, ok := protocol.ParseSignal(p.Signal)
			if ok {
				ss.signal(sig)
			}
			_ = req.Reply(ok, nil)
		case "env":
			// Accepted and ignored: commands get the agent's environment.
			_ = req.Reply(true, nil)
		default:
			// pty-req, shell, subsystem, x11-req, ...: no shell, no tty.
			_ = req.Reply(false, nil)
		}
	}
	// The request channel closes when the peer closed the channel (or the
	// connection died): the client is gone, kill whatever still runs.
	ss.mu.Lock()
	ss.gone = true
	pgid := ss.pgid
	ss.mu.Unlock()
	if pgid > 0 {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
	cancel(context.Canceled)
	if done != nil {
		<-done
	}
}

// signal forwards sig to the running command's process group, queues it if
// the process is not started yet, or cancels a running builtin.
func (ss *session) signal(sig syscall.Signal) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.pgid > 0 {
		_ = syscall.Kill(-ss.pgid, sig)
		return
	}
	ss.pending = append(ss.pending, sig)
	ss.cancel(signalCause{sig})
}

// report sends exit-status or exit-signal and closes the channel.
func (ss *session) report(e exitInfo) {
	if e.signal != "" {
		_, _ = ss.ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
			Signal     string
			CoreDumped bool
			Error      string
			Lang       string
		}{e.signal, e.core, "", ""}))
	} else {
		_, _ = ss.ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(e.code)}))
	}
	_ = ss.ch.CloseWrite()
	_ = ss.ch.Close()
}

// execute parses and runs one command line.
func (ss *session) execute(cmdline string) exitInfo {
	stderr := ss.ch.Stderr()
	argv, err := protocol.SplitWords(cmdline)
	if err != nil {
		fmt.Fprintf(stderr, "oomlab-agent: %v\n", err)
		return exitInfo{code: exitUsage}
	}
	if len(argv) == 0 {
		return exitInfo{}
	}
	var opts protocol.Spawn
	explicitRun := argv[0] == protocol.CmdRun
	if explicitRun {
		opts, argv, err = protocol.ParseRunArgs(argv[1:])
		if err == nil && len(argv) == 0 {
			err = errors.New("missing command")
		}
		if err != nil {
			fmt.Fprintf(stderr, "run: %v\n", err)
			return exitInfo{code: exitUsage}
		}
	}
	if b, ok := builtins[argv[0]]; ok {
		if !explicitRun {
			return ss.runBuiltin(b, argv)
		}
		if b.inProcessOnly {
			fmt.Fprintf(stderr, "run: %s cannot run as a separate process\n", argv[0])
			return exitInfo{code: exitUsage}
		}
		// `run [opts] -- BUILTIN`: the builtin runs in its own process so
		// the options apply to it (e.g. an idle `sleep` in a cgroup).
		argv = append([]string{ss.srv.selfExe(), BuiltinFlag}, argv...)
		return ss.runExternal(opts, argv)
	}
	path, err := lookPath(argv[0], ss.srv.cfg.PathDirs)
	if err != nil {
		fmt.Fprintf(stderr, "oomlab-agent: %s: %v\n", argv[0], err)
		return exitInfo{code: exitNotFound}
	}
	argv[0] = path
	return ss.runExternal(opts, argv)
}

func (s *Server) selfExe() string {
	if s.SelfExe == "" {
		return "/proc/self/exe"
	}
	return s.SelfExe
}

var errNotFound = errors.New("command not found")

// lookPath resolves name like a shell with PATH=dirs would (names with a
// slash are used as they are).
func lookPath(name string, dirs []string) (string, error) {
	check := func(p string) error {
		fi, err := os.Stat(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return errNotFound
			}
			return err
		}
		if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			return errors.New("permission denied")
		}
		return nil
	}
	if strings.Contains(name, "/") {
		return name, check(name)
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if check(p) == nil {
			return p, nil
		}
	}
	return "", errNotFound
}

func (ss *session) runBuiltin(b builtin, argv []string) exitInfo {
	ctx := ss.ctx
	code := b.fn(ctx, &stdio{in: ss.ch, out: ss.ch, err: ss.ch.Stderr(), srv: ss.srv}, argv)
	var sc signalCause
	if errors.As(context.Cause(ctx), &sc) {
		return exitInfo{code: 128 + int(sc.sig), signal: protocol.SignalName(sc.sig)}
	}
	return exitInfo{code: code}
}

// runExternal starts argv through the trampoline in a new process group and
// streams its stdio over the channel.
func (ss *session) runExternal(opts protocol.Spawn, argv []string) exitInfo {
	stderr := ss.ch.Stderr()
	fail := func(err error) exitInfo {
		fmt.Fprintf(stderr, "oomlab-agent: %s: %v\n", argv[0], err)
		return exitInfo{code: exitCannotExec}
	}
	args := append([]string{ss.srv.selfExe(), SpawnFlag}, opts.Args()...)
	args = append(append(args, "--"), argv...)

	// Plain os.Pipe()s instead of io.Writer fields in exec.Cmd: Cmd.Wait
	// would otherwise block until every holder of the pipe (for example a
	// daemonised grandchild) closed it; drain() below bounds that wait.
	inR, inW, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return fail(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		outR.Close()
		outW.Close()
		return fail(err)
	}
	cmd := &exec.Cmd{
		Path:   ss.srv.selfExe(),
		Args:   args,
		Env:    ss.srv.env,
		Stdin:  inR,
		Stdout: outW,
		Stderr: errW,
		// Own process group so signals and the final SIGKILL reach the
		// command's children too.
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	err = cmd.Start()
	inR.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		errR.Close()
		return fail(err)
	}

	ss.mu.Lock()
	ss.pgid = cmd.Process.Pid
	if ss.gone {
		_ = syscall.Kill(-ss.pgid, syscall.SIGKILL)
	}
	for _, sig := range ss.pending {
		_ = syscall.Kill(-ss.pgid, sig)
	}
	ss.pending = nil
	ss.mu.Unlock()

	go func() {
		_, _ = io.Copy(inW, ss.ch)
		inW.Close()
	}()
	copiers := []*copier{newCopier(ss.ch, outR), newCopier(ss.ch.Stderr(), errR)}

	_ = cmd.Wait()
	inW.Close()
	for _, c := range copiers {
		c.drain(ss.srv.OutputGrace)
	}
	ss.mu.Lock()
	ss.pgid = 0
	ss.mu.Unlock()

	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	how := fmt.Sprintf("status=%d", ws.ExitStatus())
	if ws.Signaled() {
		how = "signal=" + protocol.SignalName(ws.Signal())
	}
	// Timestamped by the kernel: the host measures OOM kill -> exit on one
	// clock. (The trampoline execs the command, so the pid is the command's.)
	kmsgMark(fmt.Sprintf("oomlab-agent: exit pid=%d comm=%s %s", cmd.Process.Pid, commOf(argv[0]), how))
	if ws.Signaled() {
		return exitInfo{code: 128 + int(ws.Signal()), signal: protocol.SignalName(ws.Signal()), core: ws.CoreDump()}
	}
	return exitInfo{code: ws.ExitStatus()}
}

// copier moves one output pipe to the channel and remembers when it last
// saw data so drain() can tell "still flushing" from "held open by a
// background process that writes nothing".
type copier struct {
	r    *os.File
	done chan struct{}

	mu       sync.Mutex
	reading  bool
	lastData time.Time
}

func newCopier(w io.Writer, r *os.File) *copier {
	c := &copier{r: r, done: make(chan struct{}), lastData: time.Now()}
	go func() {
		defer close(c.done)
		defer r.Close()
		buf := make([]byte, 32*1024)
		for {
			c.setReading(true)
			n, err := r.Read(buf)
			c.setReading(false)
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	return c
}

func (c *copier) setReading(r bool) {
	c.mu.Lock()
	c.reading = r
	c.lastData = time.Now()
	c.mu.Unlock()
}

// drain waits for EOF, but gives up once the copier has been idle waiting
// for data for longer than grace. Closing the read end unblocks the Read
// (os.Pipe files are pollable).
func (c *copier) drain(grace time.Duration) {
	if grace <= 0 {
		grace = 500 * time.Millisecond
	}
	t := time.NewTicker(grace / 4)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			c.mu.Lock()
			idle := c.reading && time.Since(c.lastData) > grace
			c.mu.Unlock()
			if idle {
				c.r.Close()
				<-c.done
				return
			}
		}
	}
}
