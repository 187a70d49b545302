package console

import (
	"bytes"
	"io"
	"runtime"
	"testing"
)

// flood is an io.Reader of n bytes made by repeating block, so that a
// 100 MB input costs the test no 100 MB buffer.
type flood struct {
	block []byte
	n     int64
	off   int
}

func (f *flood) Read(b []byte) (int, error) {
	if f.n <= 0 {
		return 0, io.EOF
	}
	total := 0
	for len(b) > 0 && f.n > 0 {
		c := copy(b[:min(int64(len(b)), f.n)], f.block[f.off:])
		f.off = (f.off + c) % len(f.block)
		f.n -= int64(c)
		b = b[c:]
		total += c
	}
	return total, nil
}

func repeatTo(s string, n int) []byte {
	return bytes.Repeat([]byte(s), max(1, n/len(s)))
}

// memoryCases are inputs that must not make the streaming parser hold
// memory in proportion to their size.
var memoryCases = []struct {
	name   string
	input  func() io.Reader
	events int // expected event count, -1 to skip the check
}{
	{"100MB without newline", func() io.Reader {
		// Needles everywhere, so the one line kept is also parsed.
		return &flood{block: repeatTo("watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [a:1] ", 64<<10), n: 100 << 20}
	}, 1},
	{"10MB line between two events", func() io.Reader {
		line := "[    1.000000] INFO: task a:1 blocked for more than 120 seconds.\n"
		return io.MultiReader(
			bytes.NewReader([]byte(line)),
			&flood{block: repeatTo("oom_reaper: reaped process 1 (a), now ", 64<<10), n: 10 << 20},
			bytes.NewReader([]byte("\n"+line)))
	}, 3},
	{"100MB of garbage, then an event", func() io.Reader {
		// No newline, NULs, invalid UTF-8 and half needles ("BUG: "
		// and a stamp, never a whole event): after it, the parser
		// must still recognise the next line.
		return io.MultiReader(
			&flood{block: repeatTo("\x00\xff\xfe[    1.0000 BUG \xc3\x28 Out of mem", 64<<10), n: 100 << 20},
			bytes.NewReader([]byte("\n[    5.000000] Out of memory: Killed process 7 (memhog) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:0kB oom_score_adj:0\n")))
	}, 1},
	{"20MB of NUL bytes", func() io.Reader {
		block := make([]byte, 1<<20)
		block[len(block)-1] = '\n'
		return &flood{block: block, n: 20 << 20}
	}, 0},
	{"NUL-padded events", func() io.Reader {
		return &flood{block: []byte("\x00\x00[    2.000000] \x00BUG: soft lockup - CPU#1 stuck for 22s! [a\x00:2]\x00\n"), n: 10 << 20}
	}, -1},
	{"invalid UTF-8 events", func() io.Reader {
		return &flood{block: []byte("[    3.000000][ T1] \xff\xfe[    3.000001][ C1] Kernel panic - not syncing: \xc3\x28\xa0\xa1 \xf0\x28\x8c\xbc\n\xff\xff\xff\xfe\xfe\n"), n: 20 << 20}
	}, -1},
}

// TestScanMemoryBounded feeds each memoryCases input through Scan and
// checks with runtime.MemStats that what Scan allocates in all, and so at
// most holds, stays under a bound that does not depend on the input size
// (the line buffers are MaxLineLen each), apart from the events it hands
// out (which the callback drops here).
func TestScanMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 180 MB")
	}
	const bound = 512 << 10 // a few MaxLineLen buffers
	for _, c := range memoryCases {
		t.Run(c.name, func(t *testing.T) {
			in := c.input()
			var m0, m1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m0)
			events := 0
			var eventBytes uint64
			err := Scan(in, func(e Event) error {
				events++
				// What an event itself allocates is the caller's.
				eventBytes += uint64(len(e.Text)+len(e.Comm)) + 512
				for k, v := range e.Fields {
					eventBytes += uint64(len(k)+len(v)) + 64
				}
				return nil
			})
			runtime.ReadMemStats(&m1)
			if err != nil {
				t.Fatal(err)
			}
			if c.events >= 0 && events != c.events {
				t.Errorf("%d events, want %d", events, c.events)
			}
			alloc := m1.TotalAlloc - m0.TotalAlloc
			if alloc > bound+eventBytes*4 {
				t.Errorf("Scan allocated %d bytes (%d events), want at most %d + events", alloc, events, bound)
			}
			t.Logf("%d events, %d bytes allocated", events, alloc)
		})
	}
}

// TestParserRetainsBoundedMemory feeds the same inputs line by line to one
// Parser and checks that the memory it still holds afterwards is bounded:
// its context and scratch buffers must not grow with the input.
func TestParserRetainsBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 180 MB")
	}
	p := NewParser()
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	buf := make([]byte, 0, MaxLineLen)
	for _, c := range memoryCases {
		r := c.input()
		chunk := make([]byte, 32<<10)
		for {
			n, err := r.Read(chunk)
			for _, b := range chunk[:n] {
				if b == '\n' {
					p.Feed(buf)
					buf = buf[:0]
				} else if len(buf) < MaxLineLen {
					buf = append(buf, b)
				}
			}
			if err != nil {
				break
			}
		}
		p.Feed(buf)
		buf = buf[:0]
	}
	p.Flush()
	runtime.GC()
	runtime.ReadMemStats(&m1)
	held := int64(m1.HeapAlloc) - int64(m0.HeapAlloc)
	runtime.KeepAlive(p)
	runtime.KeepAlive(buf)
	if held > 1<<20 {
		t.Errorf("the parser holds %d bytes after the floods, want at most 1 MiB", held)
	}
	t.Logf("parser holds %d bytes", held)
}

// TestFeedAllocs checks that feeding an over-long, NUL-laden or invalid
// UTF-8 line that yields no event allocates nothing once the parser's
// scratch buffers exist.
func TestFeedAllocs(t *testing.T) {
	lines := [][]byte{
		repeatTo("[    1.000000][ T1] \xff\xfe\x00 noise oom_reaper \x00", 10<<20),
		bytes.Repeat([]byte{0}, 1<<20),
		repeatTo("\xc3\x28[   12.300000][ T1] wat[   12.400000][ C0] xx \xa0", 1<<20),
	}
	p := NewParser()
	for _, l := range lines {
		p.Feed(l)
	}
	for _, l := range lines {
		if n := testing.AllocsPerRun(5, func() { p.Feed(l) }); n != 0 {
			t.Errorf("Feed(%.20q...) allocates %v times", l, n)
		}
	}
}
