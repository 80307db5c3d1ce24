package node

import (
	"net/netip"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/pkg/dataplane/graph"
	"github.com/vecnet/vecnet/pkg/header"
)

// ip6-lookup is ip4-lookup for IPv6: per-prefix-length hash tables probed
// longest first.
type ip6Lookup struct {
	lookupNexts
}

const (
	ip6LookupErrNullRoute = iota
	ip6LookupErrNoVRF
)

var ip6LookupErrors = []string{"null_route", "no_vrf"}

func (n *ip6Lookup) Init(g *graph.Graph) error {
	n.rewrite = g.MustIndex(IP6Rewrite)
	n.local = g.MustIndex(IP6Local)
	n.resolve = g.MustIndex(IP6ND)
	n.icmp = g.MustIndex(IP6ICMPError)
	n.host = g.MustIndex(IP6Rewrite)
	return nil
}

func (n *ip6Lookup) Process(c *graph.Context, f *graph.Frame) {
	p := c.Pool
	t := c.Tables
	for _, b := range f.B[:f.N] {
		m := p.Meta(b)
		if int(m.VRF) >= len(t.VRFs) {
			c.Drop(b, ip6LookupErrNoVRF)
			continue
		}
		ip := header.IPv6(p.Packet(b))
		hi, lo := ip.DstHiLo()
		v := t.VRFs[m.VRF].IP6.Lookup(hi, lo)
		if v == 0 {
			n.noRoute(c, b, m)
			continue
		}
		lb := &t.LBs[v]
		adj := lb.Buckets[0]
		if lb.Mask != 0 {
			m.FlowHash = flowHash6(ip)
			adj = lb.Buckets[m.FlowHash&lb.Mask]
		}
		m.Adj = adj
		n.steer(c, b, m, t.Adjs[adj].Kind, ip6LookupErrNullRoute)
	}
}

func (n *ip6Lookup) TraceDetail(c *graph.Context, b buffer.Index) string {
	m := c.Pool.Meta(b)
	t := c.Tables
	if int(m.VRF) >= len(t.VRFs) {
		return "no vrf"
	}
	ip := header.IPv6(c.Pool.Packet(b))
	hi, lo := ip.DstHiLo()
	v := t.VRFs[m.VRF].IP6.Lookup(hi, lo)
	return describeRoute(t, m.VRF, netip.AddrFrom16(ip.DestinationAddress()), v, flowHash6(ip))
}

// flowHash6 hashes addresses, flow label and (when directly after the fixed
// header) TCP/UDP ports.
func flowHash6(ip header.IPv6) uint32 {
	sh, sl := ip.SrcHiLo()
	dh, dl := ip.DstHiLo()
	h := sh*0x9e3779b97f4a7c15 ^ sl ^ dh*0xc2b2ae3d27d4eb4f ^ dl ^ uint64(ip.FlowLabel())<<40
	nh := ip.NextHeader()
	if nh == header.ProtocolTCP || nh == header.ProtocolUDP || nh == 132 {
		if l4 := ip[header.IPv6MinimumSize:]; len(l4) >= 4 {
			h ^= (uint64(l4[0])<<24 | uint64(l4[1])<<16 | uint64(l4[2])<<8 | uint64(l4[3])) << 8
		}
	}
	return mix64(h ^ uint64(nh))
}
