package main

// The --source flag of route add|del|load and show routes.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	vecnetv1 "github.com/vecnet/vecnet/api/vecnet/v1"
)

func TestParseRouteSource(t *testing.T) {
	withSource := func(r *vecnetv1.Route, src string) *vecnetv1.Route { r.Source = src; return r }
	for _, tc := range []struct {
		in      string
		add     bool
		want    *vecnetv1.RoutesRequest
		wantErr string
	}{
		{in: "10.0.0.0/8 via 192.168.1.1 --source bgp", add: true,
			want: routes(withSource(route("10.0.0.0/8", 0, via("192.168.1.1", "")), "bgp"))},
		{in: "--source static 10.0.0.0/8 dev tun0 --vrf 3", add: true,
			want: routes(withSource(route("10.0.0.0/8", 3, via("", "tun0")), "static"))},
		{in: "10.0.0.0/8 --source bgp", add: false,
			want: routes(withSource(route("10.0.0.0/8", 0), "bgp"))},
		{in: "10.0.0.0/8 via 1.1.1.1 --source connected", add: true, wantErr: `--source "connected": want static or bgp`},
		{in: "10.0.0.0/8 --source BGP", add: false, wantErr: `--source "BGP": want static or bgp`},
		{in: "10.0.0.0/8 --source", add: false, wantErr: "flag needs an argument"},
	} {
		got, err := parseRouteChange(args(tc.in), tc.add)
		checkParse(t, tc.in, got, err, tc.want, tc.wantErr)
	}
	for _, tc := range []struct {
		in      string
		want    *vecnetv1.ListRoutesRequest
		wantErr string
	}{
		{in: "--source bgp", want: &vecnetv1.ListRoutesRequest{Source: "bgp"}},
		{in: "--all --source static", want: &vecnetv1.ListRoutesRequest{AllVrfs: true, Source: "static"}},
		{in: "--source bgp --vrf 2", want: &vecnetv1.ListRoutesRequest{Vrf: 2, Source: "bgp"}},
		{in: "--source uplink", wantErr: `--source "uplink": want static or bgp`},
	} {
		got, err := parseShowRoutes(args(tc.in))
		checkParse(t, tc.in, got, err, tc.want, tc.wantErr)
	}
	if got, err := parseRouteLoad(args("routes.txt --source bgp --batch 5")); err != nil || got != (routeLoadOpts{file: "routes.txt", batch: 5, source: "bgp"}) {
		t.Errorf("route load --source bgp: %+v, %v", got, err)
	}
	if _, err := parseRouteLoad(args("routes.txt --source local")); err == nil || !strings.Contains(err.Error(), "want static or bgp") {
		t.Errorf("route load --source local: %v", err)
	}
}

func TestE2ERouteSource(t *testing.T) {
	srv := &fakeServer{routes: []*vecnetv1.Route{
		{Prefix: "10.244.1.0/26", NextHops: []*vecnetv1.NextHop{{Ip: "192.0.2.12"}, {Ip: "resolved:192.0.2.12", Interface: "eth0"}}, Source: "bgp"},
		{Prefix: "10.244.2.0/26", NextHops: []*vecnetv1.NextHop{{Interface: "tun0"}}, Source: "static"},
	}}
	dial := startFake(t, srv)
	mustRun(t, dial, "route", "add", "10.244.1.0/26", "via", "192.0.2.12", "--source", "bgp")
	mustRun(t, dial, "route", "del", "10.244.1.0/26", "--source", "bgp")
	out := mustRun(t, dial, "show", "routes", "--source", "bgp")
	want := `VRF  Prefix         Via                  Dev   Weight  Encap  Source
0    10.244.1.0/26  192.0.2.12           -     1       -      bgp
0    10.244.1.0/26  resolved:192.0.2.12  eth0  1       -      bgp
0    10.244.2.0/26  -                    tun0  1       -      static
`
	if out != want { // the fake server does not filter by source
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
	file := filepath.Join(t.TempDir(), "routes.txt")
	if err := os.WriteFile(file, []byte("10.244.3.0/26 via 192.0.2.13\n10.244.4.0/26 via 192.0.2.14\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, dial, "route", "load", file, "--source", "bgp")
	bgpRoute := func(prefix string, nhs ...*vecnetv1.NextHop) *vecnetv1.Route {
		return &vecnetv1.Route{Prefix: prefix, Source: "bgp", NextHops: nhs}
	}
	checkRequests(t, srv,
		routes(bgpRoute("10.244.1.0/26", via("192.0.2.12", ""))),
		routes(bgpRoute("10.244.1.0/26")),
		&vecnetv1.ListRoutesRequest{Source: "bgp"},
		routes(bgpRoute("10.244.3.0/26", via("192.0.2.13", "")), bgpRoute("10.244.4.0/26", via("192.0.2.14", ""))),
	)
	code, _, errs := vecnetctl(t, dial, "route", "add", "10.0.0.0/8", "via", "1.1.1.1", "--source", "kernel")
	if code != 2 || !strings.Contains(errs, `--source "kernel": want static or bgp`) {
		t.Errorf("--source kernel: exit %d, %q", code, errs)
	}
	code, out, _ = vecnetctl(t, dial, "route", "add", "-h")
	if code != 0 || !strings.Contains(out, "--source static|bgp") {
		t.Errorf("route add -h: exit %d, %q", code, out)
	}
}
