package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// smallFS mounts a tmpfs of size bytes on a fresh directory: a disk that
// really fills. It needs root (CAP_SYS_ADMIN); the test is skipped where
// mounting is not permitted.
func smallFS(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	return dir
}

// fill writes to dir until the file system is full.
func fill(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block := make([]byte, 64<<10)
	for {
		if _, err := f.Write(block); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}

// TestWriteDiskFull: on a full disk the write fails with one line that
// names the file and says why (ENOSPC), and the previous content stays
// whole: the file is replaced entirely or not at all, and no temporary
// file is left to take the space.
func TestWriteDiskFull(t *testing.T) {
	dir := smallFS(t, "256k")
	name := filepath.Join(dir, "run.json")
	if err := Write(name, []byte(`{"complete": false}`), 0o644); err != nil {
		t.Fatal(err)
	}
	fill(t, dir)
	err := Write(name, []byte(strings.Repeat("x", 64<<10)), 0o644)
	if err == nil {
		t.Fatal("writing 64 KiB on a full disk worked")
	}
	t.Logf("the error: %v", err)
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "writing "+name+":") || strings.Contains(err.Error(), "\n") {
		t.Errorf("error %q: want one line, naming %s, wrapping ENOSPC", err, name)
	}
	if b, err := os.ReadFile(name); err != nil || string(b) != `{"complete": false}` {
		t.Errorf("the previous content: %q, %v", b, err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}
