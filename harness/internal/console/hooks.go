package console

import "regexp"

// panicHardLockup matches panic reasons that mean a hard lockup:
// nmi_panic(regs, "Hard LOCKUP") since 4.4, and 3.x's
// panic("Watchdog detected hard LOCKUP on cpu %d").
var panicHardLockup = regexp.MustCompile(`^(?:Hard LOCKUP|Watchdog detected hard LOCKUP on cpu (?P<cpu>\d+))`)

// buildPanic also reports a hard_lockup for a hard-lockup panic when the
// "Watchdog detected hard LOCKUP" line itself is not in the log (3.x
// printed only the panic; pastes often keep only the panic line).
func buildPanic(p *Parser, ev *Event, m match) bool {
	reason := m.get("reason")
	idx := panicHardLockup.FindStringSubmatchIndex(reason)
	if idx == nil || (p.lastHardLockup > 0 && p.line-p.lastHardLockup <= hardLockupWindow) {
		return true
	}
	hl := Event{Kind: HardLockup, Line: ev.Line, Time: ev.Time, CPU: ev.CPU, Text: ev.Text}
	sub := match{src: []byte(reason), idx: idx, names: panicHardLockup.SubexpNames()}
	sub.fill(&hl)
	hl.setField("via", "panic")
	p.emit(hl)
	return true
}

// buildBugDetail refines "BUG: <reason>" with the first bugDetails row
// that matches the reason.
func buildBugDetail(_ *Parser, ev *Event, m match) bool {
	reason := []byte(m.get("reason"))
	for _, re := range bugDetails {
		if idx := re.FindSubmatchIndex(reason); idx != nil {
			match{src: reason, idx: idx, names: re.SubexpNames()}.fill(ev)
			break
		}
	}
	return true
}
