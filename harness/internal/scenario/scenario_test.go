package scenario

import (
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"oomlab"
	"oomlab/harness/internal/metrics"
	"oomlab/harness/internal/protocol"
)

const good = `name: t
guest:
  cpus: 4
  memory_mb: 512
  sysctls:
    kernel.sched_rt_runtime_us: "-1"
stressors:
  - name: hog
    command: memhog --mb 100
    count: 2
    policy: idle
  - name: rt
    command: rthog
    policy: fifo
    prio: 50
    cpus: "1"
    background: true
duration: 30s
expect:
  oom_kills: ">= 1"
  lockups: 0
  guest_alive: true
`

func TestParseGood(t *testing.T) {
	s, err := Parse("t.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if s.Guest.CPUs != 4 || s.Stressors[0].Count != 2 || s.Stressors[1].Count != 1 {
		t.Errorf("fields or defaults wrong: %+v", s)
	}
	if s.Duration.D().Seconds() != 30 || s.Timeout.D() <= s.Duration.D() {
		t.Errorf("duration %v timeout %v", s.Duration.D(), s.Timeout.D())
	}
	if len(s.Variants) != 2 || s.Repeats != 1 {
		t.Errorf("defaults: variants %v repeats %d", s.Variants, s.Repeats)
	}
	if s.Rounds != 1 || s.RoundSettle != s.Settle {
		t.Errorf("defaults: rounds %d round_settle %v settle %v", s.Rounds, s.RoundSettle.D(), s.Settle.D())
	}
}

func TestRoundsDefaults(t *testing.T) {
	s, err := Parse("t.yaml", []byte("name: t\nduration: 30s\nsettle: 3s\nrounds: 10\n"))
	if err != nil {
		t.Fatal(err)
	}
	// The default timeout covers every round at its longest, the settles
	// between them, and boot and teardown.
	if s.RoundSettle.D() != 3*time.Second || s.Timeout.D() != 120*time.Second+10*30*time.Second+9*3*time.Second {
		t.Errorf("round_settle %v timeout %v", s.RoundSettle.D(), s.Timeout.D())
	}
	s, err = Parse("t.yaml", []byte("name: t\nduration: 30s\nrounds: 10\nround_settle: 1s\ntimeout: 301s\n"))
	if err != nil {
		t.Fatalf("a timeout longer than rounds x duration: %v", err)
	}
	if s.RoundSettle.D() != time.Second || s.Settle.D() != 2*time.Second {
		t.Errorf("round_settle %v settle %v", s.RoundSettle.D(), s.Settle.D())
	}
}

// TestParseErrors checks that every bad input names file, line and the fix.
func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown field", "name: t\nguset:\n  cpus: 2\n", "t.yaml:2:"},
		{"cpus range", "name: t\nguest:\n  cpus: 999\n", "t.yaml:3:9: guest.cpus 999 out of range"},
		{"memory range", "name: t\nguest:\n  memory_mb: 1\n", "guest.memory_mb 1 out of range"},
		{"bad policy", "name: t\nstressors:\n  - command: x\n    policy: realtime\n", "t.yaml:4:13: stressors[0].policy \"realtime\""},
		{"fifo without prio", "name: t\nstressors:\n  - command: x\n    policy: fifo\n", "t.yaml:3:12: stressors[0].prio 0: fifo/rr need 1..99"},
		{"prio out of range", "name: t\nstressors:\n  - command: x\n    policy: rr\n    prio: 100\n", "t.yaml:5:11: stressors[0].prio 100: fifo/rr need 1..99"},
		{"prio without rt", "name: t\nstressors:\n  - command: x\n    policy: idle\n    prio: 5\n", "t.yaml:5:11: stressors[0].prio 5: only policy fifo or rr has a priority"},
		{"bad cpu list", "name: t\nstressors:\n  - command: x\n    cpus: 3-1\n", "t.yaml:4:11: stressors[0].cpus \"3-1\": bad CPU range"},
		{"cpu not in guest", "name: t\nguest:\n  cpus: 2\nstressors:\n  - command: x\n    cpus: 0,2\n", "t.yaml:6:11: stressors[0].cpus \"0,2\": CPU 2, but the guest has 2 vCPUs (0..1)"},
		{"oom_score_adj range", "name: t\nstressors:\n  - command: x\n    oom_score_adj: -1001\n", "t.yaml:4:20: stressors[0].oom_score_adj -1001 out of range -1000..1000"},
		{"nice range", "name: t\nstressors:\n  - command: x\n    nice: 20\n", "t.yaml:4:11: stressors[0].nice 20 out of range -20..19"},
		{"relative cgroup", "name: t\nstressors:\n  - command: x\n    cgroup: victim\n", "t.yaml:4:13: stressors[0].cgroup \"victim\": want an absolute directory"},
		{"stressor unknown field", "name: t\nstressors:\n  - command: x\n    policyy: idle\n", "t.yaml:4:"},
		{"empty command", "name: t\nstressors:\n  - name: x\n", "command is empty"},
		{"unknown figure", "name: t\nexpect:\n  kils: 1\n", "t.yaml:3:9: expect: unknown figure \"kils\""},
		{"bad condition", "name: t\nexpect:\n  lockups: about zero\n", "expect.lockups: condition"},
		{"bad duration", "name: t\nduration: soon\n", "not a duration"},
		{"timeout too short", "name: t\nduration: 60s\ntimeout: 10s\n", "must be longer than duration"},
		{"timeout too short for rounds", "name: t\nduration: 30s\nrounds: 10\ntimeout: 150s\n", "t.yaml:4:10: timeout 2m30s is too short for 10 rounds of duration 30s (5m0s"},
		{"rounds range", "name: t\nrounds: -1\n", "t.yaml:2:9: rounds -1 out of range 1..1000"},
		{"round_settle negative", "name: t\nround_settle: -1s\n", "t.yaml:2:15: round_settle -1s must not be negative"},
		{"stop_when reaped", "name: t\nstop_when:\n  oom_reaped: -1\n", "t.yaml:3:15: stop_when.oom_reaped must be >= 0"},
		{"bad name", "name: Big Name\n", "t.yaml:1:7: name \"Big Name\""},
		{"bad variant", "name: t\nvariants: [fast]\n", "variant \"fast\""},
		{"malformed", "name: [t\n", "t.yaml:"},
		{"bad variant expectation", "name: t\nexpect_variant:\n  fast:\n    lockups: 0\n", "expect_variant: variant \"fast\""},
		{"bad figure in variant", "name: t\nexpect_variant:\n  patched:\n    speed: 1\n", "expect_variant.patched: unknown figure \"speed\""},
		{"bad sysctl", "name: t\nguest:\n  sysctls:\n    Foo: 1\n", "write it as kernel.name"},
		{"bad prefix variant", "name: t\nvariants: [\"patched:0\"]\n", "variant \"patched:0\""},
		{"duplicate stressor", "name: t\nstressors:\n  - command: memhog\n  - command: memhog --mb 3\n", "t.yaml:4:12: stressors[1].name \"memhog\" is used twice"},
		{"setup at", "name: t\nsetup:\n  - command: true\n    at: 3s\n", "'at' is for actions"},
		{"setup unknown field", "name: t\nsetup:\n  - comand: true\n", "t.yaml:3:"},
		{"setup variant", "name: t\nsetup:\n  - command: true\n    variants: [\"patched:2\"]\n", "variant \"patched:2\" is not in variants"},
		{"action late", "name: t\nduration: 10s\nactions:\n  - at: 20s\n    command: true\n", "t.yaml:4:"},
		{"probe name", "name: t\nprobes:\n  - name: Hits\n    command: cat x\n", "probes[0].name \"Hits\""},
		{"probe twice", "name: t\nprobes:\n  - {name: a, command: x}\n  - {name: a, command: y}\n", "used twice"},
		{"figure family", "name: t\nexpect:\n  slain:victim: 1\n", "unknown figure family \"slain\""},
		{"figure stressor", "name: t\nstressors:\n  - {name: hog, command: memhog}\nexpect:\n  killed:hgo: 1\n", "no stressor named \"hgo\""},
		{"figure probe", "name: t\nexpect:\n  probe:hits: 1\n", "no probe named \"hits\""},
		{"figure comm", "name: t\nexpect:\n  left:averyveryverylongname: 0\n", "1..15 characters"},
		{"latency not timing-sensitive", "name: t\nexpect:\n  lockups: 0\n  kill_to_reaped_max_ms: \"<= 100\"\n", "t.yaml:4:26: kill_to_reaped_max_ms is a latency: add timing_sensitive: true"},
		{"latency per variant", "name: t\nexpect_variant:\n  patched:\n    oom_to_freed_p95_ms: \"<= 1000\"\n", "oom_to_freed_p95_ms is a latency: add timing_sensitive: true"},
		{"latency key figure", "name: t\nkey_figure: oom_to_freed_p95_ms\n", "t.yaml:2:13: oom_to_freed_p95_ms is a latency"},
		{"timing_sensitive not a bool", "name: t\ntiming_sensitive: often\n", "t.yaml:2:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(c.yaml))
			if err == nil {
				t.Fatalf("no error for %q", c.yaml)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

func TestEvaluate(t *testing.T) {
	s, err := Parse("t.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	f := metrics.Figures{OOMKills: 0, Lockups: 2, GuestAlive: true, ByKind: map[string]int{}}
	fails := metrics.Evaluate(s.Expectations("baseline"), f)
	if len(fails) != 2 {
		t.Fatalf("want 2 failures (kills, lockups), got %v", fails)
	}
	s.ExpectVariant = map[string]map[string]string{"patched": {"lockups": ">= 5"}}
	if fails := metrics.Evaluate(s.Expectations("patched"), f); len(fails) != 2 || !strings.Contains(fails[0], "lockups = 2, expected >= 5") {
		t.Errorf("variant override not applied: %v", fails)
	}
	f.OOMKills, f.Lockups = 3, 0
	if fails := metrics.Evaluate(s.Expectations("baseline"), f); len(fails) != 0 {
		t.Errorf("want no failures, got %v", fails)
	}
}

// TestBuiltinScenarios checks that every shipped scenario parses and that
// the runner's command for a stressor carries its scheduling settings.
func TestBuiltinScenarios(t *testing.T) {
	all, err := LoadDir(oomlab.Assets, "scenarios")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"smoke", "idle"} {
		if all[n] == nil {
			t.Errorf("built-in scenario %s missing", n)
		}
	}
	files, _ := os.ReadDir("../../../scenarios")
	loaded := map[string]bool{}
	for _, sc := range all {
		loaded[sc.File] = true
	}
	if len(files) != len(loaded)+1 { // and sets.yaml
		t.Errorf("%d files in scenarios/, %d loaded", len(files), len(loaded))
	}
	// The sweep: every case of its grid, each a scenario of its own.
	cases := Cases(all, "tetsuo-sweep")
	if len(cases) != 16 || cases[15].Name != "tetsuo-sweep[rt_hogs=2,victim_policy=normal,fair_server=off,cpus=4]" ||
		cases[15].Guest.CPUs != 4 || !strings.HasSuffix(cases[15].Stressors[1].Command, "--hogs 2 --prio 50 --fair-server-runtime 0") ||
		!strings.HasSuffix(cases[15].Stressors[0].Command, "--spin --nice-only") || cases[15].KeyFigure != "oom_to_freed_p95_ms" {
		t.Errorf("tetsuo-sweep: %d cases, last %+v", len(cases), cases[len(cases)-1])
	}
	// Alone under --jobs: the scenarios whose figures are latencies or
	// races; the functional ones share the host.
	var alone []string
	for _, sc := range all {
		if sc.TimingSensitive && sc.Sweep == "" {
			alone = append(alone, sc.Name)
		}
	}
	sort.Strings(alone)
	if want := "detector-hardlockup detector-selftest exit-mmap-starved memcg-storm oom-lock-hold robust-futex-waiter robust-futex-waiter-starved rt-idle-handoff shmem-victim silent-hang suspend-with-victim tetsuo-rt-idle"; strings.Join(alone, " ") != want {
		t.Errorf("timing-sensitive: %v, want %s", alone, want)
	}
	if !cases[0].TimingSensitive {
		t.Error("tetsuo-sweep's cases are not timing-sensitive")
	}
	for _, sc := range all {
		for _, st := range sc.Stressors {
			if err := st.Spawn.Validate(); err != nil {
				t.Errorf("%s: stressor %s: %v", sc.File, st.Name, err)
			}
		}
	}
}

// TestStressorSpawn checks that a stressor's YAML fields land in its
// protocol.Spawn and make the command line the agent decodes.
func TestStressorSpawn(t *testing.T) {
	s, err := Parse("t.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	rt := s.Stressors[1]
	want := protocol.Spawn{Policy: "fifo", Prio: 50, CPUs: "1"}
	if !reflect.DeepEqual(rt.Spawn, want) {
		t.Errorf("stressor rt: Spawn %+v, want %+v", rt.Spawn, want)
	}
	if s.Stressors[0].Policy != "idle" || s.Stressors[0].Prio != 0 {
		t.Errorf("stressor hog: Spawn %+v", s.Stressors[0].Spawn)
	}
	if cmd := rt.Spawn.Command(rt.Command); cmd != "run --policy fifo --prio 50 --cpus 1 --oom-score-adj 0 -- rthog" {
		t.Errorf("command line = %q", cmd)
	}
}

func TestStepsProbesFigures(t *testing.T) {
	src := `name: t
variants: [baseline, "patched:3", patched]
setup:
  - mkdir /x
  - command: write /sys/kernel/debug/oom/exit_mmap_idle 1
    variants: ["patched:3", patched]
    may_fail: true
actions:
  - at: 3s
    command: write /x/freezer.state FROZEN
stressors:
  - command: memhog --mb 10
  - name: victim
    command: threadhog
probes:
  - name: hits
    command: cat /sys/kernel/debug/oom/exit_mmap_hits
  - name: handed
    command: cat /proc/vmstat
    field: oom_handed_over
    variants: [patched]
expect:
  killed:victim: 1
  left:threadhog: 0
expect_variant:
  "patched:3":
    probe:hits: ">= 1"
`
	s, err := Parse("t.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Setup) != 2 || s.Setup[0].Command != "mkdir /x" || !s.Setup[1].MayFail || s.Setup[1].RunsOn("baseline") || !s.Setup[0].RunsOn("baseline") {
		t.Errorf("setup = %+v", s.Setup)
	}
	if len(s.Actions) != 1 || s.Actions[0].At.D().Seconds() != 3 {
		t.Errorf("actions = %+v", s.Actions)
	}
	if s.Stressors[0].Name != "memhog" {
		t.Errorf("default stressor name %q", s.Stressors[0].Name)
	}
	if s.Probes[1].RunsOn("patched:3") || !s.Probes[0].RunsOn("baseline") {
		t.Errorf("probe variants wrong")
	}
	f := metrics.Compute(metrics.Facts{
		Left: map[string]int{"threadhog": 1}, Stressors: s.StressorNames(),
		Exits:  []metrics.Exit{{Name: "victim", Signal: "KILL"}, {Name: "memhog", ExitCode: 0}},
		Probes: map[string]float64{"hits": 0},
	})
	fails := metrics.Evaluate(s.Expectations("patched:3"), f)
	if len(fails) != 2 || !strings.Contains(fails[0], "left:threadhog = 1") || !strings.Contains(fails[1], "probe:hits = 0") {
		t.Errorf("fails = %q", fails)
	}
	f.Left = nil
	if fails := metrics.Evaluate(s.Expectations("baseline"), f); len(fails) != 1 || !strings.Contains(fails[0], "left:threadhog: no value") {
		t.Errorf("no census must be no value: %q", fails)
	}
}

func TestParseProbe(t *testing.T) {
	vmstat := "nr_free_pages 1234\noom_kill 3\noom_handed_over 2\n"
	for _, c := range []struct {
		out, field string
		want       float64
		ok         bool
	}{
		{"42\n", "", 42, true},
		{" 1.5 ", "", 1.5, true},
		{vmstat, "oom_kill", 3, true},
		{vmstat, "oom_handed_over", 2, true},
		{vmstat, "oom", 0, false}, // a prefix of a name is not the name
		{"MemFree:   81234 kB\n", "MemFree", 81234, true},
		{"a=7\n", "a", 7, true},
		{vmstat, "oom_reaped", 0, false},
		{"lots\n", "", 0, false},
		{"", "", 0, false},
	} {
		v, err := ParseProbe(c.out, c.field)
		if (err == nil) != c.ok || v != c.want {
			t.Errorf("ParseProbe(%q, %q) = %g, %v", c.out, c.field, v, err)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("error not one line: %q", err)
		}
	}
}
