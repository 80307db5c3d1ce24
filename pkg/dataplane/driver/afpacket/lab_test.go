package afpacket

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/test/netlab"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// lab is a veth pair between two fresh network namespaces: va (10.77.0.1) in
// nsA, where the tests usually open the queues, and vb (10.77.0.2) in nsB,
// the "other node". Two namespaces, not one, because traffic between two
// addresses of one namespace never crosses the veth.
type lab struct {
	nsA, nsB   string
	macA, macB net.HardwareAddr
	ipA, ipB   netip.Addr
}

const (
	ifA = "va"
	ifB = "vb"
)

func newLab(t testing.TB) *lab {
	t.Helper()
	netlab.Require(t)
	l := &lab{
		nsA: netlab.Netns(t, "vnpkt"),
		nsB: netlab.Netns(t, "vnpkt"),
		ipA: netip.MustParseAddr("10.77.0.1"),
		ipB: netip.MustParseAddr("10.77.0.2"),
	}
	for _, ns := range []string{l.nsA, l.nsB} {
		// No IPv6: its router and neighbour solicitations would be
		// noise in every test.
		netlab.MustRun(t, "ip", "netns", "exec", ns, "sysctl", "-qw",
			"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	}
	netlab.MustRun(t, "ip", "-n", l.nsA, "link", "add", ifA, "type", "veth", "peer", "name", ifB, "netns", l.nsB)
	netlab.MustRun(t, "ip", "-n", l.nsA, "addr", "add", l.ipA.String()+"/24", "dev", ifA)
	netlab.MustRun(t, "ip", "-n", l.nsB, "addr", "add", l.ipB.String()+"/24", "dev", ifB)
	netlab.MustRun(t, "ip", "-n", l.nsA, "link", "set", ifA, "up")
	netlab.MustRun(t, "ip", "-n", l.nsB, "link", "set", ifB, "up")
	l.macA = linkMAC(t, l.nsA, ifA)
	l.macB = linkMAC(t, l.nsB, ifB)
	// Static neighbours: no ARP frames among the test's frames (the
	// stacks answer test traffic with ICMP, which needs a neighbour).
	netlab.MustRun(t, "ip", "-n", l.nsA, "neigh", "replace", l.ipB.String(), "lladdr", l.macB.String(), "dev", ifA, "nud", "permanent")
	netlab.MustRun(t, "ip", "-n", l.nsB, "neigh", "replace", l.ipA.String(), "lladdr", l.macA.String(), "dev", ifB, "nud", "permanent")
	return l
}

func linkMAC(t testing.TB, ns, ifname string) net.HardwareAddr {
	t.Helper()
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	link, err := nl.LinkByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	return link.Attrs().HardwareAddr
}

// inNS runs fn on a thread inside ns (see netlab.Do for why the thread is
// unlocked only after its namespace was restored).
func inNS(ns string, fn func() error) error { return netlab.Do(ns, fn) }

// openQueues opens queues on ifname in ns, closed when the test ends.
func openQueues(t testing.TB, ns, ifname string, opts Options) []*Queue {
	t.Helper()
	var qs []*Queue
	err := inNS(ns, func() (err error) {
		qs, err = Open(ifname, opts)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, q := range qs {
			q.Close()
		}
	})
	return qs
}

// rawSocket is a plain AF_PACKET socket on ifname in ns, the way a test plays
// the other side of the link: optionally with a virtio-net header, never
// seeing its own transmissions.
func rawSocket(t testing.TB, ns, ifname string, vnet bool) int {
	t.Helper()
	fd := -1
	err := inNS(ns, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		if vnet {
			if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
				return err
			}
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
			return err
		}
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20)
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 16<<20)
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
	})
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func send(t testing.TB, fd int, b []byte) {
	t.Helper()
	if _, err := unix.Write(fd, b); err != nil {
		t.Fatalf("send %d bytes: %v", len(b), err)
	}
}

// recvMatching returns the next frame on fd for which match is true.
func recvMatching(t testing.TB, fd int, match func([]byte) bool, timeout time.Duration) []byte {
	t.Helper()
	buf := make([]byte, 1<<17)
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("no matching frame within %v", timeout)
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(pfd, int(left/time.Millisecond)+1); err != nil && err != unix.EINTR {
			t.Fatal(err)
		}
		if pfd[0].Revents&unix.POLLIN == 0 {
			continue
		}
		n, _, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
		if err != nil {
			if err == unix.EAGAIN {
				continue
			}
			t.Fatal(err)
		}
		if match(buf[:n]) {
			return append([]byte(nil), buf[:n]...)
		}
	}
}

// rxFrame is a received frame copied out of the pool.
type rxFrame struct {
	data  []byte
	meta  buffer.Meta
	queue int
}

// collect receives from qs until want frames matching match arrived or
// timeout passed, freeing every buffer.
func collect(t testing.TB, qs []*Queue, p *buffer.Pool, match func([]byte) bool, want int, timeout time.Duration) []rxFrame {
	t.Helper()
	var got []rxFrame
	var out [64]buffer.Index
	pfd := make([]unix.PollFd, len(qs))
	deadline := time.Now().Add(timeout)
	for len(got) < want && time.Now().Before(deadline) {
		for i, q := range qs {
			pfd[i] = unix.PollFd{Fd: int32(q.FD()), Events: unix.POLLIN}
		}
		if _, err := unix.Poll(pfd, 20); err != nil && err != unix.EINTR {
			t.Fatal(err)
		}
		for i, q := range qs {
			for {
				n := q.Receive(p, out[:])
				for _, b := range out[:n] {
					pkt := p.Packet(b)
					if match == nil || match(pkt) {
						got = append(got, rxFrame{data: append([]byte(nil), pkt...), meta: *p.Meta(b), queue: i})
					}
					p.Free(b)
				}
				if n < len(out) {
					break
				}
			}
		}
	}
	return got
}

// Frame construction. Test frames carry a magic UDP port so that matchers
// ignore the odd ARP frame.

const testPort = 47000

func ipv4Header(b []byte, src, dst netip.Addr, proto uint8, payloadLen int) {
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(20+payloadLen))
	binary.BigEndian.PutUint16(b[4:], 0x1234)
	b[8] = 64
	b[9] = proto
	s, d := src.As4(), dst.As4()
	copy(b[12:16], s[:])
	copy(b[16:20], d[:])
	binary.BigEndian.PutUint16(b[10:], ^fold(sum(b[:20])))
}

func sum(b []byte) uint32 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	return s
}

func fold(s uint32) uint16 {
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// pseudoSum is the IPv4 pseudo-header sum, which is what the L4 checksum
// field holds while the checksum is partial (CHECKSUM_PARTIAL/NEEDS_CSUM).
func pseudoSum(src, dst netip.Addr, proto uint8, l4len int) uint16 {
	s, d := src.As4(), dst.As4()
	return fold(sum(s[:]) + sum(d[:]) + uint32(proto) + uint32(l4len))
}

func ethHeader(b []byte, dst, src net.HardwareAddr, etype uint16) {
	copy(b[0:6], dst)
	copy(b[6:12], src)
	binary.BigEndian.PutUint16(b[12:], etype)
}

// udpFrame builds Ethernet/IPv4/UDP with a complete UDP checksum.
func udpFrame(dst, src net.HardwareAddr, sip, dip netip.Addr, sport, dport uint16, payload []byte) []byte {
	b := make([]byte, 14+20+8+len(payload))
	ethHeader(b, dst, src, unix.ETH_P_IP)
	ipv4Header(b[14:], sip, dip, unix.IPPROTO_UDP, 8+len(payload))
	u := b[34:]
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
	copy(u[8:], payload)
	c := ^fold(uint32(pseudoSum(sip, dip, unix.IPPROTO_UDP, len(u))) + sum(u))
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(u[6:], c)
	return b
}

// vlanTag inserts an 802.1Q tag into frame f.
func vlanTag(f []byte, tci uint16) []byte {
	b := make([]byte, len(f)+4)
	copy(b, f[:12])
	binary.BigEndian.PutUint16(b[12:], unix.ETH_P_8021Q)
	binary.BigEndian.PutUint16(b[14:], tci)
	copy(b[16:], f[12:])
	return b
}

// tcpSuper builds an Ethernet/IPv4/TCP super-packet of payloadLen bytes with
// a partial checksum, as a TSO-capable stack would hand it to a device.
func tcpSuper(dst, src net.HardwareAddr, sip, dip netip.Addr, payloadLen int) []byte {
	b := make([]byte, 14+20+20+payloadLen)
	ethHeader(b, dst, src, unix.ETH_P_IP)
	ipv4Header(b[14:], sip, dip, unix.IPPROTO_TCP, 20+payloadLen)
	tcp := b[34:]
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], 5201)
	binary.BigEndian.PutUint32(tcp[4:], 1000)
	binary.BigEndian.PutUint32(tcp[8:], 2000)
	tcp[12] = 5 << 4
	tcp[13] = 0x18 // PSH|ACK
	binary.BigEndian.PutUint16(tcp[14:], 65535)
	binary.BigEndian.PutUint16(tcp[16:], pseudoSum(sip, dip, unix.IPPROTO_TCP, 20+payloadLen))
	for i := range tcp[20:] {
		tcp[20+i] = byte(i * 7)
	}
	return b
}

// udpSuper is the UDP (USO, VIRTIO_NET_HDR_GSO_UDP_L4) equivalent.
func udpSuper(dst, src net.HardwareAddr, sip, dip netip.Addr, dport uint16, payload []byte) []byte {
	b := make([]byte, 14+20+8+len(payload))
	ethHeader(b, dst, src, unix.ETH_P_IP)
	ipv4Header(b[14:], sip, dip, unix.IPPROTO_UDP, 8+len(payload))
	u := b[34:]
	binary.BigEndian.PutUint16(u[0:], 40000)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
	binary.BigEndian.PutUint16(u[6:], pseudoSum(sip, dip, unix.IPPROTO_UDP, 8+len(payload)))
	copy(u[8:], payload)
	return b
}

// vnetHdr encodes a virtio-net header for the test's raw sockets.
func vnetHdr(flags, gsoType uint8, hdrLen, gsoSize, csumStart, csumOff uint16) []byte {
	h := make([]byte, vnetHdrLen)
	h[0], h[1] = flags, gsoType
	binary.LittleEndian.PutUint16(h[2:], hdrLen)
	binary.LittleEndian.PutUint16(h[4:], gsoSize)
	binary.LittleEndian.PutUint16(h[6:], csumStart)
	binary.LittleEndian.PutUint16(h[8:], csumOff)
	return h
}

// isTestUDP matches IPv4/UDP frames (tagged or not) to testPort.
func isTestUDP(f []byte) bool {
	l2 := l2Len(f)
	if len(f) < l2+28 || binary.BigEndian.Uint16(f[l2-2:]) != unix.ETH_P_IP || f[l2+9] != unix.IPPROTO_UDP {
		return false
	}
	return binary.BigEndian.Uint16(f[l2+22:]) == testPort
}

// put copies frame f into a new buffer of p, as the dataplane would have it.
func put(t testing.TB, p *buffer.Pool, f []byte) buffer.Index {
	t.Helper()
	var b buffer.Index
	var ok bool
	if len(f) <= buffer.SmallDataSize {
		b, ok = p.Alloc()
	} else {
		b, ok = p.AllocLarge()
	}
	if !ok {
		t.Fatal("pool empty")
	}
	m := p.Meta(b)
	m.Len = int32(len(f))
	copy(p.Data(b)[m.Start:], f)
	return b
}

func fdCount(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func (l *lab) String() string { return fmt.Sprintf("%s/%s <-> %s/%s", l.nsA, ifA, l.nsB, ifB) }
