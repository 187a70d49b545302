package scenario

import (
	"strings"
	"testing"
	"testing/fstest"
)

const sweepYAML = `# a sweep
name: sw
matrix:
  hogs: [1, 2]
  policy:
    idle: ""
    normal: "--nice-only"
  cpus: [2, 4]
guest:
  cpus: ${cpus}
  memory_mb: 256
  sysctls:
    kernel.x: "${hogs}"
setup:
  - echo ${hogs}
stressors:
  - name: victim
    command: idlevictim --mb 10 ${policy}
  - name: rt
    command: rthog --cpu 1
    count: ${hogs}
duration: 10s
key_figure: oom_kills
`

func TestParseAllMatrix(t *testing.T) {
	scs, err := ParseAll("sw.yaml", []byte(sweepYAML))
	if err != nil {
		t.Fatal(err)
	}
	if len(scs) != 8 {
		t.Fatalf("%d cases, want 8", len(scs))
	}
	want := []string{
		"sw[hogs=1,policy=idle,cpus=2]", "sw[hogs=1,policy=idle,cpus=4]",
		"sw[hogs=1,policy=normal,cpus=2]", "sw[hogs=1,policy=normal,cpus=4]",
		"sw[hogs=2,policy=idle,cpus=2]", "sw[hogs=2,policy=idle,cpus=4]",
		"sw[hogs=2,policy=normal,cpus=2]", "sw[hogs=2,policy=normal,cpus=4]",
	}
	for i, s := range scs {
		if s.Name != want[i] || s.Sweep != "sw" || s.CaseIndex != i || s.KeyFigure != "oom_kills" {
			t.Errorf("case %d: %q sweep %q index %d", i, s.Name, s.Sweep, s.CaseIndex)
		}
	}
	c := scs[7] // hogs=2, normal, cpus=4
	if c.Guest.CPUs != 4 || c.Stressors[1].Count != 2 || c.Stressors[0].Command != "idlevictim --mb 10 --nice-only" ||
		c.Guest.Sysctls["kernel.x"] != "2" || c.Setup[0].Command != "echo 2" {
		t.Errorf("substitution: %+v %+v %v %v", c.Guest, c.Stressors, c.Guest.Sysctls, c.Setup)
	}
	if c := scs[0]; c.Guest.CPUs != 2 || c.Stressors[1].Count != 1 || c.Stressors[0].Command != "idlevictim --mb 10" {
		t.Errorf("case 0: %+v %+v", c.Guest, c.Stressors)
	}
	if _, err := Parse("sw.yaml", []byte(sweepYAML)); err == nil {
		t.Error("Parse of a sweep: no error")
	}
	got := Cases(map[string]*Scenario{scs[3].Name: scs[3], scs[1].Name: scs[1], "x": {Name: "x"}}, "sw")
	if len(got) != 2 || got[0] != scs[1] || got[1] != scs[3] {
		t.Errorf("Cases: %v", got)
	}
	if !scs[7].Matches([]Param{{Name: "policy", Value: "normal"}, {Name: "cpus", Value: "4"}}) || scs[6].Matches([]Param{{Name: "cpus", Value: "4"}}) {
		t.Error("Matches")
	}
}

func TestParseAllMatrixErrors(t *testing.T) {
	cases := []struct{ name, old, new, want string }{
		{"unknown variable", "command: rthog --cpu 1\n", "command: rthog --cpu ${cpu}\n", "sw.yaml:20:26: unknown variable ${cpu} (matrix axes: hogs, policy, cpus)"},
		{"unused axis", " ${policy}\n", "\n", "sw.yaml:5:3: matrix: axis \"policy\" is not used"},
		{"variable in the name", "name: sw\n", "name: sw${hogs}\n", "sw.yaml:2:9: ${hogs} in name: variables go only in"},
		{"variable in expectations", "key_figure: oom_kills\n", "key_figure: oom_kills\nexpect:\n  oom_kills: \">= ${hogs}\"\n", "sw.yaml:25:18: ${hogs} in expect.oom_kills: variables go only in"},
		{"bad label", "  cpus: [2, 4]\n", "  cpus: [2, \"a b\"]\n", "sw.yaml:8:3: matrix.cpus: label \"a b\""},
		{"bad value", "normal: \"--nice-only\"", "normal: \"a#b\"", "sw.yaml:5:3: matrix.policy: value \"a#b\""},
		{"duplicate label", "  cpus: [2, 4]\n", "  cpus: [2, 2]\n", "sw.yaml:8:3: matrix.cpus: label \"2\" is used twice"},
		{"empty axis", "  cpus: [2, 4]\n", "  cpus: []\n", "sw.yaml:8:3: matrix.cpus has no values"},
		{"bad axis name", "  cpus: [2, 4]\n", "  Cpus: [2, 4]\n", "sw.yaml:8:3: matrix: axis \"Cpus\""},
		{"case invalid", "  cpus: [2, 4]\n", "  cpus: [2, 100]\n", "sw.yaml:10:9: case [hogs=1,policy=idle,cpus=100]: guest.cpus 100 out of range 1..64"},
		{"no matrix", "matrix:\n  hogs: [1, 2]\n  policy:\n    idle: \"\"\n    normal: \"--nice-only\"\n  cpus: [2, 4]\n", "", "sw.yaml:4:9: unknown variable ${cpus}: the file has no matrix"},
		{"bad key figure", "key_figure: oom_kills", "key_figure: nope", "unknown figure \"nope\""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(sweepYAML, tc.old, tc.new, 1)
			if src == sweepYAML {
				t.Fatal("edit did not apply")
			}
			_, err := ParseAll("sw.yaml", []byte(src))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestParseSelector(t *testing.T) {
	base, sel, err := ParseSelector("sw[cpus=2,policy=idle]")
	if err != nil || base != "sw" || len(sel) != 2 || sel[1] != (Param{Name: "policy", Value: "idle"}) {
		t.Errorf("%q %v %v", base, sel, err)
	}
	if b, sel, err := ParseSelector("smoke"); b != "smoke" || sel != nil || err != nil {
		t.Errorf("plain name: %q %v %v", b, sel, err)
	}
	for _, bad := range []string{"sw[cpus]", "sw[cpus=2", "sw[=2]"} {
		if _, _, err := ParseSelector(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestLoadDirSweepNames(t *testing.T) {
	plain := "name: sw\nstressors:\n  - command: memhog\n"
	for _, names := range [][2]string{{"a.yaml", "b.yaml"}, {"b.yaml", "a.yaml"}} {
		fsys := fstest.MapFS{
			"d/" + names[0]: {Data: []byte(sweepYAML)},
			"d/" + names[1]: {Data: []byte(plain)},
		}
		if _, err := LoadDir(fsys, "d"); err == nil || !strings.Contains(err.Error(), `scenario name "sw" is also used by`) {
			t.Errorf("sweep in %s, scenario of its name in %s: %v", names[0], names[1], err)
		}
	}
	all, err := LoadDir(fstest.MapFS{"d/a.yaml": {Data: []byte(sweepYAML)}}, "d")
	if err != nil || len(all) != 8 || all["sw[hogs=2,policy=idle,cpus=4]"] == nil {
		t.Errorf("%d loaded, %v", len(all), err)
	}
}
