package agent

import (
	"net/netip"
	"testing"

	v3 "github.com/vecnet/vecnet/pkg/apis/projectcalico/v3"
	"github.com/vecnet/vecnet/pkg/bgp"
)

// TestBGPRouteEncap: a learned route gets the encapsulation of the pool
// holding its prefix, decided against the node that advertised it (the
// node whose address is the next hop); routes outside the pools, or from
// a router, are routed as learned.
func TestBGPRouteEncap(t *testing.T) {
	byAddr := func(in *routeInputs) map[netip.Addr]string {
		m := map[netip.Addr]string{}
		for name, na := range in.nodes {
			if na.v4.IsValid() {
				m[na.v4.Addr()] = name
			}
			if na.v6.IsValid() {
				m[na.v6.Addr()] = name
			}
		}
		return m
	}
	l := func(p, nh string) bgp.Learned {
		return bgp.Learned{Prefix: pfx(p), NextHop: netip.MustParseAddr(nh), Peer: netip.MustParseAddr(nh)}
	}
	for _, c := range []struct {
		name     string
		in       *routeInputs
		learned  bgp.Learned
		want     string // wantRoute.String(), or "skip: ..." for no route
		wantSkip bool
	}{
		{"never: routed via the next hop", testInputs(v3.VXLANModeNever, v3.IPIPModeNever, v3.VXLANModeNever),
			l("10.244.2.0/26", "192.168.1.2"), "via 192.168.1.2", false},
		{"always vxlan: encap to the advertising node", testInputs(v3.VXLANModeAlways, v3.IPIPModeNever, v3.VXLANModeNever),
			l("10.244.3.0/26", "192.168.2.3"), "via 192.168.2.3 encap vxlan vni 4096", false},
		{"always ipip", testInputs(v3.VXLANModeNever, v3.IPIPModeAlways, v3.VXLANModeNever),
			l("10.244.2.0/26", "192.168.1.2"), "via 192.168.1.2 encap ipip", false},
		{"cross-subnet, same subnet: routed", testInputs(v3.VXLANModeCrossSubnet, v3.IPIPModeNever, v3.VXLANModeNever),
			l("10.244.2.0/26", "192.168.1.2"), "via 192.168.1.2", false},
		{"cross-subnet, other subnet: encap", testInputs(v3.VXLANModeCrossSubnet, v3.IPIPModeNever, v3.VXLANModeNever),
			l("10.244.3.0/26", "192.168.2.3"), "via 192.168.2.3 encap vxlan vni 4096", false},
		{"IPv6 block over an IPv6 next hop, never", testInputs(v3.VXLANModeNever, v3.IPIPModeNever, v3.VXLANModeNever),
			l("fd10:0:0:2::/122", "fd00:1::2"), "via fd00:1::2", false},
		{"IPv6 block, vxlan: over the node's IPv4 address", testInputs(v3.VXLANModeNever, v3.IPIPModeNever, v3.VXLANModeAlways),
			l("fd10:0:0:3::/122", "fd00:2::3"), "via 192.168.2.3 encap vxlan vni 4096", false},
		{"a router's prefix: routed via the router", testInputs(v3.VXLANModeAlways, v3.IPIPModeNever, v3.VXLANModeNever),
			l("198.51.100.0/24", "192.168.1.250"), "via 192.168.1.250", false},
		{"a pool prefix re-advertised by a router: routed via the router", testInputs(v3.VXLANModeAlways, v3.IPIPModeNever, v3.VXLANModeNever),
			l("10.244.3.0/26", "192.168.1.250"), "via 192.168.1.250", false},
		{"next hop is this node", testInputs(v3.VXLANModeNever, v3.IPIPModeNever, v3.VXLANModeNever),
			l("10.244.9.0/26", "192.168.1.1"), "", true},
		{"inside this node's underlay subnet", testInputs(v3.VXLANModeNever, v3.IPIPModeNever, v3.VXLANModeNever),
			l("192.168.1.0/25", "192.168.1.250"), "", true},
		{"the underlay subnet itself", testInputs(v3.VXLANModeNever, v3.IPIPModeNever, v3.VXLANModeNever),
			l("192.168.1.0/24", "192.168.1.250"), "", true},
		{"a default route is fine", testInputs(v3.VXLANModeNever, v3.IPIPModeNever, v3.VXLANModeNever),
			l("0.0.0.0/0", "192.168.1.250"), "via 192.168.1.250", false},
		{"vxlan to a node without IPv4", testInputs(v3.VXLANModeNever, v3.IPIPModeNever, v3.VXLANModeAlways),
			l("fd10:0:0:4::/122", "fd00:1::4"), "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			w, why := bgpRoute(c.in, c.learned, byAddr(c.in))
			if c.wantSkip {
				if why == "" {
					t.Fatalf("route %s programmed, want it skipped", w)
				}
				return
			}
			if why != "" {
				t.Fatalf("skipped: %s", why)
			}
			if w.String() != c.want || w.prefix != c.learned.Prefix {
				t.Fatalf("route %s %s, want %s", w.prefix, w, c.want)
			}
		})
	}
}

// TestPlanRoutesLeavesBlocksToBGP: with BGP on, the static planner routes
// no block (BGP's routes are the only ones).
func TestPlanRoutesLeavesBlocksToBGP(t *testing.T) {
	in := testInputs(v3.VXLANModeAlways, v3.IPIPModeNever, v3.VXLANModeNever)
	if p := planRoutes(in); len(p.routes) == 0 {
		t.Fatal("the fixture plans no routes without BGP")
	}
	in.byBGP = true
	if p := planRoutes(in); len(p.routes) != 0 {
		t.Fatalf("with BGP the planner still routes %d blocks", len(p.routes))
	}
}
