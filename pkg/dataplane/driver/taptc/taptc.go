// Package taptc is the uplink driver that keeps GSO super-packets whole
// across nodes: tc programs move the dataplane's frames between the uplink
// and a tap that vecnetd reads and writes (see uplinkfilter/redirect.go).
//
// Why a tap: the kernel describes an skb's segmentation to user space only
// through the virtio-net header, and of the three ways to get frames off a
// NIC only tun/tap speaks its UDP-tunnel extension (virtio 1.4
// VIRTIO_NET_F_HOST_UDP_TUNNEL_GSO, Linux 6.17). With it a 64 KiB TCP
// super-packet from a pod leaves encapsulated in VXLAN as one skb, crosses
// veths and bridges whole, is segmented by the NIC (or not at all between
// namespaces), and arrives at the other node's vecnetd as one read.
// AF_XDP has no GSO; AF_PACKET's header has no tunnel types, and the
// kernel cannot re-segment an encapsulated frame marked with the inner
// TCP type, so both cut super-packets into MTU-sized frames first.
//
// Costs: one read(2) or write(2) per frame (a tap has no batching), so
// small packets are better served by AF_XDP.
package taptc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
	"unsafe"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/pkg/dataplane/driver"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// HdrLen is the size of struct virtio_net_hdr_v1_hash_tunnel (virtio 1.4
// section 5.1.6): the 12-byte v1 header, 8 bytes of hash report fields
// (unused here) and the outer transport and inner network header offsets.
const HdrLen = 24

// Virtio-net header values (include/uapi/linux/virtio_net.h).
const (
	gsoUDPTunnelIPv4  = 0x20
	gsoUDPTunnelIPv6  = 0x40
	tunFCsum          = 0x01
	tunFTSO4          = 0x02
	tunFTSO6          = 0x04
	tunFTSOECN        = 0x08
	tunFUSO4          = 0x20
	tunFUSO6          = 0x40
	tunFUDPTunnelGSO  = 0x80
	ethHdrLen         = 14
	udpVXLANInnerEthr = 8 + 8 + 14 // UDP, VXLAN and inner Ethernet headers
)

// Tap is the tap device of one uplink with one queue per worker.
type Tap struct {
	Name    string
	Ifindex int
	Queues  []*Queue
	// TunnelGSO reports whether the kernel took UDP tunnel GSO: without
	// it (before Linux 6.17) the driver still works, but VXLAN
	// super-packets are segmented first.
	TunnelGSO bool
}

// Queue is one queue of the tap. It implements driver.Queue.
type Queue struct {
	fd     int
	tunnel bool
	iov    [2]unix.Iovec
	stats  driver.QueueStats
}

var _ driver.Queue = (*Queue)(nil)

// Open creates tap name with queues queues and the given MTU in the
// calling thread's network namespace, up, without addresses and with IPv6
// disabled so the kernel never sends anything of its own through it.
func Open(name string, queues, mtu int) (_ *Tap, err error) {
	if queues < 1 {
		queues = 1
	}
	if _, err := netlink.LinkByName(name); err == nil {
		return nil, fmt.Errorf("taptc: interface %q exists", name)
	}
	t := &Tap{Name: name}
	defer func() {
		if err != nil {
			t.Close()
		}
	}()
	flags := uint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if queues > 1 {
		flags |= unix.IFF_MULTI_QUEUE
	}
	t.TunnelGSO = true
	for i := 0; i < queues; i++ {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			return nil, fmt.Errorf("taptc: open /dev/net/tun: %w", err)
		}
		q := &Queue{fd: fd}
		t.Queues = append(t.Queues, q)
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			return nil, fmt.Errorf("taptc: name %q: %w", name, err)
		}
		ifr.SetUint16(flags)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			return nil, fmt.Errorf("taptc: TUNSETIFF %q: %w", name, err)
		}
		if err := unix.IoctlSetPointerInt(fd, unix.TUNSETVNETHDRSZ, HdrLen); err != nil {
			return nil, fmt.Errorf("taptc: TUNSETVNETHDRSZ: %w", err)
		}
		base := tunFCsum | tunFTSO4 | tunFTSO6 | tunFTSOECN | tunFUSO4 | tunFUSO6
		if t.TunnelGSO {
			if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, base|tunFUDPTunnelGSO); err != nil {
				t.TunnelGSO = false
			}
		}
		if !t.TunnelGSO {
			if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, base); err != nil {
				return nil, fmt.Errorf("taptc: TUNSETOFFLOAD: %w", err)
			}
		}
	}
	for _, q := range t.Queues {
		q.tunnel = t.TunnelGSO
	}
	link, err := netlink.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("taptc: %w", err)
	}
	t.Ifindex = link.Attrs().Index
	if err := writeSysctl("/proc/sys/net/ipv6/conf/"+name+"/disable_ipv6", "1"); err != nil && !errors.Is(err, unix.ENOENT) {
		return nil, fmt.Errorf("taptc: disable IPv6 on %s: %w", name, err)
	}
	if err := netlink.LinkSetMTU(link, mtu); err != nil {
		return nil, fmt.Errorf("taptc: set mtu: %w", err)
	}
	if err := netlink.LinkSetARPOff(link); err != nil {
		return nil, fmt.Errorf("taptc: noarp: %w", err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("taptc: set up: %w", err)
	}
	return t, nil
}

func writeSysctl(path, v string) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	_, err = unix.Write(fd, []byte(v))
	return err
}

// SetMTU follows the uplink's MTU: frames redirected to the tap must fit
// it unless they are GSO super-packets.
func (t *Tap) SetMTU(mtu int) error {
	link, err := netlink.LinkByIndex(t.Ifindex)
	if err != nil {
		return err
	}
	return netlink.LinkSetMTU(link, mtu)
}

// Close closes every queue, which removes the tap.
func (t *Tap) Close() error {
	var errs []error
	for _, q := range t.Queues {
		errs = append(errs, q.Close())
	}
	return errors.Join(errs...)
}

// FD returns the queue's descriptor.
func (q *Queue) FD() int { return q.fd }

// Close releases the queue's descriptor.
func (q *Queue) Close() error {
	if q.fd < 0 {
		return nil
	}
	err := unix.Close(q.fd)
	q.fd = -1
	return err
}

// Stats returns the queue's counters.
func (q *Queue) Stats() driver.QueueStats { return q.stats }

// Receive reads up to len(out) frames. Like driver/tun's reader it offers
// read(2) a small buffer followed by the tail of a large one, so a normal
// frame costs no extra copy and a super-packet one 2 KiB copy. The large
// buffer goes back to the pool when unused (two stack operations): a
// queue keeps no buffer of its own, so closing it from the control plane
// never touches a worker's pool.
func (q *Queue) Receive(p *buffer.Pool, out []buffer.Index) int {
	if q.fd < 0 {
		return 0
	}
	n := 0
	for n < len(out) {
		spare, ok := p.AllocLarge()
		if !ok {
			break
		}
		small, ok := p.Alloc()
		if !ok {
			p.Free(spare)
			break
		}
		sd, ld := p.Data(small), p.Data(spare)
		const head = buffer.Headroom - HdrLen
		const smallCap = buffer.SmallSize - head
		q.iov[0].Base = &sd[head]
		q.iov[0].SetLen(smallCap)
		q.iov[1].Base = &ld[head+smallCap]
		q.iov[1].SetLen(len(ld) - head - smallCap)
		r, _, e := unix.RawSyscall(unix.SYS_READV, uintptr(q.fd), uintptr(unsafe.Pointer(&q.iov[0])), 2)
		if e != 0 || int(r) < HdrLen+ethHdrLen {
			p.Free(small)
			p.Free(spare)
			if e == 0 {
				q.stats.RxDropped++
				continue
			}
			if e != syscall.EAGAIN {
				q.stats.RxDropped++
			}
			break
		}
		b, data := small, sd
		if int(r) > smallCap {
			copy(ld[head:head+smallCap], sd[head:])
			p.Free(small)
			b, data = spare, ld
		} else {
			p.Free(spare)
		}
		m := p.Meta(b)
		*m = buffer.Meta{Start: buffer.Headroom, Len: int32(r) - HdrLen}
		if !parseHdr(data[head:buffer.Headroom], m) {
			p.Free(b)
			q.stats.RxDropped++
			continue
		}
		out[n] = b
		n++
	}
	q.stats.RxFrames += uint64(n)
	return n
}

// parseHdr maps a received header onto m: the virtio-net part as for every
// device, then the UDP tunnel GSO bits, which only a tap speaks.
func parseHdr(h []byte, m *buffer.Meta) bool {
	var v [driver.VnetHdrLen]byte
	copy(v[:], h)
	tunnel := v[1]&(gsoUDPTunnelIPv4|gsoUDPTunnelIPv6) != 0
	v[1] &^= gsoUDPTunnelIPv4 | gsoUDPTunnelIPv6
	if !driver.DecodeVnetHdr(v[:], m, ethHdrLen) {
		return false
	}
	if tunnel && m.Flags&buffer.FlagGSO != 0 {
		m.Flags |= buffer.FlagGSOTunnel
	}
	return true
}

// Transmit writes frame b with its virtio-net header and frees it. A tap
// write is synchronous, so there is nothing to flush.
func (q *Queue) Transmit(p *buffer.Pool, b buffer.Index) error {
	if q.fd < 0 {
		return driver.ErrDown
	}
	m := p.Meta(b)
	if m.Start < HdrLen || m.Len < ethHdrLen {
		return driver.ErrTooBig
	}
	d := p.Data(b)
	h := d[m.Start-HdrLen : m.Start]
	driver.EncodeVnetHdr(h, m, ethHdrLen)
	if m.Flags&buffer.FlagGSO != 0 && m.Flags&buffer.FlagGSOTunnel != 0 {
		if !q.tunnel || m.Flags&buffer.FlagCsumPart == 0 {
			return driver.ErrTooBig
		}
		// Outer IPv4 header at the frame's L3 offset (vecnetd's tunnels
		// are over IPv4), then UDP, VXLAN, inner Ethernet.
		ihl := int(d[m.Start+ethHdrLen]&0x0f) * 4
		outerTH := ethHdrLen + ihl
		binary.LittleEndian.PutUint16(h[20:22], uint16(outerTH))
		binary.LittleEndian.PutUint16(h[22:24], uint16(outerTH+udpVXLANInnerEthr))
		h[1] |= gsoUDPTunnelIPv4
	}
	end := int(m.Start + m.Len)
	_, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(q.fd), uintptr(unsafe.Pointer(&h[0])), uintptr(end-int(m.Start)+HdrLen))
	if e != 0 {
		if e == syscall.EIO {
			return driver.ErrDown
		}
		return e
	}
	q.stats.TxFrames++
	p.Free(b)
	return nil
}

// Flush has nothing to do: Transmit writes at once.
func (q *Queue) Flush(p *buffer.Pool) error { return nil }
