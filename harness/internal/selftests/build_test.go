package selftests

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"oomlab/harness/internal/kbuild"
	"oomlab/harness/internal/ktap"
)

// fakeTree is a tree whose Makefile installs one uapi header, with two
// selftests: one that builds against that header, one that does not build.
func fakeTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	write := func(rel, data string) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("Makefile", "headers_install:\n\tmkdir -p $(INSTALL_HDR_PATH)/include/linux\n"+
		"\tcp include/uapi/linux/oomlab_demo.h $(INSTALL_HDR_PATH)/include/linux/\n")
	write("include/uapi/linux/oomlab_demo.h", "#define OOMLAB_DEMO_CASES 1\n")
	write("mm/oom_kill.c", "/* the kernel */\n")
	write("tools/testing/selftests/demo/good.c", "#include <stdio.h>\n#include <linux/oomlab_demo.h>\n"+
		"#include <stdlib.h>\n"+
		"int main(void) { if (!getenv(\"KSFT_TAP_LEVEL\")) printf(\"TAP version 13\\n\");\n"+
		"  printf(\"1..%d\\nok 1 demo\\n\", OOMLAB_DEMO_CASES); return 0; }\n")
	write("tools/testing/selftests/demo/bad.c", "int main(void) { return undeclared_thing; }\n")
	return dir
}

var demoSpecs = []Spec{
	{Name: "good", Dir: "demo", Sources: []string{"good.c"}},
	{Name: "bad", Dir: "demo", Sources: []string{"bad.c"}},
	{Name: "gone", Dir: "demo", Sources: []string{"gone.c"}},
}

func needTools(t *testing.T) {
	for _, tool := range []string{"gcc", "make"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	// -static needs libc.a (libc6-dev).
	if out, err := exec.Command("gcc", "-print-file-name=libc.a").Output(); err != nil || !filepath.IsAbs(strings.TrimSpace(string(out))) {
		t.Skip("no static libc (libc6-dev)")
	}
}

func TestBuildAndCache(t *testing.T) {
	needTools(t)
	ctx := context.Background()
	tree := &kbuild.Tree{Dir: fakeTree(t), SourceID: "test tree"}
	cache := t.TempDir()
	s, err := Build(ctx, Options{Cache: cache, Tree: tree, Specs: demoSpecs})
	if err != nil {
		t.Fatal(err)
	}
	if s.Cached || s.Binary("good") == "" {
		t.Fatalf("first build: cached %v, good %q, skipped %v", s.Cached, s.Binary("good"), s.Skipped)
	}
	// A program that does not build is skipped with a one-line reason,
	// never built.
	if s.Binary("bad") != "" || !strings.Contains(s.Skipped["bad"], "undeclared_thing") || strings.Contains(s.Skipped["bad"], "\n") {
		t.Errorf("bad: binary %q, reason %q", s.Binary("bad"), s.Skipped["bad"])
	}
	if !strings.Contains(s.Skipped["gone"], "demo/gone.c is not in this tree") {
		t.Errorf("gone: %q", s.Skipped["gone"])
	}
	// Built against the tree's installed header, static, and it runs.
	out, err := exec.Command(s.Binary("good")).Output()
	if err != nil {
		t.Fatal(err)
	}
	if r := ktap.Parse(string(out)); r.Plan != 1 || len(r.Cases) != 1 || r.Cases[0].Status != ktap.Pass {
		t.Errorf("good printed %q", out)
	}
	// The version line once: printed before main, and the program's own
	// (kselftest's ksft_print_header) left out through KSFT_TAP_LEVEL.
	if strings.Count(string(out), "TAP version 13\n") != 1 || !strings.HasPrefix(string(out), "TAP version 13\n") {
		t.Errorf("good printed %q: want one TAP version line, first", out)
	}

	if file, err := exec.Command("file", s.Binary("good")).Output(); err == nil && !strings.Contains(string(file), "statically linked") {
		t.Errorf("not static: %s", file)
	}
	// The tree is not written: headers and objects went elsewhere.
	if _, err := os.Stat(filepath.Join(tree.Dir, "usr")); err == nil {
		t.Error("the build wrote into the tree")
	}

	again, err := Build(ctx, Options{Cache: cache, Tree: tree, Specs: demoSpecs})
	if err != nil {
		t.Fatal(err)
	}
	if again.Tree != tree.Dir || again.BuiltIn != tree.Dir {
		t.Errorf("second build: tree %q built in %q", again.Tree, again.BuiltIn)
	}
	if !again.Cached || again.Key != s.Key || again.Binary("good") != s.Binary("good") || again.Skipped["bad"] != s.Skipped["bad"] {
		t.Errorf("second build: cached %v key %s (first %s), skipped %v", again.Cached, again.Key, s.Key, again.Skipped)
	}
}

func TestKey(t *testing.T) {
	dir := fakeTree(t)
	key := func(tr *kbuild.Tree, gcc string) string {
		k, err := Key(tr, gcc, demoSpecs)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	base := &kbuild.Tree{Dir: dir, SourceID: "src A"}
	k0 := key(base, "gcc 12")
	if k0 != key(base, "gcc 12") {
		t.Fatal("the key is not deterministic")
	}
	// A patch that changes the kernel only: the programs are the same.
	kernelPatch := &kbuild.Tree{Dir: dir, SourceID: "src A", Patched: []string{"mm/oom_kill.c"}}
	if key(kernelPatch, "gcc 12") != k0 {
		t.Error("a patch to mm/oom_kill.c changed the selftests key")
	}
	// One that changes a uapi header: its content is in the key.
	uapi := &kbuild.Tree{Dir: dir, SourceID: "src A", Patched: []string{"include/uapi/linux/oomlab_demo.h"}}
	ku := key(uapi, "gcc 12")
	if ku == k0 {
		t.Error("a patched uapi header did not change the key")
	}
	if err := os.WriteFile(filepath.Join(dir, "include/uapi/linux/oomlab_demo.h"), []byte("#define OOMLAB_DEMO_CASES 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if key(uapi, "gcc 12") == ku {
		t.Error("the patched header's content is not in the key")
	}
	if key(&kbuild.Tree{Dir: dir, SourceID: "src B"}, "gcc 12") == k0 {
		t.Error("another source has the same key")
	}
	if key(base, "gcc 13") == k0 {
		t.Error("another compiler has the same key")
	}
	if k, _ := Key(base, "gcc 12", demoSpecs[:1]); k == k0 {
		t.Error("other specs have the same key")
	}
	for rel, want := range map[string]bool{
		"mm/oom_kill.c": false, "include/linux/oom.h": false, "kernel/exit.c": false, "Documentation/admin-guide/sysctl/vm.rst": false,
		"include/uapi/linux/oom.h": true, "arch/x86/entry/syscalls/syscall_64.tbl": true, "tools/testing/selftests/cgroup/cgroup_util.c": true,
		"scripts/headers_install.sh": true, "Makefile": true,
	} {
		if BuildInput(rel) != want {
			t.Errorf("BuildInput(%s) = %v", rel, !want)
		}
	}
}

// A build in use is held: a prune of the whole cache skips it, and removes
// it once released. 'oomlab cache' lists it.
func TestCacheEntryHeldAndPruned(t *testing.T) {
	needTools(t)
	tree := &kbuild.Tree{Dir: fakeTree(t), SourceID: "test tree"}
	cache := t.TempDir()
	s, err := Build(context.Background(), Options{Cache: cache, Tree: tree, Specs: demoSpecs[:1]})
	if err != nil {
		t.Fatal(err)
	}
	inv, err := kbuild.ScanCache(cache)
	if err != nil {
		t.Fatal(err)
	}
	listed := false
	for _, e := range inv.Entries {
		listed = listed || e.Kind == kbuild.KindSelftests && e.Path == s.Dir
	}
	if !listed {
		t.Errorf("ScanCache does not list %s", s.Dir)
	}
	res, err := kbuild.Prune(cache, kbuild.PruneOptions{MaxSize: 0})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Binary("good")); err != nil || len(res.Removed) != 0 {
		t.Fatalf("a held build was pruned: %v, removed %d", err, len(res.Removed))
	}
	s.Release()
	if _, err := kbuild.Prune(cache, kbuild.PruneOptions{MaxSize: 0}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Dir); err == nil {
		t.Error("a released build was not pruned")
	}
}
