package tailbuf

import (
	"strings"
	"testing"
)

func TestKeepsTail(t *testing.T) {
	b := &Buffer{Max: 8}
	b.Write([]byte("hello "))
	b.Write([]byte("world!"))
	if got := b.String(); got != "o world!" {
		t.Errorf("got %q, want the last 8 bytes", got)
	}
	b.Write([]byte(strings.Repeat("x", 100)))
	if got := b.String(); got != "xxxxxxxx" {
		t.Errorf("got %q", got)
	}
}
