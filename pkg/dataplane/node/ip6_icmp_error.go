package node

import (
	"fmt"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/pkg/dataplane/driver/tun"
	"github.com/vecnet/vecnet/pkg/dataplane/graph"
	"github.com/vecnet/vecnet/pkg/header"
)

// ip6-icmp-error builds ICMPv6 errors (RFC 4443 section 3) in place, like
// ip4-icmp-error, with the rules of section 2.4: never about an ICMPv6
// error, never to a multicast destination (except Packet Too Big, which
// path MTU discovery for multicast needs), rate-limited.
type ip6ICMPError struct {
	lookup, local int
	limiter       []tokenBucket
}

const (
	ip6ICMPErrRateLimited = iota
	ip6ICMPErrAboutICMPError
	ip6ICMPErrMulticast
	ip6ICMPErrLocal
	ip6ICMPTimeExceeded
	ip6ICMPUnreachable
	ip6ICMPTooBig
)

var ip6ICMPErrorErrors = []string{
	"rate_limited", "no_error_for_icmp_error", "no_error_for_multicast", "undeliverable_local_packet",
	"time_exceeded_sent", "unreachable_sent", "packet_too_big_sent",
}

// RFC 4443 section 2.4(c): the error must not exceed the minimum IPv6 MTU.
const ip6ICMPMaxQuote = 1280 - header.IPv6MinimumSize - header.ICMPv6MinimumSize

func newIP6ICMPError(workers int) *ip6ICMPError {
	e := &ip6ICMPError{limiter: make([]tokenBucket, workers)}
	for i := range e.limiter {
		e.limiter[i] = newTokenBucket(icmpErrorRate, icmpErrorBurst)
	}
	return e
}

func (n *ip6ICMPError) Init(g *graph.Graph) error {
	n.lookup = g.MustIndex(IP6Lookup)
	n.local = g.MustIndex(IP6Local)
	return nil
}

func (n *ip6ICMPError) Process(c *graph.Context, f *graph.Frame) {
	p := c.Pool
	lim := &n.limiter[c.Worker]
	for _, b := range f.B[:f.N] {
		m := p.Meta(b)
		d := p.Data(b)
		orig := header.IPv6(d[m.Start : m.Start+m.Len])
		kind := m.Aux & 0xff
		if m.Flags&buffer.FlagLocal != 0 {
			c.Drop(b, ip6ICMPErrLocal)
			continue
		}
		if header.IsIPv6Multicast(orig.DestinationAddress()) && kind != icmpTooBig {
			c.Drop(b, ip6ICMPErrMulticast)
			continue
		}
		if proto, off, ok := header.TransportProtocol(orig); !ok || proto == header.ProtocolICMPv6 && (len(orig) <= off || header.ICMPv6Type(orig[off]).IsErrorMessage()) {
			c.Drop(b, ip6ICMPErrAboutICMPError)
			continue
		}
		if !lim.take(c.Now) {
			c.Drop(b, ip6ICMPErrRateLimited)
			continue
		}
		var typ header.ICMPv6Type
		var code header.ICMPv6Code
		var mtu uint32
		switch kind {
		case icmpTimeExceeded:
			typ, code = header.ICMPv6TimeExceeded, header.ICMPv6HopLimitExceeded
			c.Count(ip6ICMPTimeExceeded, 1)
		case icmpTooBig:
			typ, mtu = header.ICMPv6PacketTooBig, m.Aux>>8
			c.Count(ip6ICMPTooBig, 1)
		case icmpPortUnreachable, icmpProtoUnreachable:
			typ, code = header.ICMPv6DstUnreachable, header.ICMPv6PortUnreachable
			c.Count(ip6ICMPUnreachable, 1)
		default:
			typ, code = header.ICMPv6DstUnreachable, header.ICMPv6NoRoute
			c.Count(ip6ICMPUnreachable, 1)
		}
		quote := min(int(m.Len), ip6ICMPMaxQuote)
		const hl = header.IPv6MinimumSize + header.ICMPv6MinimumSize
		start := m.Start - hl
		pkt := d[start : int(m.Start)+quote]
		src := icmpSource6(c, m.RxIf)
		dst := orig.SourceAddress()
		icmp := header.ICMPv6(pkt[header.IPv6MinimumSize:])
		icmp.SetType(typ)
		icmp.SetCode(code)
		clear(icmp[2:8])
		if mtu != 0 {
			icmp.SetMTU(mtu)
		}
		icmp.SetChecksum(icmp.CalculateChecksum(src, dst))
		header.IPv6(pkt).Encode(&header.IPv6Fields{
			PayloadLength: uint16(len(icmp)),
			NextHeader:    header.ProtocolICMPv6,
			HopLimit:      64,
			Src:           src,
			Dst:           dst,
		})
		m.Start = start
		m.Len = int32(len(pkt))
		m.Flags = m.Flags&buffer.FlagTraced | buffer.FlagLocal
		m.Aux = 0
		c.Enqueue(n.lookup, b)
	}
}

func (n *ip6ICMPError) TraceDetail(c *graph.Context, b buffer.Index) string {
	return fmt.Sprintf("icmp6 error kind %d", c.Pool.Meta(b).Aux&0xff)
}

func icmpSource6(c *graph.Context, rx uint32) [16]byte {
	if ifc := c.Tables.Interface(rx); ifc != nil && len(ifc.Addrs6) > 0 {
		return ifc.Addrs6[0]
	}
	return tun.GatewayIPv6.As16()
}
