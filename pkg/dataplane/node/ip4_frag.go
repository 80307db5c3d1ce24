package node

import (
	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/pkg/dataplane/graph"
	"github.com/vecnet/vecnet/pkg/dataplane/gso"
	"github.com/vecnet/vecnet/pkg/header"
)

// ip4-frag fragments IPv4 packets larger than the egress MTU that allow it
// (DF clear), per RFC 791 section 3.2 and RFC 1812 section 5.2.6: each
// fragment carries a multiple of 8 payload bytes, More Fragments on all but
// the last, offsets relative to the original datagram (which may itself be
// a fragment), and only the options whose "copied" flag is set after the
// first. Fragments go back to ip4-rewrite, which now finds them small
// enough and applies TTL and link-layer rewrite to each.
type ip4Frag struct {
	rewrite int
}

const (
	ip4FragErrNoBuffers = iota
	ip4FragErrMTUTooSmall
	ip4FragFragmentsSent
	ip4FragErrChecksum
)

var ip4FragErrors = []string{"no_buffers", "mtu_too_small", "fragments_sent", "bad_partial_checksum"}

func (n *ip4Frag) Init(g *graph.Graph) error {
	n.rewrite = g.MustIndex(IP4Rewrite)
	return nil
}

func (n *ip4Frag) Process(c *graph.Context, f *graph.Frame) {
	p := c.Pool
	for _, b := range f.B[:f.N] {
		m := p.Meta(b)
		mtu := int(m.Aux >> 8)
		// A partial checksum covers the whole datagram: finish it before
		// the payload is spread over fragments (as Linux does), or the
		// receiver reassembles a datagram whose checksum is the
		// pseudo-header sum alone.
		if gso.FinishChecksum(p, b) != nil {
			c.Drop(b, ip4FragErrChecksum)
			continue
		}
		orig := header.IPv4(p.Packet(b))
		hl := orig.HeaderLength()
		var later [header.IPv4MaximumHeaderSize]byte
		laterLen := header.IPv4MinimumSize + copiedOptions(orig.Options(), later[header.IPv4MinimumSize:])
		copy(later[:header.IPv4MinimumSize], orig)
		later[0] = 0x40 | byte(laterLen/4)
		// Every fragment must carry at least 8 payload bytes (RFC 791).
		if mtu-hl < 8 || mtu-laterLen < 8 {
			c.Drop(b, ip4FragErrMTUTooSmall)
			continue
		}
		payload := orig[hl:]
		baseOff := int(orig.FragmentOffset())
		lastMF := orig.Flags()&header.IPv4FlagMoreFragments != 0
		sent := 0
		for off := 0; off < len(payload); {
			h := orig[:hl]
			if off > 0 {
				h = later[:laterLen]
			}
			size := min(len(payload)-off, (mtu-len(h))&^7)
			fb, ok := p.Alloc()
			if !ok {
				c.Count(ip4FragErrNoBuffers, 1)
				break
			}
			fm := p.Meta(fb)
			*fm = buffer.Meta{Start: buffer.Headroom, Len: int32(len(h) + size), RxIf: m.RxIf, TxIf: m.TxIf, Adj: m.Adj, VRF: m.VRF, Flags: m.Flags & (buffer.FlagTraced | buffer.FlagLocal), Trace: m.Trace}
			d := p.Data(fb)[fm.Start : fm.Start+fm.Len]
			copy(d, h)
			copy(d[len(h):], payload[off:off+size])
			ip := header.IPv4(d)
			flags := orig.Flags() &^ header.IPv4FlagMoreFragments
			if off+size < len(payload) || lastMF {
				flags |= header.IPv4FlagMoreFragments
			}
			ip.SetFlagsFragmentOffset(flags, uint16(baseOff+off))
			ip.SetTotalLength(uint16(len(d)))
			ip.SetChecksum(0)
			ip.SetChecksum(ip.CalculateChecksum())
			c.Enqueue(n.rewrite, fb)
			off += size
			sent++
		}
		c.Count(ip4FragFragmentsSent, uint64(sent))
		c.Done(b)
	}
}

// copiedOptions copies the options with the "copied" flag (RFC 791 section
// 3.1: the high bit of the option type) into dst and returns the padded
// length. Malformed option lists copy nothing further.
func copiedOptions(opts, dst []byte) int {
	n := 0
	for i := 0; i < len(opts); {
		t := opts[i]
		if t == 0 { // end of option list
			break
		}
		if t == 1 { // no-operation
			i++
			continue
		}
		if i+1 >= len(opts) || opts[i+1] < 2 || i+int(opts[i+1]) > len(opts) {
			break
		}
		l := int(opts[i+1])
		if t&0x80 != 0 {
			n += copy(dst[n:], opts[i:i+l])
		}
		i += l
	}
	for n%4 != 0 {
		dst[n] = 0
		n++
	}
	return n
}
