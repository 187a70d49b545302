package protocol

import "strconv"

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
)

// KmsgCommand writes text as one line into the guest's kernel log, so that
// it shares the printk clock with the kernel's own lines.
func KmsgCommand(text string) string { return JoinWords(CmdKmsg, text) }

// MetricsCommand streams one Sample every intervalMS milliseconds.
func MetricsCommand(intervalMS int64) string {
	return CmdMetrics + " --interval-ms " + strconv.FormatInt(intervalMS, 10)
}
