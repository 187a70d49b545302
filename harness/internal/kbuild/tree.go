package kbuild

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
)

// Patch is one entry of a quilt-style series file.
type Patch struct {
	Name  string // path relative to the series directory
	Strip int    // -pN, default 1
	Data  []byte
}

// ReadSeries reads `series` and the patches it lists, in order. A nil FS, a
// missing series file or one without entries means "no patches". Lines are
// "name [-pN]"; '#' starts a comment.
func ReadSeries(fsys fs.FS) ([]Patch, error) {
	if fsys == nil {
		return nil, nil
	}
	data, err := fs.ReadFile(fsys, "series")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading patch series: %w", err)
	}
	var out []Patch
	sc := bufio.NewScanner(bytes.NewReader(data))
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		p := Patch{Name: f[0], Strip: 1}
		for _, opt := range f[1:] {
			if _, err := fmt.Sscanf(opt, "-p%d", &p.Strip); err != nil {
				return nil, fmt.Errorf("series line %d: unsupported option %q for %s (only -pN)", n, opt, f[0])
			}
		}
		p.Data, err = fs.ReadFile(fsys, p.Name)
		if err != nil {
			return nil, fmt.Errorf("series line %d lists %s, which cannot be read: %v", n, p.Name, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// linkTree recreates src under dst with hard links (cp -al), so a patched
// variant costs no disk space and no copy time. Patch tools write patched
// files to a new inode and rename it over the link, so the pristine tree is
// never modified through the links (verified for GNU patch and git apply).
// Top-level hidden directories (.git, object directories) are skipped.
// Across file systems it falls back to copying.
func linkTree(ctx context.Context, src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			if rel != "." && isPrivateTopDir(rel, d.Name()) {
				return filepath.SkipDir
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			return os.MkdirAll(target, info.Mode().Perm()|0o700)
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, target)
		case d.Type().IsRegular():
			err := os.Link(p, target)
			if errors.Is(err, syscall.EXDEV) || errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EMLINK) {
				return copyFile(p, target)
			}
			return err
		}
		return nil // sockets, fifos: not part of a source tree
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, st.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	// Keep the mtime: make compares it with objects built from the original.
	return os.Chtimes(dst, st.ModTime(), st.ModTime())
}

// Files at the top of a patched tree: the list of applied patches (also
// the completion marker) and the list of files the patches wrote.
const (
	patchedMarker    = ".oomlab-patched"
	patchedFilesName = ".oomlab-patched-files"
)

var (
	rePatchingFile = regexp.MustCompile(`^(?:patching|checking) file (.+)$`)
	reHunkFailed   = regexp.MustCompile(`^Hunk #(\d+) FAILED at (\d+)`)
)

// applyPatch applies one patch with GNU patch. --fuzz=0 because a hunk that
// only applies with fuzz may land in the wrong place and silently change
// what is measured; offsets are still accepted.
// It returns the files the patch wrote (from patch's "patching file" lines).
func applyPatch(ctx context.Context, tree string, p Patch, log io.Writer) ([]string, error) {
	cmd := exec.CommandContext(ctx, "patch", fmt.Sprintf("-p%d", p.Strip), "--forward", "--batch",
		"--fuzz=0", "--no-backup-if-mismatch", "-d", tree)
	cmd.Stdin = bytes.NewReader(p.Data)
	out, err := cmd.CombinedOutput()
	if log != nil {
		fmt.Fprintf(log, "$ patch -p%d < %s\n%s", p.Strip, p.Name, out)
	}
	if err == nil {
		return patchedFiles(out), nil
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		if errors.Is(err, exec.ErrNotFound) {
			return nil, fmt.Errorf("applying %s: the patch tool is not installed; install it with: apt-get install -y patch", p.Name)
		}
		return nil, fmt.Errorf("applying %s: %v", p.Name, err)
	}
	return nil, fmt.Errorf("patch %s does not apply: %s", p.Name, describePatchFailure(tree, out))
}

// patchedFiles extracts the written paths from GNU patch output, e.g.
// "patching file mm/oom_kill.c", "patching file 'a b.c'",
// "patching file new.c (renamed from old.c)".
func patchedFiles(out []byte) []string {
	var files []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		m := rePatchingFile.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil || strings.HasPrefix(m[0], "checking") {
			continue
		}
		f := m[1]
		if i := strings.Index(f, " (renamed from "); i >= 0 {
			f = f[:i]
		} else if i := strings.Index(f, " (copied from "); i >= 0 {
			f = f[:i]
		}
		files = append(files, strings.Trim(f, "'\""))
	}
	return files
}

// describePatchFailure condenses GNU patch output into "file: hunk #N FAILED
// at L (@@ header @@)" items, reading the header from the .rej file.
func describePatchFailure(tree string, out []byte) string {
	var items []string
	file := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if m := rePatchingFile.FindStringSubmatch(line); m != nil {
			file = strings.Trim(m[1], "'")
			continue
		}
		if m := reHunkFailed.FindStringSubmatch(line); m != nil {
			item := fmt.Sprintf("%s: hunk #%s FAILED at line %s", file, m[1], m[2])
			if h := rejectHeader(filepath.Join(tree, file+".rej"), m[1]); h != "" {
				item += " (" + h + ")"
			}
			items = append(items, item)
			continue
		}
		switch {
		case strings.Contains(line, "Reversed (or previously applied) patch detected"):
			items = append(items, file+": already applied (or reversed)")
		case strings.HasPrefix(line, "can't find file to patch"):
			items = append(items, "a file it patches does not exist ("+line+")")
		case strings.HasPrefix(line, "patch: ****"):
			items = append(items, strings.TrimPrefix(line, "patch: **** "))
		}
	}
	if len(items) == 0 {
		return lastLines(out, 2)
	}
	return strings.Join(items, "; ")
}

// rejectHeader returns the @@ line of the n-th hunk in a .rej file.
func rejectHeader(rej, n string) string {
	data, err := os.ReadFile(rej)
	if err != nil {
		return ""
	}
	var headers []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "@@ ") {
			headers = append(headers, strings.TrimSpace(l))
		}
	}
	// .rej files number only the rejected hunks; patch reports the original
	// number. Use the first header when numbering does not line up.
	var idx int
	fmt.Sscanf(n, "%d", &idx)
	if idx >= 1 && idx <= len(headers) && len(headers) > 1 {
		return headers[idx-1]
	}
	if len(headers) > 0 {
		return headers[0]
	}
	return ""
}

// preparePatched returns a tree with the series applied, creating it once
// per (source, series) under <cache>/trees. It is built in a temporary
// directory and renamed, so a failed or interrupted patch run leaves nothing
// that looks usable.
func (b *builder) preparePatched(ctx context.Context, src *source, patches []Patch, seriesHash string) (string, error) {
	dir := filepath.Join(b.cache, "trees", src.Short+"-"+seriesHash[:12])
	if _, err := os.Stat(filepath.Join(dir, patchedMarker)); err == nil {
		return dir, nil
	}
	b.phase(PhasePatch, fmt.Sprintf("%d patches", len(patches)))
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".tmp-tree-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if err := linkTree(ctx, src.Tree, tmp); err != nil {
		return "", fmt.Errorf("copying %s for patching: %w", src.Tree, err)
	}
	var list, touched strings.Builder
	for _, p := range patches {
		files, err := applyPatch(ctx, tmp, p, b.log)
		if err != nil {
			return "", err
		}
		list.WriteString(p.Name + "\n")
		for _, f := range files {
			touched.WriteString(f + "\n")
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, patchedFilesName), []byte(touched.String()), 0o644); err != nil {
		return "", err
	}
	// The marker is written last: its presence means "fully patched".
	if err := os.WriteFile(filepath.Join(tmp, patchedMarker), []byte(list.String()), 0o644); err != nil {
		return "", err
	}
	_ = os.RemoveAll(dir) // a stale, unmarked leftover
	if err := os.Rename(tmp, dir); err != nil {
		return "", fmt.Errorf("installing patched tree %s: %w", dir, err)
	}
	return dir, nil
}
