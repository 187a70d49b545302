package kbuild

import (
	"fmt"
	"regexp"
	"strings"
)

// Optional symbols.
//
// A fragment names two kinds of symbols: the ones the lab cannot work
// without (SMP, the serial console, the initramfs, devtmpfs, proc and sys,
// cgroup v2 and memcg, futexes, the network the agent answers on, printk
// times, ...) and the ones it uses when the tree has them: knobs that came
// or went between kernel versions (SLUB_TINY, HID_SUPPORT, the buddy
// hard-lockup detector), debug interfaces, trimming that only makes the
// build shorter. The second kind is marked in the fragment itself:
//
//	CONFIG_HARDLOCKUP_DETECTOR_PREFER_BUDDY=y  # optional: 6.6+, the buddy detector
//	# CONFIG_SLUB_TINY is not set  # optional
//
// or, for a run of lines, a section:
//
//	# [optional] trimming: absent symbols cost nothing
//	# CONFIG_VT is not set
//	...
//	# [required]
//
// A section lasts to the next "# [required]" (or "# [optional]") line or
// the end of its fragment; a trailing "# required" marks one line of an
// optional section required again. What follows the marker is the
// reason, repeated in the message. The marking belongs to the assignment
// that wins: a later fragment that sets the same symbol decides, also
// whether it is optional (--kconfig fragments are read the same way).
//
// An optional symbol no Kconfig file of the tree defines is left out with
// one line saying so; one that the tree defines but olddefconfig drops
// (an unmet dependency) likewise. A required one fails the build, naming
// its fragment and line. Whether a scenario can run on the kernel that
// results is then the scenario's business (its requires: list).

var (
	// reMarker is a trailing marker after an assignment.
	reMarker = regexp.MustCompile(`^(optional|required)\b\s*(?:\((.*)\)|[:;,-]?\s*(.*))$`)
	// reSection starts (or ends) an optional section.
	reSection = regexp.MustCompile(`^#\s*\[(optional|required)\]\s*(.*)$`)
)

// splitTrailing splits a fragment line into the assignment and its
// trailing comment ("" when none). A '#' inside a quoted string value is
// part of the value; a line that is itself a comment ("# CONFIG_X is not
// set # optional") keeps its leading '#'.
func splitTrailing(line string) (assign, comment string) {
	start := 0
	if strings.HasPrefix(line, "#") {
		start = 1
	}
	inQuote := false
	for i := start; i < len(line); i++ {
		switch line[i] {
		case '\\':
			if inQuote {
				i++
			}
		case '"':
			inQuote = !inQuote
		case '#':
			if !inQuote {
				return strings.TrimSpace(line[:i]), strings.TrimSpace(line[i+1:])
			}
		}
	}
	return line, ""
}

// marker reads a trailing comment: whether it marks the line optional or
// required (set is false for any other comment), and the reason.
func marker(comment string) (optional, set bool, why string) {
	m := reMarker.FindStringSubmatch(comment)
	if m == nil {
		return false, false, ""
	}
	return m[1] == "optional", true, strings.TrimSpace(m[2] + m[3])
}

// section reads a section line ("# [optional] reason").
func section(line string) (optional, ok bool, why string) {
	m := reSection.FindStringSubmatch(line)
	if m == nil {
		return false, false, ""
	}
	return m[1] == "optional", true, strings.TrimSpace(m[2])
}

// where is a request's place: "kconfig/base.config:15".
func (r request) where() string { return fmt.Sprintf("%s:%d", r.Fragment, r.Line) }

// optionalNote is the reason in parentheses, or "".
func (r request) optionalNote() string {
	if r.Why == "" {
		return ""
	}
	return " (" + r.Why + ")"
}

// resolveUnknown splits the requests by whether the tree defines their
// symbol: the ones to apply, one line for each optional symbol left out,
// and an error naming every required one the tree lacks.
func resolveUnknown(db *KconfigDB, tree string, reqs []request) (keep []request, notes []string, err error) {
	var missing []string
	for _, r := range reqs {
		if _, ok := db.Defined[r.Symbol]; ok {
			keep = append(keep, r)
			continue
		}
		if r.Optional {
			notes = append(notes, fmt.Sprintf("kconfig: skipping optional CONFIG_%s (%s): no Kconfig file in this tree defines it%s", r.Symbol, r.where(), r.optionalNote()))
			continue
		}
		missing = append(missing, fmt.Sprintf("CONFIG_%s (%s)", r.Symbol, r.where()))
	}
	if len(missing) > 0 {
		return nil, notes, fmt.Errorf("kconfig fragments name required symbols no Kconfig file in %s defines: %s; remove or rename them, or mark them optional (a trailing \"# optional\", see kconfig/base.config)", tree, strings.Join(missing, ", "))
	}
	return keep, notes, nil
}

// splitDropped separates the requests olddefconfig dropped into the
// optional ones (one line each, from explain) and the required ones.
func splitDropped(db *KconfigDB, d []dropped, final map[string]ConfigValue) (notes []string, required []dropped) {
	for _, x := range d {
		if !x.Optional {
			required = append(required, x)
			continue
		}
		why := db.explain([]dropped{x}, final)[0]
		notes = append(notes, "kconfig: optional "+why+x.optionalNote())
	}
	return notes, required
}

// requiredOnly is the requests that must survive.
func requiredOnly(reqs []request) []request {
	var out []request
	for _, r := range reqs {
		if !r.Optional {
			out = append(out, r)
		}
	}
	return out
}

// fragmentKey is what of a fragment the kernel depends on: its
// assignments, one a line, without comments, blank lines and markers
// (cache keys and object directory names hash this).
func fragmentKey(f Fragment) []byte {
	var b strings.Builder
	for _, line := range strings.Split(string(f.Data), "\n") {
		assign, _ := splitTrailing(strings.TrimSpace(line))
		if sym, val, ok := parseConfigLine(assign); ok {
			if val == "n" {
				b.WriteString("# CONFIG_" + sym + " is not set\n")
			} else {
				b.WriteString("CONFIG_" + sym + "=" + val + "\n")
			}
		}
	}
	return []byte(b.String())
}
