package afpacket

import (
	"encoding/binary"
	"errors"
	"unsafe"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/pkg/dataplane/driver"
	"golang.org/x/sys/unix"
)

var errNoHeadroom = errors.New("afpacket: frame without headroom for the virtio-net header or shorter than an Ethernet header")

// Transmit queues frame b for the next Flush, which runs by itself when the
// batch is full.
//
// The virtio-net header is written into the buffer's headroom right in front
// of the frame, so header and frame leave in one iovec without a copy. A
// frame longer than the MTU (plus its link-layer header) is refused unless it
// is a GSO super-packet that the kernel will segment or pass whole; see GSO
// for when the latter is safe. An encapsulated super-packet (whose GSO type
// does not segment its outermost L4 header) is refused with driver.ErrTooBig
// too, because the kernel would drop or mangle it (see GSO and
// gsoCarriable): the caller must segment it.
func (q *Queue) Transmit(p *buffer.Pool, b buffer.Index) error {
	if q.fd < 0 {
		return errClosed
	}
	m := p.Meta(b)
	if m.Start < vnetHdrLen || m.Len < ethHdrLen {
		return errNoHeadroom
	}
	d := p.Data(b)
	start, end := int(m.Start), int(m.Start)+int(m.Len)
	l2 := l2Len(d[start:end])
	if m.Flags&buffer.FlagGSO == 0 {
		if int(m.Len) > q.mtu+l2 {
			return driver.ErrTooBig
		}
	} else if !gsoCarriable(d[start:end], l2, m) {
		return driver.ErrTooBig
	}
	h := d[start-vnetHdrLen : start]
	driver.EncodeVnetHdr(h, m, l2)
	i := q.n
	q.iov[i].Base = &h[0]
	q.iov[i].SetLen(end - start + vnetHdrLen)
	q.bufs[i] = b
	q.pool = p
	q.n++
	if q.n == maxBatch {
		// Errors are counted in TxDropped; b is no longer the
		// caller's either way.
		_ = q.Flush(p)
	}
	return nil
}

// Flush sends the queued frames with sendmmsg(2) and frees their buffers.
//
// sendmmsg stops at the first frame the kernel refuses and reports how many
// went out; we then retry from there. What the refusal means decides what
// happens to the rest:
//
//   - EAGAIN: the socket's send buffer is full (the device or qdisc is
//     backed up). The frames that did not fit are dropped, since a worker
//     must not wait; the rest of this batch would meet the same full buffer.
//   - ENOBUFS: the qdisc dropped this one frame; the next may pass.
//   - ENETDOWN, ENXIO, ENODEV: the link is down or gone; everything is
//     dropped and Flush returns driver.ErrDown.
//   - anything else (EMSGSIZE, EINVAL for an inconsistent virtio-net
//     header): only that frame is bad; it is dropped and the first such error
//     returned.
//
// Every dropped frame is counted in TxDropped.
func (q *Queue) Flush(p *buffer.Pool) error {
	if q.n == 0 {
		return nil
	}
	var err error
	for i := 0; i < q.n; {
		// Syscall, not RawSyscall: a batch of super-packets copies
		// megabytes, and the runtime should know this thread is busy.
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(q.fd), uintptr(unsafe.Pointer(&q.msgs[i])), uintptr(q.n-i), 0, 0, 0)
		if e == 0 && r > 0 {
			q.stats.TxFrames += uint64(r)
			i += int(r)
			continue
		}
		switch e {
		case unix.EINTR:
			continue
		case 0, unix.EAGAIN:
			q.stats.TxDropped += uint64(q.n - i)
			i = q.n
		case unix.ENETDOWN, unix.ENXIO, unix.ENODEV:
			q.stats.TxDropped += uint64(q.n - i)
			i = q.n
			err = driver.ErrDown
		case unix.ENOBUFS:
			q.stats.TxDropped++
			i++
		default:
			q.stats.TxDropped++
			i++
			if err == nil {
				if e == unix.EMSGSIZE {
					err = driver.ErrTooBig
				} else {
					err = e
				}
			}
		}
	}
	for _, b := range q.bufs[:q.n] {
		p.Free(b)
	}
	q.n = 0
	return err
}

// gsoCarriable reports whether the kernel will carry super-packet f (with
// link-layer header length l2) as m describes it: the L4 header that m's GSO
// type segments must be the outermost one, right after the outer IP header.
//
// AF_PACKET marks the skb SKB_GSO_DODGY, and unless the device has
// NETIF_F_GSO_ROBUST (veth and most NICs do not) validate_xmit_skb has the
// GSO handler of the outermost header check it: tcp_gso_segment and
// __udp_gso_segment accept and pass it whole, but udp4_ufo_fragment (VXLAN
// outside) and ipip_gso_segment (IPIP outside) refuse a TCP gso_type, and
// __udp_gso_segment refuses a checksum that does not start at the outer UDP
// header (UDP GSO inside VXLAN); the frame is then dropped and sendmmsg fails
// with ENOMEM (TestTransmitEncapsulatedGSO records this). The virtio-net
// header of AF_PACKET (10 or 12 bytes) has no room for the UDP tunnel GSO
// fields newer virtio revisions define, so such frames can only be segmented
// by the dataplane. Checking here turns a silent drop into ErrTooBig.
func gsoCarriable(f []byte, l2 int, m *buffer.Meta) bool {
	if len(f) < l2+40 {
		return false
	}
	var proto byte
	var l3 int
	switch binary.BigEndian.Uint16(f[l2-2:]) {
	case unix.ETH_P_IP:
		proto, l3 = f[l2+9], int(f[l2]&0x0f)*4
	case unix.ETH_P_IPV6:
		proto, l3 = f[l2+6], 40
	default:
		return false
	}
	if m.Flags&buffer.FlagCsumPart != 0 && int(m.CsumStart) != l3 {
		return false
	}
	switch m.GSOType &^ vnetGSOECN {
	case VnetGSOTCPv4, VnetGSOTCPv6:
		return proto == unix.IPPROTO_TCP
	case VnetGSOUDP, VnetGSOUDPL4:
		return proto == unix.IPPROTO_UDP
	}
	return false
}
