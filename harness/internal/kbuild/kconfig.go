package kbuild

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// ConfigValue is what a fragment or a .config says about one symbol. "n"
// stands for "# CONFIG_X is not set" so that requests and results compare
// as plain strings.
type ConfigValue = string

// request is one symbol assignment from a fragment; Fragment remembers which
// fragment won so errors can point at the file the user has to edit.
type request struct {
	Symbol   string // without the CONFIG_ prefix
	Value    ConfigValue
	Fragment string
	Line     int
	// Optional: the tree may lack the symbol, or drop it (see optional.go);
	// Why is the reason the fragment gives.
	Optional bool
	Why      string
}

var (
	reSet   = regexp.MustCompile(`^CONFIG_([A-Za-z0-9_]+)=(.*)$`)
	reUnset = regexp.MustCompile(`^# CONFIG_([A-Za-z0-9_]+) is not set$`)
)

// parseConfigLine recognises the two assignment forms Kconfig writes; ok is
// false for comments and blank lines.
func parseConfigLine(line string) (sym, val string, ok bool) {
	line = strings.TrimSpace(line)
	if m := reSet.FindStringSubmatch(line); m != nil {
		return m[1], m[2], true
	}
	if m := reUnset.FindStringSubmatch(line); m != nil {
		return m[1], "n", true
	}
	return "", "", false
}

// ParseConfig reads a .config (or fragment) into symbol -> value, with "n"
// for "is not set". Later assignments win, as in Kconfig itself.
func ParseConfig(data []byte) map[string]ConfigValue {
	out := map[string]ConfigValue{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if sym, val, ok := parseConfigLine(sc.Text()); ok {
			out[sym] = val
		}
	}
	return out
}

// mergeFragments returns the requested symbols, later fragments overriding
// earlier ones, in first-seen order (stable output for logs and tests).
// Anything that is neither an assignment, a comment nor blank is rejected:
// a typo like "CONFIG_FOO y" would otherwise be silently ignored.
func mergeFragments(frags []Fragment) ([]request, error) {
	idx := map[string]int{}
	var reqs []request
	for _, f := range frags {
		sc := bufio.NewScanner(bytes.NewReader(f.Data))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		n := 0
		inOptional, sectionWhy := false, ""
		for sc.Scan() {
			n++
			line := strings.TrimSpace(sc.Text())
			if opt, ok, why := section(line); ok {
				inOptional, sectionWhy = opt, why
				continue
			}
			assign, comment := splitTrailing(line)
			sym, val, ok := parseConfigLine(assign)
			if !ok {
				if line == "" || strings.HasPrefix(line, "#") {
					continue
				}
				return nil, fmt.Errorf("kconfig fragment %s:%d: cannot parse %q (want CONFIG_X=value or # CONFIG_X is not set)", f.Name, n, line)
			}
			if val == "" {
				return nil, fmt.Errorf("kconfig fragment %s:%d: CONFIG_%s has an empty value (use \"\" for an empty string or # CONFIG_%s is not set)", f.Name, n, sym, sym)
			}
			r := request{Symbol: sym, Value: val, Fragment: f.Name, Line: n, Optional: inOptional, Why: sectionWhy}
			if opt, set, why := marker(comment); set {
				r.Optional, r.Why = opt, why
				if !opt {
					r.Why = ""
				}
			}
			if i, seen := idx[sym]; seen {
				reqs[i] = r
				continue
			}
			idx[sym] = len(reqs)
			reqs = append(reqs, r)
		}
	}
	return reqs, nil
}

// applyRequests rewrites a base .config (tinyconfig output) with the
// requested values: their old lines are removed and the requests appended
// in order, as merge_config.sh does. Appending matters for choices: Kconfig
// lets the last "=y" among a choice's members win, so a requested
// CONFIG_KERNEL_GZIP=y must come after tinyconfig's CONFIG_KERNEL_XZ=y.
// olddefconfig then resolves dependencies and defaults.
func applyRequests(base []byte, reqs []request) []byte {
	want := map[string]bool{}
	for _, r := range reqs {
		want[r.Symbol] = true
	}
	var out bytes.Buffer
	for _, line := range strings.SplitAfter(string(base), "\n") {
		if line == "" {
			continue
		}
		if sym, _, ok := parseConfigLine(line); ok && want[sym] {
			continue
		}
		out.WriteString(strings.TrimRight(line, "\n") + "\n")
	}
	out.WriteString("# oomlab fragments\n")
	for _, r := range reqs {
		if r.Value == "n" {
			out.WriteString("# CONFIG_" + r.Symbol + " is not set\n")
		} else {
			out.WriteString("CONFIG_" + r.Symbol + "=" + r.Value + "\n")
		}
	}
	return out.Bytes()
}

// dropped is a requested assignment that did not survive olddefconfig.
type dropped struct {
	request
	Got ConfigValue // "n" when absent or not set
}

// checkRequests compares the requests with the final .config.
func checkRequests(reqs []request, final map[string]ConfigValue) []dropped {
	var out []dropped
	for _, r := range reqs {
		got, ok := final[r.Symbol]
		if !ok {
			got = "n"
		}
		if got != r.Value {
			out = append(out, dropped{request: r, Got: got})
		}
	}
	return out
}

// KconfigDB is a light-weight index of Kconfig files: which symbols exist,
// their "depends on" (including enclosing if/menu/choice conditions) and who
// selects them. It is not a Kconfig evaluator; it only has to explain why a
// requested value was dropped, the way menuconfig's help screen does.
type KconfigDB struct {
	Defined    map[string][]string // symbol -> "file:line" of definitions
	DependsOn  map[string][]string // symbol -> dependency expressions
	SelectedBy map[string][]string // symbol -> symbols that select/imply it
	InChoice   map[string]bool     // symbol is a member of a choice block
}

var (
	reConfig  = regexp.MustCompile(`^(?:menu)?config\s+([A-Za-z0-9_]+)\s*$`)
	reDepends = regexp.MustCompile(`^depends\s+on\s+(.+)$`)
	reSelect  = regexp.MustCompile(`^(select|imply)\s+([A-Za-z0-9_]+)(?:\s+if\s+(.+))?$`)
	reIf      = regexp.MustCompile(`^if\s+(.+)$`)
	reIdent   = regexp.MustCompile(`[A-Za-z_][A-Za-z0-9_]*`)
)

// LoadKconfig indexes the Kconfig* files under root. Other architectures'
// directories are skipped so that symbols only they define count as unknown
// and x86 definitions are the ones reported.
func LoadKconfig(root, arch string) (*KconfigDB, error) {
	db := &KconfigDB{Defined: map[string][]string{}, DependsOn: map[string][]string{}, SelectedBy: map[string][]string{}, InChoice: map[string]bool{}}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			if rel == "." {
				return nil
			}
			base := d.Name()
			if strings.HasPrefix(base, ".") || rel == "tools" || rel == "Documentation" {
				return filepath.SkipDir
			}
			if filepath.Dir(rel) == "arch" && base != arch {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasPrefix(d.Name(), "Kconfig") || !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		db.parse(filepath.ToSlash(rel), data)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading Kconfig files under %s: %w", root, err)
	}
	return db, nil
}

// indentWidth measures leading whitespace with tabs at 8 columns, which is
// how Kconfig help text ends: at the first line indented no deeper than the
// "help" keyword.
func indentWidth(s string) int {
	w := 0
	for _, c := range s {
		switch c {
		case ' ':
			w++
		case '\t':
			w = (w/8 + 1) * 8
		default:
			return w
		}
	}
	return w
}

func (db *KconfigDB) parse(file string, data []byte) {
	type block struct {
		kind string // "if", "menu", "choice"
		deps []string
	}
	var stack []*block
	var cur string      // symbol whose attributes we are reading
	var curBlock *block // menu/choice whose attributes we are reading
	helpIndent := -1

	lines := strings.Split(string(data), "\n")
	for i := 0; i < len(lines); i++ {
		raw := lines[i]
		// Join continuation lines.
		for strings.HasSuffix(raw, "\\") && i+1 < len(lines) {
			i++
			raw = strings.TrimRight(strings.TrimSuffix(raw, "\\"), " \t") + " " + strings.TrimSpace(lines[i])
		}
		if helpIndent >= 0 {
			if strings.TrimSpace(raw) == "" || indentWidth(raw) > helpIndent {
				continue
			}
			helpIndent = -1
		}
		line := strings.TrimSpace(raw)
		if j := strings.Index(line, "#"); j >= 0 && !strings.Contains(line[:j], "\"") {
			line = strings.TrimSpace(line[:j])
		}
		if line == "" {
			continue
		}
		enclosing := func() []string {
			var deps []string
			for _, b := range stack {
				deps = append(deps, b.deps...)
			}
			return deps
		}
		switch {
		case reConfig.MatchString(line):
			cur = reConfig.FindStringSubmatch(line)[1]
			curBlock = nil
			db.Defined[cur] = append(db.Defined[cur], fmt.Sprintf("%s:%d", file, i+1))
			for _, d := range enclosing() {
				db.addDep(cur, d)
			}
			if len(stack) > 0 && stack[len(stack)-1].kind == "choice" {
				db.InChoice[cur] = true
			}
		case line == "help" || line == "---help---":
			helpIndent = indentWidth(raw)
		case strings.HasPrefix(line, "menu ") || line == "choice" || strings.HasPrefix(line, "choice "):
			kind := "menu"
			if strings.HasPrefix(line, "choice") {
				kind = "choice"
			}
			b := &block{kind: kind}
			stack = append(stack, b)
			cur, curBlock = "", b
		case reIf.MatchString(line):
			stack = append(stack, &block{kind: "if", deps: []string{reIf.FindStringSubmatch(line)[1]}})
			cur, curBlock = "", nil
		case line == "endif" || line == "endmenu" || line == "endchoice":
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			cur, curBlock = "", nil
		case strings.HasPrefix(line, "comment ") || strings.HasPrefix(line, "source ") ||
			strings.HasPrefix(line, "osource ") || strings.HasPrefix(line, "rsource ") ||
			strings.HasPrefix(line, "orsource ") || strings.HasPrefix(line, "mainmenu "):
			cur, curBlock = "", nil
		case reDepends.MatchString(line):
			expr := strings.TrimSpace(reDepends.FindStringSubmatch(line)[1])
			switch {
			case cur != "":
				db.addDep(cur, expr)
			case curBlock != nil:
				curBlock.deps = append(curBlock.deps, expr)
			}
		case reSelect.MatchString(line) && cur != "":
			m := reSelect.FindStringSubmatch(line)
			by := cur
			if m[3] != "" {
				by += " if " + strings.TrimSpace(m[3])
			}
			db.SelectedBy[m[2]] = appendUnique(db.SelectedBy[m[2]], by)
		}
	}
}

func (db *KconfigDB) addDep(sym, expr string) {
	db.DependsOn[sym] = appendUnique(db.DependsOn[sym], expr)
}

func appendUnique(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// annotate renders a dependency expression with each symbol's final value,
// e.g. "DEBUG_KERNEL [=y] && PERF_EVENTS [=n]", like menuconfig does.
func annotate(expr string, final map[string]ConfigValue) string {
	// Leave quoted strings alone ("$(ARCH)" = "x86").
	var out strings.Builder
	inQuote := false
	last := 0
	for i := 0; i < len(expr); i++ {
		if expr[i] == '"' {
			if !inQuote {
				out.WriteString(annotateIdents(expr[last:i], final))
				last = i
			} else {
				out.WriteString(expr[last : i+1])
				last = i + 1
			}
			inQuote = !inQuote
		}
	}
	if inQuote {
		out.WriteString(expr[last:])
	} else {
		out.WriteString(annotateIdents(expr[last:], final))
	}
	return out.String()
}

func annotateIdents(s string, final map[string]ConfigValue) string {
	return reIdent.ReplaceAllStringFunc(s, func(id string) string {
		if id == "y" || id == "n" || id == "m" || strings.HasPrefix(id, "CONFIG_") {
			return id
		}
		v, ok := final[id]
		if !ok {
			v = "n"
		}
		return id + " [=" + v + "]"
	})
}

// explain builds the human-readable reason for each dropped request.
func (db *KconfigDB) explain(d []dropped, final map[string]ConfigValue) []string {
	var out []string
	for _, x := range d {
		msg := fmt.Sprintf("CONFIG_%s=%s (from %s:%d) ended up as %s", x.Symbol, x.Value, x.Fragment, x.Line, showValue(x.Got))
		var why []string
		if x.Value == "n" {
			if sel := db.SelectedBy[x.Symbol]; len(sel) > 0 {
				why = append(why, "selected by: "+strings.Join(sel, ", "))
			} else {
				why = append(why, "not user-settable (no prompt, or forced by its default)")
			}
		} else {
			if db.InChoice[x.Symbol] {
				why = append(why, "it is a choice member and another member won (set that one to n, or request this one in a later fragment)")
			}
			deps := db.DependsOn[x.Symbol]
			if len(deps) > 0 {
				var parts []string
				for _, e := range deps {
					parts = append(parts, "("+annotate(e, final)+")")
				}
				why = append(why, "depends on: "+strings.Join(parts, " && "))
			} else if !db.InChoice[x.Symbol] {
				why = append(why, "it has no 'depends on': it may be prompt-less, outside its range, or its menu's condition is unmet")
			}
		}
		out = append(out, msg+"; "+strings.Join(why, "; "))
	}
	sort.Strings(out)
	return out
}

func showValue(v ConfigValue) string {
	if v == "n" {
		return "is not set"
	}
	return "=" + v
}

// unknownSymbols lists requested symbols that no Kconfig file defines.
func (db *KconfigDB) unknownSymbols(reqs []request) []request {
	var out []request
	for _, r := range reqs {
		if _, ok := db.Defined[r.Symbol]; !ok {
			out = append(out, r)
		}
	}
	return out
}
