package kbuild

// Cache hygiene: listing the cache with sizes and last use, and pruning it
// to a size bound, least recently used first.
//
// Entries are the directories a build creates and reuses:
//
//	kernels/<key>/             a built kernel (meta.json, bzImage, config, build.log)
//	src/<sha12>/               the unpacked Debian source (the baseline tree)
//	trees/<sha12>-<series12>/  a patched tree, hard-link copy of src/<sha12>
//	<tree>/.oomlab-build-*/    an object directory inside src/ or trees/ tree
//	ccache/                    the compiler cache
//
// Last use is the entry directory's mtime: every build or cache hit that
// uses an entry touches it (touchUsed). Sizes are disk usage (allocated
// blocks) with every inode counted once, so a patched tree that shares
// almost all of its files with the source costs only what it does not
// share. Use is protected by flock(2) on the entry directory itself: a
// Result holds a shared lock on its kernel until Release (or exit), so a
// kernel a running `oomlab run` boots is never pruned; trees, object
// directories, the source and ccache are only used under build.lock, which
// a prune outside a build must take (else it only prunes kernels).
// Removal renames the entry to a .trash-* name first, so a reader never
// sees a half-deleted entry, and then deletes it.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultMaxCacheSize is the bound builds prune the cache to, unless
// OOMLAB_CACHE_MAX_SIZE (e.g. "20GiB", or "off") says otherwise.
const DefaultMaxCacheSize int64 = 10 << 30

// MaxCacheSizeEnv overrides DefaultMaxCacheSize for builds and for
// `oomlab cache prune`.
const MaxCacheSizeEnv = "OOMLAB_CACHE_MAX_SIZE"

// Entry kinds.
const (
	KindKernel = "kernel"
	KindSource = "source"
	KindTree   = "tree"
	KindObjDir = "objdir"
	KindCcache = "ccache"
	// KindSelftests is one build of upstream selftests from a tree
	// (<cache>/selftests/<key>, package selftests): a few MiB, rebuilt in
	// seconds.
	KindSelftests = "selftests"
)

const trashPrefix = ".trash-"

// Entry is one prunable directory of the cache.
type Entry struct {
	Kind     string
	Path     string
	Name     string    // short display name
	Desc     string    // kernels: variant and release
	Size     int64     // disk usage of the entry, each inode once (object dirs inside a tree are not part of it)
	Alone    int64     // what removing only this entry (and its object dirs) would free
	LastUsed time.Time // mtime of the entry directory
	Parent   string    // object dirs: the tree they are in

	inodes map[inodeID]int // inode -> links inside this entry
}

type inodeID struct{ dev, ino uint64 }

type inodeInfo struct {
	size    int64
	nlink   int // st_nlink
	inCache int // links found in the cache (still present)
}

// Inventory is a scan of the cache.
type Inventory struct {
	Root    string
	Entries []*Entry // by kind, then last use (most recent first)
	Total   int64    // disk usage of the whole cache, each inode once
	Trash   []string // leftover .trash-* directories (removed by Prune)

	inodes map[inodeID]*inodeInfo
}

// ScanCache walks the cache. It only reads.
func ScanCache(cache string) (*Inventory, error) {
	inv := &Inventory{Root: cache, inodes: map[inodeID]*inodeInfo{}}
	if _, err := os.Stat(cache); err != nil {
		return nil, fmt.Errorf("cache %s: %v", cache, cause(err))
	}
	add := func(kind, path, name, parent string) (*Entry, error) {
		st, err := os.Stat(path)
		if err != nil {
			return nil, err
		}
		e := &Entry{Kind: kind, Path: path, Name: name, Parent: parent, LastUsed: st.ModTime(), inodes: map[inodeID]int{}}
		inv.Entries = append(inv.Entries, e)
		return e, nil
	}
	// Trees (src/* and trees/*) with their object directories.
	for _, tk := range []struct{ dir, kind string }{{"src", KindSource}, {"trees", KindTree}} {
		ents, _ := os.ReadDir(filepath.Join(cache, tk.dir))
		for _, d := range ents {
			p := filepath.Join(cache, tk.dir, d.Name())
			if strings.HasPrefix(d.Name(), trashPrefix) {
				inv.Trash = append(inv.Trash, p)
				continue
			}
			if !d.IsDir() || strings.HasPrefix(d.Name(), ".") {
				continue // .tmp-* / .unpack-*: a build in progress; hash memos
			}
			if _, err := add(tk.kind, p, tk.dir+"/"+d.Name(), ""); err != nil {
				continue
			}
			sub, _ := os.ReadDir(p)
			for _, s := range sub {
				sp := filepath.Join(p, s.Name())
				switch {
				case s.IsDir() && strings.HasPrefix(s.Name(), trashPrefix):
					inv.Trash = append(inv.Trash, sp)
				case s.IsDir() && strings.HasPrefix(s.Name(), ".oomlab-build-"):
					add(KindObjDir, sp, tk.dir+"/"+d.Name()+"/"+s.Name(), p)
				}
			}
		}
	}
	ents, _ := os.ReadDir(filepath.Join(cache, "kernels"))
	for _, d := range ents {
		p := filepath.Join(cache, "kernels", d.Name())
		if strings.HasPrefix(d.Name(), trashPrefix) {
			inv.Trash = append(inv.Trash, p)
			continue
		}
		if !d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			continue
		}
		e, err := add(KindKernel, p, d.Name(), "")
		if err != nil {
			continue
		}
		if len(e.Name) > 12 {
			e.Name = e.Name[:12]
		}
		if data, err := os.ReadFile(filepath.Join(p, "meta.json")); err == nil {
			var m meta
			if json.Unmarshal(data, &m) == nil {
				e.Desc = strings.TrimSpace(m.Variant + " " + m.KernelRelease)
			}
		} else {
			e.Desc = "(incomplete: no meta.json)"
		}
	}
	if st, err := os.Stat(filepath.Join(cache, "ccache")); err == nil && st.IsDir() {
		add(KindCcache, filepath.Join(cache, "ccache"), "ccache", "")
	}
	ents, _ = os.ReadDir(filepath.Join(cache, "selftests"))
	for _, d := range ents {
		p := filepath.Join(cache, "selftests", d.Name())
		if strings.HasPrefix(d.Name(), trashPrefix) {
			inv.Trash = append(inv.Trash, p)
			continue
		}
		if !d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			continue // .tmp-*: a build in progress; .lock
		}
		if e, err := add(KindSelftests, p, "selftests/"+d.Name(), ""); err == nil && len(d.Name()) > 12 {
			e.Name = "selftests/" + d.Name()[:12]
		}
	}

	// Sizes: walk everything once; a path belongs to the deepest entry
	// containing it. Entries are walked in parallel (a cache holds
	// hundreds of thousands of files), then accounted in order.
	owner := map[string]bool{}
	for _, e := range inv.Entries {
		owner[e.Path] = true
	}
	roots := append([]*Entry{nil}, inv.Entries...)
	stats := make([][]fileStat, len(roots))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, e := range roots {
		root := cache
		if e != nil {
			root = e.Path
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			stats[i] = walkStats(root, owner)
		}()
	}
	wg.Wait()
	for i, e := range roots {
		for _, f := range stats[i] {
			inv.account(e, f)
		}
	}
	for _, e := range inv.Entries {
		for id := range e.inodes {
			e.Size += inv.inodes[id].size
		}
	}
	for _, e := range inv.Entries {
		e.Alone = inv.freed(inv.withChildren(e))
	}
	kindOrder := map[string]int{KindKernel: 0, KindSelftests: 1, KindTree: 2, KindSource: 3, KindObjDir: 4, KindCcache: 5}
	sort.SliceStable(inv.Entries, func(i, j int) bool {
		a, b := inv.Entries[i], inv.Entries[j]
		if a.Kind != b.Kind {
			return kindOrder[a.Kind] < kindOrder[b.Kind]
		}
		return a.LastUsed.After(b.LastUsed)
	})
	return inv, nil
}

type fileStat struct {
	id    inodeID
	size  int64
	nlink int
}

// walkStats lstats root and everything under it, not descending into
// other entries (paths in skip).
func walkStats(root string, skip map[string]bool) []fileStat {
	var out []fileStat
	var walk func(p string, isDir bool)
	walk = func(p string, isDir bool) {
		st, err := os.Lstat(p)
		if err != nil {
			return
		}
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			out = append(out, fileStat{inodeID{uint64(sys.Dev), sys.Ino}, sys.Blocks * 512, int(sys.Nlink)})
		}
		if !isDir {
			return
		}
		ents, err := os.ReadDir(p)
		if err != nil {
			return
		}
		for _, d := range ents {
			c := filepath.Join(p, d.Name())
			if !skip[c] {
				walk(c, d.IsDir())
			}
		}
	}
	walk(root, true)
	return out
}

// account adds one file to e (nil: the cache itself).
func (inv *Inventory) account(e *Entry, f fileStat) {
	in := inv.inodes[f.id]
	if in == nil {
		in = &inodeInfo{size: f.size, nlink: f.nlink}
		inv.inodes[f.id] = in
		inv.Total += in.size
	}
	in.inCache++
	if e != nil {
		e.inodes[f.id]++
	}
}

// withChildren is e and, for a tree, the object directories inside it:
// removing a tree removes them too.
func (inv *Inventory) withChildren(e *Entry) []*Entry {
	out := []*Entry{e}
	for _, c := range inv.Entries {
		if c.Parent != "" && c.Parent == e.Path {
			out = append(out, c)
		}
	}
	return out
}

// freed is what removing es would free given the links still in the cache:
// an inode is freed when all of its links in the cache go.
func (inv *Inventory) freed(es []*Entry) int64 {
	links := map[inodeID]int{}
	for _, e := range es {
		for id, n := range e.inodes {
			links[id] += n
		}
	}
	var sum int64
	for id, n := range links {
		if in := inv.inodes[id]; in.inCache > 0 && n >= in.inCache {
			sum += in.size
		}
	}
	return sum
}

// remove drops es from the accounting and returns what that freed.
func (inv *Inventory) remove(es []*Entry) int64 {
	f := inv.freed(es)
	for _, e := range es {
		for id, n := range e.inodes {
			inv.inodes[id].inCache -= n
		}
		e.inodes = nil
	}
	inv.Total -= f
	return f
}

// PruneOptions control Prune.
type PruneOptions struct {
	MaxSize int64 // prune until the cache is at most this big
	DryRun  bool  // report what would go, remove nothing
	// HoldsBuildLock: the caller holds build.lock (a build pruning after
	// itself). Otherwise Prune tries to take it, and prunes only kernels
	// when a build is running.
	HoldsBuildLock bool
	Keep           []string // entry paths never to remove (what the calling build used)
}

// Removal is one pruned (or, in a dry run, prunable) entry.
type Removal struct {
	Entry *Entry
	Freed int64 // including its object dirs, given what went before
	With  []*Entry
}

// Skip is an entry that would have gone but is in use.
type Skip struct {
	Entry  *Entry
	Reason string
}

// PruneResult says what Prune did.
type PruneResult struct {
	Before, After int64
	MaxSize       int64
	Removed       []Removal
	Skipped       []Skip
	Trash         int // leftover .trash-* directories removed
	BuildRunning  bool
	DryRun        bool
}

// Freed is the sum of Removed[].Freed.
func (r *PruneResult) Freed() int64 {
	var s int64
	for _, x := range r.Removed {
		s += x.Freed
	}
	return s
}

// Prune removes least recently used entries until the cache is within
// o.MaxSize. Entries in use are skipped: kernels whose directory lock is
// held (a Result not yet released), everything in o.Keep, and everything
// but kernels while another process holds build.lock.
func Prune(cache string, o PruneOptions) (*PruneResult, error) {
	if o.MaxSize < 0 {
		return nil, fmt.Errorf("negative cache bound %d", o.MaxSize)
	}
	if _, err := os.Stat(cache); err != nil {
		return nil, fmt.Errorf("cache %s: %v", cache, cause(err))
	}
	res := &PruneResult{MaxSize: o.MaxSize, DryRun: o.DryRun}
	buildFree := o.HoldsBuildLock
	if !o.HoldsBuildLock {
		unlock, ok, err := tryLock(filepath.Join(cache, "build.lock"), syscall.LOCK_EX)
		if err != nil {
			return nil, err
		}
		if ok {
			defer unlock()
			buildFree = true
		} else {
			res.BuildRunning = true
		}
	}
	inv, err := ScanCache(cache)
	if err != nil {
		return nil, err
	}
	res.Before = inv.Total
	if !o.DryRun {
		for _, t := range inv.Trash {
			if os.RemoveAll(t) == nil {
				res.Trash++
			}
		}
	}
	keep := map[string]bool{}
	for _, k := range o.Keep {
		keep[filepath.Clean(k)] = true
	}
	// Least recently used first; on a tie, selftests and kernels (cheap to
	// rebuild from what remains) before trees, the source and ccache.
	order := append([]*Entry(nil), inv.Entries...)
	rank := map[string]int{KindSelftests: 0, KindKernel: 1, KindObjDir: 2, KindTree: 3, KindSource: 4, KindCcache: 5}
	sort.SliceStable(order, func(i, j int) bool {
		a, b := order[i], order[j]
		if !a.LastUsed.Equal(b.LastUsed) {
			return a.LastUsed.Before(b.LastUsed)
		}
		return rank[a.Kind] < rank[b.Kind]
	})
	gone := map[*Entry]bool{}
	for _, e := range order {
		if inv.Total <= o.MaxSize {
			break
		}
		if gone[e] {
			continue
		}
		group := []*Entry{e}
		for _, c := range inv.withChildren(e)[1:] {
			if !gone[c] {
				group = append(group, c)
			}
		}
		if reason := skipReason(group, keep, buildFree); reason != "" {
			res.Skipped = append(res.Skipped, Skip{e, reason})
			continue
		}
		// Take the entry's lock exclusively: fails if a user holds it.
		var unlocks []func()
		busy := false
		for _, g := range group {
			u, ok, err := tryLock(g.Path, syscall.LOCK_EX)
			if err != nil || !ok {
				busy = true
				break
			}
			unlocks = append(unlocks, u)
		}
		if busy {
			for _, u := range unlocks {
				u()
			}
			res.Skipped = append(res.Skipped, Skip{e, "in use"})
			continue
		}
		if !o.DryRun {
			// Children first, so the tree's rename carries no live objdir.
			var err error
			for i := len(group) - 1; i >= 0 && err == nil; i-- {
				err = removeEntry(group[i].Path)
			}
			if err != nil {
				for _, u := range unlocks {
					u()
				}
				return res, err
			}
		}
		for _, u := range unlocks {
			u()
		}
		freed := inv.remove(group)
		for _, g := range group {
			gone[g] = true
		}
		res.Removed = append(res.Removed, Removal{Entry: e, Freed: freed, With: group[1:]})
	}
	res.After = inv.Total
	return res, nil
}

func skipReason(group []*Entry, keep map[string]bool, buildFree bool) string {
	for _, g := range group {
		if keep[filepath.Clean(g.Path)] {
			return "used by this build"
		}
		// A kernel build does not use kernels or selftests it is not
		// building: those held by a user are skipped by their lock.
		if g.Kind != KindKernel && g.Kind != KindSelftests && !buildFree {
			return "a build is running"
		}
	}
	return ""
}

// removeEntry renames path to a .trash-* sibling, then deletes it.
func removeEntry(path string) error {
	trash, err := os.MkdirTemp(filepath.Dir(path), trashPrefix+filepath.Base(path)+"-")
	if err != nil {
		return fmt.Errorf("pruning %s: %v", path, err)
	}
	if err := os.Rename(path, filepath.Join(trash, "entry")); err != nil {
		os.Remove(trash)
		return fmt.Errorf("pruning %s: %v", path, cause(err))
	}
	if err := os.RemoveAll(trash); err != nil {
		return fmt.Errorf("pruning %s (moved to %s): %v", path, trash, err)
	}
	return nil
}

// tryLock takes a non-blocking flock on path (a file, created if missing,
// or a directory).
func tryLock(path string, how int) (func(), bool, error) {
	var f *os.File
	var err error
	if filepath.Ext(path) == ".lock" {
		f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	} else {
		f, err = os.Open(path)
	}
	if err != nil {
		return nil, false, fmt.Errorf("cannot open %s for locking: %v", path, cause(err))
	}
	if err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("cannot lock %s: %v", path, err)
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, true, nil
}

var (
	heldMu sync.Mutex
	held   = map[*os.File]bool{}
)

// HoldEntry takes a shared lock on a cache entry directory and marks it
// used: Prune skips it until the returned function is called (or the
// process exits). ok is false when the entry is gone (pruned meanwhile).
func HoldEntry(dir string) (release func(), ok bool, err error) {
	for tries := 0; ; tries++ {
		f, err := os.Open(dir)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		// A prune holds the exclusive lock only while renaming the entry
		// away: wait for it, then check the path still names this entry.
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH); err != nil {
			f.Close()
			return nil, false, fmt.Errorf("cannot lock %s: %v", dir, err)
		}
		fst, err1 := f.Stat()
		pst, err2 := os.Stat(dir)
		if err1 == nil && err2 == nil && os.SameFile(fst, pst) {
			touchUsed(dir)
			// Referenced from a package variable: a caller that drops the
			// Result must not lose the lock to the *os.File finalizer.
			heldMu.Lock()
			held[f] = true
			heldMu.Unlock()
			var once sync.Once
			return func() {
				once.Do(func() {
					heldMu.Lock()
					delete(held, f)
					heldMu.Unlock()
					syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
					f.Close()
				})
			}, true, nil
		}
		f.Close()
		if err2 != nil || tries > 3 {
			return nil, false, nil
		}
	}
}

// touchUsed records a use of a cache entry (its directory mtime).
func touchUsed(dir string) {
	now := time.Now()
	_ = os.Chtimes(dir, now, now)
}

// MaxCacheSize is the bound from OOMLAB_CACHE_MAX_SIZE, or the default;
// -1 means "off" (no automatic pruning).
func MaxCacheSize() (int64, error) {
	v := strings.TrimSpace(os.Getenv(MaxCacheSizeEnv))
	switch v {
	case "":
		return DefaultMaxCacheSize, nil
	case "off", "none":
		return -1, nil
	}
	n, err := ParseSize(v)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: %v", MaxCacheSizeEnv, v, err)
	}
	return n, nil
}

var sizeUnits = []struct {
	suffix string
	mult   float64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"t", 1 << 40},
	{"b", 1}, {"", 1},
}

// ParseSize reads "10GiB", "1.5G" (binary), "500MB" (decimal), "0" or a
// plain byte count.
func ParseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	for _, u := range sizeUnits {
		if !strings.HasSuffix(t, u.suffix) {
			continue
		}
		num := strings.TrimSpace(strings.TrimSuffix(t, u.suffix))
		f, err := strconv.ParseFloat(num, 64)
		if err != nil || num == "" || strings.ContainsAny(num, "eEnN+") || f < 0 {
			break
		}
		v := f * u.mult
		if v >= math.MaxInt64 {
			return 0, fmt.Errorf("size %q is too large", s)
		}
		return int64(v), nil
	}
	return 0, fmt.Errorf("cannot read %q as a size; use e.g. 10GiB, 500MiB, 2G or a byte count", s)
}

// FormatSize prints bytes in binary units ("1.5 GiB").
func FormatSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// Summary is a one-line account of a prune, for build output.
func (r *PruneResult) Summary() string {
	verb := "removed"
	if r.DryRun {
		verb = "would remove"
	}
	var names []string
	for _, x := range r.Removed {
		n := x.Entry.Kind + " " + x.Entry.Name
		if x.Entry.Kind == KindKernel && x.Entry.Desc != "" {
			n += " (" + x.Entry.Desc + ")"
		}
		if len(x.With) > 0 {
			n += fmt.Sprintf(" with %d object dir(s)", len(x.With))
		}
		names = append(names, n)
	}
	s := fmt.Sprintf("cache over %s: %s %s, freeing %s; now %s", FormatSize(r.MaxSize), verb, strings.Join(names, ", "), FormatSize(r.Freed()), FormatSize(r.After))
	if len(r.Removed) == 0 {
		s = fmt.Sprintf("cache is %s, over the %s bound, but nothing can go", FormatSize(r.Before), FormatSize(r.MaxSize))
	}
	if r.After > r.MaxSize && len(r.Skipped) > 0 {
		s += fmt.Sprintf(" (%d entries in use kept)", len(r.Skipped))
	}
	return s
}
