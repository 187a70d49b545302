package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"oomlab/harness/internal/compare"
	"oomlab/harness/internal/report"
	"oomlab/harness/internal/results"
)

func newReportCmd() *cobra.Command {
	var format string
	var kc report.KCIDBOptions
	c := &cobra.Command{
		Use:   "report RUN_DIR",
		Short: "re-render a run's results: --format text|json|ktap|junit|html|kcidb",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			r, err := results.Load(args[0])
			if err != nil {
				return &exitError{2, fmt.Errorf("report: %v", err)}
			}
			switch format {
			case "text":
				printText(r)
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
			case "kcidb":
				// KernelCI's KCIDB v5 submission (checkouts, builds,
				// tests), for kcidb-submit or any KCIDB client.
				if err := report.KCIDB(os.Stdout, r, kc); err != nil {
					return &exitError{2, fmt.Errorf("report: %v", err)}
				}
			case "html":
				// Reads events.jsonl and the metrics files of the run
				// directory; its links are relative to that directory.
				return report.HTML(os.Stdout, r, args[0])
			default:
				return &exitError{2, fmt.Errorf("report: --format %q: want text, json, ktap, junit, html or kcidb", format)}
			}
			return nil
		},
	}
	c.Flags().StringVar(&format, "format", "text", "text, json, ktap, junit, html (self-contained; links relative to RUN_DIR) or kcidb (KernelCI KCIDB v5 JSON)")
	c.Flags().StringVar(&kc.Origin, "kcidb-origin", report.DefaultKCIDBOrigin, "kcidb: the CI system's name in every id and origin ([a-z0-9_]+)")
	c.Flags().StringVar(&kc.LogURLBase, "kcidb-log-url", "", "kcidb: absolute URL where RUN_DIR is published; each test's log_url is it plus the console log's name")
	return c
}
