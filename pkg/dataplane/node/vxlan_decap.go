package node

import (
	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/pkg/dataplane/graph"
	"github.com/vecnet/vecnet/pkg/header"
)

// vxlan-decap removes outer IPv4, UDP, VXLAN (RFC 7348 section 5) and
// inner Ethernet headers of packets from other nodes and sends the inner
// IP packet through ip4-input/ip6-input. As for IP-in-IP, only known nodes
// may send, and only for a VNI in use. The outer UDP checksum is not
// verified: senders set it to zero over IPv4 (RFC 7348 section 5) and the
// inner packet carries its own checksums.
type vxlanDecap struct {
	ip4, ip6 int
}

const (
	vxlanDecapErrUnknownPeer = iota
	vxlanDecapErrShort
	vxlanDecapErrFlags
	vxlanDecapErrUnknownVNI
	vxlanDecapErrBadInner
	vxlanDecapErrBadOffload
	vxlanDecapOK
)

var vxlanDecapErrors = []string{"unknown_peer", "too_short", "vni_flag_clear", "unknown_vni", "bad_inner_packet", "bad_offload", "decapsulated"}

// vxlanStrip is what lies between the outer IPv4 header and the inner IP
// packet: UDP, VXLAN and the inner Ethernet header.
const vxlanStrip = header.UDPMinimumSize + header.VXLANSize + header.EthernetMinSize

func (n *vxlanDecap) Init(g *graph.Graph) error {
	n.ip4 = g.MustIndex(IP4Input)
	n.ip6 = g.MustIndex(IP6Input)
	return nil
}

func (n *vxlanDecap) Process(c *graph.Context, f *graph.Frame) {
	p := c.Pool
	t := c.Tables
	ok := uint64(0)
	var peers peerCache
	// As peers, for VNIs: one lookup per run of packets with the same.
	var vni uint32
	vniOK := false
	for _, b := range f.B[:f.N] {
		m := p.Meta(b)
		pkt := p.Packet(b)
		outer := header.IPv4(pkt)
		if !peers.known(t, outer.SourceAddress()) {
			c.Drop(b, vxlanDecapErrUnknownPeer)
			continue
		}
		hl := outer.HeaderLength()
		// One byte of inner packet at least, for the version check.
		if len(pkt) < hl+vxlanStrip+1 {
			c.Drop(b, vxlanDecapErrShort)
			continue
		}
		vx := header.VXLAN(pkt[hl+header.UDPMinimumSize:])
		if vx.Flags()&header.VXLANFlagVNI == 0 {
			c.Drop(b, vxlanDecapErrFlags)
			continue
		}
		if v := vx.VNI(); !vniOK || v != vni {
			_, vniOK = t.VNIs[v]
			vni = v
		}
		if !vniOK {
			c.Drop(b, vxlanDecapErrUnknownVNI)
			continue
		}
		eth := header.Ethernet(pkt[hl+header.UDPMinimumSize+header.VXLANSize:])
		inner := pkt[hl+vxlanStrip]
		next := -1
		switch eth.Type() {
		case header.EtherTypeIPv4:
			if inner>>4 == 4 {
				next = n.ip4
			}
		case header.EtherTypeIPv6:
			if inner>>4 == 6 {
				next = n.ip6
			}
		}
		if next < 0 {
			c.Drop(b, vxlanDecapErrBadInner)
			continue
		}
		if !stripOuter(m, int32(hl+vxlanStrip)) {
			c.Drop(b, vxlanDecapErrBadOffload)
			continue
		}
		ok++
		c.Enqueue(next, b)
	}
	if ok > 0 {
		c.Count(vxlanDecapOK, ok)
	}
}

func (n *vxlanDecap) TraceDetail(c *graph.Context, b buffer.Index) string {
	pkt := c.Pool.Packet(b)
	ip := header.IPv4(pkt)
	vni := int64(-1)
	if hl := ip.HeaderLength(); len(pkt) >= hl+16 {
		vni = int64(header.VXLAN(pkt[hl+8:]).VNI())
	}
	return fmtTunnel("vxlan", ip.SourceAddress(), vni)
}
