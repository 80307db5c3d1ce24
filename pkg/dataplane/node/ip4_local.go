package node

import (
	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/pkg/dataplane/graph"
	"github.com/vecnet/vecnet/pkg/header"
)

// ip4-local receives packets addressed to the dataplane itself. It answers
// ICMP echo (RFC 792) by turning the request into the reply in place, and
// answers anything else with the ICMP error a host would send (RFC 1122
// section 3.2.2.1): the dataplane runs no IPv4 services of its own.
type ip4Local struct {
	lookup, icmp int
}

const (
	ip4LocalErrBadICMP = iota
	ip4LocalErrICMPChecksum
	ip4LocalErrICMPType
	ip4LocalErrFragment
	ip4LocalEchoReplies
	ip4LocalPortUnreachable
)

var ip4LocalErrors = []string{"bad_icmp", "bad_icmp_checksum", "icmp_type_not_handled", "fragment_not_reassembled", "echo_replies_sent", "port_unreachable_sent"}

func (n *ip4Local) Init(g *graph.Graph) error {
	n.lookup = g.MustIndex(IP4Lookup)
	n.icmp = g.MustIndex(IP4ICMPError)
	return nil
}

func (n *ip4Local) Process(c *graph.Context, f *graph.Frame) {
	p := c.Pool
	for _, b := range f.B[:f.N] {
		m := p.Meta(b)
		ip := header.IPv4(p.Packet(b))
		if ip.IsFragment() {
			c.Drop(b, ip4LocalErrFragment)
			continue
		}
		switch ip.Protocol() {
		case header.ProtocolICMP:
			icmp := header.ICMPv4(ip.Payload())
			if header.ValidateICMPv4(icmp) != header.ICMPOK {
				c.Drop(b, ip4LocalErrBadICMP)
				continue
			}
			if icmp.Type() != header.ICMPv4EchoRequest {
				c.Drop(b, ip4LocalErrICMPType)
				continue
			}
			if !icmp.IsChecksumValid() {
				c.Drop(b, ip4LocalErrICMPChecksum)
				continue
			}
			icmp.SetType(header.ICMPv4EchoReply)
			icmp.SetChecksum(header.UpdateChecksum16(icmp.Checksum(), uint16(header.ICMPv4EchoRequest)<<8, uint16(header.ICMPv4EchoReply)<<8))
			src, dst := ip.SourceAddress(), ip.DestinationAddress()
			ip.SetSourceAddress(dst)
			ip.SetDestinationAddress(src)
			ip.SetTTL(64)
			ip.SetChecksum(0)
			ip.SetChecksum(ip.CalculateChecksum())
			m.Flags = m.Flags&buffer.FlagTraced | buffer.FlagLocal
			c.Count(ip4LocalEchoReplies, 1)
			c.Enqueue(n.lookup, b)
		case header.ProtocolUDP, header.ProtocolTCP:
			c.Count(ip4LocalPortUnreachable, 1)
			m.Aux = auxICMP(icmpPortUnreachable, 0)
			c.Enqueue(n.icmp, b)
		default:
			m.Aux = auxICMP(icmpProtoUnreachable, 0)
			c.Enqueue(n.icmp, b)
		}
	}
}
