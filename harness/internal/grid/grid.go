// Package grid renders the cases of a sweep (a scenario file with a
// matrix, see scenario.ParseAll) as a table per sweep and variant: one
// row per combination of every axis but the last, one column per label of
// the last axis, each cell the verdict and the sweep's key figure.
package grid

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"oomlab/harness/internal/metrics"
	"oomlab/harness/internal/results"
)

// Grid is one sweep on one variant.
type Grid struct {
	Sweep     string
	Variant   string
	KeyFigure string     // "" when the sweep names none
	Axes      []string   // every axis, the last one across
	Rows      [][]string // the labels of the axes but the last, in case order
	Columns   []string   // the labels of the last axis, in case order
	Cells     [][]Cell   // [row][column]
}

// Cell is the guest runs of one case on one variant.
type Cell struct {
	Runs    int             // 0: the case did not run
	Verdict results.Verdict // the worst of the runs
	Key     string          // the key figure: its median over the runs that have it, formatted ("" if none)
}

// String is "PASS 2150 ms", "FAIL", or "-" for a case that did not run.
func (c Cell) String() string {
	if c.Runs == 0 {
		return "-"
	}
	s := strings.ToUpper(c.Verdict.String())
	if c.Key != "" {
		s += " " + c.Key
	}
	return s
}

// Grids are the grids of a run: per sweep in the order its first case
// ran, per variant in the order it ran.
func Grids(rec *results.Run) []Grid {
	var out []Grid
	index := map[[2]string]int{}
	type group struct {
		rows, cols map[string]int
		runs       map[[2]string][]*results.Result
	}
	groups := map[int]*group{}
	for _, r := range rec.Results {
		if r.Sweep == "" || len(r.Case) == 0 {
			continue
		}
		k := [2]string{r.Sweep, r.Variant}
		i, ok := index[k]
		if !ok {
			i = len(out)
			index[k] = i
			g := Grid{Sweep: r.Sweep, Variant: r.Variant, KeyFigure: r.KeyFigure}
			for _, p := range r.Case {
				g.Axes = append(g.Axes, p.Name)
			}
			out = append(out, g)
			groups[i] = &group{rows: map[string]int{}, cols: map[string]int{}, runs: map[[2]string][]*results.Result{}}
		}
		g, gr := &out[i], groups[i]
		if len(r.Case) != len(g.Axes) {
			continue // another version of the sweep: not this grid
		}
		var labels []string
		for _, p := range r.Case {
			labels = append(labels, p.Value)
		}
		row, col := strings.Join(labels[:len(labels)-1], "\x00"), labels[len(labels)-1]
		if _, ok := gr.rows[row]; !ok {
			gr.rows[row] = len(g.Rows)
			g.Rows = append(g.Rows, labels[:len(labels)-1])
		}
		if _, ok := gr.cols[col]; !ok {
			gr.cols[col] = len(g.Columns)
			g.Columns = append(g.Columns, col)
		}
		gr.runs[[2]string{row, col}] = append(gr.runs[[2]string{row, col}], r)
	}
	for i := range out {
		g, gr := &out[i], groups[i]
		g.Cells = make([][]Cell, len(g.Rows))
		for ri, labels := range g.Rows {
			g.Cells[ri] = make([]Cell, len(g.Columns))
			for ci, col := range g.Columns {
				g.Cells[ri][ci] = cell(gr.runs[[2]string{strings.Join(labels, "\x00"), col}], g.KeyFigure)
			}
		}
	}
	return out
}

// cell sums up the runs of one case.
func cell(runs []*results.Result, key string) Cell {
	c := Cell{Runs: len(runs)}
	var vals []float64
	for i, r := range runs {
		if i == 0 {
			c.Verdict = r.Verdict
		}
		c.Verdict = c.Verdict.Worst(r.Verdict)
		if v, ok := value(key, &r.Figures); ok {
			vals = append(vals, v)
		}
	}
	if len(vals) > 0 {
		sort.Float64s(vals)
		c.Key = format(key, vals[(len(vals)-1)/2])
	}
	return c
}

// value reads a figure of the table or of a family ("probe:x").
func value(name string, f *metrics.Figures) (float64, bool) {
	if name == "" {
		return 0, false
	}
	if fig := metrics.Lookup(name); fig != nil {
		return fig.Value(f)
	}
	if fam, n := metrics.FamilyOf(name); fam != nil {
		return fam.Value(f, n)
	}
	return 0, false
}

func format(name string, v float64) string {
	fig := metrics.Lookup(name)
	switch {
	case fig == nil:
		return fmt.Sprintf("%g", v)
	case fig.Unit == metrics.Millis:
		return fmt.Sprintf("%.0f ms", v)
	case fig.Unit == metrics.Ratio:
		return fmt.Sprintf("%.2f", v)
	}
	return fig.Format(v)
}

// Table writes every grid of rec, or nothing when rec has no sweep.
func Table(w io.Writer, rec *results.Run) {
	for i, g := range Grids(rec) {
		if i > 0 {
			fmt.Fprintln(w)
		}
		key := "verdict"
		if g.KeyFigure != "" {
			key += " and " + g.KeyFigure
		}
		fmt.Fprintf(w, "GRID %s on %s (cells: %s)\n", g.Sweep, g.Variant, key)
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		last := g.Axes[len(g.Axes)-1]
		head := slices.Clone(g.Axes[:len(g.Axes)-1])
		for _, c := range g.Columns {
			head = append(head, last+"="+c)
		}
		fmt.Fprintln(tw, strings.Join(head, "\t"))
		for ri, labels := range g.Rows {
			row := slices.Clone(labels)
			for _, c := range g.Cells[ri] {
				row = append(row, c.String())
			}
			fmt.Fprintln(tw, strings.Join(row, "\t"))
		}
		tw.Flush()
	}
}
