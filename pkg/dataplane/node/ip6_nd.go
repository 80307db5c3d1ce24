package node

import (
	"net/netip"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/pkg/dataplane/driver/tun"
	"github.com/vecnet/vecnet/pkg/dataplane/graph"
	"github.com/vecnet/vecnet/pkg/dataplane/tables"
	"github.com/vecnet/vecnet/pkg/header"
)

// ip6-nd is ip4-arp for IPv6: a packet for an unresolved neighbour on a tap
// interface is replaced by a Neighbor Solicitation to the target's
// solicited-node multicast address (RFC 4861 section 7.2.2).
type ip6ND struct {
	output  int
	limiter []resolveLimiter
	resolve chan<- NeighborEvent
}

const (
	ip6NDErrThrottled = iota
	ip6NDErrNoInterface
	ip6NDSolicitsSent
	ip6NDKernelResolve
)

var ip6NDErrors = []string{"throttled", "interface_gone", "solicitations_sent", "kernel_resolve"}

func newIP6ND(env Env) *ip6ND {
	return &ip6ND{limiter: make([]resolveLimiter, env.Workers), resolve: env.Resolve}
}

func (n *ip6ND) Init(g *graph.Graph) error {
	n.output = g.MustIndex(InterfaceOutput)
	return nil
}

func (n *ip6ND) Process(c *graph.Context, f *graph.Frame) {
	p := c.Pool
	t := c.Tables
	lim := &n.limiter[c.Worker]
	for _, b := range f.B[:f.N] {
		m := p.Meta(b)
		adj := &t.Adjs[m.Adj]
		ifc := t.Interface(adj.TxIf)
		if ifc == nil {
			c.Drop(b, ip6NDErrNoInterface)
			continue
		}
		var target [16]byte
		if adj.NextHop.Is6() {
			target = adj.NextHop.As16()
		} else {
			target = header.IPv6(p.Packet(b)).DestinationAddress()
		}
		if !lim.allow(adj.TxIf, target, c.Now) {
			c.Drop(b, ip6NDErrThrottled)
			continue
		}
		if ifc.Kind == tables.KindUplink {
			askKernel(n.resolve, adj.TxIf, netip.AddrFrom16(target))
			c.Drop(b, ip6NDKernelResolve)
			continue
		}
		src := tun.GatewayIPv6.As16()
		dst := header.SolicitedNodeAddress(target)
		const nsLen = header.NDPNeighborSolicitMinimumSize + header.NDPLinkLayerAddressOptionSize
		d := p.Data(b)
		m.Start = buffer.Headroom
		m.Len = header.EthernetMinSize + header.IPv6MinimumSize + nsLen
		frame := d[m.Start : m.Start+m.Len]
		header.Ethernet(frame).Encode(header.IPv6MulticastMAC(dst), ifc.MAC, header.EtherTypeIPv6)
		ip := header.IPv6(frame[header.EthernetMinSize:])
		ip.Encode(&header.IPv6Fields{PayloadLength: nsLen, NextHeader: header.ProtocolICMPv6, HopLimit: header.NDPHopLimit, Src: src, Dst: dst})
		header.EncodeNeighborSolicit(ip[header.IPv6MinimumSize:], src, dst, target, ifc.MAC)
		m.TxIf = adj.TxIf
		m.Flags = m.Flags&buffer.FlagTraced | buffer.FlagLocal
		c.Count(ip6NDSolicitsSent, 1)
		c.Enqueue(n.output, b)
	}
}
