package bgp

// Unit tests of Build and its helpers. Expected values come from Calico's
// documented model (BGPConfiguration, BGPPeer, BGPFilter, the node's BGP
// settings) and from the comments of calico.go, not from its code.

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v3 "github.com/vecnet/vecnet/pkg/apis/projectcalico/v3"
)

// --- helpers ---------------------------------------------------------------

func ptr[T any](v T) *T { return &v }

func pfx(s string) netip.Prefix {
	if s == "" {
		return netip.Prefix{}
	}
	return netip.MustParsePrefix(s)
}

func ip(s string) netip.Addr {
	if s == "" {
		return netip.Addr{}
	}
	return netip.MustParseAddr(s)
}

// mkNode makes a node the way the agent does: from its labels and
// annotations (key, value pairs).
func mkNode(name, v4, v6 string, labels map[string]string, ann ...string) Node {
	a := map[string]string{}
	for i := 0; i+1 < len(ann); i += 2 {
		a[ann[i]] = ann[i+1]
	}
	return NodeFromAnnotations(name, labels, a, pfx(v4), pfx(v6))
}

func nodeMap(ns ...Node) map[string]Node {
	m := map[string]Node{}
	for _, n := range ns {
		m[n.Name] = n
	}
	return m
}

func bgpConfig(name string, spec v3.BGPConfigurationSpec) v3.BGPConfiguration {
	return v3.BGPConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
}

// meshOff is a default BGPConfiguration without the node-to-node mesh.
func meshOff() v3.BGPConfiguration {
	return bgpConfig("default", v3.BGPConfigurationSpec{NodeToNodeMeshEnabled: ptr(false)})
}

func bgpPeer(name string, spec v3.BGPPeerSpec) v3.BGPPeer {
	return v3.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
}

func bgpFilter(name string, spec v3.BGPFilterSpec) v3.BGPFilter {
	return v3.BGPFilter{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
}

func secretRef(name, key string) *v3.BGPPassword {
	return &v3.BGPPassword{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key}}
}

// secrets serves the secrets of m, keyed "name/key".
func secrets(m map[string]string) func(name, key string) (string, error) {
	return func(name, key string) (string, error) {
		v, ok := m[name+"/"+key]
		if !ok {
			return "", fmt.Errorf("secret %s has no key %q", name, key)
		}
		return v, nil
	}
}

func dur(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

// mustValid fails the test when an object the test feeds to Build would
// not pass Validate (the agent never passes such an object).
func mustValid(t *testing.T, objs ...interface{ Validate() error }) {
	t.Helper()
	for _, o := range objs {
		if err := o.Validate(); err != nil {
			t.Fatalf("test input does not validate: %v", err)
		}
	}
}

func validInputs(t *testing.T, in Inputs) Inputs {
	t.Helper()
	for i := range in.Configs {
		mustValid(t, &in.Configs[i])
	}
	for i := range in.Peers {
		mustValid(t, &in.Peers[i])
	}
	for i := range in.Filters {
		mustValid(t, &in.Filters[i])
	}
	return in
}

func peerAddrs(ps []Peer) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Addr.String())
	}
	return out
}

func peerNodes(ps []Peer) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Node)
	}
	return out
}

func findPeer(cfg Config, addr string) (Peer, bool) {
	for _, p := range cfg.Peers {
		if p.Addr == ip(addr) {
			return p, true
		}
	}
	return Peer{}, false
}

// problemFields lists problems as "Kind/Name/Field".
func problemFields(ps []Problem) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Kind+"/"+p.Name+"/"+p.Field)
	}
	return out
}

func wantProblems(t *testing.T, got []Problem, want ...string) {
	t.Helper()
	if g := problemFields(got); !slices.Equal(g, want) {
		t.Errorf("problems = %q, want %q (%v)", g, want, got)
	}
}

func wantPeers(t *testing.T, got, want []Peer) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("peers differ\n got: %s\nwant: %s", fmtPeers(got), fmtPeers(want))
	}
}

func fmtPeers(ps []Peer) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "\n  %+v", p)
	}
	return b.String()
}

const (
	nodeA = "node-a"
	nodeB = "node-b"
	nodeC = "node-c"
	nodeD = "node-d"
	nodeE = "node-e"
)

// --- NodeFromAnnotations ---------------------------------------------------

func TestNodeFromAnnotations(t *testing.T) {
	for _, tc := range []struct {
		name        string
		ann         map[string]string
		asn         uint32
		cluster     string
		invalidHas  []string // substrings of Invalid; nil: Invalid == ""
		invalidNone []string
	}{
		{name: "none", ann: nil},
		{name: "empty annotation is unset", ann: map[string]string{AnnotationASNumber: "", AnnotationClusterID: ""}},
		{name: "blank annotation is unset", ann: map[string]string{AnnotationASNumber: "  "}},
		{name: "asplain", ann: map[string]string{AnnotationASNumber: "65001"}, asn: 65001},
		{name: "asplain with spaces", ann: map[string]string{AnnotationASNumber: " 65001\n"}, asn: 65001},
		{name: "32-bit", ann: map[string]string{AnnotationASNumber: "4200000000"}, asn: 4200000000},
		{name: "max", ann: map[string]string{AnnotationASNumber: "4294967295"}, asn: 4294967295},
		{name: "asdot", ann: map[string]string{AnnotationASNumber: "1.10"}, asn: 65536 + 10},
		{name: "asdot max", ann: map[string]string{AnnotationASNumber: "65535.65535"}, asn: 4294967295},
		{name: "asdot 0.1 is AS 1", ann: map[string]string{AnnotationASNumber: "0.1"}, asn: 1},
		{name: "letters", ann: map[string]string{AnnotationASNumber: "abc"}, invalidHas: []string{AnnotationASNumber, `"abc"`}},
		{name: "zero", ann: map[string]string{AnnotationASNumber: "0"}, invalidHas: []string{AnnotationASNumber}},
		{name: "asdot zero", ann: map[string]string{AnnotationASNumber: "0.0"}, invalidHas: []string{AnnotationASNumber}},
		{name: "too big", ann: map[string]string{AnnotationASNumber: "4294967296"}, invalidHas: []string{AnnotationASNumber}},
		{name: "asdot part too big", ann: map[string]string{AnnotationASNumber: "65536.1"}, invalidHas: []string{AnnotationASNumber}},
		{name: "negative", ann: map[string]string{AnnotationASNumber: "-1"}, invalidHas: []string{AnnotationASNumber}},
		{name: "three dots", ann: map[string]string{AnnotationASNumber: "1.2.3"}, invalidHas: []string{AnnotationASNumber}},
		{name: "cluster ID", ann: map[string]string{AnnotationClusterID: "224.0.0.1"}, cluster: "224.0.0.1"},
		{name: "cluster ID with spaces", ann: map[string]string{AnnotationClusterID: " 1.0.0.1 "}, cluster: "1.0.0.1"},
		{name: "cluster ID IPv6", ann: map[string]string{AnnotationClusterID: "2001:db8::1"}, invalidHas: []string{AnnotationClusterID}, invalidNone: []string{AnnotationASNumber}},
		{name: "cluster ID garbage", ann: map[string]string{AnnotationClusterID: "rr-1"}, invalidHas: []string{AnnotationClusterID}},
		{name: "ASN valid, cluster ID invalid", ann: map[string]string{AnnotationASNumber: "65001", AnnotationClusterID: "x"}, asn: 65001, invalidHas: []string{AnnotationClusterID}, invalidNone: []string{AnnotationASNumber}},
		{name: "ASN invalid, cluster ID valid", ann: map[string]string{AnnotationASNumber: "x", AnnotationClusterID: "1.0.0.1"}, cluster: "1.0.0.1", invalidHas: []string{AnnotationASNumber}, invalidNone: []string{AnnotationClusterID}},
		{name: "both invalid", ann: map[string]string{AnnotationASNumber: "x", AnnotationClusterID: "y"}, invalidHas: []string{AnnotationASNumber, AnnotationClusterID}},
		{name: "other annotations ignored", ann: map[string]string{"projectcalico.org/IPv4Address": "10.0.0.1/24", "foo": "bar"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			labels := map[string]string{"k": "v"}
			n := NodeFromAnnotations("n1", labels, tc.ann, pfx("10.0.0.1/24"), pfx("fd00::1/64"))
			if n.Name != "n1" || !reflect.DeepEqual(n.Labels, labels) || n.V4 != pfx("10.0.0.1/24") || n.V6 != pfx("fd00::1/64") {
				t.Errorf("identity fields not kept: %+v", n)
			}
			if n.ASN != tc.asn {
				t.Errorf("ASN = %d, want %d", n.ASN, tc.asn)
			}
			if n.ClusterID != ip(tc.cluster) {
				t.Errorf("ClusterID = %v, want %q", n.ClusterID, tc.cluster)
			}
			if tc.invalidHas == nil && n.Invalid != "" {
				t.Errorf("Invalid = %q, want none", n.Invalid)
			}
			for _, s := range tc.invalidHas {
				if !strings.Contains(n.Invalid, s) {
					t.Errorf("Invalid = %q, want it to mention %s", n.Invalid, s)
				}
			}
			for _, s := range tc.invalidNone {
				if strings.Contains(n.Invalid, s) {
					t.Errorf("Invalid = %q, must not mention %s", n.Invalid, s)
				}
			}
		})
	}
}

// --- globals: AS, router ID, port, log level --------------------------------

func TestBuildASNumber(t *testing.T) {
	defAS := func(asn v3.ASNumber) []v3.BGPConfiguration {
		return []v3.BGPConfiguration{bgpConfig("default", v3.BGPConfigurationSpec{ASNumber: &asn})}
	}
	for _, tc := range []struct {
		name     string
		ann      []string
		configs  []v3.BGPConfiguration
		want     uint32
		problems []string
	}{
		{name: "no configuration: 64512", want: 64512},
		{name: "default BGPConfiguration without asNumber", configs: []v3.BGPConfiguration{bgpConfig("default", v3.BGPConfigurationSpec{LogSeverityScreen: "Info"})}, want: 64512},
		{name: "default asNumber", configs: defAS(65100), want: 65100},
		{name: "annotation beats default", ann: []string{AnnotationASNumber, "65001"}, configs: defAS(65100), want: 65001},
		{name: "annotation beats 64512", ann: []string{AnnotationASNumber, "65001"}, want: 65001},
		{name: "asdot annotation", ann: []string{AnnotationASNumber, "1.10"}, want: 65546},
		{name: "invalid annotation falls back to default", ann: []string{AnnotationASNumber, "abc"}, configs: defAS(65100), want: 65100, problems: []string{"Node/" + nodeA + "/metadata.annotations"}},
		{name: "zero annotation falls back to 64512", ann: []string{AnnotationASNumber, "0"}, want: 64512, problems: []string{"Node/" + nodeA + "/metadata.annotations"}},
		{name: "another node's asNumber config is not this node's", configs: []v3.BGPConfiguration{bgpConfig("node."+nodeB, v3.BGPConfigurationSpec{ASNumber: ptr(v3.ASNumber(65999))})}, want: 64512},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := Inputs{Self: nodeA, Nodes: nodeMap(mkNode(nodeA, "10.0.0.1/24", "", nil, tc.ann...)), Configs: tc.configs}
			cfg, _, probs := Build(validInputs(t, in))
			if cfg.ASN != tc.want {
				t.Errorf("ASN = %d, want %d", cfg.ASN, tc.want)
			}
			wantProblems(t, probs, tc.problems...)
			for _, p := range probs {
				if p.Message == "" || !strings.Contains(p.Message, AnnotationASNumber) {
					t.Errorf("problem %v does not say which annotation", p)
				}
			}
		})
	}
}

// Each node's AS is its own annotation or the default; an invalid
// annotation of another node is that node's problem (the agent reports
// it), not this node's Build's.
func TestBuildPeerASNumbers(t *testing.T) {
	asn := v3.ASNumber(65100)
	in := Inputs{
		Self: nodeA,
		Nodes: nodeMap(
			mkNode(nodeA, "10.0.0.1/24", "", nil, AnnotationASNumber, "65001"),
			mkNode(nodeB, "10.0.0.2/24", "", nil, AnnotationASNumber, "65002"),
			mkNode(nodeC, "10.0.0.3/24", "", nil),
			mkNode(nodeD, "10.0.0.4/24", "", nil, AnnotationASNumber, "bogus"),
		),
		Configs: []v3.BGPConfiguration{bgpConfig("default", v3.BGPConfigurationSpec{ASNumber: &asn})},
	}
	cfg, _, probs := Build(validInputs(t, in))
	wantProblems(t, probs)
	want := map[string]uint32{"10.0.0.2": 65002, "10.0.0.3": 65100, "10.0.0.4": 65100}
	if len(cfg.Peers) != len(want) {
		t.Fatalf("peers = %v", peerAddrs(cfg.Peers))
	}
	for _, p := range cfg.Peers {
		if p.ASN != want[p.Addr.String()] || p.LocalASN != 65001 {
			t.Errorf("peer %s: ASN %d LocalASN %d, want %d and 65001", p.Addr, p.ASN, p.LocalASN, want[p.Addr.String()])
		}
	}
}

func TestBuildRouterID(t *testing.T) {
	build := func(n Node) Config {
		t.Helper()
		cfg, _, probs := Build(Inputs{Self: n.Name, Nodes: nodeMap(n)})
		wantProblems(t, probs)
		return cfg
	}
	if got := build(mkNode(nodeA, "10.0.0.1/24", "fd00::1/64", nil)).RouterID; got != ip("10.0.0.1") {
		t.Errorf("dual-stack router ID = %v, want the IPv4 address", got)
	}
	if got := build(mkNode(nodeA, "10.0.0.1/24", "", nil)).RouterID; got != ip("10.0.0.1") {
		t.Errorf("IPv4 router ID = %v, want the IPv4 address", got)
	}
	v6a := build(mkNode("worker-1", "", "fd00::1/64", nil)).RouterID
	if !v6a.Is4() {
		t.Fatalf("IPv6-only router ID %v is not a 32-bit (dotted quad) value", v6a)
	}
	// Stable: the same name gives the same ID, whatever the address.
	if again := build(mkNode("worker-1", "", "fd00::99/64", nil)).RouterID; again != v6a {
		t.Errorf("router ID of worker-1 changed with its address: %v then %v", v6a, again)
	}
	if again := routerID(Node{Name: "worker-1"}); again != v6a {
		t.Errorf("routerID(worker-1) = %v, Build said %v", again, v6a)
	}
	// Different names, different IDs (routers of one AS need distinct IDs).
	seen := map[netip.Addr]string{v6a: "worker-1"}
	for _, name := range []string{"worker-2", "worker-10", "node-a", "node-b", "a", "b", "master"} {
		id := build(mkNode(name, "", "fd00::1/64", nil)).RouterID
		if !id.Is4() {
			t.Errorf("router ID of %s = %v, not IPv4", name, id)
		}
		if other, dup := seen[id]; dup {
			t.Errorf("%s and %s have the same router ID %v", name, other, id)
		}
		seen[id] = name
	}
}

func TestBuildGlobals(t *testing.T) {
	self := mkNode(nodeA, "10.0.0.1/24", "fd00::1/64", nil, AnnotationClusterID, "1.0.0.1")
	t.Run("defaults", func(t *testing.T) {
		cfg, adv, probs := Build(Inputs{Self: nodeA, Nodes: nodeMap(self)})
		wantProblems(t, probs)
		want := Config{
			ASN: 64512, RouterID: ip("10.0.0.1"), ListenPort: 179, ClusterID: ip("1.0.0.1"),
			LocalV4: ip("10.0.0.1"), LocalV6: ip("fd00::1"), HoldTime: 90 * time.Second,
		}
		if !reflect.DeepEqual(cfg, want) {
			t.Errorf("config = %+v\nwant %+v", cfg, want)
		}
		if len(adv.Services) != 0 || len(adv.Communities) != 0 {
			t.Errorf("advertise = %+v, want nothing", adv)
		}
	})
	t.Run("listenPort and logSeverityScreen", func(t *testing.T) {
		for _, tc := range []struct {
			name    string
			configs []v3.BGPConfiguration
			port    int32
			level   string
		}{
			{name: "default object", configs: []v3.BGPConfiguration{bgpConfig("default", v3.BGPConfigurationSpec{ListenPort: 1790, LogSeverityScreen: "Warning"})}, port: 1790, level: "Warning"},
			{name: "node object overrides the log level", configs: []v3.BGPConfiguration{
				bgpConfig("default", v3.BGPConfigurationSpec{LogSeverityScreen: "Info"}),
				bgpConfig("node."+nodeA, v3.BGPConfigurationSpec{LogSeverityScreen: "Debug"}),
			}, port: 179, level: "Debug"},
			{name: "node object first in the list", configs: []v3.BGPConfiguration{
				bgpConfig("node."+nodeA, v3.BGPConfigurationSpec{LogSeverityScreen: "Error"}),
				bgpConfig("default", v3.BGPConfigurationSpec{LogSeverityScreen: "Info", ListenPort: 1179}),
			}, port: 1179, level: "Error"},
			{name: "node object without level keeps the default's", configs: []v3.BGPConfiguration{
				bgpConfig("default", v3.BGPConfigurationSpec{LogSeverityScreen: "Info"}),
				bgpConfig("node."+nodeA, v3.BGPConfigurationSpec{}),
			}, port: 179, level: "Info"},
			{name: "another node's object does not apply", configs: []v3.BGPConfiguration{
				bgpConfig("default", v3.BGPConfigurationSpec{LogSeverityScreen: "Info"}),
				bgpConfig("node."+nodeB, v3.BGPConfigurationSpec{LogSeverityScreen: "Debug"}),
			}, port: 179, level: "Info"},
			{name: "only a node object", configs: []v3.BGPConfiguration{bgpConfig("node."+nodeA, v3.BGPConfigurationSpec{LogSeverityScreen: "Fatal"})}, port: 179, level: "Fatal"},
			{name: "an object with another name is not the default", configs: []v3.BGPConfiguration{bgpConfig("defaults", v3.BGPConfigurationSpec{ListenPort: 1790, LogSeverityScreen: "Debug"})}, port: 179, level: ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				cfg, _, probs := Build(validInputs(t, Inputs{Self: nodeA, Nodes: nodeMap(self), Configs: tc.configs}))
				wantProblems(t, probs)
				if cfg.ListenPort != tc.port || cfg.LogLevel != tc.level {
					t.Errorf("listen port %d, log level %q; want %d, %q", cfg.ListenPort, cfg.LogLevel, tc.port, tc.level)
				}
			})
		}
	})
	t.Run("hold time", func(t *testing.T) {
		cfg, _, _ := Build(Inputs{Self: nodeA, Nodes: nodeMap(self), HoldTime: 9 * time.Second})
		if cfg.HoldTime != 9*time.Second {
			t.Errorf("HoldTime = %v, want 9s", cfg.HoldTime)
		}
	})
}

func TestBuildSelfMissing(t *testing.T) {
	for _, nodes := range []map[string]Node{nil, {}, nodeMap(mkNode(nodeB, "10.0.0.2/24", "", nil))} {
		asn := v3.ASNumber(65000)
		in := Inputs{
			Self:    nodeA,
			Nodes:   nodes,
			Configs: []v3.BGPConfiguration{bgpConfig("default", v3.BGPConfigurationSpec{ASNumber: &asn, ServiceClusterIPs: []v3.ServiceClusterIPBlock{{CIDR: "10.96.0.0/12"}}})},
			Peers:   []v3.BGPPeer{bgpPeer("p", v3.BGPPeerSpec{PeerIP: "192.0.2.1", ASNumber: 65001})},
		}
		cfg, adv, probs := Build(in)
		if !reflect.DeepEqual(cfg, Config{}) {
			t.Errorf("config = %+v, want zero", cfg)
		}
		if !reflect.DeepEqual(adv, Advertise{}) {
			t.Errorf("advertise = %+v, want zero", adv)
		}
		if len(probs) != 1 || probs[0].Kind != "Node" || probs[0].Name != nodeA || probs[0].Message == "" {
			t.Errorf("problems = %v, want one about Node %s", probs, nodeA)
		}
	}
}

// --- node-to-node mesh -------------------------------------------------------

// meshNodes: a and b dual-stack, c IPv4 only, d IPv6 only, e no address.
func meshNodes() map[string]Node {
	return nodeMap(
		mkNode(nodeA, "10.0.0.1/24", "fd00::1/64", map[string]string{"rack": "r1"}),
		mkNode(nodeB, "10.0.0.2/24", "fd00::2/64", nil, AnnotationASNumber, "65002"),
		mkNode(nodeC, "10.0.0.3/24", "", nil),
		mkNode(nodeD, "", "fd00::4/64", nil),
		mkNode(nodeE, "", "", nil),
	)
}

func meshPeer(addr, node string, asn uint32, local string) Peer {
	return Peer{
		Addr: ip(addr), ASN: asn, LocalASN: 64512, Origin: "mesh", Node: node,
		LocalAddr: ip(local), RestartTime: 120 * time.Second,
	}
}

func TestBuildMesh(t *testing.T) {
	for _, tc := range []struct {
		name    string
		self    string
		configs []v3.BGPConfiguration
		want    []Peer
	}{
		{
			name: "on by default, every family both nodes have",
			self: nodeA,
			want: []Peer{
				meshPeer("10.0.0.2", nodeB, 65002, "10.0.0.1"),
				meshPeer("10.0.0.3", nodeC, 64512, "10.0.0.1"),
				meshPeer("fd00::2", nodeB, 65002, "fd00::1"),
				meshPeer("fd00::4", nodeD, 64512, "fd00::1"),
			},
		},
		{
			name:    "explicitly on",
			self:    nodeA,
			configs: []v3.BGPConfiguration{bgpConfig("default", v3.BGPConfigurationSpec{NodeToNodeMeshEnabled: ptr(true)})},
			want: []Peer{
				meshPeer("10.0.0.2", nodeB, 65002, "10.0.0.1"),
				meshPeer("10.0.0.3", nodeC, 64512, "10.0.0.1"),
				meshPeer("fd00::2", nodeB, 65002, "fd00::1"),
				meshPeer("fd00::4", nodeD, 64512, "fd00::1"),
			},
		},
		{
			name: "IPv4-only node: IPv4 sessions only",
			self: nodeC,
			want: []Peer{
				meshPeer("10.0.0.1", nodeA, 64512, "10.0.0.3"),
				meshPeer("10.0.0.2", nodeB, 65002, "10.0.0.3"),
			},
		},
		{
			name: "IPv6-only node: IPv6 sessions only",
			self: nodeD,
			want: []Peer{
				meshPeer("fd00::1", nodeA, 64512, "fd00::4"),
				meshPeer("fd00::2", nodeB, 65002, "fd00::4"),
			},
		},
		{name: "node without addresses: no sessions", self: nodeE},
		{name: "off", self: nodeA, configs: []v3.BGPConfiguration{meshOff()}},
		{
			name: "off in the node's object does not count (default object only)", self: nodeA,
			configs: []v3.BGPConfiguration{bgpConfig("node."+nodeA, v3.BGPConfigurationSpec{NodeToNodeMeshEnabled: ptr(false)})},
			want: []Peer{
				meshPeer("10.0.0.2", nodeB, 65002, "10.0.0.1"),
				meshPeer("10.0.0.3", nodeC, 64512, "10.0.0.1"),
				meshPeer("fd00::2", nodeB, 65002, "fd00::1"),
				meshPeer("fd00::4", nodeD, 64512, "fd00::1"),
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, probs := Build(validInputs(t, Inputs{Self: tc.self, Nodes: meshNodes(), Configs: tc.configs}))
			wantProblems(t, probs)
			wantPeers(t, cfg.Peers, tc.want)
		})
	}
}

func TestBuildMeshDefaultAS(t *testing.T) {
	asn := v3.ASNumber(65100)
	cfg, _, _ := Build(Inputs{Self: nodeC, Nodes: meshNodes(), Configs: []v3.BGPConfiguration{bgpConfig("default", v3.BGPConfigurationSpec{ASNumber: &asn})}})
	want := []Peer{meshPeer("10.0.0.1", nodeA, 65100, "10.0.0.3"), meshPeer("10.0.0.2", nodeB, 65002, "10.0.0.3")}
	for i := range want {
		want[i].LocalASN = 65100
	}
	wantPeers(t, cfg.Peers, want)
}

func TestBuildMeshPasswordAndRestart(t *testing.T) {
	nodes := nodeMap(mkNode(nodeA, "10.0.0.1/24", "", nil), mkNode(nodeB, "10.0.0.2/24", "", nil), mkNode(nodeC, "10.0.0.3/24", "", nil))
	spec := v3.BGPConfigurationSpec{NodeMeshPassword: secretRef("bgp", "mesh"), NodeMeshMaxRestartTime: dur(30 * time.Second)}
	t.Run("secret found", func(t *testing.T) {
		in := validInputs(t, Inputs{Self: nodeA, Nodes: nodes, Configs: []v3.BGPConfiguration{bgpConfig("default", spec)}, Secret: secrets(map[string]string{"bgp/mesh": "s3cret"})})
		cfg, _, probs := Build(in)
		wantProblems(t, probs)
		if len(cfg.Peers) != 2 {
			t.Fatalf("peers = %v", peerAddrs(cfg.Peers))
		}
		for _, p := range cfg.Peers {
			if p.Password != "s3cret" || p.RestartTime != 30*time.Second {
				t.Errorf("peer %s: password %q restart %v, want s3cret and 30s", p.Addr, p.Password, p.RestartTime)
			}
		}
	})
	t.Run("restart time 0 disables graceful restart", func(t *testing.T) {
		cfg, _, _ := Build(Inputs{Self: nodeA, Nodes: nodes, Configs: []v3.BGPConfiguration{bgpConfig("default", v3.BGPConfigurationSpec{NodeMeshMaxRestartTime: dur(0)})}})
		for _, p := range cfg.Peers {
			if p.RestartTime != 0 {
				t.Errorf("peer %s: restart %v, want 0", p.Addr, p.RestartTime)
			}
		}
	})
	t.Run("secret missing: no mesh sessions without their password", func(t *testing.T) {
		in := validInputs(t, Inputs{
			Self: nodeA, Nodes: nodes, Configs: []v3.BGPConfiguration{bgpConfig("default", spec)},
			Peers:  []v3.BGPPeer{bgpPeer("tor", v3.BGPPeerSpec{PeerIP: "192.0.2.1", ASNumber: 65000})},
			Secret: secrets(map[string]string{"bgp/other": "x"}),
		})
		cfg, _, probs := Build(in)
		wantProblems(t, probs, "BGPConfiguration/default/spec.nodeMeshPassword.secretKeyRef")
		// The rest of the configuration still applies.
		if got := peerAddrs(cfg.Peers); !slices.Equal(got, []string{"192.0.2.1"}) {
			t.Errorf("peers = %v, want only the BGPPeer's", got)
		}
	})
	t.Run("no secret access: a problem, no mesh sessions", func(t *testing.T) {
		cfg, _, probs := Build(validInputs(t, Inputs{Self: nodeA, Nodes: nodes, Configs: []v3.BGPConfiguration{bgpConfig("default", spec)}}))
		if len(probs) != 1 || probs[0].Kind != "BGPConfiguration" || !strings.HasPrefix(probs[0].Field, "spec.nodeMeshPassword") {
			t.Errorf("problems = %v", probs)
		}
		if len(cfg.Peers) != 0 {
			t.Errorf("peers = %v, want none", peerAddrs(cfg.Peers))
		}
	})
	t.Run("password of a disabled mesh is not looked up", func(t *testing.T) {
		s := spec
		s.NodeToNodeMeshEnabled = ptr(false)
		cfg, _, probs := Build(validInputs(t, Inputs{Self: nodeA, Nodes: nodes, Configs: []v3.BGPConfiguration{bgpConfig("default", s)}, Secret: secrets(nil)}))
		wantProblems(t, probs)
		if len(cfg.Peers) != 0 {
			t.Errorf("peers = %v, want none", peerAddrs(cfg.Peers))
		}
	})
}

// Two nodes reporting the same address (a stale annotation, a copied
// VM): this node never peers with its own address.
func TestBuildNoPeerAtOwnAddress(t *testing.T) {
	nodes := nodeMap(
		mkNode(nodeA, "10.0.0.1/24", "fd00::1/64", map[string]string{"all": "yes"}),
		mkNode(nodeB, "10.0.0.1/24", "fd00::2/64", map[string]string{"all": "yes"}),
	)
	in := validInputs(t, Inputs{Self: nodeA, Nodes: nodes, Peers: []v3.BGPPeer{
		bgpPeer("self-v4", v3.BGPPeerSpec{PeerIP: "10.0.0.1", ASNumber: 65000}),
		bgpPeer("self-v6", v3.BGPPeerSpec{PeerIP: "[fd00::1]:1179", ASNumber: 65000}),
		bgpPeer("sel", v3.BGPPeerSpec{PeerSelector: "has(all)"}),
	}})
	cfg, _, probs := Build(in)
	wantProblems(t, probs)
	if got := peerAddrs(cfg.Peers); !slices.Equal(got, []string{"fd00::2"}) {
		t.Errorf("peers = %v, want only fd00::2", got)
	}
}

// --- BGPPeer with peerIP -------------------------------------------------------

func TestBuildPeerIP(t *testing.T) {
	nodes := nodeMap(
		mkNode(nodeA, "10.0.0.1/24", "fd00::1/64", map[string]string{"rack": "r1", "tor": "yes"}),
		mkNode(nodeB, "10.0.0.2/24", "", map[string]string{"rack": "r2"}),
	)
	base := Peer{Addr: ip("192.0.2.1"), ASN: 65000, LocalASN: 64512, Origin: "BGPPeer p", LocalAddr: ip("10.0.0.1"), RestartTime: 120 * time.Second}
	with := func(f func(*Peer)) []Peer {
		p := base
		f(&p)
		return []Peer{p}
	}
	for _, tc := range []struct {
		name     string
		spec     v3.BGPPeerSpec
		want     []Peer
		problems []string
	}{
		{name: "global", spec: v3.BGPPeerSpec{PeerIP: "192.0.2.1", ASNumber: 65000}, want: []Peer{base}},
		{name: "node is this node", spec: v3.BGPPeerSpec{Node: nodeA, PeerIP: "192.0.2.1", ASNumber: 65000}, want: []Peer{base}},
		{name: "node is another node", spec: v3.BGPPeerSpec{Node: nodeB, PeerIP: "192.0.2.1", ASNumber: 65000}},
		{name: "node that does not exist", spec: v3.BGPPeerSpec{Node: "gone", PeerIP: "192.0.2.1", ASNumber: 65000}},
		{name: "nodeSelector matches", spec: v3.BGPPeerSpec{NodeSelector: "rack == 'r1'", PeerIP: "192.0.2.1", ASNumber: 65000}, want: []Peer{base}},
		{name: "nodeSelector has()", spec: v3.BGPPeerSpec{NodeSelector: "has(tor)", PeerIP: "192.0.2.1", ASNumber: 65000}, want: []Peer{base}},
		{name: "nodeSelector all()", spec: v3.BGPPeerSpec{NodeSelector: "all()", PeerIP: "192.0.2.1", ASNumber: 65000}, want: []Peer{base}},
		{name: "nodeSelector does not match", spec: v3.BGPPeerSpec{NodeSelector: "rack == 'r2'", PeerIP: "192.0.2.1", ASNumber: 65000}},
		{name: "nodeSelector !has() does not match", spec: v3.BGPPeerSpec{NodeSelector: "!has(tor)", PeerIP: "192.0.2.1", ASNumber: 65000}},
		{name: "port", spec: v3.BGPPeerSpec{PeerIP: "192.0.2.1:1179", ASNumber: 65000}, want: with(func(p *Peer) { p.Port = 1179 })},
		{name: "IPv6", spec: v3.BGPPeerSpec{PeerIP: "2001:db8::1", ASNumber: 65000}, want: with(func(p *Peer) { p.Addr, p.LocalAddr = ip("2001:db8::1"), ip("fd00::1") })},
		{name: "IPv6 with port", spec: v3.BGPPeerSpec{PeerIP: "[2001:db8::1]:1179", ASNumber: 65000}, want: with(func(p *Peer) { p.Addr, p.Port, p.LocalAddr = ip("2001:db8::1"), 1179, ip("fd00::1") })},
		{name: "IPv4-mapped IPv6 is the IPv4 peer", spec: v3.BGPPeerSpec{PeerIP: "::ffff:192.0.2.1", ASNumber: 65000}, want: []Peer{base}},
		{name: "asNumber 0", spec: v3.BGPPeerSpec{PeerIP: "192.0.2.1"}, problems: []string{"BGPPeer/p/spec.asNumber"}},
		{name: "sourceAddress None", spec: v3.BGPPeerSpec{PeerIP: "192.0.2.1", ASNumber: 65000, SourceAddress: v3.SourceAddressNone}, want: with(func(p *Peer) { p.LocalAddr = netip.Addr{} })},
		{name: "sourceAddress UseNodeIP", spec: v3.BGPPeerSpec{PeerIP: "192.0.2.1", ASNumber: 65000, SourceAddress: v3.SourceAddressUseNodeIP}, want: []Peer{base}},
		{name: "ttlSecurity 0 is off", spec: v3.BGPPeerSpec{PeerIP: "192.0.2.1", ASNumber: 65000, TTLSecurity: ptr(uint8(0))}, want: []Peer{base}},
		{name: "ttlSecurity 1: directly connected, TTL 255", spec: v3.BGPPeerSpec{PeerIP: "192.0.2.1", ASNumber: 65000, TTLSecurity: ptr(uint8(1))}, want: with(func(p *Peer) { p.TTLMin = 255 })},
		{name: "ttlSecurity 2: TTL 254", spec: v3.BGPPeerSpec{PeerIP: "192.0.2.1", ASNumber: 65000, TTLSecurity: ptr(uint8(2))}, want: with(func(p *Peer) { p.TTLMin = 254 })},
		{name: "ttlSecurity 255: TTL 1", spec: v3.BGPPeerSpec{PeerIP: "192.0.2.1", ASNumber: 65000, TTLSecurity: ptr(uint8(255))}, want: with(func(p *Peer) { p.TTLMin = 1 })},
		{name: "keepOriginalNextHop", spec: v3.BGPPeerSpec{PeerIP: "192.0.2.1", ASNumber: 65000, KeepOriginalNextHop: true}, want: with(func(p *Peer) { p.KeepNextHop = true })},
		{name: "nextHopMode Keep", spec: v3.BGPPeerSpec{PeerIP: "192.0.2.1", ASNumber: 65000, NextHopMode: ptr(v3.NextHopModeKeep)}, want: with(func(p *Peer) { p.KeepNextHop = true })},
		{name: "nextHopMode Self", spec: v3.BGPPeerSpec{PeerIP: "192.0.2.1", ASNumber: 65000, NextHopMode: ptr(v3.NextHopModeSelf)}, want: []Peer{base}},
		{name: "nextHopMode Auto", spec: v3.BGPPeerSpec{PeerIP: "192.0.2.1", ASNumber: 65000, NextHopMode: ptr(v3.NextHopModeAuto)}, want: []Peer{base}},
		{name: "maxRestartTime", spec: v3.BGPPeerSpec{PeerIP: "192.0.2.1", ASNumber: 65000, MaxRestartTime: dur(45 * time.Second)}, want: with(func(p *Peer) { p.RestartTime = 45 * time.Second })},
		{name: "maxRestartTime 0", spec: v3.BGPPeerSpec{PeerIP: "192.0.2.1", ASNumber: 65000, MaxRestartTime: dur(0)}, want: with(func(p *Peer) { p.RestartTime = 0 })},
		{name: "numAllowedLocalASNumbers", spec: v3.BGPPeerSpec{PeerIP: "192.0.2.1", ASNumber: 65000, NumAllowedLocalASNumbers: ptr(int32(3))}, want: with(func(p *Peer) { p.AllowOwnAS = 3 })},
		{name: "numAllowedLocalASNumbers 0", spec: v3.BGPPeerSpec{PeerIP: "192.0.2.1", ASNumber: 65000, NumAllowedLocalASNumbers: ptr(int32(0))}, want: []Peer{base}},
		{name: "numAllowedLocalASNumbers saturates", spec: v3.BGPPeerSpec{PeerIP: "192.0.2.1", ASNumber: 65000, NumAllowedLocalASNumbers: ptr(int32(1000))}, want: with(func(p *Peer) { p.AllowOwnAS = 255 })},
		{name: "password", spec: v3.BGPPeerSpec{PeerIP: "192.0.2.1", ASNumber: 65000, Password: secretRef("bgp", "tor")}, want: with(func(p *Peer) { p.Password = "torpw" })},
		{name: "password secret missing: no session", spec: v3.BGPPeerSpec{PeerIP: "192.0.2.1", ASNumber: 65000, Password: secretRef("bgp", "nope")}, problems: []string{"BGPPeer/p/spec.password.secretKeyRef"}},
		{name: "empty password reference is no password", spec: v3.BGPPeerSpec{PeerIP: "192.0.2.1", ASNumber: 65000, Password: &v3.BGPPassword{}}, want: []Peer{base}},
		{name: "peerIP of this node", spec: v3.BGPPeerSpec{PeerIP: "10.0.0.1", ASNumber: 65000}},
		// Calico: "If port number is not set, and peer is Calico node
		// with listenPort set, then listenPort is used" -- the peer is
		// known as that node, so that the speaker dials its listenPort.
		{name: "peerIP of another node", spec: v3.BGPPeerSpec{PeerIP: "10.0.0.2", ASNumber: 65000}, want: with(func(p *Peer) { p.Addr, p.Node = ip("10.0.0.2"), nodeB })},
		{name: "peerIP of another node with port", spec: v3.BGPPeerSpec{PeerIP: "10.0.0.2:1790", ASNumber: 65000}, want: with(func(p *Peer) { p.Addr, p.Node, p.Port = ip("10.0.0.2"), nodeB, 1790 })},
		{name: "everything", spec: v3.BGPPeerSpec{
			Node: nodeA, PeerIP: "[2001:db8::7]:1179", ASNumber: 4200000000, Password: secretRef("bgp", "tor"),
			TTLSecurity: ptr(uint8(1)), NextHopMode: ptr(v3.NextHopModeKeep), MaxRestartTime: dur(time.Minute),
			NumAllowedLocalASNumbers: ptr(int32(1)), SourceAddress: v3.SourceAddressNone,
		}, want: []Peer{{
			Addr: ip("2001:db8::7"), Port: 1179, ASN: 4200000000, LocalASN: 64512, Origin: "BGPPeer p", Password: "torpw",
			TTLMin: 255, KeepNextHop: true, RestartTime: time.Minute, AllowOwnAS: 1,
		}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := validInputs(t, Inputs{
				Self: nodeA, Nodes: nodes, Configs: []v3.BGPConfiguration{meshOff()},
				Peers:  []v3.BGPPeer{bgpPeer("p", tc.spec)},
				Secret: secrets(map[string]string{"bgp/tor": "torpw"}),
			})
			cfg, _, probs := Build(in)
			wantProblems(t, probs, tc.problems...)
			wantPeers(t, cfg.Peers, tc.want)
		})
	}
}

// A session needs a source address of the peer's family unless
// sourceAddress is None.
func TestBuildPeerIPFamily(t *testing.T) {
	nodes := nodeMap(mkNode(nodeA, "10.0.0.1/24", "", nil), mkNode(nodeD, "", "fd00::4/64", nil))
	for _, tc := range []struct {
		name, self, peerIP string
		source             v3.SourceAddress
		want               []string
		problems           []string
	}{
		{name: "IPv6 peer, IPv4-only node", self: nodeA, peerIP: "2001:db8::1", problems: []string{"BGPPeer/p/spec.peerIP"}},
		{name: "IPv4 peer, IPv6-only node", self: nodeD, peerIP: "192.0.2.1", problems: []string{"BGPPeer/p/spec.peerIP"}},
		{name: "IPv6 peer, IPv4-only node, sourceAddress None", self: nodeA, peerIP: "2001:db8::1", source: v3.SourceAddressNone, want: []string{"2001:db8::1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := validInputs(t, Inputs{Self: tc.self, Nodes: nodes, Configs: []v3.BGPConfiguration{meshOff()}, Peers: []v3.BGPPeer{
				bgpPeer("p", v3.BGPPeerSpec{PeerIP: tc.peerIP, ASNumber: 65000, SourceAddress: tc.source}),
			}})
			cfg, _, probs := Build(in)
			wantProblems(t, probs, tc.problems...)
			if got := peerAddrs(cfg.Peers); !slices.Equal(got, tc.want) {
				t.Errorf("peers = %v, want %v", got, tc.want)
			}
		})
	}
}

// --- BGPPeer with peerSelector --------------------------------------------------

// selNodes: a and d are route reflectors (role rr), b and c workers, e
// has no role; all IPv4, b dual-stack.
func selNodes() map[string]Node {
	return nodeMap(
		mkNode(nodeA, "10.0.0.1/24", "", map[string]string{"role": "rr"}),
		mkNode(nodeB, "10.0.0.2/24", "fd00::2/64", map[string]string{"role": "worker"}, AnnotationASNumber, "65002"),
		mkNode(nodeC, "10.0.0.3/24", "", map[string]string{"role": "worker"}),
		mkNode(nodeD, "10.0.0.4/24", "", map[string]string{"role": "rr"}),
		mkNode(nodeE, "10.0.0.5/24", "", nil),
	)
}

func TestBuildPeerSelector(t *testing.T) {
	workersToRR := v3.BGPPeerSpec{NodeSelector: "role == 'worker'", PeerSelector: "role == 'rr'"}
	for _, tc := range []struct {
		name string
		self string
		spec v3.BGPPeerSpec
		want []string // peer node names, in address order
	}{
		{name: "forward: selected node peers with the peerSelector's nodes", self: nodeB, spec: workersToRR, want: []string{nodeA, nodeD}},
		{name: "reverse: a peerSelector node peers with the selected nodes", self: nodeA, spec: workersToRR, want: []string{nodeB, nodeC}},
		{name: "neither selected nor a peer", self: nodeE, spec: workersToRR},
		{name: "global peerSelector: every node peers with the matches, never itself", self: nodeA, spec: v3.BGPPeerSpec{PeerSelector: "role == 'rr'"}, want: []string{nodeB, nodeC, nodeD, nodeE}},
		{name: "global peerSelector, from a non-matching node", self: nodeE, spec: v3.BGPPeerSpec{PeerSelector: "role == 'rr'"}, want: []string{nodeA, nodeD}},
		{name: "forward and reverse together", self: nodeA, spec: v3.BGPPeerSpec{NodeSelector: "has(role)", PeerSelector: "role == 'rr'"}, want: []string{nodeB, nodeC, nodeD}},
		{name: "all() to all(): everyone else", self: nodeC, spec: v3.BGPPeerSpec{NodeSelector: "all()", PeerSelector: "all()"}, want: []string{nodeA, nodeB, nodeD, nodeE}},
		{name: "node: forward", self: nodeC, spec: v3.BGPPeerSpec{Node: nodeC, PeerSelector: "role == 'rr'"}, want: []string{nodeA, nodeD}},
		{name: "node: reverse", self: nodeD, spec: v3.BGPPeerSpec{Node: nodeC, PeerSelector: "role == 'rr'"}, want: []string{nodeC}},
		{name: "node: unrelated node", self: nodeB, spec: v3.BGPPeerSpec{Node: nodeC, PeerSelector: "role == 'rr'"}},
		{name: "peerSelector matching nothing", self: nodeB, spec: v3.BGPPeerSpec{PeerSelector: "role == 'spine'"}},
		// Every node peers with e, so e peers with every node.
		{name: "global peerSelector matching only this node", self: nodeE, spec: v3.BGPPeerSpec{PeerSelector: "!has(role)"}, want: []string{nodeA, nodeB, nodeC, nodeD}},
		{name: "peerSelector matching only this node, selecting only this node", self: nodeE, spec: v3.BGPPeerSpec{NodeSelector: "!has(role)", PeerSelector: "!has(role)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := validInputs(t, Inputs{Self: tc.self, Nodes: selNodes(), Configs: []v3.BGPConfiguration{meshOff()}, Peers: []v3.BGPPeer{bgpPeer("sel", tc.spec)}})
			cfg, _, probs := Build(in)
			wantProblems(t, probs)
			if got := peerNodes(cfg.Peers); !slices.Equal(got, tc.want) {
				t.Errorf("peers with %v (%v), want %v", got, peerAddrs(cfg.Peers), tc.want)
			}
		})
	}
}

func TestBuildPeerSelectorSessions(t *testing.T) {
	run := func(self string, spec v3.BGPPeerSpec) []Peer {
		t.Helper()
		cfg, _, probs := Build(validInputs(t, Inputs{
			Self: self, Nodes: selNodes(), Configs: []v3.BGPConfiguration{meshOff()},
			Peers: []v3.BGPPeer{bgpPeer("rr", spec)}, Secret: secrets(map[string]string{"bgp/rr": "pw"}),
		}))
		wantProblems(t, probs)
		return cfg.Peers
	}
	peer := func(addr, node string, asn uint32, local string) Peer {
		return Peer{Addr: ip(addr), ASN: asn, LocalASN: 64512, Origin: "BGPPeer rr", Node: node, LocalAddr: ip(local), RestartTime: 120 * time.Second}
	}
	t.Run("the peer node's AS and this node's address", func(t *testing.T) {
		got := run(nodeA, v3.BGPPeerSpec{PeerSelector: "role == 'worker'"})
		wantPeers(t, got, []Peer{peer("10.0.0.2", nodeB, 65002, "10.0.0.1"), peer("10.0.0.3", nodeC, 64512, "10.0.0.1")})
	})
	t.Run("both families when both nodes have them", func(t *testing.T) {
		nodes := selNodes()
		n := nodes[nodeC]
		n.V6 = pfx("fd00::3/64")
		nodes[nodeC] = n
		cfg, _, _ := Build(Inputs{Self: nodeC, Nodes: nodes, Configs: []v3.BGPConfiguration{meshOff()}, Peers: []v3.BGPPeer{bgpPeer("rr", v3.BGPPeerSpec{NodeSelector: "role == 'worker'", PeerSelector: "role == 'worker'"})}})
		want := []Peer{peer("10.0.0.2", nodeB, 65002, "10.0.0.3"), peer("fd00::2", nodeB, 65002, "fd00::3")}
		wantPeers(t, cfg.Peers, want)
	})
	t.Run("sourceAddress None", func(t *testing.T) {
		got := run(nodeA, v3.BGPPeerSpec{PeerSelector: "role == 'worker'", SourceAddress: v3.SourceAddressNone})
		want := []Peer{peer("10.0.0.2", nodeB, 65002, ""), peer("10.0.0.3", nodeC, 64512, "")}
		wantPeers(t, got, want)
	})
	t.Run("session options apply to every selected node", func(t *testing.T) {
		got := run(nodeA, v3.BGPPeerSpec{
			PeerSelector: "role == 'worker'", Password: secretRef("bgp", "rr"), MaxRestartTime: dur(10 * time.Second),
			TTLSecurity: ptr(uint8(1)), KeepOriginalNextHop: true, NumAllowedLocalASNumbers: ptr(int32(2)),
		})
		want := []Peer{peer("10.0.0.2", nodeB, 65002, "10.0.0.1"), peer("10.0.0.3", nodeC, 64512, "10.0.0.1")}
		for i := range want {
			want[i].Password, want[i].RestartTime, want[i].TTLMin, want[i].KeepNextHop, want[i].AllowOwnAS = "pw", 10*time.Second, 255, true, 2
		}
		wantPeers(t, got, want)
	})
}

// --- route reflection ---------------------------------------------------------

func TestBuildRouteReflection(t *testing.T) {
	nodes := nodeMap(
		mkNode(nodeA, "10.0.0.1/24", "", map[string]string{"rr": "yes"}, AnnotationClusterID, "1.0.0.1"),
		mkNode(nodeB, "10.0.0.2/24", "", map[string]string{"rr": "yes"}, AnnotationClusterID, "1.0.0.1"),
		mkNode(nodeC, "10.0.0.3/24", "", map[string]string{"rr": "yes"}, AnnotationClusterID, "1.0.0.2"),
		mkNode(nodeD, "10.0.0.4/24", "fd00::4/64", nil),
		mkNode(nodeE, "10.0.0.5/24", "", nil, AnnotationClusterID, "not-an-ip"),
	)
	peers := []v3.BGPPeer{
		bgpPeer("to-rr", v3.BGPPeerSpec{NodeSelector: "!has(rr)", PeerSelector: "has(rr)"}),
		bgpPeer("rr-mesh", v3.BGPPeerSpec{NodeSelector: "has(rr)", PeerSelector: "has(rr)"}),
		bgpPeer("tor", v3.BGPPeerSpec{PeerIP: "192.0.2.1", ASNumber: 64512}),
	}
	for _, tc := range []struct {
		name    string
		self    string
		cluster string
		client  map[string]bool // peer address -> RRClient
	}{
		{
			name: "reflector: clients are the peers without its cluster ID", self: nodeA, cluster: "1.0.0.1",
			client: map[string]bool{
				"10.0.0.2":  false, // same cluster: not a client
				"10.0.0.3":  true,  // another cluster's reflector
				"10.0.0.4":  true,  // a plain node
				"10.0.0.5":  true,  // an invalid cluster ID is none
				"192.0.2.1": false, // peerIP peers are never clients
			},
		},
		{
			name: "plain node: never a reflector", self: nodeD,
			client: map[string]bool{"10.0.0.1": false, "10.0.0.2": false, "10.0.0.3": false, "192.0.2.1": false},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, _ := Build(validInputs(t, Inputs{Self: tc.self, Nodes: nodes, Configs: []v3.BGPConfiguration{meshOff()}, Peers: peers}))
			if cfg.ClusterID != ip(tc.cluster) {
				t.Errorf("ClusterID = %v, want %q", cfg.ClusterID, tc.cluster)
			}
			got := map[string]bool{}
			for _, p := range cfg.Peers {
				got[p.Addr.String()] = p.RRClient
			}
			if !reflect.DeepEqual(got, tc.client) {
				t.Errorf("RRClient by peer = %v, want %v", got, tc.client)
			}
		})
	}
}

// --- duplicates ---------------------------------------------------------------

func TestBuildDuplicatePeers(t *testing.T) {
	nodes := nodeMap(
		mkNode(nodeA, "10.0.0.1/24", "", map[string]string{"x": "1"}),
		mkNode(nodeB, "10.0.0.2/24", "", map[string]string{"x": "1"}, AnnotationASNumber, "65002"),
	)
	t.Run("mesh and BGPPeer peerIP: the mesh's session", func(t *testing.T) {
		cfg, _, probs := Build(validInputs(t, Inputs{Self: nodeA, Nodes: nodes, Peers: []v3.BGPPeer{
			bgpPeer("to-b", v3.BGPPeerSpec{PeerIP: "10.0.0.2:1179", ASNumber: 65099, TTLSecurity: ptr(uint8(1))}),
		}}))
		wantProblems(t, probs)
		wantPeers(t, cfg.Peers, []Peer{meshPeer("10.0.0.2", nodeB, 65002, "10.0.0.1")})
	})
	t.Run("mesh and BGPPeer peerSelector: the mesh's session", func(t *testing.T) {
		cfg, _, _ := Build(validInputs(t, Inputs{Self: nodeA, Nodes: nodes, Peers: []v3.BGPPeer{
			bgpPeer("sel", v3.BGPPeerSpec{PeerSelector: "has(x)", Password: secretRef("s", "k")}),
		}, Secret: secrets(map[string]string{"s/k": "pw"})}))
		wantPeers(t, cfg.Peers, []Peer{meshPeer("10.0.0.2", nodeB, 65002, "10.0.0.1")})
	})
	t.Run("two BGPPeers: the first by name", func(t *testing.T) {
		first := bgpPeer("a-tor", v3.BGPPeerSpec{PeerIP: "192.0.2.1", ASNumber: 65001})
		second := bgpPeer("b-tor", v3.BGPPeerSpec{PeerIP: "192.0.2.1:1179", ASNumber: 65002, SourceAddress: v3.SourceAddressNone})
		for _, order := range [][]v3.BGPPeer{{first, second}, {second, first}} {
			cfg, _, probs := Build(validInputs(t, Inputs{Self: nodeA, Nodes: nodes, Configs: []v3.BGPConfiguration{meshOff()}, Peers: order}))
			wantProblems(t, probs)
			wantPeers(t, cfg.Peers, []Peer{{
				Addr: ip("192.0.2.1"), ASN: 65001, LocalASN: 64512, Origin: "BGPPeer a-tor", LocalAddr: ip("10.0.0.1"), RestartTime: 120 * time.Second,
			}})
		}
	})
	t.Run("peerIP and peerSelector BGPPeers for one node: the first by name", func(t *testing.T) {
		byIP := bgpPeer("z-by-ip", v3.BGPPeerSpec{PeerIP: "10.0.0.2", ASNumber: 65099})
		bySel := bgpPeer("m-by-selector", v3.BGPPeerSpec{PeerSelector: "has(x)"})
		cfg, _, _ := Build(validInputs(t, Inputs{Self: nodeA, Nodes: nodes, Configs: []v3.BGPConfiguration{meshOff()}, Peers: []v3.BGPPeer{byIP, bySel}}))
		if len(cfg.Peers) != 1 || cfg.Peers[0].Origin != "BGPPeer m-by-selector" || cfg.Peers[0].ASN != 65002 {
			t.Errorf("peers = %s", fmtPeers(cfg.Peers))
		}
	})
}

// --- BGPFilter ------------------------------------------------------------------

func TestFilterRules(t *testing.T) {
	i32 := func(v int32) *int32 { return &v }
	for _, tc := range []struct {
		name string
		spec v3.BGPFilterSpec
		imp  []Rule
		exp  []Rule
	}{
		{
			name: "Equal: exactly the CIDR, masked",
			spec: v3.BGPFilterSpec{ImportV4: []v3.BGPFilterRuleV4{{CIDR: "10.1.2.3/16", MatchOperator: v3.MatchOperatorEqual, Action: v3.Accept}}},
			imp:  []Rule{{Prefix: pfx("10.1.0.0/16"), Min: 16, Max: 16, Family: 4, Accept: true, Filter: "f"}},
		},
		{
			name: "NotEqual",
			spec: v3.BGPFilterSpec{ImportV4: []v3.BGPFilterRuleV4{{CIDR: "10.1.0.0/16", MatchOperator: v3.MatchOperatorNotEqual, Action: v3.Reject}}},
			imp:  []Rule{{Prefix: pfx("10.1.0.0/16"), Min: 16, Max: 16, Invert: true, Family: 4, Filter: "f"}},
		},
		{
			name: "In: the CIDR and everything inside",
			spec: v3.BGPFilterSpec{ExportV4: []v3.BGPFilterRuleV4{{CIDR: "10.0.0.0/8", MatchOperator: v3.MatchOperatorIn, Action: v3.Reject}}},
			exp:  []Rule{{Prefix: pfx("10.0.0.0/8"), Min: 8, Max: 32, Family: 4, Filter: "f"}},
		},
		{
			name: "NotIn",
			spec: v3.BGPFilterSpec{ExportV4: []v3.BGPFilterRuleV4{{CIDR: "10.0.0.0/8", MatchOperator: v3.MatchOperatorNotIn, Action: v3.Accept}}},
			exp:  []Rule{{Prefix: pfx("10.0.0.0/8"), Min: 8, Max: 32, Invert: true, Family: 4, Accept: true, Filter: "f"}},
		},
		{
			name: "In with prefixLength min",
			spec: v3.BGPFilterSpec{ImportV4: []v3.BGPFilterRuleV4{{CIDR: "55.0.0.0/16", MatchOperator: v3.MatchOperatorIn, PrefixLength: &v3.BGPFilterPrefixLengthV4{Min: i32(30)}, Action: v3.Accept}}},
			imp:  []Rule{{Prefix: pfx("55.0.0.0/16"), Min: 30, Max: 32, Family: 4, Accept: true, Filter: "f"}},
		},
		{
			name: "In with prefixLength max",
			spec: v3.BGPFilterSpec{ImportV4: []v3.BGPFilterRuleV4{{CIDR: "55.0.0.0/16", MatchOperator: v3.MatchOperatorIn, PrefixLength: &v3.BGPFilterPrefixLengthV4{Max: i32(24)}, Action: v3.Accept}}},
			imp:  []Rule{{Prefix: pfx("55.0.0.0/16"), Min: 16, Max: 24, Family: 4, Accept: true, Filter: "f"}},
		},
		{
			name: "In with prefixLength min and max",
			spec: v3.BGPFilterSpec{ImportV4: []v3.BGPFilterRuleV4{{CIDR: "55.0.0.0/16", MatchOperator: v3.MatchOperatorNotIn, PrefixLength: &v3.BGPFilterPrefixLengthV4{Min: i32(20), Max: i32(28)}, Action: v3.Reject}}},
			imp:  []Rule{{Prefix: pfx("55.0.0.0/16"), Min: 20, Max: 28, Invert: true, Family: 4, Filter: "f"}},
		},
		{
			name: "source RemotePeers without CIDR",
			spec: v3.BGPFilterSpec{ExportV6: []v3.BGPFilterRuleV6{{Source: v3.BGPFilterSourceRemotePeers, Action: v3.Reject}}},
			exp:  []Rule{{RemoteOnly: true, Family: 6, Filter: "f"}},
		},
		{
			name: "source RemotePeers with CIDR",
			spec: v3.BGPFilterSpec{ExportV4: []v3.BGPFilterRuleV4{{CIDR: "77.0.0.0/16", MatchOperator: v3.MatchOperatorIn, Source: v3.BGPFilterSourceRemotePeers, Action: v3.Accept}}},
			exp:  []Rule{{Prefix: pfx("77.0.0.0/16"), Min: 16, Max: 32, RemoteOnly: true, Family: 4, Accept: true, Filter: "f"}},
		},
		{
			name: "catch-all",
			spec: v3.BGPFilterSpec{ImportV4: []v3.BGPFilterRuleV4{{Action: v3.Reject}}},
			imp:  []Rule{{Family: 4, Filter: "f"}},
		},
		{
			name: "interface rule: vecnet originates no interface routes, left out",
			spec: v3.BGPFilterSpec{ExportV4: []v3.BGPFilterRuleV4{{Interface: "*.calico", Action: v3.Reject}}},
			exp:  nil,
		},
		{
			name: "IPv6 In",
			spec: v3.BGPFilterSpec{ImportV6: []v3.BGPFilterRuleV6{{CIDR: "2001:db8::/32", MatchOperator: v3.MatchOperatorIn, Action: v3.Accept}}},
			imp:  []Rule{{Prefix: pfx("2001:db8::/32"), Min: 32, Max: 128, Family: 6, Accept: true, Filter: "f"}},
		},
		{
			name: "IPv6 Equal, masked",
			spec: v3.BGPFilterSpec{ImportV6: []v3.BGPFilterRuleV6{{CIDR: "5000::1/64", MatchOperator: v3.MatchOperatorEqual, Action: v3.Accept}}},
			imp:  []Rule{{Prefix: pfx("5000::/64"), Min: 64, Max: 64, Family: 6, Accept: true, Filter: "f"}},
		},
		{
			name: "IPv6 In with prefixLength",
			spec: v3.BGPFilterSpec{ExportV6: []v3.BGPFilterRuleV6{{CIDR: "2001:db8::/32", MatchOperator: v3.MatchOperatorIn, PrefixLength: &v3.BGPFilterPrefixLengthV6{Min: i32(48), Max: i32(64)}, Action: v3.Reject}}},
			exp:  []Rule{{Prefix: pfx("2001:db8::/32"), Min: 48, Max: 64, Family: 6, Filter: "f"}},
		},
		{
			name: "order: v4 then v6 rules, each in order, indexes per list",
			spec: v3.BGPFilterSpec{
				ImportV4: []v3.BGPFilterRuleV4{
					{CIDR: "10.0.0.0/8", MatchOperator: v3.MatchOperatorIn, Action: v3.Accept},
					{Action: v3.Reject},
				},
				ImportV6: []v3.BGPFilterRuleV6{{CIDR: "fd00::/8", MatchOperator: v3.MatchOperatorIn, Action: v3.Accept}},
				ExportV6: []v3.BGPFilterRuleV6{
					{CIDR: "fd00::/8", MatchOperator: v3.MatchOperatorNotIn, Action: v3.Reject},
					{Action: v3.Accept},
				},
				ExportV4: []v3.BGPFilterRuleV4{{Source: v3.BGPFilterSourceRemotePeers, Action: v3.Reject}},
			},
			imp: []Rule{
				{Prefix: pfx("10.0.0.0/8"), Min: 8, Max: 32, Family: 4, Accept: true, Filter: "f", Index: 0},
				{Family: 4, Filter: "f", Index: 1},
				{Prefix: pfx("fd00::/8"), Min: 8, Max: 128, Family: 6, Accept: true, Filter: "f", Index: 0},
			},
			exp: []Rule{
				{RemoteOnly: true, Family: 4, Filter: "f", Index: 0},
				{Prefix: pfx("fd00::/8"), Min: 8, Max: 128, Invert: true, Family: 6, Filter: "f", Index: 0},
				{Family: 6, Accept: true, Filter: "f", Index: 1},
			},
		},
		// prefixLength can leave no length in the range (Validate allows
		// max below the CIDR's length, and min above it with Equal): the
		// match is empty. A rule whose match is empty never decides; its
		// negation matches every route of the family. Either way Min <= Max.
		{
			name: "In with max below the CIDR's length matches nothing",
			spec: v3.BGPFilterSpec{ImportV4: []v3.BGPFilterRuleV4{
				{CIDR: "10.0.0.0/16", MatchOperator: v3.MatchOperatorIn, PrefixLength: &v3.BGPFilterPrefixLengthV4{Max: i32(8)}, Action: v3.Reject},
				{Action: v3.Accept},
			}},
			imp: []Rule{{Family: 4, Accept: true, Filter: "f", Index: 1}},
		},
		{
			name: "NotIn with max below the CIDR's length matches everything",
			spec: v3.BGPFilterSpec{ImportV4: []v3.BGPFilterRuleV4{{CIDR: "10.0.0.0/16", MatchOperator: v3.MatchOperatorNotIn, PrefixLength: &v3.BGPFilterPrefixLengthV4{Max: i32(8)}, Source: v3.BGPFilterSourceRemotePeers, Action: v3.Reject}}},
			imp:  []Rule{{Family: 4, RemoteOnly: true, Filter: "f"}},
		},
		{
			name: "Equal with min above the CIDR's length matches nothing",
			spec: v3.BGPFilterSpec{ExportV6: []v3.BGPFilterRuleV6{{CIDR: "2001:db8::/32", MatchOperator: v3.MatchOperatorEqual, PrefixLength: &v3.BGPFilterPrefixLengthV6{Min: i32(48)}, Action: v3.Reject}}},
		},
		{
			name: "NotEqual with min above the CIDR's length matches everything",
			spec: v3.BGPFilterSpec{ExportV6: []v3.BGPFilterRuleV6{{CIDR: "2001:db8::/32", MatchOperator: v3.MatchOperatorNotEqual, PrefixLength: &v3.BGPFilterPrefixLengthV6{Min: i32(48)}, Action: v3.Accept}}},
			exp:  []Rule{{Family: 6, Accept: true, Filter: "f"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := bgpFilter("f", tc.spec)
			mustValid(t, &f)
			imp, exp := filterRules(&f)
			if !reflect.DeepEqual(imp, tc.imp) {
				t.Errorf("import rules\n got %+v\nwant %+v", imp, tc.imp)
			}
			if !reflect.DeepEqual(exp, tc.exp) {
				t.Errorf("export rules\n got %+v\nwant %+v", exp, tc.exp)
			}
			for _, r := range append(imp, exp...) {
				if r.Min > r.Max {
					t.Errorf("rule %s: Min %d > Max %d", r, r.Min, r.Max)
				}
			}
		})
	}
}

func TestBuildFilters(t *testing.T) {
	nodes := nodeMap(mkNode(nodeA, "10.0.0.1/24", "", map[string]string{"x": "1"}), mkNode(nodeB, "10.0.0.2/24", "", map[string]string{"x": "1"}))
	f1 := bgpFilter("f1", v3.BGPFilterSpec{
		ImportV4: []v3.BGPFilterRuleV4{{CIDR: "10.1.0.0/16", MatchOperator: v3.MatchOperatorIn, Action: v3.Reject}},
		ExportV4: []v3.BGPFilterRuleV4{{CIDR: "10.2.0.0/16", MatchOperator: v3.MatchOperatorEqual, Action: v3.Accept}},
	})
	f2 := bgpFilter("f2", v3.BGPFilterSpec{
		ImportV4: []v3.BGPFilterRuleV4{{Action: v3.Accept}},
		ExportV6: []v3.BGPFilterRuleV6{{Action: v3.Reject}},
	})
	r1i := Rule{Prefix: pfx("10.1.0.0/16"), Min: 16, Max: 32, Family: 4, Filter: "f1"}
	r1e := Rule{Prefix: pfx("10.2.0.0/16"), Min: 16, Max: 16, Family: 4, Accept: true, Filter: "f1"}
	r2i := Rule{Family: 4, Accept: true, Filter: "f2"}
	r2e := Rule{Family: 6, Filter: "f2"}
	build := func(peers ...v3.BGPPeer) (Config, []Problem) {
		t.Helper()
		cfg, _, probs := Build(validInputs(t, Inputs{Self: nodeA, Nodes: nodes, Configs: []v3.BGPConfiguration{meshOff()}, Peers: peers, Filters: []v3.BGPFilter{f2, f1}}))
		return cfg, probs
	}
	t.Run("filters in spec.filters order", func(t *testing.T) {
		cfg, probs := build(bgpPeer("p", v3.BGPPeerSpec{PeerIP: "192.0.2.1", ASNumber: 65000, Filters: []string{"f2", "f1"}}))
		wantProblems(t, probs)
		p, ok := findPeer(cfg, "192.0.2.1")
		if !ok {
			t.Fatal("no peer")
		}
		if want := []Rule{r2i, r1i}; !reflect.DeepEqual(p.Import, want) {
			t.Errorf("import %v, want %v", p.Import, want)
		}
		if want := []Rule{r2e, r1e}; !reflect.DeepEqual(p.Export, want) {
			t.Errorf("export %v, want %v", p.Export, want)
		}
	})
	t.Run("peerSelector sessions get the filters too", func(t *testing.T) {
		cfg, probs := build(bgpPeer("p", v3.BGPPeerSpec{PeerSelector: "has(x)", Filters: []string{"f1"}}))
		wantProblems(t, probs)
		p, ok := findPeer(cfg, "10.0.0.2")
		if !ok || !reflect.DeepEqual(p.Import, []Rule{r1i}) || !reflect.DeepEqual(p.Export, []Rule{r1e}) {
			t.Errorf("peer %+v", p)
		}
	})
	t.Run("no filters: no rules", func(t *testing.T) {
		cfg, _ := build(bgpPeer("p", v3.BGPPeerSpec{PeerIP: "192.0.2.1", ASNumber: 65000}))
		if p, _ := findPeer(cfg, "192.0.2.1"); len(p.Import) != 0 || len(p.Export) != 0 {
			t.Errorf("rules on an unfiltered peer: %+v", p)
		}
	})
	t.Run("a missing filter leaves the peer out", func(t *testing.T) {
		cfg, probs := build(
			bgpPeer("p", v3.BGPPeerSpec{PeerIP: "192.0.2.1", ASNumber: 65000, Filters: []string{"f1", "missing"}}),
			bgpPeer("q", v3.BGPPeerSpec{PeerIP: "192.0.2.2", ASNumber: 65000}),
			bgpPeer("s", v3.BGPPeerSpec{PeerSelector: "has(x)", Filters: []string{"missing"}}),
		)
		wantProblems(t, probs, "BGPPeer/p/spec.filters", "BGPPeer/s/spec.filters")
		for _, p := range probs {
			if !strings.Contains(p.Message, "missing") {
				t.Errorf("problem %v does not name the filter", p)
			}
		}
		if got := peerAddrs(cfg.Peers); !slices.Equal(got, []string{"192.0.2.2"}) {
			t.Errorf("peers = %v, want only 192.0.2.2", got)
		}
	})
	t.Run("a missing filter of a BGPPeer for other nodes is not this node's problem", func(t *testing.T) {
		_, probs := build(bgpPeer("p", v3.BGPPeerSpec{Node: nodeB, PeerIP: "192.0.2.1", ASNumber: 65000, Filters: []string{"missing"}}))
		wantProblems(t, probs)
	})
}

// --- advertisements -------------------------------------------------------------

func comm(a, n uint32) uint32 { return a<<16 | n }

func TestBuildServices(t *testing.T) {
	spec := v3.BGPConfigurationSpec{
		ServiceClusterIPs:      []v3.ServiceClusterIPBlock{{CIDR: "10.96.0.0/12"}, {CIDR: "fd00:96::/112"}},
		ServiceExternalIPs:     []v3.ServiceExternalIPBlock{{CIDR: "192.0.2.7/24"}, {CIDR: "10.96.0.0/16"}, {CIDR: "10.96.0.0/12"}},
		ServiceLoadBalancerIPs: []v3.ServiceLoadBalancerIPBlock{{CIDR: "10.96.0.0/12"}, {CIDR: "198.51.100.0/24"}, {CIDR: "192.0.2.0/24"}},
	}
	want := []netip.Prefix{pfx("10.96.0.0/12"), pfx("10.96.0.0/16"), pfx("192.0.2.0/24"), pfx("198.51.100.0/24"), pfx("fd00:96::/112")}
	nodes := nodeMap(mkNode(nodeA, "10.0.0.1/24", "", nil))
	_, adv, probs := Build(validInputs(t, Inputs{Self: nodeA, Nodes: nodes, Configs: []v3.BGPConfiguration{bgpConfig("default", spec)}}))
	wantProblems(t, probs)
	if !slices.Equal(adv.Services, want) {
		t.Errorf("services = %v, want %v", adv.Services, want)
	}
	// Any order of the same blocks gives the same list (no churn when a
	// list is reordered).
	rev := spec
	rev.ServiceClusterIPs = slices.Clone(spec.ServiceClusterIPs)
	rev.ServiceExternalIPs = slices.Clone(spec.ServiceExternalIPs)
	rev.ServiceLoadBalancerIPs = slices.Clone(spec.ServiceLoadBalancerIPs)
	slices.Reverse(rev.ServiceClusterIPs)
	slices.Reverse(rev.ServiceExternalIPs)
	slices.Reverse(rev.ServiceLoadBalancerIPs)
	_, adv, _ = Build(Inputs{Self: nodeA, Nodes: nodes, Configs: []v3.BGPConfiguration{bgpConfig("default", rev)}})
	if !slices.Equal(adv.Services, want) {
		t.Errorf("services (reversed input) = %v, want %v", adv.Services, want)
	}
	// Only the default object's.
	_, adv, _ = Build(Inputs{Self: nodeA, Nodes: nodes, Configs: []v3.BGPConfiguration{bgpConfig("node."+nodeA, spec)}})
	if len(adv.Services) != 0 {
		t.Errorf("services from the node object: %v", adv.Services)
	}
}

// The regression case of the service sort: equal addresses with
// different lengths must not keep a duplicate apart.
func TestAdvertisementsServicesDeduplicated(t *testing.T) {
	adv, probs := advertisements(v3.BGPConfigurationSpec{
		ServiceClusterIPs:      []v3.ServiceClusterIPBlock{{CIDR: "10.0.0.0/8"}},
		ServiceExternalIPs:     []v3.ServiceExternalIPBlock{{CIDR: "10.0.0.0/16"}},
		ServiceLoadBalancerIPs: []v3.ServiceLoadBalancerIPBlock{{CIDR: "10.0.0.0/8"}, {CIDR: "10.255.0.0/8"}},
	})
	wantProblems(t, probs)
	if want := []netip.Prefix{pfx("10.0.0.0/8"), pfx("10.0.0.0/16")}; !slices.Equal(adv.Services, want) {
		t.Errorf("services = %v, want %v", adv.Services, want)
	}
}

func TestBuildCommunities(t *testing.T) {
	spec := v3.BGPConfigurationSpec{
		Communities: []v3.Community{
			{Name: "site", Value: "65000:100"},
			{Name: "large-site", Value: "65000:1:2"},
			{Name: "dup", Value: "65000:100"},
		},
		PrefixAdvertisements: []v3.PrefixAdvertisement{
			{CIDR: "10.0.0.0/8", Communities: []string{"site", "65000:200"}},
			{CIDR: "10.1.2.3/16", Communities: []string{"dup", "large-site", "1:2:3", "65000:1:2"}},
			{CIDR: "2001:db8::/32", Communities: []string{"65000:300", "large-site"}},
			{CIDR: "0.0.0.0/0", Communities: []string{"1:1"}},
			{CIDR: "::/0", Communities: []string{"6:6"}},
		},
	}
	in := validInputs(t, Inputs{Self: nodeA, Nodes: nodeMap(mkNode(nodeA, "10.0.0.1/24", "", nil)), Configs: []v3.BGPConfiguration{bgpConfig("default", spec)}})
	_, adv, probs := Build(in)
	wantProblems(t, probs)
	if len(adv.Communities) != 5 || adv.Communities[1].CIDR != pfx("10.1.0.0/16") {
		t.Fatalf("communities = %+v (want 5 entries, CIDRs masked)", adv.Communities)
	}
	for _, tc := range []struct {
		prefix string
		std    []uint32
		large  [][3]uint32
	}{
		{prefix: "10.1.2.0/26", std: []uint32{comm(1, 1), comm(65000, 100), comm(65000, 200)}, large: [][3]uint32{{1, 2, 3}, {65000, 1, 2}}},
		{prefix: "10.1.0.0/16", std: []uint32{comm(1, 1), comm(65000, 100), comm(65000, 200)}, large: [][3]uint32{{1, 2, 3}, {65000, 1, 2}}},
		{prefix: "10.2.0.0/26", std: []uint32{comm(1, 1), comm(65000, 100), comm(65000, 200)}},
		{prefix: "10.0.0.0/8", std: []uint32{comm(1, 1), comm(65000, 100), comm(65000, 200)}},
		// Shorter than the entries: only 0.0.0.0/0 contains it.
		{prefix: "10.0.0.0/7", std: []uint32{comm(1, 1)}},
		{prefix: "192.0.2.0/24", std: []uint32{comm(1, 1)}},
		{prefix: "2001:db8:1::/64", std: []uint32{comm(6, 6), comm(65000, 300)}, large: [][3]uint32{{65000, 1, 2}}},
		{prefix: "2001:db9::/64", std: []uint32{comm(6, 6)}},
		{prefix: "2001:db8::/31", std: []uint32{comm(6, 6)}},
	} {
		t.Run(tc.prefix, func(t *testing.T) {
			o := adv.Decorate(pfx(tc.prefix))
			want := Origin{Prefix: pfx(tc.prefix), Communities: tc.std, Large: tc.large}
			if !o.Equal(want) {
				t.Errorf("Decorate = %+v, want %+v", o, want)
			}
		})
	}
	// Decorate gives the same result whatever the entries' order.
	rev := spec
	rev.PrefixAdvertisements = slices.Clone(spec.PrefixAdvertisements)
	slices.Reverse(rev.PrefixAdvertisements)
	in.Configs = []v3.BGPConfiguration{bgpConfig("default", rev)}
	_, adv2, _ := Build(in)
	for _, p := range []string{"10.1.2.0/26", "2001:db8:1::/64"} {
		if a, b := adv.Decorate(pfx(p)), adv2.Decorate(pfx(p)); !a.Equal(b) {
			t.Errorf("Decorate(%s) depends on the entries' order: %+v vs %+v", p, a, b)
		}
	}
}

func TestDecorateNoEntries(t *testing.T) {
	var a Advertise
	o := a.Decorate(pfx("10.0.0.0/26"))
	if !o.Equal(Origin{Prefix: pfx("10.0.0.0/26")}) || len(o.Communities) != 0 || len(o.Large) != 0 {
		t.Errorf("Decorate = %+v", o)
	}
}

// Build checks what it uses even if Validate should have caught it: the
// field path names the bad value; the rest of the entry applies.
func TestAdvertisementsProblems(t *testing.T) {
	adv, probs := advertisements(v3.BGPConfigurationSpec{
		Communities:       []v3.Community{{Name: "bad", Value: "70000:1"}},
		ServiceClusterIPs: []v3.ServiceClusterIPBlock{{CIDR: "10.96.0.0/12"}, {CIDR: "nope"}},
		PrefixAdvertisements: []v3.PrefixAdvertisement{
			{CIDR: "10.0.0.0/8", Communities: []string{"1:1", "65536:1", "bad", "2:2"}},
			{CIDR: "garbage", Communities: []string{"3:3"}},
		},
	})
	wantProblems(t, probs,
		"BGPConfiguration/default/spec.serviceClusterIPs[1].cidr",
		"BGPConfiguration/default/spec.prefixAdvertisements[0].communities[1]",
		"BGPConfiguration/default/spec.prefixAdvertisements[0].communities[2]",
		"BGPConfiguration/default/spec.prefixAdvertisements[1].cidr",
	)
	if !slices.Equal(adv.Services, []netip.Prefix{pfx("10.96.0.0/12")}) {
		t.Errorf("services = %v", adv.Services)
	}
	o := adv.Decorate(pfx("10.0.0.0/24"))
	if !slices.Equal(o.Communities, []uint32{comm(1, 1), comm(2, 2)}) {
		t.Errorf("communities = %v, want the valid ones", o.Communities)
	}
}

func TestParseCommunity(t *testing.T) {
	for _, tc := range []struct {
		in    string
		std   uint32
		large *[3]uint32
		err   bool
	}{
		{in: "0:0", std: 0},
		{in: "65000:100", std: 65000<<16 | 100},
		{in: "65535:65535", std: 0xffffffff},
		{in: "1:2", std: 1<<16 | 2},
		{in: "007:08", std: 7<<16 | 8},
		{in: "1:2:3", large: &[3]uint32{1, 2, 3}},
		{in: "0:0:0", large: &[3]uint32{}},
		{in: "4294967295:4294967295:4294967295", large: &[3]uint32{4294967295, 4294967295, 4294967295}},
		{in: "65000:1:2", large: &[3]uint32{65000, 1, 2}},
		{in: "65536:1", err: true},
		{in: "1:65536", err: true},
		{in: "4294967296:1:1", err: true},
		{in: "1:4294967296:1", err: true},
		{in: "1:1:4294967296", err: true},
		{in: "1:2:3:4", err: true},
		{in: "", err: true},
		{in: "1", err: true},
		{in: ":", err: true},
		{in: "1:", err: true},
		{in: ":1", err: true},
		{in: "1::2", err: true},
		{in: "a:b", err: true},
		{in: "-1:2", err: true},
		{in: "+1:2", err: true},
		{in: " 1:2", err: true},
		{in: "1:2 ", err: true},
		{in: "1.5:2", err: true},
		{in: "0x10:1", err: true},
		{in: "site", err: true},
	} {
		std, large, err := ParseCommunity(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("ParseCommunity(%q) error = %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if err != nil {
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", tc.in)) {
				t.Errorf("ParseCommunity(%q) error %q does not quote the value", tc.in, err)
			}
			continue
		}
		if std != tc.std || !reflect.DeepEqual(large, tc.large) {
			t.Errorf("ParseCommunity(%q) = %d, %v; want %d, %v", tc.in, std, large, tc.std, tc.large)
		}
	}
}

// --- whole-cluster behaviour ----------------------------------------------------

// Build depends on the objects, not on the order the informers list them.
func TestBuildOrderIndependent(t *testing.T) {
	asn := v3.ASNumber(65100)
	nodes := selNodes()
	configs := []v3.BGPConfiguration{
		bgpConfig("node."+nodeA, v3.BGPConfigurationSpec{LogSeverityScreen: "Debug"}),
		bgpConfig("default", v3.BGPConfigurationSpec{ASNumber: &asn, ServiceClusterIPs: []v3.ServiceClusterIPBlock{{CIDR: "10.96.0.0/12"}}}),
	}
	peers := []v3.BGPPeer{
		bgpPeer("z", v3.BGPPeerSpec{PeerSelector: "role == 'worker'", Filters: []string{"f1", "f2"}}),
		bgpPeer("a", v3.BGPPeerSpec{PeerIP: "10.0.0.2", ASNumber: 65099}),
		bgpPeer("m", v3.BGPPeerSpec{PeerIP: "192.0.2.1", ASNumber: 65000, Filters: []string{"f2"}}),
	}
	filters := []v3.BGPFilter{
		bgpFilter("f1", v3.BGPFilterSpec{ImportV4: []v3.BGPFilterRuleV4{{CIDR: "10.0.0.0/8", MatchOperator: v3.MatchOperatorIn, Action: v3.Accept}}}),
		bgpFilter("f2", v3.BGPFilterSpec{ExportV4: []v3.BGPFilterRuleV4{{Action: v3.Reject}}}),
	}
	in := validInputs(t, Inputs{Self: nodeA, Nodes: nodes, Configs: configs, Peers: peers, Filters: filters})
	cfg1, adv1, probs1 := Build(in)
	in.Configs, in.Peers, in.Filters = slices.Clone(configs), slices.Clone(peers), slices.Clone(filters)
	slices.Reverse(in.Configs)
	slices.Reverse(in.Peers)
	slices.Reverse(in.Filters)
	for range 5 {
		cfg2, adv2, probs2 := Build(in)
		if !reflect.DeepEqual(cfg1, cfg2) || !reflect.DeepEqual(adv1, adv2) || !reflect.DeepEqual(probs1, probs2) {
			t.Fatalf("results differ:\n%+v\n%+v", cfg1, cfg2)
		}
	}
	if cfg1.LogLevel != "Debug" || cfg1.ASN != 65100 {
		t.Errorf("globals: %+v", cfg1)
	}
	// Mesh (default on) wins for 10.0.0.2 over BGPPeer "a"; "z" adds nothing
	// the mesh does not have, so only 192.0.2.1 carries filters.
	for _, p := range cfg1.Peers {
		switch {
		case p.Addr == ip("192.0.2.1"):
			if p.Origin != "BGPPeer m" || len(p.Export) != 1 {
				t.Errorf("peer %+v", p)
			}
		case p.Origin != "mesh":
			t.Errorf("peer %+v, want the mesh's", p)
		}
	}
	// The inputs are not modified.
	if !reflect.DeepEqual(in.Peers[0], peers[2]) || in.Peers[0].Name != "m" {
		t.Errorf("Build reordered its input")
	}
}

func TestProblemError(t *testing.T) {
	for _, tc := range []struct {
		p    Problem
		want string
	}{
		{Problem{Kind: "BGPPeer", Name: "p", Field: "spec.filters", Message: `BGPFilter "x" does not exist`}, `BGPPeer p: spec.filters: BGPFilter "x" does not exist`},
		{Problem{Kind: "Node", Name: "n", Message: "this node has no Node object"}, "Node n: this node has no Node object"},
	} {
		if got := tc.p.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}

// TestFilterInterfaceRulesMatchNothing: interface rules select routes
// of the node's interfaces, which vecnet never originates; they must not
// turn into match-everything rules.
func TestFilterInterfaceRulesMatchNothing(t *testing.T) {
	f := &v3.BGPFilter{Spec: v3.BGPFilterSpec{
		ExportV4: []v3.BGPFilterRuleV4{{Interface: "eth*", Action: v3.Reject}, {CIDR: "10.0.0.0/8", MatchOperator: v3.MatchOperatorIn, Action: v3.Reject}},
		ImportV6: []v3.BGPFilterRuleV6{{Interface: "eth0", Action: v3.Reject}},
	}}
	f.Name = "ifc"
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	imp, exp := filterRules(f)
	if len(imp) != 0 || len(exp) != 1 || exp[0].Prefix.String() != "10.0.0.0/8" {
		t.Fatalf("import %v, export %v: want only the CIDR rule", imp, exp)
	}
}
