package vm

import (
	"bytes"
	"io"
	"runtime"
	"strings"
	"testing"
)

// garbage is an io.Reader of n bytes of block repeated, so that a 100 MB
// console costs the test no 100 MB buffer.
type garbage struct {
	block []byte
	n     int
	off   int
}

func (g *garbage) Read(b []byte) (int, error) {
	if g.n <= 0 {
		return 0, io.EOF
	}
	total := 0
	for len(b) > 0 && g.n > 0 {
		c := copy(b[:min(len(b), g.n)], g.block[g.off:])
		g.off = (g.off + c) % len(g.block)
		g.n -= c
		b = b[c:]
		total += c
	}
	return total, nil
}

// TestConsoleFlood: the console reader (what feeds the live parser) under
// a 100 MB flood without a newline, a 10 MB line, NUL bytes and invalid
// UTF-8 hands out no line over its 64 KiB cut, copies every byte to the
// log, stays bounded in memory, and still delivers the event lines after the garbage intact.
func TestConsoleFlood(t *testing.T) {
	const event = "[    9.000000] Out of memory: Killed process 42 (memhog)"
	nul := make([]byte, 4096)
	var read countWriter
	in := io.TeeReader(io.MultiReader(
		&garbage{block: []byte("\xff\xfe\x00BUG: no newline \xc3\x28 "), n: 100 << 20},
		strings.NewReader("\n"+event+"\n"),
		&garbage{block: []byte("x"), n: 10 << 20},
		strings.NewReader("\n"),
		&garbage{block: nul, n: 1 << 20},
		strings.NewReader("\n"+event+"\n"+event), // the last one unterminated
	), &read)
	v := &VM{}
	v.output.first = make(chan struct{})
	v.console.Add(1)
	var lines, events, longest int
	var logged countWriter
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	v.readConsole(in, &logged, func(l []byte) {
		lines++
		longest = max(longest, len(l))
		if bytes.Equal(l, []byte(event)) {
			events++
		}
	})
	runtime.ReadMemStats(&m1)
	// What it allocates in all bounds what it holds: the 64 KiB read
	// buffer and the line, whatever the input size.
	if alloc := m1.TotalAlloc - m0.TotalAlloc; alloc > 1<<20 {
		t.Errorf("reading %d bytes allocated %d bytes", read.n, alloc)
	}
	if longest > 64<<10 {
		t.Errorf("a line of %d bytes was handed out; the cut is 64 KiB", longest)
	}
	if events != 3 {
		t.Errorf("%d of the 3 event lines after the garbage came through intact (%d lines)", events, lines)
	}
	if logged.n != read.n || read.n < 111<<20 {
		t.Errorf("the log got %d bytes of the %d read", logged.n, read.n)
	}
}

type countWriter struct{ n int }

func (c *countWriter) Write(b []byte) (int, error) { c.n += len(b); return len(b), nil }
