package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"oomlab/harness/internal/compare"
	"oomlab/harness/internal/report"
)

func newCompareCmd() *cobra.Command {
	var format string
	c := &cobra.Command{
		Use:   "compare RUN_A RUN_B",
		Short: "compare two runs, scenario x variant by scenario x variant (A is the reference): --format text|json",
		Long: "compare pools the repeats of every scenario x variant that both runs have and compares B with A:\n" +
			"latency distributions with the Mann-Whitney U test and the ratio of medians (bootstrap CI), rates of\n" +
			"bad runs (lockups, dead guests, hung waiters, overkill, failed runs) with Fisher's exact test, two-sided\n" +
			"at alpha = 0.05; upstream selftest cases exactly: one that passed in A and does not in B is a regression.\n" +
			"Exit status: 0 no figure is significantly worse in B, 1 one is, 2 bad input.",
		Args: cobra.ExactArgs(2),
		RunE: func(_ *cobra.Command, args []string) error {
			if format != "text" && format != "json" {
				return &exitError{2, fmt.Errorf("compare: --format %q: want text or json", format)}
			}
			rep, err := compare.Runs(args[0], args[1])
			if err != nil {
				return &exitError{2, fmt.Errorf("compare: %v", err)}
			}
			if format == "json" {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return &exitError{2, fmt.Errorf("compare: %v", err)}
				}
			} else {
				report.Distributions(os.Stdout, rep)
				fmt.Println()
				report.Comparisons(os.Stdout, rep)
			}
			// The selftest rule is exact: each case that passed in A and
			// does not in B is a regression line of its own.
			for _, line := range rep.SelftestRegressions {
				fmt.Fprintf(os.Stderr, "REGRESSION %s\n", line)
			}
			if reg := rep.Regressions(); len(reg) > 0 || len(rep.SelftestRegressions) > 0 {
				if format == "json" {
					for _, r := range reg {
						fmt.Fprintf(os.Stderr, "REGRESSION %s\n", r.Reason())
					}
				}
				return errExpectation
			}
			return nil
		},
	}
	c.Flags().StringVar(&format, "format", "text", "text or json")
	return c
}
