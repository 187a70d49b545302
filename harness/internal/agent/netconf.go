package agent

import (
	"errors"
	"fmt"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ConfigureInterface assigns an IPv4 address ("10.0.2.15/24"; empty = none)
// to the interface and brings it up, with plain ioctls: the guest has no
// ip(8), and the ioctls need nothing beyond CONFIG_INET.
func ConfigureInterface(name, cidr string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ioctl := func(req uint, what string, set func(*unix.Ifreq) error) (*unix.Ifreq, error) {
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			return nil, err
		}
		if set != nil {
			if err := set(ifr); err != nil {
				return nil, err
			}
		}
		if err := unix.IoctlIfreq(fd, req, ifr); err != nil {
			return nil, fmt.Errorf("%s %s: %w", what, name, err)
		}
		return ifr, nil
	}
	if cidr != "" {
		ip, ipnet, err := net.ParseCIDR(cidr)
		if err != nil {
			return err
		}
		ip4, mask := ip.To4(), net.IP(ipnet.Mask).To4()
		if ip4 == nil || mask == nil {
			return fmt.Errorf("%s: not an IPv4 CIDR", cidr)
		}
		if _, err := ioctl(unix.SIOCSIFADDR, "SIOCSIFADDR", func(r *unix.Ifreq) error { return r.SetInet4Addr(ip4) }); err != nil {
			return err
		}
		if _, err := ioctl(unix.SIOCSIFNETMASK, "SIOCSIFNETMASK", func(r *unix.Ifreq) error { return r.SetInet4Addr(mask) }); err != nil {
			return err
		}
	}
	ifr, err := ioctl(unix.SIOCGIFFLAGS, "SIOCGIFFLAGS", nil)
	if err != nil {
		return err
	}
	flags := ifr.Uint16() | unix.IFF_UP | unix.IFF_RUNNING
	_, err = ioctl(unix.SIOCSIFFLAGS, "SIOCSIFFLAGS", func(r *unix.Ifreq) error { r.SetUint16(flags); return nil })
	return err
}

// rtentry is struct rtentry from <net/route.h> (amd64/arm64 layout; Go's
// natural alignment reproduces the C padding). x/sys/unix does not define it.
type rtentry struct {
	pad1    uint64
	dst     unix.RawSockaddrInet4
	gateway unix.RawSockaddrInet4
	genmask unix.RawSockaddrInet4
	flags   uint16
	pad2    int16
	pad3    uint64
	pad4    uintptr
	metric  int16
	dev     uintptr
	mtu     uint64
	window  uint64
	irtt    uint16
}

// AddDefaultRoute adds "default via gw" with SIOCADDRT. An existing
// identical route is not an error.
func AddDefaultRoute(gw string) error {
	ip := net.ParseIP(gw).To4()
	if ip == nil {
		return fmt.Errorf("gateway %q: not an IPv4 address", gw)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	rt := rtentry{flags: unix.RTF_UP | unix.RTF_GATEWAY}
	rt.dst.Family = unix.AF_INET
	rt.genmask.Family = unix.AF_INET
	rt.gateway.Family = unix.AF_INET
	copy(rt.gateway.Addr[:], ip)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCADDRT, uintptr(unsafe.Pointer(&rt)))
	if errno != 0 && !errors.Is(errno, unix.EEXIST) {
		return fmt.Errorf("SIOCADDRT default via %s: %w", gw, errno)
	}
	return nil
}
