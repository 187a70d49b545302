package kbuild

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// objDirName is the object directory inside a tree. It must be a direct
// child of the tree (see the package comment). It is named by the config
// inputs so that different fragment sets do not thrash one directory,
// while the same config on the same tree rebuilds incrementally.
func objDirName(frags []Fragment, compiler string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n", recipeVersion, compiler)
	for _, f := range frags {
		data := fragmentKey(f)
		fmt.Fprintf(h, "%d\n", len(data))
		h.Write(data)
	}
	return ".oomlab-build-" + hex.EncodeToString(h.Sum(nil))[:12]
}

var reCompiled = regexp.MustCompile(`^\s+CC\s+\S+\.o$`)

// makeRun runs make in tree with output appended to logPath. onLine, if
// set, sees every output line. On ctx cancellation the whole process group
// (make and its compilers) is terminated.
type makeRun struct {
	b       *builder
	tree    string
	objDir  string // relative to tree
	logPath string
	env     []string
	vars    []string // make variables passed to every invocation
}

func (m *makeRun) run(ctx context.Context, what string, onLine func(string), args ...string) error {
	full := append([]string{"-C", m.tree, "O=" + m.objDir, "ARCH=" + makeArch}, m.vars...)
	full = append(full, args...)
	logf, err := os.OpenFile(m.logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "$ make %s\n", strings.Join(full, " "))
	m.b.logf("make %s", strings.Join(full, " "))

	cmd := exec.Command("make", full...)
	cmd.Env = m.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("cannot run make: %v; install it with: apt-get install -y make", err)
	}
	pgid := cmd.Process.Pid

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logf, line)
			if onLine != nil {
				onLine(line)
			}
		}
		io.Copy(io.Discard, pr) // keep draining after an over-long line
	}()

	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			// SIGTERM first: make then deletes half-written targets, which
			// keeps the object directory usable for the next build.
			syscall.Kill(-pgid, syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				syscall.Kill(-pgid, syscall.SIGKILL)
			}
		case <-done:
		}
	}()
	err = cmd.Wait()
	close(done)
	pw.Close()
	wg.Wait()
	if ctx.Err() != nil {
		fmt.Fprintf(logf, "*** interrupted: %v\n", ctx.Err())
		return fmt.Errorf("kernel %s interrupted: %w", what, ctx.Err())
	}
	if err != nil {
		logf.Sync()
		tail, _ := tailFile(m.logPath, 30)
		return fmt.Errorf("kernel %s failed (make %s: %v); full log: %s\n%s", what, args[len(args)-1], err, m.logPath, tail)
	}
	return nil
}

// tailFile returns the last n lines of a file.
func tailFile(path string, n int) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n"), nil
}

// buildEnv is the environment for make: ccache in the oomlab cache, paths
// made relative to the tree (CCACHE_BASEDIR) and the object directory name
// kept out of the hash (CCACHE_NOHASHDIR), so identical files in the
// baseline and patched trees share cache entries. Build user/host are fixed
// so the kernel banner does not depend on who built it.
func (b *builder) buildEnv(tree string) []string {
	var env []string
	for _, e := range os.Environ() {
		k, _, _ := strings.Cut(e, "=")
		switch k {
		// Inherited values would change what is built or where it goes.
		case "ARCH", "CROSS_COMPILE", "O", "KBUILD_OUTPUT", "CC", "LOCALVERSION", "KCONFIG_CONFIG",
			"CCACHE_DIR", "CCACHE_BASEDIR", "CCACHE_NOHASHDIR", "CCACHE_DISABLE",
			"KBUILD_BUILD_USER", "KBUILD_BUILD_HOST", "MAKEFLAGS", "MFLAGS", "MAKELEVEL":
			continue
		}
		env = append(env, e)
	}
	return append(env,
		"CCACHE_DIR="+filepath.Join(b.cache, "ccache"),
		"CCACHE_BASEDIR="+tree,
		"CCACHE_NOHASHDIR=1",
		"KBUILD_BUILD_USER=oomlab",
		"KBUILD_BUILD_HOST=oomlab",
	)
}

// objOKName marks an object directory whose last build succeeded; only
// such directories are used to seed others.
const objOKName = ".oomlab-ok"

// buildTree configures and builds tree, then stores the result under key.
// If tree is a patched copy of src.Tree and has no object directory yet,
// it is seeded from the baseline's (see seedObjDir).
func (b *builder) buildTree(ctx context.Context, tree, key string, src *source, reqs []request, compiler string) (*Result, error) {
	objName := objDirName(b.o.Fragments, compiler)
	objDir := filepath.Join(tree, objName)
	if tree != src.Tree {
		if _, err := os.Lstat(objDir); errors.Is(err, fs.ErrNotExist) {
			seed := filepath.Join(src.Tree, objName)
			if _, err := os.Stat(filepath.Join(seed, objOKName)); err == nil {
				b.phase(PhaseSeed, seed)
				if err := seedObjDir(ctx, seed, objDir, src.Tree, tree); err != nil {
					b.warnf("could not reuse the baseline objects (%v); building from scratch", err)
					os.RemoveAll(objDir)
				}
			}
		}
	}
	if err := os.MkdirAll(objDir, 0o755); err != nil {
		return nil, err
	}
	if err := os.Remove(filepath.Join(objDir, objOKName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	logPath := filepath.Join(objDir, "build.log")
	if err := os.WriteFile(logPath, []byte(fmt.Sprintf("# oomlab kernel build %s\n# source: %s\n# tree: %s\n# variant: %s\n",
		key, src.Desc, tree, b.o.Variant)), 0o644); err != nil {
		return nil, err
	}
	// ccache for host programs too: a fresh object directory otherwise
	// recompiles objtool, kconfig and scripts/ from scratch every time.
	cc, hostcc := "gcc", "gcc"
	if _, err := exec.LookPath("ccache"); err == nil {
		cc, hostcc = "ccache gcc", "ccache gcc"
	} else {
		b.warnf("ccache not found; building without it (install with: apt-get install -y ccache)")
	}
	m := &makeRun{b: b, tree: tree, objDir: objName, logPath: logPath, env: b.buildEnv(tree),
		vars: []string{"CC=" + cc, "HOSTCC=" + hostcc}}

	cfgPath := filepath.Join(objDir, ".config")
	if err := b.configure(ctx, m, tree, src, reqs, compiler); err != nil {
		return nil, err
	}

	// Build.
	b.phase(PhaseBuild, "")
	var mu sync.Mutex
	compiled, last := 0, ""
	stop := make(chan struct{})
	var tick sync.WaitGroup
	tick.Add(1)
	go func() {
		defer tick.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				mu.Lock()
				s := Status{Phase: PhaseBuild, Compiled: compiled, Line: last}
				mu.Unlock()
				b.progress(s)
			}
		}
	}()
	err := m.run(ctx, "build", func(line string) {
		mu.Lock()
		if reCompiled.MatchString(line) {
			compiled++
		}
		last = line
		mu.Unlock()
	}, fmt.Sprintf("-j%d", b.o.Jobs), "LOCALVERSION="+localVersion(b.o.Variant), "bzImage")
	close(stop)
	tick.Wait()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(objDir, objOKName), []byte(key+"\n"), 0o644); err != nil {
		return nil, err
	}
	dur := time.Since(b.work)
	b.progress(Status{Phase: PhaseBuild, Compiled: compiled, Line: last})

	b.phase(PhaseStore, "")
	rel, _ := os.ReadFile(filepath.Join(objDir, "include", "config", "kernel.release"))
	var fragNames, patchNames []string
	for _, f := range b.o.Fragments {
		fragNames = append(fragNames, f.Name)
	}
	if marker, err := os.ReadFile(filepath.Join(tree, patchedMarker)); err == nil {
		patchNames = strings.Fields(string(marker))
	}
	res, err := store(b.cache, meta{
		Key: key, Variant: b.o.Variant, SourceID: src.Desc, KernelRelease: strings.TrimSpace(string(rel)),
		Compiler: compiler, Fragments: fragNames, Patches: patchNames, Compiled: compiled,
		DurationNS: int64(dur), BuiltAt: time.Now().UTC(),
	}, filepath.Join(objDir, "arch", "x86", "boot", "bzImage"), cfgPath, logPath)
	if err != nil {
		return nil, err
	}
	res.Duration = dur
	b.logf("built %s in %s (%d files compiled)", res.BzImage, dur.Round(time.Second), compiled)
	return res, nil
}

// configIDName records which inputs produced an object directory's .config.
const configIDName = ".oomlab-config-id"

// configID identifies everything the .config depends on: the requests, the
// compiler (Kconfig probes it) and the tree's Kconfig files. For a patched
// tree the latter is the source identity plus whatever Kconfig-relevant
// files the series wrote; a series that leaves Kconfig alone therefore
// reuses the baseline's configuration (copied in by seedObjDir).
func configID(tree string, src *source, reqs []request, compiler string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n", recipeVersion, compiler, src.ID)
	for _, r := range reqs {
		fmt.Fprintf(h, "%s=%s\n", r.Symbol, r.Value)
	}
	if tree != src.Tree {
		list, _ := os.ReadFile(filepath.Join(tree, patchedFilesName))
		for _, f := range strings.Split(string(list), "\n") {
			base := filepath.Base(f)
			if f == "" || !(strings.HasPrefix(base, "Kconfig") || strings.HasSuffix(base, ".config") ||
				strings.HasPrefix(f, "scripts/kconfig/") || f == "Makefile") {
				continue
			}
			data, err := os.ReadFile(filepath.Join(tree, f))
			fmt.Fprintf(h, "file %s %d %v\n", f, len(data), err != nil)
			h.Write(data)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// configure produces <objdir>/.config: tinyconfig, the fragments on top,
// olddefconfig, then checks that every request survived. It is skipped
// when the object directory already holds a verified config for the same
// inputs, which saves the ~100 compiler probes Kconfig runs.
func (b *builder) configure(ctx context.Context, m *makeRun, tree string, src *source, reqs []request, compiler string) error {
	b.phase(PhaseConfig, "")
	objDir := filepath.Join(tree, m.objDir)
	cfgPath := filepath.Join(objDir, ".config")
	idPath := filepath.Join(objDir, configIDName)
	id := configID(tree, src, reqs, compiler)
	if old, err := os.ReadFile(idPath); err == nil && strings.TrimSpace(string(old)) == id {
		if data, err := os.ReadFile(cfgPath); err == nil && len(checkRequests(requiredOnly(reqs), ParseConfig(data))) == 0 {
			b.logf("configuration unchanged, reusing %s", cfgPath)
			return nil
		}
	}
	if err := os.Remove(idPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}

	// Unknown symbols are checked against the tree being built, since a
	// patch series may add Kconfig symbols.
	db, err := LoadKconfig(tree, kconfigArch)
	if err != nil {
		return err
	}
	// Optional symbols the tree lacks are left out, one line each; a
	// missing required one fails (optional.go).
	reqs, notes, err := resolveUnknown(db, tree, reqs)
	for _, n := range notes {
		b.notef("%s", n)
	}
	if err != nil {
		return err
	}
	if err := m.run(ctx, "configuration", nil, "tinyconfig"); err != nil {
		return err
	}
	tiny, err := os.ReadFile(cfgPath)
	if err != nil {
		return err
	}
	if err := os.WriteFile(cfgPath, applyRequests(tiny, reqs), 0o644); err != nil {
		return err
	}
	if err := m.run(ctx, "configuration", nil, "olddefconfig"); err != nil {
		return err
	}
	finalData, err := os.ReadFile(cfgPath)
	if err != nil {
		return err
	}
	final := ParseConfig(finalData)
	notes, d := splitDropped(db, checkRequests(reqs, final), final)
	for _, n := range notes {
		b.notef("%s", n)
	}
	if len(d) > 0 {
		return fmt.Errorf("kconfig: %d requested setting(s) did not survive olddefconfig (final config: %s):\n  %s",
			len(d), cfgPath, strings.Join(db.explain(d, final), "\n  "))
	}
	return os.WriteFile(idPath, []byte(id+"\n"), 0o644)
}

// seedObjDir initialises a patched tree's object directory with a copy of
// the baseline's, so that make rebuilds only what the series changed
// instead of running ~1100 compiles (ccache hits, but each still costs a
// compiler start and an objtool pass).
//
// This is sound because kbuild's state is relative to the object directory
// (srctree=..) and the patched tree is a hard-link copy: unchanged files
// have the same mtimes as when the baseline objects were built. Two things
// need fixing up:
//   - tools/ (objtool, libsubcmd) is built with absolute paths; its .cmd
//     and .d files are rewritten to the new tree, otherwise the changed
//     command lines would rebuild objtool and, through it, every object;
//   - the files the series wrote are touched, because they may be older
//     than the baseline objects (the patched tree can predate them).
func seedObjDir(ctx context.Context, from, to, oldTree, newTree string) error {
	tmp := to + ".seeding"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	oldPrefix, newPrefix := []byte(oldTree+string(filepath.Separator)), []byte(newTree+string(filepath.Separator))
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		rel, _ := filepath.Rel(from, p)
		target := filepath.Join(tmp, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case rel == "build.log" || rel == objOKName:
			return nil
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, target)
		case !d.Type().IsRegular():
			return nil
		}
		if strings.HasPrefix(rel, "tools"+string(filepath.Separator)) {
			info, err := d.Info()
			if err != nil {
				return err
			}
			if info.Size() < 1<<20 {
				data, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				if bytes.IndexByte(data, 0) < 0 && bytes.Contains(data, oldPrefix) {
					data = bytes.ReplaceAll(data, oldPrefix, newPrefix)
					if err := os.WriteFile(target, data, info.Mode().Perm()); err != nil {
						return err
					}
					return os.Chtimes(target, info.ModTime(), info.ModTime())
				}
			}
		}
		return copyFile(p, target)
	})
	if err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if data, err := os.ReadFile(filepath.Join(newTree, patchedFilesName)); err == nil {
		now := time.Now()
		for _, f := range strings.Split(string(data), "\n") {
			if f == "" {
				continue
			}
			if err := os.Chtimes(filepath.Join(newTree, f), now, now); err != nil && !errors.Is(err, fs.ErrNotExist) {
				os.RemoveAll(tmp)
				return err
			}
		}
	}
	if err := os.Rename(tmp, to); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	return nil
}
