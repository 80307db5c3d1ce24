package v3

import (
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func pool(cidr string, f ...func(*IPPoolSpec)) *IPPool {
	p := &IPPool{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: IPPoolSpec{CIDR: cidr}}
	for _, g := range f {
		g(&p.Spec)
	}
	return p
}

// expectErr checks that err names each of the fields (and messages) given.
func expectErr(t *testing.T, what string, err error, wants ...string) {
	t.Helper()
	if len(wants) == 0 {
		if err != nil {
			t.Errorf("%s: unexpected error %v", what, err)
		}
		return
	}
	if err == nil {
		t.Errorf("%s: no error, want %q", what, wants)
		return
	}
	for _, w := range wants {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: error %q does not mention %q", what, err, w)
		}
	}
}

func TestIPPoolValidate(t *testing.T) {
	cases := []struct {
		name  string
		pool  *IPPool
		wants []string
	}{
		{"ok v4", pool("10.0.0.0/16"), nil},
		{"ok v6", pool("fd00::/48"), nil},
		{"ok /32 blocks", pool("10.0.0.0/24", func(s *IPPoolSpec) { s.BlockSize = 32 }), nil},
		{"bad cidr", pool("10.0.0.0"), []string{"spec.cidr"}},
		{"host bits (masked, as Calico does)", pool("10.0.0.1/16"), nil},
		{"link local", pool("169.254.0.0/24"), []string{"spec.cidr", "link-local"}},
		{"v4 block too big", pool("10.0.0.0/16", func(s *IPPoolSpec) { s.BlockSize = 19 }), []string{"spec.blockSize", "20..32"}},
		{"v4 block out of range", pool("10.0.0.0/16", func(s *IPPoolSpec) { s.BlockSize = 122 }), []string{"spec.blockSize", "20..32"}},
		{"v6 block", pool("fd00::/48", func(s *IPPoolSpec) { s.BlockSize = 26 }), []string{"spec.blockSize", "116..128"}},
		{"v6 block 115", pool("fd00::/48", func(s *IPPoolSpec) { s.BlockSize = 115 }), []string{"spec.blockSize"}},
		{"pool smaller than block", pool("10.0.0.0/28"), []string{"spec.blockSize", "do not fit"}},
		{"ipip v6", pool("fd00::/48", func(s *IPPoolSpec) { s.IPIPMode = IPIPModeAlways }), []string{"spec.ipipMode"}},
		{"both encaps", pool("10.0.0.0/16", func(s *IPPoolSpec) { s.IPIPMode = IPIPModeAlways; s.VXLANMode = VXLANModeCrossSubnet }), []string{"spec.vxlanMode", "both"}},
		{"bad vxlan", pool("10.0.0.0/16", func(s *IPPoolSpec) { s.VXLANMode = "Sometimes" }), []string{"spec.vxlanMode", "Sometimes"}},
		{"bad selector", pool("10.0.0.0/16", func(s *IPPoolSpec) { s.NodeSelector = "zone = 'a'" }), []string{"spec.nodeSelector"}},
		{"bad use", pool("10.0.0.0/16", func(s *IPPoolSpec) { s.AllowedUses = []IPPoolAllowedUse{"Pods"} }), []string{"spec.allowedUses[0]"}},
		{"lb mixed", pool("10.0.0.0/16", func(s *IPPoolSpec) {
			s.AllowedUses = []IPPoolAllowedUse{IPPoolAllowedUseLoadBalancer, IPPoolAllowedUseWorkload}
		}), []string{"spec.allowedUses", "LoadBalancer"}},
		{"bad mode", pool("10.0.0.0/16", func(s *IPPoolSpec) { m := AssignmentMode("Auto"); s.AssignmentMode = &m }), []string{"spec.assignmentMode"}},
		{"bad name", &IPPool{ObjectMeta: metav1.ObjectMeta{Name: "Pool_1"}, Spec: IPPoolSpec{CIDR: "10.0.0.0/16"}}, []string{"metadata.name"}},
		{"several", pool("10.0.0.0/16", func(s *IPPoolSpec) { s.BlockSize = 8; s.IPIPMode = "x" }), []string{"spec.blockSize", "spec.ipipMode"}},
	}
	for _, c := range cases {
		expectErr(t, c.name, c.pool.Validate(), c.wants...)
	}
	p := pool("fd00::/48")
	if p.Spec.EffectiveBlockSize() != 122 || pool("10.0.0.0/8").Spec.EffectiveBlockSize() != 26 {
		t.Error("EffectiveBlockSize defaults")
	}
	if !p.Spec.Allows(IPPoolAllowedUseTunnel) || p.Spec.Allows(IPPoolAllowedUseLoadBalancer) {
		t.Error("default allowedUses should be Workload and Tunnel")
	}
}

func TestBGPValidate(t *testing.T) {
	peer := func(f func(*BGPPeerSpec)) *BGPPeer {
		p := &BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "peer"}, Spec: BGPPeerSpec{PeerIP: "192.0.2.1", ASNumber: 64512}}
		f(&p.Spec)
		return p
	}
	for _, c := range []struct {
		name  string
		p     *BGPPeer
		wants []string
	}{
		{"ok", peer(func(*BGPPeerSpec) {}), nil},
		{"ok port", peer(func(s *BGPPeerSpec) { s.PeerIP = "[2001:db8::1]:1179" }), nil},
		{"bad ip", peer(func(s *BGPPeerSpec) { s.PeerIP = "192.0.2.300" }), []string{"spec.peerIP"}},
		{"node and selector", peer(func(s *BGPPeerSpec) { s.Node = "n1"; s.NodeSelector = "all()" }), []string{"spec.nodeSelector"}},
		{"peer selector and ip", peer(func(s *BGPPeerSpec) { s.PeerSelector = "has(rr)" }), []string{"spec.peerIP", "spec.asNumber"}},
		{"bad selector", peer(func(s *BGPPeerSpec) { s.NodeSelector = "has(" }), []string{"spec.nodeSelector"}},
		{"password", peer(func(s *BGPPeerSpec) { s.Password = &BGPPassword{SecretKeyRef: &corev1.SecretKeySelector{}} }),
			[]string{"spec.password.secretKeyRef.name", "spec.password.secretKeyRef.key"}},
		{"source", peer(func(s *BGPPeerSpec) { s.SourceAddress = "Node" }), []string{"spec.sourceAddress"}},
		{"reachable", peer(func(s *BGPPeerSpec) { s.ReachableBy = "gw" }), []string{"spec.reachableBy"}},
		{"filters", peer(func(s *BGPPeerSpec) { s.Filters = []string{"Bad Name"} }), []string{"spec.filters[0]"}},
		{"numAllowed", peer(func(s *BGPPeerSpec) { s.NumAllowedLocalASNumbers = ptr.To[int32](-1) }), []string{"spec.numAllowedLocalASNumbers"}},
	} {
		expectErr(t, c.name, c.p.Validate(), c.wants...)
	}
	a, port, err := (&BGPPeerSpec{PeerIP: "192.0.2.1:179"}).ParsePeerIP()
	if err != nil || a != netip.MustParseAddr("192.0.2.1") || port != 179 {
		t.Errorf("ParsePeerIP: %v %v %v", a, port, err)
	}

	cfg := func(f func(*BGPConfigurationSpec)) *BGPConfiguration {
		c := &BGPConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "default"}}
		f(&c.Spec)
		return c
	}
	for _, c := range []struct {
		name  string
		c     *BGPConfiguration
		wants []string
	}{
		{"ok", cfg(func(*BGPConfigurationSpec) {}), nil},
		{"log", cfg(func(s *BGPConfigurationSpec) { s.LogSeverityScreen = "Trace" }), []string{"spec.logSeverityScreen"}},
		{"cluster ips", cfg(func(s *BGPConfigurationSpec) { s.ServiceClusterIPs = []ServiceClusterIPBlock{{CIDR: "x"}} }), []string{"spec.serviceClusterIPs[0].cidr"}},
		{"community", cfg(func(s *BGPConfigurationSpec) { s.Communities = []Community{{Name: "c", Value: "70000:1"}} }), []string{"spec.communities[0].value"}},
		{"large community ok", cfg(func(s *BGPConfigurationSpec) { s.Communities = []Community{{Name: "c", Value: "70000:1:2"}} }), nil},
		{"prefix adv", cfg(func(s *BGPConfigurationSpec) {
			s.PrefixAdvertisements = []PrefixAdvertisement{{CIDR: "10.0.0.0/8", Communities: []string{"nope"}}}
		}), []string{"spec.prefixAdvertisements[0].communities[0]"}},
		{"bind", cfg(func(s *BGPConfigurationSpec) { m := BindMode("All"); s.BindMode = &m }), []string{"spec.bindMode"}},
		{"peering v4", cfg(func(s *BGPConfigurationSpec) { s.LocalWorkloadPeeringIPV4 = "fd00::1" }), []string{"spec.localWorkloadPeeringIPV4"}},
	} {
		expectErr(t, c.name, c.c.Validate(), c.wants...)
	}

	filter := &BGPFilter{ObjectMeta: metav1.ObjectMeta{Name: "f"}, Spec: BGPFilterSpec{
		ExportV4: []BGPFilterRuleV4{
			{Action: Accept, CIDR: "10.0.0.0/8", MatchOperator: MatchOperatorIn},
			{Action: "Drop"},
			{Action: Accept, CIDR: "fd00::/8", MatchOperator: MatchOperatorIn},
			{Action: Accept, CIDR: "10.0.0.0/8"},
			{Action: Accept, CIDR: "10.0.0.0/8", MatchOperator: MatchOperatorIn, PrefixLength: &BGPFilterPrefixLengthV4{Min: ptr.To[int32](4)}},
		},
		ImportV6: []BGPFilterRuleV6{{Action: Reject, Interface: "way-too-long-interface-name"}},
	}}
	expectErr(t, "filter", filter.Validate(), "spec.exportV4[1].action", "spec.exportV4[2].cidr", "spec.exportV4[3].matchOperator",
		"spec.exportV4[4].prefixLength.min", "spec.importV6[0].interface")
}

func TestIPAMObjectsValidate(t *testing.T) {
	cidr := netip.MustParsePrefix("10.0.0.0/30")
	one := 0
	h := "h"
	b := &IPAMBlock{ObjectMeta: metav1.ObjectMeta{Name: BlockName(cidr)}, Spec: IPAMBlockSpec{
		CIDR:        cidr.String(),
		Allocations: []*int{&one, nil, nil, nil},
		Unallocated: []int{1, 2, 3},
		Attributes:  []AllocationAttribute{{HandleID: &h}},
	}}
	expectErr(t, "block", b.Validate())
	b.Spec.Unallocated = []int{0, 1, 2, 3}
	expectErr(t, "block allocated and free", b.Validate(), "spec.unallocated[0]")
	b.Spec.Unallocated = []int{1, 2}
	expectErr(t, "block free list short", b.Validate(), "spec.unallocated")
	b.Spec.Unallocated = []int{1, 2, 3}
	b.Name = "wrong"
	expectErr(t, "block name", b.Validate(), "metadata.name", "10-0-0-0-30")

	a := &BlockAffinity{ObjectMeta: metav1.ObjectMeta{Name: BlockAffinityName("n1", cidr)}, Spec: BlockAffinitySpec{State: StateConfirmed, Node: "n1", CIDR: cidr.String()}}
	expectErr(t, "affinity", a.Validate())
	a.Spec.State = "done"
	expectErr(t, "affinity state", a.Validate(), "spec.state")

	hd := &IPAMHandle{ObjectMeta: metav1.ObjectMeta{Name: "h"}, Spec: IPAMHandleSpec{HandleID: "h", Block: map[string]int{"10.0.0.0/30": 1}}}
	expectErr(t, "handle", hd.Validate())
	hd.Spec.Block["x"] = -1
	expectErr(t, "handle block", hd.Validate(), "spec.block[x]")

	cfg := &IPAMConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "cfg"}}
	expectErr(t, "ipam configuration name", cfg.Validate(), "metadata.name")
}

func TestNames(t *testing.T) {
	for cidr, want := range map[string]string{
		"10.0.0.0/26":      "10-0-0-0-26",
		"10.0.0.64/26":     "10-0-0-64-26",
		"fd00:10::/122":    "fd00-10---122",
		"fd00::1:0/122":    "fd00--1-0-122",
		"::100/122":        "0--100-122",
		"2001:db8::40/122": "2001-db8--40-122",
	} {
		if got := BlockName(netip.MustParsePrefix(cidr)); got != want {
			t.Errorf("BlockName(%s) = %s, want %s", cidr, got, want)
		}
	}
	cidr := netip.MustParsePrefix("10.0.0.0/26")
	if got := BlockAffinityName("node1", cidr); got != "node1-10-0-0-0-26" {
		t.Errorf("BlockAffinityName = %s", got)
	}
	long := strings.Repeat("n", 250)
	if got := BlockAffinityName(long, cidr); len(got) > 253 || !strings.HasSuffix(got, "-10-0-0-0-26") || got == BlockAffinityName(long+"x", cidr) {
		t.Errorf("BlockAffinityName(long) = %s (%d)", got, len(got))
	}
	seen := map[string]string{}
	for _, id := range []string{"k8s-pod-network.abc123", "K8s-Pod-Network.ABC123", "a_b", "a-b", "A_B", strings.Repeat("x", 300), "..", "-", "_x_"} {
		name := HandleName(id)
		if len(name) > 253 || (id == "k8s-pod-network.abc123" && name != id) {
			t.Errorf("HandleName(%q) = %q", id, name)
		}
		h := &IPAMHandle{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: IPAMHandleSpec{HandleID: id}}
		if err := h.Validate(); err != nil {
			t.Errorf("HandleName(%q) = %q: %v", id, name, err)
		}
		if prev, dup := seen[name]; dup {
			t.Errorf("HandleName(%q) = HandleName(%q) = %q", id, prev, name)
		}
		seen[name] = id
	}
}
