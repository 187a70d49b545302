// Package selftests builds upstream kernel selftests
// (tools/testing/selftests) from the same source tree as a variant's
// kernel, static, against that tree's own uapi headers, caches them by the
// content of their inputs next to the kernels, and puts them into that
// variant's guests (Wrap). Their KTAP output becomes figures in package
// metrics; the suite verdict holds every variant to the cases that pass
// on baseline (compare.SelftestRegressions).
package selftests

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"oomlab/harness/internal/kbuild"
)

// Spec is one selftest program and how to build it: what its directory's
// Makefile does for it, as one gcc command line. The selftests' own make
// would build every program of the directory, some of which need
// libraries a plain libc6-dev lacks (libcap, libnuma, liburing).
type Spec struct {
	Name    string   // the program, and its name in the guest's /bin
	Dir     string   // under tools/testing/selftests
	Sources []string // in Dir, as its Makefile lists them
	Why     string   // what it checks that the OOM path touches
}

// Specs are the OOM-related selftests that build statically with gcc and
// libc6-dev alone and run in a small guest with no shell and no tools.
var Specs = []Spec{
	{Name: "test_memcontrol", Dir: "cgroup", Sources: []string{"test_memcontrol.c", "cgroup_util.c"},
		Why: "memory.min/low/high/max, memcg OOM events and memory.oom.group kills"},
	{Name: "test_kmem", Dir: "cgroup", Sources: []string{"test_kmem.c", "cgroup_util.c"},
		Why: "kernel memory charged to a memcg and released when its tasks and cgroups go"},
	{Name: "test_kill", Dir: "cgroup", Sources: []string{"test_kill.c", "cgroup_util.c"},
		Why: "cgroup.kill: SIGKILL to a whole group and every task of it gone, the exit path a reaper hands over to"},
	{Name: "mrelease_test", Dir: "mm", Sources: []string{"mrelease_test.c", "vm_util.c"},
		Why: "process_mrelease(2): reaping a killed process's memory, the OOM reaper's __oom_reap_task_mm"},
}

// Lookup returns the spec of a program name, or nil.
func Lookup(name string) *Spec {
	for i := range Specs {
		if Specs[i].Name == name {
			return &Specs[i]
		}
	}
	return nil
}

// recipe is part of every key: bump it when the way the programs are
// built changes.
const recipe = "oomlab-selftests-2"

// cflags are the selftests' own (lib.mk, cgroup/Makefile, mm/Makefile)
// plus -static: the guest has no libc.
var cflags = []string{"-static", "-O2", "-Wall", "-pthread", "-U_FORTIFY_SOURCE"}

var ldlibs = []string{"-lrt", "-lpthread", "-lm"}

// lineBuffered is linked into every program, and runs before its main.
//
// kselftest prints results with stdio, which is fully buffered on the
// agent's pipe: a forked child that exits flushes a copy of its parent's
// pending results (printed twice), and a crash loses them. Line buffering
// prints each result as it is made, as on a terminal.
//
// It prints the TAP version line itself and sets KSFT_TAP_LEVEL, which
// makes kselftest's ksft_print_header() leave it out (the way the
// selftests' own runner nests programs): some programs never print it
// (test_memcontrol, test_kmem), and a program that hangs or crashes
// before its first result would otherwise leave no sign that it is test
// output at all, and no failed figure.
const lineBuffered = `#include <stdio.h>
#include <stdlib.h>
__attribute__((constructor)) static void oomlab_line_buffered(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	setvbuf(stderr, NULL, _IONBF, 0);
	if (!getenv("KSFT_TAP_LEVEL")) {
		printf("TAP version 13\n");
		setenv("KSFT_TAP_LEVEL", "1", 1);
	}
}
`

// Options say what to build.
type Options struct {
	Cache string       // root of the oomlab cache (kbuild.DefaultCacheDir())
	Tree  *kbuild.Tree // the variant's source tree
	Specs []Spec       // nil: Specs
	Log   io.Writer    // build commands and their output (nil: discarded)
}

// Set is the selftests built from one tree.
type Set struct {
	Key    string `json:"key"`
	Dir    string `json:"-"` // <cache>/selftests/<key>
	Cached bool   `json:"-"` // found in the cache, not built now
	// Built maps a program to its file in Dir; Skipped a program that
	// could not be built to the one-line reason.
	Built    map[string]string `json:"built"`
	Skipped  map[string]string `json:"skipped,omitempty"`
	SourceID string            `json:"source_id"`
	// Tree is the variant's tree; BuiltIn the tree the programs were
	// compiled in, another variant's when the inputs of the build are the
	// same in both (Key), which makes the programs the same.
	Tree     string `json:"-"`
	BuiltIn  string `json:"tree"`
	Compiler string `json:"compiler"`

	release func()
}

// Release ends the use of the programs: until then (or until the process
// exits) their cache entry is held and no prune removes it, as a guest
// boot of a later guest run still reads them.
func (s *Set) Release() {
	if s != nil && s.release != nil {
		s.release()
		s.release = nil
	}
}

// Binary is the host path of a built program ("" when it was skipped).
func (s *Set) Binary(name string) string {
	if f, ok := s.Built[name]; ok {
		return filepath.Join(s.Dir, f)
	}
	return ""
}

// Key is the cache key of the programs built from t: the recipe, the
// compiler, the specs, the pristine source's identity and the content of
// every file the variant's patches changed that the build can read. A
// patch that changes only the kernel (mm/oom_kill.c) changes no program,
// so its variant shares baseline's build; one that changes a uapi header,
// a syscall table or the selftests gets its own.
func Key(t *kbuild.Tree, compiler string, specs []Spec) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00", recipe, compiler, strings.Join(cflags, " "), strings.Join(ldlibs, " "), lineBuffered, t.SourceID)
	for _, s := range specs {
		fmt.Fprintf(h, "spec %s %s %s\x00", s.Name, s.Dir, strings.Join(s.Sources, " "))
	}
	patched := append([]string(nil), t.Patched...)
	sort.Strings(patched)
	for _, p := range patched {
		if !BuildInput(p) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(t.Dir, p))
		switch {
		case errors.Is(err, os.ErrNotExist):
			fmt.Fprintf(h, "deleted %s\x00", p)
		case err != nil:
			return "", err
		default:
			sum := sha256.Sum256(data)
			fmt.Fprintf(h, "file %s %x\x00", p, sum)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// kernelOnly are the parts of a tree that neither 'make headers_install'
// nor a selftest reads: C and headers of the kernel itself, its docs.
// Everything else a patch touches (include/uapi, arch/x86/include/uapi,
// arch/x86/entry/syscalls, scripts, tools, Makefiles) is an input.
var kernelOnly = []string{
	"Documentation/", "mm/", "kernel/", "fs/", "drivers/", "net/", "block/", "ipc/", "lib/",
	"crypto/", "security/", "sound/", "virt/", "init/", "certs/", "io_uring/", "rust/", "samples/",
	"include/linux/", "include/trace/", "include/net/", "include/asm-generic/",
	"arch/x86/kernel/", "arch/x86/mm/", "arch/x86/include/asm/",
}

// BuildInput says whether a file of a tree (relative path) can change what
// the selftests build makes.
func BuildInput(rel string) bool {
	for _, p := range kernelOnly {
		if strings.HasPrefix(rel, p) {
			return false
		}
	}
	return true
}

// Build returns the selftests of o.Tree, built now or found in the cache
// under <cache>/selftests/<key>. A program that does not build is skipped
// with the reason, which is cached too: the same inputs fail the same way.
// Only infrastructure problems (no gcc, an unwritable cache) are errors.
func Build(ctx context.Context, o Options) (*Set, error) {
	specs := o.Specs
	if specs == nil {
		specs = Specs
	}
	logw := o.Log
	if logw == nil {
		logw = io.Discard
	}
	compiler, err := gccVersion(ctx)
	if err != nil {
		return nil, err
	}
	key, err := Key(o.Tree, compiler, specs)
	if err != nil {
		return nil, err
	}
	root := filepath.Join(o.Cache, "selftests")
	dir := filepath.Join(root, key)
	if s, ok := load(dir); ok {
		s.Tree = o.Tree.Dir
		return s, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	unlock, err := lock(ctx, filepath.Join(root, ".lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()
	if s, ok := load(dir); ok { // built by another oomlab meanwhile
		s.Tree = o.Tree.Dir
		return s, nil
	}
	tmp, err := os.MkdirTemp(root, ".tmp-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		return nil, err
	}
	s := &Set{Key: key, Built: map[string]string{}, Skipped: map[string]string{},
		SourceID: o.Tree.SourceID, Tree: o.Tree.Dir, BuiltIn: o.Tree.Dir, Compiler: compiler}
	hdr, why := installHeaders(ctx, o.Tree.Dir, tmp, logw)
	lb := filepath.Join(tmp, "line_buffered.c")
	if err := os.WriteFile(lb, []byte(lineBuffered), 0o644); err != nil {
		return nil, err
	}
	for _, sp := range specs {
		if why != "" {
			s.Skipped[sp.Name] = why
			continue
		}
		if reason := compile(ctx, o.Tree.Dir, hdr, lb, sp, filepath.Join(out, sp.Name), logw); reason != "" {
			s.Skipped[sp.Name] = reason
			continue
		}
		s.Built[sp.Name] = sp.Name
	}
	if ctx.Err() != nil {
		return nil, ctx.Err() // an interrupted build is no result to cache
	}
	meta, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(out, "meta.json"), append(meta, '\n'), 0o644); err != nil {
		return nil, err
	}
	_ = os.RemoveAll(dir) // an unmarked leftover
	if err := os.Rename(out, dir); err != nil {
		return nil, fmt.Errorf("installing selftests at %s: %w", dir, err)
	}
	s.Dir = dir
	if release, ok, err := kbuild.HoldEntry(dir); err == nil && ok {
		s.release = release
	}
	return s, nil
}

// load reads a finished cache entry; meta.json, written last, marks one.
func load(dir string) (*Set, bool) {
	data, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		return nil, false
	}
	var s Set
	if json.Unmarshal(data, &s) != nil {
		return nil, false
	}
	release, ok, err := kbuild.HoldEntry(dir)
	if err != nil || !ok {
		return nil, false // pruned meanwhile
	}
	for _, f := range s.Built {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			release()
			return nil, false
		}
	}
	s.Dir, s.Cached, s.release = dir, true, release
	now := time.Now()
	_ = os.Chtimes(dir, now, now) // last use, as the kernel cache keeps it
	return &s, true
}

// installHeaders runs 'make headers_install' of the tree into tmp/hdr,
// with its objects in tmp/obj: out of tree, so that the tree (shared with
// hard links between variants, and built out of tree itself) is not
// written. It returns the include directory, or why there is none.
func installHeaders(ctx context.Context, tree, tmp string, logw io.Writer) (string, string) {
	hdr := filepath.Join(tmp, "hdr")
	args := []string{"-s", "-C", tree, "O=" + filepath.Join(tmp, "obj"), "ARCH=x86_64",
		"INSTALL_HDR_PATH=" + hdr, "headers_install"}
	fmt.Fprintf(logw, "$ make %s\n", strings.Join(args, " "))
	out, err := exec.CommandContext(ctx, "make", args...).CombinedOutput()
	logw.Write(out)
	if err != nil {
		return "", "make headers_install failed: " + lastLine(out, err)
	}
	return filepath.Join(hdr, "include"), ""
}

// compile builds one program; it returns why it did not build, or "".
func compile(ctx context.Context, tree, hdr, lineBuf string, sp Spec, dst string, logw io.Writer) string {
	st := filepath.Join(tree, "tools", "testing", "selftests")
	dir := filepath.Join(st, sp.Dir)
	for _, src := range sp.Sources {
		if _, err := os.Stat(filepath.Join(dir, src)); err != nil {
			return fmt.Sprintf("%s/%s is not in this tree", sp.Dir, src)
		}
	}
	// -isystem of the installed headers first, as the selftests' own
	// KHDR_INCLUDES: the tree's uapi, not the host's linux-libc-dev.
	args := append([]string{}, cflags...)
	args = append(args, "-isystem", hdr, "-I", st, "-I", dir)
	for _, src := range sp.Sources {
		args = append(args, filepath.Join(dir, src))
	}
	args = append(args, lineBuf, "-o", dst)
	args = append(args, ldlibs...)
	fmt.Fprintf(logw, "$ gcc %s\n", strings.Join(args, " "))
	out, err := exec.CommandContext(ctx, "gcc", args...).CombinedOutput()
	logw.Write(out)
	if err != nil {
		return "gcc failed: " + lastLine(out, err)
	}
	return ""
}

// lastLine is the last error line of a command's output, for a one-line
// reason: gcc's "error:" line when there is one.
func lastLine(out []byte, err error) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], "error") {
			return strings.TrimSpace(lines[i])
		}
	}
	if l := strings.TrimSpace(lines[len(lines)-1]); l != "" {
		return l
	}
	return err.Error()
}

func gccVersion(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "gcc", "--version").Output()
	if err != nil {
		return "", fmt.Errorf("selftests: gcc not usable (%v); install it with: apt-get install -y gcc libc6-dev", err)
	}
	line, _, _ := bytes.Cut(out, []byte("\n"))
	return strings.TrimSpace(string(line)), nil
}

// lock takes an exclusive flock: one selftests build at a time per cache.
func lock(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("cannot lock %s: %v", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
