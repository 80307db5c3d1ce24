// Package node holds the dataplane's graph nodes, one file per node as in
// VPP: ip4-input is ip4_input.go, ip4-lookup is ip4_lookup.go, and so on.
// Each node declares its drop reasons (shown by `vecnetctl show errors`)
// and its next nodes, and processes a whole frame per call.
//
// The graph for pod traffic:
//
//	tun-input ──────────────┬─> ip4-input ─> ip4-lookup ─┬─> ip4-rewrite ─> interface-output
//	tap: ethernet-input ─┬──┘                            ├─> ip4-local ──> (echo reply) ip4-lookup
//	                     └─> arp-input                   ├─> ip4-arp (glean) ─> interface-output
//	                                                     └─> ip4-icmp-error ─> ip4-lookup
//
// and the same for IPv6, where ip6-local also handles neighbour discovery.
// Between nodes, through tunnels over an uplink:
//
//	ip4/ip6-rewrite ─> [tunnel-gso] ─> tunnel-encap ─> interface-output ─> [interface-gso]
//	uplink-input ─> ethernet-input ─> ip4-input ─> ip4-lookup ─> ip4-node-local
//	    ─> ipip-decap | vxlan-decap ─> ip4-input | ip6-input (inner packet)
//
// ip4-node-local also hands non-tunnel packets for the node's address to
// the host tun.
package node

import (
	"net/netip"

	"github.com/vecnet/vecnet/pkg/dataplane/graph"
)

// Node names: the contract with `vecnetctl show runtime|errors|trace`.
const (
	TunInput        = "tun-input"
	EthernetInput   = "ethernet-input"
	ARPInput        = "arp-input"
	IP4Input        = "ip4-input"
	IP4Lookup       = "ip4-lookup"
	IP4Local        = "ip4-local"
	IP4ICMPError    = "ip4-icmp-error"
	IP4ARP          = "ip4-arp"
	IP4Rewrite      = "ip4-rewrite"
	IP4Frag         = "ip4-frag"
	IP6Input        = "ip6-input"
	IP6Lookup       = "ip6-lookup"
	IP6Local        = "ip6-local"
	IP6ICMPError    = "ip6-icmp-error"
	IP6ND           = "ip6-nd"
	IP6Rewrite      = "ip6-rewrite"
	InterfaceOutput = "interface-output"

	UplinkInput  = "uplink-input"
	IP4NodeLocal = "ip4-node-local"
	IPIPDecap    = "ipip-decap"
	VXLANDecap   = "vxlan-decap"
	TunnelEncap  = "tunnel-encap"
	TunnelGSO    = "tunnel-gso"
	InterfaceGSO = "interface-gso"
)

// NeighborEvent is sent by ARP/ND nodes to the control plane, which owns
// the neighbour table: workers never write tables themselves.
type NeighborEvent struct {
	IfIndex uint32
	IP      netip.Addr
	MAC     [6]byte
}

// Env is what nodes need from the rest of vecnetd.
type Env struct {
	Workers int
	// Learn receives neighbour bindings. Sends never block: when the
	// control plane is behind, the binding is learned from the next
	// ARP/ND packet instead.
	Learn chan<- NeighborEvent
	// Resolve receives next hops on uplinks that have no binding yet: the
	// kernel owns the uplink's neighbour table, so the control plane asks
	// it to resolve them instead of sending ARP/ND itself. Never blocks.
	Resolve chan<- NeighborEvent
}

// Nodes gives access to the registered node objects that the worker and
// the daemon talk to directly.
type Nodes struct {
	TunInput      *TunInputNode
	TunInputIndex int

	UplinkInput      *UplinkInputNode
	UplinkInputIndex int
}

// Register adds every node to g in packet-flow order.
func Register(g *graph.Graph, env Env) *Nodes {
	ti := newTunInput(env.Workers)
	ui := newUplinkInput(env.Workers)
	n := &Nodes{TunInput: ti, UplinkInput: ui}
	n.TunInputIndex = g.Register(graph.Spec{Name: TunInput, Errors: tunInputErrors, Node: ti})
	n.UplinkInputIndex = g.Register(graph.Spec{Name: UplinkInput, Errors: uplinkInputErrors, Node: ui})
	g.Register(graph.Spec{Name: EthernetInput, Errors: ethernetInputErrors, Node: &ethernetInput{}})
	g.Register(graph.Spec{Name: ARPInput, Errors: arpInputErrors, Node: &arpInput{env: env}})
	g.Register(graph.Spec{Name: IP4Input, Errors: ip4InputErrors, Node: &ip4Input{}})
	g.Register(graph.Spec{Name: IP6Input, Errors: ip6InputErrors, Node: &ip6Input{}})
	g.Register(graph.Spec{Name: IP4Lookup, Errors: ip4LookupErrors, Node: &ip4Lookup{}})
	g.Register(graph.Spec{Name: IP6Lookup, Errors: ip6LookupErrors, Node: &ip6Lookup{}})
	g.Register(graph.Spec{Name: IP4Local, Errors: ip4LocalErrors, Node: &ip4Local{}})
	g.Register(graph.Spec{Name: IP4NodeLocal, Errors: ip4NodeLocalErrors, Node: &ip4NodeLocal{}})
	g.Register(graph.Spec{Name: IPIPDecap, Errors: ipipDecapErrors, Node: &ipipDecap{}})
	g.Register(graph.Spec{Name: VXLANDecap, Errors: vxlanDecapErrors, Node: &vxlanDecap{}})
	g.Register(graph.Spec{Name: IP6Local, Errors: ip6LocalErrors, Node: &ip6Local{env: env}})
	g.Register(graph.Spec{Name: IP4Rewrite, Errors: ip4RewriteErrors, Node: &ip4Rewrite{}})
	g.Register(graph.Spec{Name: IP6Rewrite, Errors: ip6RewriteErrors, Node: &ip6Rewrite{}})
	g.Register(graph.Spec{Name: IP4Frag, Errors: ip4FragErrors, Node: &ip4Frag{}})
	g.Register(graph.Spec{Name: TunnelGSO, Errors: gsoErrors, Node: newGSONode(env.Workers, false)})
	g.Register(graph.Spec{Name: TunnelEncap, Errors: tunnelEncapErrors, Node: newTunnelEncap(env.Workers)})
	g.Register(graph.Spec{Name: InterfaceGSO, Errors: gsoErrors, Node: newGSONode(env.Workers, true)})
	g.Register(graph.Spec{Name: IP4ICMPError, Errors: ip4ICMPErrorErrors, Node: newIP4ICMPError(env.Workers)})
	g.Register(graph.Spec{Name: IP6ICMPError, Errors: ip6ICMPErrorErrors, Node: newIP6ICMPError(env.Workers)})
	g.Register(graph.Spec{Name: IP4ARP, Errors: ip4ARPErrors, Node: newIP4ARP(env)})
	g.Register(graph.Spec{Name: IP6ND, Errors: ip6NDErrors, Node: newIP6ND(env)})
	g.Register(graph.Spec{Name: InterfaceOutput, Errors: interfaceOutputErrors, Node: newInterfaceOutput(env.Workers)})
	return n
}

// icmpKind is the error a node asks ip4-icmp-error / ip6-icmp-error to send,
// passed in buffer.Meta.Aux (the low byte; the MTU for "too big" above it).
const (
	icmpTimeExceeded uint32 = iota + 1
	icmpNoRoute
	icmpPortUnreachable
	icmpProtoUnreachable
	icmpTooBig
)

func auxICMP(kind uint32, mtu uint32) uint32 { return kind | mtu<<8 }

// rfc7600DummyIPv4 (192.0.0.8) is the source of ICMPv4 errors when the
// dataplane has no IPv4 address in the VRF (RFC 7600 section 4.8).
var rfc7600DummyIPv4 = [4]byte{192, 0, 0, 8}
