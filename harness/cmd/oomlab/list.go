package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"oomlab"
	"oomlab/harness/internal/metrics"
	"oomlab/harness/internal/scenario"
	"oomlab/harness/internal/suite"
)

func newListCmd() *cobra.Command {
	var fields bool
	c := &cobra.Command{
		Use:   "list",
		Short: "list the built-in scenarios and sets (--fields: the figures expectations may use)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if fields {
				for _, k := range metrics.Names() {
					fig := metrics.Lookup(k)
					doc := fig.Doc
					if fig.Better != metrics.None {
						doc += " (" + fig.Better.String() + " is better)"
					}
					fmt.Printf("%-22s %s\n", k, doc)
				}
				for _, k := range metrics.FamilyNames() {
					fam, _ := metrics.FamilyOf(k + ":")
					fmt.Printf("%-22s %s\n", k+":<name>", fam.Doc)
				}
				fmt.Println("\nrequires: (a run whose kernel lacks one is skipped, with the reason)")
				for _, c := range scenario.Capabilities() {
					fmt.Printf("%-22s %s%s\n", c.Name, c.Doc, capabilityChecks(c))
				}
				fmt.Println("\ndetectors: (the stress phase waits for each, as long as the guest's values read after the setup make it take)")
				for _, d := range scenario.Detectors() {
					fmt.Printf("%-22s %s (reads %s)\n", d.Name, d.Doc, strings.Join(d.Paths, ", "))
				}
				return nil
			}
			b, err := builtin()
			if err != nil {
				return err
			}
			for _, n := range b.Names() {
				scs, _ := b.Lookup(n)
				desc := scs[0].Description
				if scs[0].Sweep != "" {
					desc = fmt.Sprintf("sweep of %d cases (%s): %s", len(scs), axesOf(scs[0]), desc)
				}
				fmt.Printf("%-28s %s\n", n, desc)
			}
			for _, s := range b.Sets {
				fmt.Printf("%-28s set: %s\n", s.Name, strings.Join(s.Scenarios, ", "))
			}
			return nil
		},
	}
	c.Flags().BoolVar(&fields, "fields", false, "list the figures expectations can name")
	return c
}

func newValidateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE.yaml...",
		Short: "check scenario files without running them",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			bad := 0
			for _, a := range args {
				data, err := os.ReadFile(a)
				switch {
				case err != nil:
				case filepath.Base(a) == scenario.SetsFile:
					// The sets file names built-in scenarios.
					var b *suite.Builtin
					if b, err = suite.LoadBuiltin(oomlab.Assets); err == nil {
						_, err = suite.ParseSets(a, data, b.Scenarios)
					}
				default:
					var scs []*scenario.Scenario
					if scs, err = scenario.ParseAll(a, data); err == nil && scs[0].Sweep != "" {
						fmt.Printf("%s: ok (sweep of %d cases)\n", a, len(scs))
						continue
					}
				}
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					bad++
					continue
				}
				fmt.Printf("%s: ok\n", a)
			}
			if bad > 0 {
				return &exitError{2, fmt.Errorf("%d of %d scenario files are invalid", bad, len(args))}
			}
			return nil
		},
	}
}

// axesOf names the axes of a sweep's case: "a, b, c".
func axesOf(s *scenario.Scenario) string {
	n := make([]string, len(s.Case))
	for i, p := range s.Case {
		n[i] = p.Name
	}
	return strings.Join(n, ", ")
}

// capabilityChecks says how a capability is checked: " [.config: CONFIG_X;
// guest: /path]".
func capabilityChecks(c scenario.Capability) string {
	var parts []string
	if len(c.Config) > 0 {
		parts = append(parts, ".config: CONFIG_"+strings.Join(c.Config, ", CONFIG_"))
	}
	if len(c.Paths) > 0 {
		parts = append(parts, "guest: "+strings.Join(c.Paths, ", "))
	}
	return " [" + strings.Join(parts, "; ") + "]"
}
