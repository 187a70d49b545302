package metrics

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Condition is a parsed expectation on one figure.
type Condition struct {
	Op    string
	Value float64
}

var condRE = regexp.MustCompile(`^(==|!=|>=|<=|>|<)?\s*(-?[0-9]+(\.[0-9]+)?)$`)

// ParseCondition reads "== 0", ">= 1", "3" (meaning == 3), "true", "false".
func ParseCondition(s string) (Condition, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "true":
		return Condition{"==", 1}, nil
	case "false":
		return Condition{"==", 0}, nil
	}
	m := condRE.FindStringSubmatch(s)
	if m == nil {
		return Condition{}, fmt.Errorf("condition %q: write e.g. \"== 0\", \">= 1\", \"<= 500\" or true", s)
	}
	op := m[1]
	if op == "" {
		op = "=="
	}
	v, _ := strconv.ParseFloat(m[2], 64)
	return Condition{op, v}, nil
}

// Holds says whether v satisfies the condition.
func (c Condition) Holds(v float64) bool {
	switch c.Op {
	case "==":
		return v == c.Value
	case "!=":
		return v != c.Value
	case ">=":
		return v >= c.Value
	case "<=":
		return v <= c.Value
	case ">":
		return v > c.Value
	case "<":
		return v < c.Value
	}
	return false
}

func (c Condition) String() string { return fmt.Sprintf("%s %g", c.Op, c.Value) }

// Evaluate checks expectations (figure -> condition, as a scenario writes
// them) against the figures, and returns one line per failure, in figure
// name order.
func Evaluate(expect map[string]string, f Figures) []string {
	names := make([]string, 0, len(expect))
	for k := range expect {
		names = append(names, k)
	}
	sort.Strings(names)
	var fails []string
	for _, name := range names {
		c, _ := ParseCondition(expect[name])
		v, ok := f.Value(name)
		if !ok {
			fails = append(fails, fmt.Sprintf("%s: no value in this run (expected %s)", name, c))
			continue
		}
		if !c.Holds(v) {
			shown := strconv.FormatFloat(v, 'g', 6, 64)
			if fig := Lookup(name); fig != nil {
				shown = fig.Format(v)
			}
			fails = append(fails, fmt.Sprintf("%s = %s, expected %s", name, shown, c))
		}
	}
	return fails
}

// FailedFigure is the figure a failure line of Evaluate is about ("" for a
// line Evaluate did not write), so that a report can mark that figure
// without a second copy of the line's format.
func FailedFigure(line string) string {
	name, _, ok := strings.Cut(line, " = ")
	if !ok {
		name, _, ok = strings.Cut(line, ": no value in this run")
	}
	if !ok || strings.ContainsAny(name, " \t") {
		return ""
	}
	return name
}
