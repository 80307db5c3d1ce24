package node

import (
	"net/netip"
	"os"
	"testing"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/pkg/dataplane/driver"
	"github.com/vecnet/vecnet/pkg/dataplane/graph"
	"github.com/vecnet/vecnet/pkg/dataplane/tables"
	"github.com/vecnet/vecnet/pkg/header"
)

// benchUplink is a driver.Queue that costs nothing: Receive copies
// prepared frames in, as a driver's rx does, and Transmit frees at once.
// It must not allocate, or the benchmark would measure it.
type benchUplink struct {
	rx      [][]byte
	next    int
	pending int // frames Receive still hands out
	sent    int
}

func (q *benchUplink) FD() int { return -1 }

func (q *benchUplink) Receive(p *buffer.Pool, out []buffer.Index) int {
	n := 0
	for n < len(out) && q.pending > 0 {
		b, ok := p.Alloc()
		if !ok {
			break
		}
		f := q.rx[q.next]
		q.next = (q.next + 1) % len(q.rx)
		m := p.Meta(b)
		m.Len = int32(copy(p.Data(b)[m.Start:], f))
		out[n] = b
		n++
		q.pending--
	}
	return n
}

func (q *benchUplink) Transmit(p *buffer.Pool, b buffer.Index) error {
	q.sent++
	p.Free(b)
	return nil
}

func (q *benchUplink) Flush(*buffer.Pool) error { return nil }
func (q *benchUplink) Stats() driver.QueueStats { return driver.QueueStats{} }

// tunnelBench is the whole graph of one node as node.Register builds it:
// an uplink on a benchUplink, a pod tun and the host tun writing to
// /dev/null, and a VXLAN route to a resolved peer.
type tunnelBench struct {
	c       *graph.Context
	g       *graph.Graph
	nodes   *Nodes
	up      *benchUplink
	pod     uint32
	toPeer  [][]byte // IPv4/UDP from the pod to a host behind the peer
	nextPkt int
	in      int // ip4-input
}

var (
	tbNodeMAC = [6]byte{0x02, 0x55, 0, 0, 0, 1}
	tbPeerMAC = [6]byte{0x02, 0x66, 0, 0, 0, 2}
	tbNode    = [4]byte{192, 0, 2, 1}
	tbPeer    = [4]byte{192, 0, 2, 2}
	tbPod     = [4]byte{10, 244, 0, 2}
)

const tbVNI = 4096

func newTunnelBench(tb testing.TB) *tunnelBench {
	tb.Helper()
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { null.Close() })
	fd := int(null.Fd())

	g := graph.New()
	nodes := Register(g, Env{Workers: 1})
	if err := g.Finalize(); err != nil {
		tb.Fatal(err)
	}
	w := tables.NewWriter()
	up := &benchUplink{}
	upIdx, err := w.AddInterface(tables.Interface{
		Name: "eth0", Kind: tables.KindUplink, MTU: 1500, MAC: tbNodeMAC,
		Tx: []*tables.TxQueue{{Q: up}},
	})
	if err != nil {
		tb.Fatal(err)
	}
	host, err := w.AddInterface(tables.Interface{Name: "vecnet0", Kind: tables.KindTun, MTU: 1500, TxFDs: []int{fd}})
	if err != nil {
		tb.Fatal(err)
	}
	podAddr := netip.AddrFrom4(tbPod)
	pod, err := w.AddInterface(tables.Interface{Name: "tun0", Kind: tables.KindTun, MTU: 1500, PodAddrs: []netip.Addr{podAddr}, TxFDs: []int{fd}})
	if err != nil {
		tb.Fatal(err)
	}
	node, peer := netip.AddrFrom4(tbNode), netip.AddrFrom4(tbPeer)
	if err := w.SetHostAddrs("eth0", []netip.Addr{node}); err != nil {
		tb.Fatal(err)
	}
	if err := w.SyncSource(tables.SourceUplink, []tables.Route{
		{Prefix: netip.PrefixFrom(node, 24).Masked(), Paths: []tables.Path{{Interface: upIdx}}},
	}); err != nil {
		tb.Fatal(err)
	}
	if err := w.SyncSource(tables.SourceNode, []tables.Route{{Prefix: netip.PrefixFrom(node, 32), Paths: []tables.Path{{Interface: host}}}}); err != nil {
		tb.Fatal(err)
	}
	if err := w.AddRoutes([]tables.Route{
		{Prefix: netip.PrefixFrom(podAddr, 32), Source: tables.SourceHost, Paths: []tables.Path{{Interface: pod}}},
		{Prefix: netip.MustParsePrefix("10.244.1.0/24"), Paths: []tables.Path{{NextHop: peer, Encap: tables.Encap{Type: tables.EncapVXLAN, VNI: tbVNI}}}},
	}); err != nil {
		tb.Fatal(err)
	}
	w.LearnNeighbor(upIdx, peer, tbPeerMAC)

	t := &tunnelBench{g: g, nodes: nodes, up: up, pod: pod, in: g.MustIndex(IP4Input)}
	t.c = graph.NewContext(g, 0, buffer.NewPool(4096, 4))
	t.c.Tables = w.Snapshot()
	nodes.UplinkInput.SetQueues(0, []UplinkRxQueue{{Q: up, IfIndex: upIdx}})
	for i := 0; i < 256; i++ {
		t.toPeer = append(t.toPeer, udp4([4]byte{10, 244, 1, byte(i)}, 64))
		up.rx = append(up.rx, tbVXLANFrame(udp4(tbPod, 64), uint16(i)))
	}
	return t
}

// tbVXLANFrame is what the peer sends to a pod of this node: inner wrapped
// in VXLAN over UDP (source port sport) and IPv4, in an Ethernet frame.
func tbVXLANFrame(inner []byte, sport uint16) []byte {
	const outer = header.EthernetMinSize + header.IPv4MinimumSize
	f := make([]byte, outer+vxlanStrip+len(inner))
	header.Ethernet(f).Encode(tbNodeMAC, tbPeerMAC, header.EtherTypeIPv4)
	ip := header.IPv4(f[header.EthernetMinSize:])
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(f) - header.EthernetMinSize), TTL: 64, Protocol: header.ProtocolUDP, Src: tbPeer, Dst: tbNode})
	ip.SetChecksum(ip.CalculateChecksum())
	u := header.UDP(f[outer:])
	u.SetSourcePort(sport)
	u.SetDestinationPort(tables.DefaultVXLANPort)
	u.SetLength(uint16(len(f) - outer))
	header.VXLAN(u[header.UDPMinimumSize:]).Encode(tbVNI)
	header.Ethernet(u[header.UDPMinimumSize+header.VXLANSize:]).Encode(tbNodeMAC, tbPeerMAC, header.EtherTypeIPv4)
	copy(f[outer+vxlanStrip:], inner)
	return f
}

// encapFrame sends one vector from the pod into a VXLAN tunnel: ip4-input,
// ip4-lookup, ip4-rewrite, tunnel-encap, interface-output to the uplink.
func (t *tunnelBench) encapFrame() {
	c, p := t.c, t.c.Pool
	for i := 0; i < graph.FrameSize; i++ {
		b, _ := p.Alloc()
		m := p.Meta(b)
		pkt := t.toPeer[t.nextPkt]
		t.nextPkt = (t.nextPkt + 1) % len(t.toPeer)
		m.Len = int32(copy(p.Data(b)[m.Start:], pkt))
		m.RxIf = t.pod
		c.Enqueue(t.in, b)
	}
	c.Run()
}

// decapFrame receives one vector of VXLAN frames on the uplink for the
// pod: uplink-input, ethernet-input, ip4-input, ip4-lookup, ip4-node-local,
// vxlan-decap, then the forwarding path again to the pod's tun.
func (t *tunnelBench) decapFrame() {
	t.up.pending = graph.FrameSize
	t.c.Poll(t.nodes.UplinkInputIndex, t.nodes.UplinkInput.Poll)
}

// count returns node name's counter reason.
func (t *tunnelBench) count(tb testing.TB, name, reason string) uint64 {
	i := t.g.MustIndex(name)
	for r, n := range t.g.Errors(i) {
		if n == reason {
			return t.c.ErrorCount(i, r)
		}
	}
	tb.Fatalf("%s has no counter %q", name, reason)
	return 0
}

// checkDelivered fails unless the last frames went all the way: every
// encapsulated packet handed to the uplink, every decapsulated one written
// to the pod's tun, nothing dropped on the way.
func (t *tunnelBench) checkDelivered(tb testing.TB, encap, decap uint64) {
	tb.Helper()
	if t.up.sent != int(encap) {
		tb.Errorf("uplink sent %d frames, want %d", t.up.sent, encap)
	}
	if got := t.count(tb, VXLANDecap, "decapsulated"); got != decap {
		tb.Errorf("vxlan-decap decapsulated %d, want %d", got, decap)
	}
	if ifc := t.c.Tables.Interface(t.pod); ifc.Counters.TxPackets.Load() != decap {
		tb.Errorf("pod tun sent %d packets, want %d", ifc.Counters.TxPackets.Load(), decap)
	}
	for i := 0; i < t.g.Len(); i++ {
		for r, name := range t.g.Errors(i) {
			if n := t.c.ErrorCount(i, r); n != 0 && name != "decapsulated" {
				tb.Errorf("%s: %s %d", t.g.Name(i), name, n)
			}
		}
	}
	if s, l := t.c.Pool.FreeCount(); s != 4096 || l != 4 {
		tb.Errorf("buffers leaked: %d/%d free", s, l)
	}
}

// BenchmarkTunnel runs a vector through each direction of a VXLAN tunnel;
// allocs/op must stay 0.
func BenchmarkTunnel(b *testing.B) {
	for _, dir := range []struct {
		name  string
		frame func(*tunnelBench)
	}{{"encap", (*tunnelBench).encapFrame}, {"decap", (*tunnelBench).decapFrame}} {
		b.Run(dir.name, func(b *testing.B) {
			t := newTunnelBench(b)
			dir.frame(t) // warm up
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				dir.frame(t)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*graph.FrameSize), "ns/packet")
		})
	}
}

func TestTunnelBenchDeliversWithoutAllocating(t *testing.T) {
	tb := newTunnelBench(t)
	const runs = 5
	for i := 0; i < runs; i++ {
		tb.encapFrame()
		tb.decapFrame()
	}
	tb.checkDelivered(t, runs*graph.FrameSize, runs*graph.FrameSize)
	if a := testing.AllocsPerRun(50, tb.encapFrame); a != 0 {
		t.Errorf("encapsulation allocates %.1f times per frame", a)
	}
	if a := testing.AllocsPerRun(50, tb.decapFrame); a != 0 {
		t.Errorf("decapsulation allocates %.1f times per frame", a)
	}
}
