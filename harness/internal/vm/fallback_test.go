package vm

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// The test binary is also a fake QEMU (TestMain): with OOMLAB_FAKE_QEMU
// set it serves the QMP handshake on the -qmp socket and then, for the
// mode named there, behaves like a QEMU whose guest cannot boot.
func TestMain(m *testing.M) {
	if mode := os.Getenv("OOMLAB_FAKE_QEMU"); mode != "" {
		os.Exit(fakeQEMUMain(mode, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// fakeQEMUMain: mode "exit1" exits 1 at once, under any accelerator (an
// image QEMU refuses); "exit0" serves QMP, then exits 0 without a console
// byte (a guest that triple-faults under -no-reboot).
func fakeQEMUMain(mode string, args []string) int {
	if mode == "exit1" {
		fmt.Fprintln(os.Stderr, "qemu: invalid kernel header")
		return 1
	}
	var sock string
	for i, a := range args {
		if a == "-qmp" && i+1 < len(args) {
			sock = strings.TrimPrefix(strings.SplitN(args[i+1], ",", 2)[0], "unix:")
		}
	}
	l, err := net.Listen("unix", sock)
	if err != nil {
		return 2
	}
	c, err := l.Accept()
	if err != nil {
		return 2
	}
	r := bufio.NewReader(c)
	handshake(c, r)
	time.Sleep(200 * time.Millisecond)
	return 0
}

// startFake runs Start with Accel auto on the fake QEMU in mode and says
// whether KVM was remembered as broken after it.
func startFake(t *testing.T, mode string) (*VM, bool, error) {
	t.Helper()
	if !kvmUsable() {
		t.Skip("no usable /dev/kvm: Start would not try KVM")
	}
	kvmBrokenM.Lock()
	kvmBroken = false
	kvmBrokenM.Unlock()
	t.Setenv("OOMLAB_FAKE_QEMU", mode)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	v, err := Start(context.Background(), Config{QEMU: exe, Kernel: "/dev/null", Initrd: "/dev/null", CPUs: 1, MemoryMB: 128, Accel: "auto", TempDir: t.TempDir(), QMPTimeout: 5 * time.Second})
	if v != nil {
		t.Cleanup(func() { v.Stop(time.Second) })
	}
	kvmBrokenM.Lock()
	broken := kvmBroken
	kvmBroken = false
	kvmBrokenM.Unlock()
	return v, broken, err
}

// TestGuestExitIsNotBrokenKVM: a KVM guest that ends with status 0
// before its first console byte (a truncated bzImage) is handed back as
// an exited machine; KVM is not given up for the later guests.
func TestGuestExitIsNotBrokenKVM(t *testing.T) {
	v, broken, err := startFake(t, "exit0")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-v.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the fake QEMU did not exit")
	}
	if v.Accel != "kvm" || v.ExitError() != nil || broken {
		t.Errorf("accel %s, exit %v, KVM remembered broken %v; want the KVM machine, exited 0, KVM kept", v.Accel, v.ExitError(), broken)
	}
}

// TestStartFailureIsNotBrokenKVM: QEMU failing the same way under TCG as
// under KVM is an error of its own; KVM is not remembered broken.
func TestStartFailureIsNotBrokenKVM(t *testing.T) {
	_, broken, err := startFake(t, "exit1")
	if err == nil || !strings.Contains(err.Error(), "invalid kernel header") {
		t.Errorf("error %v, want QEMU's own", err)
	}
	if broken {
		t.Error("a failure under both accelerators marked KVM broken")
	}
}
