package suite

import (
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/goccy/go-yaml"

	"oomlab/harness/internal/scenario"
)

// SetsFile is where the sets are, in the embedded assets and the tree.
const SetsFile = "scenarios/" + scenario.SetsFile

// Set is a named group of scenarios.
type Set struct {
	Name      string   `yaml:"name"`
	Doc       string   `yaml:"doc"`
	Scenarios []string `yaml:"scenarios"`
}

// Builtin is the scenarios and sets of an assets tree.
type Builtin struct {
	Scenarios map[string]*scenario.Scenario
	Sets      []Set // in file order
}

// LoadBuiltin reads scenarios/*.yaml and scenarios/sets.yaml of fsys.
func LoadBuiltin(fsys fs.FS) (*Builtin, error) {
	scs, err := scenario.LoadDir(fsys, "scenarios")
	if err != nil {
		return nil, err
	}
	data, err := fs.ReadFile(fsys, SetsFile)
	if err != nil {
		return nil, err
	}
	sets, err := ParseSets(SetsFile, data, scs)
	if err != nil {
		return nil, err
	}
	return &Builtin{Scenarios: scs, Sets: sets}, nil
}

// ParseSets reads a sets file: a list of sets, each naming scenarios that
// must exist, with names unique among sets and scenarios.
func ParseSets(file string, data []byte, scs map[string]*scenario.Scenario) ([]Set, error) {
	var sets []Set
	if err := yaml.UnmarshalWithOptions(data, &sets, yaml.DisallowUnknownField()); err != nil {
		return nil, fmt.Errorf("%s: %s", file, strings.ReplaceAll(yaml.FormatError(err, false, false), "\n", " "))
	}
	seen := map[string]bool{}
	for i, s := range sets {
		switch {
		case s.Name == "":
			return nil, fmt.Errorf("%s: set %d has no name", file, i+1)
		case seen[s.Name]:
			return nil, fmt.Errorf("%s: set %q is defined twice", file, s.Name)
		case scs[s.Name] != nil || scenario.Cases(scs, s.Name) != nil:
			return nil, fmt.Errorf("%s: set %q has the name of a scenario", file, s.Name)
		case len(s.Scenarios) == 0:
			return nil, fmt.Errorf("%s: set %q names no scenario", file, s.Name)
		}
		seen[s.Name] = true
		for _, n := range s.Scenarios {
			if scs[n] == nil && scenario.Cases(scs, n) == nil {
				return nil, fmt.Errorf("%s: set %q names %q, which is not a built-in scenario or sweep", file, s.Name, n)
			}
		}
	}
	return sets, nil
}

// Set returns the set of a name, or nil.
func (b *Builtin) Set(name string) *Set {
	i := slices.IndexFunc(b.Sets, func(s Set) bool { return s.Name == name })
	if i < 0 {
		return nil
	}
	return &b.Sets[i]
}

// Names are the built-in scenario names, sorted; a sweep is named once,
// by its base name, not by its cases.
func (b *Builtin) Names() []string {
	n := make([]string, 0, len(b.Scenarios))
	seen := map[string]bool{}
	for k, s := range b.Scenarios {
		if s.Sweep != "" {
			k = s.Sweep
		}
		if !seen[k] {
			seen[k] = true
			n = append(n, k)
		}
	}
	sort.Strings(n)
	return n
}

// Lookup is the scenarios of a name: a scenario, the cases of a sweep,
// or the cases of a sweep that a selector base[axis=label,...] picks.
func (b *Builtin) Lookup(name string) ([]*scenario.Scenario, error) {
	if s := b.Scenarios[name]; s != nil {
		return []*scenario.Scenario{s}, nil
	}
	return selectCases(b.Scenarios, name)
}

// selectCases picks the cases of sel from scs (nil, nil: no such sweep).
func selectCases(scs map[string]*scenario.Scenario, sel string) ([]*scenario.Scenario, error) {
	base, params, err := scenario.ParseSelector(sel)
	if err != nil {
		return nil, err
	}
	cases := scenario.Cases(scs, base)
	if cases == nil {
		return nil, nil
	}
	var out []*scenario.Scenario
	for _, c := range cases {
		if c.Matches(params) {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		var axes []string
		for _, p := range cases[0].Case {
			axes = append(axes, p.Name)
		}
		return nil, fmt.Errorf("%q selects no case of sweep %s (axes: %s; e.g. %s)", sel, base, strings.Join(axes, ", "), cases[0].Name)
	}
	return out, nil
}

// SetNames are the set names in file order.
func (b *Builtin) SetNames() []string {
	n := make([]string, len(b.Sets))
	for i, s := range b.Sets {
		n[i] = s.Name
	}
	return n
}

// Resolve turns scenario names, set names and scenario files (*.yaml) into
// scenarios, each once, in the order given.
func (b *Builtin) Resolve(args []string) ([]*scenario.Scenario, error) {
	var out []*scenario.Scenario
	seen := map[string]bool{}
	add := func(s *scenario.Scenario) {
		if !seen[s.Name] {
			seen[s.Name] = true
			out = append(out, s)
		}
	}
	for _, a := range args {
		switch {
		case strings.HasSuffix(a, ".yaml") || strings.HasSuffix(a, ".yml"):
			data, err := os.ReadFile(a)
			if err != nil {
				return nil, fmt.Errorf("scenario file: %v", err)
			}
			scs, err := scenario.ParseAll(a, data)
			if err != nil {
				return nil, err
			}
			for _, s := range scs {
				add(s)
			}
		case b.Set(a) != nil:
			for _, n := range b.Set(a).Scenarios {
				scs, _ := b.Lookup(n) // checked by ParseSets
				for _, s := range scs {
					add(s)
				}
			}
		default:
			scs, err := b.Lookup(a)
			if err != nil {
				return nil, err
			}
			if scs == nil {
				return nil, fmt.Errorf("unknown scenario %q (known: %s; sets: %s; a sweep's cases: sweep[axis=label,...]; or give a .yaml file)",
					a, strings.Join(b.Names(), ", "), strings.Join(b.SetNames(), ", "))
			}
			for _, s := range scs {
				add(s)
			}
		}
	}
	return out, nil
}
