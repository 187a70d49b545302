package agent

import (
	"fmt"
	"os"
	"strings"
)

// consoleLog writes one line to stderr (the serial console in the guest)
// and, for errors, to /dev/kmsg so it appears in the kernel log with a
// timestamp next to what the kernel printed.
func consoleLog(toKmsg bool, format string, a ...any) {
	msg := strings.TrimRight(fmt.Sprintf(format, a...), "\n")
	fmt.Fprintf(os.Stderr, "oomlab-agent: %s\n", msg)
	if toKmsg {
		if f, err := os.OpenFile(kmsgPath, os.O_WRONLY, 0); err == nil {
			// <3> = KERN_ERR
			_, _ = f.Write([]byte("<3>oomlab-agent: " + msg + "\n"))
			f.Close()
		}
	}
}

func logErr(format string, a ...any) { consoleLog(true, format, a...) }
