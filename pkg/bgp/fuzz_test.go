package bgp

import (
	"fmt"
	"math/big"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v3 "github.com/vecnet/vecnet/pkg/apis/projectcalico/v3"
)

// inRange tells whether the decimal digits s are a number in [lo, hi].
func inRange(s string, lo, hi uint64) (uint64, bool) {
	n, ok := new(big.Int).SetString(s, 10)
	if !ok || n.Cmp(new(big.Int).SetUint64(lo)) < 0 || n.Cmp(new(big.Int).SetUint64(hi)) > 0 {
		return 0, false
	}
	return n.Uint64(), true
}

// The community syntax of the CRD (v3.Community.Value).
var communityPattern = regexp.MustCompile(`^(\d+):(\d+)$|^(\d+):(\d+):(\d+)$`)

// FuzzParseCommunity: ParseCommunity never panics, accepts exactly the
// CRD's syntax with 16-bit (aa:nn) or 32-bit (aa:nn:mm) numbers, and what
// it parses prints back (fmt) to a string that parses to the same value.
func FuzzParseCommunity(f *testing.F) {
	for _, s := range []string{
		"65000:100", "0:0", "65535:65535", "1:2:3", "4294967295:0:4294967295", "007:1",
		"", ":", "65536:1", "1:65536", "4294967296:1:1", "1:2:3:4", "a:b", "-1:1", "+1:1", " 1:1", "1:1\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		std, large, err := ParseCommunity(s)
		// An independent oracle: the CRD's pattern, then the ranges.
		want := false
		if communityPattern.MatchString(s) {
			parts := strings.Split(s, ":")
			hi := uint64(1<<16 - 1)
			if len(parts) == 3 {
				hi = 1<<32 - 1
			}
			want = true
			for _, p := range parts {
				if _, ok := inRange(p, 0, hi); !ok {
					want = false
				}
			}
		}
		if (err == nil) != want {
			t.Fatalf("ParseCommunity(%q): err %v, want valid %v", s, err, want)
		}
		if err != nil {
			if std != 0 || large != nil {
				t.Fatalf("ParseCommunity(%q) failed but returned %d, %v", s, std, large)
			}
			return
		}
		var printed string
		if large != nil {
			if std != 0 {
				t.Fatalf("ParseCommunity(%q): both %d and %v", s, std, *large)
			}
			printed = fmt.Sprintf("%d:%d:%d", large[0], large[1], large[2])
		} else {
			printed = fmt.Sprintf("%d:%d", std>>16, std&0xffff)
		}
		std2, large2, err := ParseCommunity(printed)
		if err != nil || std2 != std || !reflect.DeepEqual(large2, large) {
			t.Fatalf("round trip of %q via %q: %d, %v, %v; want %d, %v", s, printed, std2, large2, err, std, large)
		}
		if (large == nil) != (strings.Count(s, ":") == 1) {
			t.Fatalf("ParseCommunity(%q): large = %v for %d colons", s, large, strings.Count(s, ":"))
		}
	})
}

var (
	asplainPattern = regexp.MustCompile(`^[0-9]+$`)
	asdotPattern   = regexp.MustCompile(`^([0-9]+)\.([0-9]+)$`)
)

// asOracle is an AS number annotation's value: 1..4294967295 in asplain
// or asdot notation; ok false if it is not one.
func asOracle(s string) (uint32, bool) {
	if asplainPattern.MatchString(s) {
		n, ok := inRange(s, 1, 1<<32-1)
		return uint32(n), ok
	}
	if m := asdotPattern.FindStringSubmatch(s); m != nil {
		h, ok1 := inRange(m[1], 0, 65535)
		l, ok2 := inRange(m[2], 0, 65535)
		if ok1 && ok2 && h<<16|l != 0 {
			return uint32(h<<16 | l), true
		}
	}
	return 0, false
}

// FuzzNodeFromAnnotations: never panics; the node has an AS number
// exactly when its annotation is a valid one, and Invalid names each
// annotation that is set but invalid (and no other).
func FuzzNodeFromAnnotations(f *testing.F) {
	for _, s := range [][2]string{
		{"", ""}, {"65001", "1.0.0.1"}, {" 64512 ", " 10.0.0.1 "}, {"1.10", ""}, {"0", ""}, {"0.0", "x"},
		{"abc", "2001:db8::1"}, {"4294967295", "::ffff:1.2.3.4"}, {"4294967296", "1.2.3"}, {"65536.1", "01.2.3.4"},
		{"1.2.3", "1.2.3.4%eth0"}, {"\u00a065001\u2003", "\t"}, {"-1", "0.0.0.0"}, {"1_000", "1.0.0.1/32"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, asn, cluster string) {
		labels := map[string]string{"k": asn}
		ann := map[string]string{AnnotationASNumber: asn, AnnotationClusterID: cluster, "other": cluster}
		n := NodeFromAnnotations("n", labels, ann, netip.Prefix{}, netip.Prefix{})
		if n.Name != "n" || n.Labels["k"] != asn {
			t.Fatalf("identity not kept: %+v", n)
		}
		s := strings.TrimSpace(asn)
		want, ok := asOracle(s)
		switch {
		case s == "":
			if n.ASN != 0 || strings.Contains(n.Invalid, AnnotationASNumber) {
				t.Fatalf("unset AS %q: ASN %d, Invalid %q", asn, n.ASN, n.Invalid)
			}
		case ok:
			if n.ASN != want || strings.Contains(n.Invalid, AnnotationASNumber) {
				t.Fatalf("AS %q: ASN %d, Invalid %q; want %d, valid", asn, n.ASN, n.Invalid, want)
			}
		default:
			if n.ASN != 0 || !strings.Contains(n.Invalid, AnnotationASNumber) {
				t.Fatalf("AS %q: ASN %d, Invalid %q; want 0 and a complaint", asn, n.ASN, n.Invalid)
			}
		}
		c := strings.TrimSpace(cluster)
		a, err := netip.ParseAddr(c)
		cok := err == nil && a.Is4()
		switch {
		case c == "":
			if n.ClusterID.IsValid() || strings.Contains(n.Invalid, AnnotationClusterID) {
				t.Fatalf("unset cluster ID %q: %v, Invalid %q", cluster, n.ClusterID, n.Invalid)
			}
		case cok:
			if n.ClusterID != a || strings.Contains(n.Invalid, AnnotationClusterID) {
				t.Fatalf("cluster ID %q: %v, Invalid %q", cluster, n.ClusterID, n.Invalid)
			}
		default:
			if n.ClusterID.IsValid() || !strings.Contains(n.Invalid, AnnotationClusterID) {
				t.Fatalf("cluster ID %q: %v, Invalid %q; want none and a complaint", cluster, n.ClusterID, n.Invalid)
			}
		}
		if (n.Invalid == "") != ((s == "" || ok) && (c == "" || cok)) {
			t.Fatalf("Invalid = %q for AS %q, cluster ID %q", n.Invalid, asn, cluster)
		}
	})
}

// fuzzNodeNames are the nodes of FuzzBuild.
var fuzzNodeNames = []string{"node-0", "node-1", "node-2", "node-3"}

// fuzzInputs builds Build's inputs from fuzzed values, keeping only the
// objects that pass Validate, as the agent does.
func fuzzInputs(topo []byte, labels, ann, node, nodeSel, peerSel, peerIP string, peerASN uint32, cidr, op, comm string, plMin, plMax int8, flags uint32) Inputs {
	bit := func(i uint) bool { return flags>>i&1 == 1 }
	at := func(i int) byte {
		if i < len(topo) {
			return topo[i]
		}
		return byte(i / 2) // IPv4 .0-.3, IPv6 ::0-::3
	}
	labelParts := strings.Split(labels, ";")
	annParts := strings.Split(ann, ";")
	in := Inputs{Self: fuzzNodeNames[flags>>20&3], Nodes: map[string]Node{}}
	if bit(22) {
		in.Self = "not-a-node"
	}
	for i, name := range fuzzNodeNames {
		// Few addresses, so that nodes share some (stale annotations)
		// and peerIPs hit nodes.
		var v4, v6 netip.Prefix
		if b := at(2 * i); b&0x80 == 0 {
			v4 = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, b & 3}), 24)
		}
		if b := at(2*i + 1); b&0x80 == 0 {
			v6 = netip.PrefixFrom(netip.AddrFrom16([16]byte{0: 0xfd, 15: b & 3}), 64)
		}
		l := map[string]string{}
		if i < len(labelParts) {
			for _, kv := range strings.Split(labelParts[i], ",") {
				k, v, _ := strings.Cut(kv, "=")
				l[k] = v
			}
		}
		a := map[string]string{}
		if i < len(annParts) {
			asn, cid, _ := strings.Cut(annParts[i], "|")
			a[AnnotationASNumber], a[AnnotationClusterID] = asn, cid
		}
		in.Nodes[name] = NodeFromAnnotations(name, l, a, v4, v6)
	}

	def := v3.BGPConfigurationSpec{}
	if bit(7) {
		def.NodeToNodeMeshEnabled = ptr(false)
	}
	if bit(8) {
		def.ASNumber = ptr(v3.ASNumber(peerASN >> 8))
	}
	if bit(9) {
		def.NodeMeshPassword = secretRef("bgp", "mesh")
	}
	if bit(10) {
		def.NodeMeshMaxRestartTime = &metav1.Duration{Duration: time.Duration(plMin) * time.Second}
	}
	if bit(11) {
		def.ServiceClusterIPs = []v3.ServiceClusterIPBlock{{CIDR: cidr}, {CIDR: "10.96.0.0/12"}}
		def.ServiceLoadBalancerIPs = []v3.ServiceLoadBalancerIPBlock{{CIDR: "10.96.0.0/16"}, {CIDR: cidr}}
	}
	if bit(12) {
		def.Communities = []v3.Community{{Name: "named", Value: comm}}
		def.PrefixAdvertisements = []v3.PrefixAdvertisement{
			{CIDR: cidr, Communities: []string{"named", "65000:1", "1:2:3"}},
			{CIDR: "0.0.0.0/0", Communities: []string{"1:1", comm}},
			{CIDR: "::/0", Communities: []string{"1:2:3", comm}},
		}
	}
	def.ListenPort = uint16(peerASN)
	cfgs := []v3.BGPConfiguration{
		bgpConfig("default", def),
		bgpConfig("node."+in.Self, v3.BGPConfigurationSpec{LogSeverityScreen: op}),
	}
	for _, c := range cfgs {
		if c.Validate() == nil {
			in.Configs = append(in.Configs, c)
		}
	}

	spec := v3.BGPPeerSpec{Node: node, NodeSelector: nodeSel, PeerSelector: peerSel, PeerIP: peerIP, ASNumber: v3.ASNumber(peerASN)}
	if bit(0) {
		spec.Filters = []string{"f"}
	}
	if bit(1) {
		spec.SourceAddress = v3.SourceAddressNone
	}
	if bit(2) {
		spec.TTLSecurity = ptr(uint8(flags >> 24))
	}
	if bit(3) {
		spec.KeepOriginalNextHop = true
	}
	if bit(4) {
		spec.Password = secretRef("bgp", "peer")
	}
	if bit(5) {
		spec.NextHopMode = ptr(v3.NextHopModeKeep)
	}
	if bit(6) {
		spec.NumAllowedLocalASNumbers = ptr(int32(plMax))
		spec.MaxRestartTime = &metav1.Duration{Duration: time.Duration(plMax) * time.Second}
	}
	peers := []v3.BGPPeer{
		bgpPeer("fuzzed", spec),
		// A second peering so that duplicates and order matter.
		bgpPeer("a-mesh", v3.BGPPeerSpec{NodeSelector: nodeSel, PeerSelector: "all()", Filters: spec.Filters}),
	}
	for _, p := range peers {
		if p.Validate() == nil {
			in.Peers = append(in.Peers, p)
		}
	}

	var pl4 *v3.BGPFilterPrefixLengthV4
	var pl6 *v3.BGPFilterPrefixLengthV6
	if plMin >= 0 || plMax >= 0 {
		var mn, mx *int32
		if plMin >= 0 {
			mn = ptr(int32(plMin))
		}
		if plMax >= 0 {
			mx = ptr(int32(plMax))
		}
		pl4, pl6 = &v3.BGPFilterPrefixLengthV4{Min: mn, Max: mx}, &v3.BGPFilterPrefixLengthV6{Min: mn, Max: mx}
	}
	action := v3.Reject
	if bit(13) {
		action = v3.Accept
	}
	var src v3.BGPFilterMatchSource
	if bit(14) {
		src = v3.BGPFilterSourceRemotePeers
	}
	mop := v3.BGPFilterMatchOperator(op)
	r4 := v3.BGPFilterRuleV4{CIDR: cidr, MatchOperator: mop, PrefixLength: pl4, Source: src, Action: action}
	r6 := v3.BGPFilterRuleV6{CIDR: cidr, MatchOperator: mop, PrefixLength: pl6, Source: src, Action: action}
	fs := v3.BGPFilterSpec{}
	switch flags >> 16 & 3 {
	case 0:
		fs.ImportV4 = []v3.BGPFilterRuleV4{r4, {Action: v3.Accept}}
	case 1:
		fs.ExportV4 = []v3.BGPFilterRuleV4{{Source: v3.BGPFilterSourceRemotePeers, Action: v3.Reject}, r4}
	case 2:
		fs.ImportV6 = []v3.BGPFilterRuleV6{r6}
	case 3:
		fs.ExportV6 = []v3.BGPFilterRuleV6{r6, r6}
		fs.ImportV4 = []v3.BGPFilterRuleV4{r4}
	}
	if f := bgpFilter("f", fs); f.Validate() == nil {
		in.Filters = append(in.Filters, f)
	}
	present := map[string]string{"bgp/peer": "peer-pw"}
	if bit(15) {
		present["bgp/mesh"] = "mesh-pw"
	}
	in.Secret = secrets(present)
	return in
}

// FuzzBuild: whatever valid objects it gets, Build does not panic and
// its configuration is one the speaker can apply as documented.
func FuzzBuild(f *testing.F) {
	type seed struct {
		topo                                        []byte
		labels, ann, node, nodeSel, peerSel, peerIP string
		asn                                         uint32
		cidr, op, comm                              string
		plMin, plMax                                int8
		flags                                       uint32
	}
	for _, s := range []seed{
		// Route reflectors: node-0 and node-1 reflect for the others.
		{[]byte{0, 0, 1, 1, 2, 0x80, 3, 3}, "rr=1;rr=1;;", "|1.0.0.1;65001|1.0.0.1;65002|;bad|bad", "", "!has(rr)", "has(rr)", "", 0, "10.0.0.0/8", "In", "", 24, -1, 1<<7 | 1},
		// A ToR peer with a port, a filter and a password; the mesh on.
		{nil, "rack=a;rack=a;rack=b;", "", "", "rack == 'a'", "", "192.0.2.1:1179", 65000, "10.0.0.0/16", "Equal", "", -1, -1, 1 | 1<<4 | 1<<2 | 1<<24},
		// An empty prefixLength range (max below the CIDR's length); the
		// peerIP is another node's.
		{nil, "", "", "node-1", "", "", "10.0.0.2", 64512, "10.0.0.0/16", "NotIn", "", -1, 8, 1 | 1<<7 | 1<<20 | 1<<14},
		// IPv6, sourceAddress None, services and communities.
		{[]byte{0x80, 1, 0x80, 2, 3, 3, 0x80, 0x80}, "", "", "", "", "", "[2001:db8::1]:179", 65010, "2001:db8::/32", "NotEqual", "65000:1:2", 48, -1, 2 | 1<<1 | 1<<11 | 1<<12 | 2<<16},
		// Duplicate addresses, mesh password present, communities.
		{[]byte{1, 1, 1, 1, 1, 2, 0, 0}, "a=b;a=b;a=b;a=b", "1.10;;;", "", "all()", "a == 'b'", "", 0, "10.1.0.0/16", "In", "65000:7", 0, 0, 1 | 1<<9 | 1<<12 | 1<<15 | 3<<16},
		// A service CIDR listed twice with another of the same address.
		{nil, "", "", "", "", "", "", 0, "10.96.0.0/16", "In", "", -1, -1, 1 << 11},
		// This node is missing.
		{nil, "", "", "", "", "", "192.0.2.1", 65000, "", "", "", -1, -1, 1 << 22},
	} {
		f.Add(s.topo, s.labels, s.ann, s.node, s.nodeSel, s.peerSel, s.peerIP, s.asn, s.cidr, s.op, s.comm, s.plMin, s.plMax, s.flags)
	}
	f.Fuzz(func(t *testing.T, topo []byte, labels, ann, node, nodeSel, peerSel, peerIP string, peerASN uint32, cidr, op, comm string, plMin, plMax int8, flags uint32) {
		in := fuzzInputs(topo, labels, ann, node, nodeSel, peerSel, peerIP, peerASN, cidr, op, comm, plMin, plMax, flags)
		cfg, adv, probs := Build(in)
		for _, p := range probs {
			if p.Kind == "" || p.Name == "" || p.Message == "" {
				t.Fatalf("incomplete problem %+v", p)
			}
		}
		if _, ok := in.Nodes[in.Self]; !ok {
			if !reflect.DeepEqual(cfg, Config{}) || !reflect.DeepEqual(adv, Advertise{}) || len(probs) != 1 || probs[0].Kind != "Node" {
				t.Fatalf("missing node: %+v, %+v, %v", cfg, adv, probs)
			}
			return
		}
		checkConfig(t, in, cfg)
		for i, p := range adv.Services {
			if p != p.Masked() {
				t.Fatalf("service prefix %v not masked", p)
			}
			if i > 0 {
				q := adv.Services[i-1]
				if c := q.Addr().Compare(p.Addr()); c > 0 || c == 0 && q.Bits() >= p.Bits() {
					t.Fatalf("services not sorted and unique: %v", adv.Services)
				}
			}
		}
		for _, pc := range adv.Communities {
			o := adv.Decorate(pc.CIDR)
			if !slices.IsSorted(o.Communities) || len(slices.Compact(slices.Clone(o.Communities))) != len(o.Communities) {
				t.Fatalf("Decorate(%v) communities not sorted and unique: %v", pc.CIDR, o.Communities)
			}
			if len(slices.Compact(slices.Clone(o.Large))) != len(o.Large) {
				t.Fatalf("Decorate(%v) large communities repeat: %v", pc.CIDR, o.Large)
			}
		}
		// Deterministic, whatever the order of the objects and of the
		// node map's iteration.
		in2 := in
		in2.Peers, in2.Filters, in2.Configs = slices.Clone(in.Peers), slices.Clone(in.Filters), slices.Clone(in.Configs)
		slices.Reverse(in2.Peers)
		slices.Reverse(in2.Filters)
		slices.Reverse(in2.Configs)
		cfg2, adv2, probs2 := Build(in2)
		if !reflect.DeepEqual(cfg, cfg2) || !reflect.DeepEqual(adv, adv2) || len(probs) != len(probs2) {
			t.Fatalf("Build depends on the order of its inputs:\n%+v\n%+v", cfg, cfg2)
		}
	})
}

// checkConfig asserts the invariants of a Config built from in.
func checkConfig(t *testing.T, in Inputs, cfg Config) {
	t.Helper()
	self := in.Nodes[in.Self]
	if cfg.ASN == 0 || !cfg.RouterID.Is4() || cfg.ListenPort < 1 || cfg.ListenPort > 65535 || cfg.HoldTime <= 0 {
		t.Fatalf("bad globals: %+v", cfg)
	}
	if cfg.LocalV4 != self.V4.Addr() || cfg.LocalV6 != self.V6.Addr() || cfg.ClusterID != self.ClusterID {
		t.Fatalf("local addresses or cluster ID are not the node's: %+v vs %+v", cfg, self)
	}
	for i, p := range cfg.Peers {
		if i > 0 && cfg.Peers[i-1].Addr.Compare(p.Addr) >= 0 {
			t.Fatalf("peers not sorted by address or not unique: %v", peerAddrs(cfg.Peers))
		}
		if !p.Addr.IsValid() || p.Addr.Is4In6() {
			t.Fatalf("peer address %v", p.Addr)
		}
		if p.Addr == cfg.LocalV4 || p.Addr == cfg.LocalV6 {
			t.Fatalf("peer at the node's own address %v: %+v", p.Addr, p)
		}
		if p.ASN == 0 || p.LocalASN != cfg.ASN || p.Origin == "" {
			t.Fatalf("peer %+v: AS or origin", p)
		}
		if p.RRClient && !cfg.ClusterID.IsValid() {
			t.Fatalf("route reflector client %v of a node without cluster ID", p.Addr)
		}
		if p.LocalAddr.IsValid() && (p.LocalAddr.Is4() != p.Addr.Is4() || (p.LocalAddr != cfg.LocalV4 && p.LocalAddr != cfg.LocalV6)) {
			t.Fatalf("peer %v from %v, not this node's address of its family", p.Addr, p.LocalAddr)
		}
		if p.Node != "" {
			if _, ok := in.Nodes[p.Node]; !ok || p.Node == in.Self {
				t.Fatalf("peer %v is node %q", p.Addr, p.Node)
			}
		}
		for _, r := range slices.Concat(p.Import, p.Export) {
			bits := 32
			if r.Family == 6 {
				bits = 128
			} else if r.Family != 4 {
				t.Fatalf("rule %s: family %d", r, r.Family)
			}
			if r.Min > r.Max || r.Min < 0 || r.Max > bits {
				t.Fatalf("rule %s: range %d..%d", r, r.Min, r.Max)
			}
			if r.Prefix.IsValid() {
				if r.Prefix.Addr().BitLen() != bits || r.Prefix != r.Prefix.Masked() || r.Min < r.Prefix.Bits() {
					t.Fatalf("rule %s: prefix %v for family %d, range %d..%d", r, r.Prefix, r.Family, r.Min, r.Max)
				}
			} else if r.Min != 0 || r.Max != 0 || r.Invert {
				t.Fatalf("rule %s without prefix: %+v", r, r)
			}
		}
	}
}
