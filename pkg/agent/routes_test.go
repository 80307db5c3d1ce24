package agent

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"testing"

	vecnetv1 "github.com/vecnet/vecnet/api/vecnet/v1"
	v3 "github.com/vecnet/vecnet/pkg/apis/projectcalico/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

var pfx = netip.MustParsePrefix

func TestNodeAddresses(t *testing.T) {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{AnnotationNodeIPv4: "10.0.0.5/16"}},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeHostName, Address: "n1"},
			{Type: corev1.NodeExternalIP, Address: "203.0.113.1"},
			{Type: corev1.NodeInternalIP, Address: "192.168.1.5"},
			{Type: corev1.NodeInternalIP, Address: "fd00::5"},
			{Type: corev1.NodeInternalIP, Address: "fd00::6"},
		}},
	}
	got := nodeAddresses(n)
	if got.v4 != pfx("10.0.0.5/16") || got.v6 != pfx("fd00::5/128") {
		t.Errorf("got %v, want the IPv4 annotation and the first IPv6 InternalIP", got)
	}
	n.Annotations = map[string]string{AnnotationNodeIPv6: "fd01::1/64", AnnotationNodeIPv4: "garbage"}
	got = nodeAddresses(n)
	if got.v4 != pfx("192.168.1.5/32") || got.v6 != pfx("fd01::1/64") {
		t.Errorf("got %v, want the IPv4 InternalIP (bad annotation) and the IPv6 annotation", got)
	}
}

// cluster: this node n1 is 192.168.1.1/24 (from its uplink); n2 is on the
// same subnet, n3 on another, n4 has only an IPv6 address, n5 none.
func testInputs(v4 v3.VXLANMode, ip v3.IPIPMode, v6 v3.VXLANMode) *routeInputs {
	host := func(s string) netip.Prefix { a := netip.MustParseAddr(s); return netip.PrefixFrom(a, a.BitLen()) }
	aff := func(n string) string { return "host:" + n }
	return &routeInputs{
		self: "n1",
		pools: []poolRoute{
			{name: "v4", cidr: pfx("10.244.0.0/16"), vxlan: v4, ipip: ip, prefix: true},
			{name: "v6", cidr: pfx("fd10::/48"), vxlan: v6, prefix: true},
		},
		nodes: map[string]nodeAddr{
			"n1": {v4: host("192.168.1.1"), v6: host("fd00:1::1")},
			"n2": {v4: host("192.168.1.2"), v6: host("fd00:1::2")},
			"n3": {v4: host("192.168.2.3"), v6: host("fd00:2::3")},
			"n4": {v6: host("fd00:1::4")},
			"n5": {},
		},
		uplinks: []netip.Prefix{pfx("192.168.1.1/24"), pfx("fd00:1::1/64"), pfx("fe80::1/64")},
		blocks: []blockRef{
			{cidr: pfx("10.244.1.0/26"), node: "n1", affinity: aff("n1"),
				borrowed: map[netip.Addr]string{netip.MustParseAddr("10.244.1.9"): "n3", netip.MustParseAddr("10.244.1.10"): "n1"}},
			{cidr: pfx("10.244.2.0/26"), node: "n2", affinity: aff("n2")},
			{cidr: pfx("10.244.3.0/26"), node: "n3", affinity: aff("n3")},
			{cidr: pfx("10.244.4.0/26"), node: "n4", affinity: aff("n4")},
			{cidr: pfx("10.244.5.0/26"), node: "n5", affinity: aff("n5")},
			{cidr: pfx("10.244.6.0/26")},
			{cidr: pfx("10.9.0.0/26"), node: "n2", affinity: aff("n2")},
			{cidr: pfx("10.244.7.0/26"), node: "gone", affinity: aff("gone")},
			{cidr: pfx("10.244.8.0/26"), affinity: "virtual:load-balancer"},
			{cidr: pfx("fd10:0:0:2::/122"), node: "n2", affinity: aff("n2")},
			{cidr: pfx("fd10:0:0:3::/122"), node: "n3", affinity: aff("n3")},
			{cidr: pfx("fd10:0:0:4::/122"), node: "n4", affinity: aff("n4")},
		},
		vni: 4096,
	}
}

func routeMap(p routePlan) map[string]string {
	out := map[string]string{}
	for k, w := range p.routes {
		out[k.String()] = w.node + " " + w.String()
	}
	return out
}

func TestPlanRoutes(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   *routeInputs
		want map[string]string
	}{
		{"vxlan always", testInputs(v3.VXLANModeAlways, v3.IPIPModeNever, v3.VXLANModeAlways), map[string]string{
			"10.244.1.9/32":    "n3 via 192.168.2.3 encap vxlan vni 4096",
			"10.244.2.0/26":    "n2 via 192.168.1.2 encap vxlan vni 4096",
			"10.244.3.0/26":    "n3 via 192.168.2.3 encap vxlan vni 4096",
			"fd10:0:0:2::/122": "n2 via 192.168.1.2 encap vxlan vni 4096",
			"fd10:0:0:3::/122": "n3 via 192.168.2.3 encap vxlan vni 4096",
		}},
		{"ipip always, v6 never", testInputs(v3.VXLANModeNever, v3.IPIPModeAlways, v3.VXLANModeNever), map[string]string{
			"10.244.1.9/32":    "n3 via 192.168.2.3 encap ipip",
			"10.244.2.0/26":    "n2 via 192.168.1.2 encap ipip",
			"10.244.3.0/26":    "n3 via 192.168.2.3 encap ipip",
			"fd10:0:0:2::/122": "n2 via fd00:1::2",
			"fd10:0:0:3::/122": "n3 via fd00:2::3",
			"fd10:0:0:4::/122": "n4 via fd00:1::4",
		}},
		{"cross subnet", testInputs(v3.VXLANModeNever, v3.IPIPModeCrossSubnet, v3.VXLANModeCrossSubnet), map[string]string{
			"10.244.1.9/32":    "n3 via 192.168.2.3 encap ipip",
			"10.244.2.0/26":    "n2 via 192.168.1.2",
			"10.244.3.0/26":    "n3 via 192.168.2.3 encap ipip",
			"fd10:0:0:2::/122": "n2 via fd00:1::2",
			"fd10:0:0:3::/122": "n3 via 192.168.2.3 encap vxlan vni 4096",
			"fd10:0:0:4::/122": "n4 via fd00:1::4",
		}},
		{"never", testInputs("", "", ""), map[string]string{
			"10.244.1.9/32":    "n3 via 192.168.2.3",
			"10.244.2.0/26":    "n2 via 192.168.1.2",
			"10.244.3.0/26":    "n3 via 192.168.2.3",
			"fd10:0:0:2::/122": "n2 via fd00:1::2",
			"fd10:0:0:3::/122": "n3 via fd00:2::3",
			"fd10:0:0:4::/122": "n4 via fd00:1::4",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan := planRoutes(tc.in)
			got := routeMap(plan)
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s: got %q, want %q", k, got[k], v)
				}
			}
			for k, v := range got {
				if _, ok := tc.want[k]; !ok {
					t.Errorf("unexpected route %s: %s", k, v)
				}
			}
			reasons := map[string]string{}
			for _, s := range plan.skipped {
				reasons[s.prefix.String()] = s.reason
			}
			for p, want := range map[string]string{
				"10.244.5.0/26": "node n5 has no IPv4 address",
				"10.244.6.0/26": "no affinity",
				"10.9.0.0/26":   "no IPPool",
				"10.244.7.0/26": "node gone has no Node object",
			} {
				if !strings.Contains(reasons[p], want) {
					t.Errorf("skipped %s: reason %q, want it to mention %q", p, reasons[p], want)
				}
			}
			if _, ok := reasons["10.244.8.0/26"]; ok {
				t.Errorf("a virtual (load balancer) block was reported")
			}
			if _, ok := reasons["10.244.4.0/26"]; !ok {
				t.Errorf("n4's IPv4 block (n4 has no IPv4 address) was not reported")
			}
		})
	}
}

// Without a prefix length for this node (no annotation, no uplink with its
// address), "same subnet" falls back to any uplink subnet; the Calico
// annotation's length wins over the uplink's.
func TestSameSubnet(t *testing.T) {
	in := testInputs(v3.VXLANModeCrossSubnet, "", "")
	in.nodes["n1"] = nodeAddr{v4: pfx("192.168.1.1/16")}
	if !in.sameSubnet(netip.MustParseAddr("192.168.2.3")) {
		t.Error("annotation /16: 192.168.2.3 should be on this node's subnet")
	}
	in.nodes["n1"] = nodeAddr{}
	if !in.sameSubnet(netip.MustParseAddr("192.168.1.7")) || in.sameSubnet(netip.MustParseAddr("192.168.2.3")) {
		t.Error("no own address: the uplink subnets decide")
	}
	in.uplinks = nil
	if in.sameSubnet(netip.MustParseAddr("192.168.1.7")) {
		t.Error("nothing known: encapsulate")
	}
	// A peer with this node's own address gets no route.
	in = testInputs("", "", "")
	in.nodes["n2"] = nodeAddr{v4: pfx("192.168.1.1/32")}
	plan := planRoutes(in)
	if _, ok := plan.routes[pfx("10.244.2.0/26")]; ok {
		t.Error("routed a block to this node's own address")
	}
}

func TestSameRoute(t *testing.T) {
	w := wantRoute{prefix: pfx("10.244.2.0/26"), via: netip.MustParseAddr("192.168.1.2"), encap: encapVXLAN, vni: 4096}
	listed := &vecnetv1.Route{Prefix: "10.244.2.0/26", Source: "static", NextHops: []*vecnetv1.NextHop{
		{Ip: "192.168.1.2", Encap: "vxlan", Vni: 4096, Weight: 1}, {Ip: "resolved:192.168.1.2", Interface: "eth0"}}}
	if !sameRoute(listed, w) {
		t.Error("identical route (with its resolved next hop) differs")
	}
	w.vni = 5000
	if sameRoute(listed, w) {
		t.Error("VNI change not seen")
	}
	w.encap, w.vni = encapNone, 0
	if sameRoute(listed, w) {
		t.Error("encap change not seen")
	}
	if got := w.proto(); len(got.NextHops) != 1 || got.NextHops[0].Encap != "" || got.NextHops[0].Vni != 0 {
		t.Errorf("routed next hop %+v", got.NextHops)
	}
}

func TestBlockFromObject(t *testing.T) {
	one, two := 0, 1
	aff := "host:n2"
	h1, h2 := "h1", "h2"
	b := &v3.IPAMBlock{Spec: v3.IPAMBlockSpec{
		CIDR: "10.244.2.0/30", Affinity: &aff, Allocations: []*int{&one, nil, &two, nil},
		Attributes: []v3.AllocationAttribute{{HandleID: &h1, ActiveOwnerAttrs: map[string]string{"node": "n2"}}, {HandleID: &h2, ActiveOwnerAttrs: map[string]string{"node": "n3"}}},
	}}
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(b)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: obj}
	ref := blockFromObject(u)
	if ref == nil || ref.node != "n2" || len(ref.borrowed) != 1 || ref.borrowed[netip.MustParseAddr("10.244.2.2")] != "n3" {
		t.Fatalf("got %+v", ref)
	}
	sig := blockSig(u)
	b.Spec.Allocations[1] = &one // n2's own pod: no routing change
	obj, _ = runtime.DefaultUnstructuredConverter.ToUnstructured(b)
	if blockSig(&unstructured.Unstructured{Object: obj}) != sig {
		t.Error("an allocation on the block's own node changed the signature")
	}
	b.Spec.Affinity = nil
	obj, _ = runtime.DefaultUnstructuredConverter.ToUnstructured(b)
	if blockSig(&unstructured.Unstructured{Object: obj}) == sig {
		t.Error("losing the affinity did not change the signature")
	}
}

func TestPodPrefixes(t *testing.T) {
	got := podPrefixes([]poolRoute{
		{cidr: pfx("fd10::/48"), prefix: true}, {cidr: pfx("10.244.0.0/16"), prefix: true}, {cidr: pfx("10.250.0.0/24")},
	}, []netip.Prefix{pfx("10.96.0.0/12"), pfx("10.244.0.0/16")})
	want := []netip.Prefix{pfx("10.96.0.0/12"), pfx("10.244.0.0/16"), pfx("fd10::/48")}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

func TestParseConfigRoutes(t *testing.T) {
	env := map[string]string{"NODE_NAME": "n1", "VECNET_EXTRA_POD_PREFIXES": "10.96.0.0/12, fd00:10:96::/112"}
	c, err := ParseConfig([]string{"--vxlan-vni", "7"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if !c.Routes || c.VXLANVNI != 7 || len(c.ExtraPodPrefixes) != 2 {
		t.Errorf("got %+v", c)
	}
	if _, err := ParseConfig([]string{"--vxlan-vni", "16777216"}, func(k string) string { return env[k] }); err == nil {
		t.Error("VNI over 24 bits accepted")
	}
	c, _ = ParseConfig([]string{"--routes=false"}, func(k string) string { return env[k] })
	if c.Routes || c.VXLANVNI != 4096 {
		t.Errorf("got %+v", c)
	}
}

// fakeDataplane is the part of vecnetd's API reconcileRoutes uses, with a
// route table; next hops in unreachable are refused as vecnetd refuses a
// next hop it cannot resolve.
type fakeDataplane struct {
	vecnetv1.DataplaneClient
	routes      map[string]*vecnetv1.Route
	prefixes    []string
	unreachable map[string]bool
	addCalls    int
}

func (f *fakeDataplane) ListUplinks(context.Context, *vecnetv1.ListUplinksRequest, ...grpc.CallOption) (*vecnetv1.ListUplinksResponse, error) {
	return &vecnetv1.ListUplinksResponse{Uplinks: []*vecnetv1.Uplink{{Name: "eth0", Addresses: []string{"192.168.1.1/24"}}}}, nil
}

func (f *fakeDataplane) GetPodPrefixes(context.Context, *vecnetv1.GetPodPrefixesRequest, ...grpc.CallOption) (*vecnetv1.PodPrefixes, error) {
	return &vecnetv1.PodPrefixes{Prefixes: f.prefixes}, nil
}

func (f *fakeDataplane) SetPodPrefixes(_ context.Context, r *vecnetv1.PodPrefixes, _ ...grpc.CallOption) (*vecnetv1.PodPrefixes, error) {
	f.prefixes = r.GetPrefixes()
	return r, nil
}

func (f *fakeDataplane) AddRoutes(_ context.Context, r *vecnetv1.RoutesRequest, _ ...grpc.CallOption) (*vecnetv1.RoutesResponse, error) {
	f.addCalls++
	for i, rt := range r.GetRoutes() {
		if f.unreachable[rt.GetNextHops()[0].GetIp()] {
			return nil, status.Errorf(codes.InvalidArgument, "routes[%d].next_hops[0]: next hop %s is not reachable in vrf 0", i, rt.GetNextHops()[0].GetIp())
		}
	}
	for _, rt := range r.GetRoutes() {
		f.routes[rt.GetPrefix()] = &vecnetv1.Route{Prefix: rt.GetPrefix(), NextHops: rt.GetNextHops(), Source: "static"}
	}
	return &vecnetv1.RoutesResponse{Count: uint32(len(r.GetRoutes()))}, nil
}

func (f *fakeDataplane) DeleteRoutes(_ context.Context, r *vecnetv1.RoutesRequest, _ ...grpc.CallOption) (*vecnetv1.RoutesResponse, error) {
	for i, rt := range r.GetRoutes() {
		if f.routes[rt.GetPrefix()] == nil || len(rt.GetNextHops()) > 0 {
			return nil, status.Errorf(codes.NotFound, "routes[%d]: not found, or next hops given", i)
		}
	}
	for _, rt := range r.GetRoutes() {
		delete(f.routes, rt.GetPrefix())
	}
	return &vecnetv1.RoutesResponse{}, nil
}

type routeStream struct {
	grpc.ClientStream
	routes []*vecnetv1.Route
}

func (s *routeStream) Recv() (*vecnetv1.Route, error) {
	if len(s.routes) == 0 {
		return nil, io.EOF
	}
	r := s.routes[0]
	s.routes = s.routes[1:]
	return r, nil
}

func (f *fakeDataplane) ListRoutes(context.Context, *vecnetv1.ListRoutesRequest, ...grpc.CallOption) (grpc.ServerStreamingClient[vecnetv1.Route], error) {
	s := &routeStream{}
	for _, r := range f.routes {
		r = proto.Clone(r).(*vecnetv1.Route)
		// As vecnetd lists a recursive route: with what it resolved to.
		r.NextHops = append(r.NextHops, &vecnetv1.NextHop{Ip: "resolved:" + r.NextHops[0].GetIp(), Interface: "eth0"})
		s.routes = append(s.routes, r)
	}
	return s, nil
}

func toUnstructured(t *testing.T, obj any) *unstructured.Unstructured {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: m}
}

// reconcileRoutes against a fake vecnetd: one unreachable next hop does not
// hold back the others and is an error (retried); stale routes of the
// agent go, routes outside the pools stay, a changed encap is replaced.
func TestReconcileRoutes(t *testing.T) {
	fake := &fakeDataplane{
		routes: map[string]*vecnetv1.Route{
			"10.244.2.0/26": {Prefix: "10.244.2.0/26", Source: "static", NextHops: []*vecnetv1.NextHop{{Ip: "192.168.1.2"}}},
			"10.244.9.0/26": {Prefix: "10.244.9.0/26", Source: "static", NextHops: []*vecnetv1.NextHop{{Ip: "192.168.1.9"}}},
			"10.50.0.0/16":  {Prefix: "10.50.0.0/16", Source: "static", NextHops: []*vecnetv1.NextHop{{Ip: "192.168.1.50"}}},
		},
		prefixes:    []string{"10.88.0.0/16"},
		unreachable: map[string]bool{"10.9.9.3": true},
	}
	a := &Agent{cfg: Config{NodeName: "n1", Routes: true, VXLANVNI: 4096}, dp: fake, metrics: newMetrics(),
		routes: routeState{owned: map[netip.Prefix]bool{}}}
	a.ready.set("informers", nil)
	a.ready.set("vecnetd", nil)
	idx := func() cache.Indexer { return cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{}) }
	pools, blocks, nodes := idx(), idx(), idx()
	a.pools = cache.NewGenericLister(pools, gvrIPPools.GroupResource())
	a.blocks = cache.NewGenericLister(blocks, gvrIPAMBlocks.GroupResource())
	a.nodeLister = listersv1.NewNodeLister(nodes)
	_ = pools.Add(toUnstructured(t, &v3.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: v3.IPPoolSpec{CIDR: "10.244.0.0/16", VXLANMode: v3.VXLANModeAlways}}))
	for i, addr := range []string{"192.168.1.1", "192.168.1.2", "10.9.9.3"} {
		name := fmt.Sprintf("n%d", i+1)
		_ = nodes.Add(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: addr}}}})
		aff := "host:" + name
		_ = blocks.Add(toUnstructured(t, &v3.IPAMBlock{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v3.IPAMBlockSpec{CIDR: fmt.Sprintf("10.244.%d.0/26", i+1), Affinity: &aff}}))
	}
	ctx := context.Background()
	err := a.reconcileRoutes(ctx)
	if err == nil || !strings.Contains(err.Error(), "10.244.3.0/26") {
		t.Fatalf("reconcile: %v, want an error naming the unreachable route", err)
	}
	want := map[string]string{"10.244.2.0/26": "via 192.168.1.2 encap vxlan vni 4096", "10.50.0.0/16": "via 192.168.1.50"}
	check := func() {
		t.Helper()
		got := map[string]string{}
		for p, r := range fake.routes {
			got[p] = describeRoute(r)
		}
		if len(got) != len(want) {
			t.Fatalf("routes %v, want %v", got, want)
		}
		for p, w := range want {
			if got[p] != w {
				t.Fatalf("routes %v, want %v", got, want)
			}
		}
	}
	check()
	if strings.Join(fake.prefixes, ",") != "10.244.0.0/16" {
		t.Errorf("pod prefixes %v", fake.prefixes)
	}
	delete(fake.unreachable, "10.9.9.3")
	if err := a.reconcileRoutes(ctx); err != nil {
		t.Fatal(err)
	}
	want["10.244.3.0/26"] = "via 10.9.9.3 encap vxlan vni 4096"
	check()
	calls := fake.addCalls
	if err := a.reconcileRoutes(ctx); err != nil || fake.addCalls != calls {
		t.Fatalf("in-sync reconcile: err %v, %d AddRoutes calls", err, fake.addCalls-calls)
	}
	// The pool goes: its routes too (the agent installed them), and the
	// blocks are unroutable.
	_ = pools.Delete(toUnstructured(t, &v3.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "p"}}))
	if err := a.reconcileRoutes(ctx); err != nil {
		t.Fatal(err)
	}
	want = map[string]string{"10.50.0.0/16": "via 192.168.1.50"}
	check()
}
