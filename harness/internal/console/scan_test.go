package console

import (
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"
)

func scanString(t *testing.T, s string) []Event {
	t.Helper()
	var evs []Event
	if err := Scan(strings.NewReader(s), func(e Event) error { evs = append(evs, e); return nil }); err != nil {
		t.Fatal(err)
	}
	return evs
}

func lineNumbers(evs []Event) []int {
	var n []int
	for _, e := range evs {
		n = append(n, e.Line)
	}
	return n
}

func TestScanLineEndings(t *testing.T) {
	in := "noise\r\n[    1.000000] BUG: a\r\r\n\n[    2.000000] BUG: b"
	evs := scanString(t, in)
	if got := lineNumbers(evs); len(got) != 2 || got[0] != 2 || got[1] != 4 {
		t.Fatalf("lines %v, want [2 4]", got)
	}
	if evs[0].Text != "BUG: a" || evs[1].Text != "BUG: b" {
		t.Errorf("texts %q %q: CRs or the missing final newline leaked", evs[0].Text, evs[1].Text)
	}
}

func TestScanLongLines(t *testing.T) {
	long := strings.Repeat("x", 3*MaxLineLen+17)
	in := long + "\n" +
		"BUG: " + strings.Repeat("€", MaxLineLen) + "\n" + // event with an over-long message
		"[    3.000000] Kernel panic - not syncing: after\n" +
		long // unterminated
	evs := scanString(t, in)
	if got := lineNumbers(evs); len(got) != 2 || got[0] != 2 || got[1] != 3 {
		t.Fatalf("lines %v, want [2 3]", got)
	}
	e := evs[0]
	if len(e.Text) > MaxTextLen || !utf8.ValidString(e.Text) || !strings.HasPrefix(e.Text, "BUG: €") {
		t.Errorf("text is %d bytes, valid=%v", len(e.Text), utf8.ValidString(e.Text))
	}
	if r := e.Fields["reason"]; len(r) > maxFieldLen || !utf8.ValidString(r) {
		t.Errorf("reason is %d bytes, valid=%v", len(r), utf8.ValidString(r))
	}
}

func TestScanNULAndInvalidUTF8(t *testing.T) {
	in := "\x00\x00[   1.000000] watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [me\xffm\x00hog:12]\n"
	evs := scanString(t, in)
	if len(evs) != 1 {
		t.Fatalf("got %+v", evs)
	}
	e := evs[0]
	if e.Comm != "me\uFFFDmhog" || e.PID == nil || *e.PID != 12 || e.Time == nil || *e.Time != 1 {
		t.Errorf("got comm %q pid %v time %v", e.Comm, deref(e.PID), deref(e.Time))
	}
	if !utf8.ValidString(e.Text) || strings.ContainsRune(e.Text, 0) {
		t.Errorf("text %q", e.Text)
	}
}

func TestScanErrors(t *testing.T) {
	stop := errors.New("stop")
	calls := 0
	err := Scan(strings.NewReader("BUG: a\nBUG: b\nBUG: c\n"), func(Event) error {
		calls++
		if calls == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 2 {
		t.Errorf("fn error: got %v after %d calls", err, calls)
	}

	boom := errors.New("boom")
	calls = 0
	err = Scan(io.MultiReader(strings.NewReader("BUG: a\n"), iotest.ErrReader(boom)), func(Event) error {
		calls++
		return nil
	})
	if !errors.Is(err, boom) || calls != 1 {
		t.Errorf("read error: got %v after %d calls", err, calls)
	}

	// A reader returning one byte at a time must give the same events.
	data, err := io.ReadAll(strings.NewReader("a\r\nBUG: x\nINFO: task a:1 blocked for more than 1 seconds."))
	if err != nil {
		t.Fatal(err)
	}
	var n []int
	if err := Scan(iotest.OneByteReader(strings.NewReader(string(data))), func(e Event) error { n = append(n, e.Line); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(n) != 2 || n[0] != 2 || n[1] != 3 {
		t.Errorf("one-byte reader: lines %v", n)
	}

	if evs := scanString(t, ""); len(evs) != 0 {
		t.Errorf("empty input: %+v", evs)
	}
}

func TestEventJSON(t *testing.T) {
	evs := feedAll("Kernel panic - not syncing: x", "[ 1.500000][   C2] watchdog: BUG: soft lockup - CPU#2 stuck for 22s! [a:3]")
	b, err := json.Marshal(evs[0])
	if err != nil {
		t.Fatal(err)
	}
	const want0 = `{"kind":"panic","line":1,"time":null,"cpu":null,"pid":null,"text":"Kernel panic - not syncing: x","fields":{"reason":"x"}}`
	if string(b) != want0 {
		t.Errorf("got  %s\nwant %s", b, want0)
	}
	b, _ = json.Marshal(evs[1])
	const want1 = `{"kind":"soft_lockup","line":2,"time":1.5,"cpu":2,"pid":3,"comm":"a","text":"watchdog: BUG: soft lockup - CPU#2 stuck for 22s! [a:3]","fields":{"stuck_seconds":"22"}}`
	if string(b) != want1 {
		t.Errorf("got  %s\nwant %s", b, want1)
	}
}

func TestClean(t *testing.T) {
	for _, tt := range []struct {
		in   string
		max  int
		want string
	}{
		{"abc", 10, "abc"},
		{"abcdef", 3, "abc"},
		{"a€", 3, "a"}, // cut inside the euro sign: drop it, no U+FFFD
		{"a\xffb", 10, "a\uFFFDb"},
		{"\xff\xff\xff", 10, "\uFFFD"},     // a run of invalid bytes is one U+FFFD
		{"a\xffb\xfec\xfd", 7, "a\uFFFDb"}, // expansion past max is cut again
	} {
		if got := clean(tt.in, tt.max); got != tt.want {
			t.Errorf("clean(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}

// Lines without any needle are the common case; they must not allocate.
func TestNoiseDoesNotAllocate(t *testing.T) {
	p := NewParser()
	line := []byte("[   12.345678][  T123] EXT4-fs (vda): mounted filesystem 3c4f with ordered data mode. Quota mode: none.")
	if n := testing.AllocsPerRun(1000, func() { p.Feed(line) }); n != 0 {
		t.Errorf("Feed of a noise line: %v allocs", n)
	}
}
