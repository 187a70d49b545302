package kbuild

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
)

// Base describes the kernel the patch series is written against
// (patches/BASE). Example:
//
//	source: debian linux-source-6.12
//	package: linux-source-6.12
//	version: 6.12.117-1~deb12u1
//	kernel: 6.12.117
type Base struct {
	Source  string // free text, for humans and logs
	Package string // Debian package shipping /usr/src/<Package>.tar.xz
	Version string // Debian package version the series was made against
	Kernel  string // upstream kernel version (Makefile VERSION.PATCHLEVEL.SUBLEVEL)
	Tarball string // optional; default /usr/src/<Package>.tar.xz
	// Fields holds every key, including unknown ones, so that newer BASE
	// files still parse with an older harness.
	Fields map[string]string
}

// DefaultPackage is used when BASE does not name a package.
const DefaultPackage = "linux-source-6.12"

// ParseBase parses the "key: value" lines of patches/BASE. Blank lines and
// lines starting with '#' are ignored; keys are case-insensitive.
func ParseBase(data []byte) (Base, error) {
	b := Base{Fields: map[string]string{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		k = strings.ToLower(strings.TrimSpace(k))
		v = strings.TrimSpace(v)
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return Base{}, fmt.Errorf("patches/BASE line %d: %q is not \"key: value\"", n, line)
		}
		if _, dup := b.Fields[k]; dup {
			return Base{}, fmt.Errorf("patches/BASE line %d: key %q given twice", n, k)
		}
		b.Fields[k] = v
	}
	if err := sc.Err(); err != nil {
		return Base{}, fmt.Errorf("patches/BASE: %w", err)
	}
	b.Source = b.Fields["source"]
	b.Package = b.Fields["package"]
	b.Version = b.Fields["version"]
	b.Kernel = b.Fields["kernel"]
	b.Tarball = b.Fields["tarball"]
	if b.Package == "" {
		b.Package = DefaultPackage
	}
	if strings.ContainsAny(b.Package, "/ \t=") {
		return Base{}, fmt.Errorf("patches/BASE: package %q is not a Debian package name", b.Package)
	}
	if b.Tarball == "" {
		b.Tarball = "/usr/src/" + b.Package + ".tar.xz"
	} else if !strings.HasPrefix(b.Tarball, "/") {
		return Base{}, fmt.Errorf("patches/BASE: tarball %q must be an absolute path", b.Tarball)
	}
	return b, nil
}
