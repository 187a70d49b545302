package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"oomlab/harness/internal/suite"
)

func newMergeCmd() *cobra.Command {
	var (
		out          string
		resultsDir   string
		allowPartial bool
	)
	c := &cobra.Command{
		Use:   "merge SHARD_DIR... [--out DIR]",
		Short: "join the run directories of 'oomlab run --shard i/n' into one run, as if it had run on one machine",
		Long: "merge reads the run directory of every shard of one suite (the same scenarios, flags and n, one oomlab\n" +
			"build), checks that they belong together and that none is missing or given twice, and writes one run\n" +
			"directory: run.json with every guest run in the order an unsharded run has them and each kernel once,\n" +
			"events.jsonl, the console logs and metrics files (hard links where possible), report.ktap, junit.xml and\n" +
			"report.html, with the statistics and verdict computed over all the shards' guest runs.\n" +
			"--allow-partial merges without missing or incomplete shards: the run is marked incomplete and\n" +
			"run.json lists the guest runs it lacks (missing).\n" +
			"Exit status: 0 all expectations held, 1 one failed, 2 bad input (one line naming the directory).",
		Args: cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if out == "" {
				out = filepath.Join(resultsDir, suite.NewRunID())
			}
			warn := func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }
			rec, err := suite.Merge(args, out, allowPartial, warn)
			if err != nil {
				return &exitError{2, fmt.Errorf("merge: %v", err)}
			}
			if !rec.Complete {
				fmt.Fprintf(os.Stderr, "merge: %s is incomplete: %d guest runs missing (listed in run.json, missing)\n", out, len(rec.Missing))
			}
			return summary(rec, out)
		},
	}
	c.Flags().StringVar(&out, "out", "", "the run directory to create (default: RESULTS/<new run id>); must not exist or be empty")
	c.Flags().StringVar(&resultsDir, "results", "results", "where the merged run directory is created when --out is not given")
	c.Flags().BoolVar(&allowPartial, "allow-partial", false, "merge even when shards are missing or incomplete; the run is marked incomplete")
	return c
}
