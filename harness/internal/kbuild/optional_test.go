package kbuild

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOptionalMarking(t *testing.T) {
	reqs, err := mergeFragments([]Fragment{{Name: "base.config", Data: []byte(`# header
CONFIG_DEBUG_KERNEL=y
# CONFIG_SLUB_TINY is not set  # optional: 6.2+
CONFIG_BUDDY=y # optional
CONFIG_STR="a # b"  # optional (quoted)
CONFIG_PLAIN=y # just a comment
CONFIG_PAREN=y # optional: see (x)
CONFIG_OPTIONALLY=y # optionally nothing
# [optional] trimming only
# CONFIG_VT is not set
CONFIG_MUST=y  # required
# [required]
CONFIG_VIRTIO_NET=y
`)}})
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		val      string
		optional bool
		why      string
		line     int
	}
	wants := map[string]want{
		"DEBUG_KERNEL": {"y", false, "", 2},
		"SLUB_TINY":    {"n", true, "6.2+", 3},
		"BUDDY":        {"y", true, "", 4},
		"STR":          {`"a # b"`, true, "quoted", 5},
		"PLAIN":        {"y", false, "", 6},
		"PAREN":        {"y", true, "see (x)", 7},
		"OPTIONALLY":   {"y", false, "", 8},
		"VT":           {"n", true, "trimming only", 10},
		"MUST":         {"y", false, "", 11},
		"VIRTIO_NET":   {"y", false, "", 13},
	}
	if len(reqs) != len(wants) {
		t.Fatalf("got %d requests: %+v", len(reqs), reqs)
	}
	for _, r := range reqs {
		w, ok := wants[r.Symbol]
		if !ok || r.Value != w.val || r.Optional != w.optional || r.Why != w.why || r.Line != w.line {
			t.Errorf("%s: got %+v, want %+v", r.Symbol, r, w)
		}
	}

	// A later fragment decides, also whether the symbol is optional; a
	// section ends with its fragment.
	reqs, err = mergeFragments([]Fragment{
		{Name: "a.config", Data: []byte("# [optional]\nCONFIG_A=y\nCONFIG_B=y\n")},
		{Name: "b.config", Data: []byte("CONFIG_A=y\nCONFIG_B=y # optional: user\nCONFIG_C=y\n")},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]request{}
	for _, r := range reqs {
		got[r.Symbol] = r
	}
	if got["A"].Optional || got["A"].Fragment != "b.config" || !got["B"].Optional || got["B"].Why != "user" || got["C"].Optional {
		t.Errorf("override: %+v", reqs)
	}
}

// A --kconfig DIR of user fragments is read the same way.
func TestOptionalInUserFragments(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mine.config"), []byte("CONFIG_NOPE=y  # optional: not in every tree\nCONFIG_DEBUG_KERNEL=y\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	frags, err := ReadFragments(dir)
	if err != nil {
		t.Fatal(err)
	}
	reqs, err := mergeFragments(frags)
	if err != nil {
		t.Fatal(err)
	}
	db, err := LoadKconfig(fakeKconfigTree(t), "x86")
	if err != nil {
		t.Fatal(err)
	}
	keep, notes, err := resolveUnknown(db, "TREE", reqs)
	if err != nil {
		t.Fatal(err)
	}
	if len(keep) != 1 || keep[0].Symbol != "DEBUG_KERNEL" {
		t.Errorf("keep = %+v", keep)
	}
	want := "kconfig: skipping optional CONFIG_NOPE (" + filepath.Join(dir, "mine.config") + ":1): no Kconfig file in this tree defines it (not in every tree)"
	if len(notes) != 1 || notes[0] != want {
		t.Errorf("notes = %q, want %q", notes, want)
	}
}

func TestResolveUnknown(t *testing.T) {
	db, err := LoadKconfig(fakeKconfigTree(t), "x86")
	if err != nil {
		t.Fatal(err)
	}
	reqs, err := mergeFragments([]Fragment{
		{Name: "kconfig/base.config", Data: []byte("CONFIG_DEBUG_KERNEL=y\n# CONFIG_SLUB_TINY is not set # optional\n# CONFIG_HID_SUPPORT is not set # optional\n")},
		{Name: "kconfig/lockup.config", Data: []byte("CONFIG_HARDLOCKUP_DETECTOR=y\nCONFIG_HARDLOCKUP_DETECTOR_PREFER_BUDDY=y # optional: 6.6+\n")},
	})
	if err != nil {
		t.Fatal(err)
	}
	keep, notes, err := resolveUnknown(db, "/src/linux-6.1", reqs)
	if err != nil {
		t.Fatal(err)
	}
	if len(keep) != 2 || keep[0].Symbol != "DEBUG_KERNEL" || keep[1].Symbol != "HARDLOCKUP_DETECTOR" {
		t.Errorf("keep = %+v", keep)
	}
	wantNotes := []string{
		"kconfig: skipping optional CONFIG_SLUB_TINY (kconfig/base.config:2): no Kconfig file in this tree defines it",
		"kconfig: skipping optional CONFIG_HID_SUPPORT (kconfig/base.config:3): no Kconfig file in this tree defines it",
		"kconfig: skipping optional CONFIG_HARDLOCKUP_DETECTOR_PREFER_BUDDY (kconfig/lockup.config:2): no Kconfig file in this tree defines it (6.6+)",
	}
	if strings.Join(notes, "\n") != strings.Join(wantNotes, "\n") {
		t.Errorf("notes:\n%s\nwant:\n%s", strings.Join(notes, "\n"), strings.Join(wantNotes, "\n"))
	}

	// A required symbol the tree lacks fails, naming file:line; the
	// optional ones are not in the error.
	reqs = append(reqs, request{Symbol: "PRINTK_TIME", Value: "y", Fragment: "kconfig/base.config", Line: 60})
	_, _, err = resolveUnknown(db, "/src/linux-6.1", reqs)
	if err == nil || !strings.Contains(err.Error(), "CONFIG_PRINTK_TIME (kconfig/base.config:60)") ||
		!strings.Contains(err.Error(), "/src/linux-6.1") || strings.Contains(err.Error(), "SLUB_TINY") {
		t.Errorf("err = %v", err)
	}
}

func TestSplitDropped(t *testing.T) {
	db, err := LoadKconfig(fakeKconfigTree(t), "x86")
	if err != nil {
		t.Fatal(err)
	}
	reqs, err := mergeFragments([]Fragment{{Name: "lockup.config", Data: []byte(
		"CONFIG_DEBUG_KERNEL=y\nCONFIG_HARDLOCKUP_DETECTOR=y # optional: buddy or NMI\nCONFIG_VIRTIO_NET=y\n")}})
	if err != nil {
		t.Fatal(err)
	}
	final := ParseConfig([]byte("CONFIG_DEBUG_KERNEL=y\n# CONFIG_HARDLOCKUP_DETECTOR is not set\n# CONFIG_VIRTIO_NET is not set\n"))
	notes, req := splitDropped(db, checkRequests(reqs, final), final)
	if len(notes) != 1 || !strings.HasPrefix(notes[0], "kconfig: optional CONFIG_HARDLOCKUP_DETECTOR=y (from lockup.config:2) ended up as is not set; depends on: ") ||
		!strings.HasSuffix(notes[0], " (buddy or NMI)") || strings.Contains(notes[0], "\n") {
		t.Errorf("notes = %q", notes)
	}
	if len(req) != 1 || req[0].Symbol != "VIRTIO_NET" {
		t.Errorf("required dropped = %+v", req)
	}
	if r := requiredOnly(reqs); len(r) != 2 || r[1].Symbol != "VIRTIO_NET" {
		t.Errorf("requiredOnly = %+v", r)
	}
}

// Comments and markers are not part of the cache key: marking a symbol
// optional does not rebuild a kernel; a value does.
func TestFragmentKeyIgnoresComments(t *testing.T) {
	a := Fragment{Data: []byte("# c\nCONFIG_A=y\n# CONFIG_B is not set\n")}
	b := Fragment{Data: []byte("# other\n# [optional] why\nCONFIG_A=y   # optional: x\n# CONFIG_B is not set # optional\n# [required]\n\n")}
	c := Fragment{Data: []byte("CONFIG_A=m\n# CONFIG_B is not set\n")}
	if string(fragmentKey(a)) != string(fragmentKey(b)) {
		t.Errorf("%q != %q", fragmentKey(a), fragmentKey(b))
	}
	if string(fragmentKey(a)) == string(fragmentKey(c)) {
		t.Errorf("a value change must change the key")
	}
	in := keyInput{Source: "s", Variant: VariantBaseline, Fragments: []Fragment{a}}
	in2 := in
	in2.Fragments = []Fragment{b}
	if cacheKey(in) != cacheKey(in2) || objDirName([]Fragment{a}, "gcc") != objDirName([]Fragment{b}, "gcc") {
		t.Errorf("comments changed the cache key or object directory")
	}
}

// The shipped fragments: every marker parses, and the symbols the issue
// named as version-dependent are optional while the lab's needs are not.
func TestShippedFragmentsMarking(t *testing.T) {
	var frags []Fragment
	for _, n := range []string{"base", "lockup", "cost"} {
		data, err := os.ReadFile(filepath.Join("..", "..", "..", "kconfig", n+".config"))
		if err != nil {
			t.Fatal(err)
		}
		frags = append(frags, Fragment{Name: "kconfig/" + n + ".config", Data: data})
	}
	reqs, err := mergeFragments(frags)
	if err != nil {
		t.Fatal(err)
	}
	opt := map[string]bool{}
	for _, r := range reqs {
		opt[r.Symbol] = r.Optional
	}
	for _, s := range []string{"SLUB_TINY", "HID_SUPPORT", "HARDLOCKUP_DETECTOR_PREFER_BUDDY", "DYNAMIC_DEBUG", "PM_DEBUG", "LKDTM", "VT"} {
		if v, ok := opt[s]; !ok || !v {
			t.Errorf("CONFIG_%s should be optional (present %v)", s, ok)
		}
	}
	for _, s := range []string{"SMP", "SERIAL_8250_CONSOLE", "BLK_DEV_INITRD", "DEVTMPFS", "PROC_FS", "SYSFS", "CGROUPS", "MEMCG", "FUTEX", "VIRTIO_MMIO", "VIRTIO_CONSOLE", "X86_MPPARSE", "PRINTK_TIME", "ACPI", "NET"} {
		if v, ok := opt[s]; !ok || v {
			t.Errorf("CONFIG_%s should be required (present %v)", s, ok)
		}
	}
}
