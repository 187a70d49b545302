package console

import (
	"bufio"
	"bytes"
	"io"
)

// Scan parses a whole stream and calls fn for each event in order. Lines
// end in \n, \r\n or (serial consoles) \r\r\n; the last line needs no
// newline. A line longer than MaxLineLen is cut to MaxLineLen and still
// counts as one line. Scan returns fn's first error, or the read error
// other than io.EOF.
func Scan(r io.Reader, fn func(Event) error) error {
	p := NewParser()
	br := bufio.NewReaderSize(r, MaxLineLen)
	var long []byte // head of an over-long line
	inLong := false
	for {
		chunk, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// Keep the first MaxLineLen bytes, skip to the newline.
			if !inLong {
				long = append(long[:0], chunk...)
				inLong = true
			}
			continue
		}
		if err != nil && err != io.EOF {
			return err
		}
		line := chunk
		if inLong {
			line, inLong = long, false
		}
		if len(line) == 0 && err == io.EOF {
			break
		}
		line = bytes.TrimRight(line, "\r\n")
		for _, ev := range p.Feed(line) {
			if ferr := fn(ev); ferr != nil {
				return ferr
			}
		}
		if err == io.EOF {
			break
		}
	}
	for _, ev := range p.Flush() {
		if err := fn(ev); err != nil {
			return err
		}
	}
	return nil
}
