package node

import (
	"fmt"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/pkg/dataplane/graph"
	"github.com/vecnet/vecnet/pkg/dataplane/tables"
	"github.com/vecnet/vecnet/pkg/header"
)

// ip6-rewrite: hop limit check and decrement (RFC 8200 section 3; no
// header checksum in IPv6), MTU check (routers never fragment IPv6: an
// oversize packet gets Packet Too Big, RFC 8201), link-layer rewrite.
type ip6Rewrite struct {
	output, icmp, encap int
}

const (
	ip6RewriteErrNoHeadroom = iota
	ip6RewriteHopLimitExpired
	ip6RewriteErrNoHostIf
)

var ip6RewriteErrors = []string{"no_headroom", "hop_limit_expired", "no_host_interface"}

func (n *ip6Rewrite) Init(g *graph.Graph) error {
	n.output = g.MustIndex(InterfaceOutput)
	n.icmp = g.MustIndex(IP6ICMPError)
	n.encap = g.MustIndex(TunnelEncap)
	return nil
}

func (n *ip6Rewrite) Process(c *graph.Context, f *graph.Frame) {
	p := c.Pool
	t := c.Tables
	for _, b := range f.B[:f.N] {
		m := p.Meta(b)
		d := p.Data(b)
		ip := header.IPv6(d[m.Start : m.Start+m.Len])
		adj := &t.Adjs[m.Adj]
		local := m.Flags&buffer.FlagLocal != 0
		if !local && ip.HopLimit() <= 1 {
			c.Count(ip6RewriteHopLimitExpired, 1)
			m.Aux = auxICMP(icmpTimeExceeded, 0)
			c.Enqueue(n.icmp, b)
			continue
		}
		if mtu := adj.MTU; mtu != 0 && !fitsMTU(m, mtu) {
			m.Aux = auxICMP(icmpTooBig, mtu)
			c.Enqueue(n.icmp, b)
			continue
		}
		if !local {
			ip.SetHopLimit(ip.HopLimit() - 1)
		}
		if l := int32(adj.RewriteLen); l > 0 {
			if m.Start < l+tunVnetHdrRoom {
				c.Drop(b, ip6RewriteErrNoHeadroom)
				continue
			}
			m.Start -= l
			m.Len += l
			copy(d[m.Start:], adj.Rewrite[:l])
		}
		m.TxIf = adj.TxIf
		switch {
		case adj.Kind == tables.AdjEncap:
			c.Enqueue(n.encap, b)
		case adj.TxIf == 0:
			c.Drop(b, ip6RewriteErrNoHostIf) // AdjHost without host tun
		default:
			c.Enqueue(n.output, b)
		}
	}
}

func (n *ip6Rewrite) TraceDetail(c *graph.Context, b buffer.Index) string {
	m := c.Pool.Meta(b)
	a := c.Tables.Adjs[m.Adj]
	return fmt.Sprintf("adj %d tx-if %d mtu %d rewrite %x", m.Adj, a.TxIf, a.MTU, a.Rewrite[:a.RewriteLen])
}
