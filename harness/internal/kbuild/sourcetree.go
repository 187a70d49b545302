package kbuild

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Tree is the source tree of a variant's kernel, for building user-space
// programs from the same source as the kernel (upstream selftests).
type Tree struct {
	Dir string // the pristine tree (baseline) or the patched copy
	// SourceID is the content identity of the pristine source (a
	// tarball's hash, a git HEAD and diff): with Patched it identifies
	// what Dir holds.
	SourceID string
	// Patched are the files the variant's patches wrote, relative to
	// Dir (none for baseline).
	Patched []string
}

// SourceTree returns the source tree the kernel of o.Variant is built from,
// unpacking the source or applying the series if the cache no longer has
// it (a kernel cache hit does not need the tree, so it may have been
// pruned). It never builds a kernel.
func SourceTree(ctx context.Context, o Options) (*Tree, error) {
	b, kind, prefix, err := newBuilder(o)
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
	dir := src.Tree
	ready := func() bool {
		if len(patches) > 0 {
			dir = filepath.Join(b.cache, "trees", src.Short+"-"+seriesHash(patches)[:12])
			_, err := os.Stat(filepath.Join(dir, patchedMarker))
			return err == nil
		}
		_, err := os.Stat(filepath.Join(dir, "Makefile"))
		return err == nil
	}
	if !ready() {
		// Unpacking and patching share the cache with kernel builds.
		unlock, err := lockFile(ctx, filepath.Join(b.cache, "build.lock"), func() {})
		if err != nil {
			return nil, err
		}
		defer unlock()
		if src.Tarball != "" {
			if err := b.unpackDebian(ctx, src); err != nil {
				return nil, err
			}
		}
		if len(patches) > 0 {
			if dir, err = b.preparePatched(ctx, src, patches, seriesHash(patches)); err != nil {
				return nil, err
			}
		}
	}
	t := &Tree{Dir: dir, SourceID: src.ID}
	if len(patches) > 0 {
		if t.Patched, err = readPatchedFiles(dir); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// readPatchedFiles reads the list preparePatched wrote of the files the
// patches changed.
func readPatchedFiles(tree string) ([]string, error) {
	data, err := os.ReadFile(filepath.Join(tree, patchedFilesName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("patched tree %s has no %s (made by an older oomlab): remove it to have it patched again", tree, patchedFilesName)
	}
	if err != nil {
		return nil, err
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out, nil
}
