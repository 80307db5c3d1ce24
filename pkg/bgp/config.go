// Package bgp is vecnet's BGP speaker: Calico's BGP resources
// (BGPConfiguration, BGPPeer, BGPFilter and the nodes' BGP annotations)
// turned into the configuration of an embedded GoBGP server, which
// advertises this node's pod blocks and reports the routes it learns.
//
// The package has two halves. Build (calico.go) is a pure function from
// the resources to a Config, so that every rule of Calico's model (mesh,
// selectors, route reflection, filters, passwords) is unit tested without
// sockets. Speaker (speaker.go) makes a running GoBGP server match a
// Config with the smallest changes, so that a peer added or a filter
// edited does not reset the other sessions.
package bgp

import (
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// Calico's defaults (BGPConfiguration "default" and BIRD's templates).
const (
	DefaultASN         = 64512
	DefaultListenPort  = 179
	DefaultRestartTime = 120 * time.Second
	// DefaultHoldTime is BIRD's and GoBGP's; KeepaliveTime is a third
	// of it (RFC 4271 section 10 suggests so).
	DefaultHoldTime = 90 * time.Second
)

// Config is the whole state the speaker should be in.
type Config struct {
	ASN      uint32
	RouterID netip.Addr // an IPv4 address (RFC 6286 allows any 32-bit value; GoBGP wants dotted quad)
	// ListenPort is where peers connect; Calico's listenPort.
	ListenPort int32
	// ClusterID is set when this node is a route reflector (Calico's
	// routeReflectorClusterID): it reflects between its clients.
	ClusterID netip.Addr
	// LocalV4, LocalV6 are the node's underlay addresses: the next hop of
	// what it originates and the source of its sessions.
	LocalV4, LocalV6 netip.Addr
	Peers            []Peer // sorted by Addr
	// HoldTime of every session (GoBGP negotiates the smaller one).
	HoldTime time.Duration
	// LogLevel is GoBGP's, from logSeverityScreen ("" = the agent's own).
	LogLevel string
}

// Peer is one BGP session.
type Peer struct {
	Addr netip.Addr
	Port uint16 // remote port; 0 = 179
	ASN  uint32
	// LocalASN is this node's AS towards this peer (always the node's;
	// kept per peer because GoBGP takes it per neighbour).
	LocalASN uint32
	// Origin says why the peer exists, for logs and status:
	// "mesh", "BGPPeer <name>".
	Origin string
	// Node is the peer's node name when it is a vecnet node.
	Node     string
	Password string
	// RRClient: this node reflects routes to the peer.
	RRClient bool
	// LocalAddr is the session's source address (Calico's
	// sourceAddress UseNodeIP); invalid = the kernel chooses.
	LocalAddr netip.Addr
	// TTLMin is GTSM's lowest accepted TTL (RFC 5082), 0 = off.
	TTLMin uint8
	// RestartTime is the graceful restart time (RFC 4724) the peer may
	// keep our routes while we restart; 0 disables graceful restart.
	RestartTime time.Duration
	// KeepNextHop: do not rewrite the next hop towards an eBGP peer.
	KeepNextHop bool
	// AllowOwnAS is how often our AS may appear in a received AS path
	// (Calico's numAllowedLocalASNumbers).
	AllowOwnAS uint8
	// Import and Export are the rules of the peer's BGPFilters, in
	// order; the first match decides, no match accepts.
	Import, Export []Rule
}

// Family is the address family a session carries: Calico runs IPv4
// routes over IPv4 sessions and IPv6 routes over IPv6 sessions.
func (p *Peer) Family() int {
	if p.Addr.Is4() {
		return 4
	}
	return 6
}

// Rule is one BGPFilter rule.
type Rule struct {
	// Prefix and the length range select routes; an invalid Prefix
	// matches every route of the family.
	Prefix   netip.Prefix
	Min, Max int
	// Invert negates the prefix match (NotEqual, NotIn).
	Invert bool
	// RemoteOnly matches only routes learned from BGP peers (Calico's
	// source: RemotePeers), not the node's own.
	RemoteOnly bool
	Family     int // 4 or 6
	Accept     bool
	// Filter and Index name the rule's origin for logs.
	Filter string
	Index  int
}

func (r Rule) String() string {
	act := "reject"
	if r.Accept {
		act = "accept"
	}
	m := "any"
	if r.Prefix.IsValid() {
		m = fmt.Sprintf("%s le %d ge %d", r.Prefix, r.Max, r.Min)
		if r.Invert {
			m = "not " + m
		}
	}
	if r.RemoteOnly {
		m += " from peers"
	}
	return fmt.Sprintf("%s[%d]: %s %s", r.Filter, r.Index, m, act)
}

// Origin is a prefix this node advertises.
type Origin struct {
	Prefix netip.Prefix
	// Communities are RFC 1997 communities (high 16 bits: AS), from
	// Calico's prefixAdvertisements.
	Communities []uint32
	// Large are RFC 8092 large communities (aa:nn:mm).
	Large [][3]uint32
}

// Equal tells whether two origins advertise the same thing.
func (o Origin) Equal(p Origin) bool {
	return o.Prefix == p.Prefix && slices.Equal(o.Communities, p.Communities) && slices.Equal(o.Large, p.Large)
}

// peerKey identifies a session: GoBGP has one neighbour per address.
func (p *Peer) key() string { return p.Addr.String() }

// sessionEqual tells whether a and b differ only in what GoBGP can change
// without a reset; false means the session must be re-created.
func sessionEqual(a, b *Peer) bool {
	return a.Addr == b.Addr && a.Port == b.Port && a.Node == b.Node && a.ASN == b.ASN && a.LocalASN == b.LocalASN &&
		a.Password == b.Password && a.RRClient == b.RRClient && a.LocalAddr == b.LocalAddr &&
		a.TTLMin == b.TTLMin && a.RestartTime == b.RestartTime && a.AllowOwnAS == b.AllowOwnAS
}

// policyEqual tells whether a and b have the same filters.
func policyEqual(a, b *Peer) bool {
	return a.KeepNextHop == b.KeepNextHop && slices.Equal(a.Import, b.Import) && slices.Equal(a.Export, b.Export)
}

// globalEqual tells whether the server must restart to go from a to b.
func globalEqual(a, b *Config) bool {
	return a.ASN == b.ASN && a.RouterID == b.RouterID && a.ListenPort == b.ListenPort &&
		a.ClusterID == b.ClusterID && a.LocalV4 == b.LocalV4 && a.LocalV6 == b.LocalV6
}
