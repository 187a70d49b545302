package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"oomlab/harness/internal/kbuild"
)

func newCacheCmd() *cobra.Command {
	var cache string
	c := &cobra.Command{
		Use:   "cache",
		Short: "list the kernel cache (kernels, trees, object dirs, source, ccache) with sizes and last use",
		Long: "cache lists what the kernel cache holds: built kernels, the unpacked source, patched trees,\n" +
			"their object directories and ccache, each with its disk usage (hard links counted once;\n" +
			"FREES is what removing only that entry would free) and when a build or run last used it.\n" +
			"'cache prune' removes least recently used entries down to a bound; builds do the same after\n" +
			"building (bound: $" + kbuild.MaxCacheSizeEnv + ", default 10GiB, 'off' to disable).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir := cacheDir(cache)
			if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
				fmt.Fprintf(cmd.OutOrStdout(), "cache %s: empty (no such directory)\n", dir)
				return nil
			}
			inv, err := kbuild.ScanCache(dir)
			if err != nil {
				return &exitError{2, err}
			}
			printInventory(cmd.OutOrStdout(), inv)
			return nil
		},
	}
	c.PersistentFlags().StringVar(&cache, "cache", "", "cache directory (default: $XDG_CACHE_HOME/oomlab or ~/.cache/oomlab)")
	c.AddCommand(newCachePruneCmd(&cache))
	return c
}

func newCachePruneCmd(cache *string) *cobra.Command {
	var maxSize string
	var dryRun bool
	c := &cobra.Command{
		Use:   "prune",
		Short: "remove least recently used cache entries until the cache fits --max-size",
		Long: "prune removes least recently used entries (a tree together with its object dirs) until the\n" +
			"cache is at most --max-size. Kernels a running oomlab holds are skipped; while a build is\n" +
			"running only kernels are pruned. Entries are renamed to .trash-* before they are deleted.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bound := kbuild.DefaultMaxCacheSize
			if cmd.Flags().Changed("max-size") {
				n, err := kbuild.ParseSize(maxSize)
				if err != nil {
					return &exitError{2, fmt.Errorf("--max-size: %v", err)}
				}
				bound = n
			} else if n, err := kbuild.MaxCacheSize(); err != nil {
				return &exitError{2, err}
			} else if n >= 0 {
				bound = n
			}
			res, err := kbuild.Prune(cacheDir(*cache), kbuild.PruneOptions{MaxSize: bound, DryRun: dryRun})
			if err != nil {
				return &exitError{2, err}
			}
			printPrune(cmd.OutOrStdout(), res)
			return nil
		},
	}
	c.Flags().StringVar(&maxSize, "max-size", "10GiB", "bound for the cache size (e.g. 10GiB, 500MiB, 0 = remove all unused); default $"+kbuild.MaxCacheSizeEnv+" or 10GiB")
	c.Flags().BoolVar(&dryRun, "dry-run", false, "print what would be removed, remove nothing")
	return c
}

func cacheDir(flag string) string {
	if flag != "" {
		return flag
	}
	return kbuild.DefaultCacheDir()
}

func printInventory(w io.Writer, inv *kbuild.Inventory) {
	bound := "bound " + kbuild.FormatSize(kbuild.DefaultMaxCacheSize)
	if n, err := kbuild.MaxCacheSize(); err == nil && n >= 0 {
		bound = "bound " + kbuild.FormatSize(n)
	} else if err == nil {
		bound = "builds do not prune ($" + kbuild.MaxCacheSizeEnv + "=off)"
	}
	fmt.Fprintf(w, "cache %s: %s on disk (hard links counted once); %s\n", inv.Root, kbuild.FormatSize(inv.Total), bound)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tSIZE\tFREES\tLAST USED\tNAME")
	for _, e := range inv.Entries {
		name := e.Name
		if e.Desc != "" {
			name += "  " + e.Desc
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Kind, kbuild.FormatSize(e.Size), kbuild.FormatSize(e.Alone),
			e.LastUsed.Local().Format("2006-01-02 15:04"), name)
	}
	tw.Flush()
	if len(inv.Trash) > 0 {
		fmt.Fprintf(w, "%d leftover .trash-* directories (removed by 'oomlab cache prune')\n", len(inv.Trash))
	}
}

func printPrune(w io.Writer, r *kbuild.PruneResult) {
	verb := "removed"
	if r.DryRun {
		verb = "would remove"
	}
	for _, x := range r.Removed {
		desc := ""
		if x.Entry.Desc != "" {
			desc = " (" + x.Entry.Desc + ")"
		}
		if len(x.With) > 0 {
			desc += fmt.Sprintf(" with %d object dir(s)", len(x.With))
		}
		fmt.Fprintf(w, "%s %s %s%s, last used %s: %s\n", verb, x.Entry.Kind, x.Entry.Name, desc,
			x.Entry.LastUsed.Local().Format("2006-01-02 15:04"), kbuild.FormatSize(x.Freed))
	}
	for _, s := range r.Skipped {
		fmt.Fprintf(w, "kept %s %s: %s\n", s.Entry.Kind, s.Entry.Name, s.Reason)
	}
	if r.BuildRunning {
		fmt.Fprintf(w, "a build holds %s: only kernels were considered\n", filepath.Join("<cache>", "build.lock"))
	}
	if r.Trash > 0 {
		fmt.Fprintf(w, "removed %d leftover .trash-* directories\n", r.Trash)
	}
	fmt.Fprintf(w, "cache: %s before, %s after (bound %s); %s %s\n", kbuild.FormatSize(r.Before), kbuild.FormatSize(r.After),
		kbuild.FormatSize(r.MaxSize), verb, kbuild.FormatSize(r.Freed()))
}
