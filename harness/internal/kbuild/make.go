package kbuild

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
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
		fmt.Fprintf(h, "%d\n", len(f.Data))
		h.Write(f.Data)
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
}

func (m *makeRun) run(ctx context.Context, what string, onLine func(string), args ...string) error {
	full := append([]string{"-C", m.tree, "O=" + m.objDir, "ARCH=" + makeArch}, args...)
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

// buildTree configures and builds tree, then stores the result under key.
func (b *builder) buildTree(ctx context.Context, tree, key string, src *source, reqs []request, compiler string) (*Result, error) {
	objName := objDirName(b.o.Fragments, compiler)
	objDir := filepath.Join(tree, objName)
	if err := os.MkdirAll(objDir, 0o755); err != nil {
		return nil, err
	}
	logPath := filepath.Join(objDir, "build.log")
	if err := os.WriteFile(logPath, []byte(fmt.Sprintf("# oomlab kernel build %s\n# source: %s\n# tree: %s\n# variant: %s\n",
		key, src.Desc, tree, b.o.Variant)), 0o644); err != nil {
		return nil, err
	}
	m := &makeRun{b: b, tree: tree, objDir: objName, logPath: logPath, env: b.buildEnv(tree)}

	// Config. Unknown symbols are checked against the tree being built,
	// since a patch series may add Kconfig symbols.
	b.phase(PhaseConfig, "")
	db, err := LoadKconfig(tree, kconfigArch)
	if err != nil {
		return nil, err
	}
	if unk := db.unknownSymbols(reqs); len(unk) > 0 {
		var items []string
		for _, r := range unk {
			items = append(items, fmt.Sprintf("CONFIG_%s (%s:%d)", r.Symbol, r.Fragment, r.Line))
		}
		return nil, fmt.Errorf("kconfig fragments name symbols no Kconfig file in %s defines: %s; remove or rename them", tree, strings.Join(items, ", "))
	}
	if err := m.run(ctx, "configuration", nil, "tinyconfig"); err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(objDir, ".config")
	tiny, err := os.ReadFile(cfgPath)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(cfgPath, applyRequests(tiny, reqs), 0o644); err != nil {
		return nil, err
	}
	if err := m.run(ctx, "configuration", nil, "olddefconfig"); err != nil {
		return nil, err
	}
	finalData, err := os.ReadFile(cfgPath)
	if err != nil {
		return nil, err
	}
	final := ParseConfig(finalData)
	if d := checkRequests(reqs, final); len(d) > 0 {
		return nil, fmt.Errorf("kconfig: %d requested setting(s) did not survive olddefconfig (final config: %s):\n  %s",
			len(d), cfgPath, strings.Join(db.explain(d, final), "\n  "))
	}

	// Build.
	b.phase(PhaseBuild, "")
	buildStart := time.Now()
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
	cc := "gcc"
	if _, err := exec.LookPath("ccache"); err == nil {
		cc = "ccache gcc"
	} else {
		b.warnf("ccache not found; building without it (install with: apt-get install -y ccache)")
	}
	err = m.run(ctx, "build", func(line string) {
		mu.Lock()
		if reCompiled.MatchString(line) {
			compiled++
		}
		last = line
		mu.Unlock()
	}, fmt.Sprintf("-j%d", b.o.Jobs), "CC="+cc, "LOCALVERSION=-oomlab-"+b.o.Variant, "bzImage")
	close(stop)
	tick.Wait()
	if err != nil {
		return nil, err
	}
	dur := time.Since(buildStart)
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
