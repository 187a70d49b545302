package protocol

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"
)

func TestSplitWords(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"  true  ", []string{"true"}},
		{"sh -c 'kill -9 $$'", []string{"sh", "-c", "kill -9 $$"}},
		{`echo "a \"b\" \$c \x" d\ e`, []string{"echo", `a "b" $c \x`, "d e"}},
		{`a''b "" ''`, []string{"ab", "", ""}},
		{"a\\\nb\tc\nd", []string{"ab", "c", "d"}},
		{`'it'\''s'`, []string{"it's"}},
		{`x"y z"'w'`, []string{"xy zw"}},
	}
	for _, tc := range tests {
		got, err := SplitWords(tc.in)
		if err != nil {
			t.Errorf("SplitWords(%q): %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("SplitWords(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{`'abc`, `"abc`, `abc\`, `"a\"`} {
		if _, err := SplitWords(bad); err == nil {
			t.Errorf("SplitWords(%q): expected error", bad)
		}
	}
	words := []string{"plain", "", "with space", "it's", `q"uo\te`, "$HOME", "tab\there"}
	got, err := SplitWords(JoinWords(words...))
	if err != nil || !reflect.DeepEqual(got, words) {
		t.Errorf("JoinWords round trip: %q, %v", got, err)
	}
}

func TestParseCPUList(t *testing.T) {
	cpus, err := ParseCPUList("0,2-3, 5")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cpus, []int{0, 2, 3, 5}) {
		t.Errorf("ParseCPUList = %v, want [0 2 3 5]", cpus)
	}
	for _, bad := range []string{"", "a", "1-", "-1", "5-2", "99999", "1023-1024"} {
		if _, err := ParseCPUList(bad); err == nil {
			t.Errorf("ParseCPUList(%q): expected error", bad)
		}
	}
}

func TestSignals(t *testing.T) {
	if n := SignalName(unix.SIGKILL); n != "KILL" {
		t.Errorf("SignalName(SIGKILL) = %q", n)
	}
	for _, in := range []string{"KILL", "SIGKILL", "kill", "9"} {
		if s, ok := ParseSignal(in); !ok || s != unix.SIGKILL {
			t.Errorf("ParseSignal(%q) = %v %v", in, s, ok)
		}
	}
	if _, ok := ParseSignal("NOPE"); ok {
		t.Error("ParseSignal(NOPE) ok")
	}
}

func TestPolicyName(t *testing.T) {
	for p, want := range map[uint]string{0: "other", 1: "fifo", 2: "rr", 3: "batch", 5: "idle", 6: "deadline"} {
		if got := PolicyName(p); got != want {
			t.Errorf("PolicyName(%d) = %q, want %q", p, got, want)
		}
	}
}

func TestConfig(t *testing.T) {
	p := filepath.Join(t.TempDir(), "agent.json")
	if err := os.WriteFile(p, []byte(`{"ip_cidr":"10.0.2.15/24","sysctls":{"vm.panic_on_oom":"0"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.ListenAddr != ":22" || !reflect.DeepEqual(c.PathDirs, []string{"/bin"}) || c.IPCIDR != "10.0.2.15/24" || c.Sysctls["vm.panic_on_oom"] != "0" {
		t.Errorf("config = %+v", c)
	}
	if err := os.WriteFile(p, []byte(`{`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(p); err == nil {
		t.Error("bad JSON accepted")
	}
}
