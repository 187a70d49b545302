package protocol

import (
	"errors"
	"strings"
)

// SplitWords splits a command line into words with POSIX-shell-like quoting
// but without any expansion (there is no shell in the guest):
//
//   - unquoted blanks (space, tab, newline) separate words;
//   - '...' is literal;
//   - "..." is literal except that a backslash escapes $ ` " \ and newline;
//   - an unquoted backslash escapes the next character; backslash-newline is
//     a line continuation.
//
// An empty pair of quotes produces an empty word.
func SplitWords(s string) ([]string, error) {
	var (
		words  []string
		cur    strings.Builder
		inWord bool
	)
	flush := func() {
		if inWord {
			words = append(words, cur.String())
			cur.Reset()
			inWord = false
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case ' ', '\t', '\n', '\r':
			flush()
		case '\\':
			if i+1 >= len(s) {
				return nil, errors.New("trailing backslash")
			}
			i++
			if s[i] == '\n' {
				continue
			}
			cur.WriteByte(s[i])
			inWord = true
		case '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated single quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case '"':
			inWord = true
			i++
			for ; ; i++ {
				if i >= len(s) {
					return nil, errors.New("unterminated double quote")
				}
				if s[i] == '"' {
					break
				}
				if s[i] == '\\' && i+1 < len(s) {
					switch s[i+1] {
					case '$', '`', '"', '\\':
						i++
					case '\n':
						i++
						continue
					}
				}
				cur.WriteByte(s[i])
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	flush()
	return words, nil
}

// QuoteWord quotes w so that SplitWords returns it unchanged as one word.
func QuoteWord(w string) string {
	if w == "" {
		return "''"
	}
	if !strings.ContainsAny(w, " \t\n\r'\"\\$`") {
		return w
	}
	return "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
}

// JoinWords quotes each word with QuoteWord and joins them with spaces.
func JoinWords(words ...string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = QuoteWord(w)
	}
	return strings.Join(q, " ")
}
