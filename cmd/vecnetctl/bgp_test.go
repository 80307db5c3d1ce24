package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
	"google.golang.org/grpc"
)

const testAS = 64512

// freePort returns a TCP port that was free on ip a moment ago.
func freePort(t *testing.T, ip string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startSpeaker starts an in-process GoBGP speaker listening for BGP on
// ip:port, with its gRPC API on grpcAddr if that is not empty.
func startSpeaker(t *testing.T, routerID, ip string, port int, grpcAddr string) *server.BgpServer {
	t.Helper()
	var opts []server.ServerOption
	if grpcAddr != "" {
		opts = append(opts, server.GrpcListenAddress(grpcAddr))
	}
	s := server.NewBgpServer(opts...)
	go s.Serve()
	t.Cleanup(s.Stop)
	err := s.StartBgp(context.Background(), &api.StartBgpRequest{Global: &api.Global{
		Asn: testAS, RouterId: routerID, ListenPort: int32(port), ListenAddresses: []string{ip},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func addPeer(t *testing.T, s *server.BgpServer, local, remote string, remotePort int, passive, rrClient bool) {
	t.Helper()
	p := &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: remote, PeerAsn: testAS},
		Transport: &api.Transport{LocalAddress: local, RemotePort: uint32(remotePort), PassiveMode: passive},
		Timers:    &api.Timers{Config: &api.TimersConfig{ConnectRetry: 1, IdleHoldTimeAfterReset: 1}},
	}
	for _, f := range bgpFamilies {
		p.AfiSafis = append(p.AfiSafis, &api.AfiSafi{Config: &api.AfiSafiConfig{Family: apiFamily(f), Enabled: true}})
	}
	if rrClient {
		p.RouteReflector = &api.RouteReflector{RouteReflectorClient: true, RouteReflectorClusterId: local}
	}
	if err := s.AddPeer(context.Background(), &api.AddPeerRequest{Peer: p}); err != nil {
		t.Fatal(err)
	}
}

func addPath(t *testing.T, s *server.BgpServer, prefix, nextHop string, asPath ...uint32) {
	t.Helper()
	pfx := netip.MustParsePrefix(prefix)
	nh := netip.MustParseAddr(nextHop)
	nlri, err := bgp.NewIPAddrPrefix(pfx)
	if err != nil {
		t.Fatal(err)
	}
	family := bgp.RF_IPv4_UC
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
	if pfx.Addr().Is4() {
		a, err := bgp.NewPathAttributeNextHop(nh)
		if err != nil {
			t.Fatal(err)
		}
		attrs = append(attrs, a)
	} else {
		family = bgp.RF_IPv6_UC
		a, err := bgp.NewPathAttributeMpReachNLRI(family, []bgp.PathNLRI{{NLRI: nlri}}, nh)
		if err != nil {
			t.Fatal(err)
		}
		attrs = append(attrs, a)
	}
	if len(asPath) > 0 {
		attrs = append(attrs, bgp.NewPathAttributeAsPath([]bgp.AsPathParamInterface{
			bgp.NewAs4PathParam(bgp.BGP_ASPATH_ATTR_TYPE_SEQ, asPath),
		}))
	}
	_, err = s.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{{Family: family, Nlri: nlri, Attrs: attrs, Age: time.Now().Unix()}}})
	if err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(8 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func established(s *server.BgpServer) bool {
	up := false
	_ = s.ListPeer(context.Background(), &api.ListPeerRequest{}, func(p *api.Peer) {
		up = p.GetState().GetSessionState() == api.PeerState_SESSION_STATE_ESTABLISHED
	})
	return up
}

func numDestinations(s *server.BgpServer, f bgp.Family) uint64 {
	r, err := s.GetTable(context.Background(), &api.GetTableRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: apiFamily(f)})
	if err != nil {
		return 0
	}
	return r.GetNumDestination()
}

// lineMatching fails the test unless some line of out matches the pattern,
// whose single spaces stand for column gaps.
func lineMatching(t *testing.T, out, pattern string) {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + strings.ReplaceAll(pattern, " ", `\s+`) + `\s*$`)
	if !re.MatchString(out) {
		t.Errorf("no line matches %q in:\n%s", pattern, out)
	}
}

// TestShowBgp peers two GoBGP speakers over loopback (A on 127.0.0.1 with
// its API, B on 127.0.0.2 as A's route-reflector client), has B announce an
// IPv4 and an IPv6 prefix and A a local one, and reads A with show bgp.
func TestShowBgp(t *testing.T) {
	grpcAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t, "127.0.0.1")))
	portA, portB := freePort(t, "127.0.0.1"), freePort(t, "127.0.0.2")
	a := startSpeaker(t, "10.0.0.1", "127.0.0.1", portA, grpcAddr)
	b := startSpeaker(t, "10.0.0.2", "127.0.0.2", portB, "")
	addPath(t, a, "10.244.0.0/24", "0.0.0.0")
	addPath(t, b, "10.244.1.0/24", "127.0.0.2", 65001)
	addPath(t, b, "fd00:10:244:1::/64", "fd00::2")
	addPeer(t, a, "127.0.0.1", "127.0.0.2", portB, true, true)
	addPeer(t, b, "127.0.0.2", "127.0.0.1", portA, false, false)
	waitFor(t, "the session", func() bool { return established(a) && established(b) })
	waitFor(t, "the routes", func() bool {
		return numDestinations(a, bgp.RF_IPv4_UC) == 2 && numDestinations(a, bgp.RF_IPv6_UC) == 1
	})
	// The API serves in a goroutine of its own: wait until it answers.
	waitFor(t, "the API", func() bool {
		code, _, _ := vecnetctl(t, noDial(t), "show", "bgp", "--bgp-api", grpcAddr)
		return code == 0
	})

	out := mustRun(t, noDial(t), "show", "bgp", "--bgp-api", grpcAddr)
	t.Logf("show bgp:\n%s", out)
	want := "BGP speaker at " + grpcAddr + ": AS 64512, router ID 10.0.0.1, listen port " + strconv.Itoa(portA) + " on 127.0.0.1\n"
	if !strings.HasPrefix(out, want) {
		t.Errorf("first line: want %q", want)
	}
	lineMatching(t, out, `Peer AS Type State Since`)
	lineMatching(t, out, `127\.0\.0\.2 64512 iBGP/rr-client Established \d+s`)
	lineMatching(t, out, `Peer Family Received Accepted Advertised`)
	lineMatching(t, out, `127\.0\.0\.2 ipv4-unicast 1 1 1`)
	lineMatching(t, out, `127\.0\.0\.2 ipv6-unicast 1 1 0`)
	lineMatching(t, out, `Family Destinations Paths`)
	lineMatching(t, out, `ipv4-unicast 2 2`)
	lineMatching(t, out, `ipv6-unicast 1 1`)

	out = mustRun(t, noDial(t), "show", "bgp", "routes", "--bgp-api", grpcAddr)
	t.Logf("show bgp routes:\n%s", out)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("want a header and 3 routes, got %d lines", len(lines))
	}
	lineMatching(t, lines[0], `Prefix NextHop From Best Age ASPath`)
	lineMatching(t, lines[1], `10\.244\.0\.0/24 0\.0\.0\.0 local \* \d+s -`)
	lineMatching(t, lines[2], `10\.244\.1\.0/24 127\.0\.0\.2 127\.0\.0\.2 \* \d+s 65001`)
	lineMatching(t, lines[3], `fd00:10:244:1::/64 fd00::2 127\.0\.0\.2 \* \d+s -`)

	out = mustRun(t, noDial(t), "show", "bgp", "routes", "--family", "ipv6", "--bgp-api", grpcAddr)
	if n := strings.Count(out, "\n"); n != 2 || !strings.Contains(out, "fd00:10:244:1::/64") {
		t.Errorf("--family ipv6: want only the IPv6 route, got:\n%s", out)
	}
	t.Setenv("VECNET_BGP_API", grpcAddr)
	out = mustRun(t, noDial(t), "show", "bgp", "routes", "--family", "ipv4")
	if n := strings.Count(out, "\n"); n != 3 || strings.Contains(out, "fd00") {
		t.Errorf("VECNET_BGP_API, --family ipv4: want the 2 IPv4 routes, got:\n%s", out)
	}
}

// TestShowBgpUnreachable checks the error for an address where no speaker
// listens: exit 1, the address, the hint, and no vecnetd needed.
func TestShowBgpUnreachable(t *testing.T) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t, "127.0.0.1")))
	for _, env := range []bool{false, true} {
		cmdline := []string{"show", "bgp", "--bgp-api", addr}
		if env {
			t.Setenv("VECNET_BGP_API", addr)
			cmdline = []string{"show", "bgp", "routes"}
		}
		start := time.Now()
		code, out, errs := vecnetctl(t, noDial(t), cmdline...)
		if code != 1 || out != "" {
			t.Errorf("%q: exit %d, stdout %q; want 1 and none", cmdline, code, out)
		}
		for _, want := range []string{
			"vecnetctl: cannot reach the BGP speaker at " + addr + ": connect: connection refused",
			"only when BGP is enabled", "node's network namespace",
		} {
			if !strings.Contains(errs, want) {
				t.Errorf("%q: stderr %q does not contain %q", cmdline, errs, want)
			}
		}
		if strings.Count(errs, "\n") != 1 || strings.Contains(errs, "goroutine") {
			t.Errorf("%q: want a one-line message, got %q", cmdline, errs)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%q: took %v", cmdline, d)
		}
	}
}

// TestShowBgpNotReady checks the errors for a GoBGP whose BGP is not
// started yet and for a gRPC server that is not GoBGP.
func TestShowBgpNotReady(t *testing.T) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t, "127.0.0.1")))
	s := server.NewBgpServer(server.GrpcListenAddress(addr))
	go s.Serve()
	t.Cleanup(s.Stop)
	var errs string
	waitFor(t, "the API", func() bool {
		_, _, errs = vecnetctl(t, noDial(t), "show", "bgp", "routes", "--bgp-api", addr)
		return !strings.Contains(errs, "cannot reach")
	})
	if want := "vecnetctl: the BGP speaker at " + addr + " is not started"; !strings.HasPrefix(errs, want) {
		t.Errorf("not started: stderr %q, want %q", errs, want)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	go gs.Serve(l)
	t.Cleanup(gs.Stop)
	code, _, errs := vecnetctl(t, noDial(t), "show", "bgp", "--bgp-api", l.Addr().String())
	if want := "vecnetctl: " + l.Addr().String() + " does not serve GoBGP's API"; code != 1 || !strings.HasPrefix(errs, want) {
		t.Errorf("not GoBGP: exit %d, stderr %q, want %q", code, errs, want)
	}
}

func TestParseShowBgp(t *testing.T) {
	t.Setenv("VECNET_BGP_API", "")
	for _, tc := range []struct {
		in       string
		addr     string
		routes   bool
		families []bgp.Family
		wantErr  string
	}{
		{in: "", addr: defaultBgpAPI, families: bgpFamilies},
		{in: "--bgp-api [::1]:50051", addr: "[::1]:50051", families: bgpFamilies},
		{in: "routes", addr: defaultBgpAPI, routes: true, families: bgpFamilies},
		{in: "routes --family ipv4", addr: defaultBgpAPI, routes: true, families: []bgp.Family{bgp.RF_IPv4_UC}},
		{in: "--family ipv6 routes --bgp-api localhost:1", addr: "localhost:1", routes: true, families: []bgp.Family{bgp.RF_IPv6_UC}},
		{in: "routes --family all", addr: defaultBgpAPI, routes: true, families: bgpFamilies},
		{in: "--family ipv4", wantErr: "--family applies only to show bgp routes"},
		{in: "routes --family ipv5", wantErr: `--family "ipv5": want ipv4, ipv6 or all`},
		{in: "--bgp-api 127.0.0.1", wantErr: "want HOST:PORT"},
		{in: "--bgp-api :50051", wantErr: "want HOST:PORT"},
		{in: "peers", wantErr: `unexpected argument "peers"`},
		{in: "routes extra", wantErr: `unexpected argument "extra"`},
		{in: "--nope", wantErr: "not defined: --nope"},
	} {
		got, err := parseShowBgp(args(tc.in))
		if tc.wantErr != "" {
			var ue *usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: got %v, want usage error containing %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if got.addr != tc.addr || got.routes != tc.routes || !slices.Equal(got.families, tc.families) {
			t.Errorf("%q: got %+v, want addr %q routes %v families %v", tc.in, got, tc.addr, tc.routes, tc.families)
		}
	}
	if _, err := parseShowBgp(args("-h")); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: got %v, want flag.ErrHelp", err)
	}
	t.Setenv("VECNET_BGP_API", "10.1.2.3:179")
	if got, err := parseShowBgp(nil); err != nil || got.addr != "10.1.2.3:179" {
		t.Errorf("VECNET_BGP_API: got %+v, %v", got, err)
	}
	// Dispatch: help and usage errors, without any server.
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), args("help show"), &stdout, &stderr, noDial(t)); code != 0 ||
		!strings.Contains(stdout.String(), "show bgp routes [--family ipv4|ipv6|all] [--bgp-api ADDR]") {
		t.Errorf("help show: exit %d, stdout %q", code, stdout.String())
	}
	stdout.Reset()
	if code := run(context.Background(), args("show bgp -h"), &stdout, &stderr, noDial(t)); code != 0 ||
		!strings.Contains(stdout.String(), "route-reflector client") {
		t.Errorf("show bgp -h: exit %d, stdout %q", code, stdout.String())
	}
	if code := run(context.Background(), args("show bgp --family ipv4"), &stdout, &stderr, noDial(t)); code != 2 ||
		!strings.Contains(stderr.String(), "vecnetctl: show bgp: --family applies only") {
		t.Errorf("show bgp --family: exit %d, stderr %q", code, stderr.String())
	}
}
