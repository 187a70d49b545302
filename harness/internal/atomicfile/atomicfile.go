// Package atomicfile replaces files atomically: the one way oomlab writes a
// file a reader or a killed run may see half done.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Write atomically replaces name with data, so that a reader, or a run
// killed half way, never sees a half-written file: data goes to a temporary
// file in the same directory, is synced, renamed over name, and the
// directory is synced so that the rename survives a crash too.
func Write(name string, data []byte, perm os.FileMode) error {
	// Every error names the file meant, not only the temporary one: on
	// a full disk the caller prints it as the one line of its failure.
	dir := filepath.Dir(name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Chmod(perm); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err := os.Rename(tmp, name); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", name, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("writing %s: syncing the directory: %w", name, err)
	}
	return nil
}
