package protocol

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func intp(n int) *int { return &n }

func TestValidate(t *testing.T) {
	good := []Spawn{
		{},
		{Policy: "fifo", Prio: 1},
		{Policy: "rr", Prio: 99, CPUs: "0,2-3", OOMScoreAdj: -1000, Nice: intp(-20), Cgroup: "/sys/fs/cgroup/x"},
		{Policy: "idle", OOMScoreAdj: 1000, Nice: intp(19)},
		{Policy: "other"}, {Policy: "batch"},
	}
	for _, s := range good {
		if err := s.Validate(); err != nil {
			t.Errorf("%+v: %v", s, err)
		}
	}
	bad := []struct {
		s     Spawn
		field string
		msg   string
	}{
		{Spawn{Policy: "deadline"}, "policy", `policy "deadline": want other, fifo, rr, batch or idle`},
		{Spawn{Policy: "FIFO", Prio: 5}, "policy", `policy "FIFO": want other, fifo, rr, batch or idle`},
		{Spawn{Policy: "fifo"}, "prio", "prio 0: fifo/rr need 1..99"},
		{Spawn{Policy: "rr", Prio: 100}, "prio", "prio 100: fifo/rr need 1..99"},
		{Spawn{Policy: "idle", Prio: 3}, "prio", "prio 3: only policy fifo or rr has a priority"},
		{Spawn{Prio: 3}, "prio", "prio 3: only policy fifo or rr has a priority"},
		{Spawn{CPUs: "3-1"}, "cpus", `cpus "3-1": bad CPU range "3-1"`},
		{Spawn{CPUs: "a"}, "cpus", `cpus "a": bad CPU "a"`},
		{Spawn{CPUs: " "}, "cpus", `cpus " ": empty CPU list`},
		{Spawn{CPUs: "1024"}, "cpus", `cpus "1024": bad CPU range "1024"`},
		{Spawn{OOMScoreAdj: 1001}, "oom_score_adj", "oom_score_adj 1001 out of range -1000..1000"},
		{Spawn{OOMScoreAdj: -1001}, "oom_score_adj", "oom_score_adj -1001 out of range -1000..1000"},
		{Spawn{Nice: intp(20)}, "nice", "nice 20 out of range -20..19"},
		{Spawn{Cgroup: "victim"}, "cgroup", `cgroup "victim": want an absolute directory such as /sys/fs/cgroup/victim`},
	}
	for _, tc := range bad {
		err := tc.s.Validate()
		var fe *FieldError
		if !errors.As(err, &fe) {
			t.Errorf("%+v: got %v, want a *FieldError", tc.s, err)
			continue
		}
		if fe.Field != tc.field || err.Error() != tc.msg {
			t.Errorf("%+v: got field %q, %q; want %q, %q", tc.s, fe.Field, err, tc.field, tc.msg)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%+v: error is not one line: %q", tc.s, err)
		}
	}
}

// The host encodes a Spawn with Command, the agent splits the line and
// decodes it with ParseRunArgs: what arrives is what was sent.
func TestRunRoundTrip(t *testing.T) {
	for _, s := range []Spawn{
		{},
		{Policy: "fifo", Prio: 50, CPUs: "1", OOMScoreAdj: 0},
		{Policy: "idle", CPUs: "0,2-3", OOMScoreAdj: 1000, Nice: intp(-5), Cgroup: "/sys/fs/cgroup/with space"},
		{Policy: "rr", Prio: 99, OOMScoreAdj: -1000},
		{Nice: intp(0)},
	} {
		line := s.Command("memhog --mb 'a b' 10")
		words, err := SplitWords(line)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if words[0] != CmdRun {
			t.Fatalf("%q does not start with %q", line, CmdRun)
		}
		got, rest, err := ParseRunArgs(words[1:])
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if !reflect.DeepEqual(got, s) {
			t.Errorf("%q decoded to %+v, want %+v", line, got, s)
		}
		if want := []string{"memhog", "--mb", "a b", "10"}; !reflect.DeepEqual(rest, want) {
			t.Errorf("%q: command %q, want %q", line, rest, want)
		}
	}
	// The runner's stressor line, byte for byte as before the move.
	s := Spawn{Policy: "fifo", Prio: 50, CPUs: "1"}
	if got, want := s.Command("rthog --cpu 1"), "run --policy fifo --prio 50 --cpus 1 --oom-score-adj 0 -- rthog --cpu 1"; got != want {
		t.Errorf("Command = %q, want %q", got, want)
	}
}

func TestParseRunArgs(t *testing.T) {
	o, rest, err := ParseRunArgs([]string{"--policy", "fifo", "--prio=50", "--cpus", "0,2-3",
		"--oom-score-adj", "500", "--nice", "-5", "--cgroup", "/sys/fs/cgroup/x", "--", "cmd", "--policy", "a"})
	if err != nil {
		t.Fatal(err)
	}
	want := Spawn{Policy: "fifo", Prio: 50, CPUs: "0,2-3", OOMScoreAdj: 500, Nice: intp(-5), Cgroup: "/sys/fs/cgroup/x"}
	if !reflect.DeepEqual(o, want) {
		t.Errorf("options = %+v, want %+v", o, want)
	}
	if !reflect.DeepEqual(rest, []string{"cmd", "--policy", "a"}) {
		t.Errorf("rest = %q", rest)
	}
	// Defaults: oom_score_adj 0 always rendered, RT prio defaults to 1.
	o, rest, err = ParseRunArgs([]string{"cmd", "arg"})
	if err != nil || !reflect.DeepEqual(rest, []string{"cmd", "arg"}) {
		t.Fatal(rest, err)
	}
	if a := o.Args(); !reflect.DeepEqual(a, []string{"--oom-score-adj", "0"}) {
		t.Errorf("default Args() = %q", a)
	}
	if o, _, _ = ParseRunArgs([]string{"--policy", "rr", "--", "x"}); o.Prio != DefaultRTPrio {
		t.Errorf("default rr prio = %d", o.Prio)
	}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--policy", "deadline", "x"}, `policy "deadline": want`},
		{[]string{"--policy", "fifo", "--prio", "100", "x"}, "prio 100"},
		{[]string{"--policy", "idle", "--prio", "3", "x"}, "prio 3"},
		{[]string{"--oom-score-adj", "1001", "x"}, "oom_score_adj 1001"},
		{[]string{"--oom-score-adj", "lots", "x"}, `--oom-score-adj "lots": not a number`},
		{[]string{"--nice", "20", "x"}, "nice 20"},
		{[]string{"--cpus", "3-1", "x"}, "cpus"},
		{[]string{"--bogus", "1", "x"}, "unknown option --bogus"},
		{[]string{"--policy"}, "--policy needs a value"},
	} {
		if _, _, err := ParseRunArgs(tc.args); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("ParseRunArgs(%q) = %v, want an error with %q", tc.args, err, tc.msg)
		}
	}
}

func TestPolicyNumber(t *testing.T) {
	for name, want := range map[string]uint{"other": 0, "fifo": 1, "rr": 2, "batch": 3, "idle": 5} {
		if n, ok := PolicyNumber(name); !ok || n != want || PolicyName(n) != name {
			t.Errorf("PolicyNumber(%q) = %d %v, want %d", name, n, ok, want)
		}
	}
	for _, name := range []string{"", "deadline", "7"} {
		if _, ok := PolicyNumber(name); ok {
			t.Errorf("PolicyNumber(%q) ok", name)
		}
	}
	if got := PolicyName(7); got != "7" {
		t.Errorf("PolicyName(7) = %q", got)
	}
}

func TestCommands(t *testing.T) {
	words, err := SplitWords(KmsgCommand("oomlab: stress start smoke-baseline-0"))
	if err != nil || !reflect.DeepEqual(words, []string{"kmsg", "oomlab: stress start smoke-baseline-0"}) {
		t.Errorf("KmsgCommand split to %q, %v", words, err)
	}
	if got := MetricsCommand(250); got != "metrics --interval-ms 250" {
		t.Errorf("MetricsCommand = %q", got)
	}
}
