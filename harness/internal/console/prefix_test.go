package console

import (
	"bytes"
	"testing"
)

func TestSplitPrefix(t *testing.T) {
	const msg = "BUG: x"
	tests := []struct {
		name    string
		in      string
		time    float64 // -1: no time
		cpu     int
		pid     int
		msg     string
		foreign bool
	}{
		{"bare", "BUG: x", -1, -1, -1, msg, false},
		{"printk time", "[   12.345678] BUG: x", 12.345678, -1, -1, msg, false},
		{"printk time, no padding", "[12.345678] BUG: x", 12.345678, -1, -1, msg, false},
		{"caller task", "[   12.345678][   T63] BUG: x", 12.345678, -1, 63, msg, false},
		{"caller cpu, dmesg spacing", "[   12.345678] [    C3] BUG: x", 12.345678, 3, -1, msg, false},
		{"syslog level", "<4>[    1.000000] BUG: x", 1, -1, -1, msg, false},
		{"dmesg -T", "[Mon Nov 23 10:00:00 2020] BUG: x", -1, -1, -1, msg, false},
		{"dmesg -T other locale", "[dim. 19 avril 18:03:30 2026] BUG: x", -1, -1, -1, msg, false},
		{"dmesg -e", "[Nov23 10:00] BUG: x", -1, -1, -1, msg, false},
		{"dmesg reltime", "[  +0.000123] BUG: x", -1, -1, -1, msg, false},
		{"dmesg -x", "kern  :warn  : [    2.500000] BUG: x", 2.5, -1, -1, msg, false},
		{"kmsg", "4,1233,12345678,-;BUG: x", 12.345678, -1, -1, msg, false},
		{"kmsg caller", "4,1233,12345678,c,caller=T81;BUG: x", 12.345678, -1, 81, msg, false},
		{"journal short", "Nov 23 10:00:00 host kernel: BUG: x", -1, -1, -1, msg, false},
		{"journal short, 1-digit day", "Nov  3 10:00:00 host kernel: BUG: x", -1, -1, -1, msg, false},
		{"journal short-precise", "Nov 23 10:00:00.123456 host kernel: BUG: x", -1, -1, -1, msg, false},
		{"journal short-iso", "2020-11-23T10:00:00+0100 host kernel: BUG: x", -1, -1, -1, msg, false},
		{"journal short-monotonic", "[   12.345678] host kernel: BUG: x", 12.345678, -1, -1, msg, false},
		{"dmesg iso", "2020-11-23T10:00:00,123456+01:00 BUG: x", -1, -1, -1, msg, false},
		{"kern.log", "Nov 23 10:00:00 host kernel: [ 5.250000] BUG: x", 5.25, -1, -1, msg, false},
		{"syslog userspace", "Nov 23 10:00:00 host memhog[81]: BUG: x", -1, -1, -1, "Nov 23 10:00:00 host memhog[81]: BUG: x", true},
		{"lkml quote", "> [ 1.500000] BUG: x", 1.5, -1, -1, msg, false},
		{"nested lkml quote", ">> > BUG: x", -1, -1, -1, msg, false},
		{"indented", "\t  BUG: x", -1, -1, -1, msg, false},
		{"message starting with a bracket", "[   1.000000] [drm] BUG: x", 1, -1, -1, "[drm] BUG: x", false},
		{"task table row is not a stamp", "[  1234]     0  1234 BUG: x", -1, -1, -1, "[  1234]     0  1234 BUG: x", false},
		{"kernel message with a colon word", "[ 1.000000] oom_reaper: reaped", 1, -1, -1, "oom_reaper: reaped", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, m := splitPrefix([]byte(tt.in))
			if string(m) != tt.msg {
				t.Errorf("msg = %q, want %q", m, tt.msg)
			}
			if tt.time < 0 && h.hasTime || tt.time >= 0 && (!h.hasTime || h.time != tt.time) {
				t.Errorf("time = %v (has %v), want %v", h.time, h.hasTime, tt.time)
			}
			if h.callerCPU != tt.cpu || h.callerPID != tt.pid {
				t.Errorf("caller = C%d T%d, want C%d T%d", h.callerCPU, h.callerPID, tt.cpu, tt.pid)
			}
			if h.foreign != tt.foreign {
				t.Errorf("foreign = %v", h.foreign)
			}
		})
	}
}

func TestParseStampExact(t *testing.T) {
	// Same value as strconv.ParseFloat, so JSON prints the digits of the log.
	for in, want := range map[string]float64{
		"0.000000": 0, "12.345678": 12.345678, "617.319540": 617.31954,
		"5489652.470650": 5489652.47065, "12345678.123456": 12345678.123456,
	} {
		got, ok := parseStamp([]byte(in))
		if !ok || got != want {
			t.Errorf("parseStamp(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "1", "1.", ".5", "1.2.3", "1234567890123456.1", "12a.5"} {
		if _, ok := parseStamp([]byte(in)); ok {
			t.Errorf("parseStamp(%q) accepted", in)
		}
	}
}

func TestEmbeddedStamp(t *testing.T) {
	for in, want := range map[string]int{
		"login: [  209.887120] INFO: task": 7,
		"x [1.5] y":                        -1, // not the %5lu.%06lu kernel format
		"[[[":                              -1,
		"a [ 12.123456]":                   2,
	} {
		if got := embeddedStamp([]byte(in)); got != want {
			t.Errorf("embeddedStamp(%q) = %d, want %d", in, got, want)
		}
	}
}

// The DFA prefilter must agree with bytes.Contains for every needle.
func TestPrefilterAgreesWithContains(t *testing.T) {
	inputs := []string{
		"", "oo", "oom-kil", "oom-kill:", "xxINFO: taskINFO: task ", "BUBUG", "Kill processKilled process",
		"invoked oom-killeR invoked oom-killer", "LOCKUPLOCKUP", "soft lockup", "Kernel panicKernel panic",
		"general protection fault", "WARNIN", "WARNING", "Handed ove", "oom_reaper: x",
	}
	for _, in := range inputs {
		var want uint32
		for i, n := range needles {
			if bytes.Contains([]byte(in), n) {
				want |= 1 << i
			}
		}
		if got := filter.match([]byte(in)); got != want {
			t.Errorf("match(%q) = %b, want %b", in, got, want)
		}
	}
}

// Needles straddling the split point of the interleaved walk must be found.
func TestPrefilterSplit(t *testing.T) {
	for _, n := range needles {
		for size := len(n); size < 8*filter.overlap; size++ {
			for at := 0; at+len(n) <= size; at++ {
				line := bytes.Repeat([]byte{'.'}, size)
				copy(line[at:], n)
				var want uint32
				for i, m := range needles {
					if bytes.Contains(line, m) {
						want |= 1 << i
					}
				}
				if got := filter.match(line); got != want {
					t.Fatalf("needle %q at %d of %d: got %b, want %b", n, at, size, got, want)
				}
			}
		}
	}
}
