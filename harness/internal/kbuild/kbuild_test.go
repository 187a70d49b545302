package kbuild

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func TestParseBase(t *testing.T) {
	b, err := ParseBase([]byte(`# what the series is based on
source: debian linux-source-6.12
package: linux-source-6.12
version: 6.12.117-1~deb12u1

Kernel: 6.12.117
note: url: http://example
`))
	if err != nil {
		t.Fatal(err)
	}
	if b.Source != "debian linux-source-6.12" || b.Package != "linux-source-6.12" ||
		b.Version != "6.12.117-1~deb12u1" || b.Kernel != "6.12.117" || b.Tarball != "/usr/src/linux-source-6.12.tar.xz" {
		t.Errorf("parsed %+v", b)
	}
	if b.Fields["note"] != "url: http://example" {
		t.Errorf("value with colon: %q", b.Fields["note"])
	}

	empty, err := ParseBase(nil)
	if err != nil || empty.Package != DefaultPackage || empty.Version != "" {
		t.Errorf("empty BASE: %+v, %v", empty, err)
	}

	if b, _ := ParseBase([]byte("tarball: /srv/linux.tar.xz\n")); b.Tarball != "/srv/linux.tar.xz" {
		t.Errorf("explicit tarball: %q", b.Tarball)
	}
	for _, bad := range []string{"no colon here", "version: 1\nversion: 2", "two words: x", "package: a/b", "tarball: rel.tar.xz"} {
		if _, err := ParseBase([]byte(bad)); err == nil {
			t.Errorf("ParseBase(%q) succeeded", bad)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("multi-line error %q", err)
		}
	}
}

func TestMergeFragments(t *testing.T) {
	reqs, err := mergeFragments([]Fragment{
		{Name: "base.config", Data: []byte("# comment\nCONFIG_A=y\nCONFIG_B=y\n\nCONFIG_NR=8\n# CONFIG_C is not set\n")},
		{Name: "over.config", Data: []byte("# CONFIG_A is not set\nCONFIG_C=y\nCONFIG_NR=16\nCONFIG_S=\"x y\"\n")},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]request{}
	var order []string
	for _, r := range reqs {
		got[r.Symbol] = r
		order = append(order, r.Symbol)
	}
	if strings.Join(order, ",") != "A,B,NR,C,S" {
		t.Errorf("order %v", order)
	}
	want := map[string]string{"A": "n", "B": "y", "NR": "16", "C": "y", "S": `"x y"`}
	for k, v := range want {
		if got[k].Value != v {
			t.Errorf("%s = %q, want %q", k, got[k].Value, v)
		}
	}
	if got["A"].Fragment != "over.config" || got["A"].Line != 1 || got["B"].Fragment != "base.config" {
		t.Errorf("provenance: %+v %+v", got["A"], got["B"])
	}

	_, err = mergeFragments([]Fragment{{Name: "typo.config", Data: []byte("CONFIG_A=y\nCONFIG_B y\n")}})
	if err == nil || !strings.Contains(err.Error(), "typo.config:2") {
		t.Errorf("malformed line error = %v", err)
	}
	_, err = mergeFragments([]Fragment{{Name: "e.config", Data: []byte("CONFIG_A=\n")}})
	if err == nil || !strings.Contains(err.Error(), "e.config:1") {
		t.Errorf("empty value error = %v", err)
	}
}

func TestApplyRequests(t *testing.T) {
	base := "#\n# comment\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=y\n"
	reqs := []request{{Symbol: "A", Value: "n"}, {Symbol: "B", Value: "y"}, {Symbol: "D", Value: "32"}}
	out := string(applyRequests([]byte(base), reqs))
	// Requested symbols move to the end so that, for choices, the
	// requested member is the last "=y" Kconfig reads.
	want := "#\n# comment\nCONFIG_C=y\n# oomlab fragments\n# CONFIG_A is not set\nCONFIG_B=y\nCONFIG_D=32\n"
	if out != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
	cfg := ParseConfig([]byte(out))
	if cfg["A"] != "n" || cfg["B"] != "y" || cfg["D"] != "32" {
		t.Errorf("ParseConfig: %v", cfg)
	}
}

// fakeKconfigTree writes a tiny kernel-like Kconfig tree.
func fakeKconfigTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"Kconfig": `mainmenu "fake"
source "lib/Kconfig.debug"
source "arch/$(SRCARCH)/Kconfig"

config DEBUG_KERNEL
	bool "Kernel debugging"
	help
	  This help text mentions that it
	  depends on nothing and config FAKE is not a symbol.

menu "Net"
	depends on NET_MENU

config VIRTIO_NET
	tristate "virtio net"
	depends on PCI && \
	           VIRTIO
	select NET_CORE

endmenu
`,
		"lib/Kconfig.debug": `if DEBUG_KERNEL

config HARDLOCKUP_DETECTOR
	bool "Detect Hard Lockups"
	depends on HAVE_NMI || HAVE_BUDDY # trailing comment
	select LOCKUP_DETECTOR

endif # DEBUG_KERNEL

config LOCKUP_DETECTOR
	bool

menuconfig RUNTIME_TESTING_MENU
	bool "Runtime testing"

config ARCH_STR
	bool "arch" if "$(ARCH)" = "x86"

choice
	prompt "Kernel compression"
	depends on HAVE_COMPRESS

config KERNEL_GZIP
	bool "gzip"

config KERNEL_XZ
	bool "xz"

endchoice
`,
		"arch/x86/Kconfig": `config X86_ONLY
	def_bool y
	select NET_CORE if PCI
`,
		"arch/arm64/Kconfig": `config ARM64_ONLY
	def_bool y
`,
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadKconfig(t *testing.T) {
	db, err := LoadKconfig(fakeKconfigTree(t), "x86")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"DEBUG_KERNEL", "VIRTIO_NET", "HARDLOCKUP_DETECTOR", "LOCKUP_DETECTOR", "RUNTIME_TESTING_MENU", "X86_ONLY", "ARCH_STR"} {
		if _, ok := db.Defined[s]; !ok {
			t.Errorf("%s not defined", s)
		}
	}
	for _, s := range []string{"ARM64_ONLY", "FAKE"} {
		if _, ok := db.Defined[s]; ok {
			t.Errorf("%s should not be defined", s)
		}
	}
	if got := strings.Join(db.DependsOn["HARDLOCKUP_DETECTOR"], " | "); got != "DEBUG_KERNEL | HAVE_NMI || HAVE_BUDDY" {
		t.Errorf("HARDLOCKUP_DETECTOR deps %q", got)
	}
	if got := strings.Join(db.DependsOn["VIRTIO_NET"], " | "); got != "NET_MENU | PCI && VIRTIO" {
		t.Errorf("VIRTIO_NET deps %q", got)
	}
	if len(db.DependsOn["DEBUG_KERNEL"]) != 0 || len(db.DependsOn["LOCKUP_DETECTOR"]) != 0 {
		t.Errorf("help text or closed if leaked deps: %v %v", db.DependsOn["DEBUG_KERNEL"], db.DependsOn["LOCKUP_DETECTOR"])
	}
	if !db.InChoice["KERNEL_GZIP"] || db.InChoice["ARCH_STR"] {
		t.Errorf("InChoice: %v", db.InChoice)
	}
	if got := strings.Join(db.DependsOn["KERNEL_XZ"], " | "); got != "HAVE_COMPRESS" {
		t.Errorf("choice member deps %q", got)
	}
	if got := strings.Join(db.SelectedBy["NET_CORE"], ","); got != "VIRTIO_NET,X86_ONLY if PCI" {
		t.Errorf("NET_CORE selected by %q", got)
	}
}

func TestDroppedSymbols(t *testing.T) {
	db, err := LoadKconfig(fakeKconfigTree(t), "x86")
	if err != nil {
		t.Fatal(err)
	}
	reqs, err := mergeFragments([]Fragment{{Name: "lockup.config", Data: []byte(
		"CONFIG_DEBUG_KERNEL=y\nCONFIG_HARDLOCKUP_DETECTOR=y\n# CONFIG_LOCKUP_DETECTOR is not set\nCONFIG_VIRTIO_NET=y\nCONFIG_NR=8\nCONFIG_KERNEL_GZIP=y\n")}})
	if err != nil {
		t.Fatal(err)
	}
	final := ParseConfig([]byte(`CONFIG_DEBUG_KERNEL=y
# CONFIG_HARDLOCKUP_DETECTOR is not set
CONFIG_LOCKUP_DETECTOR=y
CONFIG_VIRTIO_NET=y
CONFIG_NR=8
CONFIG_HAVE_BUDDY=n
CONFIG_HAVE_COMPRESS=y
# CONFIG_KERNEL_GZIP is not set
CONFIG_KERNEL_XZ=y
`))
	d := checkRequests(reqs, final)
	if len(d) != 3 || d[0].Symbol != "HARDLOCKUP_DETECTOR" || d[1].Symbol != "LOCKUP_DETECTOR" || d[2].Symbol != "KERNEL_GZIP" {
		t.Fatalf("dropped = %+v", d)
	}
	msgs := db.explain(d, final)
	joined := strings.Join(msgs, "\n")
	for _, want := range []string{
		"CONFIG_HARDLOCKUP_DETECTOR=y (from lockup.config:2) ended up as is not set",
		"(DEBUG_KERNEL [=y]) && (HAVE_NMI [=n] || HAVE_BUDDY [=n])",
		"CONFIG_LOCKUP_DETECTOR=n (from lockup.config:3) ended up as =y; selected by: HARDLOCKUP_DETECTOR",
		"CONFIG_KERNEL_GZIP=y (from lockup.config:6) ended up as is not set; it is a choice member and another member won",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("explanation lacks %q:\n%s", want, joined)
		}
	}

	unk := db.unknownSymbols(reqs)
	if len(unk) != 1 || unk[0].Symbol != "NR" || unk[0].Fragment != "lockup.config" {
		t.Errorf("unknown = %+v", unk)
	}
}

func TestAnnotateKeepsStrings(t *testing.T) {
	got := annotate(`"$(ARCH)" = "x86" && FOO`, map[string]string{"FOO": "y"})
	if got != `"$(ARCH)" = "x86" && FOO [=y]` {
		t.Errorf("annotate = %q", got)
	}
}

func TestCacheKey(t *testing.T) {
	base := keyInput{
		Source: "tarball sha256:abc", Base: []byte("version: 1\n"), Variant: VariantPatched,
		Patches:   []Patch{{Name: "a.patch", Strip: 1, Data: []byte("A")}, {Name: "b.patch", Strip: 1, Data: []byte("B")}},
		Fragments: []Fragment{{Name: "base.config", Data: []byte("CONFIG_A=y\n")}, {Name: "lockup.config", Data: []byte("CONFIG_B=y\n")}},
		Compiler:  "gcc (Debian 12.2.0-14+deb12u1) 12.2.0",
	}
	k0 := cacheKey(base)
	if k0 != cacheKey(base) || len(k0) != 64 {
		t.Fatalf("unstable or malformed key %q", k0)
	}
	renamed := base
	renamed.Fragments = []Fragment{{Name: "x", Data: base.Fragments[0].Data}, {Name: "y", Data: base.Fragments[1].Data}}
	if cacheKey(renamed) != k0 {
		t.Errorf("fragment file names must not change the key")
	}

	mut := map[string]func(k *keyInput){
		"source":   func(k *keyInput) { k.Source = "tarball sha256:abd" },
		"base":     func(k *keyInput) { k.Base = []byte("version: 2\n") },
		"variant":  func(k *keyInput) { k.Variant = VariantBaseline },
		"compiler": func(k *keyInput) { k.Compiler = "gcc 13" },
		"prefix":   func(k *keyInput) { k.Variant = "patched:1"; k.Patches = base.Patches[:1] },
		"patch content": func(k *keyInput) {
			k.Patches = []Patch{base.Patches[0], {Name: "b.patch", Strip: 1, Data: []byte("B2")}}
		},
		"patch order": func(k *keyInput) { k.Patches = []Patch{base.Patches[1], base.Patches[0]} },
		"patch strip": func(k *keyInput) {
			k.Patches = []Patch{base.Patches[0], {Name: "b.patch", Strip: 0, Data: []byte("B")}}
		},
		"fragment":       func(k *keyInput) { k.Fragments = []Fragment{base.Fragments[0], {Data: []byte("CONFIG_B=n\n")}} },
		"fragment order": func(k *keyInput) { k.Fragments = []Fragment{base.Fragments[1], base.Fragments[0]} },
		"field boundary": func(k *keyInput) {
			k.Fragments = []Fragment{{Data: []byte("CONFIG_A=y\nCONFIG_B=y\n")}}
		},
	}
	for name, f := range mut {
		k := base
		f(&k)
		if cacheKey(k) == k0 {
			t.Errorf("changing %s does not change the key", name)
		}
	}

	// The baseline kernel does not depend on the series.
	bl := base
	bl.Variant = VariantBaseline
	bl2 := bl
	bl2.Patches = nil
	if cacheKey(bl) != cacheKey(bl2) {
		t.Errorf("baseline key depends on the patch series")
	}
}

const gitPatch = `From 71a2a4a0d81bae439c77d18c855ba0bfe2e81e60 Mon Sep 17 00:00:00 2001
From: A Developer <a@example.org>
Date: Mon, 23 Nov 2026 18:11:27 +0000
Subject: [PATCH 1/2] mm: do a thing

Because --- of reasons.

Signed-off-by: A Developer <a@example.org>
---
 mm/x.c | 1 +
 1 file changed, 1 insertion(+)

diff --git a/mm/x.c b/mm/x.c
index 1111111..2222222 100644
--- a/mm/x.c
+++ b/mm/x.c
@@ -1 +1,2 @@
 a
+b
-- 
2.39.5
`

func TestPatchBodyIgnoresMessage(t *testing.T) {
	reworded := strings.Replace(gitPatch, "Because --- of reasons.", "Measured: 2.5 s -> 0.3 s.", 1)
	reworded = strings.Replace(reworded, "Date: Mon, 23 Nov 2026 18:11:27", "Date: Tue, 24 Nov 2026 09:00:00", 1)
	reworded = strings.Replace(reworded, "2.39.5", "2.47.1", 1)
	if string(patchBody([]byte(gitPatch))) != string(patchBody([]byte(reworded))) {
		t.Errorf("a reworded commit message changes the patch body:\n%s", patchBody([]byte(reworded)))
	}
	if !strings.HasPrefix(string(patchBody([]byte(gitPatch))), "diff --git a/mm/x.c") {
		t.Errorf("body starts with %q", patchBody([]byte(gitPatch))[:20])
	}
	changed := strings.Replace(gitPatch, "+b", "+c", 1)
	if string(patchBody([]byte(gitPatch))) == string(patchBody([]byte(changed))) {
		t.Errorf("a changed hunk does not change the body")
	}
	plain := "--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n"
	if string(patchBody([]byte("notes\n"+plain))) != plain {
		t.Errorf("plain diff body = %q", patchBody([]byte("notes\n"+plain)))
	}
	if string(patchBody([]byte("no diff here"))) != "no diff here" {
		t.Errorf("a non-diff must hash whole")
	}
}

func TestParseVariant(t *testing.T) {
	for v, want := range map[string]string{"baseline": "baseline 0", "patched": "patched 0", "patched:3": "patched 3"} {
		k, n, err := ParseVariant(v)
		if err != nil || fmt.Sprintf("%s %d", k, n) != want {
			t.Errorf("ParseVariant(%q) = %s %d %v, want %s", v, k, n, err, want)
		}
	}
	for _, v := range []string{"", "patch", "patched:", "patched:0", "patched:-1", "patched:x", "baseline:1"} {
		if _, _, err := ParseVariant(v); err == nil {
			t.Errorf("ParseVariant(%q) accepted", v)
		}
	}
	if got := localVersion("patched:3"); got != "-oomlab-patched-3" {
		t.Errorf("localVersion = %q", got)
	}
}

func TestValidateKernelTree(t *testing.T) {
	dir := t.TempDir()
	check := func(wantSub string) {
		t.Helper()
		err := ValidateKernelTree(dir)
		if wantSub == "" {
			if err != nil {
				t.Errorf("valid tree rejected: %v", err)
			}
			return
		}
		if err == nil || !strings.Contains(err.Error(), wantSub) || !strings.Contains(err.Error(), dir) || strings.Contains(err.Error(), "\n") {
			t.Errorf("error %v, want one line naming %s and %q", err, dir, wantSub)
		}
	}
	check("no top-level Makefile")
	os.WriteFile(filepath.Join(dir, "Makefile"), []byte("all:\n"), 0o644)
	check("VERSION/PATCHLEVEL")
	os.WriteFile(filepath.Join(dir, "Makefile"), []byte("VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 1\n"), 0o644)
	check("missing Kconfig")
	os.WriteFile(filepath.Join(dir, "Kconfig"), nil, 0o644)
	check("missing mm/oom_kill.c")
	os.MkdirAll(filepath.Join(dir, "mm"), 0o755)
	os.WriteFile(filepath.Join(dir, "mm", "oom_kill.c"), nil, 0o644)
	check("")
	os.WriteFile(filepath.Join(dir, ".config"), nil, 0o644)
	check("mrproper")
	if v := makefileVersion(dir); v != "6.12.1" {
		t.Errorf("makefileVersion = %q", v)
	}
	if err := ValidateKernelTree(filepath.Join(dir, "nope")); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("missing dir: %v", err)
	}
}

func TestReadSeries(t *testing.T) {
	fsys := fstest.MapFS{
		"series":       {Data: []byte("# comment\n0001-a.patch\n\n0002-b.patch -p0 # why\n")},
		"0001-a.patch": {Data: []byte("A")},
		"0002-b.patch": {Data: []byte("B")},
		"unused.patch": {Data: []byte("U")},
	}
	ps, err := ReadSeries(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0].Name != "0001-a.patch" || ps[0].Strip != 1 || ps[1].Strip != 0 || string(ps[1].Data) != "B" {
		t.Errorf("series = %+v", ps)
	}
	if ps, err := ReadSeries(nil); ps != nil || err != nil {
		t.Errorf("nil FS: %v %v", ps, err)
	}
	if ps, err := ReadSeries(fstest.MapFS{}); ps != nil || err != nil {
		t.Errorf("no series file: %v %v", ps, err)
	}
	_, err = ReadSeries(fstest.MapFS{"series": {Data: []byte("missing.patch\n")}})
	if err == nil || !strings.Contains(err.Error(), "missing.patch") {
		t.Errorf("missing patch error: %v", err)
	}
}

const okPatch = `--- a/mm/oom_kill.c
+++ b/mm/oom_kill.c
@@ -1,3 +1,3 @@
 line1
-line2
+LINE2
 line3
`

const badPatch = `--- a/mm/oom_kill.c
+++ b/mm/oom_kill.c
@@ -1,3 +1,3 @@ static int oom_fn(void)
 nope1
-nope2
+NOPE2
 nope3
`

func TestLinkTreeAndPatch(t *testing.T) {
	if _, err := exec.LookPath("patch"); err != nil {
		t.Skip("GNU patch not installed")
	}
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "mm"), 0o755)
	os.MkdirAll(filepath.Join(src, ".oomlab-build-x"), 0o755)
	os.WriteFile(filepath.Join(src, ".oomlab-build-x", "junk.o"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(src, "mm", "oom_kill.c"), []byte("line1\nline2\nline3\n"), 0o644)
	os.WriteFile(filepath.Join(src, "mm", "other.c"), []byte("other\n"), 0o644)
	os.Symlink("other.c", filepath.Join(src, "mm", "link.c"))

	dst := filepath.Join(t.TempDir(), "tree")
	if err := linkTree(context.Background(), src, dst); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dst, ".oomlab-build-x")); err == nil {
		t.Errorf("object directory was copied")
	}
	if l, err := os.Readlink(filepath.Join(dst, "mm", "link.c")); err != nil || l != "other.c" {
		t.Errorf("symlink: %q %v", l, err)
	}
	files, err := applyPatch(context.Background(), dst, Patch{Name: "0001-ok.patch", Strip: 1, Data: []byte(okPatch)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(files, ",") != "mm/oom_kill.c" {
		t.Errorf("patched files %q", files)
	}
	if data, _ := os.ReadFile(filepath.Join(src, "mm", "oom_kill.c")); string(data) != "line1\nline2\nline3\n" {
		t.Errorf("pristine tree modified through hard link: %q", data)
	}
	if data, _ := os.ReadFile(filepath.Join(dst, "mm", "oom_kill.c")); string(data) != "line1\nLINE2\nline3\n" {
		t.Errorf("patched file: %q", data)
	}
	s1, _ := os.Stat(filepath.Join(src, "mm", "other.c"))
	s2, _ := os.Stat(filepath.Join(dst, "mm", "other.c"))
	if !os.SameFile(s1, s2) {
		t.Errorf("untouched file is not a hard link")
	}

	_, err = applyPatch(context.Background(), dst, Patch{Name: "0002-bad.patch", Strip: 1, Data: []byte(badPatch)}, nil)
	if err == nil || !strings.Contains(err.Error(), "0002-bad.patch") || !strings.Contains(err.Error(), "mm/oom_kill.c: hunk #1 FAILED") ||
		!strings.Contains(err.Error(), "static int oom_fn") {
		t.Errorf("bad patch error: %v", err)
	}
	_, err = applyPatch(context.Background(), dst, Patch{Name: "0001-ok.patch", Strip: 1, Data: []byte(okPatch)}, nil)
	if err == nil || !strings.Contains(err.Error(), "already applied") {
		t.Errorf("reapplied patch error: %v", err)
	}
}

func TestStoreLookup(t *testing.T) {
	cache := t.TempDir()
	key := strings.Repeat("ab", 32)
	if _, ok := lookup(cache, key); ok {
		t.Fatal("hit in empty cache")
	}
	src := t.TempDir()
	for _, n := range []string{"bzImage", "config", "log"} {
		os.WriteFile(filepath.Join(src, n), []byte(n), 0o644)
	}
	r, err := store(cache, meta{Key: key, KernelRelease: "6.12.117-oomlab-baseline", SourceID: "s", DurationNS: int64(time.Minute)},
		filepath.Join(src, "bzImage"), filepath.Join(src, "config"), filepath.Join(src, "log"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Cached || r.KernelRelease != "6.12.117-oomlab-baseline" {
		t.Errorf("store result %+v", r)
	}
	r2, ok := lookup(cache, key)
	if !ok || !r2.Cached || r2.BzImage != filepath.Join(cache, "kernels", key, "bzImage") || r2.Duration != time.Minute {
		t.Errorf("lookup %+v %v", r2, ok)
	}
	ents, _ := os.ReadDir(filepath.Join(cache, "kernels"))
	if len(ents) != 1 {
		t.Errorf("leftover temp dirs: %v", ents)
	}
}

func TestBuildRejectsBadOptions(t *testing.T) {
	ctx := context.Background()
	frag := []Fragment{{Name: "base.config", Data: []byte("CONFIG_64BIT=y\n")}}
	_, err := Build(ctx, Options{CacheDir: t.TempDir(), Variant: "weird", Fragments: frag})
	if err == nil || !strings.Contains(err.Error(), "weird") {
		t.Errorf("variant error: %v", err)
	}
	missing := filepath.Join(t.TempDir(), "linux")
	_, err = Build(ctx, Options{CacheDir: t.TempDir(), Variant: VariantBaseline, Fragments: frag, KernelSrc: missing})
	if err == nil || !strings.Contains(err.Error(), missing) || strings.Contains(err.Error(), "\n") {
		t.Errorf("kernel-src error: %v", err)
	}
}

func TestLockFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "build.lock")
	unlock, err := lockFile(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	waited := false
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	if _, err := lockFile(ctx, path, func() { waited = true }); err == nil || !waited {
		t.Errorf("second lock while held: err=%v waited=%v", err, waited)
	}
	unlock()
	unlock2, err := lockFile(context.Background(), path, nil)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	unlock2()
}

func TestObjDirName(t *testing.T) {
	f := []Fragment{{Data: []byte("CONFIG_A=y\n")}}
	a := objDirName(f, "gcc 12")
	if !strings.HasPrefix(a, ".oomlab-build-") || a != objDirName(f, "gcc 12") || a == objDirName(f, "gcc 13") {
		t.Errorf("objDirName %q", a)
	}
	// Must be hidden at top level so tree copies and identity walks skip it.
	if !isPrivateTopDir(a, a) {
		t.Errorf("%q is not treated as private", a)
	}
}

// TestBuildRealKernel builds the default kernel end to end. It takes minutes
// on a cold cache, so it only runs with OOMLAB_E2E=1 and without -short.
func TestBuildRealKernel(t *testing.T) {
	if testing.Short() || os.Getenv("OOMLAB_E2E") != "1" {
		t.Skip("set OOMLAB_E2E=1 (and no -short) to build a real kernel")
	}
	root := findRepoRoot(t)
	var frags []Fragment
	for _, n := range []string{"base.config", "lockup.config"} {
		data, err := os.ReadFile(filepath.Join(root, "kconfig", n))
		if err != nil {
			t.Fatal(err)
		}
		frags = append(frags, Fragment{Name: n, Data: data})
	}
	baseFile, _ := os.ReadFile(filepath.Join(root, "patches", "BASE"))
	cache := os.Getenv("OOMLAB_CACHE")
	if cache == "" {
		cache = DefaultCacheDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Minute)
	defer cancel()
	opts := Options{CacheDir: cache, BaseFile: baseFile, Variant: VariantBaseline, Fragments: frags,
		LogOut: testWriter{t}, AllowInstall: true}
	r, err := Build(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built %s (%s, cached=%v, %s)", r.BzImage, r.KernelRelease, r.Cached, r.Duration)
	cfg, err := os.ReadFile(r.Config)
	if err != nil {
		t.Fatal(err)
	}
	final := ParseConfig(cfg)
	for _, s := range []string{"LKDTM", "HARDLOCKUP_DETECTOR", "VIRTIO_NET", "MEMCG", "PSI", "64BIT", "SCHED_DEBUG"} {
		if final[s] != "y" {
			t.Errorf("CONFIG_%s=%q in %s", s, final[s], r.Config)
		}
	}
	start := time.Now()
	r2, err := Build(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !r2.Cached || r2.Key != r.Key {
		t.Errorf("second build not a cache hit: %+v", r2)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("cache hit took %s", d)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func findRepoRoot(t *testing.T) string {
	t.Helper()
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found")
		}
		dir = parent
	}
}

func TestConfigID(t *testing.T) {
	pristine := t.TempDir()
	patched := t.TempDir()
	src := &source{ID: "tarball sha256:x", Tree: pristine}
	reqs := []request{{Symbol: "A", Value: "y"}}
	base := configID(pristine, src, reqs, "gcc 12")
	if base != configID(pristine, src, reqs, "gcc 12") {
		t.Fatal("unstable")
	}
	// A series that does not touch Kconfig files reuses the baseline config.
	os.MkdirAll(filepath.Join(patched, "mm"), 0o755)
	os.WriteFile(filepath.Join(patched, "mm", "oom_kill.c"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(patched, patchedFilesName), []byte("mm/oom_kill.c\n"), 0o644)
	if configID(patched, src, reqs, "gcc 12") != base {
		t.Errorf("non-Kconfig patch changed the config id")
	}
	os.WriteFile(filepath.Join(patched, "mm", "Kconfig"), []byte("config OOMLAB_KNOB\n\tbool\n"), 0o644)
	os.WriteFile(filepath.Join(patched, patchedFilesName), []byte("mm/oom_kill.c\nmm/Kconfig\n"), 0o644)
	withK := configID(patched, src, reqs, "gcc 12")
	if withK == base {
		t.Errorf("Kconfig patch did not change the config id")
	}
	os.WriteFile(filepath.Join(patched, "mm", "Kconfig"), []byte("config OOMLAB_KNOB\n\tbool \"x\"\n"), 0o644)
	if configID(patched, src, reqs, "gcc 12") == withK {
		t.Errorf("Kconfig content change did not change the config id")
	}
	for name, id := range map[string]string{
		"request":  configID(pristine, src, []request{{Symbol: "A", Value: "n"}}, "gcc 12"),
		"compiler": configID(pristine, src, reqs, "gcc 13"),
		"source":   configID(pristine, &source{ID: "other", Tree: pristine}, reqs, "gcc 12"),
	} {
		if id == base {
			t.Errorf("%s change did not change the config id", name)
		}
	}
}

func TestSeedObjDir(t *testing.T) {
	root := t.TempDir()
	oldTree, newTree := filepath.Join(root, "src", "abc"), filepath.Join(root, "trees", "abc-def")
	from, to := filepath.Join(oldTree, ".oomlab-build-x"), filepath.Join(newTree, ".oomlab-build-x")
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	write := func(p, data string) {
		t.Helper()
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, old, old)
	}
	write(filepath.Join(from, "mm", "oom_kill.o"), "\x7fELF\x00obj")
	write(filepath.Join(from, "mm", ".oom_kill.o.cmd"), "cmd := gcc ../mm/oom_kill.c\n")
	write(filepath.Join(from, "tools", "objtool", ".check.o.cmd"), "cmd := gcc -I"+oldTree+"/tools/include -o "+from+"/tools/objtool/check.o\n")
	write(filepath.Join(from, "tools", "objtool", "objtool"), "\x7fELF\x00"+oldTree+"/x")
	write(filepath.Join(from, "build.log"), "old log")
	write(filepath.Join(from, objOKName), "key")
	os.Symlink("..", filepath.Join(from, "source"))
	write(filepath.Join(newTree, "mm", "oom_kill.c"), "patched")
	write(filepath.Join(newTree, "mm", "other.c"), "unpatched")
	write(filepath.Join(newTree, patchedFilesName), "mm/oom_kill.c\nmm/gone.c\n")

	if err := seedObjDir(context.Background(), from, to, oldTree, newTree); err != nil {
		t.Fatal(err)
	}
	cmd, _ := os.ReadFile(filepath.Join(to, "tools", "objtool", ".check.o.cmd"))
	if strings.Contains(string(cmd), oldTree) || !strings.Contains(string(cmd), newTree+"/tools/include") || !strings.Contains(string(cmd), to+"/tools/objtool/check.o") {
		t.Errorf("tools .cmd not rewritten: %s", cmd)
	}
	if bin, _ := os.ReadFile(filepath.Join(to, "tools", "objtool", "objtool")); !strings.Contains(string(bin), oldTree) {
		t.Errorf("binary file was rewritten")
	}
	for _, f := range []string{"mm/oom_kill.o", "mm/.oom_kill.o.cmd", "tools/objtool/.check.o.cmd"} {
		st, err := os.Stat(filepath.Join(to, f))
		if err != nil || !st.ModTime().Equal(old) {
			t.Errorf("%s: mtime not preserved (%v)", f, err)
		}
	}
	for _, f := range []string{"build.log", objOKName} {
		if _, err := os.Stat(filepath.Join(to, f)); err == nil {
			t.Errorf("%s copied", f)
		}
	}
	if l, _ := os.Readlink(filepath.Join(to, "source")); l != ".." {
		t.Errorf("source symlink %q", l)
	}
	if st, _ := os.Stat(filepath.Join(newTree, "mm", "oom_kill.c")); !st.ModTime().After(old.Add(time.Hour)) {
		t.Errorf("patched file not touched")
	}
	if st, _ := os.Stat(filepath.Join(newTree, "mm", "other.c")); !st.ModTime().Equal(old) {
		t.Errorf("unpatched file touched")
	}
	if _, err := os.Stat(to + ".seeding"); err == nil {
		t.Errorf("temporary seed dir left behind")
	}
}

// The record's patch list is the series applied, in order, each with the
// SHA-256 of its contents; withInputs replaces what a cached entry had.
func TestWithInputs(t *testing.T) {
	r := withInputs(&Result{Patches: []PatchID{{Name: "stale"}}}, "gcc 12", []Patch{{Name: "a.patch", Data: []byte("x")}, {Name: "b.patch", Data: nil}})
	if r.Compiler != "gcc 12" || len(r.Patches) != 2 || r.Patches[0].Name != "a.patch" ||
		r.Patches[0].SHA256 != "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881" ||
		r.Patches[1].SHA256 != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Errorf("withInputs: %+v", r)
	}
	if r := withInputs(&Result{}, "gcc", nil); r.Patches != nil {
		t.Errorf("baseline patches %v, want none", r.Patches)
	}
}
