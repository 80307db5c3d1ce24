package node_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/pkg/dataplane/driver/tun/tuntest"
	"github.com/vecnet/vecnet/pkg/dataplane/graph"
	"github.com/vecnet/vecnet/pkg/dataplane/node"
	"github.com/vecnet/vecnet/pkg/dataplane/tables"
	"github.com/vecnet/vecnet/pkg/header"
)

// harness runs the real graph, tun-input to interface-output, on one
// worker context polled by the test, with tuntest devices as pods.
type harness struct {
	t     testing.TB
	w     *tables.Writer
	nodes *node.Nodes
	c     *graph.Context
	learn chan node.NeighborEvent
	qs    []node.RxQueue
}

const (
	nSmall = 512
	nLarge = 8
)

func newHarness(t testing.TB) *harness {
	h := &harness{t: t, w: tables.NewWriter(), learn: make(chan node.NeighborEvent, 64)}
	g := graph.New()
	h.nodes = node.Register(g, node.Env{Workers: 1, Learn: h.learn})
	if err := g.Finalize(); err != nil {
		t.Fatal(err)
	}
	h.c = graph.NewContext(g, 0, buffer.NewPool(nSmall, nLarge))
	t.Cleanup(func() {
		h.nodes.TunInput.Release(0)
		if s, l := h.c.Pool.FreeCount(); s != nSmall || l != nLarge {
			t.Errorf("buffer leak: %d/%d small, %d/%d large free", s, nSmall, l, nLarge)
		}
	})
	return h
}

type pod struct {
	dev *tuntest.Device
	idx uint32
	mac [6]byte
}

var podMAC = [6]byte{0x02, 0xaa, 0, 0, 0, 1}

func (h *harness) addPod(name string, kind tables.InterfaceKind, mtu uint32, addrs ...string) pod {
	h.t.Helper()
	dev, err := tuntest.New()
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(dev.Close)
	var pa []netip.Addr
	for _, a := range addrs {
		pa = append(pa, netip.MustParseAddr(a))
	}
	mac := [6]byte{0x02, 0xfe, 0, 0, 0, byte(len(h.qs) + 1)}
	idx, err := h.w.AddInterface(tables.Interface{Name: name, Kind: kind, MTU: mtu, MAC: mac, PodAddrs: pa, TxFDs: []int{dev.FD}})
	if err != nil {
		h.t.Fatal(err)
	}
	var rs []tables.Route
	for _, a := range pa {
		rs = append(rs, tables.Route{Prefix: netip.PrefixFrom(a, a.BitLen()), Source: tables.SourceHost, Paths: []tables.Path{{Interface: idx}}})
	}
	if err := h.w.AddRoutes(rs); err != nil {
		h.t.Fatal(err)
	}
	if kind == tables.KindTap {
		for _, a := range pa {
			h.w.LearnNeighbor(idx, a, podMAC)
		}
	}
	h.qs = append(h.qs, node.RxQueue{FD: dev.FD, IfIndex: idx, L2: kind == tables.KindTap})
	h.nodes.TunInput.SetQueues(0, h.qs)
	return pod{dev: dev, idx: idx, mac: mac}
}

// poll runs the worker loop until the pods' queues are empty, applying
// neighbour events as the daemon's learn loop would.
func (h *harness) poll() {
	for i := 0; i < 100; i++ {
		h.c.Tables = h.w.Snapshot()
		h.c.Now = time.Now()
		n := h.c.Poll(h.nodes.TunInputIndex, h.nodes.TunInput.Poll)
		learned := false
		for len(h.learn) > 0 {
			ev := <-h.learn
			h.w.LearnNeighbor(ev.IfIndex, ev.IP, ev.MAC)
			learned = true
		}
		if n == 0 && !learned {
			return
		}
	}
}

func (h *harness) send(p pod, pkt []byte) {
	h.t.Helper()
	if err := p.dev.Send(pkt, tuntest.VnetHdr{}); err != nil {
		h.t.Fatal(err)
	}
	h.poll()
}

func recv(t testing.TB, p pod) ([]byte, tuntest.VnetHdr) {
	t.Helper()
	pkt, hdr, err := p.dev.Recv(time.Second)
	if err != nil {
		t.Fatalf("recv: %v", err)
	}
	return pkt, hdr
}

func expectNothing(t testing.TB, p pod) {
	t.Helper()
	if pkt, _, err := p.dev.Recv(20 * time.Millisecond); err == nil {
		t.Fatalf("unexpected packet: %x", pkt)
	}
}

func ip4(src, dst string, ttl uint8, proto uint8, payload []byte) []byte {
	b := make([]byte, 20+len(payload))
	ip := header.IPv4(b)
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(b)), TTL: ttl, Protocol: proto,
		Flags: header.IPv4FlagDontFragment, Src: netip.MustParseAddr(src).As4(), Dst: netip.MustParseAddr(dst).As4()})
	ip.SetChecksum(ip.CalculateChecksum())
	copy(b[20:], payload)
	return b
}

func ip6(src, dst string, hop uint8, nh uint8, payload []byte) []byte {
	b := make([]byte, 40+len(payload))
	header.IPv6(b).Encode(&header.IPv6Fields{PayloadLength: uint16(len(payload)), NextHeader: nh, HopLimit: hop,
		Src: netip.MustParseAddr(src).As16(), Dst: netip.MustParseAddr(dst).As16()})
	copy(b[40:], payload)
	return b
}

func echo4(id uint16) []byte {
	b := make([]byte, 16)
	m := header.ICMPv4(b)
	m.SetType(header.ICMPv4EchoRequest)
	m.SetIdent(id)
	m.SetSequence(1)
	copy(b[8:], "vecnet!!")
	m.SetChecksum(m.CalculateChecksum())
	return b
}

func echo6(src, dst string) []byte {
	b := make([]byte, 16)
	m := header.ICMPv6(b)
	m.SetType(header.ICMPv6EchoRequest)
	m.SetIdent(7)
	copy(b[8:], "vecnet!!")
	m.SetChecksum(m.CalculateChecksum(netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()))
	return b
}

func twoTunPods(t *testing.T) (*harness, pod, pod) {
	h := newHarness(t)
	a := h.addPod("tun0", tables.KindTun, 1500, "10.0.0.2", "fd00::2")
	b := h.addPod("tun1", tables.KindTun, 1500, "10.0.0.3", "fd00::3")
	return h, a, b
}

func TestForwardIPv4(t *testing.T) {
	h, a, b := twoTunPods(t)
	in := ip4("10.0.0.2", "10.0.0.3", 64, header.ProtocolUDP, []byte("01234567payload"))
	h.send(a, in)
	out, _ := recv(t, b)
	ip := header.IPv4(out)
	if ip.TTL() != 63 || !ip.IsChecksumValid() {
		t.Fatalf("forwarded: ttl %d checksum valid %v", ip.TTL(), ip.IsChecksumValid())
	}
	if !bytes.Equal(out[20:], in[20:]) {
		t.Fatalf("payload changed")
	}
	expectNothing(t, a)
}

func TestForwardIPv6(t *testing.T) {
	h, a, b := twoTunPods(t)
	h.send(a, ip6("fd00::2", "fd00::3", 64, header.ProtocolUDP, []byte("01234567")))
	out, _ := recv(t, b)
	if hl := header.IPv6(out).HopLimit(); hl != 63 {
		t.Fatalf("hop limit %d, want 63", hl)
	}
}

// A TCP super-packet crosses whole, its virtio-net header intact.
func TestForwardKeepsGSO(t *testing.T) {
	h, a, b := twoTunPods(t)
	payload := make([]byte, 20+60000)
	tcp := header.TCP(payload)
	tcp.SetDataOffset(20)
	in := ip4("10.0.0.2", "10.0.0.3", 64, header.ProtocolTCP, payload)
	hdr := tuntest.VnetHdr{Flags: 1, GSOType: 1, HdrLen: 40, GSOSize: 1448, CsumStart: 20, CsumOffset: 16}
	if err := a.dev.Send(in, hdr); err != nil {
		t.Fatal(err)
	}
	h.poll()
	out, got := recv(t, b)
	if len(out) != len(in) {
		t.Fatalf("length %d, want %d", len(out), len(in))
	}
	if got != hdr {
		t.Fatalf("virtio-net header %+v, want %+v", got, hdr)
	}
}

func TestTTLExpired(t *testing.T) {
	for _, withAddr := range []bool{false, true} {
		t.Run(fmt.Sprint("addr=", withAddr), func(t *testing.T) {
			h, a, _ := twoTunPods(t)
			wantSrc := "192.0.0.8" // RFC 7600
			if withAddr {
				if err := h.w.AddAddress("tun0", netip.MustParsePrefix("10.255.0.1/32")); err != nil {
					t.Fatal(err)
				}
				wantSrc = "10.255.0.1"
			}
			in := ip4("10.0.0.2", "10.0.0.3", 1, header.ProtocolUDP, []byte("01234567"))
			h.send(a, in)
			out, _ := recv(t, a)
			ip := header.IPv4(out)
			icmp := header.ICMPv4(ip.Payload())
			if icmp.Type() != header.ICMPv4TimeExceeded || !icmp.IsChecksumValid() || !ip.IsChecksumValid() {
				t.Fatalf("want valid time exceeded, got %x", out)
			}
			if got := netip.AddrFrom4(ip.SourceAddress()).String(); got != wantSrc {
				t.Errorf("source %s, want %s", got, wantSrc)
			}
			if !bytes.Equal(icmp.Payload(), in) {
				t.Errorf("quote %x, want the original datagram %x", icmp.Payload(), in)
			}
		})
	}
}

func TestHopLimitExpired(t *testing.T) {
	h, a, _ := twoTunPods(t)
	h.send(a, ip6("fd00::2", "fd00::3", 1, header.ProtocolUDP, []byte("01234567")))
	out, _ := recv(t, a)
	ip := header.IPv6(out)
	icmp := header.ICMPv6(ip.Payload())
	if icmp.Type() != header.ICMPv6TimeExceeded || !icmp.IsChecksumValid(ip.SourceAddress(), ip.DestinationAddress()) {
		t.Fatalf("want valid ICMPv6 time exceeded, got %x", out)
	}
}

func TestNoRoute(t *testing.T) {
	h, a, _ := twoTunPods(t)
	h.send(a, ip4("10.0.0.2", "10.99.0.1", 64, header.ProtocolUDP, []byte("01234567")))
	out, _ := recv(t, a)
	icmp := header.ICMPv4(header.IPv4(out).Payload())
	if icmp.Type() != header.ICMPv4DstUnreachable || icmp.Code() != header.ICMPv4NetUnreachable {
		t.Fatalf("want net unreachable, got type %d code %d", icmp.Type(), icmp.Code())
	}
	h.send(a, ip6("fd00::2", "fd99::1", 64, header.ProtocolUDP, []byte("01234567")))
	out, _ = recv(t, a)
	icmp6 := header.ICMPv6(header.IPv6(out).Payload())
	if icmp6.Type() != header.ICMPv6DstUnreachable || icmp6.Code() != header.ICMPv6NoRoute {
		t.Fatalf("want no route, got type %d code %d", icmp6.Type(), icmp6.Code())
	}
}

// No ICMP error about an ICMP error (RFC 1812 section 4.3.2.7).
func TestNoErrorAboutError(t *testing.T) {
	h, a, _ := twoTunPods(t)
	te := make([]byte, 8+28)
	te[0] = byte(header.ICMPv4TimeExceeded)
	h.send(a, ip4("10.0.0.2", "10.99.0.1", 64, header.ProtocolICMP, te))
	expectNothing(t, a)
}

func TestEchoToDataplaneAddress(t *testing.T) {
	h, a, _ := twoTunPods(t)
	if err := h.w.AddAddress("tun0", netip.MustParsePrefix("10.255.0.1/32")); err != nil {
		t.Fatal(err)
	}
	if err := h.w.AddAddress("tun0", netip.MustParsePrefix("fd00:ff::1/128")); err != nil {
		t.Fatal(err)
	}
	h.send(a, ip4("10.0.0.2", "10.255.0.1", 64, header.ProtocolICMP, echo4(9)))
	out, _ := recv(t, a)
	ip := header.IPv4(out)
	icmp := header.ICMPv4(ip.Payload())
	if icmp.Type() != header.ICMPv4EchoReply || !icmp.IsChecksumValid() || icmp.Ident() != 9 {
		t.Fatalf("want echo reply, got %x", out)
	}
	if netip.AddrFrom4(ip.SourceAddress()).String() != "10.255.0.1" {
		t.Fatalf("reply from %v", netip.AddrFrom4(ip.SourceAddress()))
	}
	h.send(a, ip6("fd00::2", "fd00:ff::1", 64, header.ProtocolICMPv6, echo6("fd00::2", "fd00:ff::1")))
	out, _ = recv(t, a)
	ip6h := header.IPv6(out)
	icmp6 := header.ICMPv6(ip6h.Payload())
	if icmp6.Type() != header.ICMPv6EchoReply || !icmp6.IsChecksumValid(ip6h.SourceAddress(), ip6h.DestinationAddress()) {
		t.Fatalf("want echo6 reply, got %x", out)
	}
	// UDP to the dataplane gets port unreachable.
	h.send(a, ip4("10.0.0.2", "10.255.0.1", 64, header.ProtocolUDP, []byte("01234567")))
	out, _ = recv(t, a)
	if c := header.ICMPv4(header.IPv4(out).Payload()).Code(); c != header.ICMPv4PortUnreachable {
		t.Fatalf("want port unreachable, got code %d", c)
	}
}

func TestTooBig(t *testing.T) {
	h := newHarness(t)
	a := h.addPod("tun0", tables.KindTun, 1500, "10.0.0.2", "fd00::2")
	h.addPod("tun1", tables.KindTun, 1280, "10.0.0.3", "fd00::3")
	h.send(a, ip4("10.0.0.2", "10.0.0.3", 64, header.ProtocolUDP, make([]byte, 1400)))
	out, _ := recv(t, a)
	icmp := header.ICMPv4(header.IPv4(out).Payload())
	if icmp.Code() != header.ICMPv4FragmentationNeeded || icmp.MTU() != 1280 {
		t.Fatalf("want fragmentation needed mtu 1280, got code %d mtu %d", icmp.Code(), icmp.MTU())
	}
	h.send(a, ip6("fd00::2", "fd00::3", 64, header.ProtocolUDP, make([]byte, 1400)))
	out, _ = recv(t, a)
	icmp6 := header.ICMPv6(header.IPv6(out).Payload())
	if icmp6.Type() != header.ICMPv6PacketTooBig || icmp6.MTU() != 1280 {
		t.Fatalf("want packet too big 1280, got type %d mtu %d", icmp6.Type(), icmp6.MTU())
	}
	if len(out) > 1280 {
		t.Fatalf("ICMPv6 error of %d bytes exceeds the minimum MTU", len(out))
	}
}

func eth(dst, src [6]byte, typ uint16, payload []byte) []byte {
	b := make([]byte, 14+len(payload))
	header.Ethernet(b).Encode(dst, src, typ)
	copy(b[14:], payload)
	return b
}

var bcast = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

func TestTapARPAndND(t *testing.T) {
	h := newHarness(t)
	p := h.addPod("tap0", tables.KindTap, 1500, "10.0.0.2", "fd00::2")
	arp := make([]byte, header.ARPSize)
	header.ARP(arp).Encode(header.ARPRequest, podMAC, [4]byte{10, 0, 0, 2}, [6]byte{}, [4]byte{169, 254, 1, 1})
	h.send(p, eth(bcast, podMAC, header.EtherTypeARP, arp))
	out, _ := recv(t, p)
	reply := header.ARP(out[14:])
	if reply.Op() != header.ARPReply || reply.SenderHW() != p.mac || reply.SenderIP() != [4]byte{169, 254, 1, 1} || header.Ethernet(out).Dst() != podMAC {
		t.Fatalf("bad ARP reply %x", out)
	}
	// An ARP probe (sender 0.0.0.0) and a request for the pod's own
	// address are not answered.
	header.ARP(arp).Encode(header.ARPRequest, podMAC, [4]byte{}, [6]byte{}, [4]byte{10, 0, 0, 2})
	h.send(p, eth(bcast, podMAC, header.EtherTypeARP, arp))
	expectNothing(t, p)

	src := netip.MustParseAddr("fe80::aa").As16()
	target := netip.MustParseAddr("fe80::1").As16()
	dst := header.SolicitedNodeAddress(target)
	ns := make([]byte, 32)
	n := header.EncodeNeighborSolicit(ns, src, dst, target, podMAC)
	h.send(p, eth(header.IPv6MulticastMAC(dst), podMAC, header.EtherTypeIPv6,
		ip6("fe80::aa", netip.AddrFrom16(dst).String(), 255, header.ProtocolICMPv6, ns[:n])))
	out, _ = recv(t, p)
	ip := header.IPv6(out[14:])
	na := header.NDPNeighborAdvert(ip.Payload())
	if header.ValidateNeighborAdvert(na) != header.NDPOK || na.TargetAddress() != target || !na.Solicited() {
		t.Fatalf("bad neighbor advertisement %x", out)
	}
	if mac, ok := na.TargetLinkLayerAddress(); !ok || mac != p.mac {
		t.Fatalf("NA target MAC %x, want %x", mac, p.mac)
	}
	if !header.ICMPv6(na).IsChecksumValid(ip.SourceAddress(), ip.DestinationAddress()) {
		t.Fatalf("NA checksum invalid")
	}
}

// A packet to an unresolved neighbour on a tap triggers an ARP request;
// the reply completes the adjacency and the next packet goes through with
// the neighbour's MAC.
func TestTapGlean(t *testing.T) {
	h := newHarness(t)
	a := h.addPod("tun0", tables.KindTun, 1500, "10.0.0.2")
	tap := h.addPod("tap0", tables.KindTap, 1500, "10.0.0.3")
	if err := h.w.AddRoutes([]tables.Route{{Prefix: netip.MustParsePrefix("10.9.0.0/24"), Paths: []tables.Path{{Interface: tap.idx}}}}); err != nil {
		t.Fatal(err)
	}
	h.send(a, ip4("10.0.0.2", "10.9.0.5", 64, header.ProtocolUDP, []byte("01234567")))
	out, _ := recv(t, tap)
	if header.Ethernet(out).Type() != header.EtherTypeARP || header.ARP(out[14:]).TargetIP() != [4]byte{10, 9, 0, 5} {
		t.Fatalf("want ARP request for 10.9.0.5, got %x", out)
	}
	other := [6]byte{0x02, 0xbb, 0, 0, 0, 5}
	arp := make([]byte, header.ARPSize)
	header.ARP(arp).Encode(header.ARPReply, other, [4]byte{10, 9, 0, 5}, tap.mac, header.ARP(out[14:]).SenderIP())
	h.send(tap, eth(tap.mac, other, header.EtherTypeARP, arp))
	h.send(a, ip4("10.0.0.2", "10.9.0.5", 64, header.ProtocolUDP, []byte("01234567")))
	out, _ = recv(t, tap)
	e := header.Ethernet(out)
	if e.Type() != header.EtherTypeIPv4 || e.Dst() != other || e.Src() != tap.mac {
		t.Fatalf("after resolution want IPv4 to %x, got %x", other, out)
	}
}

func TestECMPSpreadsFlowsAndKeepsEachOnOnePath(t *testing.T) {
	h := newHarness(t)
	a := h.addPod("tun0", tables.KindTun, 1500, "10.0.0.2")
	var paths []tables.Path
	var outs []pod
	for i := 0; i < 3; i++ {
		p := h.addPod(fmt.Sprintf("tun%d", i+1), tables.KindTun, 1500, fmt.Sprintf("10.0.1.%d", i+1))
		outs = append(outs, p)
		paths = append(paths, tables.Path{Interface: p.idx})
	}
	if err := h.w.AddRoutes([]tables.Route{{Prefix: netip.MustParsePrefix("10.50.0.0/16"), Paths: paths}}); err != nil {
		t.Fatal(err)
	}
	count := func() []int {
		n := make([]int, len(outs))
		for i, p := range outs {
			for {
				if _, _, err := p.dev.Recv(5 * time.Millisecond); err != nil {
					break
				}
				n[i]++
			}
		}
		return n
	}
	udp := func(sport uint16) []byte {
		u := make([]byte, 8)
		binary.BigEndian.PutUint16(u, sport)
		binary.BigEndian.PutUint16(u[2:], 80)
		return u
	}
	for i := 0; i < 300; i++ {
		h.send(a, ip4("10.0.0.2", "10.50.0.1", 64, header.ProtocolUDP, udp(uint16(1000+i))))
	}
	for i, n := range count() {
		if n < 60 {
			t.Errorf("path %d got %d of 300 flows", i, n)
		}
	}
	for i := 0; i < 30; i++ {
		h.send(a, ip4("10.0.0.2", "10.50.0.1", 64, header.ProtocolUDP, udp(4242)))
	}
	used := 0
	for _, n := range count() {
		if n > 0 {
			used++
		}
	}
	if used != 1 {
		t.Errorf("one flow used %d paths", used)
	}
}

// FuzzGraph feeds arbitrary bytes as packets from a tun and a tap pod: the
// graph must neither panic nor leak a buffer (checked at cleanup).
func FuzzGraph(f *testing.F) {
	f.Add([]byte{}, false, uint8(0))
	f.Add(ip4("10.0.0.2", "10.0.0.3", 64, header.ProtocolUDP, []byte("01234567")), false, uint8(0))
	f.Add(ip4("10.0.0.2", "10.0.0.3", 1, header.ProtocolICMP, echo4(1)), false, uint8(1))
	f.Add(ip6("fd00::2", "fd00::3", 1, header.ProtocolUDP, []byte("x")), false, uint8(0))
	f.Add(eth(bcast, podMAC, header.EtherTypeARP, make([]byte, 28)), true, uint8(0))
	f.Add(eth([6]byte{0x33, 0x33, 0xff, 0, 0, 1}, podMAC, header.EtherTypeIPv6, ip6("fe80::aa", "ff02::1:ff00:1", 255, header.ProtocolICMPv6, make([]byte, 32))), true, uint8(3))
	h := newHarness(f)
	a := h.addPod("tun0", tables.KindTun, 1500, "10.0.0.2", "fd00::2")
	h.addPod("tun1", tables.KindTun, 1400, "10.0.0.3", "fd00::3")
	tap := h.addPod("tap0", tables.KindTap, 1500, "10.0.0.4", "fd00::4")
	if err := h.w.AddAddress("tun0", netip.MustParsePrefix("10.255.0.1/32")); err != nil {
		f.Fatal(err)
	}
	drain := func() {
		for _, p := range []pod{a, tap} {
			for {
				if _, _, err := p.dev.Recv(0); err != nil {
					break
				}
			}
		}
	}
	f.Fuzz(func(t *testing.T, pkt []byte, onTap bool, gso uint8) {
		p := a
		if onTap {
			p = tap
		}
		hdr := tuntest.VnetHdr{}
		if gso&1 != 0 {
			hdr = tuntest.VnetHdr{Flags: 1, GSOType: gso >> 1 & 7, GSOSize: uint16(gso) * 7, HdrLen: uint16(gso), CsumStart: uint16(gso) * 3, CsumOffset: 16}
		}
		if len(pkt) > 65000 {
			pkt = pkt[:65000]
		}
		_ = p.dev.Send(pkt, hdr)
		h.poll()
		drain()
	})
}

// Without DF an oversize packet is fragmented (RFC 791); the fragments
// reassemble to the original payload.
func TestFragmentation(t *testing.T) {
	h := newHarness(t)
	a := h.addPod("tun0", tables.KindTun, 1500, "10.0.0.2")
	b := h.addPod("tun1", tables.KindTun, 576, "10.0.0.3")
	payload := make([]byte, 1400)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	in := ip4("10.0.0.2", "10.0.0.3", 64, header.ProtocolUDP, payload)
	header.IPv4(in).SetFlagsFragmentOffset(0, 0)
	header.IPv4(in).SetChecksum(0)
	header.IPv4(in).SetChecksum(header.IPv4(in).CalculateChecksum())
	h.send(a, in)
	var got []byte
	for i := 0; ; i++ {
		out, _ := recv(t, b)
		ip := header.IPv4(out)
		if len(out) > 576 || !ip.IsChecksumValid() || ip.TTL() != 63 {
			t.Fatalf("fragment %d: len %d checksum %v ttl %d", i, len(out), ip.IsChecksumValid(), ip.TTL())
		}
		if int(ip.FragmentOffset()) != len(got) {
			t.Fatalf("fragment %d offset %d, want %d", i, ip.FragmentOffset(), len(got))
		}
		got = append(got, ip.Payload()...)
		if ip.Flags()&header.IPv4FlagMoreFragments == 0 {
			break
		}
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("reassembled payload differs")
	}
}
