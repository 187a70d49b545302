// Package initramfs writes the guest's initramfs: a "newc" (SVR4, 070701)
// cpio archive, the format the kernel unpacks into rootfs at boot. What goes
// in is data: the manifest images/guest.yaml (directories, device nodes,
// /init, the stressor directory, links), embedded in the oomlab binary,
// plus the run's agent binary, stressors and agent configuration.
//
// We write the archive ourselves instead of using
// github.com/cavaliergopher/cpio for writing: that writer leaves the
// rdevmajor/rdevminor fields at zero, so /dev/console would be a 0:0 node
// and the kernel's console_on_rootfs() would fail to open it. The library is
// still used by the tests as an independent reader.
package initramfs

import (
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
)

// Type is the file type of an entry, in the cpio mode bits.
type Type uint32

const (
	TypeDir     Type = 0o040000
	TypeReg     Type = 0o100000
	TypeSymlink Type = 0o120000
	TypeChar    Type = 0o020000
	TypeBlock   Type = 0o060000
)

// Entry is one file in the archive. Name is relative to the root ("init",
// "dev/console"); parent directories are added automatically.
type Entry struct {
	Name     string
	Type     Type
	Perm     uint32 // permission bits, e.g. 0o755
	Data     []byte // regular files: contents; symlinks: the target
	DevMajor uint32 // device nodes only
	DevMinor uint32
}

// Archive collects entries and writes them in a stable order.
type Archive struct {
	entries map[string]Entry
}

// New returns an empty archive.
func New() *Archive { return &Archive{entries: map[string]Entry{}} }

// Add adds or replaces an entry, creating missing parent directories.
func (a *Archive) Add(e Entry) error {
	name := strings.TrimPrefix(path.Clean("/"+e.Name), "/")
	if name == "" || name == "." {
		return fmt.Errorf("initramfs: empty entry name %q", e.Name)
	}
	switch e.Type {
	case TypeDir, TypeReg, TypeSymlink, TypeChar, TypeBlock:
	default:
		return fmt.Errorf("initramfs: %s: unsupported type %#o", name, e.Type)
	}
	if e.Type == TypeSymlink && len(e.Data) == 0 {
		return fmt.Errorf("initramfs: symlink %s has no target", name)
	}
	if old, ok := a.entries[name]; ok && old.Type == TypeDir && e.Type != TypeDir {
		return fmt.Errorf("initramfs: %s is already a directory", name)
	}
	for dir := path.Dir(name); dir != "." && dir != "/"; dir = path.Dir(dir) {
		if old, ok := a.entries[dir]; ok {
			if old.Type != TypeDir {
				return fmt.Errorf("initramfs: %s: parent %s is not a directory", name, dir)
			}
			continue
		}
		a.entries[dir] = Entry{Name: dir, Type: TypeDir, Perm: 0o755}
	}
	e.Name = name
	a.entries[name] = e
	return nil
}

// AddFile is Add for a regular file.
func (a *Archive) AddFile(name string, perm uint32, data []byte) error {
	return a.Add(Entry{Name: name, Type: TypeReg, Perm: perm, Data: data})
}

// AddDir is Add for a directory.
func (a *Archive) AddDir(name string, perm uint32) error {
	return a.Add(Entry{Name: name, Type: TypeDir, Perm: perm})
}

// AddSymlink is Add for a symbolic link.
func (a *Archive) AddSymlink(name, target string) error {
	return a.Add(Entry{Name: name, Type: TypeSymlink, Perm: 0o777, Data: []byte(target)})
}

// AddCharDev is Add for a character device node.
func (a *Archive) AddCharDev(name string, perm, major, minor uint32) error {
	return a.Add(Entry{Name: name, Type: TypeChar, Perm: perm, DevMajor: major, DevMinor: minor})
}

// WriteTo writes the archive: entries sorted by name, so that every parent
// directory comes before its children (the kernel creates files in order and
// does not create missing parents), then the TRAILER!!! record.
func (a *Archive) WriteTo(w io.Writer) (int64, error) {
	names := make([]string, 0, len(a.entries))
	for n := range a.entries {
		names = append(names, n)
	}
	sort.Strings(names)
	cw := &countWriter{w: w}
	for i, n := range names {
		e := a.entries[n]
		if err := writeEntry(cw, e, int64(i+1)); err != nil {
			return cw.n, err
		}
	}
	err := writeEntry(cw, Entry{Name: "TRAILER!!!"}, 0)
	return cw.n, err
}

// writeEntry writes one newc header, the name and the data, each padded to
// a multiple of four bytes as the format requires.
func writeEntry(w *countWriter, e Entry, ino int64) error {
	mode := uint32(e.Type) | e.Perm&0o7777
	nlink := 1
	if e.Type == TypeDir {
		nlink = 2
	}
	var size int
	if e.Type == TypeReg || e.Type == TypeSymlink {
		size = len(e.Data)
	}
	// magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
	// devminor, rdevmajor, rdevminor, namesize, check: 13 fields of 8 hex.
	// mtime stays 0 so that the same inputs give the same bytes.
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, mode, 0, 0, nlink, 0, size, 0, 0, e.DevMajor, e.DevMinor, len(e.Name)+1, 0)
	if _, err := io.WriteString(w, hdr); err != nil {
		return err
	}
	if _, err := io.WriteString(w, e.Name+"\x00"); err != nil {
		return err
	}
	if err := w.pad(); err != nil {
		return err
	}
	if size > 0 {
		if _, err := w.Write(e.Data); err != nil {
			return err
		}
		return w.pad()
	}
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (c *countWriter) pad() error {
	if r := c.n % 4; r != 0 {
		_, err := c.Write(make([]byte, 4-r))
		return err
	}
	return nil
}
