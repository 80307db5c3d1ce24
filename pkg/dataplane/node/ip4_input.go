package node

import (
	"fmt"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/pkg/dataplane/graph"
	"github.com/vecnet/vecnet/pkg/header"
)

// ip4-input validates IPv4 headers (RFC 1812 section 5.2.2) before anything
// reads them: every later node may then use the header accessors without
// bounds checks failing.
type ip4Input struct {
	lookup int
}

// The first reasons mirror header.IPv4Error so a validation result is its
// own drop reason.
const (
	ip4InputErrBadChecksum = iota + 5
	ip4InputErrBadSource
	ip4InputErrMulticastDst
	ip4InputErrBadGSO
	ip4InputErrBadOffload
)

var ip4InputErrors = []string{
	"ok", "too_short", "bad_version", "bad_header_length", "bad_total_length",
	"bad_checksum", "bad_source_address", "multicast_or_broadcast_destination", "bad_gso_headers", "bad_checksum_offload",
}

func (n *ip4Input) Init(g *graph.Graph) error {
	n.lookup = g.MustIndex(IP4Lookup)
	if ip4InputErrors[header.IPv4ErrBadTotalLength] != header.IPv4ErrBadTotalLength.String() {
		return fmt.Errorf("ip4-input reasons out of sync with header.IPv4Error")
	}
	return nil
}

func (n *ip4Input) Process(c *graph.Context, f *graph.Frame) {
	p := c.Pool
	for _, b := range f.B[:f.N] {
		pkt := p.Packet(b)
		if e := header.ValidateIPv4(pkt); e != header.IPv4OK {
			c.Drop(b, int(e))
			continue
		}
		ip := header.IPv4(pkt)
		if !ip.IsChecksumValid() {
			c.Drop(b, ip4InputErrBadChecksum)
			continue
		}
		// RFC 1812 section 5.3.7: never forward from a source that is
		// multicast, broadcast, loopback or "this network".
		src := ip.SourceAddress()
		if src[0] >= 224 || src[0] == 127 || src[0] == 0 {
			c.Drop(b, ip4InputErrBadSource)
			continue
		}
		if dst := ip.DestinationAddress(); dst[0] >= 224 {
			c.Drop(b, ip4InputErrMulticastDst)
			continue
		}
		// Trim link-layer padding so Len is the IP datagram.
		m := p.Meta(b)
		m.Len = int32(ip.TotalLength())
		if m.Flags&buffer.FlagGSO != 0 && m.Flags&buffer.FlagGSOTunnel == 0 && !trustHdrLen(m, pkt[:m.Len], ip.HeaderLength(), ip.Protocol()) {
			c.Drop(b, ip4InputErrBadGSO)
			continue
		}
		if !csumOffloadInside(m, ip.HeaderLength()) {
			c.Drop(b, ip4InputErrBadOffload)
			continue
		}
		c.Enqueue(n.lookup, b)
	}
}

func (n *ip4Input) TraceDetail(c *graph.Context, b buffer.Index) string {
	return fmtIP4(c.Pool.Packet(b))
}
