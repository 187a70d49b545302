package kbuild

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// Request is the kernel variants a user asked for: a list ("baseline",
// "patched", "patched:3"), or "all" (what each scenario lists), or "bisect"
// (the baseline and every prefix of the series).
type Request struct {
	Want []string
	// All also selects, wherever the whole series runs, the series
	// prefixes (patched:N) a scenario lists itself.
	All bool
}

// ParseRequest reads "all", "bisect" or a comma list of variants. "all" is
// the baseline and the whole series (only the baseline while the series is
// empty); "bisect" is the baseline, every prefix of the series and the
// whole series, so that each patch is built and booted on its own.
func ParseRequest(s string, series fs.FS) (Request, error) {
	switch s {
	case "all", "bisect":
		patches, err := ReadSeries(series)
		if err != nil {
			return Request{}, err
		}
		r := Request{Want: []string{VariantBaseline}, All: s == "all"}
		if s == "bisect" {
			for i := 1; i < len(patches); i++ {
				r.Want = append(r.Want, fmt.Sprintf("%s:%d", VariantPatched, i))
			}
		}
		if len(patches) > 0 {
			r.Want = append(r.Want, VariantPatched)
		}
		return r, nil
	}
	var r Request
	for _, v := range strings.Split(s, ",") {
		v = strings.TrimSpace(v)
		if _, _, err := ParseVariant(v); err != nil {
			return Request{}, fmt.Errorf("variant %q: want baseline, patched, patched:N (the first N patches), all or bisect", v)
		}
		r.Want = append(r.Want, v)
	}
	return r, nil
}

// Runs says whether a scenario that lists the variants listed runs on v:
// it lists v and the user asked for it (with "all", a patched:N it lists
// too, when the series runs), or v is a series prefix the user asked for
// by name and the scenario runs the whole series (smoke on every prefix
// with bisect).
func (r Request) Runs(listed []string, v string) bool {
	base := strings.TrimSuffix(v, TestSuffix)
	prefix := strings.HasPrefix(base, VariantPatched+":")
	asked := slices.Contains(r.Want, v)
	if slices.Contains(listed, v) {
		if asked {
			return true
		}
		// "all": a prefix runs where the whole series does, and a
		// "+test" variant wherever the kernel it is built on runs.
		if r.All && ((prefix && slices.Contains(r.Want, VariantPatched)) ||
			(base != v && slices.Contains(r.Want, base))) {
			return true
		}
	}
	return asked && prefix && slices.Contains(listed, VariantPatched)
}

// Plan returns the kernels to build for scenarios listing these variants:
// every variant some scenario runs on, in reading order (SortVariants).
func (r Request) Plan(lists ...[]string) []string {
	need := map[string]bool{}
	for _, listed := range lists {
		for _, v := range append(slices.Clone(listed), r.Want...) {
			if r.Runs(listed, v) {
				need[v] = true
			}
		}
	}
	out := make([]string, 0, len(need))
	for v := range need {
		out = append(out, v)
	}
	SortVariants(out)
	return out
}

// SortVariants orders variants the way a reader compares them: baseline,
// then growing prefixes of the series, then the whole series.
func SortVariants(vs []string) {
	rank := func(v string) int {
		base := strings.TrimSuffix(v, TestSuffix)
		r := 1 << 20
		switch _, n, _ := ParseVariant(base); {
		case base == VariantBaseline:
			r = 0
		case n > 0:
			r = n
		}
		if base != v {
			return 2*r + 1 // right after the kernel it is built on
		}
		return 2 * r
	}
	sort.SliceStable(vs, func(i, j int) bool { return rank(vs[i]) < rank(vs[j]) })
}

// ReadFragments reads a user's kconfig fragments: one file, or every
// *.config of a directory in name order. Each must be a fragment Build can
// merge; the error is one line naming the file.
func ReadFragments(path string) ([]Fragment, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("kconfig fragment %s: %v", path, cause(err))
	}
	files := []string{path}
	if st.IsDir() {
		if files, err = filepath.Glob(filepath.Join(path, "*.config")); err != nil {
			return nil, err
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("kconfig directory %s: no *.config fragments in it", path)
		}
		sort.Strings(files)
	}
	var out []Fragment
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("kconfig fragment %s: %v", f, cause(err))
		}
		frag := Fragment{Name: f, Data: data}
		if err := CheckFragment(frag); err != nil {
			return nil, err
		}
		out = append(out, frag)
	}
	return out, nil
}

// CheckFragment says whether Build can merge a fragment: only assignments,
// comments and blank lines, and at least one assignment.
func CheckFragment(f Fragment) error {
	reqs, err := mergeFragments([]Fragment{f})
	if err != nil {
		return err
	}
	if len(reqs) == 0 {
		return fmt.Errorf("kconfig fragment %s: no CONFIG_ assignment in it", f.Name)
	}
	return nil
}
