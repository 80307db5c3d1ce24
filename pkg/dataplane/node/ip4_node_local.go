package node

import (
	"fmt"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/pkg/dataplane/graph"
	"github.com/vecnet/vecnet/pkg/dataplane/tables"
	"github.com/vecnet/vecnet/pkg/header"
)

// ip4-node-local handles packets for the node's own address (an AdjHost
// adjacency): the host kernel owns that address, so the dataplane keeps
// only what is its own business — IP-in-IP and VXLAN from other nodes,
// which it decapsulates — and hands everything else (a pod talking to the
// kubelet, say) to the host through the host tun. VPP does the same
// dispatch by protocol in ip4-local; here the address is the kernel's.
type ip4NodeLocal struct {
	ipip, vxlan, rewrite int
}

const (
	ip4NodeLocalErrNoHostIf = iota
	ip4NodeLocalErrFragment
	ip4NodeLocalToHost
)

var ip4NodeLocalErrors = []string{"no_host_interface", "tunnel_fragment", "to_host"}

func (n *ip4NodeLocal) Init(g *graph.Graph) error {
	n.ipip = g.MustIndex(IPIPDecap)
	n.vxlan = g.MustIndex(VXLANDecap)
	n.rewrite = g.MustIndex(IP4Rewrite)
	return nil
}

func (n *ip4NodeLocal) Process(c *graph.Context, f *graph.Frame) {
	p := c.Pool
	t := c.Tables
	toHost := uint64(0)
	for _, b := range f.B[:f.N] {
		m := p.Meta(b)
		ip := header.IPv4(p.Packet(b))
		proto := ip.Protocol()
		tunnel := false
		switch proto {
		case header.ProtocolIPIP, header.ProtocolIPv6:
			tunnel = true
		case header.ProtocolUDP:
			if l4 := ip[ip.HeaderLength():]; len(l4) >= header.UDPMinimumSize && header.UDP(l4).DestinationPort() == t.VXLANPort {
				tunnel = true
			}
		}
		if tunnel {
			// Tunnel packets are never fragmented by our peers (their
			// inner MTU accounts for the overhead); a fragment is a
			// stranger's and would need reassembly we do not do.
			if ip.IsFragment() {
				c.Drop(b, ip4NodeLocalErrFragment)
				continue
			}
			if proto == header.ProtocolUDP {
				c.Enqueue(n.vxlan, b)
			} else {
				c.Enqueue(n.ipip, b)
			}
			continue
		}
		if t.Adjs[m.Adj].TxIf == 0 {
			c.Drop(b, ip4NodeLocalErrNoHostIf)
			continue
		}
		toHost++
		c.Enqueue(n.rewrite, b)
	}
	if toHost > 0 {
		c.Count(ip4NodeLocalToHost, toHost)
	}
}

func (n *ip4NodeLocal) TraceDetail(c *graph.Context, b buffer.Index) string {
	return fmtIP4(c.Pool.Packet(b))
}

// stripOuter removes l bytes of outer headers in front of an inner packet
// and moves the offload offsets with it: CsumStart and HdrLen count from
// the L3 header, which is now the inner one. It reports false when the
// offsets would point before the inner packet (a malformed offload).
func stripOuter(m *buffer.Meta, l int32) bool {
	m.Start += l
	m.Len -= l
	// A tunnel super-packet's GSO fields describe the inner packet,
	// which is all that is left.
	m.Flags &^= buffer.FlagGSOTunnel
	if m.Flags&buffer.FlagCsumPart != 0 {
		if int32(m.CsumStart) < l {
			return false
		}
		m.CsumStart -= uint16(l)
	}
	if m.Flags&buffer.FlagGSO != 0 {
		if int32(m.HdrLen) < l {
			return false
		}
		m.HdrLen -= uint16(l)
	}
	return true
}

// peerCache answers "is src a tunnel peer?" for one vector: its packets
// come in runs from the same peer, so TunnelPeers is consulted once per
// run rather than once per packet.
type peerCache struct {
	src [4]byte
	ok  bool
}

func (pc *peerCache) known(t *tables.Snapshot, src [4]byte) bool {
	if !pc.ok || pc.src != src {
		_, pc.ok = t.TunnelPeers[src]
		pc.src = src
	}
	return pc.ok
}

// TraceDetail helper shared by the decap nodes.
func fmtTunnel(kind string, src [4]byte, vni int64) string {
	if vni >= 0 {
		return fmt.Sprintf("%s from %d.%d.%d.%d vni %d", kind, src[0], src[1], src[2], src[3], vni)
	}
	return fmt.Sprintf("%s from %d.%d.%d.%d", kind, src[0], src[1], src[2], src[3])
}
