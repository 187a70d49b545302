package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"oomlab/harness/internal/protocol"
)

func TestSysctls(t *testing.T) {
	old := procSysDir
	procSysDir = t.TempDir()
	defer func() { procSysDir = old }()
	if p := SysctlPath("kernel.sched_rt_runtime_us"); p != filepath.Join(procSysDir, "kernel/sched_rt_runtime_us") {
		t.Errorf("SysctlPath = %s", p)
	}
	if p := SysctlPath("net/ipv4/conf/eth0.100/x"); p != filepath.Join(procSysDir, "net/ipv4/conf/eth0.100/x") {
		t.Errorf("SysctlPath with slashes = %s", p)
	}
	if p := SysctlPath("../../etc/passwd"); !strings.HasPrefix(p, procSysDir) {
		t.Errorf("SysctlPath escapes: %s", p)
	}
	if err := os.MkdirAll(filepath.Join(procSysDir, "vm"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := ApplySysctls(map[string]string{"vm.swappiness": "10", "nodir.x": "1"})
	if err == nil || !strings.Contains(err.Error(), "nodir.x") {
		t.Errorf("ApplySysctls error = %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(procSysDir, "vm/swappiness")); string(b) != "10\n" {
		t.Errorf("vm.swappiness = %q", b)
	}

	var out, errb bytes.Buffer
	s := &stdio{out: &out, err: &errb}
	if rc := bSysctl(context.Background(), s, []string{"sysctl", "vm.swappiness=60", "vm.swappiness"}); rc != 0 {
		t.Fatalf("sysctl rc=%d: %s", rc, errb.String())
	}
	if out.String() != "vm.swappiness = 60\n" {
		t.Errorf("sysctl output %q", out.String())
	}
	out.Reset()
	if rc := bSysctl(context.Background(), s, []string{"sysctl", "-n", "vm.swappiness"}); rc != 0 || out.String() != "60\n" {
		t.Errorf("sysctl -n: rc=%d out=%q", rc, out.String())
	}
	if rc := bSysctl(context.Background(), s, []string{"sysctl", "vm.nope"}); rc != 1 {
		t.Errorf("sysctl missing key rc=%d", rc)
	}
}

func TestMountUsage(t *testing.T) {
	for _, argv := range [][]string{
		{"mount"},
		{"mount", "none", "/x"},                      // no -t
		{"mount", "-t", "tmpfs", "none"},             // no DIR
		{"mount", "-t", "tmpfs", "-x", "none", "/x"}, // unknown flag
		{"mount", "-t", "tmpfs", "a", "b", "c"},
	} {
		var out, errb bytes.Buffer
		if rc := bMount(context.Background(), &stdio{out: &out, err: &errb}, argv); rc != exitUsage || !strings.Contains(errb.String(), "usage: mount") {
			t.Errorf("%q: rc=%d err=%q", argv, rc, errb.String())
		}
	}
}

func TestFileBuiltins(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	s := &stdio{out: &out, err: &errb}
	ctx := context.Background()

	if rc := bMkdir(ctx, s, []string{"mkdir", "-p", dir + "/a/b/c"}); rc != 0 {
		t.Fatalf("mkdir -p: %s", errb.String())
	}
	if rc := bWrite(ctx, s, []string{"write", dir + "/a/f", "3", "x"}); rc != 0 {
		t.Fatalf("write: %s", errb.String())
	}
	if rc := bCat(ctx, s, []string{"cat", dir + "/a/f", dir + "/a/f"}); rc != 0 || out.String() != "3 x\n3 x\n" {
		t.Errorf("cat rc=%d out=%q", rc, out.String())
	}
	out.Reset()
	if rc := bCat(ctx, s, []string{"cat", dir + "/missing"}); rc != 1 || !strings.Contains(errb.String(), "missing") {
		t.Errorf("cat missing rc=%d err=%q", rc, errb.String())
	}

	old := kmsgPath
	kmsgPath = dir + "/kmsg"
	defer func() { kmsgPath = old }()
	if rc := bKmsg(ctx, s, []string{"kmsg", "oomlab:", "mark", "1"}); rc != 0 {
		t.Fatal(errb.String())
	}
	if b, _ := os.ReadFile(kmsgPath); string(b) != "oomlab: mark 1\n" {
		t.Errorf("kmsg wrote %q", b)
	}
}

func TestSleepCancel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	var errb bytes.Buffer
	if rc := bSleep(ctx, &stdio{out: &errb, err: &errb}, []string{"sleep", "30"}); rc == 0 {
		t.Error("cancelled sleep returned 0")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("sleep not interrupted (%v)", d)
	}
	if rc := bSleep(context.Background(), &stdio{out: &errb, err: &errb}, []string{"sleep", "0.01"}); rc != 0 {
		t.Errorf("sleep 0.01 rc=%d", rc)
	}
}

func TestParseVMStat(t *testing.T) {
	m := parseVMStat([]byte("nr_free_pages 123\noom_kill 2\npgscan_kswapd 10\nbogus\n"))
	if m["oom_kill"] != 2 || m["pgscan_kswapd"] != 10 || m["nr_free_pages"] != 123 || len(m) != 3 {
		t.Errorf("parseVMStat = %v", m)
	}
}

func TestCollector(t *testing.T) {
	c, err := newCollector("/proc")
	if err != nil {
		t.Fatal(err)
	}
	a := c.sample()
	time.Sleep(20 * time.Millisecond)
	b := c.sample()
	if len(a.Errors) != 0 {
		t.Errorf("sample errors: %v", a.Errors)
	}
	if a.MemTotalKB == 0 || a.MemAvailableKB > a.MemTotalKB || a.MemFreeKB > a.MemTotalKB {
		t.Errorf("implausible meminfo: %+v", a)
	}
	if b.Seq != a.Seq+1 || b.Mono <= a.Mono {
		t.Errorf("seq/mono not increasing: %v/%v %v/%v", a.Seq, b.Seq, a.Mono, b.Mono)
	}
	if !a.VMEvents {
		t.Errorf("host kernel without vm event counters?")
	}
	if a.ProcsRunning == 0 {
		t.Errorf("procs_running = 0 while we run")
	}
	// The JSON names are the wire format shared with package guest.
	data, _ := json.Marshal(a)
	for _, k := range []string{`"mono":`, `"oom_kill":`, `"mem_available_kb":`, `"pgscan":`, `"psi":`, `"procs_blocked":`} {
		if !bytes.Contains(data, []byte(k)) {
			t.Errorf("sample JSON lacks %s: %s", k, data)
		}
	}
}

func TestMetricsBuiltin(t *testing.T) {
	var out, errb bytes.Buffer
	rc := bMetrics(context.Background(), &stdio{out: &out, err: &errb}, []string{"metrics", "--interval-ms", "10", "--count=3"})
	if rc != 0 {
		t.Fatalf("rc=%d %s", rc, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines: %q", len(lines), out.String())
	}
	for i, l := range lines {
		var s protocol.Sample
		if err := json.Unmarshal([]byte(l), &s); err != nil || s.Seq != i {
			t.Errorf("line %d: %v %+v", i, err, s)
		}
	}
	if rc := bMetrics(context.Background(), &stdio{out: &out, err: &errb}, []string{"metrics", "--bogus", "1"}); rc != exitUsage {
		t.Errorf("bad option rc=%d", rc)
	}
}

func TestListProcs(t *testing.T) {
	procs, err := ListProcs()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		if p.PID == os.Getpid() {
			if p.Threads < 1 || p.RSSKB <= 0 || p.Policy == "" || p.PPID != os.Getppid() {
				t.Errorf("self = %+v", p)
			}
			return
		}
	}
	t.Errorf("own pid %d not listed", os.Getpid())
}

func TestNewServerRejectsJunkKey(t *testing.T) {
	if _, err := NewServer(protocol.Config{HostKeyPEM: "junk"}); err == nil {
		t.Error("NewServer accepted a junk host key")
	}
}

func TestRtentryLayout(t *testing.T) {
	// sizeof(struct rtentry) on 64-bit Linux; offsets of the used fields.
	var rt rtentry
	if s := unsafe.Sizeof(rt); s != 120 {
		t.Errorf("sizeof(rtentry) = %d, want 120", s)
	}
	if o := unsafe.Offsetof(rt.flags); o != 56 {
		t.Errorf("offsetof(rt_flags) = %d, want 56", o)
	}
	if o := unsafe.Offsetof(rt.dev); o != 88 {
		t.Errorf("offsetof(rt_dev) = %d, want 88", o)
	}
}

// TestNetworkSetup runs ConfigureInterface/AddDefaultRoute for real inside
// a fresh network namespace (a re-exec of the test binary).
func TestNetworkSetup(t *testing.T) {
	if os.Getenv("OOMLAB_NETNS_CHILD") == "1" {
		netnsChild(t)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestNetworkSetup$", "-test.v")
	cmd.Env = append(os.Environ(), "OOMLAB_NETNS_CHILD=1")
	cmd.SysProcAttr = &unix.SysProcAttr{Cloneflags: unix.CLONE_NEWNET}
	out, err := cmd.CombinedOutput()
	if err != nil && strings.Contains(err.Error(), "operation not permitted") {
		t.Skipf("cannot create network namespace: %v", err)
	}
	if err != nil || !strings.Contains(string(out), "NETNS-OK") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func netnsChild(t *testing.T) {
	if err := ConfigureInterface("lo", "10.9.0.1/24"); err != nil {
		t.Fatal(err)
	}
	if err := AddDefaultRoute("10.9.0.2"); err != nil {
		t.Fatal(err)
	}
	if err := AddDefaultRoute("10.9.0.2"); err != nil {
		t.Fatalf("adding the same route twice: %v", err)
	}
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if lo.Flags&net.FlagUp == 0 {
		t.Errorf("lo not up: %v", lo.Flags)
	}
	addrs, _ := lo.Addrs()
	found := false
	for _, a := range addrs {
		found = found || a.String() == "10.9.0.1/24"
	}
	if !found {
		t.Errorf("lo addresses %v lack 10.9.0.1/24", addrs)
	}
	routes, _ := os.ReadFile("/proc/net/route")
	// Iface Destination Gateway(little-endian hex) ...
	if !hasDefaultRoute(string(routes), "lo", "0200090A") {
		t.Errorf("no default route via 10.9.0.2 in\n%s", routes)
	}
	if err := ConfigureInterface("nonexistent0", ""); err == nil {
		t.Error("configuring a missing interface succeeded")
	}
	if !t.Failed() {
		t.Log("NETNS-OK")
	}
}

func hasDefaultRoute(table, dev, gwHex string) bool {
	for _, l := range strings.Split(table, "\n") {
		f := strings.Fields(l)
		if len(f) > 2 && f[0] == dev && f[1] == "00000000" && strings.EqualFold(f[2], gwHex) {
			return true
		}
	}
	return false
}

// exists answers for every path, a directory and a write-only file
// included, and the host reads the answer back.
func TestExistsBuiltin(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/wo", nil, 0o200); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	s := &stdio{out: &out, err: &errb}
	if rc := bExists(context.Background(), s, []string{protocol.CmdExists, dir, dir + "/wo", dir + "/missing"}); rc != 0 {
		t.Fatalf("rc %d: %s", rc, errb.String())
	}
	want := "1 " + dir + "\n1 " + dir + "/wo\n0 " + dir + "/missing\n"
	if out.String() != want {
		t.Errorf("out %q, want %q", out.String(), want)
	}
	m := protocol.ParseExists(out.String())
	if !m[dir] || !m[dir+"/wo"] || m[dir+"/missing"] || len(m) != 3 {
		t.Errorf("ParseExists = %v", m)
	}
	if got := protocol.ExistsCommand("/a b", "/c"); got != `exists '/a b' /c` && got != `exists "/a b" /c` {
		t.Logf("ExistsCommand = %s", got)
	}
}
