package console

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
	"unicode/utf8"
)

// FuzzParser checks that no input makes the parser panic, hang or emit an
// event that breaks the output contract. Seeds: every testdata line and
// file, plus hand-made edge cases.
func FuzzParser(f *testing.F) {
	logs, _ := filepath.Glob("testdata/*.log")
	for _, l := range logs {
		data, err := os.ReadFile(l)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		for _, line := range bytes.Split(data, []byte("\n")) {
			f.Add(line)
		}
	}
	for _, s := range []string{
		"", "\n", "\r\n\r\n", "[", "[]", "[ T]", "[ C99999999999] BUG: x", "<9999>", "4,1,99999999999999999999,-;BUG: x",
		"Nov 23 10:00:00 ", "2020-11-23T", "kern  :", "> > > >", "[ 1.0][ T1][ C2][ 3.0] BUG: x",
		"Out of memory: Kill process 1 (() score 1 or sacrifice child\nKilled process 2 ()) total-vm:",
		"oom-kill:constraint=,,,=,pid=,pid=99999999999999999999",
		"Kernel panic - not syncing: Watchdog detected hard LOCKUP on cpu 99999999999999999999",
		"x [ 1.000000] [ 2.000000] BUG: y",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		lines := bytes.Count(data, []byte("\n")) + 1
		check := func(e Event) {
			valid := false
			for _, k := range AllKinds {
				valid = valid || e.Kind == k
			}
			if !valid {
				t.Fatalf("bad kind %q", e.Kind)
			}
			if e.Line < 1 || e.Line > lines {
				t.Fatalf("line %d of %d", e.Line, lines)
			}
			if len(e.Text) > MaxTextLen || !utf8.ValidString(e.Text) {
				t.Fatalf("bad text %q", e.Text)
			}
			if len(e.Comm) > maxFieldLen || !utf8.ValidString(e.Comm) {
				t.Fatalf("bad comm %q", e.Comm)
			}
			for k, v := range e.Fields {
				if v == "" || len(v) > maxFieldLen || !utf8.ValidString(v) {
					t.Fatalf("bad field %s=%q", k, v)
				}
			}
			if e.Time != nil && (math.IsNaN(*e.Time) || math.IsInf(*e.Time, 0) || *e.Time < 0) {
				t.Fatalf("bad time %v", *e.Time)
			}
			if e.CPU != nil && *e.CPU < 0 || e.PID != nil && *e.PID < 0 {
				t.Fatalf("negative cpu/pid")
			}
		}
		var scanned []Event
		if err := Scan(bytes.NewReader(data), func(e Event) error { check(e); scanned = append(scanned, e); return nil }); err != nil {
			t.Fatal(err)
		}
		// Feeding the same lines one by one must give the same events.
		split := bytes.Split(data, []byte("\n"))
		if len(split[len(split)-1]) == 0 {
			split = split[:len(split)-1] // no line after a final newline
		}
		p := NewParser()
		var fed []Event
		for _, l := range split {
			fed = append(fed, p.Feed(bytes.TrimRight(l, "\r"))...)
		}
		fed = append(fed, p.Flush()...)
		a, _ := json.Marshal(scanned)
		b, _ := json.Marshal(fed)
		if !bytes.Equal(a, b) {
			t.Fatalf("Scan and Feed differ:\n%s\n%s", a, b)
		}
		// The whole input as one line must not break anything either.
		lines = 1
		for _, e := range NewParser().Feed(data) {
			check(e)
		}
	})
}
