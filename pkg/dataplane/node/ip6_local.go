package node

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/pkg/dataplane/driver/tun"
	"github.com/vecnet/vecnet/pkg/dataplane/graph"
	"github.com/vecnet/vecnet/pkg/dataplane/tables"
	"github.com/vecnet/vecnet/pkg/header"
)

// ip6-local receives IPv6 packets for the dataplane: echo requests (RFC 4443
// section 4.1), neighbour discovery on tap interfaces (RFC 4861: we answer
// solicitations for every address but the pod's own, i.e. proxy ND, and
// learn the pod's link-layer address), and answers other upper layers with
// port unreachable.
type ip6Local struct {
	env                  Env
	lookup, icmp, output int
}

const (
	ip6LocalErrMalformed = iota
	ip6LocalErrChecksum
	ip6LocalErrType
	ip6LocalErrNDHopLimit
	ip6LocalErrNDOnTun
	ip6LocalErrDAD
	ip6LocalErrTargetIsPod
	ip6LocalErrMulticast
	ip6LocalErrLearnQueueFull
	ip6LocalEchoReplies
	ip6LocalNAsSent
	ip6LocalNAsReceived
	ip6LocalPortUnreachable
)

var ip6LocalErrors = []string{
	"malformed", "bad_icmp_checksum", "icmp_type_not_handled", "nd_hop_limit_not_255", "nd_on_tun",
	"dad_probe_ignored", "target_is_pod", "multicast_not_handled", "learn_queue_full",
	"echo_replies_sent", "neighbor_advertisements_sent", "neighbor_advertisements_received", "port_unreachable_sent",
}

func (n *ip6Local) Init(g *graph.Graph) error {
	n.lookup = g.MustIndex(IP6Lookup)
	n.icmp = g.MustIndex(IP6ICMPError)
	n.output = g.MustIndex(InterfaceOutput)
	return nil
}

func (n *ip6Local) Process(c *graph.Context, f *graph.Frame) {
	p := c.Pool
	for _, b := range f.B[:f.N] {
		m := p.Meta(b)
		ip := header.IPv6(p.Packet(b))
		proto, off, ok := header.TransportProtocol(ip)
		if !ok {
			c.Drop(b, ip6LocalErrMalformed)
			continue
		}
		dst := ip.DestinationAddress()
		mcast := header.IsIPv6Multicast(dst)
		if proto != header.ProtocolICMPv6 {
			if mcast {
				c.Drop(b, ip6LocalErrMulticast)
				continue
			}
			c.Count(ip6LocalPortUnreachable, 1)
			m.Aux = auxICMP(icmpPortUnreachable, 0)
			c.Enqueue(n.icmp, b)
			continue
		}
		icmp := header.ICMPv6(ip[off:])
		if header.ValidateICMPv6(icmp) != header.ICMPOK {
			c.Drop(b, ip6LocalErrMalformed)
			continue
		}
		if !icmp.IsChecksumValid(ip.SourceAddress(), dst) {
			c.Drop(b, ip6LocalErrChecksum)
			continue
		}
		switch icmp.Type() {
		case header.ICMPv6EchoRequest:
			if mcast {
				c.Drop(b, ip6LocalErrMulticast)
				continue
			}
			n.echo(c, b, ip, icmp)
		case header.ICMPv6NeighborSolicit:
			n.solicit(c, b, ip, icmp)
		case header.ICMPv6NeighborAdvert:
			n.advert(c, b, ip, icmp)
		default:
			c.Drop(b, ip6LocalErrType)
		}
	}
}

func (n *ip6Local) echo(c *graph.Context, b buffer.Index, ip header.IPv6, icmp header.ICMPv6) {
	m := c.Pool.Meta(b)
	src, dst := ip.SourceAddress(), ip.DestinationAddress()
	ip.SetSourceAddress(dst)
	ip.SetDestinationAddress(src)
	ip.SetHopLimit(64)
	icmp.SetType(header.ICMPv6EchoReply)
	icmp.SetChecksum(0)
	icmp.SetChecksum(icmp.CalculateChecksum(dst, src))
	m.Flags = m.Flags&buffer.FlagTraced | buffer.FlagLocal
	c.Count(ip6LocalEchoReplies, 1)
	if header.IsIPv6LinkLocalUnicast(src) {
		// No route leads to a link-local address: answer on the link the
		// request came from.
		n.replyOnLink(c, b)
		return
	}
	c.Enqueue(n.lookup, b)
}

// replyOnLink sends a reply built in place back out of the interface it
// came in on; on tap, the request's Ethernet header (still in front of the
// packet) is reused with its addresses swapped.
func (n *ip6Local) replyOnLink(c *graph.Context, b buffer.Index) {
	m := c.Pool.Meta(b)
	ifc := c.Tables.Interface(m.RxIf)
	if ifc == nil {
		c.Drop(b, ip6LocalErrMalformed)
		return
	}
	if ifc.Kind.L2() {
		d := c.Pool.Data(b)
		if m.Start < header.EthernetMinSize+tun.VnetHdrLen {
			c.Drop(b, ip6LocalErrMalformed)
			return
		}
		m.Start -= header.EthernetMinSize
		m.Len += header.EthernetMinSize
		eth := header.Ethernet(d[m.Start:])
		eth.Encode(eth.Src(), ifc.MAC, header.EtherTypeIPv6)
	}
	m.TxIf = m.RxIf
	c.Enqueue(n.output, b)
}

func (n *ip6Local) solicit(c *graph.Context, b buffer.Index, ip header.IPv6, icmp header.ICMPv6) {
	m := c.Pool.Meta(b)
	ifc := c.Tables.Interface(m.RxIf)
	if ifc == nil || ifc.Kind != tables.KindTap {
		c.Drop(b, ip6LocalErrNDOnTun)
		return
	}
	if ip.HopLimit() != header.NDPHopLimit {
		// RFC 4861 section 7.1.1: ND from beyond the link is forged.
		c.Drop(b, ip6LocalErrNDHopLimit)
		return
	}
	if header.ValidateNeighborSolicit(icmp) != header.NDPOK {
		c.Drop(b, ip6LocalErrMalformed)
		return
	}
	ns := header.NDPNeighborSolicit(icmp)
	src := ip.SourceAddress()
	if header.IsIPv6Unspecified(src) {
		c.Drop(b, ip6LocalErrDAD)
		return
	}
	target := ns.TargetAddress()
	if target == src || slices.Contains(ifc.PodAddrs, netip.AddrFrom16(target)) {
		c.Drop(b, ip6LocalErrTargetIsPod)
		return
	}
	if mac, ok := ns.SourceLinkLayerAddress(); ok {
		n.learn(c, m.RxIf, netip.AddrFrom16(src), mac)
	}
	// Build the advertisement over the solicitation: Ethernet + IPv6 +
	// 32-byte NA with a target link-layer address option.
	d := c.Pool.Data(b)
	var peerMAC [6]byte
	if m.Start >= header.EthernetMinSize {
		peerMAC = header.Ethernet(d[m.Start-header.EthernetMinSize:]).Src()
	}
	const naLen = header.NDPNeighborAdvertMinimumSize + header.NDPLinkLayerAddressOptionSize
	m.Start = buffer.Headroom
	m.Len = header.EthernetMinSize + header.IPv6MinimumSize + naLen
	frame := d[m.Start : m.Start+m.Len]
	header.Ethernet(frame).Encode(peerMAC, ifc.MAC, header.EtherTypeIPv6)
	from := tun.GatewayIPv6.As16()
	out := header.IPv6(frame[header.EthernetMinSize:])
	out.Encode(&header.IPv6Fields{PayloadLength: naLen, NextHeader: header.ProtocolICMPv6, HopLimit: header.NDPHopLimit, Src: from, Dst: src})
	header.EncodeNeighborAdvert(out[header.IPv6MinimumSize:], from, src, target,
		header.NDPNARouterFlag|header.NDPNASolicitedFlag|header.NDPNAOverrideFlag, ifc.MAC)
	m.TxIf = m.RxIf
	m.Flags = m.Flags&buffer.FlagTraced | buffer.FlagLocal
	c.Count(ip6LocalNAsSent, 1)
	c.Enqueue(n.output, b)
}

func (n *ip6Local) advert(c *graph.Context, b buffer.Index, ip header.IPv6, icmp header.ICMPv6) {
	m := c.Pool.Meta(b)
	if ip.HopLimit() != header.NDPHopLimit {
		c.Drop(b, ip6LocalErrNDHopLimit)
		return
	}
	if header.ValidateNeighborAdvert(icmp) != header.NDPOK {
		c.Drop(b, ip6LocalErrMalformed)
		return
	}
	na := header.NDPNeighborAdvert(icmp)
	// On an uplink the kernel owns the neighbour table (vecnetd mirrors
	// it through netlink); only pod taps learn from advertisements.
	if ifc := c.Tables.Interface(m.RxIf); ifc == nil || ifc.Kind != tables.KindTap {
		c.Drop(b, ip6LocalNAsReceived)
		return
	}
	if mac, ok := na.TargetLinkLayerAddress(); ok {
		n.learn(c, m.RxIf, netip.AddrFrom16(na.TargetAddress()), mac)
	}
	c.Drop(b, ip6LocalNAsReceived)
}

func (n *ip6Local) learn(c *graph.Context, ifx uint32, ip netip.Addr, mac [6]byte) {
	if n.env.Learn == nil {
		return
	}
	select {
	case n.env.Learn <- NeighborEvent{IfIndex: ifx, IP: ip, MAC: mac}:
	default:
		c.Count(ip6LocalErrLearnQueueFull, 1)
	}
}

func (n *ip6Local) TraceDetail(c *graph.Context, b buffer.Index) string {
	ip := header.IPv6(c.Pool.Packet(b))
	proto, off, ok := header.TransportProtocol(ip)
	if ok && proto == header.ProtocolICMPv6 && len(ip) > off+1 {
		return fmt.Sprintf("icmp6 type %d code %d", ip[off], ip[off+1])
	}
	return fmt.Sprintf("proto %d", proto)
}
