// Package tun creates pod interfaces: Linux tun (L3) or tap (L2) devices
// whose kernel side lives in the pod's network namespace and whose file
// descriptors stay with vecnetd.
//
// Every device is opened with IFF_VNET_HDR and offloads enabled
// (TUNSETOFFLOAD), so the pod's TCP stack hands us 64 KiB super-packets with
// a virtio-net header instead of 1500-byte segments, and we hand it
// super-packets back: the per-packet costs of the dataplane are then paid
// once per 64 KiB, which is what lets a userspace hop keep up with the
// kernel (see DESIGN.md section 2).
//
// A device exists only while vecnetd holds its descriptors (no
// TUNSETPERSIST), so a crashed vecnetd never leaves stale interfaces in
// pods.
package tun

import (
	"errors"
	"fmt"
	"github.com/vecnet/vecnet/pkg/dataplane/driver"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// VnetHdrLen is the size of struct virtio_net_hdr, the tun default
// (TUNSETVNETHDRSZ not called).
const VnetHdrLen = driver.VnetHdrLen

// Offload bits of TUNSETOFFLOAD (include/uapi/linux/if_tun.h).
const (
	tunFCsum = 0x01
	tunFTSO4 = 0x02
	tunFTSO6 = 0x04
	tunFUSO4 = 0x20
	tunFUSO6 = 0x40
)

// Gateway addresses the pod's default routes point to on tap devices. The
// dataplane answers ARP and neighbour solicitations for them (and proxies
// every other address), the way Calico's kernel dataplane uses 169.254.1.1.
var (
	GatewayIPv4 = netip.MustParseAddr("169.254.1.1")
	GatewayIPv6 = netip.MustParseAddr("fe80::1")
)

// ErrExists reports a name clash in the pod namespace.
var ErrExists = errors.New("already exists")

// Kind is tun or tap.
type Kind int

const (
	Tun Kind = iota + 1
	Tap
)

// Config describes a pod interface.
type Config struct {
	Kind Kind
	// Netns is a name under /var/run/netns or an absolute path.
	Netns string
	// Name of the interface in the namespace.
	Name  string
	Addrs []netip.Prefix
	MTU   int
	// Queues > 1 creates a multiqueue device: one descriptor per queue.
	Queues       int
	DefaultRoute bool
}

// Device is a created pod interface.
type Device struct {
	Config
	FDs      []int
	Offloads string
	// PodMAC is the kernel-side MAC of a tap device.
	PodMAC [6]byte
}

// NetnsPath resolves a namespace name or path.
func NetnsPath(ns string) string {
	if strings.ContainsRune(ns, '/') {
		return ns
	}
	return filepath.Join("/var/run/netns", ns)
}

// Create makes the device in the target namespace and configures it. On any
// error nothing is left behind: the descriptors are closed, which destroys
// the device.
func Create(cfg Config) (_ *Device, err error) {
	if cfg.Queues < 1 {
		cfg.Queues = 1
	}
	if cfg.MTU == 0 {
		cfg.MTU = 1500
	}
	path := NetnsPath(cfg.Netns)
	target, err := netns.GetFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("netns %q: %w", cfg.Netns, err)
	}
	defer target.Close()
	h, err := netlink.NewHandleAt(target)
	if err != nil {
		return nil, fmt.Errorf("netns %q: netlink: %w", cfg.Netns, err)
	}
	defer h.Close()
	// TUNSETIFF on an existing name attaches to that device instead of
	// failing, which could hijack another pod's interface: refuse first.
	if _, err := h.LinkByName(cfg.Name); err == nil {
		return nil, fmt.Errorf("interface %q in netns %q: %w", cfg.Name, cfg.Netns, ErrExists)
	}

	d := &Device{Config: cfg}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if err := inNetns(target, func() error { return d.open() }); err != nil {
		return nil, err
	}
	if err := d.configure(h); err != nil {
		return nil, err
	}
	return d, nil
}

// inNetns runs fn on an OS thread switched into ns. A thread whose namespace
// could not be restored is never returned to the Go scheduler.
func inNetns(ns netns.NsHandle, fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("current netns: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("setns: %w", err)
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		// Leave the thread locked: Go terminates it when this goroutine
		// exits, so no other goroutine runs in the wrong namespace.
		return errors.Join(ferr, fmt.Errorf("restore netns: %w", err))
	}
	runtime.UnlockOSThread()
	return ferr
}

func (d *Device) open() error {
	flags := uint16(unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if d.Kind == Tap {
		flags |= unix.IFF_TAP
	} else {
		flags |= unix.IFF_TUN
	}
	if d.Queues > 1 {
		flags |= unix.IFF_MULTI_QUEUE
	}
	for q := 0; q < d.Queues; q++ {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			return fmt.Errorf("open /dev/net/tun: %w", err)
		}
		d.FDs = append(d.FDs, fd)
		ifr, err := unix.NewIfreq(d.Name)
		if err != nil {
			return fmt.Errorf("interface name %q: %w", d.Name, err)
		}
		ifr.SetUint16(flags)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			return fmt.Errorf("TUNSETIFF %q queue %d: %w", d.Name, q, err)
		}
		off := []struct {
			bits int
			name string
		}{
			{tunFCsum | tunFTSO4 | tunFTSO6 | tunFUSO4 | tunFUSO6, "csum,tso4,tso6,uso4,uso6"},
			{tunFCsum | tunFTSO4 | tunFTSO6, "csum,tso4,tso6"}, // kernels before 6.2 lack USO
		}
		var oerr error
		for _, o := range off {
			if oerr = unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, o.bits); oerr == nil {
				d.Offloads = o.name
				break
			}
		}
		if oerr != nil {
			return fmt.Errorf("TUNSETOFFLOAD %q: %w", d.Name, oerr)
		}
	}
	return nil
}

func (d *Device) configure(h *netlink.Handle) error {
	link, err := h.LinkByName(d.Name)
	if err != nil {
		return fmt.Errorf("interface %q: %w", d.Name, err)
	}
	if err := h.LinkSetMTU(link, d.MTU); err != nil {
		return fmt.Errorf("interface %q: set mtu %d: %w", d.Name, d.MTU, err)
	}
	if d.Kind == Tap {
		copy(d.PodMAC[:], link.Attrs().HardwareAddr)
	}
	for _, p := range d.Addrs {
		a := &netlink.Addr{IPNet: prefixToIPNet(p)}
		if p.Addr().Is6() {
			// Duplicate address detection would keep the address
			// tentative (unusable) for a second; the dataplane owns the
			// link, so there is nobody to collide with.
			a.Flags = unix.IFA_F_NODAD
		}
		if err := h.AddrAdd(link, a); err != nil {
			return fmt.Errorf("interface %q: add address %s: %w", d.Name, p, err)
		}
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("interface %q: set up: %w", d.Name, err)
	}
	if !d.DefaultRoute {
		return nil
	}
	has4, has6 := false, false
	for _, p := range d.Addrs {
		has4 = has4 || p.Addr().Is4()
		has6 = has6 || p.Addr().Is6()
	}
	for _, fam := range []struct {
		want bool
		dst  *net.IPNet
		gw   netip.Addr
	}{
		{has4, &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, GatewayIPv4},
		{has6, &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}, GatewayIPv6},
	} {
		if !fam.want {
			continue
		}
		r := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: fam.dst}
		if d.Kind == Tap {
			// An L2 link needs a next hop to resolve; onlink because the
			// gateway is in none of the pod's subnets.
			r.Gw = fam.gw.AsSlice()
			r.Flags = int(netlink.FLAG_ONLINK)
		} else {
			r.Scope = netlink.SCOPE_LINK
		}
		if err := h.RouteReplace(r); err != nil {
			return fmt.Errorf("interface %q: default route: %w", d.Name, err)
		}
	}
	return nil
}

// Close releases the descriptors, which removes the device from the pod.
func (d *Device) Close() error {
	var errs []error
	for _, fd := range d.FDs {
		if err := unix.Close(fd); err != nil {
			errs = append(errs, err)
		}
	}
	d.FDs = nil
	return errors.Join(errs...)
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// Exists reports whether the namespace exists, for clear API errors.
func Exists(ns string) bool {
	_, err := os.Stat(NetnsPath(ns))
	return err == nil
}
