package node

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/pkg/dataplane/driver/tun"
	"github.com/vecnet/vecnet/pkg/dataplane/graph"
	"github.com/vecnet/vecnet/pkg/dataplane/tables"
	"github.com/vecnet/vecnet/pkg/header"
)

// arp-input answers ARP requests on tap interfaces and learns the sender
// (RFC 826 "packet reception"). It answers for every address except the
// pod's own, i.e. proxy ARP as on Calico's host-side veths: the pod sends
// everything to the dataplane, whatever prefix length it was given.
type arpInput struct {
	env    Env
	output int
}

const (
	arpErrMalformed = iota
	arpErrNoInterface
	arpErrProbe
	arpErrForPod
	arpErrLearnQueueFull
	arpRequestsAnswered
	arpRepliesReceived
	arpErrUplink
)

var arpInputErrors = []string{"malformed", "interface_gone", "probe_ignored", "target_is_pod", "learn_queue_full", "requests_answered", "replies_received", "uplink_arp_is_the_kernels"}

func (n *arpInput) Init(g *graph.Graph) error {
	n.output = g.MustIndex(InterfaceOutput)
	return nil
}

func (n *arpInput) Process(c *graph.Context, f *graph.Frame) {
	p := c.Pool
	t := c.Tables
	for _, b := range f.B[:f.N] {
		m := p.Meta(b)
		d := p.Data(b)
		a := header.ARP(d[m.Start : m.Start+m.Len])
		if len(a) < header.ARPSize || !a.IsValidEthernetIPv4() || m.Start < header.EthernetMinSize+tun.VnetHdrLen {
			c.Drop(b, arpErrMalformed)
			continue
		}
		ifc := t.Interface(m.RxIf)
		if ifc == nil {
			c.Drop(b, arpErrNoInterface)
			continue
		}
		if ifc.Kind == tables.KindUplink {
			// The uplink filter passes ARP to the kernel, which owns the
			// uplink's addresses and neighbours; answering here would
			// claim addresses for the dataplane's MAC on the host's LAN.
			c.Drop(b, arpErrUplink)
			continue
		}
		sip, sha := a.SenderIP(), a.SenderHW()
		if sip == [4]byte{} {
			// Duplicate address detection probe (RFC 5227): answering
			// would make the pod think its address is taken.
			c.Drop(b, arpErrProbe)
			continue
		}
		n.learn(c, m.RxIf, netip.AddrFrom4(sip), sha)
		if a.Op() != header.ARPRequest {
			c.Drop(b, arpRepliesReceived)
			continue
		}
		tip := a.TargetIP()
		if tip == sip || slices.Contains(ifc.PodAddrs, netip.AddrFrom4(tip)) {
			c.Drop(b, arpErrForPod)
			continue
		}
		a.Encode(header.ARPReply, ifc.MAC, tip, sha, sip)
		m.Start -= header.EthernetMinSize
		m.Len = header.EthernetMinSize + header.ARPSize
		header.Ethernet(d[m.Start:]).Encode(sha, ifc.MAC, header.EtherTypeARP)
		m.TxIf = m.RxIf
		m.Flags &= buffer.FlagTraced
		c.Count(arpRequestsAnswered, 1)
		c.Enqueue(n.output, b)
	}
}

func (n *arpInput) learn(c *graph.Context, ifx uint32, ip netip.Addr, mac [6]byte) {
	if n.env.Learn == nil {
		return
	}
	select {
	case n.env.Learn <- NeighborEvent{IfIndex: ifx, IP: ip, MAC: mac}:
	default:
		c.Count(arpErrLearnQueueFull, 1)
	}
}

func (n *arpInput) TraceDetail(c *graph.Context, b buffer.Index) string {
	a := header.ARP(c.Pool.Packet(b))
	if len(a) < header.ARPSize {
		return "short arp"
	}
	sha := a.SenderHW()
	return fmt.Sprintf("op %d %v (%x) asks for %v", a.Op(), netip.AddrFrom4(a.SenderIP()), sha[:], netip.AddrFrom4(a.TargetIP()))
}

// ip4-arp resolves next hops on tap interfaces (VPP's ip4-arp/ip4-glean):
// the packet that found an incomplete adjacency is dropped and its buffer
// reused for an ARP request, at most one per target per resolveInterval.
// The reply, through arp-input and the control plane, completes the
// adjacency for the packets that follow.
type ip4ARP struct {
	output  int
	limiter []resolveLimiter
	resolve chan<- NeighborEvent
}

const (
	ip4ARPErrThrottled = iota
	ip4ARPErrNoInterface
	ip4ARPRequestsSent
	ip4ARPKernelResolve
)

var ip4ARPErrors = []string{"throttled", "interface_gone", "requests_sent", "kernel_resolve"}

func newIP4ARP(env Env) *ip4ARP {
	return &ip4ARP{limiter: make([]resolveLimiter, env.Workers), resolve: env.Resolve}
}

func (n *ip4ARP) Init(g *graph.Graph) error {
	n.output = g.MustIndex(InterfaceOutput)
	return nil
}

func (n *ip4ARP) Process(c *graph.Context, f *graph.Frame) {
	p := c.Pool
	t := c.Tables
	lim := &n.limiter[c.Worker]
	for _, b := range f.B[:f.N] {
		m := p.Meta(b)
		adj := &t.Adjs[m.Adj]
		ifc := t.Interface(adj.TxIf)
		if ifc == nil {
			c.Drop(b, ip4ARPErrNoInterface)
			continue
		}
		var target [4]byte
		if adj.NextHop.Is4() {
			target = adj.NextHop.As4()
		} else {
			target = header.IPv4(p.Packet(b)).DestinationAddress()
		}
		var key [16]byte
		copy(key[12:], target[:])
		if !lim.allow(adj.TxIf, key, c.Now) {
			c.Drop(b, ip4ARPErrThrottled)
			continue
		}
		if ifc.Kind == tables.KindUplink {
			askKernel(n.resolve, adj.TxIf, netip.AddrFrom4(target))
			c.Drop(b, ip4ARPKernelResolve)
			continue
		}
		src := tun.GatewayIPv4.As4()
		if len(ifc.Addrs4) > 0 {
			src = ifc.Addrs4[0]
		}
		d := p.Data(b)
		m.Start = buffer.Headroom
		m.Len = header.EthernetMinSize + header.ARPSize
		frame := d[m.Start : m.Start+m.Len]
		header.Ethernet(frame).Encode([6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, ifc.MAC, header.EtherTypeARP)
		header.ARP(frame[header.EthernetMinSize:]).Encode(header.ARPRequest, ifc.MAC, src, [6]byte{}, target)
		m.TxIf = adj.TxIf
		m.Flags = m.Flags&buffer.FlagTraced | buffer.FlagLocal
		c.Count(ip4ARPRequestsSent, 1)
		c.Enqueue(n.output, b)
	}
}

// askKernel asks the control plane to have the kernel resolve ip on an
// uplink. The kernel owns the uplink's ARP/ND: the replies go to it (the
// uplink filter passes ARP and ND), and the control plane learns the
// binding from its neighbour table through netlink.
func askKernel(ch chan<- NeighborEvent, ifx uint32, ip netip.Addr) {
	if ch == nil {
		return
	}
	select {
	case ch <- NeighborEvent{IfIndex: ifx, IP: ip}:
	default:
	}
}
