package node

import (
	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/pkg/dataplane/graph"
	"github.com/vecnet/vecnet/pkg/header"
)

// ipip-decap removes the outer IPv4 header of IP-in-IP (RFC 2003) and
// IPv6-in-IPv4 (RFC 4213 section 3.5) packets from other nodes and sends
// the inner packet through ip4-input/ip6-input as if it had arrived on the
// uplink, so every check a packet from a pod gets applies to it too.
//
// Only known nodes (the next hops of tunnel routes) may send: without the
// check anyone on the underlay could inject packets into pods with any
// source address by wrapping them in an outer header.
type ipipDecap struct {
	ip4, ip6 int
}

const (
	ipipDecapErrUnknownPeer = iota
	ipipDecapErrBadInner
	ipipDecapErrBadOffload
	ipipDecapOK
)

var ipipDecapErrors = []string{"unknown_peer", "bad_inner_packet", "bad_offload", "decapsulated"}

func (n *ipipDecap) Init(g *graph.Graph) error {
	n.ip4 = g.MustIndex(IP4Input)
	n.ip6 = g.MustIndex(IP6Input)
	return nil
}

func (n *ipipDecap) Process(c *graph.Context, f *graph.Frame) {
	p := c.Pool
	t := c.Tables
	ok := uint64(0)
	var peers peerCache
	for _, b := range f.B[:f.N] {
		m := p.Meta(b)
		outer := header.IPv4(p.Packet(b))
		if !peers.known(t, outer.SourceAddress()) {
			c.Drop(b, ipipDecapErrUnknownPeer)
			continue
		}
		hl := int32(outer.HeaderLength())
		next, want := n.ip4, uint8(4)
		if outer.Protocol() == header.ProtocolIPv6 {
			next, want = n.ip6, 6
		}
		// ip4-input has trimmed the packet to the outer total length.
		if m.Len <= hl || outer[hl]>>4 != want {
			c.Drop(b, ipipDecapErrBadInner)
			continue
		}
		if !stripOuter(m, hl) {
			c.Drop(b, ipipDecapErrBadOffload)
			continue
		}
		ok++
		c.Enqueue(next, b)
	}
	if ok > 0 {
		c.Count(ipipDecapOK, ok)
	}
}

func (n *ipipDecap) TraceDetail(c *graph.Context, b buffer.Index) string {
	return fmtTunnel("ipip", header.IPv4(c.Pool.Packet(b)).SourceAddress(), -1)
}
