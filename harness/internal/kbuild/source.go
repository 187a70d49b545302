package kbuild

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"oomlab/harness/internal/atomicfile"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
)

// source is a resolved kernel source: a pristine tree that is never written
// to except for object directories directly below it.
type source struct {
	Tree string // pristine kernel tree
	// ID is the content identity that goes into the cache key.
	ID string
	// Desc is the human-readable identity for Result.SourceID and meta.json.
	Desc string
	// Short names derived trees (patched copies) in the cache.
	Short string
	// Tarball is the Debian tarball, "" for --kernel-src trees.
	Tarball string
}

// ValidateKernelTree checks that dir looks like a Linux kernel tree with the
// OOM killer we are measuring. The error names the directory and what is missing.
func ValidateKernelTree(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("kernel source %s: %v", dir, cause(err))
	}
	if !st.IsDir() {
		return fmt.Errorf("kernel source %s is not a directory", dir)
	}
	mk, err := os.ReadFile(filepath.Join(dir, "Makefile"))
	if err != nil {
		return fmt.Errorf("kernel source %s is not a kernel tree: no top-level Makefile", dir)
	}
	if !regexp.MustCompile(`(?m)^VERSION\s*=`).Match(mk) || !regexp.MustCompile(`(?m)^PATCHLEVEL\s*=`).Match(mk) {
		return fmt.Errorf("kernel source %s is not a kernel tree: Makefile has no VERSION/PATCHLEVEL", dir)
	}
	for _, f := range []string{"Kconfig", "mm/oom_kill.c"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return fmt.Errorf("kernel source %s is not a kernel tree: missing %s", dir, f)
		}
	}
	// Kbuild refuses O= builds when the source tree has in-tree build
	// output; catch it here with the fix instead of deep in make output.
	for _, f := range []string{".config", "include/config/auto.conf"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return fmt.Errorf("kernel source %s has an in-tree build (%s); run 'make -C %s mrproper' first", dir, f, dir)
		}
	}
	return nil
}

// makefileVersion returns "VERSION.PATCHLEVEL.SUBLEVEL" from a kernel Makefile.
func makefileVersion(tree string) string {
	mk, err := os.ReadFile(filepath.Join(tree, "Makefile"))
	if err != nil {
		return ""
	}
	get := func(k string) string {
		m := regexp.MustCompile(`(?m)^` + k + `\s*=\s*(\S*)`).FindSubmatch(mk)
		if m == nil {
			return ""
		}
		return string(m[1])
	}
	v := get("VERSION") + "." + get("PATCHLEVEL")
	if s := get("SUBLEVEL"); s != "" {
		v += "." + s
	}
	return v + get("EXTRAVERSION")
}

// dpkgVersion returns the installed version of a Debian package, "" if unknown.
func dpkgVersion(ctx context.Context, pkg string) string {
	out, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${Version}", pkg).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// hashMemo avoids re-hashing the 150 MB tarball on every cache lookup; it is
// keyed by the file's size, mtime and inode, which dpkg changes on upgrade.
type hashMemo struct {
	Path  string `json:"path"`
	Size  int64  `json:"size"`
	Mtime int64  `json:"mtime_ns"`
	Ino   uint64 `json:"ino"`
	Hash  string `json:"sha256"`
}

func fileSHA256(cacheDir, path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	var ino uint64
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		ino = s.Ino
	}
	memoPath := filepath.Join(cacheDir, "src", "hash-"+shortHash([]byte(path))+".json")
	if data, err := os.ReadFile(memoPath); err == nil {
		var m hashMemo
		if json.Unmarshal(data, &m) == nil && m.Path == path && m.Size == st.Size() &&
			m.Mtime == st.ModTime().UnixNano() && m.Ino == ino && len(m.Hash) == 64 {
			return m.Hash, nil
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hashing %s: %w", path, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	m := hashMemo{Path: path, Size: st.Size(), Mtime: st.ModTime().UnixNano(), Ino: ino, Hash: sum}
	if data, err := json.Marshal(m); err == nil {
		_ = atomicfile.Write(memoPath, data, 0o644) // only an optimisation
	}
	return sum, nil
}

func shortHash(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])[:12]
}

// identifyDebian locates (installing if allowed) the Debian tarball and
// returns its identity. It does not unpack: cache hits must stay cheap.
func (b *builder) identifyDebian(ctx context.Context) (*source, error) {
	pkg := b.base.Package
	tb := b.base.Tarball
	want := b.base.Version
	pin := pkg
	if want != "" {
		pin = pkg + "=" + want
	}
	if _, err := os.Stat(tb); err != nil {
		if os.Geteuid() != 0 || !b.o.AllowInstall {
			hint := "apt-get install -y " + pin
			if os.Geteuid() != 0 {
				hint = "sudo " + hint
			}
			return nil, fmt.Errorf("kernel source %s not found; install it with: %s (or pass a kernel tree with --kernel-src DIR)", tb, hint)
		}
		if err := b.aptInstall(ctx, pkg, want); err != nil {
			return nil, err
		}
		if _, err := os.Stat(tb); err != nil {
			return nil, fmt.Errorf("apt-get installed %s but %s is still missing", pkg, tb)
		}
	}
	got := dpkgVersion(ctx, pkg)
	switch {
	case got == "":
		b.warnf("cannot determine the installed version of %s (dpkg-query failed); using %s as is", pkg, tb)
	case want != "" && got != want:
		b.warnf("%s is version %s but patches/BASE expects %s; continuing (to match: apt-get install -y %s)", pkg, got, want, pin)
	}
	sum, err := fileSHA256(b.cache, tb)
	if err != nil {
		return nil, fmt.Errorf("reading kernel source %s: %v", tb, err)
	}
	ver := got
	if ver == "" {
		ver = "unknown-version"
	}
	return &source{
		ID:      "tarball sha256:" + sum,
		Desc:    fmt.Sprintf("debian %s %s (%s sha256:%s)", pkg, ver, tb, sum[:12]),
		Short:   sum[:12],
		Tarball: tb,
		Tree:    filepath.Join(b.cache, "src", sum[:12]),
	}, nil
}

// aptInstall installs the pinned version, refreshing the package lists once
// if needed, and falls back to the newest available version with a warning.
func (b *builder) aptInstall(ctx context.Context, pkg, version string) error {
	run := func(args ...string) error {
		b.logf("running: apt-get %s", strings.Join(args, " "))
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		b.logRaw(out)
		if err != nil {
			return fmt.Errorf("apt-get %s: %v: %s", strings.Join(args, " "), err, lastLines(out, 1))
		}
		return nil
	}
	b.phase(PhaseInstall, "apt-get install "+pkg)
	if version != "" {
		if run("install", "-y", pkg+"="+version) == nil {
			return nil
		}
		if run("update") == nil && run("install", "-y", pkg+"="+version) == nil {
			return nil
		}
		b.warnf("%s=%s is not installable; falling back to the newest %s", pkg, version, pkg)
	}
	if err := run("install", "-y", pkg); err != nil {
		if err2 := run("update"); err2 != nil {
			return err
		}
		if err := run("install", "-y", pkg); err != nil {
			return fmt.Errorf("cannot install kernel source: %v", err)
		}
	}
	return nil
}

// unpackDebian unpacks the tarball once into <cache>/src/<sha12>. The tree
// is unpacked into a temporary directory and renamed into place so that an
// interrupted unpack never leaves a half tree that looks complete.
func (b *builder) unpackDebian(ctx context.Context, s *source) error {
	if _, err := os.Stat(filepath.Join(s.Tree, "mm", "oom_kill.c")); err == nil {
		return nil
	}
	b.phase(PhaseUnpack, s.Tarball)
	parent := filepath.Dir(s.Tree)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, ".unpack-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, "tar", "-xf", s.Tarball, "-C", tmp)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("unpacking %s: %v: %s", s.Tarball, err, lastLines(out, 2))
	}
	ents, err := os.ReadDir(tmp)
	if err != nil {
		return err
	}
	if len(ents) != 1 || !ents[0].IsDir() {
		return fmt.Errorf("unpacking %s: expected one top-level directory, found %d entries", s.Tarball, len(ents))
	}
	top := filepath.Join(tmp, ents[0].Name())
	if err := ValidateKernelTree(top); err != nil {
		return fmt.Errorf("%s does not contain a usable kernel tree: %v", s.Tarball, err)
	}
	if err := os.Rename(top, s.Tree); err != nil {
		if _, err2 := os.Stat(filepath.Join(s.Tree, "mm", "oom_kill.c")); err2 == nil {
			return nil // lost a race with another unpack; theirs is as good
		}
		return fmt.Errorf("installing unpacked source at %s: %w", s.Tree, err)
	}
	return nil
}

// identifyTree computes the identity of a developer's tree: for git
// checkouts HEAD plus the hash of uncommitted changes (tracked diff and
// untracked files), otherwise a walk over paths, sizes and mtimes.
func (b *builder) identifyTree(ctx context.Context, dir string) (*source, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := ValidateKernelTree(abs); err != nil {
		return nil, err
	}
	id, desc, err := gitIdentity(ctx, abs)
	if err != nil {
		id, err = walkIdentity(abs)
		if err != nil {
			return nil, fmt.Errorf("kernel source %s: %v", abs, err)
		}
		desc = fmt.Sprintf("tree %s (%s, contents %s)", abs, makefileVersion(abs), id[len(id)-12:])
	}
	return &source{ID: id, Desc: desc, Short: shortHash([]byte(id)), Tree: abs}, nil
}

func gitIdentity(ctx context.Context, dir string) (id, desc string, err error) {
	if _, err := os.Stat(filepath.Join(dir, ".git")); err != nil {
		return "", "", err
	}
	git := func(args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
		return cmd.Output()
	}
	head, err := git("rev-parse", "HEAD")
	if err != nil {
		return "", "", err
	}
	diff, err := git("diff", "HEAD", "--binary", "--no-ext-diff", "--no-color")
	if err != nil {
		return "", "", err
	}
	untracked, err := git("ls-files", "-z", "--others", "--exclude-standard")
	if err != nil {
		return "", "", err
	}
	h := sha256.New()
	h.Write(diff)
	names := strings.Split(strings.TrimRight(string(untracked), "\x00"), "\x00")
	sort.Strings(names)
	for _, n := range names {
		if n == "" {
			continue
		}
		fmt.Fprintf(h, "\x00untracked %s\x00", n)
		if data, err := os.ReadFile(filepath.Join(dir, n)); err == nil {
			h.Write(data)
		}
	}
	changes := hex.EncodeToString(h.Sum(nil))
	hd := strings.TrimSpace(string(head))
	id = "git " + hd + " changes " + changes
	desc = fmt.Sprintf("git %s@%s", dir, hd[:12])
	if len(diff) > 0 || len(untracked) > 0 {
		desc += "+changes:" + changes[:12]
	}
	return id, desc, nil
}

// walkIdentity hashes relative path, size and mtime of every file: cheap
// (no file contents) and changes whenever an editor saves a file.
func walkIdentity(dir string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			if rel != "." && isPrivateTopDir(rel, d.Name()) {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00%d\x00%o\n", rel, info.Size(), info.ModTime().UnixNano(), info.Mode())
		return nil
	})
	if err != nil {
		return "", err
	}
	return "walk " + hex.EncodeToString(h.Sum(nil)), nil
}

// isPrivateTopDir: top-level hidden directories of a kernel tree are VCS
// metadata or object directories (ours are .oomlab-build-*), never sources.
func isPrivateTopDir(rel, name string) bool {
	return !strings.Contains(rel, string(filepath.Separator)) && strings.HasPrefix(name, ".")
}

// gccVersion is the first line of `gcc --version`; a compiler upgrade must
// invalidate cached kernels.
func gccVersion(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "gcc", "--version").Output()
	if err != nil {
		return "", fmt.Errorf("gcc not usable (%v); install it with: apt-get install -y gcc", err)
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line), nil
}

// lastLines returns the last n non-empty lines of out, joined by " | " so
// that it fits in a one-line error.
func lastLines(out []byte, n int) string {
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
