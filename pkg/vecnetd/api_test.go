package vecnetd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	vecnetv1 "github.com/vecnet/vecnet/api/vecnet/v1"
	"github.com/vecnet/vecnet/pkg/dataplane/tables"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
)

func TestMain(m *testing.M) {
	flag.Parse()
	if !testing.Verbose() {
		slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	}
	os.Exit(m.Run())
}

// newTestAPI starts a daemon with one worker and serves its API over an
// in-memory connection. It creates no kernel interfaces; tests that need
// an interface register one directly in the tables (fakeInterface).
func newTestAPI(t testing.TB) (vecnetv1.DataplaneClient, *Daemon) {
	t.Helper()
	d, err := New(Config{Workers: 1})
	if err != nil {
		if os.Geteuid() != 0 {
			t.Skipf("vecnetd.New without root: %v", err)
		}
		t.Fatal(err)
	}
	lis := bufconn.Listen(1 << 20)
	srv := NewGRPCServer(d)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(MaxRequestBytes), grpc.MaxCallRecvMsgSize(MaxRequestBytes)),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
		if err := <-served; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			t.Errorf("Serve: %v", err)
		}
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return vecnetv1.NewDataplaneClient(conn), d
}

// fakeInterface registers a dataplane interface with no kernel device
// behind it (no TxFDs): enough for routes to resolve.
func fakeInterface(t testing.TB, d *Daemon, name string, kind tables.InterfaceKind, vrf uint32, addrs ...string) uint32 {
	t.Helper()
	idx, err := d.Tables.AddInterface(tables.Interface{Name: name, Kind: kind, MTU: 1500, VRF: vrf, MAC: [6]byte{2, 0, 0, 0, 0, 1}})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if err := d.Tables.AddAddress(name, netip.MustParsePrefix(a)); err != nil {
			t.Fatal(err)
		}
	}
	return idx
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func wantCode(t *testing.T, err error, code codes.Code, prefix string) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != code {
		t.Errorf("code %s (%q), want %s", st.Code(), st.Message(), code)
		return
	}
	if !strings.HasPrefix(st.Message(), prefix) {
		t.Errorf("message %q does not start with %q", st.Message(), prefix)
	}
}

func listRoutes(t *testing.T, c vecnetv1.DataplaneClient, req *vecnetv1.ListRoutesRequest) []*vecnetv1.Route {
	t.Helper()
	st, err := c.ListRoutes(ctx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	var out []*vecnetv1.Route
	for {
		r, err := st.Recv()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
}

func TestAPIAddRoutes100k(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	c, d := newTestAPI(t)
	fakeInterface(t, d, "uplink-tun0", tables.KindTun, 0, "10.0.0.1/24")
	const n = 100_000
	rng := rand.New(rand.NewPCG(3, 4))
	want := make(map[string]bool, n)
	req := &vecnetv1.RoutesRequest{Routes: make([]*vecnetv1.Route, 0, n)}
	for len(req.Routes) < n {
		bits := 24
		if rng.IntN(4) == 0 {
			bits = 32
		}
		a := netip.AddrFrom4([4]byte{byte(11 + rng.IntN(200)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))})
		p := netip.PrefixFrom(a, bits).Masked().String()
		if want[p] {
			continue
		}
		want[p] = true
		req.Routes = append(req.Routes, &vecnetv1.Route{Prefix: p, NextHops: []*vecnetv1.NextHop{{Ip: "10.0.0.2", Interface: "uplink-tun0", Weight: 1}}})
	}
	size := proto.Size(req)
	if size <= 4<<20 {
		t.Fatalf("request is only %d bytes; it should exceed gRPC's default 4 MiB limit", size)
	}
	start := time.Now()
	resp, err := c.AddRoutes(ctx(t), req)
	if err != nil {
		t.Fatalf("AddRoutes: %v", err)
	}
	t.Logf("AddRoutes of %d routes (%.1f MiB) in one request: %v", n, float64(size)/(1<<20), time.Since(start))
	if resp.GetCount() != n {
		t.Errorf("count %d", resp.GetCount())
	}

	start = time.Now()
	got := listRoutes(t, c, &vecnetv1.ListRoutesRequest{})
	t.Logf("ListRoutes streamed %d routes: %v", len(got), time.Since(start))
	static := 0
	for _, r := range got {
		if r.GetSource() != "static" {
			continue
		}
		static++
		if !want[r.GetPrefix()] {
			t.Fatalf("unexpected route %v", r)
		}
		delete(want, r.GetPrefix())
		if len(r.GetNextHops()) != 1 || r.GetNextHops()[0].GetIp() != "10.0.0.2" || r.GetNextHops()[0].GetInterface() != "uplink-tun0" || r.GetVrf() != 0 {
			t.Fatalf("route %v", r)
		}
	}
	if static != n || len(want) != 0 {
		t.Errorf("listed %d static routes, %d missing", static, len(want))
	}
	// Sorted by family and address.
	if !slices.IsSortedFunc(got, func(a, b *vecnetv1.Route) int {
		pa, pb := netip.MustParsePrefix(a.GetPrefix()), netip.MustParsePrefix(b.GetPrefix())
		if c := pa.Addr().Compare(pb.Addr()); c != 0 {
			return c
		}
		return pa.Bits() - pb.Bits()
	}) {
		t.Error("ListRoutes is not sorted")
	}
	// The workers' view has them too.
	s := d.Tables.Snapshot()
	if s.VRFs[0].IP4.Len() != n+2 {
		t.Errorf("fib holds %d prefixes", s.VRFs[0].IP4.Len())
	}

	// And they go away in one request.
	del := &vecnetv1.RoutesRequest{}
	for _, r := range req.Routes {
		del.Routes = append(del.Routes, &vecnetv1.Route{Prefix: r.Prefix})
	}
	start = time.Now()
	if _, err := c.DeleteRoutes(ctx(t), del); err != nil {
		t.Fatal(err)
	}
	t.Logf("DeleteRoutes of %d routes: %v", n, time.Since(start))
	if got := listRoutes(t, c, &vecnetv1.ListRoutesRequest{}); len(got) != 2 {
		t.Errorf("%d routes left", len(got))
	}
}

func TestAPIRoutes(t *testing.T) {
	c, d := newTestAPI(t)
	fakeInterface(t, d, "tun0", tables.KindTun, 0, "10.0.0.1/24")
	_, err := c.AddRoutes(ctx(t), &vecnetv1.RoutesRequest{Routes: []*vecnetv1.Route{
		{Prefix: "192.168.0.0/16", NextHops: []*vecnetv1.NextHop{{Ip: "10.0.0.2"}}},
		{Prefix: "172.16.0.0/12", NextHops: []*vecnetv1.NextHop{{Interface: "tun0", Weight: 2}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*vecnetv1.Route{}
	for _, r := range listRoutes(t, c, &vecnetv1.ListRoutesRequest{}) {
		got[r.GetPrefix()] = r
	}
	if r := got["10.0.0.1/32"]; r.GetSource() != "local" || len(r.GetNextHops()) != 1 || r.GetNextHops()[0].GetInterface() != "local" {
		t.Errorf("local route %v", r)
	}
	if r := got["10.0.0.0/24"]; r.GetSource() != "connected" || r.GetNextHops()[0].GetInterface() != "tun0" {
		t.Errorf("connected route %v", r)
	}
	// A recursive route shows what it resolved to.
	if r := got["192.168.0.0/16"]; r.GetSource() != "static" || len(r.GetNextHops()) != 2 ||
		r.GetNextHops()[0].GetIp() != "10.0.0.2" || r.GetNextHops()[1].GetIp() != "resolved:attached" || r.GetNextHops()[1].GetInterface() != "tun0" {
		t.Errorf("recursive route %v", r)
	}
	if r := got["172.16.0.0/12"]; len(r.GetNextHops()) != 1 || r.GetNextHops()[0].GetWeight() != 2 || r.GetNextHops()[0].GetInterface() != "tun0" {
		t.Errorf("dev route %v", r)
	}
	// Other VRFs are listed only when asked.
	if _, err := c.AddVrf(ctx(t), &vecnetv1.VrfRequest{Vrf: 4}); err != nil {
		t.Fatal(err)
	}
	fakeInterface(t, d, "tun4", tables.KindTun, 4, "10.0.0.1/24")
	if n := len(listRoutes(t, c, &vecnetv1.ListRoutesRequest{Vrf: 4})); n != 2 {
		t.Errorf("vrf 4 lists %d routes", n)
	}
	if n := len(listRoutes(t, c, &vecnetv1.ListRoutesRequest{AllVrfs: true})); n != 6 {
		t.Errorf("all vrfs list %d routes", n)
	}
	// An interface of another VRF is refused.
	_, err = c.AddRoutes(ctx(t), &vecnetv1.RoutesRequest{Routes: []*vecnetv1.Route{
		{Prefix: "1.0.0.0/8", NextHops: []*vecnetv1.NextHop{{Interface: "tun4"}}},
	}})
	wantCode(t, err, codes.InvalidArgument, "routes[0].next_hops[0]: ")
}

func TestAPIVrfs(t *testing.T) {
	c, d := newTestAPI(t)
	list := func() []uint32 {
		r, err := c.ListVrfs(ctx(t), &vecnetv1.ListVrfsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetVrfs()
	}
	if got := list(); !slices.Equal(got, []uint32{0}) {
		t.Errorf("ListVrfs = %v", got)
	}
	for _, v := range []uint32{7, 3, 7, 4294967295} {
		if _, err := c.AddVrf(ctx(t), &vecnetv1.VrfRequest{Vrf: v}); err != nil {
			t.Fatalf("AddVrf(%d): %v", v, err)
		}
	}
	if got := list(); !slices.Equal(got, []uint32{0, 3, 7, 4294967295}) {
		t.Errorf("ListVrfs = %v", got)
	}
	if _, err := c.DeleteVrf(ctx(t), &vecnetv1.VrfRequest{Vrf: 7}); err != nil {
		t.Fatal(err)
	}
	if got := list(); !slices.Equal(got, []uint32{0, 3, 4294967295}) {
		t.Errorf("ListVrfs = %v", got)
	}
	_, err := c.DeleteVrf(ctx(t), &vecnetv1.VrfRequest{Vrf: 7})
	wantCode(t, err, codes.NotFound, "")
	_, err = c.DeleteVrf(ctx(t), &vecnetv1.VrfRequest{Vrf: 0})
	wantCode(t, err, codes.InvalidArgument, "vrf: ")
	// A VRF in use is a precondition failure, not a bad request.
	fakeInterface(t, d, "tun3", tables.KindTun, 3)
	_, err = c.DeleteVrf(ctx(t), &vecnetv1.VrfRequest{Vrf: 3})
	wantCode(t, err, codes.FailedPrecondition, "")
	// Routes into a missing VRF.
	_, err = c.AddRoutes(ctx(t), &vecnetv1.RoutesRequest{Routes: []*vecnetv1.Route{
		{Prefix: "10.0.0.0/8", Vrf: 7, NextHops: []*vecnetv1.NextHop{{Ip: "10.0.0.1"}}},
	}})
	wantCode(t, err, codes.NotFound, "routes[0]: ")
	if got := list(); !slices.Equal(got, []uint32{0, 3, 4294967295}) {
		t.Errorf("ListVrfs = %v", got)
	}
}

func TestAPITrace(t *testing.T) {
	c, _ := newTestAPI(t)
	for _, n := range []uint32{0, 1025, 1 << 31} {
		_, err := c.TraceAdd(ctx(t), &vecnetv1.TraceAddRequest{Count: n})
		wantCode(t, err, codes.InvalidArgument, "count: ")
	}
	for _, n := range []uint32{1, 1024} {
		if _, err := c.TraceAdd(ctx(t), &vecnetv1.TraceAddRequest{Count: n}); err != nil {
			t.Errorf("TraceAdd(%d): %v", n, err)
		}
	}
	r, err := c.TraceShow(ctx(t), &vecnetv1.TraceShowRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.GetPackets()) != 0 {
		t.Errorf("traces without traffic: %v", r.GetPackets())
	}
	if _, err := c.TraceClear(ctx(t), &vecnetv1.TraceClearRequest{}); err != nil {
		t.Fatal(err)
	}
}

func TestAPIErrorCodes(t *testing.T) {
	c, d := newTestAPI(t)
	fakeInterface(t, d, "tun0", tables.KindTun, 0, "10.0.0.1/24")
	okCreate := func() *vecnetv1.CreateInterfaceRequest {
		return &vecnetv1.CreateInterfaceRequest{Netns: "vecnet-test-does-not-exist", HostIf: "eth0", HostAddrs: []string{"10.9.0.2/32"}}
	}
	for _, tc := range []struct {
		name   string
		call   func() error
		code   codes.Code
		prefix string
	}{
		{"delete missing interface", func() error {
			_, err := c.DeleteInterface(ctx(t), &vecnetv1.DeleteInterfaceRequest{Name: "nope0"})
			return err
		}, codes.NotFound, ""},
		{"delete interface without name", func() error {
			_, err := c.DeleteInterface(ctx(t), &vecnetv1.DeleteInterfaceRequest{})
			return err
		}, codes.InvalidArgument, "name: "},
		{"delete interface bad name", func() error {
			_, err := c.DeleteInterface(ctx(t), &vecnetv1.DeleteInterfaceRequest{Name: "a/b"})
			return err
		}, codes.InvalidArgument, "name: "},
		{"create: bad field", func() error {
			r := okCreate()
			r.HostAddrs = append(r.HostAddrs, "10.9.0.3/32")
			_, err := c.CreateInterface(ctx(t), r)
			return err
		}, codes.InvalidArgument, "host_addrs[1]: "},
		{"create: bad mtu", func() error {
			r := okCreate()
			r.Mtu = 100
			_, err := c.CreateInterface(ctx(t), r)
			return err
		}, codes.InvalidArgument, "mtu: "},
		{"create: name taken", func() error {
			r := okCreate()
			r.Name = "tun0"
			_, err := c.CreateInterface(ctx(t), r)
			return err
		}, codes.AlreadyExists, "name: "},
		{"create: missing vrf", func() error {
			r := okCreate()
			r.Vrf = 99
			_, err := c.CreateInterface(ctx(t), r)
			return err
		}, codes.NotFound, "vrf: "},
		{"create: missing netns", func() error {
			_, err := c.CreateInterface(ctx(t), okCreate())
			return err
		}, codes.FailedPrecondition, ""},
		{"add address: missing interface", func() error {
			_, err := c.AddAddress(ctx(t), &vecnetv1.AddressRequest{Interface: "nope0", Address: "10.1.0.1/24"})
			return err
		}, codes.NotFound, ""},
		{"add address: bad address", func() error {
			_, err := c.AddAddress(ctx(t), &vecnetv1.AddressRequest{Interface: "tun0", Address: "10.1.0.1"})
			return err
		}, codes.InvalidArgument, "address: "},
		{"delete address: not there", func() error {
			_, err := c.DeleteAddress(ctx(t), &vecnetv1.AddressRequest{Interface: "tun0", Address: "10.1.0.1/24"})
			return err
		}, codes.NotFound, ""},
		{"add routes: bad prefix", func() error {
			_, err := c.AddRoutes(ctx(t), &vecnetv1.RoutesRequest{Routes: []*vecnetv1.Route{
				{Prefix: "10.0.0.0/8", NextHops: []*vecnetv1.NextHop{{Ip: "10.0.0.2"}}},
				{Prefix: "10.0.0.1/8", NextHops: []*vecnetv1.NextHop{{Ip: "10.0.0.2"}}},
			}})
			return err
		}, codes.InvalidArgument, "routes[1].prefix: "},
		{"add routes: unknown interface", func() error {
			_, err := c.AddRoutes(ctx(t), &vecnetv1.RoutesRequest{Routes: []*vecnetv1.Route{
				{Prefix: "10.0.0.0/8", NextHops: []*vecnetv1.NextHop{{Ip: "10.0.0.2"}, {Interface: "nope0"}}},
			}})
			return err
		}, codes.InvalidArgument, "routes[0].next_hops[1].interface: "},
		{"add routes: unreachable next hop", func() error {
			_, err := c.AddRoutes(ctx(t), &vecnetv1.RoutesRequest{Routes: []*vecnetv1.Route{
				{Prefix: "20.0.0.0/8", NextHops: []*vecnetv1.NextHop{{Ip: "10.0.0.2"}}},
				{Prefix: "30.0.0.0/8", NextHops: []*vecnetv1.NextHop{{Ip: "10.0.0.3"}, {Ip: "172.31.0.1"}}},
			}})
			return err
		}, codes.InvalidArgument, "routes[1].next_hops[1]: "},
		{"add routes: via own address", func() error {
			_, err := c.AddRoutes(ctx(t), &vecnetv1.RoutesRequest{Routes: []*vecnetv1.Route{
				{Prefix: "20.0.0.0/8", NextHops: []*vecnetv1.NextHop{{Ip: "10.0.0.1"}}},
			}})
			return err
		}, codes.InvalidArgument, "routes[0].next_hops[0]: "},
		{"delete routes: missing", func() error {
			_, err := c.DeleteRoutes(ctx(t), &vecnetv1.RoutesRequest{Routes: []*vecnetv1.Route{{Prefix: "20.0.0.0/8"}}})
			return err
		}, codes.NotFound, "routes[0]: "},
		{"pcap: missing interface", func() error {
			st, err := c.Pcap(ctx(t), &vecnetv1.PcapRequest{Interface: "nope0", Count: 1})
			if err != nil {
				return err
			}
			_, err = st.Recv()
			return err
		}, codes.NotFound, "interface: "},
		{"pcap: bad count", func() error {
			st, err := c.Pcap(ctx(t), &vecnetv1.PcapRequest{Interface: "tun0"})
			if err != nil {
				return err
			}
			_, err = st.Recv()
			return err
		}, codes.InvalidArgument, "count: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantCode(t, tc.call(), tc.code, tc.prefix)
		})
	}
	// Nothing above changed the tables.
	if n := d.Tables.RouteCount(); n != 2 {
		t.Errorf("%d routes after failed requests: %v", n, d.Tables.Routes(0, true))
	}
	if ifs := d.Tables.Interfaces(); len(ifs) != 1 {
		t.Errorf("interfaces %v", ifs)
	}
}

func TestAPIListing(t *testing.T) {
	c, d := newTestAPI(t)
	tap := fakeInterface(t, d, "tap0", tables.KindTap, 0, "10.0.0.1/24", "fd00::1/64")
	if _, err := c.AddRoutes(ctx(t), &vecnetv1.RoutesRequest{Routes: []*vecnetv1.Route{
		{Prefix: "0.0.0.0/0", NextHops: []*vecnetv1.NextHop{{Ip: "10.0.0.2"}}},
	}}); err != nil {
		t.Fatal(err)
	}
	d.Tables.LearnNeighbor(tap, netip.MustParseAddr("fd00::2"), [6]byte{2, 1, 2, 3, 4, 5})
	ifs, err := c.ListInterfaces(ctx(t), &vecnetv1.ListInterfacesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ifs.GetInterfaces()) != 1 {
		t.Fatalf("interfaces %v", ifs.GetInterfaces())
	}
	i := ifs.GetInterfaces()[0]
	if i.GetName() != "tap0" || i.GetKind() != vecnetv1.InterfaceKind_INTERFACE_KIND_TAP || i.GetIndex() != tap ||
		i.GetMac() != "02:00:00:00:00:01" || !slices.Equal(i.GetAddresses(), []string{"10.0.0.1", "fd00::1"}) || i.GetCounters() == nil {
		t.Errorf("interface %v", i)
	}
	nb, err := c.ListNeighbors(ctx(t), &vecnetv1.ListNeighborsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var states []string
	for _, n := range nb.GetNeighbors() {
		states = append(states, fmt.Sprintf("%s %s %s %s", n.GetInterface(), n.GetIp(), n.GetMac(), n.GetState()))
	}
	want := []string{"tap0 fd00::2 02:01:02:03:04:05 reachable", "tap0 10.0.0.2  incomplete"}
	if !slices.Equal(states, want) {
		t.Errorf("neighbours %q, want %q", states, want)
	}
	rt, err := c.GetRuntime(ctx(t), &vecnetv1.GetRuntimeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if rt.GetWorkers() != 1 || len(rt.GetNodes()) == 0 {
		t.Errorf("runtime: %d workers, %d nodes", rt.GetWorkers(), len(rt.GetNodes()))
	}
	if _, err := c.GetErrors(ctx(t), &vecnetv1.GetErrorsRequest{}); err != nil {
		t.Fatal(err)
	}
}
