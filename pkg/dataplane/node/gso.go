package node

import (
	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/pkg/dataplane/graph"
	"github.com/vecnet/vecnet/pkg/dataplane/gso"
	"github.com/vecnet/vecnet/pkg/header"
)

// The gso nodes do in software what an output cannot: cut a GSO
// super-packet into MTU-sized packets (the kernel's skb_segment) and
// finish partial checksums. tunnel-gso runs before encapsulation, where
// the packet still starts with the (inner) IP header, and hands the pieces
// back to tunnel-encap; interface-gso runs at the output of an uplink
// without offloads, on packets that already carry their Ethernet header.
type gsoNode struct {
	next int
	l2   bool // packets carry their link-layer header (interface-gso)
	out  [][]buffer.Index
}

const (
	gsoErrSegment = iota
	gsoErrChecksum
	gsoSegmented
)

var gsoErrors = []string{"segmentation_failed", "checksum_failed", "segmented"}

// maxSegments bounds the pieces of one super-packet: 64 KiB cut at the
// smallest MSS worth supporting (536 bytes, RFC 9293 section 3.7.1) is 123.
const maxSegments = 128

func newGSONode(workers int, l2 bool) *gsoNode {
	n := &gsoNode{l2: l2, out: make([][]buffer.Index, workers)}
	for i := range n.out {
		n.out[i] = make([]buffer.Index, maxSegments)
	}
	return n
}

func (n *gsoNode) Init(g *graph.Graph) error {
	if n.l2 {
		n.next = g.MustIndex(InterfaceOutput)
	} else {
		n.next = g.MustIndex(TunnelEncap)
	}
	return nil
}

func (n *gsoNode) Process(c *graph.Context, f *graph.Frame) {
	p := c.Pool
	t := c.Tables
	out := n.out[c.Worker]
	segmented := uint64(0)
	for _, b := range f.B[:f.N] {
		m := p.Meta(b)
		var l2 int32
		if n.l2 {
			if ifc := t.Interface(m.TxIf); ifc != nil && ifc.Kind.L2() {
				l2 = header.EthernetMinSize
			}
		}
		d := p.Data(b)
		var eth [header.EthernetMinSize]byte
		copy(eth[:l2], d[m.Start:])
		m.Start += l2
		m.Len -= l2
		if m.Flags&buffer.FlagGSO == 0 {
			if err := gso.FinishChecksum(p, b); err != nil {
				c.Drop(b, gsoErrChecksum)
				continue
			}
			prepend(p, b, eth[:l2])
			c.Enqueue(n.next, b)
			continue
		}
		k, err := gso.Segment(p, b, out)
		if err != nil {
			prepend(p, b, eth[:l2])
			c.Drop(b, gsoErrSegment)
			continue
		}
		// b is freed but its metadata intact until the next allocation:
		// close its trace; the pieces are not traced.
		c.Sent(b)
		segmented++
		for _, s := range out[:k] {
			p.Meta(s).Flags &^= buffer.FlagTraced
			prepend(p, s, eth[:l2])
			c.Enqueue(n.next, s)
		}
	}
	if segmented > 0 {
		c.Count(gsoSegmented, segmented)
	}
}

// prepend puts a saved link-layer header back in front of a packet.
func prepend(p *buffer.Pool, b buffer.Index, hdr []byte) {
	if len(hdr) == 0 {
		return
	}
	m := p.Meta(b)
	m.Start -= int32(len(hdr))
	m.Len += int32(len(hdr))
	copy(p.Data(b)[m.Start:], hdr)
}
