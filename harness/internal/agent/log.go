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

// kmsgMark writes one info line to the kernel log, best effort.
func kmsgMark(msg string) {
	if f, err := os.OpenFile(kmsgPath, os.O_WRONLY, 0); err == nil {
		_, _ = f.Write([]byte("<6>" + msg + "\n")) // <6> = KERN_INFO
		f.Close()
	}
}

// commOf is what the kernel would call a command: the basename of its
// path, cut to TASK_COMM_LEN-1, and never empty or with blanks (it is one
// field of the exit marker).
func commOf(path string) string {
	c := path
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		c = path[i+1:]
	}
	c = strings.Map(func(r rune) rune {
		if r <= ' ' {
			return '_'
		}
		return r
	}, c)
	if len(c) > 15 {
		c = c[:15]
	}
	if c == "" {
		c = "?"
	}
	return c
}
