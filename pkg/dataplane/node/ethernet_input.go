package node

import (
	"fmt"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/pkg/dataplane/graph"
	"github.com/vecnet/vecnet/pkg/header"
)

// ethernet-input strips the Ethernet header of frames from tap interfaces
// and dispatches on the EtherType. The header bytes stay in the buffer in
// front of the packet, so ARP and ND replies can reuse them.
type ethernetInput struct {
	ip4, ip6, arp int
}

const (
	ethErrTooShort = iota
	ethErrNotForUs
	ethErrUnknownType
	ethErrNoInterface
)

var ethernetInputErrors = []string{"too_short", "not_for_us", "unknown_ethertype", "interface_gone"}

func (n *ethernetInput) Init(g *graph.Graph) error {
	n.ip4 = g.MustIndex(IP4Input)
	n.ip6 = g.MustIndex(IP6Input)
	n.arp = g.MustIndex(ARPInput)
	return nil
}

func (n *ethernetInput) Process(c *graph.Context, f *graph.Frame) {
	p := c.Pool
	t := c.Tables
	for _, b := range f.B[:f.N] {
		m := p.Meta(b)
		pkt := p.Packet(b)
		if len(pkt) < header.EthernetMinSize {
			c.Drop(b, ethErrTooShort)
			continue
		}
		ifc := t.Interface(m.RxIf)
		if ifc == nil {
			c.Drop(b, ethErrNoInterface)
			continue
		}
		eth := header.Ethernet(pkt)
		if dst := eth.Dst(); dst != ifc.MAC && !header.IsMulticast(dst) {
			c.Drop(b, ethErrNotForUs)
			continue
		}
		next := -1
		switch eth.Type() {
		case header.EtherTypeIPv4:
			next = n.ip4
		case header.EtherTypeIPv6:
			next = n.ip6
		case header.EtherTypeARP:
			next = n.arp
		}
		if next < 0 {
			c.Drop(b, ethErrUnknownType)
			continue
		}
		m.Start += header.EthernetMinSize
		m.Len -= header.EthernetMinSize
		c.Enqueue(next, b)
	}
}

func (n *ethernetInput) TraceDetail(c *graph.Context, b buffer.Index) string {
	m := c.Pool.Meta(b)
	d := c.Pool.Data(b)
	if m.Len < header.EthernetMinSize {
		return "short frame"
	}
	eth := header.Ethernet(d[m.Start:])
	s, t := eth.Src(), eth.Dst()
	return fmt.Sprintf("%x -> %x type 0x%04x", s[:], t[:], eth.Type())
}
