package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"oomlab/harness/internal/compare"
	"oomlab/harness/internal/grid"
	"oomlab/harness/internal/report"
	"oomlab/harness/internal/results"
)

func newReportCmd() *cobra.Command {
	var format string
	c := &cobra.Command{
		Use:   "report RUN_DIR",
		Short: "re-render a run's results: --format text|json|ktap|junit|html",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			r, err := results.Load(args[0])
			if err != nil {
				return &exitError{2, fmt.Errorf("report: %v", err)}
			}
			switch format {
			case "text":
				report.Table(os.Stdout, r)
				fmt.Println()
				report.Compare(os.Stdout, r)
				fmt.Println()
				report.Differences(os.Stdout, r)
				fmt.Println()
				report.Comparisons(os.Stdout, compare.Within(r))
				if len(grid.Grids(r)) > 0 {
					fmt.Println()
					grid.Table(os.Stdout, r)
				}
			case "json":
				// The record with its statistics (percentiles with CIs,
				// the comparison of each variant with its reference).
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(struct {
					*results.Run
					Statistics compare.Report `json:"statistics"`
				}{r, compare.Within(r)})
			case "ktap":
				report.KTAP(os.Stdout, r)
			case "junit":
				return report.JUnit(os.Stdout, r)
			case "html":
				// Reads events.jsonl and the metrics files of the run
				// directory; its links are relative to that directory.
				return report.HTML(os.Stdout, r, args[0])
			default:
				return &exitError{2, fmt.Errorf("report: --format %q: want text, json, ktap, junit or html", format)}
			}
			return nil
		},
	}
	c.Flags().StringVar(&format, "format", "text", "text, json, ktap, junit or html (self-contained; links relative to RUN_DIR)")
	return c
}
