// Package kbuild builds the baseline and patched guest kernels.
//
// One pristine source tree (the Debian linux-source tarball unpacked once,
// or a developer's tree) is built as "baseline"; "patched" is a hard-link
// copy of it with the patch series applied. Each tree is built in an object
// directory that is a direct subdirectory of the tree, so kbuild refers to
// sources as "../path": compiler command lines are then identical across
// the two trees and ccache serves every file the series does not touch.
// Finished kernels are stored under a content key so that repeated runs
// cost a hash and a stat.
package kbuild

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Options selects what to build. See Build.
type Options struct {
	CacheDir     string       // root of the oomlab cache; "" = DefaultCacheDir()
	KernelSrc    string       // "" = Debian linux-source tarball named by BaseFile; else a kernel tree
	BaseFile     []byte       // contents of patches/BASE
	Series       fs.FS        // patch series dir (series + *.patch); nil/empty = no patches
	Variant      string       // VariantBaseline, VariantPatched or "patched:N" (the first N patches)
	Fragments    []Fragment   // kconfig fragments, merged in order over tinyconfig
	Jobs         int          // make -j; 0 = runtime.NumCPU()
	Progress     func(Status) // optional; phase changes and ~1/s while building
	LogOut       io.Writer    // optional; kbuild's own messages and warnings (default os.Stderr for warnings)
	AllowInstall bool         // as root, apt-get install the Debian source package if missing
	// MaxCacheSize bounds the cache: after building, Build prunes least
	// recently used entries past it. 0 = OOMLAB_CACHE_MAX_SIZE or
	// DefaultMaxCacheSize; negative = never prune.
	MaxCacheSize int64
}

// Fragment is one kconfig fragment ("CONFIG_X=y" / "# CONFIG_X is not set" lines).
type Fragment struct {
	Name string
	Data []byte
}

// Status is passed to Options.Progress.
type Status struct {
	Phase    string
	Elapsed  time.Duration // since Build started
	Compiled int           // "CC" lines seen so far in the build phase
	Line     string        // latest make output line, or a phase detail
}

// Result describes a built (or cached) kernel. Paths point into the cache.
type Result struct {
	BzImage, Config, BuildLog string
	Key                       string
	Cached                    bool
	KernelRelease             string
	SourceID                  string
	Duration                  time.Duration // unpack+patch+config+make of the build that produced it (also for cache hits)
	// Pruned is one line saying what the build pruned from the cache past
	// its bound (see Options.MaxCacheSize), or "" when it was within it.
	// It is also written to LogOut.
	Pruned string
	// Compiler and Patches are inputs of Key, for the run record (and
	// KCIDB's compiler and patchset_hash): the gcc --version line and the
	// patches applied, in order (none for baseline).
	Compiler string
	Patches  []PatchID

	release func()
}

// PatchID names one applied patch by its path in the series and the
// SHA-256 of its contents.
type PatchID struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
}

// withInputs fills in the inputs of the key that a cache entry does not
// keep in full.
func withInputs(r *Result, gcc string, patches []Patch) *Result {
	r.Compiler = gcc
	r.Patches = nil
	for _, p := range patches {
		sum := sha256.Sum256(p.Data)
		r.Patches = append(r.Patches, PatchID{Name: p.Name, SHA256: hex.EncodeToString(sum[:])})
	}
	return r
}

// Release ends the use of the kernel: until then (or until the process
// exits) its cache entry is locked and no prune removes it.
func (r *Result) Release() {
	if r != nil && r.release != nil {
		r.release()
		r.release = nil
	}
}

// Variants.
const (
	VariantBaseline = "baseline"
	VariantPatched  = "patched"
)

// Phases reported through Status.Phase.
const (
	PhaseResolve = "resolve" // identify source, compute cache key
	PhaseCached  = "cached"  // cache hit, nothing to do
	PhaseWait    = "wait"    // another process is building with the same cache
	PhaseInstall = "install" // apt-get install of the source package
	PhaseUnpack  = "unpack"  // unpacking the tarball (once per source)
	PhasePatch   = "patch"   // creating the patched tree (once per source+series)
	PhaseSeed    = "seed"    // copying baseline objects into the patched tree's object dir
	PhaseConfig  = "config"  // tinyconfig + fragments + olddefconfig
	PhaseBuild   = "build"   // make bzImage
	PhaseStore   = "store"   // copying results into the cache
	PhaseDone    = "done"
)

// recipeVersion is part of every cache key: bump it when the way a kernel
// is configured or built changes, so old cached kernels are not reused.
const recipeVersion = "oomlab-kbuild-1"

// arch is fixed: the guest is x86_64 under QEMU.
const (
	makeArch    = "x86_64"
	kconfigArch = "x86"
)

// DefaultCacheDir is $XDG_CACHE_HOME/oomlab, or ~/.cache/oomlab.
func DefaultCacheDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "oomlab")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("oomlab-cache-%d", os.Getuid()))
}

type builder struct {
	o     Options
	cache string
	base  Base
	start time.Time
	work  time.Time // when the build lock was taken: Result.Duration counts from here
	log   io.Writer // never nil
}

// newBuilder is the set-up Build and SourceTree share: the variant parsed,
// the cache made absolute (it ends up in paths make and ccache see) and
// the base read.
func newBuilder(o Options) (b *builder, kind string, prefix int, err error) {
	b = &builder{o: o, start: time.Now(), log: o.LogOut}
	if b.log == nil {
		b.log = io.Discard
	}
	if kind, prefix, err = ParseVariant(o.Variant); err != nil {
		return nil, kind, 0, err
	}
	b.cache = o.CacheDir
	if b.cache == "" {
		b.cache = DefaultCacheDir()
	}
	if b.cache, err = filepath.Abs(b.cache); err != nil {
		return nil, kind, 0, err
	}
	if b.base, err = ParseBase(o.BaseFile); err != nil {
		return nil, kind, 0, err
	}
	return b, kind, prefix, nil
}

// Build returns the kernel for o, building it if it is not cached.
func Build(ctx context.Context, o Options) (*Result, error) {
	if len(o.Fragments) == 0 {
		return nil, errors.New("no kconfig fragments given; pass at least kconfig/base.config")
	}
	b, kind, prefix, err := newBuilder(o)
	if err != nil {
		return nil, err
	}
	if b.o.Jobs <= 0 {
		b.o.Jobs = runtime.NumCPU()
	}
	if err := os.MkdirAll(b.cache, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create cache directory %s: %v (set a writable one with XDG_CACHE_HOME or the cache option)", b.cache, cause(err))
	}

	// Everything up to the cache lookup must stay cheap (no make, no unpack).
	b.phase(PhaseResolve, "")
	reqs, err := mergeFragments(o.Fragments)
	if err != nil {
		return nil, err
	}
	patches, err := b.variantPatches(kind, prefix)
	if err != nil {
		return nil, err
	}
	src, err := b.identify(ctx)
	if err != nil {
		return nil, err
	}
	gcc, err := gccVersion(ctx)
	if err != nil {
		return nil, err
	}
	key := cacheKey(keyInput{
		Source: src.ID, Base: o.BaseFile, Variant: o.Variant,
		Patches: patches, Fragments: o.Fragments, Compiler: gcc,
	})
	if r, ok := b.useCached(key); ok {
		b.phase(PhaseCached, r.BzImage)
		return withInputs(r, gcc, patches), nil
	}

	// Slow path. One build at a time per cache: builds are CPU-bound and
	// share trees and ccache, so parallel builds would only contend.
	unlock, err := lockFile(ctx, filepath.Join(b.cache, "build.lock"), func() {
		b.phase(PhaseWait, "another kernel build is using "+b.cache)
	})
	if err != nil {
		return nil, err
	}
	defer unlock()
	b.work = time.Now()
	if r, ok := b.useCached(key); ok { // built by someone else meanwhile
		b.phase(PhaseCached, r.BzImage)
		return withInputs(r, gcc, patches), nil
	}
	if err := checkTools(); err != nil {
		return nil, err
	}
	if src.Tarball != "" {
		if err := b.unpackDebian(ctx, src); err != nil {
			return nil, err
		}
	}
	tree := src.Tree
	if len(patches) > 0 {
		tree, err = b.preparePatched(ctx, src, patches, seriesHash(patches))
		if err != nil {
			return nil, err
		}
	}
	res, err := b.buildTree(ctx, tree, key, src, reqs, gcc)
	if err != nil {
		return nil, err
	}
	if release, ok, err := HoldEntry(kernelDir(b.cache, key)); err == nil && ok {
		res.release = release
	}
	// Record the use of everything this build used, and keep it.
	objName := objDirName(b.o.Fragments, gcc)
	used := []string{kernelDir(b.cache, key), filepath.Join(b.cache, "ccache"), filepath.Join(tree, objName)}
	if src.Tarball != "" {
		used = append(used, src.Tree, filepath.Join(src.Tree, objName))
	}
	if tree != src.Tree {
		used = append(used, tree)
	}
	for _, u := range used {
		if _, err := os.Stat(u); err == nil {
			touchUsed(u)
		}
	}
	res.Pruned = b.autoPrune(used)
	b.phase(PhaseDone, res.BzImage)
	return withInputs(res, gcc, patches), nil
}

// variantPatches are the patches o.Variant applies, in order.
func (b *builder) variantPatches(kind string, prefix int) ([]Patch, error) {
	o := b.o
	var patches []Patch
	if kind == VariantPatched {
		var err error
		if patches, err = ReadSeries(o.Series); err != nil {
			return nil, err
		}
		if len(patches) == 0 {
			b.warnf("variant %q requested but the patch series is empty; building the unpatched tree", o.Variant)
		}
		if prefix > len(patches) {
			return nil, fmt.Errorf("kernel variant %q: the series has only %d patches", o.Variant, len(patches))
		}
		if prefix > 0 {
			patches = patches[:prefix]
		}
	}
	if WithTest(o.Variant) {
		test, err := readTestSeries(o.Series)
		if err != nil {
			return nil, err
		}
		patches = append(patches, test...)
	}
	return patches, nil
}

// useCached returns the cached kernel for key, holding its entry (see
// HoldEntry) so that it is not pruned while in use.
func (b *builder) useCached(key string) (*Result, bool) {
	if _, ok := lookup(b.cache, key); !ok {
		return nil, false
	}
	release, ok, err := HoldEntry(kernelDir(b.cache, key))
	if err != nil || !ok {
		return nil, false
	}
	r, ok := lookup(b.cache, key) // as it is now that it is held
	if !ok {
		release()
		return nil, false
	}
	r.release = release
	return r, true
}

// autoPrune prunes the cache past its bound after a build (the caller
// holds build.lock), keeping what the build used, and says so in one line
// (returned, and written to LogOut).
func (b *builder) autoPrune(keep []string) string {
	bound := b.o.MaxCacheSize
	if bound == 0 {
		var err error
		if bound, err = MaxCacheSize(); err != nil {
			b.warnf("%v; not pruning the cache", err)
			return ""
		}
	}
	if bound < 0 {
		return ""
	}
	res, err := Prune(b.cache, PruneOptions{MaxSize: bound, HoldsBuildLock: true, Keep: keep})
	if err != nil {
		b.warnf("pruning the cache: %v", err)
		return ""
	}
	if res.Before <= bound {
		return ""
	}
	b.logf("%s", res.Summary())
	return "kbuild: " + res.Summary()
}

func (b *builder) identify(ctx context.Context) (*source, error) {
	if b.o.KernelSrc != "" {
		return b.identifyTree(ctx, b.o.KernelSrc)
	}
	return b.identifyDebian(ctx)
}

// checkTools fails early, with the apt command line, when build
// prerequisites are missing (a fresh CI machine), instead of deep in make.
func checkTools() error {
	var missing []string
	pkgs := map[string]string{"make": "make", "gcc": "gcc", "flex": "flex", "bison": "bison", "bc": "bc", "tar": "tar", "xz": "xz-utils", "patch": "patch", "perl": "perl"}
	for _, t := range []string{"make", "gcc", "flex", "bison", "bc", "tar", "xz", "patch", "perl"} {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, pkgs[t])
		}
	}
	// objtool (UNWINDER_ORC) needs libelf headers.
	if _, err := os.Stat("/usr/include/gelf.h"); err != nil {
		missing = append(missing, "libelf-dev")
	}
	if len(missing) > 0 {
		return fmt.Errorf("kernel build tools missing: %s; install with: apt-get install -y %s", strings.Join(missing, ", "), strings.Join(missing, " "))
	}
	return nil
}

// phase reports a phase change; the log line carries the time since Build
// started so slow steps are visible without a profiler.
func (b *builder) phase(p, line string) {
	el := time.Since(b.start).Round(100 * time.Millisecond)
	if line != "" {
		b.logf("[%s] +%s %s", p, el, line)
	} else {
		b.logf("[%s] +%s", p, el)
	}
	b.progress(Status{Phase: p, Line: line})
}

func (b *builder) progress(s Status) {
	if b.o.Progress != nil {
		s.Elapsed = time.Since(b.start)
		b.o.Progress(s)
	}
}

func (b *builder) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "kbuild: "+format+"\n", args...)
}

func (b *builder) logRaw(p []byte) { b.log.Write(p) }

// notef is a line that always reaches a human (LogOut, else stderr), not
// a warning: an optional kconfig symbol left out.
func (b *builder) notef(format string, args ...any) {
	w := b.o.LogOut
	if w == nil {
		w = os.Stderr
	}
	fmt.Fprintf(w, "kbuild: "+format+"\n", args...)
}

// warnf always reaches a human: to LogOut when set, else stderr.
func (b *builder) warnf(format string, args ...any) {
	w := b.o.LogOut
	if w == nil {
		w = os.Stderr
	}
	fmt.Fprintf(w, "kbuild: warning: "+format+"\n", args...)
}

// keyInput is everything that determines the built kernel.
type keyInput struct {
	Source    string
	Base      []byte
	Variant   string
	Patches   []Patch
	Fragments []Fragment
	Compiler  string
}

// cacheKey hashes keyInput with length-prefixed fields, so no two distinct
// inputs can serialise alike. Fragment names are left out (renaming a file
// does not change the kernel), and so are their comments (fragmentKey:
// marking a symbol optional or rewording a comment does not rebuild);
// order is kept (later fragments win). The
// series only counts for the patched variant: a baseline kernel does not
// depend on the patches, and must stay cached while they are being edited.
func cacheKey(in keyInput) string {
	h := sha256.New()
	field := func(name string, data []byte) {
		fmt.Fprintf(h, "%s %d\n", name, len(data))
		h.Write(data)
		h.Write([]byte{'\n'})
	}
	field("recipe", []byte(recipeVersion))
	field("arch", []byte(makeArch))
	field("source", []byte(in.Source))
	field("base", in.Base)
	field("variant", []byte(in.Variant))
	field("compiler", []byte(in.Compiler))
	if in.Variant != VariantBaseline {
		for _, p := range in.Patches {
			field("patch-name", []byte(fmt.Sprintf("%s -p%d", p.Name, p.Strip)))
			field("patch", patchBody(p.Data))
		}
	}
	for _, f := range in.Fragments {
		field("fragment", fragmentKey(f))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// seriesHash names the patched tree: it depends only on what the patches
// change.
func seriesHash(patches []Patch) string {
	h := sha256.New()
	for _, p := range patches {
		body := patchBody(p.Data)
		fmt.Fprintf(h, "%s -p%d %d\n", p.Name, p.Strip, len(body))
		h.Write(body)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// patchBody is the part of a patch that changes the tree: from the first
// "diff " line (or "--- " line followed by "+++ ") up to git's "-- "
// signature. Rewording a commit message, or regenerating the series with
// another git, must not cost a kernel build.
func patchBody(data []byte) []byte {
	start := -1
	for off := 0; off < len(data); {
		end := bytes.IndexByte(data[off:], '\n')
		if end < 0 {
			end = len(data) - off
		}
		line := data[off : off+end]
		next := data[min(off+end+1, len(data)):]
		if bytes.HasPrefix(line, []byte("diff ")) ||
			(bytes.HasPrefix(line, []byte("--- ")) && bytes.HasPrefix(next, []byte("+++ "))) {
			start = off
			break
		}
		off += end + 1
	}
	if start < 0 {
		return data // not a diff we recognise: every byte counts
	}
	body := data[start:]
	if i := bytes.LastIndex(body, []byte("\n-- \n")); i >= 0 {
		body = body[:i+1]
	}
	return body
}

// TestSuffix marks a variant that also gets the test-only series
// (patches/test: fault injection and other lab hooks that are never sent
// upstream) on top: "patched:2+test".
const TestSuffix = "+test"

// TestSeriesDir is the test-only series inside the series directory.
const TestSeriesDir = "test"

// WithTest says whether variant v asks for the test-only series on top.
func WithTest(v string) bool { return strings.HasSuffix(v, TestSuffix) }

// ParseVariant splits a kernel variant: "baseline", "patched" (the whole
// series) or "patched:N", the first N patches, which measures a patch
// against the ones before it; any of them may end in "+test" (WithTest).
func ParseVariant(v string) (kind string, prefix int, err error) {
	v = strings.TrimSuffix(v, TestSuffix)
	switch {
	case v == VariantBaseline || v == VariantPatched:
		return v, 0, nil
	case strings.HasPrefix(v, VariantPatched+":"):
		n, err := strconv.Atoi(strings.TrimPrefix(v, VariantPatched+":"))
		if err == nil && n >= 1 && n <= 999 {
			return VariantPatched, n, nil
		}
	}
	return "", 0, fmt.Errorf("kernel variant %q is unknown; use %q, %q or %q:N (the first N patches), each optionally with %q (the test-only series on top)", v, VariantBaseline, VariantPatched, VariantPatched, TestSuffix)
}

// localVersion is the kernel release suffix of a variant ("patched:3" ->
// "-oomlab-patched-3": a colon has no place in a release string).
func localVersion(variant string) string {
	r := strings.NewReplacer(":", "-", "+", "-")
	return "-oomlab-" + r.Replace(variant)
}

// meta is <cache>/kernels/<key>/meta.json.
type meta struct {
	Key           string    `json:"key"`
	Variant       string    `json:"variant"`
	SourceID      string    `json:"source"`
	KernelRelease string    `json:"kernel_release"`
	Compiler      string    `json:"compiler"`
	Fragments     []string  `json:"fragments"`
	Patches       []string  `json:"patches,omitempty"`
	Compiled      int       `json:"compiled"`
	DurationNS    int64     `json:"duration_ns"`
	BuiltAt       time.Time `json:"built_at"`
}

func kernelDir(cache, key string) string { return filepath.Join(cache, "kernels", key) }

// lookup returns a cached result. The directory only exists once complete
// (it is renamed into place), so existence of meta.json and bzImage suffices.
func lookup(cache, key string) (*Result, bool) {
	dir := kernelDir(cache, key)
	data, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		return nil, false
	}
	var m meta
	if json.Unmarshal(data, &m) != nil || m.Key != key {
		return nil, false
	}
	r := &Result{
		BzImage:       filepath.Join(dir, "bzImage"),
		Config:        filepath.Join(dir, "config"),
		BuildLog:      filepath.Join(dir, "build.log"),
		Key:           key,
		Cached:        true,
		KernelRelease: m.KernelRelease,
		SourceID:      m.SourceID,
		Duration:      time.Duration(m.DurationNS),
	}
	if st, err := os.Stat(r.BzImage); err != nil || st.Size() == 0 {
		return nil, false
	}
	return r, true
}

// store copies the build outputs into <cache>/kernels/<key> atomically.
func store(cache string, m meta, bzImage, config, buildLog string) (*Result, error) {
	final := kernelDir(cache, m.Key)
	parent := filepath.Dir(final)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(parent, ".tmp-"+m.Key[:12]+"-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	for _, c := range [][2]string{{bzImage, "bzImage"}, {config, "config"}, {buildLog, "build.log"}} {
		if err := copyFile(c[0], filepath.Join(tmp, c[1])); err != nil {
			return nil, fmt.Errorf("storing %s in the cache: %w", c[1], err)
		}
	}
	data, _ := json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(filepath.Join(tmp, "meta.json"), append(data, '\n'), 0o644); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, final); err != nil {
		if r, ok := lookup(cache, m.Key); ok {
			return r, nil // someone stored the same key first
		}
		return nil, fmt.Errorf("storing kernel in %s: %w", final, err)
	}
	r, ok := lookup(cache, m.Key)
	if !ok {
		return nil, fmt.Errorf("cache entry %s is unreadable right after writing it", final)
	}
	r.Cached = false
	return r, nil
}

// lockFile takes an exclusive flock, polling so that ctx can cancel the
// wait; waiting is called once if the lock is busy.
func lockFile(ctx context.Context, path string, waiting func()) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cannot open lock %s: %v", path, err)
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
		if waiting != nil {
			waiting()
			waiting = nil
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// cause strips the path from *fs.PathError so messages that already name
// the path do not repeat it.
func cause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// readTestSeries reads the test-only series; its patches are named
// "test/<file>" so that logs and errors say which series they are from.
func readTestSeries(series fs.FS) ([]Patch, error) {
	if series == nil {
		return nil, fmt.Errorf("a %q variant needs the test-only series (%s/series in the patch directory), but there is no patch directory", TestSuffix, TestSeriesDir)
	}
	sub, err := fs.Sub(series, TestSeriesDir)
	if err != nil {
		return nil, err
	}
	patches, err := ReadSeries(sub)
	if err != nil {
		return nil, fmt.Errorf("test-only series: %w", err)
	}
	if len(patches) == 0 {
		return nil, fmt.Errorf("a %q variant needs the test-only series, but %s/series in the patch directory lists no patches", TestSuffix, TestSeriesDir)
	}
	for i := range patches {
		patches[i].Name = TestSeriesDir + "/" + patches[i].Name
	}
	return patches, nil
}
