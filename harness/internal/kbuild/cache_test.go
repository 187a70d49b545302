package kbuild

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeCache lays out a cache like a build leaves it: the unpacked source
// with a baseline object dir, a patched tree hard-linked from it with its
// own object dir, kernels and ccache. Every file is a multiple of 4 KiB of
// random data so that disk usage equals size.
type fakeCache struct {
	t    *testing.T
	root string
	now  time.Time
}

const kib = 1 << 10

func newFakeCache(t *testing.T) *fakeCache {
	return &fakeCache{t: t, root: t.TempDir(), now: time.Now()}
}

func (f *fakeCache) file(rel string, size int) string {
	f.t.Helper()
	p := filepath.Join(f.root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	buf := make([]byte, size)
	rand.Read(buf)
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		f.t.Fatal(err)
	}
	return p
}

// used sets an entry's last use to ago before now.
func (f *fakeCache) used(rel string, ago time.Duration) {
	f.t.Helper()
	at := f.now.Add(-ago)
	if err := os.Chtimes(filepath.Join(f.root, rel), at, at); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fakeCache) kernel(key, variant string, size int, ago time.Duration) string {
	f.t.Helper()
	rel := filepath.Join("kernels", key)
	f.file(filepath.Join(rel, "bzImage"), size)
	data, _ := json.Marshal(meta{Key: key, Variant: variant, KernelRelease: "6.12-oomlab-" + variant})
	os.WriteFile(filepath.Join(f.root, rel, "meta.json"), data, 0o644)
	f.used(rel, ago)
	return filepath.Join(f.root, rel)
}

// tree: src/aaa (1 MiB of sources, 256 KiB baseline objects) and
// trees/aaa-bbb, a hard-link copy with one 64 KiB file replaced and
// 128 KiB of objects.
func (f *fakeCache) trees(ago time.Duration) {
	f.t.Helper()
	f.file("src/aaa/mm/oom_kill.c", 512*kib)
	f.file("src/aaa/kernel/fork.c", 448*kib)
	f.file("src/aaa/Makefile", 64*kib)
	f.file("src/aaa/.oomlab-build-111111111111/vmlinux", 256*kib)
	if err := linkTree(context.Background(), filepath.Join(f.root, "src/aaa"), filepath.Join(f.root, "trees/aaa-bbb")); err != nil {
		f.t.Fatal(err)
	}
	os.Remove(filepath.Join(f.root, "trees/aaa-bbb/Makefile"))
	f.file("trees/aaa-bbb/Makefile", 64*kib)
	f.file("trees/aaa-bbb/.oomlab-build-111111111111/vmlinux", 128*kib)
	for _, rel := range []string{"src/aaa/.oomlab-build-111111111111", "src/aaa", "trees/aaa-bbb/.oomlab-build-111111111111", "trees/aaa-bbb"} {
		f.used(rel, ago)
	}
}

func find(t *testing.T, inv *Inventory, name string) *Entry {
	t.Helper()
	for _, e := range inv.Entries {
		if e.Name == name {
			return e
		}
	}
	t.Fatalf("no entry %q in %v", name, names(inv.Entries))
	return nil
}

func names(es []*Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Name)
	}
	return out
}

func removedNames(r *PruneResult) []string {
	var out []string
	for _, x := range r.Removed {
		out = append(out, x.Entry.Name)
	}
	return out
}

// near: disk usage is data plus directory blocks; allow for the latter.
func near(got, want int64) bool { return got >= want && got <= want+64*kib }

func TestScanCountsHardLinksOnce(t *testing.T) {
	f := newFakeCache(t)
	f.trees(time.Hour)
	f.file("ccache/0/x", 32*kib)
	inv, err := ScanCache(f.root)
	if err != nil {
		t.Fatal(err)
	}
	src, tree := find(t, inv, "src/aaa"), find(t, inv, "trees/aaa-bbb")
	obj := find(t, inv, "trees/aaa-bbb/.oomlab-build-111111111111")
	if src.Kind != KindSource || tree.Kind != KindTree || obj.Kind != KindObjDir || obj.Parent != tree.Path {
		t.Errorf("kinds: %+v %+v %+v", src, tree, obj)
	}
	// The tree's own size counts its shared files, object dirs apart.
	if !near(tree.Size, 1024*kib) || !near(obj.Size, 128*kib) {
		t.Errorf("tree %d, objdir %d", tree.Size, obj.Size)
	}
	// Removing the tree frees only what it does not share, plus its objects.
	if !near(tree.Alone, (64+128)*kib) {
		t.Errorf("tree alone frees %d, want about %d", tree.Alone, (64+128)*kib)
	}
	// Sources 1 MiB once, + 64 KiB patched Makefile + objects + ccache.
	want := int64((1024 + 64 + 256 + 128 + 32) * kib)
	if inv.Total < want || inv.Total > want+256*kib {
		t.Errorf("total %d, want about %d (hard links counted once; twice would be %d)", inv.Total, want, want+960*kib)
	}
}

func TestPruneLeastRecentlyUsedFirst(t *testing.T) {
	f := newFakeCache(t)
	f.kernel("k-old", "baseline", 256*kib, 3*time.Hour)
	f.kernel("k-mid", "patched", 256*kib, 2*time.Hour)
	f.kernel("k-new", "patched:1", 256*kib, time.Hour)
	inv, _ := ScanCache(f.root)
	if got := names(inv.Entries); strings.Join(got, " ") != "k-new k-mid k-old" {
		t.Errorf("listing order %v, want most recent first", got)
	}
	// Room for one kernel and a half: the two oldest go.
	bound := inv.Total - 300*kib
	res, err := Prune(f.root, PruneOptions{MaxSize: bound})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(removedNames(res), " "); got != "k-old k-mid" {
		t.Errorf("removed %q, want the least recently used first", got)
	}
	if res.After > bound || res.Before-res.After != res.Freed() || res.Freed() < 512*kib {
		t.Errorf("before %d after %d freed %d bound %d", res.Before, res.After, res.Freed(), bound)
	}
	left, _ := os.ReadDir(filepath.Join(f.root, "kernels"))
	if len(left) != 1 || left[0].Name() != "k-new" {
		t.Errorf("left in kernels/: %v (no .trash-* may remain)", left)
	}
	// Within the bound: nothing to do.
	res, _ = Prune(f.root, PruneOptions{MaxSize: bound})
	if len(res.Removed) != 0 {
		t.Errorf("second prune removed %v", removedNames(res))
	}
}

func TestPruneDryRun(t *testing.T) {
	f := newFakeCache(t)
	f.kernel("k-old", "baseline", 128*kib, 2*time.Hour)
	f.kernel("k-new", "patched", 128*kib, time.Hour)
	f.trees(3 * time.Hour)
	f.used("trees/aaa-bbb", 4*time.Hour) // older than its object dir: they go together
	res, err := Prune(f.root, PruneOptions{MaxSize: 0, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	// The tree goes with its object dir, as one removal; on a tie in last
	// use an object dir goes before its tree.
	got := strings.Join(removedNames(res), " ")
	if got != "trees/aaa-bbb src/aaa/.oomlab-build-111111111111 src/aaa k-old k-new" {
		t.Errorf("dry run would remove %q", got)
	}
	if res.After > 64*kib {
		t.Errorf("dry run: %d would be left", res.After)
	}
	for _, x := range res.Removed {
		if x.Entry.Name == "trees/aaa-bbb" && len(x.With) != 1 {
			t.Errorf("tree removal carries %d object dirs, want 1", len(x.With))
		}
		if _, err := os.Stat(x.Entry.Path); err != nil {
			t.Errorf("dry run removed %s", x.Entry.Path)
		}
	}
	if !strings.Contains(res.Summary(), "would remove") {
		t.Errorf("summary %q", res.Summary())
	}
}

func TestPruneSkipsHeldKernelAndKeep(t *testing.T) {
	f := newFakeCache(t)
	held := f.kernel("k-held", "baseline", 128*kib, 3*time.Hour)
	kept := f.kernel("k-kept", "patched", 128*kib, 2*time.Hour)
	f.kernel("k-free", "patched:1", 128*kib, time.Hour)
	release, ok, err := HoldEntry(held)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	// HoldEntry marks the kernel used: it is now the most recent.
	if st, _ := os.Stat(held); time.Since(st.ModTime()) > time.Minute {
		t.Errorf("HoldEntry did not record the use")
	}
	f.used("kernels/k-held", 3*time.Hour) // back to oldest, for the test
	res, err := Prune(f.root, PruneOptions{MaxSize: 0, Keep: []string{kept}})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(removedNames(res), " "); got != "k-free" {
		t.Errorf("removed %q, want only k-free", got)
	}
	reasons := map[string]string{}
	for _, s := range res.Skipped {
		reasons[s.Entry.Name] = s.Reason
	}
	if reasons["k-held"] != "in use" || reasons["k-kept"] != "used by this build" {
		t.Errorf("skipped %v", reasons)
	}
	if _, err := os.Stat(filepath.Join(held, "bzImage")); err != nil {
		t.Errorf("held kernel damaged: %v", err)
	}
	release()
	res, _ = Prune(f.root, PruneOptions{MaxSize: 0})
	if got := strings.Join(removedNames(res), " "); got != "k-held k-kept" {
		t.Errorf("after release removed %q", got)
	}
	if _, ok, err := HoldEntry(held); ok || err != nil {
		t.Errorf("HoldEntry on a pruned kernel: ok %v err %v", ok, err)
	}
}

func TestPruneWhileBuildRunsOnlyKernels(t *testing.T) {
	f := newFakeCache(t)
	f.trees(5 * time.Hour)
	f.file("ccache/0/x", 32*kib)
	f.used("ccache", 4*time.Hour)
	f.kernel("k1", "baseline", 128*kib, time.Hour)
	unlock, err := lockFile(context.Background(), filepath.Join(f.root, "build.lock"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	res, err := Prune(f.root, PruneOptions{MaxSize: 0})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(removedNames(res), " "); got != "k1" || !res.BuildRunning {
		t.Errorf("removed %q (build running %v), want only the kernel", got, res.BuildRunning)
	}
	for _, s := range res.Skipped {
		if s.Reason != "a build is running" {
			t.Errorf("%s skipped for %q", s.Entry.Name, s.Reason)
		}
	}
	for _, rel := range []string{"src/aaa", "trees/aaa-bbb/.oomlab-build-111111111111", "ccache/0/x"} {
		if _, err := os.Stat(filepath.Join(f.root, rel)); err != nil {
			t.Errorf("%s removed during a build", rel)
		}
	}
	// A build pruning after itself holds the lock, and keeps what it used.
	tree := filepath.Join(f.root, "trees/aaa-bbb")
	res, err = Prune(f.root, PruneOptions{MaxSize: 0, HoldsBuildLock: true,
		Keep: []string{tree, filepath.Join(tree, ".oomlab-build-111111111111")}})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(removedNames(res), " "); got != "src/aaa/.oomlab-build-111111111111 src/aaa ccache" {
		t.Errorf("in-build prune removed %q", got)
	}
	if _, err := os.Stat(filepath.Join(tree, "mm/oom_kill.c")); err != nil {
		t.Errorf("the kept tree lost a file shared with the pruned source: %v", err)
	}
}

func TestPruneRemovesTrash(t *testing.T) {
	f := newFakeCache(t)
	f.file("kernels/.trash-k1-123/entry/bzImage", 64*kib)
	inv, _ := ScanCache(f.root)
	if len(inv.Trash) != 1 || len(inv.Entries) != 0 {
		t.Fatalf("trash %v entries %v", inv.Trash, names(inv.Entries))
	}
	res, err := Prune(f.root, PruneOptions{MaxSize: 1 << 40})
	if err != nil || res.Trash != 1 {
		t.Fatal(res, err)
	}
	if _, err := os.Stat(filepath.Join(f.root, "kernels/.trash-k1-123")); err == nil {
		t.Error("trash left behind")
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"10GiB": 10 << 30, "10G": 10 << 30, "1.5g": 3 << 29, "500MiB": 500 << 20, "500MB": 500e6,
		"0": 0, "4096": 4096, "2 GiB": 2 << 30, "1TiB": 1 << 40, "100k": 100 << 10,
	} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "abc", "-1G", "10XB", "G", "1e9", "NaN", "inf"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
	t.Setenv(MaxCacheSizeEnv, "off")
	if n, err := MaxCacheSize(); n != -1 || err != nil {
		t.Errorf("off: %d %v", n, err)
	}
	t.Setenv(MaxCacheSizeEnv, "lots")
	if _, err := MaxCacheSize(); err == nil || !strings.Contains(err.Error(), MaxCacheSizeEnv) {
		t.Errorf("bad env: %v", err)
	}
}

// A cache hit holds its kernel until Release; a build prunes after itself
// and says so in one line.
func TestCacheHitHoldsAndBuildPrunes(t *testing.T) {
	f := newFakeCache(t)
	f.kernel("k-old", "baseline", 256*kib, 3*time.Hour)
	f.kernel("k-hit", "patched", 256*kib, 2*time.Hour)
	f.kernel("k-built", "patched:1", 256*kib, time.Hour)
	var log strings.Builder
	b := &builder{cache: f.root, log: &log, o: Options{LogOut: &log, MaxCacheSize: 300 * kib}}
	r, ok := b.useCached("k-hit")
	if !ok {
		t.Fatal("no cache hit")
	}
	if st, _ := os.Stat(filepath.Join(f.root, "kernels/k-hit")); time.Since(st.ModTime()) > time.Minute {
		t.Error("a cache hit did not record the use")
	}
	f.used("kernels/k-hit", 4*time.Hour) // oldest now: only the lock protects it
	line := b.autoPrune([]string{filepath.Join(f.root, "kernels/k-built")})
	if strings.TrimSpace(log.String()) != line || strings.Contains(line, "\n") {
		t.Errorf("returned %q, logged %q: want the same one line", line, log.String())
	}
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "removed kernel k-old (baseline 6.12-oomlab-baseline)") ||
		!strings.Contains(lines[0], "freeing 2") || !strings.Contains(lines[0], "in use kept") {
		t.Errorf("build output %q, want one line naming what went and how much", log.String())
	}
	if _, err := os.Stat(r.BzImage); err != nil {
		t.Errorf("held kernel pruned: %v", err)
	}
	r.Release()
	r.Release() // twice is harmless
	res, _ := Prune(f.root, PruneOptions{MaxSize: 300 * kib})
	if got := strings.Join(removedNames(res), " "); got != "k-hit" {
		t.Errorf("after Release removed %q", got)
	}
	// Within the bound a build says nothing.
	log.Reset()
	if line := b.autoPrune(nil); log.Len() != 0 || line != "" {
		t.Errorf("within the bound: %q", log.String())
	}
}

// Another process holding a kernel (flock(1) standing in for a running
// oomlab run) protects it just the same.
func TestPruneSkipsKernelHeldByAnotherProcess(t *testing.T) {
	flock, err := exec.LookPath("flock")
	if err != nil {
		t.Skip("flock(1) not installed")
	}
	f := newFakeCache(t)
	k := f.kernel("k-run", "baseline", 64*kib, time.Hour)
	cmd := exec.Command(flock, "--shared", "--close", k, "sh", "-c", "echo held; sleep 30")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			cmd.Wait()
		}
	}
	defer stop()
	buf := make([]byte, 5)
	if _, err := out.Read(buf); err != nil {
		t.Fatal(err)
	}
	res, err := Prune(f.root, PruneOptions{MaxSize: 0})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Removed) != 0 || len(res.Skipped) != 1 || res.Skipped[0].Reason != "in use" {
		t.Errorf("removed %v, skipped %+v", removedNames(res), res.Skipped)
	}
	stop()
	res, _ = Prune(f.root, PruneOptions{MaxSize: 0})
	if len(res.Removed) != 1 {
		t.Errorf("after the holder exited: removed %v", removedNames(res))
	}
}
