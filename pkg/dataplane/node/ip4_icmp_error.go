package node

import (
	"fmt"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/pkg/dataplane/graph"
	"github.com/vecnet/vecnet/pkg/header"
)

// ip4-icmp-error turns a packet the dataplane cannot deliver into the ICMP
// error that tells its sender why (time exceeded, destination unreachable,
// fragmentation needed), built in place in the packet's own buffer: the new
// headers go into the headroom, the offending datagram's start stays as the
// error's payload.
type ip4ICMPError struct {
	lookup  int
	limiter []tokenBucket // per worker
}

const (
	ip4ICMPErrRateLimited = iota
	ip4ICMPErrAboutICMPError
	ip4ICMPErrFragment
	ip4ICMPErrLocal
	ip4ICMPTimeExceeded
	ip4ICMPUnreachable
	ip4ICMPFragNeeded
)

var ip4ICMPErrorErrors = []string{
	"rate_limited", "no_error_for_icmp_error", "no_error_for_fragment", "undeliverable_local_packet",
	"time_exceeded_sent", "unreachable_sent", "fragmentation_needed_sent",
}

// RFC 1812 section 4.3.2.8 asks routers to rate-limit ICMP errors; 1000/s
// with bursts of 100 per worker is Linux's default order of magnitude.
const (
	icmpErrorRate  = 1000
	icmpErrorBurst = 100
	// RFC 1812 section 4.3.2.3: the error carries as much of the original
	// datagram as fits in 576 bytes.
	ip4ICMPMaxQuote = 576 - header.IPv4MinimumSize - header.ICMPv4MinimumSize
)

func newIP4ICMPError(workers int) *ip4ICMPError {
	e := &ip4ICMPError{limiter: make([]tokenBucket, workers)}
	for i := range e.limiter {
		e.limiter[i] = newTokenBucket(icmpErrorRate, icmpErrorBurst)
	}
	return e
}

func (n *ip4ICMPError) Init(g *graph.Graph) error {
	n.lookup = g.MustIndex(IP4Lookup)
	return nil
}

func (n *ip4ICMPError) Process(c *graph.Context, f *graph.Frame) {
	p := c.Pool
	lim := &n.limiter[c.Worker]
	for _, b := range f.B[:f.N] {
		m := p.Meta(b)
		d := p.Data(b)
		orig := header.IPv4(d[m.Start : m.Start+m.Len])
		if m.Flags&buffer.FlagLocal != 0 {
			// Our own reply found no way out: answering it would loop.
			c.Drop(b, ip4ICMPErrLocal)
			continue
		}
		if orig.FragmentOffset() != 0 {
			c.Drop(b, ip4ICMPErrFragment)
			continue
		}
		if orig.Protocol() == header.ProtocolICMP {
			if l4 := orig[orig.HeaderLength():]; len(l4) == 0 || header.ICMPv4Type(l4[0]).IsErrorMessage() {
				c.Drop(b, ip4ICMPErrAboutICMPError)
				continue
			}
		}
		if !lim.take(c.Now) {
			c.Drop(b, ip4ICMPErrRateLimited)
			continue
		}
		var typ header.ICMPv4Type
		var code header.ICMPv4Code
		var mtu uint16
		switch kind := m.Aux & 0xff; kind {
		case icmpTimeExceeded:
			typ, code = header.ICMPv4TimeExceeded, header.ICMPv4TTLExceeded
			c.Count(ip4ICMPTimeExceeded, 1)
		case icmpTooBig:
			typ, code, mtu = header.ICMPv4DstUnreachable, header.ICMPv4FragmentationNeeded, uint16(m.Aux>>8)
			c.Count(ip4ICMPFragNeeded, 1)
		case icmpPortUnreachable:
			typ, code = header.ICMPv4DstUnreachable, header.ICMPv4PortUnreachable
			c.Count(ip4ICMPUnreachable, 1)
		case icmpProtoUnreachable:
			typ, code = header.ICMPv4DstUnreachable, header.ICMPv4ProtoUnreachable
			c.Count(ip4ICMPUnreachable, 1)
		default:
			typ, code = header.ICMPv4DstUnreachable, header.ICMPv4NetUnreachable
			c.Count(ip4ICMPUnreachable, 1)
		}
		quote := min(int(m.Len), ip4ICMPMaxQuote)
		const hl = header.IPv4MinimumSize + header.ICMPv4MinimumSize
		start := m.Start - hl
		pkt := d[start : int(m.Start)+quote]
		icmp := header.ICMPv4(pkt[header.IPv4MinimumSize:])
		icmp.SetType(typ)
		icmp.SetCode(code)
		icmp.SetChecksum(0)
		clear(icmp[4:8])
		if mtu != 0 {
			icmp.SetMTU(mtu)
		}
		icmp.SetChecksum(icmp.CalculateChecksum())
		ip := header.IPv4(pkt)
		ip.Encode(&header.IPv4Fields{
			TOS:         0xc0, // internetwork control
			TotalLength: uint16(len(pkt)),
			TTL:         64,
			Protocol:    header.ProtocolICMP,
			Src:         icmpSource4(c, m.RxIf),
			Dst:         orig.SourceAddress(),
		})
		ip.SetChecksum(ip.CalculateChecksum())
		m.Start = start
		m.Len = int32(len(pkt))
		m.Flags = m.Flags&buffer.FlagTraced | buffer.FlagLocal
		m.Aux = 0
		c.Enqueue(n.lookup, b)
	}
}

func (n *ip4ICMPError) TraceDetail(c *graph.Context, b buffer.Index) string {
	return fmt.Sprintf("icmp error kind %d", c.Pool.Meta(b).Aux&0xff)
}

// icmpSource4 picks the source of an ICMP error: an address of the
// interface the packet came in on, so that traceroute shows the hop the
// sender knows; else RFC 7600's dummy address.
func icmpSource4(c *graph.Context, rx uint32) [4]byte {
	if ifc := c.Tables.Interface(rx); ifc != nil && len(ifc.Addrs4) > 0 {
		return ifc.Addrs4[0]
	}
	return rfc7600DummyIPv4
}
