package node

import (
	"fmt"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/pkg/dataplane/graph"
	"github.com/vecnet/vecnet/pkg/dataplane/tables"
	"github.com/vecnet/vecnet/pkg/header"
)

// ip4-rewrite does what a router does to a packet it forwards (RFC 1812
// section 5.3.1): TTL check and decrement with an incremental checksum
// update (RFC 1624), MTU check, then the adjacency's precomputed link-layer
// header is copied in front of the packet.
type ip4Rewrite struct {
	output, icmp, frag, encap int
}

const (
	ip4RewriteErrMTU = iota
	ip4RewriteErrNoHeadroom
	ip4RewriteTTLExpired
)

var ip4RewriteErrors = []string{"gso_mtu_exceeded", "no_headroom", "ttl_expired"}

func (n *ip4Rewrite) Init(g *graph.Graph) error {
	n.output = g.MustIndex(InterfaceOutput)
	n.icmp = g.MustIndex(IP4ICMPError)
	n.frag = g.MustIndex(IP4Frag)
	n.encap = g.MustIndex(TunnelEncap)
	return nil
}

func (n *ip4Rewrite) Process(c *graph.Context, f *graph.Frame) {
	p := c.Pool
	t := c.Tables
	for _, b := range f.B[:f.N] {
		m := p.Meta(b)
		d := p.Data(b)
		ip := header.IPv4(d[m.Start : m.Start+m.Len])
		adj := &t.Adjs[m.Adj]
		if m.Flags&buffer.FlagLocal == 0 && ip.TTL() <= 1 {
			c.Count(ip4RewriteTTLExpired, 1)
			m.Aux = auxICMP(icmpTimeExceeded, 0)
			c.Enqueue(n.icmp, b)
			continue
		}
		if mtu := adj.MTU; mtu != 0 && !fitsMTU(m, mtu) {
			switch {
			case ip.Flags()&header.IPv4FlagDontFragment != 0:
				// RFC 1191: tell the sender the MTU to use.
				m.Aux = auxICMP(icmpTooBig, mtu)
				c.Enqueue(n.icmp, b)
				continue
			case m.Flags&buffer.FlagGSO != 0 && uint32(m.HdrLen)+68 <= mtu:
				// Without DF the sender lets routers cut its packets:
				// have the super-packet cut into smaller segments.
				m.GSOSize = uint16(mtu) - m.HdrLen
			case m.Flags&buffer.FlagGSO == 0:
				m.Aux = mtu << 8
				c.Enqueue(n.frag, b)
				continue
			default:
				c.Drop(b, ip4RewriteErrMTU)
				continue
			}
		}
		if m.Flags&buffer.FlagLocal == 0 {
			ip.DecrementTTL()
		}
		if l := int32(adj.RewriteLen); l > 0 {
			if m.Start < l+int32(tunVnetHdrRoom) {
				c.Drop(b, ip4RewriteErrNoHeadroom)
				continue
			}
			m.Start -= l
			m.Len += l
			copy(d[m.Start:], adj.Rewrite[:l])
		}
		m.TxIf = adj.TxIf
		if adj.Kind == tables.AdjEncap {
			c.Enqueue(n.encap, b)
			continue
		}
		c.Enqueue(n.output, b)
	}
}

func (n *ip4Rewrite) TraceDetail(c *graph.Context, b buffer.Index) string {
	m := c.Pool.Meta(b)
	a := c.Tables.Adjs[m.Adj]
	return fmt.Sprintf("adj %d tx-if %d mtu %d rewrite %x", m.Adj, a.TxIf, a.MTU, a.Rewrite[:a.RewriteLen])
}

// tunVnetHdrRoom is the headroom interface-output needs for the virtio-net
// header in front of the packet.
const tunVnetHdrRoom = 10

// fitsMTU reports whether the packet (or, for a GSO super-packet, each of
// the segments it stands for) fits an L3 MTU.
func fitsMTU(m *buffer.Meta, mtu uint32) bool {
	if m.Flags&buffer.FlagGSO != 0 {
		return uint32(m.GSOSize)+uint32(m.HdrLen) <= mtu
	}
	return uint32(m.Len) <= mtu
}
