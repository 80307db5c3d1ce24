package node

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/pkg/dataplane/graph"
	"github.com/vecnet/vecnet/pkg/dataplane/tables"
	"github.com/vecnet/vecnet/pkg/header"
)

// sink ends a benchmark graph: it frees what reaches it and counts it.
type sink struct{ n int }

func (s *sink) Init(*graph.Graph) error { return nil }
func (s *sink) Process(c *graph.Context, f *graph.Frame) {
	for _, b := range f.B[:f.N] {
		c.Done(b)
	}
	s.n += f.N
}

// forwardBench is the IPv4 forwarding path (ip4-input, ip4-lookup,
// ip4-rewrite) between sinks, over a FIB of nRoutes random prefixes.
type forwardBench struct {
	c        *graph.Context
	w        *tables.Writer
	in       int
	out      *sink
	other    *sink
	packets  [][]byte // templates, destinations inside installed prefixes
	pool     *buffer.Pool
	nextPkt  int
	frameLen int
}

func newForwardBench(tb testing.TB, nRoutes int) *forwardBench {
	g := graph.New()
	in := g.Register(graph.Spec{Name: IP4Input, Errors: ip4InputErrors, Node: &ip4Input{}})
	g.Register(graph.Spec{Name: IP4Lookup, Errors: ip4LookupErrors, Node: &ip4Lookup{}})
	g.Register(graph.Spec{Name: IP4Rewrite, Errors: ip4RewriteErrors, Node: &ip4Rewrite{}})
	out, other := &sink{}, &sink{}
	g.Register(graph.Spec{Name: InterfaceOutput, Node: out})
	g.Register(graph.Spec{Name: IP4Local, Node: other})
	g.Register(graph.Spec{Name: IP4ARP, Node: other})
	g.Register(graph.Spec{Name: IP4ICMPError, Node: other})
	g.Register(graph.Spec{Name: IP4Frag, Node: other})
	g.Register(graph.Spec{Name: IP4NodeLocal, Node: other})
	g.Register(graph.Spec{Name: TunnelEncap, Node: other})
	if err := g.Finalize(); err != nil {
		tb.Fatal(err)
	}
	w := tables.NewWriter()
	var ifx []uint32
	for i := 0; i < 4; i++ {
		x, err := w.AddInterface(tables.Interface{Name: fmt.Sprintf("tun%d", i), Kind: tables.KindTun, MTU: 1500, TxFDs: []int{-1}})
		if err != nil {
			tb.Fatal(err)
		}
		ifx = append(ifx, x)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	routes := make([]tables.Route, 0, nRoutes)
	seen := map[netip.Prefix]bool{}
	for len(routes) < nRoutes {
		// Mostly /24 with some /16-/23 and /32, like an Internet table.
		plen := 24
		switch r := rng.IntN(10); {
		case r < 2:
			plen = 16 + rng.IntN(8)
		case r == 9:
			plen = 32
		}
		a := netip.AddrFrom4([4]byte{byte(1 + rng.IntN(222)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))})
		p := netip.PrefixFrom(a, plen).Masked()
		if seen[p] {
			continue
		}
		seen[p] = true
		routes = append(routes, tables.Route{Prefix: p, Paths: []tables.Path{{Interface: ifx[len(routes)%len(ifx)]}}})
	}
	if err := w.AddRoutes(routes); err != nil {
		tb.Fatal(err)
	}
	fb := &forwardBench{w: w, in: in, out: out, other: other, frameLen: graph.FrameSize}
	fb.pool = buffer.NewPool(4096, 4)
	fb.c = graph.NewContext(g, 0, fb.pool)
	fb.c.Tables = w.Snapshot()
	for i := 0; i < 4096; i++ {
		r := routes[rng.IntN(len(routes))].Prefix
		dst := r.Addr().As4()
		if r.Bits() < 32 {
			host := rng.Uint32() & (1<<(32-r.Bits()) - 1)
			for k := 0; k < 4; k++ {
				dst[3-k] |= byte(host >> (8 * k))
			}
		}
		fb.packets = append(fb.packets, udp4(dst, 64))
	}
	return fb
}

// udp4 builds a 64-byte IPv4/UDP packet from 10.0.0.1 to dst.
func udp4(dst [4]byte, ttl uint8) []byte {
	b := make([]byte, 64)
	ip := header.IPv4(b)
	ip.Encode(&header.IPv4Fields{TotalLength: 64, TTL: ttl, Protocol: header.ProtocolUDP, Src: [4]byte{10, 0, 0, 1}, Dst: dst})
	ip.SetChecksum(ip.CalculateChecksum())
	u := header.UDP(b[20:])
	u.SetSourcePort(1234)
	u.SetDestinationPort(5678)
	u.SetLength(44)
	return b
}

// frame feeds one vector of packets through the graph: allocate, copy in
// (what a driver's rx does), then dispatch to completion.
func (fb *forwardBench) frame() {
	c, p := fb.c, fb.pool
	for i := 0; i < fb.frameLen; i++ {
		b, _ := p.Alloc()
		m := p.Meta(b)
		pkt := fb.packets[fb.nextPkt]
		fb.nextPkt = (fb.nextPkt + 1) & 4095
		copy(p.Data(b)[m.Start:], pkt)
		m.Len = int32(len(pkt))
		m.RxIf = 1
		c.Enqueue(fb.in, b)
	}
	c.Run()
}

// BenchmarkIP4Forward measures ip4-input + ip4-lookup + ip4-rewrite at
// vector size 256, reported per packet (the target: <= 60 ns).
func BenchmarkIP4Forward(b *testing.B) {
	for _, n := range []int{1000, 1000000} {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			fb := newForwardBench(b, n)
			fb.frame() // warm up
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				fb.frame()
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*fb.frameLen), "ns/packet")
			if fb.other.n != 0 {
				b.Fatalf("%d packets left the forwarding path", fb.other.n)
			}
		})
	}
}

func TestForwardBenchForwardsEverything(t *testing.T) {
	fb := newForwardBench(t, 1000)
	for i := 0; i < 20; i++ {
		fb.frame()
	}
	if fb.out.n != 20*graph.FrameSize || fb.other.n != 0 {
		t.Fatalf("forwarded %d, diverted %d; want %d, 0", fb.out.n, fb.other.n, 20*graph.FrameSize)
	}
	if s, l := fb.pool.FreeCount(); s != 4096 || l != 4 {
		t.Fatalf("buffers leaked: %d/%d free", s, l)
	}
	allocs := testing.AllocsPerRun(100, fb.frame)
	if allocs != 0 {
		t.Errorf("forwarding allocates %.1f times per frame", allocs)
	}
}
