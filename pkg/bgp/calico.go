package bgp

// Build: Calico's BGP model, as calico-node's confd renders it for BIRD.
//
// Global settings come from the BGPConfiguration named "default"; a
// BGPConfiguration named "node.<nodename>" overrides logSeverityScreen
// for that node (Calico's per-node configuration). This node's AS is its
// annotation projectcalico.org/ASNumber, else the default's asNumber,
// else 64512.
//
// Node-specific BGP settings live in Kubernetes Node annotations, exactly
// where Calico keeps them when it runs on the Kubernetes datastore (its
// Node resource's spec.bgp is stored there): projectcalico.org/ASNumber,
// projectcalico.org/RouteReflectorClusterID and the IPv4Address /
// IPv6Address the agent already reads. A separate CRD of ours would
// split a node's identity in two objects that can disagree and be
// deleted apart; annotations live and die with the Node, need no extra
// RBAC, and `calicoctl` users' habits (and scripts) keep working.
//
// Peers:
//   - node-to-node mesh (nodeToNodeMeshEnabled, default true): every other
//     node, at each address family both nodes have, with that node's AS;
//   - each BGPPeer that selects this node (node == this node, nodeSelector
//     matches its labels, or neither: global): peerIP with asNumber, or
//     every node that peerSelector matches, with that node's AS.
//
// A peer that appears twice (mesh and BGPPeer, or two BGPPeers) is one
// session; the first by (mesh, then BGPPeer name) wins, as BIRD's
// templates give the same protocol name.
//
// Route reflection: a node with a cluster ID reflects routes to the nodes
// it peers with through a peerSelector that do not share its cluster ID.

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	v3 "github.com/vecnet/vecnet/pkg/apis/projectcalico/v3"
	"github.com/vecnet/vecnet/pkg/ipam/selector"
)

// Node annotations (Calico's, Kubernetes datastore).
const (
	AnnotationASNumber  = "projectcalico.org/ASNumber"
	AnnotationClusterID = "projectcalico.org/RouteReflectorClusterID"
)

// Node is what BGP needs of a Kubernetes node.
type Node struct {
	Name   string
	Labels map[string]string
	// V4, V6 are the node's underlay addresses (annotations, else
	// InternalIPs), with their prefix length when known.
	V4, V6 netip.Prefix
	// ASN is the node's annotation (0 = the default AS).
	ASN uint32
	// ClusterID is the node's route reflector cluster ID (invalid: not a
	// reflector).
	ClusterID netip.Addr
	// Invalid says why an annotation was ignored ("" when none was).
	Invalid string
}

// NodeFromAnnotations parses the BGP annotations of a node.
func NodeFromAnnotations(name string, labels, ann map[string]string, v4, v6 netip.Prefix) Node {
	n := Node{Name: name, Labels: labels, V4: v4, V6: v6}
	var bad []string
	if s := strings.TrimSpace(ann[AnnotationASNumber]); s != "" {
		asn, err := v3.ParseASNumber(s)
		if err != nil || asn == 0 {
			bad = append(bad, fmt.Sprintf("annotation %s=%q is not an AS number (1-4294967295 or a.b)", AnnotationASNumber, s))
		} else {
			n.ASN = uint32(asn)
		}
	}
	if s := strings.TrimSpace(ann[AnnotationClusterID]); s != "" {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() {
			bad = append(bad, fmt.Sprintf("annotation %s=%q is not an IPv4-formatted cluster ID", AnnotationClusterID, s))
		} else {
			n.ClusterID = a
		}
	}
	n.Invalid = strings.Join(bad, "; ")
	return n
}

// Inputs is everything Build reads. Objects must have passed Validate;
// the caller keeps the last valid version of an object whose update is
// invalid.
type Inputs struct {
	Self    string
	Nodes   map[string]Node
	Configs []v3.BGPConfiguration
	Peers   []v3.BGPPeer
	Filters []v3.BGPFilter
	// Secret returns a secret's key (the agent's namespace).
	Secret func(name, key string) (string, error)
	// HoldTime overrides DefaultHoldTime (0: default).
	HoldTime time.Duration
}

// Problem is a resource that could not be used, and why. The rest of the
// configuration still applies.
type Problem struct {
	Kind, Name string
	Field      string
	Message    string
}

func (p Problem) Error() string {
	s := p.Kind + " " + p.Name
	if p.Field != "" {
		s += ": " + p.Field
	}
	return s + ": " + p.Message
}

// Build decides the speaker's configuration and what this node
// originates besides its pod blocks (service prefixes and the
// communities of prefixAdvertisements).
func Build(in Inputs) (Config, Advertise, []Problem) {
	var probs []Problem
	self, ok := in.Nodes[in.Self]
	if !ok {
		return Config{}, Advertise{}, []Problem{{Kind: "Node", Name: in.Self, Message: "this node has no Node object"}}
	}
	if self.Invalid != "" {
		probs = append(probs, Problem{Kind: "Node", Name: self.Name, Field: "metadata.annotations", Message: self.Invalid})
	}
	var def, nodeCfg *v3.BGPConfiguration
	for i := range in.Configs {
		switch in.Configs[i].Name {
		case "default":
			def = &in.Configs[i]
		case "node." + in.Self:
			nodeCfg = &in.Configs[i]
		}
	}
	defSpec := v3.BGPConfigurationSpec{}
	if def != nil {
		defSpec = def.Spec
	}

	asnOf := func(n Node) uint32 {
		if n.ASN != 0 {
			return n.ASN
		}
		if defSpec.ASNumber != nil && *defSpec.ASNumber != 0 {
			return uint32(*defSpec.ASNumber)
		}
		return DefaultASN
	}
	cfg := Config{
		ASN:        asnOf(self),
		ListenPort: DefaultListenPort,
		ClusterID:  self.ClusterID,
		LocalV4:    self.V4.Addr(),
		LocalV6:    self.V6.Addr(),
		HoldTime:   cmpDur(in.HoldTime, DefaultHoldTime),
		LogLevel:   defSpec.LogSeverityScreen,
	}
	if nodeCfg != nil && nodeCfg.Spec.LogSeverityScreen != "" {
		cfg.LogLevel = nodeCfg.Spec.LogSeverityScreen
	}
	if defSpec.ListenPort != 0 {
		cfg.ListenPort = int32(defSpec.ListenPort)
	}
	cfg.RouterID = routerID(self)

	peers := map[netip.Addr]*Peer{}
	add := func(p Peer) {
		if old, ok := peers[p.Addr]; ok {
			_ = old // the first definition wins
			return
		}
		if p.Addr == cfg.LocalV4 || p.Addr == cfg.LocalV6 {
			return // a selector that matches this node
		}
		peers[p.Addr] = &p
	}
	secret := func(kind, name, field string, pw *v3.BGPPassword) (string, bool) {
		if pw == nil || pw.SecretKeyRef == nil {
			return "", true
		}
		if in.Secret == nil {
			probs = append(probs, Problem{Kind: kind, Name: name, Field: field, Message: "passwords are not supported here"})
			return "", false
		}
		s, err := in.Secret(pw.SecretKeyRef.Name, pw.SecretKeyRef.Key)
		if err != nil {
			probs = append(probs, Problem{Kind: kind, Name: name, Field: field + ".secretKeyRef", Message: err.Error()})
			return "", false
		}
		return s, true
	}
	nodesSorted := make([]string, 0, len(in.Nodes))
	for name := range in.Nodes {
		nodesSorted = append(nodesSorted, name)
	}
	sort.Strings(nodesSorted)

	// The peers of another node, at the families both have.
	nodePeers := func(n Node, tmpl Peer) []Peer {
		var out []Peer
		for _, fam := range []struct{ local, remote netip.Prefix }{{self.V4, n.V4}, {self.V6, n.V6}} {
			if !fam.local.IsValid() || !fam.remote.IsValid() {
				continue
			}
			p := tmpl
			p.Addr, p.ASN, p.Node = fam.remote.Addr(), asnOf(n), n.Name
			p.LocalAddr = fam.local.Addr()
			out = append(out, p)
		}
		return out
	}

	mesh := defSpec.NodeToNodeMeshEnabled == nil || *defSpec.NodeToNodeMeshEnabled
	if mesh {
		pw, ok := secret("BGPConfiguration", "default", "spec.nodeMeshPassword", defSpec.NodeMeshPassword)
		restart := DefaultRestartTime
		if defSpec.NodeMeshMaxRestartTime != nil {
			restart = defSpec.NodeMeshMaxRestartTime.Duration
		}
		if ok {
			for _, name := range nodesSorted {
				if name == in.Self {
					continue
				}
				for _, p := range nodePeers(in.Nodes[name], Peer{Origin: "mesh", Password: pw, RestartTime: restart, LocalASN: cfg.ASN}) {
					add(p)
				}
			}
		}
	}

	filters := map[string]*v3.BGPFilter{}
	for i := range in.Filters {
		filters[in.Filters[i].Name] = &in.Filters[i]
	}
	bgpPeers := slices.Clone(in.Peers)
	slices.SortFunc(bgpPeers, func(a, b v3.BGPPeer) int { return strings.Compare(a.Name, b.Name) })
	for i := range bgpPeers {
		bp := &bgpPeers[i]
		s := &bp.Spec
		prob := func(field, msg string) {
			probs = append(probs, Problem{Kind: "BGPPeer", Name: bp.Name, Field: field, Message: msg})
		}
		// selects tells whether the BGPPeer's node or nodeSelector (or
		// neither: every node) picks node n.
		var nodeSel selector.Selector
		if s.NodeSelector != "" {
			var err error
			if nodeSel, err = selector.Parse(s.NodeSelector); err != nil {
				prob("spec.nodeSelector", err.Error())
				continue
			}
		}
		selects := func(n Node) bool {
			switch {
			case s.Node != "":
				return s.Node == n.Name
			case nodeSel != nil:
				return nodeSel.Matches(n.Labels)
			}
			return true
		}
		var peerSel selector.Selector
		if s.PeerSelector != "" {
			var err error
			if peerSel, err = selector.Parse(s.PeerSelector); err != nil {
				prob("spec.peerSelector", err.Error())
				continue
			}
		}
		// A node-to-node BGPPeer is a session between two nodes, so it
		// also applies the other way round: a node that peerSelector
		// matches peers with the nodes the BGPPeer selects (Calico does
		// the same; without it a route reflector would need a second
		// BGPPeer pointing back at its clients).
		forward := selects(self)
		reverse := peerSel != nil && peerSel.Matches(self.Labels)
		if !forward && !reverse {
			continue
		}
		pw, ok := secret("BGPPeer", bp.Name, "spec.password", s.Password)
		if !ok {
			continue
		}
		tmpl := Peer{
			Origin: "BGPPeer " + bp.Name, Password: pw, LocalASN: cfg.ASN,
			RestartTime: DefaultRestartTime, KeepNextHop: s.KeepOriginalNextHop,
		}
		if s.NextHopMode != nil && *s.NextHopMode == v3.NextHopModeKeep {
			tmpl.KeepNextHop = true
		}
		if s.MaxRestartTime != nil {
			tmpl.RestartTime = s.MaxRestartTime.Duration
		}
		if s.TTLSecurity != nil && *s.TTLSecurity > 0 {
			// ttlSecurity is the number of hops the peer may be away:
			// packets must arrive with TTL >= 256 - hops (RFC 5082 §3).
			tmpl.TTLMin = uint8(256 - int(*s.TTLSecurity))
		}
		if s.NumAllowedLocalASNumbers != nil {
			tmpl.AllowOwnAS = uint8(min(*s.NumAllowedLocalASNumbers, 255))
		}
		var bad bool
		for _, fname := range s.Filters {
			f, ok := filters[fname]
			if !ok {
				prob("spec.filters", fmt.Sprintf("BGPFilter %q does not exist", fname))
				bad = true
				continue
			}
			imp, exp := filterRules(f)
			tmpl.Import = append(tmpl.Import, imp...)
			tmpl.Export = append(tmpl.Export, exp...)
		}
		if bad {
			// A peer without the filter its owner asked for could leak or
			// accept routes it must not: leave it out until the filter
			// exists.
			continue
		}
		useNodeIP := s.SourceAddress != v3.SourceAddressNone
		switch {
		case s.PeerIP != "":
			if !forward {
				continue
			}
			addr, port, err := s.ParsePeerIP()
			if err != nil {
				prob("spec.peerIP", err.Error())
				continue
			}
			if s.ASNumber == 0 {
				prob("spec.asNumber", "required with spec.peerIP")
				continue
			}
			p := tmpl
			p.Addr, p.Port, p.ASN = addr.Unmap(), port, uint32(s.ASNumber)
			// A peerIP that is another node's address is that node: it
			// listens on the cluster's listenPort (Calico: "If port number
			// is not set, and peer is Calico node with listenPort set, then
			// listenPort is used").
			for _, name := range nodesSorted {
				if n := in.Nodes[name]; (n.V4.IsValid() && n.V4.Addr() == p.Addr) || (n.V6.IsValid() && n.V6.Addr() == p.Addr) {
					p.Node = name
					break
				}
			}
			if useNodeIP {
				if p.Addr.Is4() {
					p.LocalAddr = cfg.LocalV4
				} else {
					p.LocalAddr = cfg.LocalV6
				}
			}
			if !p.LocalAddr.IsValid() && useNodeIP {
				prob("spec.peerIP", fmt.Sprintf("this node has no IPv%d address to peer with %s from", p.Family(), p.Addr))
				continue
			}
			add(p)
		case peerSel != nil:
			for _, name := range nodesSorted {
				n := in.Nodes[name]
				if name == in.Self || !((forward && peerSel.Matches(n.Labels)) || (reverse && selects(n))) {
					continue
				}
				for _, p := range nodePeers(n, tmpl) {
					p.RRClient = self.ClusterID.IsValid() && n.ClusterID != self.ClusterID
					if !useNodeIP {
						p.LocalAddr = netip.Addr{}
					}
					add(p)
				}
			}
		default:
			prob("spec.peerIP", "one of spec.peerIP and spec.peerSelector is required")
		}
	}
	for _, p := range peers {
		cfg.Peers = append(cfg.Peers, *p)
	}
	slices.SortFunc(cfg.Peers, func(a, b Peer) int { return a.Addr.Compare(b.Addr) })

	adv, aprobs := advertisements(defSpec)
	probs = append(probs, aprobs...)
	return cfg, adv, probs
}

// routerID is the node's IPv4 address, as BIRD's; a node with only IPv6
// gets a stable 32-bit value from its name (Calico hashes too).
func routerID(n Node) netip.Addr {
	if n.V4.IsValid() {
		return n.V4.Addr()
	}
	var h uint32 = 2166136261 // FNV-1a
	for i := 0; i < len(n.Name); i++ {
		h ^= uint32(n.Name[i])
		h *= 16777619
	}
	return netip.AddrFrom4([4]byte{byte(h >> 24), byte(h >> 16), byte(h >> 8), byte(h)})
}

func cmpDur(v, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return v
}

// filterRules turns a BGPFilter into import and export rules.
//
// interfaceRules: a rule with an interface matches routes of the node's
// own interfaces (BIRD's direct and kernel routes). vecnet originates
// none (its routes are IPAM blocks and service prefixes), so such a rule
// can match nothing and is left out, whatever else it says.
func filterRules(f *v3.BGPFilter) (imp, exp []Rule) {
	// conv's second result is false for a rule that can match no route.
	conv := func(fr filterRule, fam, i int) (Rule, bool) {
		r := Rule{Family: fam, Accept: fr.action == v3.Accept, RemoteOnly: fr.src == v3.BGPFilterSourceRemotePeers, Filter: f.Name, Index: i}
		if fr.cidr != "" {
			p, _ := netip.ParsePrefix(fr.cidr) // validated
			p = p.Masked()
			r.Prefix = p
			bits := p.Addr().BitLen()
			switch fr.op {
			case v3.MatchOperatorEqual, v3.MatchOperatorNotEqual:
				r.Min, r.Max = p.Bits(), p.Bits()
			default: // In, NotIn: the CIDR and everything inside it
				r.Min, r.Max = p.Bits(), bits
			}
			if fr.minLen != nil {
				r.Min = max(r.Min, int(*fr.minLen))
			}
			if fr.maxLen != nil {
				r.Max = min(r.Max, int(*fr.maxLen))
			}
			r.Invert = fr.op == v3.MatchOperatorNotEqual || fr.op == v3.MatchOperatorNotIn
			if r.Min > r.Max {
				// prefixLength leaves no length in the range (In /16 with
				// max 8, Equal /16 with min 20): no prefix matches. Such a
				// rule never decides and is dropped; its negation matches
				// every route of the family.
				if !r.Invert {
					return r, false
				}
				r.Prefix, r.Min, r.Max, r.Invert = netip.Prefix{}, 0, 0, false
			}
		}
		return r, true
	}
	add := func(out *[]Rule, fam, i int, fr filterRule) {
		if fr.iface != "" {
			return // see interfaceRules
		}
		if r, ok := conv(fr, fam, i); ok {
			*out = append(*out, r)
		}
	}
	for i, r := range f.Spec.ImportV4 {
		add(&imp, 4, i, filterRuleV4(r))
	}
	for i, r := range f.Spec.ImportV6 {
		add(&imp, 6, i, filterRuleV6(r))
	}
	for i, r := range f.Spec.ExportV4 {
		add(&exp, 4, i, filterRuleV4(r))
	}
	for i, r := range f.Spec.ExportV6 {
		add(&exp, 6, i, filterRuleV6(r))
	}
	return imp, exp
}

// filterRule is a BGPFilterRuleV4 or BGPFilterRuleV6: they differ only in
// the type of prefixLength.
type filterRule struct {
	iface, cidr    string
	op             v3.BGPFilterMatchOperator
	minLen, maxLen *int32 // prefixLength
	src            v3.BGPFilterMatchSource
	action         v3.BGPFilterAction
}

func filterRuleV4(r v3.BGPFilterRuleV4) filterRule {
	fr := filterRule{iface: r.Interface, cidr: r.CIDR, op: r.MatchOperator, src: r.Source, action: r.Action}
	if r.PrefixLength != nil {
		fr.minLen, fr.maxLen = r.PrefixLength.Min, r.PrefixLength.Max
	}
	return fr
}

func filterRuleV6(r v3.BGPFilterRuleV6) filterRule {
	fr := filterRule{iface: r.Interface, cidr: r.CIDR, op: r.MatchOperator, src: r.Source, action: r.Action}
	if r.PrefixLength != nil {
		fr.minLen, fr.maxLen = r.PrefixLength.Min, r.PrefixLength.Max
	}
	return fr
}

// Advertise is what a node originates besides its pod blocks.
type Advertise struct {
	// Services are serviceClusterIPs, serviceExternalIPs and
	// serviceLoadBalancerIPs: every node advertises them (Calico does;
	// ECMP at the router spreads the traffic).
	Services []netip.Prefix
	// Communities tag originated prefixes inside each CIDR.
	Communities []PrefixCommunities
}

// PrefixCommunities is one prefixAdvertisements entry, resolved.
type PrefixCommunities struct {
	CIDR        netip.Prefix
	Communities []uint32
	Large       [][3]uint32
}

// Decorate returns the origin of prefix p with the communities of every
// prefixAdvertisements entry that contains it.
func (a *Advertise) Decorate(p netip.Prefix) Origin {
	o := Origin{Prefix: p}
	for _, pc := range a.Communities {
		if pc.CIDR.Addr().Is4() == p.Addr().Is4() && pc.CIDR.Bits() <= p.Bits() && pc.CIDR.Contains(p.Addr()) {
			o.Communities = append(o.Communities, pc.Communities...)
			o.Large = append(o.Large, pc.Large...)
		}
	}
	slices.Sort(o.Communities)
	o.Communities = slices.Compact(o.Communities)
	// Duplicate large communities must not be transmitted (RFC 8092).
	slices.SortFunc(o.Large, func(x, y [3]uint32) int { return slices.Compare(x[:], y[:]) })
	o.Large = slices.Compact(o.Large)
	return o
}

func advertisements(s v3.BGPConfigurationSpec) (Advertise, []Problem) {
	var a Advertise
	var probs []Problem
	addSvc := func(field string, i int, cidr string) {
		p, err := netip.ParsePrefix(cidr)
		if err != nil {
			probs = append(probs, Problem{Kind: "BGPConfiguration", Name: "default", Field: fmt.Sprintf("spec.%s[%d].cidr", field, i), Message: "must be a CIDR"})
			return
		}
		a.Services = append(a.Services, p.Masked())
	}
	for i, b := range s.ServiceClusterIPs {
		addSvc("serviceClusterIPs", i, b.CIDR)
	}
	for i, b := range s.ServiceExternalIPs {
		addSvc("serviceExternalIPs", i, b.CIDR)
	}
	for i, b := range s.ServiceLoadBalancerIPs {
		addSvc("serviceLoadBalancerIPs", i, b.CIDR)
	}
	named := map[string]string{}
	for _, c := range s.Communities {
		named[c.Name] = c.Value
	}
	for i, pa := range s.PrefixAdvertisements {
		p, err := netip.ParsePrefix(pa.CIDR)
		if err != nil {
			probs = append(probs, Problem{Kind: "BGPConfiguration", Name: "default", Field: fmt.Sprintf("spec.prefixAdvertisements[%d].cidr", i), Message: "must be a CIDR"})
			continue
		}
		pc := PrefixCommunities{CIDR: p.Masked()}
		for j, c := range pa.Communities {
			if v, ok := named[c]; ok {
				c = v
			}
			std, large, err := ParseCommunity(c)
			if err != nil {
				probs = append(probs, Problem{Kind: "BGPConfiguration", Name: "default", Field: fmt.Sprintf("spec.prefixAdvertisements[%d].communities[%d]", i, j), Message: err.Error()})
				continue
			}
			if large != nil {
				pc.Large = append(pc.Large, *large)
			} else {
				pc.Communities = append(pc.Communities, std)
			}
		}
		a.Communities = append(a.Communities, pc)
	}
	slices.SortFunc(a.Services, func(x, y netip.Prefix) int {
		if c := x.Addr().Compare(y.Addr()); c != 0 {
			return c
		}
		return x.Bits() - y.Bits()
	})
	a.Services = slices.Compact(a.Services)
	return a, probs
}

// ParseCommunity parses aa:nn (RFC 1997) or aa:nn:mm (RFC 8092).
func ParseCommunity(s string) (uint32, *[3]uint32, error) {
	parts := strings.Split(s, ":")
	switch len(parts) {
	case 2:
		a, err1 := strconv.ParseUint(parts[0], 10, 16)
		b, err2 := strconv.ParseUint(parts[1], 10, 16)
		if err1 != nil || err2 != nil {
			return 0, nil, fmt.Errorf("community %q: want aa:nn with 16-bit numbers", s)
		}
		return uint32(a)<<16 | uint32(b), nil, nil
	case 3:
		var v [3]uint32
		for i, p := range parts {
			n, err := strconv.ParseUint(p, 10, 32)
			if err != nil {
				return 0, nil, fmt.Errorf("large community %q: want aa:nn:mm with 32-bit numbers", s)
			}
			v[i] = uint32(n)
		}
		return 0, &v, nil
	}
	return 0, nil, fmt.Errorf("community %q: want aa:nn or aa:nn:mm", s)
}
