package node

import (
	"fmt"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/pkg/dataplane/graph"
	"github.com/vecnet/vecnet/pkg/header"
)

// ip6-input validates IPv6 headers (RFC 8200 section 3) and sends
// link-scoped traffic (link-local unicast, ff02::/16 multicast: neighbour
// discovery, echo to fe80::1) straight to ip6-local: RFC 4291 section 2.5.6
// forbids forwarding it, so it never needs a FIB lookup.
type ip6Input struct {
	lookup, local int
}

const (
	ip6InputErrBadSource = iota + 4
	ip6InputErrMulticast
	ip6InputErrBadGSO
	ip6InputErrBadOffload
)

var ip6InputErrors = []string{"ok", "too_short", "bad_version", "bad_payload_length", "bad_source_address", "multicast_destination_not_link_local", "bad_gso_headers", "bad_checksum_offload"}

func (n *ip6Input) Init(g *graph.Graph) error {
	n.lookup = g.MustIndex(IP6Lookup)
	n.local = g.MustIndex(IP6Local)
	if ip6InputErrors[header.IPv6ErrBadPayloadLength] != header.IPv6ErrBadPayloadLength.String() {
		return fmt.Errorf("ip6-input reasons out of sync with header.IPv6Error")
	}
	return nil
}

func (n *ip6Input) Process(c *graph.Context, f *graph.Frame) {
	p := c.Pool
	for _, b := range f.B[:f.N] {
		pkt := p.Packet(b)
		if e := header.ValidateIPv6(pkt); e != header.IPv6OK {
			c.Drop(b, int(e))
			continue
		}
		ip := header.IPv6(pkt)
		src := ip.SourceAddress()
		// RFC 4291 section 2.7: multicast is never a source; the
		// loopback address never appears on a link (section 2.5.3).
		if header.IsIPv6Multicast(src) || src == ip6Loopback {
			c.Drop(b, ip6InputErrBadSource)
			continue
		}
		m := p.Meta(b)
		m.Len = int32(header.IPv6MinimumSize + int(ip.PayloadLength()))
		if m.Flags&buffer.FlagGSO != 0 && m.Flags&buffer.FlagGSOTunnel == 0 && !trustHdrLen(m, pkt[:m.Len], header.IPv6MinimumSize, ip.NextHeader()) {
			c.Drop(b, ip6InputErrBadGSO)
			continue
		}
		if !csumOffloadInside(m, header.IPv6MinimumSize) {
			c.Drop(b, ip6InputErrBadOffload)
			continue
		}
		dst := ip.DestinationAddress()
		switch {
		case header.IsIPv6Multicast(dst):
			if dst[1]&0x0f != 0x02 {
				c.Drop(b, ip6InputErrMulticast)
				continue
			}
			c.Enqueue(n.local, b)
		case header.IsIPv6LinkLocalUnicast(dst):
			c.Enqueue(n.local, b)
		default:
			c.Enqueue(n.lookup, b)
		}
	}
}

func (n *ip6Input) TraceDetail(c *graph.Context, b buffer.Index) string {
	return fmtIP6(c.Pool.Packet(b))
}

var ip6Loopback = [16]byte{15: 1}
