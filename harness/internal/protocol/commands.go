package protocol

import (
	"strconv"
	"strings"
)

// Agent builtins the host calls by name. (The agent has more; see its
// package documentation.)
const (
	CmdRun      = "run"      // run OPTIONS -- CMD: see Spawn
	CmdTrue     = "true"     // liveness check
	CmdKmsg     = "kmsg"     // kmsg TEXT...: one line into the kernel log
	CmdPs       = "ps"       // JSON []ProcInfo
	CmdUptime   = "uptime"   // JSON Uptime
	CmdMetrics  = "metrics"  // metrics [--interval-ms N] [--count N]: JSON Sample lines
	CmdPoweroff = "poweroff" // power the guest off once the exit status is out
	CmdExists   = "exists"   // exists PATH...: "1 PATH" or "0 PATH" a line, exit 0 (a scenario's requires:)
)

// ExistsCommand asks which of paths exist in the guest (ParseExists reads
// the answer).
func ExistsCommand(paths ...string) string {
	return JoinWords(append([]string{CmdExists}, paths...)...)
}

// ParseExists reads the output of ExistsCommand: path -> exists. A path
// the output does not mention is missing from the map.
func ParseExists(out string) map[string]bool {
	m := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		flag, path, ok := strings.Cut(line, " ")
		if ok && (flag == "0" || flag == "1") {
			m[path] = flag == "1"
		}
	}
	return m
}

// KmsgCommand writes text as one line into the guest's kernel log, so that
// it shares the printk clock with the kernel's own lines.
func KmsgCommand(text string) string { return JoinWords(CmdKmsg, text) }

// MetricsCommand streams one Sample every intervalMS milliseconds.
func MetricsCommand(intervalMS int64) string {
	return CmdMetrics + " --interval-ms " + strconv.FormatInt(intervalMS, 10)
}
