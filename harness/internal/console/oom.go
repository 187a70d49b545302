package console

import "strings"

// oomSelect is a 4.x "Out of memory: Kill process N (comm) score S or
// sacrifice child" line waiting for the "Killed process" line that names
// the task actually killed; the pair is one oom_kill event.
type oomSelect struct {
	active  bool
	line    int
	time    *float64
	pid     int
	comm    string
	score   string
	message string
	text    string
}

// oomContext is the 4.19+ one-line summary
// "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/,task=memhog,pid=123,uid=0".
type oomContext struct {
	active bool
	line   int
	pid    int // -1 if absent
	fields map[string]string
}

// oomContextKeys are the summary keys we keep (all of them as of 6.12),
// mapped to field names; the key set bounds the context's size.
var oomContextKeys = map[string]string{
	"constraint":   "constraint",
	"nodemask":     "nodemask",
	"cpuset":       "cpuset",
	"mems_allowed": "mems_allowed",
	"oom_memcg":    "oom_memcg",
	"task_memcg":   "task_memcg",
}

// constraints maps enum oom_constraint names to field values.
var constraints = map[string]string{
	"CONSTRAINT_NONE":          "global",
	"CONSTRAINT_CPUSET":        "cpuset",
	"CONSTRAINT_MEMORY_POLICY": "mempolicy",
	"CONSTRAINT_MEMCG":         "memcg",
}

// oomKV maps the key:value names of "Killed process" and "oom_reaper:
// reaped process" to field names.
var oomKV = map[string]string{
	"total-vm":      "total_vm_kb",
	"anon-rss":      "anon_rss_kb",
	"file-rss":      "file_rss_kb",
	"shmem-rss":     "shmem_rss_kb",
	"UID":           "uid",
	"pgtables":      "pgtables_kb",
	"oom_score_adj": "oom_score_adj",
}

// invokedKV are the key=value names of "invoked oom-killer:" across
// versions (oom_adj in 2.6/3.x, nodemask in some 4.x).
var invokedKV = map[string]bool{
	"gfp_mask": true, "nodemask": true, "order": true, "oom_adj": true, "oom_score_adj": true,
}

func buildOOMInvoked(p *Parser, ev *Event, m match) bool {
	// A new OOM episode: whatever the last one left pending is stale.
	p.flushSelect()
	p.ctx = oomContext{}
	for _, kv := range strings.Split(m.get("_args"), ", ") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !invokedKV[k] {
			continue
		}
		if k == "gfp_mask" {
			// "0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP)" since 4.x.
			if mask, flags, ok := strings.Cut(v, "("); ok {
				v = mask
				ev.setField("gfp_flags", strings.TrimSuffix(flags, ")"))
			}
		}
		ev.setField(k, v)
	}
	return true
}

func buildOOMContext(p *Parser, _ *Event, m match) bool {
	c := oomContext{active: true, line: p.line, pid: -1, fields: map[string]string{}}
	last := ""
	for _, tok := range strings.Split(m.get("_args"), ",") {
		k, v, ok := strings.Cut(tok, "=")
		switch {
		case tok == "global_oom":
			last = ""
		case !ok:
			// nodemask and cgroup paths may contain commas
			// ("nodemask=0-1,3"): continue the previous value.
			if last != "" {
				c.fields[last] = clean(c.fields[last]+","+tok, maxFieldLen)
			}
		case k == "pid":
			if n, ok := atoiBytes([]byte(v)); ok {
				c.pid = n
			}
			last = ""
		case oomContextKeys[k] != "":
			last = oomContextKeys[k]
			c.fields[last] = clean(v, maxFieldLen)
		default:
			last = ""
		}
	}
	if v, ok := constraints[c.fields["constraint"]]; ok {
		c.fields["constraint"] = v
	}
	p.ctx = c
	return false
}

func buildOOMSelect(p *Parser, ev *Event, m match) bool {
	p.flushSelect()
	if ev.PID == nil {
		return false
	}
	p.sel = oomSelect{
		active:  true,
		line:    ev.Line,
		time:    ev.Time,
		pid:     *ev.PID,
		comm:    ev.Comm,
		score:   ev.Fields["score"],
		message: m.get("_message"),
		text:    ev.Text,
	}
	return false
}

func buildOOMKill(p *Parser, ev *Event, m match) bool {
	parseOOMKV(ev, m.get("_kv"))
	message := m.get("_message")
	selected := -1
	if p.sel.active && message == "" {
		// 4.x: this completes the "Kill process" line.
		message = p.sel.message
		selected = p.sel.pid
		ev.setField("score", p.sel.score)
		if ev.PID != nil && *ev.PID != p.sel.pid {
			// "or sacrifice child": a child died instead.
			ev.setField("selected_pid", itoa(p.sel.pid))
			ev.setField("selected_comm", p.sel.comm)
		}
		p.sel = oomSelect{}
	} else {
		p.flushSelect()
	}
	ev.setField("constraint", messageConstraint(message))
	if strings.Contains(message, "(oom_kill_allocating_task)") {
		ev.setField("policy", "oom_kill_allocating_task")
	}
	if c := &p.ctx; c.active && p.line-c.line <= contextWindow &&
		(c.pid < 0 || (ev.PID != nil && c.pid == *ev.PID) || c.pid == selected) {
		for k, v := range c.fields {
			ev.setField(k, v)
		}
		*c = oomContext{}
	}
	return true
}

// messageConstraint derives the constraint from oom_kill_process()'s
// message when no oom-kill: summary says better (before 4.19, or when the
// summary was rate limited away).
func messageConstraint(message string) string {
	switch {
	case strings.HasPrefix(message, "Memory cgroup"):
		return "memcg"
	case strings.HasPrefix(message, "Out of memory"):
		return "global"
	}
	return ""
}

// flushSelect reports a pending 4.x victim selection whose "Killed
// process" line never came (lost, or the victim exited first: the kernel
// then returns silently). It still was an OOM kill decision, so it is
// reported, marked unconfirmed.
func (p *Parser) flushSelect() {
	s := p.sel
	if !s.active {
		return
	}
	p.sel = oomSelect{}
	ev := Event{Kind: OOMKill, Line: s.line, Time: s.time, PID: intPtr(s.pid), Comm: s.comm, Text: s.text}
	ev.setField("score", s.score)
	ev.setField("constraint", messageConstraint(s.message))
	ev.setField("unconfirmed", "true")
	p.emit(ev)
}

func buildKV(_ *Parser, ev *Event, m match) bool {
	parseOOMKV(ev, m.get("_kv"))
	return true
}

// parseOOMKV parses "total-vm:4176kB, anon-rss:84kB, ..., UID:0
// pgtables:44kB oom_score_adj:0" into fields.
func parseOOMKV(ev *Event, s string) {
	for _, tok := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' }) {
		k, v, ok := strings.Cut(tok, ":")
		name := oomKV[k]
		if !ok || name == "" {
			continue
		}
		if strings.HasSuffix(name, "_kb") {
			v = strings.TrimSuffix(v, "kB")
		}
		ev.setField(name, v)
	}
}

// buildMarker turns the key=value list of an oomlab marker into fields;
// pid= also becomes the event's PID.
func buildMarker(_ *Parser, ev *Event, m match) bool {
	for _, kv := range strings.Fields(m.get("_kv")) {
		k, v, _ := strings.Cut(kv, "=")
		if k == "pid" {
			if n, ok := atoiBytes([]byte(v)); ok {
				ev.PID = intPtr(n)
			}
			continue
		}
		if k != "name" {
			ev.setField(k, v)
		}
	}
	return true
}
