package metrics

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// sampleFacts has something for every figure to read.
func sampleFacts(t *testing.T) Facts {
	return Facts{
		Events:     events(t),
		Boot:       2 * time.Second,
		Stress:     30 * time.Second,
		GuestAlive: true,
		Left:       map[string]int{"memhog": 1},
		Stressors:  []string{"victim"},
		Exits:      []Exit{{Name: "victim", Signal: "KILL"}},
		Probes:     map[string]float64{"hits": 2},
		WorseIf:    map[string]string{"oom_kills": "> 1"},
	}
}

// TestTable: every figure has a name, unit, doc and field, and a value
// from the sample facts; every JSON field of Figures is read by the table.
func TestTable(t *testing.T) {
	facts := sampleFacts(t)
	// kill_to_exit_max_ms needs an exit marker after a kill.
	facts.Events = append(facts.Events, scan(t, "[   10.900000] oomlab-agent: exit pid=70 comm=idlevictim signal=KILL\n")...)
	// The cost-side figures need the stressors' markers: a robust-mutex
	// waiter released after pid 70's kill, a bystander OOM round spanning
	// its reap at 12.3 s, a timed write.
	facts.Events = append(facts.Events, scan(t, ""+
		"[   10.050000] oomlab: mark robust_waiting pid=80 owner=70\n"+
		"[   10.700000] oomlab: mark robust_released pid=80 owner=70 result=owner_died\n"+
		"[   12.400000] oomlab: mark oom_round ms=250 killed=1 round=1\n"+
		"[   14.000000] oomlab: mark timed_write ms=15 errno=0\n")...)
	// The selftest families need a stressor that printed KTAP.
	facts.Exits = append(facts.Exits, Exit{Name: "test-kmem", ExitCode: 1,
		Output: "TAP version 13\n1..2\nnot ok 1 test_kmem_basic\nok 2 # SKIP test_percpu_basic\n"})
	f := Compute(facts)
	fields := map[string]bool{}
	seen := map[string]bool{}
	for _, fig := range Table {
		if fig.Name == "" || fig.Unit == "" || fig.Doc == "" || fig.Field == "" || fig.Value == nil || strings.Contains(fig.Doc, "\n") {
			t.Errorf("figure %+v lacks a name, unit, one-line doc, field or value", fig)
			continue
		}
		if seen[fig.Name] || strings.Contains(fig.Name, ":") {
			t.Errorf("figure %q twice, or with a colon", fig.Name)
		}
		seen[fig.Name] = true
		fields[fig.Field] = true
		if _, ok := fig.Value(&f); !ok {
			t.Errorf("figure %s has no value from the sample facts", fig.Name)
		}
		if v, ok := f.Value(fig.Name); !ok || v != must(fig.Value(&f)) {
			t.Errorf("Figures.Value(%q) does not read the table", fig.Name)
		}
	}
	for _, fam := range Families {
		if fam.Name == "" || fam.Doc == "" || fam.Field == "" || fam.Value == nil || fam.Members == nil {
			t.Errorf("family %+v lacks a name, doc, field, members or value", fam)
			continue
		}
		fields[fam.Field] = true
		members := fam.Members(&f)
		if len(members) == 0 {
			t.Errorf("family %s has no members in the sample facts", fam.Name)
		}
		for _, m := range members {
			if _, ok := f.Value(fam.Name + ":" + m); !ok {
				t.Errorf("%s:%s has no value", fam.Name, m)
			}
		}
	}
	typ := reflect.TypeOf(Figures{})
	for i := 0; i < typ.NumField(); i++ {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		if !fields[name] {
			t.Errorf("JSON field %s of Figures is read by no figure of the table", name)
		}
	}
	if v, _ := f.Value("boot_s"); v != 2 {
		t.Errorf("boot_s = %g", v)
	}
	if v, _ := f.Value("killed:victim"); v != 1 {
		t.Errorf("killed:victim = %g", v)
	}
	if v, _ := f.Value("probe:hits"); v != 2 {
		t.Errorf("probe:hits = %g", v)
	}
	if v, ok := f.Value("left:other"); !ok || v != 0 {
		t.Errorf("a name the census did not find must be 0: %g %v", v, ok)
	}
}

func must(v float64, _ bool) float64 { return v }

func TestSummaryFormat(t *testing.T) {
	f := Figures{OOMEvents: 1, BootSeconds: 1.234, GuestAlive: true}
	var parts []string
	for _, fig := range Summary() {
		v, _ := fig.Value(&f)
		parts = append(parts, fig.Name+"="+fig.Format(v))
	}
	want := "oom_events=1 oom_kills=0 reaped=0 handed_over=0 reap_failed=0 lockups=0 boot_s=1.23 guest_alive=true"
	if got := strings.Join(parts, " "); got != want {
		t.Errorf("summary\n got %s\nwant %s", got, want)
	}
}

func TestStressorFigures(t *testing.T) {
	m := stressorFigures([]string{"a", "b"}, []Exit{
		{Name: "a", Signal: "KILL"}, {Name: "a", Running: true}, {Name: "a", ExitCode: 0},
		{Name: "a", ExitCode: 3}, {Name: "a", Signal: "SEGV"},
	})
	for k, want := range map[string]float64{"killed:a": 1, "running:a": 1, "exited:a": 1, "failed:a": 1, "killed:b": 0, "exited:b": 0} {
		if m[k] != want {
			t.Errorf("%s = %g, want %g", k, m[k], want)
		}
	}
}

func TestConditions(t *testing.T) {
	cases := []struct {
		cond string
		v    float64
		want bool
	}{
		{"== 0", 0, true}, {"0", 1, false}, {">= 1", 1, true}, {">=1", 0, false},
		{"<= 500", 499.5, true}, {"< 2", 2, false}, {"> 0.5", 0.6, true}, {"!= 3", 3, false},
		{"true", 1, true}, {"false", 1, false},
	}
	for _, c := range cases {
		cond, err := ParseCondition(c.cond)
		if err != nil {
			t.Fatalf("%q: %v", c.cond, err)
		}
		if got := cond.Holds(c.v); got != c.want {
			t.Errorf("%q holds for %g: got %v", c.cond, c.v, got)
		}
	}
	if _, err := ParseCondition("lots"); err == nil {
		t.Error("'lots' parsed")
	}
}

func TestEvaluate(t *testing.T) {
	f := Figures{OOMKills: 0, Lockups: 2, GuestAlive: true, ByKind: map[string]int{}}
	exp := map[string]string{"oom_kills": ">= 1", "lockups": "== 0", "guest_alive": "true", "left:x": "0"}
	fails := Evaluate(exp, f)
	if len(fails) != 3 || fails[0] != "left:x: no value in this run (expected == 0)" || fails[1] != "lockups = 2, expected == 0" || fails[2] != "oom_kills = 0, expected >= 1" {
		t.Errorf("fails = %q", fails)
	}
	f.OOMKills, f.Lockups, f.Left = 3, 0, map[string]int{}
	if fails := Evaluate(exp, f); len(fails) != 0 {
		t.Errorf("want no failures, got %v", fails)
	}
}

// FailedFigure reads back the figure of every line Evaluate writes, and
// nothing from lines it does not write.
func TestFailedFigure(t *testing.T) {
	f := Figures{Lockups: 2, ByKind: map[string]int{}}
	exp := map[string]string{"lockups": "== 0", "left:x": "0", "oom_kills": ">= 1"}
	fails := Evaluate(exp, f)
	want := []string{"left:x", "lockups", "oom_kills"}
	if len(fails) != len(want) {
		t.Fatalf("fails = %q", fails)
	}
	for i, line := range fails {
		if got := FailedFigure(line); got != want[i] {
			t.Errorf("FailedFigure(%q) = %q, want %q", line, got, want[i])
		}
	}
	for _, line := range []string{"agent did not answer", "the guest ran out = of time", ""} {
		if got := FailedFigure(line); got != "" {
			t.Errorf("FailedFigure(%q) = %q, want \"\"", line, got)
		}
	}
}
