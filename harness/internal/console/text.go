package console

import (
	"strings"
	"unicode/utf8"
)

// clean turns raw console bytes into a string that is valid UTF-8 and at
// most max bytes long, cut at a rune boundary. Consoles carry whatever the
// kernel or a broken serial line produced, and comm is arbitrary bytes, but
// the JSON consumers of `oomlab scan` need valid UTF-8.
func clean[T string | []byte](b T, max int) string {
	s := string(b[:min(len(b), max)])
	if len(b) > max {
		s = dropCutRune(s)
	}
	if !utf8.ValidString(s) {
		// Each invalid byte becomes U+FFFD (3 bytes): cut again.
		s = strings.ToValidUTF8(s, "\uFFFD")
		if len(s) > max {
			s = dropCutRune(s[:max])
		}
	}
	return s
}

// dropCutRune removes a multi-byte rune that a byte cut left incomplete at
// the end of s.
func dropCutRune(s string) string {
	for i := len(s) - 1; i >= 0 && i >= len(s)-utf8.UTFMax; i-- {
		if utf8.RuneStart(s[i]) {
			if !utf8.FullRuneInString(s[i:]) {
				return s[:i]
			}
			break
		}
	}
	return s
}
