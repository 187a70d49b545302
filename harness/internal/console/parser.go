package console

import (
	"bytes"
	"strconv"
)

// MaxLineLen bounds the bytes of one line that are looked at; Feed and
// Scan ignore the rest (a console can carry megabytes without a newline).
const MaxLineLen = 64 << 10

// How far (in lines) context from one line may reach a later one. They
// bound how stale a context can get in a log where the expected follow-up
// line was lost (console drops, rate limiting, truncated paste).
const (
	// 4.x "Kill process" -> "Killed process": printed back to back by
	// one task, but other CPUs' backtraces may interleave.
	selectWindow = 256
	// "oom-kill:constraint=..." -> "Killed process": same task, back to
	// back in 6.x, before the task dump in 4.19-5.x.
	contextWindow = 2048
	// "Watchdog detected hard LOCKUP" -> "Kernel panic - not syncing:
	// Hard LOCKUP": the panic comes after the registers and backtraces
	// of all CPUs.
	hardLockupWindow = 4096
)

// Parser turns kernel log lines into Events. It keeps a little context
// between lines (bounded in size, whatever the input). It is not safe for
// concurrent use.
type Parser struct {
	line int
	out  []Event

	// 4.x victim selection waiting for its "Killed process" line.
	sel oomSelect
	// 4.19+ "oom-kill:" summary waiting for its "Killed process" line.
	ctx oomContext
	// line of the last hard_lockup event, 0 if none.
	lastHardLockup int

	scratch  []byte
	scratch2 []byte // garbled.go's spliced message
}

// NewParser returns a Parser at line 0.
func NewParser() *Parser { return &Parser{} }

// Feed parses one line (without its trailing newline) and returns the
// events it completes, usually none. Events may refer to an earlier line:
// a 4.x victim selection whose "Killed process" line never came is
// reported once it is clearly lost. The returned slice is the caller's.
func (p *Parser) Feed(line []byte) []Event {
	p.line++
	p.out = nil
	if p.sel.active && p.line-p.sel.line > selectWindow {
		p.flushSelect()
	}
	if len(line) > MaxLineLen {
		line = line[:MaxLineLen]
	}
	if bytes.IndexByte(line, 0) >= 0 {
		// Serial consoles pad with NULs, e.g. around a reset.
		p.scratch = p.scratch[:0]
		for _, c := range line {
			if c != 0 {
				p.scratch = append(p.scratch, c)
			}
		}
		line = p.scratch
	}
	mask := filter.match(line)
	if mask == 0 {
		p.recoverUnmatched(line)
		return p.take()
	}
	h, msg := splitPrefix(line)
	if h.foreign {
		return p.take()
	}
	if !p.match(h, trimRight(msg), mask) {
		if !h.stamped {
			// A kernel message glued to the end of a userspace
			// line that had no newline yet.
			if i := embeddedStamp(msg); i > 0 {
				h, msg = splitPrefix(msg[i:])
				p.match(h, trimRight(msg), mask)
			}
		} else {
			// Another CPU's prefix inside this one (garbled.go).
			p.recoverGarbled(h, trimRight(msg))
		}
	}
	return p.take()
}

// Flush returns events held back for context that can no longer complete
// (end of stream). Scan calls it at the end.
func (p *Parser) Flush() []Event {
	p.out = nil
	p.flushSelect()
	return p.take()
}

func (p *Parser) take() []Event {
	out := p.out
	p.out = nil
	return out
}

func (p *Parser) emit(ev Event) {
	if ev.Kind == HardLockup {
		p.lastHardLockup = ev.Line
	}
	p.out = append(p.out, ev)
}

// match runs the rule table over one message and reports whether a rule
// matched (even a context-only one).
func (p *Parser) match(h header, msg []byte, mask uint32) bool {
	for i := range rules {
		r := &rules[i]
		if mask&r.bit == 0 {
			continue
		}
		idx := r.re.FindSubmatchIndex(msg)
		if idx == nil {
			continue
		}
		ev := Event{Kind: r.kind, Line: p.line, Text: clean(msg, MaxTextLen)}
		if h.hasTime {
			t := h.time
			ev.Time = &t
		}
		m := match{src: msg, idx: idx, names: r.names}
		m.fill(&ev)
		for k, v := range r.fields {
			ev.setField(k, v)
		}
		if r.caller {
			if ev.CPU == nil && h.callerCPU >= 0 {
				ev.CPU = intPtr(h.callerCPU)
			}
			if ev.PID == nil && h.callerPID >= 0 {
				ev.PID = intPtr(h.callerPID)
			}
		}
		keep := r.kind != ""
		if r.build != nil {
			keep = r.build(p, &ev, m) && keep
		}
		if keep {
			p.emit(ev)
		}
		return true
	}
	return false
}

// match is one regexp match of a rule.
type match struct {
	src   []byte
	idx   []int
	names []string
}

// get returns the named group's text, "" if it did not participate.
func (m match) get(name string) string {
	for i, n := range m.names {
		if n == name && m.idx[2*i] >= 0 {
			return string(m.src[m.idx[2*i]:m.idx[2*i+1]])
		}
	}
	return ""
}

// fill applies the named-group conventions described at rule.
func (m match) fill(ev *Event) {
	for i, name := range m.names {
		if name == "" || name[0] == '_' || m.idx[2*i] < 0 {
			continue
		}
		v := m.src[m.idx[2*i]:m.idx[2*i+1]]
		switch name {
		case "cpu":
			if n, ok := atoiBytes(v); ok {
				ev.CPU = intPtr(n)
			}
		case "pid":
			if n, ok := atoiBytes(v); ok {
				ev.PID = intPtr(n)
			}
		case "comm":
			ev.Comm = clean(v, maxFieldLen)
		default:
			ev.setField(name, string(trimRight(v)))
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
