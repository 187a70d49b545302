package vm

import (
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sleeper is a VM whose "QEMU" is sleep: what KilledFromOutside looks at
// (how the process ended, and whether Kill ended it) without a guest.
func sleeper(t *testing.T) *VM {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	v := &VM{cmd: cmd, done: make(chan struct{})}
	go func() { v.waitErr = cmd.Wait(); close(v.done) }()
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	return v
}

func waitDone(t *testing.T, v *VM) {
	t.Helper()
	select {
	case <-v.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the process did not end")
	}
}

// TestKilledFromOutside: a SIGKILL oomlab did not send is an error naming
// the signal; the runner's own Kill and a running process are not.
func TestKilledFromOutside(t *testing.T) {
	v := sleeper(t)
	if err := v.KilledFromOutside(); err != nil {
		t.Errorf("running: %v", err)
	}
	syscall.Kill(v.cmd.Process.Pid, syscall.SIGKILL) // not through v
	waitDone(t, v)
	err := v.KilledFromOutside()
	if err == nil || !strings.Contains(err.Error(), "signal 9") {
		t.Errorf("killed from outside: %v, want an error naming signal 9", err)
	}

	own := sleeper(t)
	own.Kill()
	waitDone(t, own)
	if err := own.KilledFromOutside(); err != nil {
		t.Errorf("killed by Kill: %v", err)
	}
}
