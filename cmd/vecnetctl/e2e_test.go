package main

// End-to-end tests: vecnetctl's run() against an in-process fake vecnetd on
// a bufconn listener.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"

	vecnetv1 "github.com/vecnet/vecnet/api/vecnet/v1"
	"github.com/vecnet/vecnet/pkg/pcapfile"
)

// fakeServer records requests and answers with canned data.
type fakeServer struct {
	vecnetv1.UnimplementedDataplaneServer

	mu       sync.Mutex
	requests []proto.Message

	err        error // returned by every unary RPC when set
	interfaces []*vecnetv1.Interface
	routes     []*vecnetv1.Route
	neighbors  []*vecnetv1.Neighbor
	runtime    *vecnetv1.GetRuntimeResponse
	errors     []*vecnetv1.ErrorCounter
	vrfs       []uint32
	traces     []*vecnetv1.PacketTrace
	pcap       []*vecnetv1.PcapPacket
	pcapErr    error
	// addRoutes, when set, answers AddRoutes.
	addRoutes func(*vecnetv1.RoutesRequest) (*vecnetv1.RoutesResponse, error)
}

func (s *fakeServer) record(m proto.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, m)
	return s.err
}

func (s *fakeServer) reqs() []proto.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]proto.Message(nil), s.requests...)
}

func (s *fakeServer) CreateInterface(_ context.Context, r *vecnetv1.CreateInterfaceRequest) (*vecnetv1.Interface, error) {
	if err := s.record(r); err != nil {
		return nil, err
	}
	name := r.GetName()
	if name == "" {
		name = "tun7"
	}
	return &vecnetv1.Interface{Name: name, Kind: r.GetKind()}, nil
}

func (s *fakeServer) DeleteInterface(_ context.Context, r *vecnetv1.DeleteInterfaceRequest) (*vecnetv1.DeleteInterfaceResponse, error) {
	return &vecnetv1.DeleteInterfaceResponse{}, s.record(r)
}

func (s *fakeServer) ListInterfaces(_ context.Context, r *vecnetv1.ListInterfacesRequest) (*vecnetv1.ListInterfacesResponse, error) {
	return &vecnetv1.ListInterfacesResponse{Interfaces: s.interfaces}, s.record(r)
}

func (s *fakeServer) AddAddress(_ context.Context, r *vecnetv1.AddressRequest) (*vecnetv1.AddressResponse, error) {
	return &vecnetv1.AddressResponse{}, s.record(r)
}

func (s *fakeServer) DeleteAddress(_ context.Context, r *vecnetv1.AddressRequest) (*vecnetv1.AddressResponse, error) {
	return &vecnetv1.AddressResponse{}, s.record(r)
}

func (s *fakeServer) AddVrf(_ context.Context, r *vecnetv1.VrfRequest) (*vecnetv1.VrfResponse, error) {
	return &vecnetv1.VrfResponse{}, s.record(r)
}

func (s *fakeServer) ListVrfs(_ context.Context, r *vecnetv1.ListVrfsRequest) (*vecnetv1.ListVrfsResponse, error) {
	return &vecnetv1.ListVrfsResponse{Vrfs: s.vrfs}, s.record(r)
}

func (s *fakeServer) AddRoutes(_ context.Context, r *vecnetv1.RoutesRequest) (*vecnetv1.RoutesResponse, error) {
	if err := s.record(r); err != nil {
		return nil, err
	}
	if s.addRoutes != nil {
		return s.addRoutes(r)
	}
	return &vecnetv1.RoutesResponse{Count: uint32(len(r.GetRoutes()))}, nil
}

func (s *fakeServer) DeleteRoutes(_ context.Context, r *vecnetv1.RoutesRequest) (*vecnetv1.RoutesResponse, error) {
	return &vecnetv1.RoutesResponse{Count: uint32(len(r.GetRoutes()))}, s.record(r)
}

func (s *fakeServer) ListRoutes(r *vecnetv1.ListRoutesRequest, stream grpc.ServerStreamingServer[vecnetv1.Route]) error {
	if err := s.record(r); err != nil {
		return err
	}
	for _, rt := range s.routes {
		if r.GetAllVrfs() || rt.GetVrf() == r.GetVrf() {
			if err := stream.Send(rt); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *fakeServer) ListNeighbors(_ context.Context, r *vecnetv1.ListNeighborsRequest) (*vecnetv1.ListNeighborsResponse, error) {
	return &vecnetv1.ListNeighborsResponse{Neighbors: s.neighbors}, s.record(r)
}

func (s *fakeServer) GetRuntime(_ context.Context, r *vecnetv1.GetRuntimeRequest) (*vecnetv1.GetRuntimeResponse, error) {
	return s.runtime, s.record(r)
}

func (s *fakeServer) GetErrors(_ context.Context, r *vecnetv1.GetErrorsRequest) (*vecnetv1.GetErrorsResponse, error) {
	return &vecnetv1.GetErrorsResponse{Errors: s.errors}, s.record(r)
}

func (s *fakeServer) TraceAdd(_ context.Context, r *vecnetv1.TraceAddRequest) (*vecnetv1.TraceAddResponse, error) {
	return &vecnetv1.TraceAddResponse{}, s.record(r)
}

func (s *fakeServer) TraceShow(_ context.Context, r *vecnetv1.TraceShowRequest) (*vecnetv1.TraceShowResponse, error) {
	return &vecnetv1.TraceShowResponse{Packets: s.traces}, s.record(r)
}

func (s *fakeServer) TraceClear(_ context.Context, r *vecnetv1.TraceClearRequest) (*vecnetv1.TraceClearResponse, error) {
	return &vecnetv1.TraceClearResponse{}, s.record(r)
}

func (s *fakeServer) Pcap(r *vecnetv1.PcapRequest, stream grpc.ServerStreamingServer[vecnetv1.PcapPacket]) error {
	if err := s.record(r); err != nil {
		return err
	}
	for _, p := range s.pcap {
		if err := stream.Send(p); err != nil {
			return err
		}
	}
	if s.pcapErr == errBlock {
		<-stream.Context().Done()
		return stream.Context().Err()
	}
	return s.pcapErr
}

// errBlock makes the fake Pcap stream wait for the client to go away.
var errBlock = fmt.Errorf("block")

// startFake serves srv on a bufconn listener and returns a dialFunc for it.
func startFake(t *testing.T, srv *fakeServer) dialFunc {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer(grpc.MaxRecvMsgSize(maxMsgSize))
	vecnetv1.RegisterDataplaneServer(gs, srv)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	return func(socket string) (grpc.ClientConnInterface, io.Closer, error) {
		conn, err := grpc.NewClient("passthrough:///bufnet",
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(maxMsgSize), grpc.MaxCallRecvMsgSize(maxMsgSize)),
		)
		return conn, conn, err
	}
}

// vecnetctl runs the command line and returns exit status and output.
func vecnetctl(t *testing.T, dial dialFunc, cmdline ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), cmdline, &out, &errb, dial)
	return code, out.String(), errb.String()
}

func mustRun(t *testing.T, dial dialFunc, cmdline ...string) string {
	t.Helper()
	code, out, errs := vecnetctl(t, dial, cmdline...)
	if code != 0 {
		t.Fatalf("%q: exit %d: %s", cmdline, code, errs)
	}
	return out
}

func checkRequests(t *testing.T, srv *fakeServer, want ...proto.Message) {
	t.Helper()
	got := srv.reqs()
	if len(got) != len(want) {
		t.Fatalf("got %d requests %v, want %d %v", len(got), got, len(want), want)
	}
	for i := range got {
		if !proto.Equal(got[i], want[i]) {
			t.Errorf("request %d:\n got %T %v\nwant %T %v", i, got[i], got[i], want[i], want[i])
		}
	}
}

func TestE2EConfigCommands(t *testing.T) {
	srv := &fakeServer{}
	dial := startFake(t, srv)

	out := mustRun(t, dial, "interface", "create", "tap", "--netns", "pod1", "--host-if", "eth0", "--host-addr", "10.1.0.5/32,fd00::5/128", "--vrf", "2")
	if out != "tun7\n" {
		t.Errorf("interface create printed %q, want the name alone", out)
	}
	out = mustRun(t, dial, "interface", "create", "tun", "--netns", "pod2", "--host-if", "eth0", "--host-addr", "10.1.0.6/32", "--name", "pod2")
	if out != "pod2\n" {
		t.Errorf("interface create --name printed %q", out)
	}
	for _, cmd := range [][]string{
		{"interface", "delete", "pod2"},
		{"address", "add", "tap0", "10.0.0.1/24"},
		{"address", "del", "tap0", "10.0.0.1/24"},
		{"route", "add", "10.2.0.0/16", "via", "10.0.0.2,10.0.0.3", "--vrf", "2"},
		{"route", "del", "10.2.0.0/16", "--vrf", "2"},
		{"vrf", "add", "2"},
		{"trace", "add", "10"},
		{"trace", "clear"},
	} {
		if out := mustRun(t, dial, cmd...); out != "" {
			t.Errorf("%q printed %q, want nothing", cmd, out)
		}
	}
	checkRequests(t, srv,
		&vecnetv1.CreateInterfaceRequest{Kind: tap, Netns: "pod1", HostIf: "eth0", HostAddrs: []string{"10.1.0.5/32", "fd00::5/128"}, Vrf: 2},
		&vecnetv1.CreateInterfaceRequest{Kind: tun, Netns: "pod2", HostIf: "eth0", HostAddrs: []string{"10.1.0.6/32"}, Name: "pod2"},
		&vecnetv1.DeleteInterfaceRequest{Name: "pod2"},
		&vecnetv1.AddressRequest{Interface: "tap0", Address: "10.0.0.1/24"},
		&vecnetv1.AddressRequest{Interface: "tap0", Address: "10.0.0.1/24"},
		routes(route("10.2.0.0/16", 2, via("10.0.0.2", ""), via("10.0.0.3", ""))),
		routes(route("10.2.0.0/16", 2)),
		&vecnetv1.VrfRequest{Vrf: 2},
		&vecnetv1.TraceAddRequest{Count: 10},
		&vecnetv1.TraceClearRequest{},
	)
}

func TestE2EStatusError(t *testing.T) {
	srv := &fakeServer{err: status.Error(codes.InvalidArgument, "routes[0].next_hops[0].interface: no interface \"tun9\"")}
	dial := startFake(t, srv)
	code, out, errs := vecnetctl(t, dial, "route", "add", "10.0.0.0/8", "dev", "tun9")
	if code != 1 || out != "" || errs != "vecnetctl: routes[0].next_hops[0].interface: no interface \"tun9\"\n" {
		t.Fatalf("exit %d stdout %q stderr %q", code, out, errs)
	}
	srv.err = status.Error(codes.NotFound, "interface \"x\" not found")
	code, _, errs = vecnetctl(t, dial, "show", "interfaces")
	if code != 1 || errs != "vecnetctl: interface \"x\" not found\n" {
		t.Fatalf("exit %d stderr %q", code, errs)
	}
}

func TestE2EUnimplemented(t *testing.T) {
	type bare struct {
		vecnetv1.UnimplementedDataplaneServer
	}
	lis := bufconn.Listen(1 << 16)
	gs := grpc.NewServer()
	vecnetv1.RegisterDataplaneServer(gs, bare{})
	go gs.Serve(lis)
	defer gs.Stop()
	dial := func(string) (grpc.ClientConnInterface, io.Closer, error) {
		conn, err := grpc.NewClient("passthrough:///bufnet",
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
			grpc.WithTransportCredentials(insecure.NewCredentials()))
		return conn, conn, err
	}
	code, _, errs := vecnetctl(t, dial, "show", "vrfs")
	if code != 1 || !strings.Contains(errs, "vecnetd does not implement this request") {
		t.Fatalf("exit %d stderr %q", code, errs)
	}
}

func TestE2EShowInterfaces(t *testing.T) {
	srv := &fakeServer{interfaces: []*vecnetv1.Interface{
		{Name: "tap1", Index: 2, Kind: tap, Netns: "/proc/42/ns/net", HostIf: "eth0", Mtu: 9000, Queues: 4, Vrf: 1,
			Addresses: []string{"10.1.0.1/24", "fd00::1/64"}, Offloads: "csum,tso4,tso6",
			Counters: &vecnetv1.InterfaceCounters{RxPackets: 123456, TxPackets: 654321, Drops: 7}},
		{Name: "tun0", Index: 1, Kind: tun, Netns: "pod1", HostIf: "eth0", Mtu: 1500, Queues: 1},
	}}
	out := mustRun(t, startFake(t, srv), "show", "interfaces")
	want := `Name  Index  Kind  Netns            HostIf  MTU   Queues  VRF  Addresses               RxPkts  TxPkts  Drops  Offloads
tun0  1      tun   pod1             eth0    1500  1       0    -                       0       0       0      -
tap1  2      tap   /proc/42/ns/net  eth0    9000  4       1    10.1.0.1/24,fd00::1/64  123456  654321  7      csum,tso4,tso6
`
	if out != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
}

func TestE2EShowRoutes(t *testing.T) {
	srv := &fakeServer{routes: []*vecnetv1.Route{
		route("fd00::/64", 0, via("", "tap1")),
		{Prefix: "10.1.0.1/32", Source: "local"},
		{Prefix: "10.0.0.0/8", NextHops: []*vecnetv1.NextHop{{Ip: "192.168.1.1", Weight: 2}, {Ip: "192.168.1.2"}}, Source: "static"},
		{Prefix: "10.0.0.0/16", Vrf: 3, NextHops: []*vecnetv1.NextHop{{Interface: "tun0"}}, Source: "connected"},
		{Prefix: "9.0.0.0/8", NextHops: []*vecnetv1.NextHop{{Interface: "tun0"}}, Source: "static"},
		{Prefix: "10.9.0.0/24", NextHops: []*vecnetv1.NextHop{{Ip: "192.168.1.9", Encap: "vxlan", Vni: 4096}}, Source: "static"},
	}}
	dial := startFake(t, srv)
	out := mustRun(t, dial, "show", "routes")
	want := `VRF  Prefix       Via          Dev   Weight  Encap           Source
0    9.0.0.0/8    -            tun0  1       -               static
0    10.0.0.0/8   192.168.1.1  -     2       -               static
0    10.0.0.0/8   192.168.1.2  -     1       -               static
0    10.1.0.1/32  -            -     -       -               local
0    10.9.0.0/24  192.168.1.9  -     1       vxlan vni 4096  static
0    fd00::/64    -            tap1  1       -               -
`
	if out != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
	out = mustRun(t, dial, "show", "routes", "--all")
	if !strings.HasSuffix(out, "3    10.0.0.0/16  -            tun0  1       -               connected\n") {
		t.Errorf("--all: got\n%s", out)
	}
	out = mustRun(t, dial, "show", "routes", "--vrf", "3")
	if strings.Count(out, "\n") != 2 {
		t.Errorf("--vrf 3: got\n%s", out)
	}
	checkRequests(t, srv, &vecnetv1.ListRoutesRequest{}, &vecnetv1.ListRoutesRequest{AllVrfs: true}, &vecnetv1.ListRoutesRequest{Vrf: 3})
}

func TestE2EShowNeighborsErrorsVrfs(t *testing.T) {
	srv := &fakeServer{
		neighbors: []*vecnetv1.Neighbor{
			{Interface: "tap1", Ip: "10.1.0.5", Mac: "02:00:00:00:00:05", State: "reachable"},
			{Interface: "tap1", Ip: "10.1.0.10", State: "incomplete"},
			{Interface: "tap0", Ip: "fd00::2", Mac: "02:00:00:00:00:02", State: "static"},
		},
		errors: []*vecnetv1.ErrorCounter{
			{Node: "ip4-lookup", Reason: "no route", Count: 12},
			{Node: "ip4-input", Reason: "ttl expired", Count: 0},
			{Node: "ip4-input", Reason: "bad checksum", Count: 3},
		},
		vrfs: []uint32{5, 0, 2},
	}
	dial := startFake(t, srv)
	for _, tc := range []struct{ cmd, want string }{
		{"neighbors", `Interface  IP         MAC                State
tap0       fd00::2    02:00:00:00:00:02  static
tap1       10.1.0.5   02:00:00:00:00:05  reachable
tap1       10.1.0.10  -                  incomplete
`},
		{"errors", `Count  Node        Reason
3      ip4-input   bad checksum
12     ip4-lookup  no route
`},
		{"vrfs", "VRF\n0\n2\n5\n"},
	} {
		if out := mustRun(t, dial, "show", tc.cmd); out != tc.want {
			t.Errorf("show %s: got\n%s\nwant\n%s", tc.cmd, out, tc.want)
		}
	}
}

func TestE2EShowRuntime(t *testing.T) {
	srv := &fakeServer{runtime: &vecnetv1.GetRuntimeResponse{
		Workers:  2,
		UptimeNs: uint64(90 * time.Second),
		Nodes: []*vecnetv1.NodeRuntime{
			{Worker: 1, Name: "tun-input", Calls: 10, Vectors: 10, Packets: 640, Nanoseconds: 64000},
			{Worker: 0, Name: "tun-output", Calls: 5, Vectors: 4, Packets: 100, Nanoseconds: 5000},
			{Worker: 0, Name: "ip4-lookup", Calls: 3, Vectors: 3, Packets: 96, Nanoseconds: 1920},
			{Worker: 0, Name: "ip6-lookup"},
		},
	}}
	dial := startFake(t, srv)
	out := mustRun(t, dial, "show", "runtime")
	want := `Time 1m30s, 2 workers

Worker 0
Name        Calls  Vectors  Packets  Packets/Vector  ns/packet
ip4-lookup  3      3        96       32.00           20.00
tun-output  5      4        100      25.00           50.00

Worker 1
Name       Calls  Vectors  Packets  Packets/Vector  ns/packet
tun-input  10     10       640      64.00           100.00
`
	if out != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
	out = mustRun(t, dial, "show", "runtime", "--all")
	if !strings.Contains(out, "ip6-lookup  0      0        0        -               -\n") {
		t.Errorf("--all: got\n%s", out)
	}
}

func TestE2ETraceShow(t *testing.T) {
	srv := &fakeServer{}
	dial := startFake(t, srv)
	if out := mustRun(t, dial, "trace", "show"); out != "No packets in trace buffer\n" {
		t.Errorf("empty trace: %q", out)
	}
	srv.traces = []*vecnetv1.PacketTrace{
		{Worker: 1, Sequence: 0, Steps: []*vecnetv1.TraceStep{{Node: "tun-input", Detail: "tun1 len 84", TimeNs: 5_000_000_123}}},
		{Worker: 0, Sequence: 1, Steps: []*vecnetv1.TraceStep{
			{Node: "tun-input", Detail: "tun0 len 84", TimeNs: 3723_000_000_001},
			{Node: "ip4-lookup", Detail: "10.0.0.1 -> 10.0.0.2\nfib 0 adj 3", TimeNs: 3723_000_000_500},
			{Node: "drop", TimeNs: 3723_000_000_900},
		}},
	}
	want := `Packet 1 (worker 0)
  01:02:03:000000001 tun-input: tun0 len 84
  01:02:03:000000500 ip4-lookup: 10.0.0.1 -> 10.0.0.2
    fib 0 adj 3
  01:02:03:000000900 drop:

Packet 2 (worker 1)
  00:00:05:000000123 tun-input: tun1 len 84
`
	if out := mustRun(t, dial, "trace", "show"); out != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
}

func TestE2ERouteLoad(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "routes.txt")
	var b strings.Builder
	b.WriteString("# generated\n\n")
	for i := range 1000 {
		fmt.Fprintf(&b, "10.%d.%d.0/24 via 192.168.0.1,192.168.0.2\n", i/256, i%256)
	}
	b.WriteString("fd00:1::/64 dev tap0   # trailing comment\n")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}

	srv := &fakeServer{}
	dial := startFake(t, srv)
	out := mustRun(t, dial, "route", "load", file, "--vrf", "3")
	if !strings.HasPrefix(out, "loaded 1001 routes in ") {
		t.Errorf("output %q", out)
	}
	reqs := srv.reqs()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	rs := reqs[0].(*vecnetv1.RoutesRequest).GetRoutes()
	if len(rs) != 1001 ||
		!proto.Equal(rs[0], route("10.0.0.0/24", 3, via("192.168.0.1", ""), via("192.168.0.2", ""))) ||
		!proto.Equal(rs[1000], route("fd00:1::/64", 3, via("", "tap0"))) {
		t.Fatalf("routes: %d, first %v, last %v", len(rs), rs[0], rs[len(rs)-1])
	}

	// Batches, and an error naming a route: mapped to its file line.
	srv = &fakeServer{}
	srv.addRoutes = func(r *vecnetv1.RoutesRequest) (*vecnetv1.RoutesResponse, error) {
		for i, rt := range r.GetRoutes() {
			if rt.GetPrefix() == "fd00:1::/64" {
				return nil, status.Errorf(codes.InvalidArgument, "routes[%d].next_hops[0].interface: no interface \"tap0\"", i)
			}
		}
		return &vecnetv1.RoutesResponse{Count: uint32(len(r.GetRoutes()))}, nil
	}
	dial = startFake(t, srv)
	code, out, errs := vecnetctl(t, dial, "route", "load", "--batch", "300", file)
	want := fmt.Sprintf("vecnetctl: %s:1003: routes[100].next_hops[0].interface: no interface \"tap0\"; the first 900 routes (up to %s:902) were loaded\n", file, file)
	if code != 1 || out != "" || errs != want {
		t.Fatalf("exit %d stdout %q stderr\n%q\nwant\n%q", code, out, errs, want)
	}
	if n := len(srv.reqs()); n != 4 {
		t.Errorf("%d requests, want 4", n)
	}

	// A syntax error stops before any request.
	bad := filepath.Join(dir, "bad.txt")
	os.WriteFile(bad, []byte("10.0.0.0/8 via 1.1.1.1\n10.0.0.0/8 via x\n"), 0o644)
	srv = &fakeServer{}
	code, _, errs = vecnetctl(t, startFake(t, srv), "route", "load", bad)
	if code != 1 || errs != "vecnetctl: "+bad+":2: via: invalid IP address \"x\"\n" || len(srv.reqs()) != 0 {
		t.Fatalf("exit %d stderr %q, %d requests", code, errs, len(srv.reqs()))
	}
	code, _, errs = vecnetctl(t, startFake(t, srv), "route", "load", filepath.Join(dir, "missing.txt"))
	if code != 1 || !strings.Contains(errs, "no such file") {
		t.Fatalf("exit %d stderr %q", code, errs)
	}
}

// TestE2ERouteLoadLarge sends 100 000 routes in one request, more than
// gRPC's default 4 MiB message limit.
func TestE2ERouteLoadLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	var b strings.Builder
	for i := range 100000 {
		fmt.Fprintf(&b, "10.%d.%d.0/24 via 192.168.100.101,192.168.100.102 dev tap-uplink0\n", i>>8&255, i&255)
	}
	if b.Len() < 4<<20 {
		t.Fatalf("test file only %d bytes", b.Len())
	}
	srv := &fakeServer{}
	var out bytes.Buffer
	dial := startFake(t, srv)
	conn, closer, err := dial("")
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	err = runRouteLoad(context.Background(), vecnetv1.NewDataplaneClient(conn), &out, strings.NewReader(b.String()), "big", routeLoadOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "loaded 100000 routes in ") {
		t.Fatalf("output %q", out.String())
	}
	if n := len(srv.reqs()[0].(*vecnetv1.RoutesRequest).GetRoutes()); n != 100000 {
		t.Fatalf("server got %d routes", n)
	}
}

func pcapPacket(ts uint64, link uint32, dir string, data ...byte) *vecnetv1.PcapPacket {
	return &vecnetv1.PcapPacket{TimestampNs: ts, LinkType: link, Direction: dir, Data: data, OriginalLength: uint32(len(data))}
}

func TestE2EPcap(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "cap.pcap")
	srv := &fakeServer{pcap: []*vecnetv1.PcapPacket{
		pcapPacket(1_700_000_000_123_456_789, pcapfile.LinkTypeRaw, "rx", 0x45, 0, 0, 20),
		{TimestampNs: 1_700_000_001_000_000_000, LinkType: pcapfile.LinkTypeRaw, Direction: "tx", Data: []byte{0x45, 1}, OriginalLength: 1500},
	}}
	dial := startFake(t, srv)
	out := mustRun(t, dial, "pcap", "--interface", "tun0", "--count", "2", "--file", file, "--timeout", "5s")
	if out != "captured 2 packets (rx 1, tx 1) to "+file+"\n" {
		t.Errorf("output %q", out)
	}
	checkRequests(t, srv, &vecnetv1.PcapRequest{Interface: "tun0", Count: 2, TimeoutMs: 5000})
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapfile.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType() != pcapfile.LinkTypeRaw || r.Resolution() != pcapfile.Nanosecond {
		t.Fatalf("link type %d resolution %v", r.LinkType(), r.Resolution())
	}
	for i, want := range srv.pcap {
		p, err := r.ReadPacket()
		if err != nil {
			t.Fatal(err)
		}
		if p.Timestamp.UnixNano() != int64(want.GetTimestampNs()) || !bytes.Equal(p.Data, want.GetData()) || p.OrigLen != int(want.GetOriginalLength()) {
			t.Errorf("packet %d: %+v, want %v", i, p, want)
		}
	}
	if _, err := r.ReadPacket(); err != io.EOF {
		t.Errorf("after the packets: %v", err)
	}
}

func TestE2EPcapMixedLinkTypes(t *testing.T) {
	file := filepath.Join(t.TempDir(), "mixed.pcap")
	srv := &fakeServer{pcap: []*vecnetv1.PcapPacket{
		pcapPacket(1, pcapfile.LinkTypeRaw, "rx", 0x45),
		pcapPacket(2, pcapfile.LinkTypeEthernet, "rx", 0x02),
	}}
	code, _, errs := vecnetctl(t, startFake(t, srv), "pcap", "--interface", "tun0", "--count", "2", "--file", file)
	if code != 1 || !strings.Contains(errs, "packet 2 has link type 1 (Ethernet, tap) but the capture started with 101 (raw IP, tun)") ||
		!strings.Contains(errs, "the 1 packets captured before are in "+file) {
		t.Fatalf("exit %d stderr %q", code, errs)
	}
}

func TestE2EPcapNoPackets(t *testing.T) {
	dir := t.TempDir()
	srv := &fakeServer{interfaces: []*vecnetv1.Interface{{Name: "tap0", Kind: tap}}}
	dial := startFake(t, srv)
	file := filepath.Join(dir, "empty.pcap")
	out := mustRun(t, dial, "pcap", "--interface", "tap0", "--count", "5", "--file", file)
	if out != "captured 0 packets (rx 0, tx 0) to "+file+"\n" {
		t.Errorf("output %q", out)
	}
	f, _ := os.Open(file)
	defer f.Close()
	r, err := pcapfile.NewReader(f)
	if err != nil || r.LinkType() != pcapfile.LinkTypeEthernet {
		t.Fatalf("reader %v, %v", r, err)
	}

	// An error before any packet leaves no file behind.
	srv.pcapErr = status.Error(codes.NotFound, "interface: no interface \"tap9\"")
	file = filepath.Join(dir, "none.pcap")
	code, _, errs := vecnetctl(t, dial, "pcap", "--interface", "tap9", "--count", "5", "--file", file)
	if code != 1 || errs != "vecnetctl: interface: no interface \"tap9\"\n" {
		t.Fatalf("exit %d stderr %q", code, errs)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("file left behind: %v", err)
	}
}

// TestE2EPcapInterrupted cancels the capture (as Ctrl-C does) and keeps the
// packets received so far.
func TestE2EPcapInterrupted(t *testing.T) {
	file := filepath.Join(t.TempDir(), "int.pcap")
	srv := &fakeServer{pcap: []*vecnetv1.PcapPacket{pcapPacket(1, pcapfile.LinkTypeRaw, "rx", 0x45)}, pcapErr: errBlock}
	dial := startFake(t, srv)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for len(srv.reqs()) == 0 {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond)
		cancel()
	}()
	var out, errs bytes.Buffer
	code := run(ctx, []string{"pcap", "--interface", "tun0", "--count", "5", "--file", file}, &out, &errs, dial)
	if code != 0 || out.String() != "captured 1 packets (rx 1, tx 0) to "+file+" (interrupted)\n" {
		t.Fatalf("exit %d stdout %q stderr %q", code, out.String(), errs.String())
	}
}

// TestE2EPcapStdout writes the file to standard output and the summary to
// standard error.
func TestE2EPcapStdout(t *testing.T) {
	srv := &fakeServer{pcap: []*vecnetv1.PcapPacket{pcapPacket(1, pcapfile.LinkTypeEthernet, "tx", 1, 2, 3)}}
	code, out, errs := vecnetctl(t, startFake(t, srv), "pcap", "--interface", "tap0", "--count", "1", "--file", "-")
	if code != 0 || errs != "captured 1 packets (rx 0, tx 1) to -\n" {
		t.Fatalf("exit %d stderr %q", code, errs)
	}
	r, err := pcapfile.NewReader(strings.NewReader(out))
	if err != nil || r.LinkType() != pcapfile.LinkTypeEthernet {
		t.Fatalf("%v %v", r, err)
	}
}

// TestE2ETimeout checks the per-RPC deadline and its message.
func TestE2ETimeout(t *testing.T) {
	srv := &fakeServer{pcap: nil, pcapErr: errBlock}
	dial := startFake(t, srv)
	code, _, errs := vecnetctl(t, dial, "--timeout", "200ms", "pcap", "--interface", "tun0", "--count", "1", "--file", filepath.Join(t.TempDir(), "x"), "--timeout", "1ms")
	if code != 1 || !strings.Contains(errs, "timed out; the deadline is --timeout 200ms") {
		t.Fatalf("exit %d stderr %q", code, errs)
	}
}

// TestUnixSocket runs against a server on a real unix socket, as vecnetd
// serves, through the production dialer.
func TestUnixSocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "vctl")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "vecnetd.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	vecnetv1.RegisterDataplaneServer(gs, &fakeServer{vrfs: []uint32{0, 1}})
	go gs.Serve(lis)
	defer gs.Stop()
	var out, errs bytes.Buffer
	if code := run(context.Background(), []string{"--socket", sock, "show", "vrfs"}, &out, &errs, dialSocket); code != 0 || out.String() != "VRF\n0\n1\n" {
		t.Fatalf("exit %d stdout %q stderr %q", code, out.String(), errs.String())
	}
	t.Setenv("VECNET_SOCKET", sock)
	out.Reset()
	if code := run(context.Background(), []string{"show", "vrfs"}, &out, &errs, dialSocket); code != 0 || out.String() != "VRF\n0\n1\n" {
		t.Fatalf("VECNET_SOCKET: exit %d stdout %q stderr %q", code, out.String(), errs.String())
	}

	// A stale socket file with no server behind it.
	gs.Stop()
	stale := filepath.Join(dir, "stale.sock")
	l2, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l2.(*net.UnixListener).SetUnlinkOnClose(false)
	l2.Close()
	errs.Reset()
	code := run(context.Background(), []string{"--socket", stale, "show", "vrfs"}, &out, &errs, dialSocket)
	if code != 1 || !strings.HasPrefix(errs.String(), "vecnetctl: cannot reach vecnetd: ") {
		t.Fatalf("stale socket: exit %d stderr %q", code, errs.String())
	}
	t.Log(errs.String())
}
