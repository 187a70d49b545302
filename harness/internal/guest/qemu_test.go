package guest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"oomlab/harness/internal/protocol"
	"oomlab/harness/internal/vm"
)

// TestQEMUBoot boots the agent as /init of a real kernel and provokes an OOM
// kill. It needs a bzImage and qemu-system-x86_64, so it only runs when
// OOMLAB_AGENT_KERNEL points at a kernel (the full end-to-end suite lives
// in harness/e2e):
//
//	OOMLAB_AGENT_KERNEL=.../bzImage go test -run TestQEMUBoot -v ./harness/internal/guest/
func TestQEMUBoot(t *testing.T) {
	kernel := os.Getenv("OOMLAB_AGENT_KERNEL")
	if kernel == "" {
		t.Skip("OOMLAB_AGENT_KERNEL not set")
	}
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skip("no qemu-system-x86_64")
	}
	bin := agentBinary(t)
	if !realBin {
		t.Skip("needs the built agent binary")
	}
	dir := t.TempDir()
	hog := buildHog(t, dir)

	keys, err := NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	cfg := protocol.Config{
		ListenAddr: protocol.VportPrefix + vm.AgentPort,
		PathDirs:   []string{"/bin"},
		Sysctls:    map[string]string{"vm.oom_dump_tasks": "0"},
	}
	keys.Apply(&cfg)
	cfgJSON, _ := json.Marshal(cfg)
	agentData, _ := os.ReadFile(bin)
	hogData, _ := os.ReadFile(hog)
	var cpio newc
	cpio.dir("dev")
	cpio.chardev("dev/console", 5, 1)
	cpio.dir("etc")
	cpio.dir("etc/oomlab")
	cpio.file("etc/oomlab/agent.json", cfgJSON, 0o600)
	cpio.dir("bin")
	cpio.file("bin/hog", hogData, 0o755)
	cpio.file("init", agentData, 0o755)
	initrd := filepath.Join(dir, "initrd")
	if err := os.WriteFile(initrd, cpio.finish(), 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ready := make(chan struct{})
	var once sync.Once
	var log syncBuffer
	m, err := vm.Start(ctx, vm.Config{QEMU: qemu, Kernel: kernel, Initrd: initrd, Cmdline: "panic=-1 loglevel=4",
		CPUs: 2, MemoryMB: 256, Accel: "tcg", OnLine: func(line []byte) {
			fmt.Fprintln(&log, string(line))
			if bytes.Contains(line, []byte(protocol.ReadyMarker)) {
				once.Do(func() { close(ready) })
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop(2 * time.Second)
	bootStart := time.Now()
	select {
	case <-ready:
		t.Logf("ready after %v", time.Since(bootStart))
	case <-time.After(3 * time.Minute):
		t.Fatalf("no ready marker; console:\n%s", log.String())
	}

	c, err := Dial(ctx, m.AgentSock, keys, 10*time.Second)
	if err != nil {
		t.Fatalf("%v; console:\n%s", err, log.String())
	}
	defer c.Close()
	out, err := c.Output(ctx, "ps")
	if err != nil {
		t.Fatal(err)
	}
	var procs []protocol.ProcInfo
	_ = json.Unmarshal(out, &procs)
	for _, p := range procs {
		if p.PID == 1 && p.OOMScoreAdj != -1000 {
			t.Errorf("PID 1: %+v", p)
		}
		if p.PPID == 1 && p.OOMScoreAdj != -1000 {
			t.Errorf("server: %+v", p)
		}
	}
	if out, err := c.Output(ctx, "sysctl -n vm.oom_dump_tasks kernel.printk_devkmsg"); err != nil || string(out) != "0\non\n" {
		t.Errorf("sysctls: %q %v", out, err)
	}
	if out, err := c.Output(ctx, "cat /proc/self/oom_score_adj"); err != nil || string(out) != "-1000\n" {
		t.Errorf("agent oom_score_adj: %q %v", out, err)
	}
	if out, err := c.Output(ctx, "run -- cat /proc/self/oom_score_adj"); err != nil || string(out) != "0\n" {
		t.Errorf("spawned oom_score_adj: %q %v", out, err)
	}
	if _, err := c.Output(ctx, "kmsg oomlab: before hog"); err != nil {
		t.Error(err)
	}
	if out, err := c.Output(ctx, "run --policy fifo --prio 10 --cpus 1 -- cat /proc/self/stat"); err != nil {
		t.Error(err)
	} else if p, prio, cpu := statField(t, string(out), 41), statField(t, string(out), 40), statField(t, string(out), 39); p != "1" || prio != "10" || cpu != "1" {
		t.Errorf("fifo/10 on cpu 1: policy %s prio %s cpu %s", p, prio, cpu)
	}

	// A memcg OOM kill inside a cgroup joined through the trampoline.
	for _, cmd := range []string{"mkdir -p /sys/fs/cgroup/victim", "write /sys/fs/cgroup/victim/memory.max 64M"} {
		if _, err := c.Output(ctx, cmd); err != nil {
			t.Fatal(err)
		}
	}
	if res, err := c.Run(ctx, "run --cgroup /sys/fs/cgroup/victim -- hog", nil, nil); err != nil || !res.Killed() {
		t.Errorf("hog in cgroup: %v %v", res, err)
	}
	if out, err := c.Output(ctx, "cat /sys/fs/cgroup/victim/memory.events"); err != nil || !strings.Contains(string(out), "oom_kill 1") {
		t.Errorf("memory.events: %q %v", out, err)
	}

	mctx, mcancel := context.WithCancel(ctx)
	samples := make(chan Sample, 1000)
	mdone := make(chan error, 1)
	go func() { mdone <- c.Metrics(mctx, 200*time.Millisecond, func(s Sample) { samples <- s }) }()

	res, err := c.Run(ctx, "hog", nil, nil)
	if err != nil || !res.Killed() {
		t.Errorf("hog: %v %v; console:\n%s", res, err, log.String())
	}
	time.Sleep(500 * time.Millisecond)
	mcancel()
	if err := <-mdone; err != nil {
		t.Errorf("Metrics: %v", err)
	}
	close(samples)
	var first, last Sample
	n := 0
	for s := range samples {
		if n == 0 {
			first = s
		}
		last, n = s, n+1
	}
	t.Logf("%d samples; oom_kill %d -> %d; MemAvailable %d -> %d kB", n, first.OOMKill, last.OOMKill, first.MemAvailableKB, last.MemAvailableKB)
	if n < 2 || !last.PSI || last.MemTotalKB == 0 {
		t.Errorf("samples: n=%d first=%+v last=%+v", n, first, last)
	}
	if !last.VMEvents {
		t.Log("kernel has no CONFIG_VM_EVENT_COUNTERS: oom_kill cannot be sampled")
	} else if last.OOMKill <= first.OOMKill {
		t.Errorf("oom_kill did not increase: %d -> %d", first.OOMKill, last.OOMKill)
	}
	if err := c.Ping(ctx, 10*time.Second); err != nil {
		t.Errorf("agent dead after OOM: %v", err)
	}
	if res, err := c.Run(ctx, "poweroff", nil, nil); err != nil || res.ExitCode != 0 {
		t.Errorf("poweroff: %v %v", res, err)
	}
	select {
	case <-m.Done():
	case <-time.After(30 * time.Second):
		t.Errorf("QEMU still running after poweroff")
	}
	for _, l := range strings.Split(log.String(), "\n") {
		if strings.Contains(l, "oomlab-agent: init:") {
			t.Errorf("init reported: %s", l)
		}
	}
	if s := log.String(); !strings.Contains(s, "Killed process") {
		t.Errorf("no OOM kill on the console:\n%s", s)
	}
}

// buildHog builds a static Go program that allocates until it is killed.
func buildHog(t *testing.T, dir string) string {
	src := filepath.Join(dir, "hogsrc")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(src, "go.mod"), []byte("module hog\n\ngo 1.22\n"), 0o644)
	_ = os.WriteFile(filepath.Join(src, "main.go"), []byte(`package main

func main() {
	var keep [][]byte
	for {
		b := make([]byte, 4<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		keep = append(keep, b)
	}
}
`), 0o644)
	out := filepath.Join(dir, "hog")
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod", "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build hog: %v\n%s", err, b)
	}
	return out
}

// newc writes a minimal "070701" cpio archive.
type newc struct {
	buf bytes.Buffer
	ino int
}

func (w *newc) entry(name string, mode, rmaj, rmin int, data []byte) {
	w.ino++
	fmt.Fprintf(&w.buf, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		w.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rmaj, rmin, len(name)+1, 0)
	w.buf.WriteString(name + "\x00")
	w.pad()
	w.buf.Write(data)
	w.pad()
}

func (w *newc) pad() {
	for w.buf.Len()%4 != 0 {
		w.buf.WriteByte(0)
	}
}

func (w *newc) dir(name string)                   { w.entry(name, 0o040755, 0, 0, nil) }
func (w *newc) chardev(name string, maj, min int) { w.entry(name, 0o020600, maj, min, nil) }
func (w *newc) file(name string, d []byte, p int) { w.entry(name, 0o100000|p, 0, 0, d) }
func (w *newc) finish() []byte                    { w.entry("TRAILER!!!", 0, 0, 0, nil); return w.buf.Bytes() }
