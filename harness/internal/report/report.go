// Package report renders a run's record (package results) for people and
// CI: the terminal tables, the comparison of variants, KTAP, JUnit, HTML
// and KernelCI's KCIDB.
package report

import (
	"bytes"
	"fmt"
	"io"
	"oomlab/harness/internal/atomicfile"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"oomlab/harness/internal/metrics"
	"oomlab/harness/internal/results"
)

// Save writes the record (run.json, events.jsonl) and the KTAP, JUnit
// and HTML reports (report.html, read from the files just written and the
// metrics files of dir) atomically into dir. It is called after every guest run, so a
// killed oomlab leaves a readable partial run.
func Save(dir string, r *results.Run) error {
	if err := results.Save(dir, r); err != nil {
		return err
	}
	var kt, ju bytes.Buffer
	KTAP(&kt, r)
	if err := JUnit(&ju, r); err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, "report.ktap"), kt.Bytes(), 0o644); err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, "junit.xml"), ju.Bytes(), 0o644); err != nil {
		return err
	}
	page, err := renderHTML(r, dir)
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, "report.html"), page, 0o644)
}

// Table prints one row per guest run and the failures under it.
func Table(w io.Writer, r *results.Run) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tVARIANT\tREP\tVERDICT\tBOOT s\tOOM EV\tKILLS\tKILLS/EV\tREAPED\tHANDED\tREAP FAIL\tOOM->FREED p50 ms\tLOCKUPS\tALIVE")
	for _, res := range r.Results {
		f := res.Figures
		p50 := "-"
		if len(f.OOMToFreedMs) > 0 {
			p50 = fmt.Sprintf("%.0f", metrics.Quantile(f.OOMToFreedMs, 0.5))
		}
		kpe := "-"
		if f.OOMEvents > 0 {
			kpe = fmt.Sprintf("%.2f", f.KillsPerOOMEvent)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%.1f\t%d\t%d\t%s\t%d\t%d\t%d\t%s\t%d\t%v\n",
			res.Scenario, res.Variant, res.Repeat, strings.ToUpper(res.Verdict.String()), f.BootSeconds,
			f.OOMEvents, f.OOMKills, kpe, f.Reaped, f.HandedOver, f.ReapFailed, p50, f.Lockups, f.GuestAlive)
	}
	tw.Flush()
	for _, res := range r.Results {
		for _, msg := range res.Failures {
			fmt.Fprintf(w, "  FAIL %s/%s#%d: %s\n", res.Scenario, res.Variant, res.Repeat, msg)
		}
		if res.Error != "" {
			fmt.Fprintf(w, "  ERROR %s/%s#%d: %s\n", res.Scenario, res.Variant, res.Repeat, res.Error)
		}
		if res.SkipReason != "" {
			fmt.Fprintf(w, "  SKIP %s/%s#%d: %s\n", res.Scenario, res.Variant, res.Repeat, res.SkipReason)
		}
	}
}
