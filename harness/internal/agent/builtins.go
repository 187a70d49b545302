package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"oomlab/harness/internal/protocol"
)

// Paths used by builtins; variables so unit tests can redirect them.
var (
	procRoot   = "/proc"
	procSysDir = "/proc/sys"
	kmsgPath   = "/dev/kmsg"
)

// stdio is what a builtin talks to. srv is nil when the builtin runs in its
// own process (`run [opts] -- BUILTIN`).
type stdio struct {
	in       io.Reader
	out, err io.Writer
	srv      *Server
}

func (s *stdio) errorf(name, format string, a ...any) {
	fmt.Fprintf(s.err, name+": "+format+"\n", a...)
}

type builtin struct {
	fn func(ctx context.Context, s *stdio, argv []string) int
	// inProcessOnly builtins make no sense as a separate process.
	inProcessOnly bool
}

// builtins implemented inside the agent: there is no shell and no coreutils
// in the guest. Those the host calls by name are named in package protocol.
// Assigned in init: bMetrics and bReboot refer back to the map's users.
var builtins map[string]builtin

func init() {
	builtins = map[string]builtin{
		"cat":               {fn: bCat},
		"echo":              {fn: bEcho},
		protocol.CmdExists:  {fn: bExists},
		"false":             {fn: func(context.Context, *stdio, []string) int { return 1 }},
		"kill":              {fn: bKill},
		protocol.CmdKmsg:    {fn: bKmsg},
		protocol.CmdMetrics: {fn: bMetrics},
		"mkdir":             {fn: bMkdir},
		"mount":             {fn: bMount},
		// The guest ends by a restart: QEMU runs it under -no-reboot,
		// so a restart (a triple fault with reboot=t) ends QEMU on any
		// machine, where a power-off needs ACPI, which the microvm has
		// not (the kernel would only halt the CPUs).
		protocol.CmdPoweroff: {fn: bReboot(unix.LINUX_REBOOT_CMD_RESTART), inProcessOnly: true},
		protocol.CmdPs:       {fn: bPs},
		"reboot":             {fn: bReboot(unix.LINUX_REBOOT_CMD_RESTART), inProcessOnly: true},
		"sleep":              {fn: bSleep},
		"sysctl":             {fn: bSysctl},
		protocol.CmdTrue:     {fn: func(context.Context, *stdio, []string) int { return 0 }},
		protocol.CmdUptime:   {fn: bUptime},
		"write":              {fn: bWrite},
	}
}

// BuiltinMain runs `agent --builtin NAME ARGS` in the current process with
// the process's stdio and returns the exit code. Signals keep their default
// dispositions so that e.g. SIGKILL/SIGTERM are reported as exit-signal.
func BuiltinMain(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "oomlab-agent: --builtin needs a name")
		return exitUsage
	}
	b, ok := builtins[args[0]]
	if !ok || b.inProcessOnly {
		fmt.Fprintf(os.Stderr, "oomlab-agent: %s: not a process builtin\n", args[0])
		return exitNotFound
	}
	return b.fn(context.Background(), &stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr}, args)
}

// exists PATH...: one line per path, "1 PATH" if it exists (lstat), else
// "0 PATH"; exit 0. There is no test(1) in the guest: the host checks a
// scenario's requirements with this (protocol.ExistsCommand).
func bExists(_ context.Context, s *stdio, argv []string) int {
	for _, name := range argv[1:] {
		flag := "1"
		if _, err := os.Lstat(name); err != nil {
			flag = "0"
		}
		fmt.Fprintf(s.out, "%s %s\n", flag, name)
	}
	return 0
}

func bCat(_ context.Context, s *stdio, argv []string) int {
	rc := 0
	for _, name := range argv[1:] {
		f, err := os.Open(name)
		if err != nil {
			s.errorf("cat", "%v", err)
			rc = 1
			continue
		}
		_, err = io.Copy(s.out, f)
		f.Close()
		if err != nil {
			s.errorf("cat", "%s: %v", name, err)
			rc = 1
		}
	}
	return rc
}

func bEcho(_ context.Context, s *stdio, argv []string) int {
	args, nl := argv[1:], "\n"
	if len(args) > 0 && args[0] == "-n" {
		args, nl = args[1:], ""
	}
	fmt.Fprint(s.out, strings.Join(args, " ")+nl)
	return 0
}

// writeFile writes data with a single write(2): procfs/sysfs handlers act
// on each write call separately.
func writeFile(name string, data []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// write [-n] FILE VALUE...: like `echo VALUE > FILE`.
func bWrite(_ context.Context, s *stdio, argv []string) int {
	args, nl := argv[1:], "\n"
	if len(args) > 0 && args[0] == "-n" {
		args, nl = args[1:], ""
	}
	if len(args) < 1 {
		s.errorf("write", "usage: write [-n] FILE VALUE...")
		return exitUsage
	}
	if err := writeFile(args[0], []byte(strings.Join(args[1:], " ")+nl)); err != nil {
		s.errorf("write", "%v", err)
		return 1
	}
	return 0
}

// SysctlPath maps "vm.overcommit_memory" (or "vm/overcommit_memory") to its
// file below /proc/sys.
func SysctlPath(key string) string {
	if !strings.Contains(key, "/") {
		key = strings.ReplaceAll(key, ".", "/")
	}
	return filepath.Join(procSysDir, filepath.Clean("/"+key))
}

// ApplySysctls writes every key=value pair (keys sorted, all attempted) and
// returns the joined errors.
func ApplySysctls(m map[string]string) error {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []error
	for _, k := range keys {
		if err := writeFile(SysctlPath(k), []byte(m[k]+"\n")); err != nil {
			errs = append(errs, fmt.Errorf("sysctl %s=%s: %w", k, m[k], err))
		}
	}
	return errors.Join(errs...)
}

// sysctl [-n] KEY[=VALUE]...: writes assignments, prints "KEY = VALUE"
// (just VALUE with -n) for reads.
func bSysctl(_ context.Context, s *stdio, argv []string) int {
	args, valueOnly := argv[1:], false
	if len(args) > 0 && args[0] == "-n" {
		args, valueOnly = args[1:], true
	}
	if len(args) == 0 {
		s.errorf("sysctl", "usage: sysctl [-n] KEY[=VALUE]...")
		return exitUsage
	}
	rc := 0
	for _, a := range args {
		if k, v, ok := strings.Cut(a, "="); ok {
			if err := writeFile(SysctlPath(k), []byte(v+"\n")); err != nil {
				s.errorf("sysctl", "%s: %v", k, err)
				rc = 1
			}
			continue
		}
		data, err := os.ReadFile(SysctlPath(a))
		if err != nil {
			s.errorf("sysctl", "%s: %v", a, err)
			rc = 1
			continue
		}
		v := strings.TrimRight(string(data), "\n")
		if valueOnly {
			fmt.Fprintln(s.out, v)
		} else {
			fmt.Fprintf(s.out, "%s = %s\n", a, v)
		}
	}
	return rc
}

func bMkdir(_ context.Context, s *stdio, argv []string) int {
	args, parents := argv[1:], false
	if len(args) > 0 && args[0] == "-p" {
		args, parents = args[1:], true
	}
	if len(args) == 0 {
		s.errorf("mkdir", "usage: mkdir [-p] DIR...")
		return exitUsage
	}
	rc := 0
	for _, d := range args {
		var err error
		if parents {
			err = os.MkdirAll(d, 0o755)
		} else {
			err = os.Mkdir(d, 0o755)
		}
		if err != nil {
			s.errorf("mkdir", "%v", err)
			rc = 1
		}
	}
	return rc
}

// mount -t TYPE [-o OPTS] SOURCE DIR: mount(2), creating DIR first. The
// agent mounts what every guest needs at boot; scenarios mount the rest
// (the cgroup v1 freezer, a tmpfs of a given size) in their setup.
func bMount(_ context.Context, s *stdio, argv []string) int {
	var fstype, opts string
	var pos []string
	args := argv[1:]
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case (a == "-t" || a == "-o") && i+1 < len(args):
			if a == "-t" {
				fstype = args[i+1]
			} else {
				opts = args[i+1]
			}
			i++
		case strings.HasPrefix(a, "-"):
			pos = nil
			i = len(args)
		default:
			pos = append(pos, a)
		}
	}
	if fstype == "" || len(pos) != 2 {
		s.errorf("mount", "usage: mount -t TYPE [-o OPTS] SOURCE DIR")
		return exitUsage
	}
	if err := os.MkdirAll(pos[1], 0o755); err != nil {
		s.errorf("mount", "%v", err)
		return 1
	}
	if err := unix.Mount(pos[0], pos[1], fstype, 0, opts); err != nil {
		s.errorf("mount", "%s on %s (%s, %q): %v", pos[0], pos[1], fstype, opts, err)
		return 1
	}
	return 0
}

// kmsg TEXT...: one line into the kernel log, so markers share the printk
// clock with OOM reports.
func bKmsg(_ context.Context, s *stdio, argv []string) int {
	if err := writeFile(kmsgPath, []byte(strings.Join(argv[1:], " ")+"\n")); err != nil {
		s.errorf("kmsg", "%v", err)
		return 1
	}
	return 0
}

// kill [-SIG] PID...: negative PIDs address process groups.
func bKill(_ context.Context, s *stdio, argv []string) int {
	args, sig := argv[1:], syscall.SIGTERM
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	} else if len(args) > 0 && strings.HasPrefix(args[0], "-") {
		n, ok := protocol.ParseSignal(strings.TrimPrefix(args[0], "-"))
		if !ok {
			s.errorf("kill", "unknown signal %s", args[0])
			return exitUsage
		}
		sig, args = n, args[1:]
		if len(args) > 0 && args[0] == "--" {
			args = args[1:]
		}
	}
	if len(args) == 0 {
		s.errorf("kill", "usage: kill [-SIG] [--] PID...")
		return exitUsage
	}
	rc := 0
	for _, a := range args {
		pid, err := strconv.Atoi(a)
		if err == nil {
			err = syscall.Kill(pid, sig)
		}
		if err != nil {
			s.errorf("kill", "%s: %v", a, err)
			rc = 1
		}
	}
	return rc
}

func bSleep(ctx context.Context, s *stdio, argv []string) int {
	if len(argv) != 2 {
		s.errorf("sleep", "usage: sleep SECONDS")
		return exitUsage
	}
	d, err := time.ParseDuration(argv[1])
	if err != nil {
		f, ferr := strconv.ParseFloat(argv[1], 64)
		if ferr != nil || f < 0 {
			s.errorf("sleep", "bad duration %q", argv[1])
			return exitUsage
		}
		d = time.Duration(f * float64(time.Second))
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return 0
	case <-ctx.Done():
		return 1
	}
}

func bUptime(_ context.Context, s *stdio, _ []string) int {
	u := protocol.Uptime{MonoS: Monotonic()}
	data, err := os.ReadFile(procRoot + "/uptime")
	if err == nil {
		f := strings.Fields(string(data))
		if len(f) > 0 {
			u.UptimeS, _ = strconv.ParseFloat(f[0], 64)
		}
	}
	if fs, ferr := procfs.NewFS(procRoot); ferr == nil {
		if la, lerr := fs.LoadAvg(); lerr == nil {
			u.Load1, u.Load5, u.Load15 = la.Load1, la.Load5, la.Load15
		}
	}
	if err != nil {
		s.errorf("uptime", "%v", err)
		return 1
	}
	return writeJSON(s, "uptime", u)
}

func writeJSON(s *stdio, name string, v any) int {
	if err := json.NewEncoder(s.out).Encode(v); err != nil {
		s.errorf(name, "%v", err)
		return 1
	}
	return 0
}

// ListProcs reads every process from /proc. Processes that exit while
// being read are skipped.
func ListProcs() ([]protocol.ProcInfo, error) {
	fs, err := procfs.NewFS(procRoot)
	if err != nil {
		return nil, err
	}
	procs, err := fs.AllProcs()
	if err != nil {
		return nil, err
	}
	out := make([]protocol.ProcInfo, 0, len(procs))
	for _, p := range procs {
		st, err := p.Stat()
		if err != nil {
			continue
		}
		pi := protocol.ProcInfo{
			PID:     st.PID,
			PPID:    st.PPID,
			Comm:    st.Comm,
			State:   st.State,
			Policy:  protocol.PolicyName(st.Policy),
			RTPrio:  st.RTPriority,
			Nice:    st.Nice,
			RSSKB:   st.ResidentMemory() / 1024,
			Threads: st.NumThreads,
		}
		if data, err := os.ReadFile(fmt.Sprintf("%s/%d/oom_score_adj", procRoot, st.PID)); err == nil {
			pi.OOMScoreAdj, _ = strconv.Atoi(strings.TrimSpace(string(data)))
		}
		if cl, err := p.CmdLine(); err == nil {
			pi.Cmdline = strings.Join(cl, " ")
		}
		out = append(out, pi)
	}
	return out, nil
}

func bPs(_ context.Context, s *stdio, _ []string) int {
	procs, err := ListProcs()
	if err != nil {
		s.errorf("ps", "%v", err)
		return 1
	}
	return writeJSON(s, "ps", procs)
}

// metrics [--interval-ms N] [--count N]: one JSON Sample per line, the
// first immediately, until the count is reached or the session ends.
func bMetrics(ctx context.Context, s *stdio, argv []string) int {
	interval, count := 1000, 0
	args := argv[1:]
	for i := 0; i < len(args); i++ {
		name, val, hasVal := strings.Cut(args[i], "=")
		if !hasVal && i+1 < len(args) {
			i++
			val = args[i]
		}
		n, err := strconv.Atoi(val)
		if err != nil || n < 0 {
			s.errorf("metrics", "bad value for %s", name)
			return exitUsage
		}
		switch name {
		case "--interval-ms":
			interval = max(n, 10)
		case "--count":
			count = n
		default:
			s.errorf("metrics", "usage: metrics [--interval-ms N] [--count N]")
			return exitUsage
		}
	}
	c, err := newCollector(procRoot)
	if err != nil {
		s.errorf("metrics", "%v", err)
		return 1
	}
	enc := json.NewEncoder(s.out)
	t := time.NewTicker(time.Duration(interval) * time.Millisecond)
	defer t.Stop()
	for n := 0; count == 0 || n < count; n++ {
		if n > 0 {
			select {
			case <-ctx.Done():
				return 0
			case <-t.C:
			}
		}
		if err := enc.Encode(c.sample()); err != nil {
			return 1 // session gone
		}
	}
	return 0
}

// bReboot powers off / reboots after the exit status had time to reach the
// host (~100 ms), so the host sees the command succeed.
func bReboot(cmd int) func(context.Context, *stdio, []string) int {
	return func(_ context.Context, s *stdio, argv []string) int {
		if s.srv == nil || s.srv.Reboot == nil {
			s.errorf(argv[0], "not available (agent is not the guest init)")
			return 1
		}
		reboot := s.srv.Reboot
		time.AfterFunc(100*time.Millisecond, func() {
			unix.Sync()
			if err := reboot(cmd); err != nil {
				s.srv.logf("%s: %v", argv[0], err)
			}
		})
		return 0
	}
}
