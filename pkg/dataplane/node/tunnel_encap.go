package node

import (
	"fmt"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/pkg/dataplane/graph"
	"github.com/vecnet/vecnet/pkg/dataplane/tables"
	"github.com/vecnet/vecnet/pkg/header"
)

// tunnel-encap wraps packets whose route goes through a tunnel to another
// node (an AdjEncap adjacency, after ip4/ip6-rewrite did TTL and MTU) in
// an outer IPv4 header — IP-in-IP (RFC 2003, RFC 4213) or UDP+VXLAN (RFC
// 7348) — and sends the result by the underlay adjacency: the uplink's
// Ethernet header to the other node, or ip4-arp while the kernel has not
// resolved it yet.
//
// Super-packets that the uplink cannot carry whole, and partial checksums
// it cannot finish, go through tunnel-gso first and come back here as
// ordinary packets.
type tunnelEncap struct {
	output, resolve, gso int
	ipID                 []uint16 // per worker: outer IPv4 identification
}

const (
	tunnelEncapErrNoHeadroom = iota
	tunnelEncapErrUnderlay
	tunnelEncapErrBadInner
)

var tunnelEncapErrors = []string{"no_headroom", "underlay_unusable", "bad_inner_packet"}

func newTunnelEncap(workers int) *tunnelEncap { return &tunnelEncap{ipID: make([]uint16, workers)} }

func (n *tunnelEncap) Init(g *graph.Graph) error {
	n.output = g.MustIndex(InterfaceOutput)
	n.resolve = g.MustIndex(IP4ARP)
	n.gso = g.MustIndex(TunnelGSO)
	return nil
}

// outerTTL is the outer header's TTL: the inner TTL was already
// decremented by ip4/ip6-rewrite, and the tunnel is one hop for it (RFC
// 2003 section 3.1 lets the encapsulator choose).
const outerTTL = 64

func (n *tunnelEncap) Process(c *graph.Context, f *graph.Frame) {
	p := c.Pool
	t := c.Tables
	id := &n.ipID[c.Worker]
	for _, b := range f.B[:f.N] {
		m := p.Meta(b)
		a := &t.Adjs[m.Adj]
		ifc := t.Interface(a.TxIf)
		if ifc == nil || a.Kind != tables.AdjEncap {
			c.Drop(b, tunnelEncapErrUnderlay)
			continue
		}
		overhead := int32(a.Encap.Overhead())
		gso := m.Flags&buffer.FlagGSO != 0
		if gso && !(ifc.TxTunnelGSO && a.Encap == tables.EncapVXLAN && m.Len+overhead <= 0xffff && m.Flags&buffer.FlagCsumPart != 0) ||
			(m.Flags&buffer.FlagCsumPart != 0 && !ifc.TxCsum) {
			// Only the tap driver can send an encapsulated super-packet
			// whole, and only for VXLAN (virtio-net has no IP-in-IP GSO
			// type): otherwise it is cut here, before the outer header
			// hides the inner one.
			c.Enqueue(n.gso, b)
			continue
		}
		under := &t.Adjs[a.Under]
		rw := int32(under.RewriteLen)
		if m.Start < overhead+rw+tunVnetHdrRoom {
			c.Drop(b, tunnelEncapErrNoHeadroom)
			continue
		}
		d := p.Data(b)
		inner := d[m.Start : m.Start+m.Len]
		var tos uint8
		var etype uint16
		var proto uint8
		switch inner[0] >> 4 {
		case 4:
			tos, etype, proto = header.IPv4(inner).TOS(), header.EtherTypeIPv4, header.ProtocolIPIP
			if m.FlowHash == 0 && a.Encap == tables.EncapVXLAN {
				m.FlowHash = flowHash4(header.IPv4(inner))
			}
		case 6:
			tos, etype, proto = header.IPv6(inner).TrafficClass(), header.EtherTypeIPv6, header.ProtocolIPv6
			if m.FlowHash == 0 && a.Encap == tables.EncapVXLAN {
				m.FlowHash = flowHash6(header.IPv6(inner))
			}
		default:
			c.Drop(b, tunnelEncapErrBadInner)
			continue
		}
		m.Start -= overhead
		m.Len += overhead
		o := d[m.Start : m.Start+m.Len]
		if a.Encap == tables.EncapVXLAN {
			proto = header.ProtocolUDP
			u := header.UDP(o[header.IPv4MinimumSize:])
			u.SetSourcePort(header.VXLANSourcePort(m.FlowHash))
			u.SetDestinationPort(t.VXLANPort)
			u.SetLength(uint16(m.Len - header.IPv4MinimumSize))
			u.SetChecksum(0) // RFC 7348 section 5: zero over IPv4
			header.VXLAN(u[header.UDPMinimumSize:]).Encode(a.VNI)
			// The inner Ethernet header is never looked at by vecnet
			// peers; the source is ours and the destination a locally
			// administered address naming the peer, for captures.
			eth := header.Ethernet(u[header.UDPMinimumSize+header.VXLANSize:])
			eth.Encode(peerMAC(a.NextHop.As4()), ifc.MAC, etype)
		}
		ip := header.IPv4(o)
		o[0] = 0x45
		// RFC 6040 normal mode: the outer header copies DSCP and ECN, so
		// congestion marks on the underlay reach the inner flow.
		ip.SetTOS(tos)
		ip.SetTotalLength(uint16(m.Len))
		*id++
		ip.SetID(*id)
		ip.SetFlagsFragmentOffset(0, 0)
		ip.SetTTL(outerTTL)
		ip.SetProtocol(proto)
		ip.SetSourceAddress(a.Src)
		ip.SetDestinationAddress(a.NextHop.As4())
		ip.SetChecksum(0)
		ip.SetChecksum(ip.CalculateChecksum())
		if m.Flags&buffer.FlagCsumPart != 0 {
			m.CsumStart += uint16(overhead)
		}
		if gso {
			m.HdrLen += uint16(overhead)
			m.Flags |= buffer.FlagGSOTunnel
		}
		m.Adj = a.Under
		switch under.Kind {
		case tables.AdjRewrite:
			if rw > 0 {
				m.Start -= rw
				m.Len += rw
				copy(d[m.Start:], under.Rewrite[:rw])
			}
			m.TxIf = under.TxIf
			c.Enqueue(n.output, b)
		case tables.AdjIncomplete, tables.AdjGlean:
			c.Enqueue(n.resolve, b)
		default:
			c.Drop(b, tunnelEncapErrUnderlay)
		}
	}
}

// peerMAC is the inner destination MAC of VXLAN frames to a peer:
// 02:00 followed by its IPv4 address.
func peerMAC(a [4]byte) [6]byte { return [6]byte{0x02, 0x00, a[0], a[1], a[2], a[3]} }

func (n *tunnelEncap) TraceDetail(c *graph.Context, b buffer.Index) string {
	m := c.Pool.Meta(b)
	a := c.Tables.Adjs[m.Adj]
	if a.Kind != tables.AdjEncap {
		return fmt.Sprintf("adj %d is %s", m.Adj, a.Kind)
	}
	return fmt.Sprintf("%s %v -> %s vni %d mtu %d under adj %d", a.Encap, a.Src, a.NextHop, a.VNI, a.MTU, a.Under)
}
