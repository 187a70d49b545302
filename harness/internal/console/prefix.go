package console

import (
	"bytes"
	"math"
)

// header is what a line's prefixes say about the message.
type header struct {
	time    float64
	hasTime bool
	// stamped is set when a leading [ ] stamp of any kind (even one whose
	// time we cannot use, like dmesg -T) was found; only unstamped lines
	// are searched for a stamp in mid-line.
	stamped bool
	// foreign is set for a syslog line from a program other than the
	// kernel; it must never yield an event.
	foreign bool
	// record is set when a prefix shows that the line is a whole printk
	// record read back (/dev/kmsg, syslog, journal, dmesg -x), which
	// other CPUs' output cannot have cut, unlike a console line.
	record    bool
	callerCPU int // from [ Cn], -1 if none
	callerPID int // from [ Tn], -1 if none
}

// maxPrefixRounds bounds the prefix loop; real lines stack at most about
// five prefixes ("> Nov 23 10:00:00 host kernel: <4>[ 1.2][ T1] ").
const maxPrefixRounds = 10

// splitPrefix strips the prefixes that the kernel, dmesg, syslog,
// journald and mail quoting put before a kernel message, in any order.
func splitPrefix(line []byte) (h header, msg []byte) {
	h.callerCPU, h.callerPID = -1, -1
	msg = line
	for round := 0; round < maxPrefixRounds; round++ {
		msg = trimLeft(msg)
		if len(msg) == 0 {
			return h, msg
		}
		n := 0
		switch c := msg[0]; {
		case c == '>' && !h.stamped:
			// LKML quoting, possibly nested ("> > ", ">>").
			n = 1
		case c == '<':
			n = syslogLevel(msg)
		case c == '[':
			n = h.bracket(msg)
			if n > 0 {
				// journalctl -o short-monotonic: "[ 12.3] host kernel: msg".
				k := hostKernel(msg[n:])
				n += k
				h.record = h.record || k > 0
			}
		case isDigit(c):
			if n = h.kmsg(msg); n == 0 {
				if n = isoDate(msg); n > 0 {
					// dmesg --time-format iso has no host part,
					// journalctl -o short-iso has "host kernel: ".
					n += hostKernel(msg[n:])
				}
			}
			h.record = h.record || n > 0
		case 'A' <= c && c <= 'Z':
			if n = syslogDate(msg); n > 0 {
				// "Nov 23 10:00:00 host kernel: msg" (syslog,
				// journalctl). The host and the "kernel:" tag are
				// mandatory here; anything else is userspace.
				k := hostKernel(msg[n:])
				if k == 0 {
					h.foreign = true
					return h, msg
				}
				n += k
				h.record = true
			}
		case 'a' <= c && c <= 'z':
			n = dmesgDecode(msg)
			h.record = h.record || n > 0
		}
		if n == 0 {
			break
		}
		msg = msg[n:]
	}
	return h, msg
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f' }

func trimLeft(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	return b
}

func trimRight(b []byte) []byte {
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func digits(b []byte) int {
	i := 0
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	return i
}

// syslogLevel matches "<N>" as printed by dmesg -r and raw /proc/kmsg.
func syslogLevel(b []byte) int {
	d := digits(b[1:])
	if d == 0 || d > 3 || len(b) < d+2 || b[1+d] != '>' {
		return 0
	}
	return d + 2
}

// bracket parses one leading "[...]" of the kinds the kernel or dmesg
// print and records it in h. It returns the length consumed, or 0 when the
// bracket is part of the message ("[drm] ...", "[ pid ]", "[  1234]" task
// table rows).
func (h *header) bracket(b []byte) int {
	end := bytes.IndexByte(b[:min(len(b), 64)], ']')
	if end < 0 {
		return 0
	}
	in := trimRight(trimLeft(b[1:end]))
	if len(in) == 0 {
		return 0
	}
	switch c := in[0]; {
	case (c == 'T' || c == 'C') && len(in) > 1 && digits(in[1:]) == len(in)-1:
		// CONFIG_PRINTK_CALLER (4.18+): [ T63] task context, [ C3]
		// interrupt context on CPU 3.
		v, ok := atoiBytes(in[1:])
		if !ok {
			return 0
		}
		if c == 'T' {
			h.callerPID = v
		} else {
			h.callerCPU = v
		}
		return end + 1
	case isDigit(c):
		// CONFIG_PRINTK_TIME: "%5lu.%06lu".
		if t, ok := parseStamp(in); ok {
			if !h.stamped {
				h.time, h.hasTime = t, true
			}
			h.stamped = true
			return end + 1
		}
	case c == '+':
		// dmesg -d / --reltime: a delta, not a time since boot.
		if _, ok := parseStamp(trimLeft(in[1:])); ok {
			h.stamped = true
			return end + 1
		}
	}
	// dmesg -T "[Mon Nov 23 10:00:00 2020]" (any locale) and dmesg -e
	// "[Nov23 10:00]": wall-clock time, which we cannot relate to boot.
	if hasClock(in) {
		h.stamped = true
		return end + 1
	}
	return 0
}

// parseStamp parses "12.345678" exactly as strconv.ParseFloat would, but
// without allocating: digits*10^-n is computed as one correctly-rounded
// division of two exactly representable integers.
func parseStamp(b []byte) (float64, bool) {
	i := digits(b)
	if i == 0 || i == len(b) || b[i] != '.' {
		return 0, false
	}
	f := digits(b[i+1:])
	if f == 0 || i+1+f != len(b) || i+f > 15 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c != '.' {
			n = n*10 + int64(c-'0')
		}
	}
	return float64(n) / math.Pow10(f), true
}

// hasClock reports whether b contains "dd:dd".
func hasClock(b []byte) bool {
	for i := 0; i+5 <= len(b); i++ {
		if b[i+2] == ':' && isDigit(b[i]) && isDigit(b[i+1]) && isDigit(b[i+3]) && isDigit(b[i+4]) {
			return true
		}
	}
	return false
}

// kmsg parses a /dev/kmsg record header "6,339,5140900,-;" or, with
// CONFIG_PRINTK_CALLER, "6,339,5140900,-,caller=T1;".
func (h *header) kmsg(b []byte) int {
	i := 0
	var usec int64
	for field := 0; field < 3; field++ {
		d := digits(b[i:])
		if d == 0 || i+d >= len(b) || b[i+d] != ',' {
			return 0
		}
		if field == 2 {
			if d > 18 {
				return 0
			}
			for _, c := range b[i : i+d] {
				usec = usec*10 + int64(c-'0')
			}
		}
		i += d + 1
	}
	semi := bytes.IndexByte(b[i:min(len(b), i+64)], ';')
	if semi < 0 {
		return 0
	}
	flags := b[i : i+semi]
	if j := bytes.Index(flags, []byte("caller=")); j >= 0 {
		c := flags[j+len("caller="):]
		if len(c) > 1 {
			if v, ok := atoiBytes(c[1:]); ok {
				switch c[0] {
				case 'T':
					h.callerPID = v
				case 'C':
					h.callerCPU = v
				}
			}
		}
	}
	h.time, h.hasTime, h.stamped = float64(usec)/1e6, true, true
	return i + semi + 1
}

// isoDate matches an RFC 3339 timestamp token ("2024-11-23T10:00:00,123456+01:00")
// as printed by dmesg --time-format iso and journalctl -o short-iso.
func isoDate(b []byte) int {
	if len(b) < 19 || digits(b) != 4 || b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != ' ') || b[13] != ':' {
		return 0
	}
	i := 11
	for i < len(b) && b[i] != ' ' {
		i++
	}
	return i
}

var months = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

// syslogDate matches the BSD syslog / journalctl short timestamp
// "Nov 23 10:00:00" or "Nov  3 10:00:00.123456" (short-precise).
func syslogDate(b []byte) int {
	if len(b) < 15 || b[3] != ' ' {
		return 0
	}
	ok := false
	for _, m := range months {
		if string(b[:3]) == m {
			ok = true
			break
		}
	}
	if !ok {
		return 0
	}
	i := 4
	if b[i] == ' ' {
		i++
	}
	d := digits(b[i:])
	if d == 0 || d > 2 {
		return 0
	}
	i += d
	if i >= len(b) || b[i] != ' ' {
		return 0
	}
	i++
	if !hasClock(b[i:min(len(b), i+5)]) {
		return 0
	}
	for i < len(b) && b[i] != ' ' {
		i++
	}
	return i
}

// hostKernel matches " host kernel: " (optionally "kernel[0]:") after a
// syslog or journal timestamp and returns its length, or 0.
func hostKernel(b []byte) int {
	i := 0
	for i < len(b) && b[i] == ' ' {
		i++
	}
	start := i
	for i < len(b) && b[i] != ' ' && i-start < 256 {
		i++
	}
	if i == start || i >= len(b) || b[i-1] == ':' {
		return 0
	}
	rest := b[i+1:]
	if !bytes.HasPrefix(rest, []byte("kernel")) {
		return 0
	}
	j := len("kernel")
	if j < len(rest) && rest[j] == '[' {
		k := bytes.IndexByte(rest[j:min(len(rest), j+24)], ']')
		if k < 0 {
			return 0
		}
		j += k + 1
	}
	if j >= len(rest) || rest[j] != ':' {
		return 0
	}
	return i + 1 + j + 1
}

var dmesgFacilities = [...]string{
	"kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news",
	"uucp", "cron", "authpriv", "ftp", "local0", "local1", "local2",
	"local3", "local4", "local5", "local6", "local7",
}

var dmesgLevels = [...]string{"emerg", "alert", "crit", "err", "warn", "notice", "info", "debug"}

// dmesgDecode matches the dmesg -x prefix "kern  :err   : ".
func dmesgDecode(b []byte) int {
	fac, n := word(b)
	if n == 0 || !oneOf(fac, dmesgFacilities[:]) {
		return 0
	}
	i := n
	for i < len(b) && b[i] == ' ' {
		i++
	}
	if i >= len(b) || b[i] != ':' {
		return 0
	}
	i++
	lvl, m := word(b[i:])
	if m == 0 || !oneOf(lvl, dmesgLevels[:]) {
		return 0
	}
	i += m
	for i < len(b) && b[i] == ' ' {
		i++
	}
	if i >= len(b) || b[i] != ':' {
		return 0
	}
	return i + 1
}

func word(b []byte) ([]byte, int) {
	i := 0
	for i < len(b) && (('a' <= b[i] && b[i] <= 'z') || isDigit(b[i])) {
		i++
	}
	return b[:i], i
}

func oneOf(w []byte, set []string) bool {
	for _, s := range set {
		if string(w) == s {
			return true
		}
	}
	return false
}

// embeddedStamp finds a printk stamp in mid-line, as left on a serial
// console when the kernel prints while userspace is half way through a line
// ("localhost login: [  209.887120] INFO: task ..."). Only the exact kernel
// format ("[%5lu.%06lu]") counts, to keep false hits away. It returns the
// offset of the '[' or -1.
func embeddedStamp(b []byte) int {
	off := 0
	for {
		i := bytes.IndexByte(b[off:], '[')
		if i < 0 {
			return -1
		}
		i += off
		in := b[i+1:]
		in = in[:min(len(in), 24)]
		j := 0
		for j < len(in) && in[j] == ' ' {
			j++
		}
		d := digits(in[j:])
		k := j + d
		if d > 0 && k+8 <= len(in) && in[k] == '.' && digits(in[k+1:k+7]) == 6 && in[k+7] == ']' {
			return i
		}
		off = i + 1
	}
}

// atoiBytes parses a small non-negative decimal integer.
func atoiBytes(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 9 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}
