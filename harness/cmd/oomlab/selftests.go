package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"

	"oomlab/harness/internal/kbuild"
	"oomlab/harness/internal/results"
	"oomlab/harness/internal/selftests"
)

// buildSelftests builds (or finds in the cache) the upstream selftests
// from each variant's own source tree, for a plan whose scenarios run some. A
// program that does not build is reported and run as a skip; only an
// unusable toolchain or cache stops the run.
func buildSelftests(ctx context.Context, k *kernelFlags, variants []string) (map[string]*selftests.Set, error) {
	base, series, frags, err := k.sources()
	if err != nil {
		return nil, err
	}
	cache := cacheDir(k.cache)
	out := map[string]*selftests.Set{}
	for _, v := range variants {
		tree, err := kbuild.SourceTree(ctx, kbuild.Options{CacheDir: cache, KernelSrc: k.kernelSrc, BaseFile: base,
			Series: series, Variant: v, Fragments: frags})
		if err != nil {
			return nil, &exitError{2, fmt.Errorf("selftests for %s: %v", v, err)}
		}
		// Every program, whichever the plan runs: one cache entry per
		// tree, shared by runs of any subset (a few seconds more once).
		set, err := selftests.Build(ctx, selftests.Options{Cache: cache, Tree: tree})
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, &exitError{2, fmt.Errorf("selftests for %s: %v", v, err)}
		}
		how := "built"
		if set.Cached {
			how = "cached"
		}
		from := tree.Dir
		if set.BuiltIn != tree.Dir {
			from += " (compiled in " + set.BuiltIn + ": the same inputs)"
		}
		fmt.Fprintf(os.Stderr, "selftests %s: %s %s for %s, key %s\n", v, how, strings.Join(sortedKeys(set.Built), ", "), from, set.Key[:12])
		for _, n := range sortedKeys(set.Skipped) {
			fmt.Fprintf(os.Stderr, "selftests %s: SKIP %s: %s\n", v, n, set.Skipped[n])
		}
		out[v] = set
	}
	return out, nil
}

// selftestRecord is what run.json keeps of a variant's selftests build.
func selftestRecord(s *selftests.Set) *results.SelftestBuild {
	if s == nil {
		return nil
	}
	b := &results.SelftestBuild{Key: s.Key, Cached: s.Cached, Tree: s.Tree, Built: sortedKeys(s.Built), Skipped: s.Skipped}
	if s.BuiltIn != s.Tree {
		b.BuiltIn = s.BuiltIn
	}
	return b
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
