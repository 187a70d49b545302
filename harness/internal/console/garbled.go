package console

import "bytes"

// Recovery of kernel messages whose prefix was garbled by output from
// another CPU. printk serialises records, but a console line can still be
// cut by another context's output: an NMI backtrace or a CPU that took the
// console mid-line leaves a second printk prefix inside the first line
// ("[ 12.300000][ T1] wat[ 12.400000][ C0] chdog: BUG: soft lockup ..."),
// or a stamp that one CPU had begun merges with another CPU's whole one
// ("[ 48.12[ 48.123456][ C1] watchdog: BUG: ...").
//
// The rule is conservative: it is tried only on a console line (not a
// record read back from /dev/kmsg, syslog, the journal or dmesg -x, which
// nothing can cut) that begins with a printk stamp and matched nothing as
// it was, and it uses only an embedded prefix that the kernel could have
// printed at about the same time on another context:
//
//   - the embedded prefix is a "[%5lu.%06lu]" stamp (any number of
//     leading spaces, 1 to 9 decimals), optionally followed by caller ids
//     "[ Tn]"/"[ Cn]";
//   - its time lies within [t-1s, t+garbledWindow] of the line's own
//     stamp t (a quoted or replayed log carries older stamps);
//   - when both prefixes carry a caller id, the ids differ (one context
//     cannot interrupt itself);
//   - then the text after the embedded prefix is tried alone ("tail": a
//     whole message printed after another context's fragment), and only
//     if that matches nothing, the line's text with the embedded prefix
//     cut out ("spliced": one message with another's prefix inside);
//   - only the first embedded prefix is used, and the event records how
//     it was recovered in Fields["garbled"].
//
// A leading stamp fragment ("[ 48.12" directly followed by "[") is
// dropped when what follows is a complete prefix; that is not ambiguous
// and needs no time check.

// garbledWindow bounds, in seconds, how much later than the line's own
// stamp an interleaved prefix may be.
const garbledWindow = 30

// embedded is a printk prefix found inside a message.
type embedded struct {
	start, end int // msg[start:end] is the prefix, without the space after it
	h          header
}

// findEmbedded returns the first printk stamp prefix in msg at an offset
// greater than 0.
func findEmbedded(msg []byte) (embedded, bool) {
	for i := 1; i < len(msg); i++ {
		j := bytes.IndexByte(msg[i:], '[')
		if j < 0 {
			break
		}
		i += j
		var h header
		h.callerCPU, h.callerPID = -1, -1
		n := stampBracket(msg[i:], &h)
		if n == 0 {
			continue
		}
		end := i + n
		// Caller ids (at most two, as in "[ 1.0][ T1][ C2]").
		for k := 0; k < 2 && end < len(msg) && msg[end] == '['; k++ {
			m := callerBracket(msg[end:], &h)
			if m == 0 {
				break
			}
			end += m
		}
		return embedded{start: i, end: end, h: h}, true
	}
	return embedded{}, false
}

// stampBracket parses "[   12.345678]" at the start of b into h.
func stampBracket(b []byte, h *header) int {
	j := 1
	for j < len(b) && j < 16 && b[j] == ' ' {
		j++
	}
	d := digits(b[j:])
	if d == 0 || d > 10 {
		return 0
	}
	k := j + d
	if k >= len(b) || b[k] != '.' {
		return 0
	}
	f := digits(b[k+1:])
	if f == 0 || f > 9 || k+1+f >= len(b) || b[k+1+f] != ']' {
		return 0
	}
	t, ok := parseStamp(b[j : k+1+f])
	if !ok {
		return 0
	}
	h.time, h.hasTime, h.stamped = t, true, true
	return k + 2 + f
}

// callerBracket parses "[ T123]" or "[  C3]" at the start of b into h.
func callerBracket(b []byte, h *header) int {
	j := 1
	for j < len(b) && j < 16 && b[j] == ' ' {
		j++
	}
	if j >= len(b) || (b[j] != 'T' && b[j] != 'C') {
		return 0
	}
	d := digits(b[j+1:])
	if d == 0 || j+1+d >= len(b) || b[j+1+d] != ']' {
		return 0
	}
	v, ok := atoiBytes(b[j+1 : j+1+d])
	if !ok {
		return 0
	}
	if b[j] == 'T' {
		h.callerPID = v
	} else {
		h.callerCPU = v
	}
	return j + d + 2
}

// plausible reports whether an embedded prefix e can be another
// context's output interleaved with a line whose own header is h.
func plausible(h header, e header) bool {
	if h.record || !h.hasTime || !e.hasTime {
		return false
	}
	if e.time < h.time-1 || e.time > h.time+garbledWindow {
		return false
	}
	hasCaller := func(x header) bool { return x.callerCPU >= 0 || x.callerPID >= 0 }
	if hasCaller(h) && hasCaller(e) && h.callerCPU == e.callerCPU && h.callerPID == e.callerPID {
		return false
	}
	return true
}

// matches reports whether some event rule (not a context-only one)
// matches msg, without side effects.
func matches(msg []byte) bool {
	mask := filter.match(msg)
	if mask == 0 {
		return false
	}
	for i := range rules {
		r := &rules[i]
		if mask&r.bit != 0 && r.re.Match(msg) {
			return r.kind != ""
		}
	}
	return false
}

// stampFragment returns the length of a leading "[   48.12" (a stamp cut
// before its ']') that is directly followed by '[', or 0.
func stampFragment(msg []byte) int {
	if len(msg) < 2 || msg[0] != '[' {
		return 0
	}
	j := 1
	for j < len(msg) && j < 16 && msg[j] == ' ' {
		j++
	}
	d := digits(msg[j:])
	if d == 0 || d > 10 {
		return 0
	}
	k := j + d
	if k < len(msg) && msg[k] == '.' {
		k++
		k += min(digits(msg[k:]), 9)
	}
	if k >= len(msg) || msg[k] != '[' {
		return 0
	}
	return k
}

// recoverUnmatched is Feed's path for a line in which no needle occurs:
// the prefix of another CPU may have cut the needle itself ("Out of
// memory: Killed [ 52.000050][ C1] process 95 ..."). Lines without an
// embedded stamp, nearly all of them, cost one scan for '['.
func (p *Parser) recoverUnmatched(line []byte) {
	if !twoStamps(line) {
		return
	}
	h, msg := splitPrefix(line)
	if h.stamped && !h.foreign {
		p.recoverGarbled(h, trimRight(msg))
	}
}

// twoStamps reports whether line holds at least two printk stamps: its
// own and an embedded one. A line with one stamp, nearly every line, costs
// a scan for '[' and needs no prefix parsing.
func twoStamps(line []byte) bool {
	n := 0
	if len(line) > 0 && line[0] == '[' {
		var h header
		if stampBracket(line, &h) > 0 {
			n = 1
		}
	}
	for rest := line; n < 2; n++ {
		e, ok := findEmbedded(rest)
		if !ok {
			return false
		}
		rest = rest[e.end-1:]
	}
	return true
}

// recoverGarbled tries the rule described at the top of this file on a
// stamped line whose message msg (prefixes stripped, header h) matched
// nothing. It reports whether an event rule matched.
func (p *Parser) recoverGarbled(h header, msg []byte) bool {
	if h.record {
		return false
	}
	if n := stampFragment(msg); n > 0 {
		h2, rest := splitPrefix(msg[n:])
		if h2.stamped && !h2.foreign {
			rest = trimRight(rest)
			if matches(rest) {
				return p.matchGarbled(h2, rest, "stamp")
			}
		}
		return false
	}
	e, ok := findEmbedded(msg)
	if !ok || !plausible(h, e.h) {
		return false
	}
	after := msg[e.end:]
	if len(after) > 0 && after[0] == ' ' {
		after = after[1:]
	}
	if tail := trimRight(trimLeft(after)); matches(tail) {
		return p.matchGarbled(e.h, tail, "tail")
	}
	p.scratch2 = append(append(p.scratch2[:0], msg[:e.start]...), after...)
	spliced := trimRight(p.scratch2)
	if matches(spliced) {
		return p.matchGarbled(h, spliced, "spliced")
	}
	return false
}

// matchGarbled runs the rule table on a recovered message and marks the
// events it yields.
func (p *Parser) matchGarbled(h header, msg []byte, how string) bool {
	n := len(p.out)
	ok := p.match(h, msg, filter.match(msg))
	for i := n; i < len(p.out); i++ {
		p.out[i].setField("garbled", how)
	}
	return ok
}
