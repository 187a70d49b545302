// Package tailbuf keeps the last bytes written to it: QEMU's stderr, a
// stressor's output. Memory stays bounded however much is written.
package tailbuf

import "sync"

// Buffer is an io.Writer that keeps the last Max bytes; safe for
// concurrent use.
type Buffer struct {
	Max int

	mu sync.Mutex
	b  []byte
}

// Write keeps the tail of everything written so far.
func (t *Buffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.Max {
		t.b = append([]byte(nil), t.b[len(t.b)-t.Max:]...)
	}
	return len(p), nil
}

// String returns the kept tail.
func (t *Buffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
