package report

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"

	"oomlab/harness/internal/kbuild"
	"oomlab/harness/internal/results"
)

// The kernel source as kbuild describes it in the record (source_id): a
// Debian source package, a developer's git tree (HEAD abbreviated to 12
// digits, so no full git_commit_hash can be given), or any other tree.
var (
	debianSourceRE = regexp.MustCompile(`^debian (\S+) (\S+) \(`)
	gitSourceRE    = regexp.MustCompile(`^git (.+)@([0-9a-f]{7,40})(\+changes:[0-9a-f]+)?$`)
	treeSourceRE   = regexp.MustCompile(`^tree (.+) \(`)
)

// shortSum is a deterministic 16-hex-digit name for an identity made of
// parts (NUL-separated, so no two part lists share a name by accident).
func shortSum(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(h[:8])
}

// kcidbCheckoutOf is the checkout a variant kernel was built from: its
// source plus the variant's patches. Two variants are two checkouts (the
// patchsets differ); two runs of the same variant on the same source are
// one (same id). The patchset hash comes from the patches the record
// lists; an older record names them only by the variant, and then it is
// known only for "no patches" (the baseline).
func kcidbCheckoutOf(origin string, k results.Kernel) kcidbCheckout {
	c := kcidbCheckout{
		ID:     origin + ":checkout-" + shortSum(k.SourceID, k.Variant),
		Origin: origin,
		Valid:  true, // the record lists only kernels that were built
		Misc:   map[string]any{"source_id": k.SourceID, "variant": k.Variant},
	}
	patches, none := variantPatches(k.Variant)
	c.Misc["patches"] = patches
	switch {
	case len(k.Patches) > 0:
		hash := patchsetHash(k.Patches)
		c.PatchsetHash = &hash
		var names []string
		for _, p := range k.Patches {
			names = append(names, p.Name)
		}
		c.Misc["patch_files"] = names
	case none:
		empty := ""
		c.PatchsetHash = &empty
	}
	switch {
	case debianSourceRE.MatchString(k.SourceID):
		m := debianSourceRE.FindStringSubmatch(k.SourceID)
		c.TreeName = "debian"
		c.Misc["debian_package"], c.Misc["debian_version"] = m[1], m[2]
	case gitSourceRE.MatchString(k.SourceID):
		m := gitSourceRE.FindStringSubmatch(k.SourceID)
		c.TreeName = filepath.Base(m[1])
		c.GitCommitName = m[2]
		if m[3] != "" {
			c.Misc["uncommitted_changes"] = strings.TrimPrefix(m[3], "+changes:")
		}
	case treeSourceRE.MatchString(k.SourceID):
		c.TreeName = filepath.Base(treeSourceRE.FindStringSubmatch(k.SourceID)[1])
	}
	c.Comment = kcidbText(k.SourceID+", "+patches, 1<<14)
	return c
}

// patchsetHash is KCIDB's patchset_hash: the SHA-256 over the
// newline-terminated SHA-256 hex digests of the patches, in the order they
// were applied.
func patchsetHash(patches []results.Patch) string {
	h := sha256.New()
	for _, p := range patches {
		h.Write([]byte(p.SHA256 + "\n"))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// variantPatches says in words which patches a variant applies, and
// whether it applies none at all.
func variantPatches(variant string) (string, bool) {
	kind, n, err := kbuild.ParseVariant(variant)
	if err != nil {
		return "variant " + variant, false
	}
	test := strings.HasSuffix(variant, kbuild.TestSuffix)
	var s string
	switch {
	case kind == kbuild.VariantBaseline:
		s = "no patches"
		if test {
			s = "the test-only series"
		}
		return s, !test
	case n == 1:
		s = "the first patch of the series"
	case n > 1:
		s = fmt.Sprintf("the first %d patches of the series", n)
	default:
		s = "the whole series"
	}
	if test {
		s += " and the test-only series"
	}
	return s, false
}

// kcidbBuildOf is the build of one variant kernel. Its id is the cache
// key, which covers source, patches, kconfig fragments and compiler: the
// same kernel in two runs is one build, and any change is another.
func kcidbBuildOf(origin, checkoutID string, k results.Kernel) kcidbBuild {
	id := k.Key
	if id == "" {
		id = shortSum(k.SourceID, k.Variant, k.Release)
	}
	return kcidbBuild{
		ID:           origin + ":build-" + id,
		Origin:       origin,
		CheckoutID:   checkoutID,
		Comment:      k.Release,
		Architecture: "x86_64",
		Compiler:     k.Compiler,
		// tinyconfig with oomlab's kconfig fragments (or the user's
		// --kconfig), merged by kbuild; the cache key tells which.
		ConfigName: "tinyconfig+oomlab",
		// A kernel is in the record only once it was built (or found
		// built in the cache) and its bzImage exists.
		Status: "PASS",
		Misc: map[string]any{
			"variant":        k.Variant,
			"kernel_release": k.Release,
			"cache_key":      k.Key,
			"cache_hit":      k.Cached,
		},
	}
}
