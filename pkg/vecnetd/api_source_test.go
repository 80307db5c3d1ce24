package vecnetd

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	vecnetv1 "github.com/vecnet/vecnet/api/vecnet/v1"
	"github.com/vecnet/vecnet/pkg/dataplane/tables"
	"google.golang.org/grpc/codes"
)

// Tests of the "bgp" route source of AddRoutes, DeleteRoutes and
// ListRoutes.

// routeText is a listed route as "VRF PREFIX SOURCE NH,NH".
func routeText(r *vecnetv1.Route) string {
	var nhs []string
	for _, nh := range r.GetNextHops() {
		nhs = append(nhs, nh.GetIp()+"@"+nh.GetInterface())
	}
	return fmt.Sprintf("%d %s %s %s", r.GetVrf(), r.GetPrefix(), r.GetSource(), strings.Join(nhs, ","))
}

func listText(t *testing.T, c vecnetv1.DataplaneClient, req *vecnetv1.ListRoutesRequest) []string {
	t.Helper()
	var out []string
	for _, r := range listRoutes(t, c, req) {
		out = append(out, routeText(r))
	}
	return out
}

func wantList(t *testing.T, c vecnetv1.DataplaneClient, req *vecnetv1.ListRoutesRequest, want ...string) {
	t.Helper()
	if got := listText(t, c, req); !slices.Equal(got, want) {
		t.Errorf("ListRoutes(%v):\n got  %q\n want %q", req, got, want)
	}
}

func TestAPIRouteSources(t *testing.T) {
	c, d := newTestAPI(t)
	fakeInterface(t, d, "tap0", tables.KindTap, 0, "10.0.0.1/24")
	fakeInterface(t, d, "tun1", tables.KindTun, 0)
	add := func(rs ...*vecnetv1.Route) error {
		_, err := c.AddRoutes(ctx(t), &vecnetv1.RoutesRequest{Routes: rs})
		return err
	}
	del := func(rs ...*vecnetv1.Route) error {
		_, err := c.DeleteRoutes(ctx(t), &vecnetv1.RoutesRequest{Routes: rs})
		return err
	}
	viaNH := func(ip string) []*vecnetv1.NextHop { return []*vecnetv1.NextHop{{Ip: ip}} }
	devNH := func(name string) []*vecnetv1.NextHop { return []*vecnetv1.NextHop{{Interface: name}} }

	if err := add(&vecnetv1.Route{Prefix: "10.1.0.0/16", Source: "bgp", NextHops: viaNH("10.0.0.2")}); err != nil {
		t.Fatal(err)
	}
	wantList(t, c, &vecnetv1.ListRoutesRequest{Source: "bgp"}, "0 10.1.0.0/16 bgp 10.0.0.2@,resolved:10.0.0.2@tap0")
	if err := add(&vecnetv1.Route{Prefix: "10.1.0.0/16", Source: "static", NextHops: devNH("tun1")}); err != nil {
		t.Fatal(err)
	}
	// The static entry forwards; the bgp one is still there, unresolved.
	wantList(t, c, &vecnetv1.ListRoutesRequest{},
		"0 10.0.0.0/24 connected @tap0", "0 10.0.0.1/32 local @local", "0 10.1.0.0/16 static @tun1")
	wantList(t, c, &vecnetv1.ListRoutesRequest{Source: "bgp"}, "0 10.1.0.0/16 bgp 10.0.0.2@")
	wantList(t, c, &vecnetv1.ListRoutesRequest{Source: "static"}, "0 10.1.0.0/16 static @tun1")

	// Deleting the bgp entry leaves the static one.
	if err := del(&vecnetv1.Route{Prefix: "10.1.0.0/16", Source: "bgp"}); err != nil {
		t.Fatal(err)
	}
	wantList(t, c, &vecnetv1.ListRoutesRequest{Source: "bgp"})
	wantList(t, c, &vecnetv1.ListRoutesRequest{Source: "static"}, "0 10.1.0.0/16 static @tun1")
	// Deleting it again is NotFound, as for a static route that is not
	// there; the static entry of the prefix does not count.
	wantCode(t, del(&vecnetv1.Route{Prefix: "10.1.0.0/16", Source: "bgp"}), codes.NotFound, "routes[0]: route 10.1.0.0/16 (bgp) does not exist in vrf 0")
	wantCode(t, del(&vecnetv1.Route{Prefix: "10.2.0.0/16"}), codes.NotFound, "routes[0]: route 10.2.0.0/16 (static) does not exist in vrf 0")

	// Deleting the static entry reveals the bgp one.
	if err := add(&vecnetv1.Route{Prefix: "10.1.0.0/16", Source: "bgp", NextHops: viaNH("10.0.0.3")}); err != nil {
		t.Fatal(err)
	}
	if err := del(&vecnetv1.Route{Prefix: "10.1.0.0/16"}); err != nil { // "" is static
		t.Fatal(err)
	}
	wantList(t, c, &vecnetv1.ListRoutesRequest{},
		"0 10.0.0.0/24 connected @tap0", "0 10.0.0.1/32 local @local", "0 10.1.0.0/16 bgp 10.0.0.3@,resolved:10.0.0.3@tap0")
	wantList(t, c, &vecnetv1.ListRoutesRequest{Source: "static"})
	wantCode(t, del(&vecnetv1.Route{Prefix: "10.1.0.0/16", Source: "static"}), codes.NotFound, "routes[0]: ")

	// VRFs: the source filter honours vrf and all_vrfs.
	if _, err := c.AddVrf(ctx(t), &vecnetv1.VrfRequest{Vrf: 4}); err != nil {
		t.Fatal(err)
	}
	fakeInterface(t, d, "tun4", tables.KindTun, 4)
	if err := add(&vecnetv1.Route{Prefix: "fd00::/64", Vrf: 4, Source: "bgp", NextHops: devNH("tun4")}); err != nil {
		t.Fatal(err)
	}
	wantList(t, c, &vecnetv1.ListRoutesRequest{Source: "bgp", Vrf: 4}, "4 fd00::/64 bgp @tun4")
	wantList(t, c, &vecnetv1.ListRoutesRequest{Source: "bgp", AllVrfs: true},
		"0 10.1.0.0/16 bgp 10.0.0.3@,resolved:10.0.0.3@tap0", "4 fd00::/64 bgp @tun4")

	// Sources callers do not own are refused, naming the field, and the
	// batch is left untouched.
	before := listText(t, c, &vecnetv1.ListRoutesRequest{AllVrfs: true})
	err := add(&vecnetv1.Route{Prefix: "10.5.0.0/16", Source: "bgp", NextHops: viaNH("10.0.0.2")},
		&vecnetv1.Route{Prefix: "10.6.0.0/16", Source: "kernel", NextHops: viaNH("10.0.0.2")})
	wantCode(t, err, codes.InvalidArgument, `routes[1].source: "kernel": want static or bgp`)
	wantCode(t, add(&vecnetv1.Route{Prefix: "10.6.0.0/16", Source: "connected", NextHops: devNH("tun1")}), codes.InvalidArgument, "routes[0].source: ")
	wantCode(t, del(&vecnetv1.Route{Prefix: "10.0.0.0/24", Source: "connected"}), codes.InvalidArgument, `routes[0].source: "connected": want static or bgp`)
	wantCode(t, del(&vecnetv1.Route{Prefix: "10.1.0.0/16", Source: "BGP"}), codes.InvalidArgument, "routes[0].source: ")
	if after := listText(t, c, &vecnetv1.ListRoutesRequest{AllVrfs: true}); !slices.Equal(before, after) {
		t.Errorf("failed requests changed the routes:\n before %q\n after  %q", before, after)
	}
	for _, src := range []string{"connected", "local", "BGP", "all"} {
		st, err := c.ListRoutes(ctx(t), &vecnetv1.ListRoutesRequest{Source: src})
		if err == nil {
			_, err = st.Recv()
		}
		wantCode(t, err, codes.InvalidArgument, fmt.Sprintf("source: %q: want static or bgp", src))
	}
}

// bgpRequest10k is an AddRoutes of 10 000 /26 bgp routes (10.128.0.0/26
// onwards) with a recursive next hop on tap0's connected subnet.
func bgpRequest10k() *vecnetv1.RoutesRequest {
	req := &vecnetv1.RoutesRequest{Routes: make([]*vecnetv1.Route, 10_000)}
	for i := range req.Routes {
		a := netip.AddrFrom4([4]byte{10, byte(128 + i>>10), byte(i >> 2), byte(i&3) << 6})
		req.Routes[i] = &vecnetv1.Route{Prefix: netip.PrefixFrom(a, 26).String(), Source: "bgp", NextHops: []*vecnetv1.NextHop{{Ip: "10.0.0.2"}}}
	}
	return req
}

// deleteRequest deletes req's routes by prefix and source.
func deleteRequest(req *vecnetv1.RoutesRequest) *vecnetv1.RoutesRequest {
	del := &vecnetv1.RoutesRequest{Routes: make([]*vecnetv1.Route, len(req.Routes))}
	for i, r := range req.Routes {
		del.Routes[i] = &vecnetv1.Route{Prefix: r.GetPrefix(), Vrf: r.GetVrf(), Source: r.GetSource()}
	}
	return del
}

// An AddRoutes of 10 000 bgp routes is one table transaction: the
// workers see one new version, with every route in it.
func TestAPIAddRoutesBGP10kOneVersion(t *testing.T) {
	c, d := newTestAPI(t)
	tap := fakeInterface(t, d, "tap0", tables.KindTap, 0, "10.0.0.1/24")
	req := bgpRequest10k()
	v := d.Tables.Snapshot().Version
	resp, err := c.AddRoutes(ctx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetCount() != 10_000 {
		t.Errorf("count %d", resp.GetCount())
	}
	s := d.Tables.Snapshot()
	if s.Version != v+1 {
		t.Errorf("AddRoutes of 10 000 bgp routes published %d versions", s.Version-v)
	}
	if n := s.VRFs[0].IP4.Len(); n != 10_002 {
		t.Errorf("fib holds %d prefixes", n)
	}
	last := netip.MustParsePrefix(req.Routes[len(req.Routes)-1].GetPrefix()).Addr().Next().As4()
	if lb := s.VRFs[0].IP4.Lookup(uint32(last[0])<<24 | uint32(last[1])<<16 | uint32(last[2])<<8 | uint32(last[3])); lb == 0 ||
		s.Adjs[s.LBs[lb].Buckets[0]].TxIf != tap || s.Adjs[s.LBs[lb].Buckets[0]].NextHop != netip.MustParseAddr("10.0.0.2") {
		t.Errorf("%v (in the last /26) resolves to lb %d", last, lb)
	}
	if n := len(listRoutes(t, c, &vecnetv1.ListRoutesRequest{Source: "bgp"})); n != 10_000 {
		t.Errorf("%d bgp routes listed", n)
	}
	v = s.Version
	if _, err := c.DeleteRoutes(ctx(t), deleteRequest(req)); err != nil {
		t.Fatal(err)
	}
	if got := d.Tables.Snapshot().Version - v; got != 1 {
		t.Errorf("DeleteRoutes of 10 000 bgp routes published %d versions", got)
	}
	if n := d.Tables.RouteCount(); n != 2 {
		t.Errorf("%d routes left", n)
	}
}

// BenchmarkAddRoutesBGP10k programs 10 000 /26 bgp routes with a recursive
// next hop in one AddRoutes: "grpc" as vecnet-agent does, through a gRPC
// client (marshalling, the in-memory transport, parsing, the tables);
// "handler" calls the server's AddRoutes directly (parsing and the tables).
// Deleting the routes between iterations is not timed; ns/op and the
// allocations are per AddRoutes of 10 000 routes.
func BenchmarkAddRoutesBGP10k(b *testing.B) {
	for _, via := range []string{"grpc", "handler"} {
		b.Run(via, func(b *testing.B) {
			c, d := newTestAPI(b)
			fakeInterface(b, d, "tap0", tables.KindTap, 0, "10.0.0.1/24")
			req, del := bgpRequest10k(), deleteRequest(bgpRequest10k())
			srv := NewServer(d)
			call := func(ctx context.Context, r *vecnetv1.RoutesRequest, add bool) error {
				var err error
				switch {
				case via == "grpc" && add:
					_, err = c.AddRoutes(ctx, r)
				case via == "grpc":
					_, err = c.DeleteRoutes(ctx, r)
				case add:
					_, err = srv.AddRoutes(ctx, r)
				default:
					_, err = srv.DeleteRoutes(ctx, r)
				}
				return err
			}
			bctx := ctx(b)
			b.ReportAllocs()
			for b.Loop() {
				if err := call(bctx, req, true); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := call(bctx, del, false); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(len(req.Routes))*float64(b.N)/b.Elapsed().Seconds(), "routes/s")
		})
	}
}
