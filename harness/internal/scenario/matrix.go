package scenario

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"oomlab/harness/internal/results"
)

// A sweep is a scenario file with a matrix: a mapping of axes, each a list
// of values or a mapping of labels to values,
//
//	matrix:
//	  rt_hogs: [1, 2]                  # label = value
//	  fair_server:                     # label: value
//	    on: ""
//	    off: "--fair-server-runtime 0"
//
// expanded into one scenario (a case) per combination, the first axis
// varying slowest. "${axis}" in a value of guest, setup, actions,
// stressors or probes is replaced by the axis's value before the case is
// parsed, so it may stand for a number (count, cpus, memory_mb) as well
// as a part of a command. A case is named base[axis=label,...] in axis
// order. Every axis must be used and every variable must be an axis: both
// are file:line:col errors, as is a variable anywhere else (a name,
// expectations, a key). The expanded case is validated like any scenario;
// its errors name the case.

// MaxCases bounds the product of a matrix.
const MaxCases = 1024

// Param is one axis of a case and its label.
type Param = results.Param

// axis is one axis of a matrix, in file order.
type axis struct {
	name   string
	labels []string
	values []string
	line   int
	col    int
}

// ref is one "${name}" in the file.
type ref struct {
	name  string
	start int // byte offset of "${"
	end   int // byte offset after "}"
}

var (
	axisRE  = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	labelRE = regexp.MustCompile(`^[A-Za-z0-9_.:+-]+$`)
	// valueRE: what may replace a variable without changing the YAML
	// around it (no quotes, comments, flow or block indicators).
	valueRE = regexp.MustCompile(`^[A-Za-z0-9 _.,/=+@%-]*$`)
	varRE   = regexp.MustCompile(`\$\{([^}]*)\}`)
)

// substitutable are the parts of a scenario whose values may hold
// variables, as YAML path prefixes.
var substitutable = []string{"$.guest.", "$.setup[", "$.actions[", "$.stressors[", "$.probes["}

// ParseAll reads one scenario file: the scenario, or the cases of its
// matrix in expansion order.
func ParseAll(file string, data []byte) ([]*Scenario, error) {
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, yamlError(file, err)
	}
	axes, err := readMatrix(file, f)
	if err != nil {
		return nil, err
	}
	refs, err := findRefs(file, data, f, axes)
	if err != nil {
		return nil, err
	}
	if len(axes) == 0 {
		s, err := parse(file, data)
		if err != nil {
			return nil, err
		}
		return []*Scenario{s}, nil
	}
	var out []*Scenario
	for i, c := range product(axes) {
		vals := map[string]string{}
		for j, a := range axes {
			vals[a.name] = a.values[c[j]]
		}
		params := make([]Param, len(axes))
		for j, a := range axes {
			params[j] = Param{Name: a.name, Value: a.labels[c[j]]}
		}
		name := caseName("", params)
		s, err := parse(file, substitute(data, refs, vals))
		if err != nil {
			if e, ok := err.(*Error); ok {
				e.Msg = "case " + name + ": " + e.Msg
			}
			return nil, err
		}
		s.Sweep, s.Case, s.CaseIndex = s.Name, params, i
		s.Name = caseName(s.Name, params)
		out = append(out, s)
	}
	return out, nil
}

// caseName is base[a=x,b=y].
func caseName(base string, params []Param) string {
	kv := make([]string, len(params))
	for i, p := range params {
		kv[i] = p.Name + "=" + p.Value
	}
	return base + "[" + strings.Join(kv, ",") + "]"
}

// Matches says whether the case has every axis=label of sel; a scenario
// that is no case matches nothing.
func (s *Scenario) Matches(sel []Param) bool {
	if s.Sweep == "" {
		return false
	}
	for _, p := range sel {
		ok := false
		for _, c := range s.Case {
			if c.Name == p.Name && c.Value == p.Value {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// ParseSelector splits "base[a=x,b=y]" (or "base") into the base name and
// the axis=label pairs.
func ParseSelector(s string) (string, []Param, error) {
	base, rest, ok := strings.Cut(s, "[")
	if !ok {
		return s, nil, nil
	}
	if !strings.HasSuffix(rest, "]") {
		return "", nil, fmt.Errorf("%q: a case selector is base[axis=label,...]", s)
	}
	var out []Param
	for _, kv := range strings.Split(strings.TrimSuffix(rest, "]"), ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || v == "" {
			return "", nil, fmt.Errorf("%q: %q is not axis=label", s, kv)
		}
		out = append(out, Param{Name: k, Value: v})
	}
	return base, out, nil
}

// product is every combination of value indexes, the first axis slowest.
func product(axes []axis) [][]int {
	out := [][]int{{}}
	for _, a := range axes {
		var next [][]int
		for _, c := range out {
			for j := range a.values {
				next = append(next, append(append([]int(nil), c...), j))
			}
		}
		out = next
	}
	return out
}

// readMatrix reads the top-level matrix of f, if any, and checks it.
func readMatrix(file string, f *ast.File) ([]axis, error) {
	if len(f.Docs) == 0 || f.Docs[0].Body == nil {
		return nil, nil
	}
	var mv *ast.MappingValueNode
	for _, v := range topLevel(f.Docs[0].Body) {
		if keyText(v.Key) == "matrix" {
			mv = v
		}
	}
	if mv == nil {
		return nil, nil
	}
	errAt := func(n ast.Node, format string, a ...any) error {
		t := n.GetToken()
		return &Error{File: file, Line: t.Position.Line, Column: t.Position.Column, Msg: fmt.Sprintf(format, a...)}
	}
	entries := mappingValues(mv.Value)
	if entries == nil {
		return nil, errAt(mv.Value, "matrix: want a mapping of axes, each a list of values or a mapping of labels to values")
	}
	var axes []axis
	total := 1
	seen := map[string]bool{}
	for _, e := range entries {
		name := keyText(e.Key)
		a := axis{name: name, line: e.Key.GetToken().Position.Line, col: e.Key.GetToken().Position.Column}
		switch {
		case !axisRE.MatchString(name):
			return nil, errAt(e.Key, "matrix: axis %q: use lower-case letters, digits and '_'", name)
		case seen[name]:
			return nil, errAt(e.Key, "matrix: axis %q is defined twice", name)
		}
		seen[name] = true
		switch v := e.Value.(type) {
		case *ast.SequenceNode:
			for _, n := range v.Values {
				s, ok := scalar(n)
				if !ok {
					return nil, errAt(n, "matrix.%s: a value is a number or a string", name)
				}
				a.labels, a.values = append(a.labels, s), append(a.values, s)
			}
		default:
			kvs := mappingValues(v)
			if kvs == nil {
				return nil, errAt(e.Value, "matrix.%s: want a list of values ([1, 2]) or a mapping of labels to values", name)
			}
			for _, kv := range kvs {
				s, ok := scalar(kv.Value)
				if !ok {
					return nil, errAt(kv.Value, "matrix.%s.%s: a value is a number or a string", name, keyText(kv.Key))
				}
				a.labels, a.values = append(a.labels, keyText(kv.Key)), append(a.values, s)
			}
		}
		if len(a.values) == 0 {
			return nil, errAt(e.Key, "matrix.%s has no values", name)
		}
		labels := map[string]bool{}
		for i, l := range a.labels {
			switch {
			case !labelRE.MatchString(l):
				return nil, errAt(e.Key, "matrix.%s: label %q: use letters, digits and _.:+- (it goes into the case name)", name, l)
			case labels[l]:
				return nil, errAt(e.Key, "matrix.%s: label %q is used twice", name, l)
			case !valueRE.MatchString(a.values[i]):
				return nil, errAt(e.Key, "matrix.%s: value %q: use letters, digits, spaces and _.,/=+@%%- (it is put into the YAML as it is)", name, a.values[i])
			}
			labels[l] = true
		}
		total *= len(a.values)
		if total > MaxCases {
			return nil, errAt(e.Key, "matrix: more than %d cases", MaxCases)
		}
		axes = append(axes, a)
	}
	if len(axes) == 0 {
		return nil, errAt(mv, "matrix: no axes")
	}
	return axes, nil
}

// topLevel is the key: value pairs of a document's top mapping.
func topLevel(n ast.Node) []*ast.MappingValueNode {
	return mappingValues(n)
}

// mappingValues is the pairs of a mapping node (nil if n is none).
func mappingValues(n ast.Node) []*ast.MappingValueNode {
	switch m := n.(type) {
	case *ast.MappingNode:
		return m.Values
	case *ast.MappingValueNode:
		return []*ast.MappingValueNode{m}
	}
	return nil
}

// keyText is the text of a mapping key, unquoted.
func keyText(n ast.Node) string {
	if s, ok := scalar(n); ok {
		return s
	}
	return n.String()
}

// scalar is the text of a scalar node.
func scalar(n ast.Node) (string, bool) {
	switch v := n.(type) {
	case *ast.StringNode:
		return v.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode:
		return v.GetToken().Value, true
	}
	return "", false
}

// findRefs finds every ${name} in the values of f and checks it: it must
// name an axis and be where variables may be; every axis must be used.
func findRefs(file string, data []byte, f *ast.File, axes []axis) ([]ref, error) {
	known := map[string]bool{}
	var names []string
	for _, a := range axes {
		known[a.name] = true
		names = append(names, a.name)
	}
	lineStart := []int{0}
	for i, b := range data {
		if b == '\n' {
			lineStart = append(lineStart, i+1)
		}
	}
	used := map[string]bool{}
	var refs []ref
	var firstErr error
	keys := map[ast.Node]bool{}
	v := visitor(func(n ast.Node) {
		if firstErr != nil {
			return
		}
		if mv, ok := n.(*ast.MappingValueNode); ok {
			keys[mv.Key] = true
			return
		}
		sn, ok := n.(*ast.StringNode)
		if !ok || !strings.Contains(sn.Value, "${") {
			return
		}
		t := sn.GetToken()
		if t.Position.Line < 1 || t.Position.Line > len(lineStart) {
			return
		}
		ls := lineStart[t.Position.Line-1]
		off := ls + byteCol(data[ls:], t.Position.Column-1)
		path := sn.GetPath()
		inMatrix := strings.HasPrefix(path, "$.matrix")
		for _, m := range varRE.FindAllStringSubmatch(sn.Value, -1) {
			i := strings.Index(string(data[off:]), m[0])
			if i < 0 {
				continue // an escaped form in a quoted string: left alone
			}
			r := ref{name: m[1], start: off + i, end: off + i + len(m[0])}
			off = r.end
			line, col := position0(data, lineStart, r.start)
			fail := func(format string, a ...any) {
				firstErr = &Error{File: file, Line: line, Column: col, Msg: fmt.Sprintf(format, a...)}
			}
			switch {
			case inMatrix:
				fail("matrix: a value cannot hold a variable (%s)", m[0])
			case len(axes) == 0:
				fail("unknown variable %s: the file has no matrix", m[0])
			case !known[m[1]]:
				fail("unknown variable %s (matrix axes: %s)", m[0], strings.Join(names, ", "))
			case keys[sn]:
				fail("%s in a key: variables go in values", m[0])
			case !allowed(path):
				fail("%s in %s: variables go only in guest, setup, actions, stressors and probes", m[0], strings.TrimPrefix(path, "$."))
			}
			if firstErr != nil {
				return
			}
			used[m[1]] = true
			refs = append(refs, r)
		}
	})
	for _, d := range f.Docs {
		ast.Walk(v, d)
	}
	if firstErr != nil {
		return nil, firstErr
	}
	sort.Slice(refs, func(i, j int) bool { return refs[i].start < refs[j].start })
	for _, a := range axes {
		if !used[a.name] {
			return nil, &Error{File: file, Line: a.line, Column: a.col, Msg: fmt.Sprintf("matrix: axis %q is not used (write ${%s} where it applies, or drop the axis)", a.name, a.name)}
		}
	}
	return refs, nil
}

func allowed(path string) bool {
	for _, p := range substitutable {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

// byteCol is the byte offset of rune column c (0-based) in line.
func byteCol(line []byte, c int) int {
	off := 0
	for i := 0; i < c && off < len(line); i++ {
		_, n := utf8.DecodeRune(line[off:])
		off += n
	}
	return off
}

// position0 is the 1-based line and column of byte offset off.
func position0(data []byte, lineStart []int, off int) (int, int) {
	line := 1
	for line < len(lineStart) && lineStart[line] <= off {
		line++
	}
	return line, utf8.RuneCount(data[lineStart[line-1]:off]) + 1
}

// substitute replaces every ref by its axis's value.
func substitute(data []byte, refs []ref, vals map[string]string) []byte {
	var b strings.Builder
	prev := 0
	for _, r := range refs {
		b.Write(data[prev:r.start])
		b.WriteString(vals[r.name])
		prev = r.end
	}
	b.Write(data[prev:])
	return []byte(b.String())
}

type visitor func(ast.Node)

func (v visitor) Visit(n ast.Node) ast.Visitor {
	v(n)
	return v
}
