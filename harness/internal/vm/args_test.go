package vm

import (
	"net/netip"
	"slices"
	"testing"
)

// TestUserNet checks that the forwarded port reaches GuestSSHPort and that
// the guest address and gateway are QEMU user networking's defaults.
func TestUserNet(t *testing.T) {
	c := Config{Kernel: "bzImage", Initrd: "initrd", CPUs: 2, MemoryMB: 256}
	args := c.args("tcg", "/tmp/qmp.sock", 2222)
	if !slices.Contains(args, "user,id=n0,hostfwd=tcp:127.0.0.1:2222-:22") {
		t.Errorf("no hostfwd to guest port %d in %q", GuestSSHPort, args)
	}
	p, err := netip.ParsePrefix(GuestCIDR)
	if err != nil {
		t.Fatal(err)
	}
	slirp := netip.MustParsePrefix("10.0.2.0/24") // -netdev user's default net
	if p.Masked() != slirp || !slirp.Contains(netip.MustParseAddr(GuestGateway)) || p.Addr() == netip.MustParseAddr(GuestGateway) {
		t.Errorf("guest %s, gateway %s: not on QEMU's user network %s", GuestCIDR, GuestGateway, slirp)
	}
}
