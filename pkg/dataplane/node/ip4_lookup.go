package node

import (
	"net/netip"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/pkg/dataplane/graph"
	"github.com/vecnet/vecnet/pkg/header"
)

// ip4-lookup finds the route of each packet's destination in the VRF of its
// input interface (16-8-8 mtrie: at most three dependent loads), picks one
// adjacency of the route's load balance and steers the packet by the
// adjacency's kind.
type ip4Lookup struct {
	lookupNexts
}

const (
	ip4LookupErrNullRoute = iota
	ip4LookupErrNoVRF
)

var ip4LookupErrors = []string{"null_route", "no_vrf"}

func (n *ip4Lookup) Init(g *graph.Graph) error {
	n.rewrite = g.MustIndex(IP4Rewrite)
	n.local = g.MustIndex(IP4Local)
	n.resolve = g.MustIndex(IP4ARP)
	n.icmp = g.MustIndex(IP4ICMPError)
	n.host = g.MustIndex(IP4NodeLocal)
	return nil
}

func (n *ip4Lookup) Process(c *graph.Context, f *graph.Frame) {
	p := c.Pool
	t := c.Tables
	for _, b := range f.B[:f.N] {
		m := p.Meta(b)
		if int(m.VRF) >= len(t.VRFs) {
			c.Drop(b, ip4LookupErrNoVRF)
			continue
		}
		ip := header.IPv4(p.Packet(b))
		v := t.VRFs[m.VRF].IP4.Lookup(ip.Dst32())
		if v == 0 {
			n.noRoute(c, b, m)
			continue
		}
		lb := &t.LBs[v]
		adj := lb.Buckets[0]
		if lb.Mask != 0 {
			m.FlowHash = flowHash4(ip)
			adj = lb.Buckets[m.FlowHash&lb.Mask]
		}
		m.Adj = adj
		n.steer(c, b, m, t.Adjs[adj].Kind, ip4LookupErrNullRoute)
	}
}

func (n *ip4Lookup) TraceDetail(c *graph.Context, b buffer.Index) string {
	m := c.Pool.Meta(b)
	t := c.Tables
	if int(m.VRF) >= len(t.VRFs) {
		return "no vrf"
	}
	ip := header.IPv4(c.Pool.Packet(b))
	v := t.VRFs[m.VRF].IP4.Lookup(ip.Dst32())
	return describeRoute(t, m.VRF, netip.AddrFrom4(ip.DestinationAddress()), v, flowHash4(ip))
}

// flowHash4 hashes the 5-tuple (addresses, protocol and, for the first
// fragment of TCP/UDP/SCTP, ports) so that one flow always takes one path of
// an ECMP route and packets are not reordered.
func flowHash4(ip header.IPv4) uint32 {
	h := uint64(ip.Src32())<<32 | uint64(ip.Dst32())
	proto := ip.Protocol()
	var ports uint32
	// Only unfragmented packets carry ports for every piece: hashing the
	// first fragment's ports would send the other fragments of the same
	// datagram another way (and give them another VXLAN source port).
	if (proto == header.ProtocolTCP || proto == header.ProtocolUDP || proto == 132) && !ip.IsFragment() {
		if l4 := ip[ip.HeaderLength():]; len(l4) >= 4 {
			ports = uint32(l4[0])<<24 | uint32(l4[1])<<16 | uint32(l4[2])<<8 | uint32(l4[3])
		}
	}
	return mix64(h ^ (uint64(ports)<<8|uint64(proto))*0x9e3779b97f4a7c15)
}

// mix64 is the murmur3 64-bit finaliser: cheap and with full avalanche, so
// the low bits used as the bucket index depend on every input bit.
func mix64(h uint64) uint32 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return uint32(h)
}
