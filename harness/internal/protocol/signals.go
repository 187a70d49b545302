package protocol

import (
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// SignalName returns the SSH (RFC 4254) name of sig, i.e. the kernel name
// without the "SIG" prefix: "KILL", "SEGV", ...
func SignalName(sig syscall.Signal) string {
	if n := unix.SignalName(sig); n != "" {
		return strings.TrimPrefix(n, "SIG")
	}
	return strconv.Itoa(int(sig))
}

// ParseSignal accepts "KILL", "SIGKILL", "kill" or "9".
func ParseSignal(name string) (syscall.Signal, bool) {
	if n, err := strconv.Atoi(name); err == nil {
		if n > 0 && n < 65 {
			return syscall.Signal(n), true
		}
		return 0, false
	}
	n := strings.ToUpper(name)
	if !strings.HasPrefix(n, "SIG") {
		n = "SIG" + n
	}
	if s := unix.SignalNum(n); s != 0 {
		return s, true
	}
	return 0, false
}
