package vecnetd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	vecnetv1 "github.com/vecnet/vecnet/api/vecnet/v1"
	"github.com/vecnet/vecnet/pkg/dataplane/driver/tun"
	"github.com/vecnet/vecnet/pkg/dataplane/tables"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// MaxRequestBytes bounds one API message. 100 000 routes in text form are
// about 6 MiB; the default gRPC limit of 4 MiB would refuse them.
const MaxRequestBytes = 256 << 20

// Server serves the Dataplane API for a Daemon.
type Server struct {
	vecnetv1.UnimplementedDataplaneServer
	d *Daemon
}

// NewServer returns the API over d.
func NewServer(d *Daemon) *Server { return &Server{d: d} }

// Listen opens the unix socket (mode 0600: the API can rewire every pod, so
// only root may use it). A socket left by a dead vecnetd is replaced; one
// with a live server behind it is an error, not a takeover.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("%s: another vecnetd is serving on this socket", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale socket: %w", err)
	}
	old := umask(0o177)
	l, err := net.Listen("unix", path)
	umask(old)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// NewGRPCServer returns a gRPC server with the Dataplane service.
func NewGRPCServer(d *Daemon) *grpc.Server {
	s := grpc.NewServer(
		grpc.MaxRecvMsgSize(MaxRequestBytes),
		grpc.MaxSendMsgSize(MaxRequestBytes),
		grpc.ChainUnaryInterceptor(logUnary),
	)
	vecnetv1.RegisterDataplaneServer(s, NewServer(d))
	return s
}

func logUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := h(ctx, req)
	method := info.FullMethod[strings.LastIndexByte(info.FullMethod, '/')+1:]
	if err != nil {
		slog.Warn("api call failed", "method", method, "code", status.Code(err), "err", status.Convert(err).Message(), "duration", time.Since(start))
	} else if !strings.HasPrefix(method, "List") && !strings.HasPrefix(method, "Get") && method != "TraceShow" {
		slog.Debug("api call", "method", method, "duration", time.Since(start))
	}
	return resp, err
}

// toStatus maps internal errors to gRPC status codes.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var re *tables.RouteError
	if errors.As(err, &re) {
		f := fmt.Sprintf("routes[%d]", re.Index)
		if re.Path >= 0 {
			f += fmt.Sprintf(".next_hops[%d]", re.Path)
		}
		code := codes.InvalidArgument
		if errors.Is(err, tables.ErrNotFound) {
			code = codes.NotFound
		}
		return status.Errorf(code, "%s: %v", f, re.Err)
	}
	switch {
	case errors.Is(err, ErrNameTaken), errors.Is(err, tables.ErrExists), errors.Is(err, tun.ErrExists), errors.Is(err, ErrUplinkExists):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, ErrNoNetns), errors.Is(err, ErrHostInterface):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, ErrNoInterface), errors.Is(err, tables.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, tables.ErrInvalid):
		return status.Error(codes.FailedPrecondition, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

func (s *Server) CreateInterface(ctx context.Context, r *vecnetv1.CreateInterfaceRequest) (*vecnetv1.Interface, error) {
	c, err := parseCreateInterface(r)
	if err != nil {
		return nil, err
	}
	if _, ok := s.d.Tables.InterfaceByName(c.name); ok && c.name != "" {
		return nil, status.Errorf(codes.AlreadyExists, "name: interface %q exists", c.name)
	}
	if !s.vrfExists(c.vrf) {
		return nil, status.Errorf(codes.NotFound, "vrf: %d does not exist (vecnetctl/AddVrf first)", c.vrf)
	}
	pi, err := s.d.CreateInterface(c)
	if err != nil {
		return nil, toStatus(err)
	}
	ifc, _ := s.d.Tables.InterfaceByName(pi.name)
	return s.interfaceProto(ifc), nil
}

func (s *Server) vrfExists(id uint32) bool {
	for _, v := range s.d.Tables.VRFs() {
		if v == id {
			return true
		}
	}
	return false
}

func (s *Server) DeleteInterface(ctx context.Context, r *vecnetv1.DeleteInterfaceRequest) (*vecnetv1.DeleteInterfaceResponse, error) {
	if err := validIfName("name", r.GetName()); err != nil {
		return nil, err
	}
	if err := s.d.DeleteInterface(r.GetName()); err != nil {
		return nil, toStatus(err)
	}
	return &vecnetv1.DeleteInterfaceResponse{}, nil
}

func (s *Server) interfaceProto(ifc *tables.Interface) *vecnetv1.Interface {
	out := &vecnetv1.Interface{
		Name:  ifc.Name,
		Index: ifc.Index,
		Mtu:   ifc.MTU,
		Vrf:   ifc.VRF,
		Counters: &vecnetv1.InterfaceCounters{
			RxPackets: ifc.Counters.RxPackets.Load(),
			RxBytes:   ifc.Counters.RxBytes.Load(),
			TxPackets: ifc.Counters.TxPackets.Load(),
			TxBytes:   ifc.Counters.TxBytes.Load(),
			Drops:     ifc.Counters.Drops.Load(),
			TxErrors:  ifc.Counters.TxErrors.Load(),
		},
	}
	switch ifc.Kind {
	case tables.KindTun:
		out.Kind = vecnetv1.InterfaceKind_INTERFACE_KIND_TUN
	case tables.KindTap:
		out.Kind = vecnetv1.InterfaceKind_INTERFACE_KIND_TAP
		out.Mac = net.HardwareAddr(ifc.MAC[:]).String()
	case tables.KindUplink:
		out.Kind = vecnetv1.InterfaceKind_INTERFACE_KIND_UPLINK
		out.Mac = net.HardwareAddr(ifc.MAC[:]).String()
		out.Down = ifc.Down
		out.Queues = uint32(len(ifc.Tx))
		for _, u := range s.d.Uplinks() {
			if u.Name == ifc.Name {
				out.Driver = fmt.Sprintf("%s (%s)", u.Driver, u.Mode)
			}
		}
		for _, a := range ifc.HostAddrs4 {
			out.HostAddrs = append(out.HostAddrs, netip.AddrFrom4(a).String())
		}
		for _, a := range ifc.HostAddrs6 {
			out.HostAddrs = append(out.HostAddrs, netip.AddrFrom16(a).String())
		}
	}
	if pi, ok := s.d.podInterface(ifc.Name); ok {
		out.Netns = pi.dev.Netns
		if s.d.isHostTun(pi) {
			out.Netns = "(host)"
		}
		out.HostIf = pi.dev.Name
		out.Queues = uint32(len(pi.dev.FDs))
		out.Offloads = pi.dev.Offloads
		for _, p := range pi.dev.Addrs {
			out.HostAddrs = append(out.HostAddrs, p.String())
		}
	}
	for _, a := range ifc.Addrs4 {
		out.Addresses = append(out.Addresses, netip.AddrFrom4(a).String())
	}
	for _, a := range ifc.Addrs6 {
		out.Addresses = append(out.Addresses, netip.AddrFrom16(a).String())
	}
	return out
}

func (s *Server) ListInterfaces(ctx context.Context, r *vecnetv1.ListInterfacesRequest) (*vecnetv1.ListInterfacesResponse, error) {
	out := &vecnetv1.ListInterfacesResponse{}
	for _, ifc := range s.d.Tables.Interfaces() {
		out.Interfaces = append(out.Interfaces, s.interfaceProto(ifc))
	}
	return out, nil
}

func (s *Server) AddAddress(ctx context.Context, r *vecnetv1.AddressRequest) (*vecnetv1.AddressResponse, error) {
	name, p, err := parseAddress(r)
	if err != nil {
		return nil, err
	}
	if err := s.d.Tables.AddAddress(name, p); err != nil {
		return nil, toStatus(err)
	}
	return &vecnetv1.AddressResponse{}, nil
}

func (s *Server) DeleteAddress(ctx context.Context, r *vecnetv1.AddressRequest) (*vecnetv1.AddressResponse, error) {
	name, p, err := parseAddress(r)
	if err != nil {
		return nil, err
	}
	if err := s.d.Tables.DeleteAddress(name, p); err != nil {
		return nil, toStatus(err)
	}
	return &vecnetv1.AddressResponse{}, nil
}

func (s *Server) AddVrf(ctx context.Context, r *vecnetv1.VrfRequest) (*vecnetv1.VrfResponse, error) {
	s.d.Tables.AddVRF(r.GetVrf())
	return &vecnetv1.VrfResponse{}, nil
}

func (s *Server) DeleteVrf(ctx context.Context, r *vecnetv1.VrfRequest) (*vecnetv1.VrfResponse, error) {
	if r.GetVrf() == 0 {
		return nil, invalid("vrf", "0 is the default table and cannot be deleted")
	}
	if err := s.d.Tables.DeleteVRF(r.GetVrf()); err != nil {
		return nil, toStatus(err)
	}
	return &vecnetv1.VrfResponse{}, nil
}

func (s *Server) ListVrfs(ctx context.Context, r *vecnetv1.ListVrfsRequest) (*vecnetv1.ListVrfsResponse, error) {
	return &vecnetv1.ListVrfsResponse{Vrfs: s.d.Tables.VRFs()}, nil
}

func (s *Server) ifIndex(name string) (uint32, bool) {
	ifc, ok := s.d.Tables.InterfaceByName(name)
	if !ok {
		return 0, false
	}
	return ifc.Index, true
}

func (s *Server) AddRoutes(ctx context.Context, r *vecnetv1.RoutesRequest) (*vecnetv1.RoutesResponse, error) {
	routes, err := parseRoutes(r.GetRoutes(), false, s.ifIndex)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if err := s.d.Tables.AddRoutes(routes); err != nil {
		return nil, toStatus(err)
	}
	if len(routes) > 1000 {
		slog.Info("bulk routes added", "count", len(routes), "duration", time.Since(start))
	}
	return &vecnetv1.RoutesResponse{Count: uint32(len(routes))}, nil
}

func (s *Server) DeleteRoutes(ctx context.Context, r *vecnetv1.RoutesRequest) (*vecnetv1.RoutesResponse, error) {
	routes, err := parseRoutes(r.GetRoutes(), true, s.ifIndex)
	if err != nil {
		return nil, err
	}
	if err := s.d.Tables.DeleteRoutes(routes); err != nil {
		return nil, toStatus(err)
	}
	return &vecnetv1.RoutesResponse{Count: uint32(len(routes))}, nil
}

// ListRoutes streams the winning route of every prefix or, with a source,
// every entry of that source (winning or not).
func (s *Server) ListRoutes(r *vecnetv1.ListRoutesRequest, stream vecnetv1.Dataplane_ListRoutesServer) error {
	var src tables.Source
	if r.GetSource() != "" {
		var err error
		if src, err = parseRouteSource("source", r.GetSource(), false); err != nil {
			return err
		}
	}
	names := map[uint32]string{}
	for _, ifc := range s.d.Tables.Interfaces() {
		names[ifc.Index] = ifc.Name
	}
	var routes []tables.RouteInfo
	if r.GetSource() == "" {
		routes = s.d.Tables.Routes(r.GetVrf(), r.GetAllVrfs())
	} else {
		routes = s.d.Tables.SourceRoutes(r.GetVrf(), r.GetAllVrfs(), src)
	}
	for _, ri := range routes {
		out := &vecnetv1.Route{Prefix: ri.Prefix.String(), Vrf: ri.VRF, Source: ri.Source.String()}
		for _, p := range ri.Paths {
			nh := &vecnetv1.NextHop{Interface: names[p.Interface], Weight: p.Weight}
			if p.Encap.Type != tables.EncapNone {
				nh.Encap, nh.Vni = p.Encap.Type.String(), p.Encap.VNI
			}
			if p.NextHop.IsValid() {
				nh.Ip = p.NextHop.String()
			}
			out.NextHops = append(out.NextHops, nh)
		}
		if ri.Source == tables.SourceLocal {
			out.NextHops = []*vecnetv1.NextHop{{Interface: "local"}}
		} else if len(ri.Paths) > 0 && ri.Paths[0].Interface == 0 {
			// Show what a recursive route resolved to.
			for _, a := range ri.Resolved {
				out.NextHops = append(out.NextHops, &vecnetv1.NextHop{Ip: "resolved:" + addrString(a.NextHop), Interface: names[a.TxIf]})
			}
		}
		if err := stream.Send(out); err != nil {
			return err
		}
	}
	return nil
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return "attached"
	}
	return a.String()
}

func (s *Server) ListNeighbors(ctx context.Context, r *vecnetv1.ListNeighborsRequest) (*vecnetv1.ListNeighborsResponse, error) {
	names := map[uint32]string{}
	for _, ifc := range s.d.Tables.Interfaces() {
		names[ifc.Index] = ifc.Name
	}
	out := &vecnetv1.ListNeighborsResponse{}
	for _, n := range s.d.Tables.Neighbors() {
		st := "reachable"
		if n.Static {
			st = "static"
		}
		out.Neighbors = append(out.Neighbors, &vecnetv1.Neighbor{Interface: names[n.Interface], Ip: n.IP.String(), Mac: net.HardwareAddr(n.MAC[:]).String(), State: st})
	}
	for _, a := range s.d.Tables.IncompleteAdjacencies() {
		out.Neighbors = append(out.Neighbors, &vecnetv1.Neighbor{Interface: names[a.TxIf], Ip: addrString(a.NextHop), State: "incomplete"})
	}
	return out, nil
}

func (s *Server) GetRuntime(ctx context.Context, r *vecnetv1.GetRuntimeRequest) (*vecnetv1.GetRuntimeResponse, error) {
	out := &vecnetv1.GetRuntimeResponse{Workers: uint32(len(s.d.Workers)), UptimeNs: uint64(s.d.Uptime())}
	g := s.d.Graph
	for _, w := range s.d.Workers {
		for i := 0; i < g.Len(); i++ {
			k := w.Ctx.Counters(i)
			out.Nodes = append(out.Nodes, &vecnetv1.NodeRuntime{
				Name: g.Name(i), Worker: uint32(w.ID),
				Calls: k.Calls.Load(), Vectors: k.Vectors.Load(), Packets: k.Packets.Load(), Nanoseconds: k.Nanos.Load(),
			})
		}
	}
	return out, nil
}

func (s *Server) GetErrors(ctx context.Context, r *vecnetv1.GetErrorsRequest) (*vecnetv1.GetErrorsResponse, error) {
	g := s.d.Graph
	out := &vecnetv1.GetErrorsResponse{}
	for i := 0; i < g.Len(); i++ {
		for j, reason := range g.Errors(i) {
			var n uint64
			for _, w := range s.d.Workers {
				n += w.Ctx.ErrorCount(i, j)
			}
			out.Errors = append(out.Errors, &vecnetv1.ErrorCounter{Node: g.Name(i), Reason: reason, Count: n})
		}
	}
	return out, nil
}

func (s *Server) TraceAdd(ctx context.Context, r *vecnetv1.TraceAddRequest) (*vecnetv1.TraceAddResponse, error) {
	if r.GetCount() == 0 || r.GetCount() > 1024 {
		return nil, invalid("count", "%d: must be in [1, 1024]", r.GetCount())
	}
	for _, w := range s.d.Workers {
		w.Ctx.TraceAdd(int(r.GetCount()))
	}
	return &vecnetv1.TraceAddResponse{}, nil
}

func (s *Server) TraceShow(ctx context.Context, r *vecnetv1.TraceShowRequest) (*vecnetv1.TraceShowResponse, error) {
	out := &vecnetv1.TraceShowResponse{}
	for _, w := range s.d.Workers {
		for _, p := range w.Ctx.Traces() {
			pt := &vecnetv1.PacketTrace{Worker: uint32(p.Worker), Sequence: p.Seq}
			for _, st := range p.Steps {
				pt.Steps = append(pt.Steps, &vecnetv1.TraceStep{Node: st.Node, Detail: st.Detail, TimeNs: uint64(st.At)})
			}
			out.Packets = append(out.Packets, pt)
		}
	}
	sort.SliceStable(out.Packets, func(a, b int) bool {
		if out.Packets[a].Worker != out.Packets[b].Worker {
			return out.Packets[a].Worker < out.Packets[b].Worker
		}
		return out.Packets[a].Sequence < out.Packets[b].Sequence
	})
	return out, nil
}

func (s *Server) TraceClear(ctx context.Context, r *vecnetv1.TraceClearRequest) (*vecnetv1.TraceClearResponse, error) {
	for _, w := range s.d.Workers {
		w.Ctx.TraceClear()
	}
	return &vecnetv1.TraceClearResponse{}, nil
}

// Pcap attaches a capture to an interface for the duration of the call.
// One capture per interface at a time; a second one is refused rather than
// stealing packets from the first.
func (s *Server) Pcap(r *vecnetv1.PcapRequest, stream vecnetv1.Dataplane_PcapServer) error {
	if err := validIfName("interface", r.GetInterface()); err != nil {
		return err
	}
	if r.GetCount() == 0 || r.GetCount() > 1_000_000 {
		return invalid("count", "%d: must be in [1, 1000000]", r.GetCount())
	}
	ifc, ok := s.d.Tables.InterfaceByName(r.GetInterface())
	if !ok {
		return status.Errorf(codes.NotFound, "interface: no interface %q", r.GetInterface())
	}
	cp := &tables.Capture{C: make(chan tables.CapturedPacket, 4096)}
	if !ifc.Capture.CompareAndSwap(nil, cp) {
		return status.Errorf(codes.ResourceExhausted, "interface: %q is already being captured", r.GetInterface())
	}
	defer ifc.Capture.Store(nil)
	timeout := time.Duration(r.GetTimeoutMs()) * time.Millisecond
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	link := uint32(101) // LINKTYPE_RAW
	if ifc.Kind == tables.KindTap {
		link = 1 // LINKTYPE_ETHERNET
	}
	for sent := uint32(0); sent < r.GetCount(); {
		select {
		case p := <-cp.C:
			dir := "rx"
			if p.Tx {
				dir = "tx"
			}
			if err := stream.Send(&vecnetv1.PcapPacket{TimestampNs: uint64(p.UnixNano), Data: p.Data, OriginalLength: uint32(p.OrigLen), Direction: dir, LinkType: link}); err != nil {
				return err
			}
			sent++
		case <-timer.C:
			return nil
		case <-stream.Context().Done():
			return stream.Context().Err()
		}
	}
	return nil
}

func uplinkProto(u *UplinkInfo) *vecnetv1.Uplink {
	out := &vecnetv1.Uplink{Name: u.Name, Driver: u.Driver, Mode: u.Mode, Queues: uint32(u.Queues)}
	for _, a := range u.Addrs {
		out.Addresses = append(out.Addresses, a.String())
	}
	for _, g := range []netip.Addr{u.Gateway4, u.Gateway6} {
		if g.IsValid() {
			out.Gateways = append(out.Gateways, g.String())
		}
	}
	return out
}

func (s *Server) AddUplink(ctx context.Context, r *vecnetv1.AddUplinkRequest) (*vecnetv1.Uplink, error) {
	if err := validIfName("name", r.GetName()); err != nil {
		return nil, err
	}
	switch r.GetDriver() {
	case "", DriverAuto, DriverAFXDP, DriverAFPacket, DriverTap:
	default:
		return nil, invalid("driver", "unknown driver %q (want af_xdp, af_packet, tap or auto)", r.GetDriver())
	}
	if q := r.GetQueues(); q > 64 {
		return nil, invalid("queues", "%d queues; at most 64", q)
	}
	u, err := s.d.AddUplink(r.GetName(), r.GetDriver(), int(r.GetQueues()))
	if err != nil {
		return nil, toStatus(err)
	}
	return uplinkProto(u), nil
}

func (s *Server) DeleteUplink(ctx context.Context, r *vecnetv1.DeleteUplinkRequest) (*vecnetv1.DeleteUplinkResponse, error) {
	if err := validIfName("name", r.GetName()); err != nil {
		return nil, err
	}
	return &vecnetv1.DeleteUplinkResponse{}, toStatus(s.d.DeleteUplink(r.GetName()))
}

func (s *Server) ListUplinks(ctx context.Context, r *vecnetv1.ListUplinksRequest) (*vecnetv1.ListUplinksResponse, error) {
	out := &vecnetv1.ListUplinksResponse{}
	for _, u := range s.d.Uplinks() {
		out.Uplinks = append(out.Uplinks, uplinkProto(u))
	}
	return out, nil
}

func (s *Server) SetPodPrefixes(ctx context.Context, r *vecnetv1.PodPrefixes) (*vecnetv1.PodPrefixes, error) {
	ps, err := parsePodPrefixes(r.GetPrefixes())
	if err != nil {
		return nil, err
	}
	if err := s.d.SetPodPrefixes(ps); err != nil {
		return nil, toStatus(err)
	}
	return s.GetPodPrefixes(ctx, nil)
}

func (s *Server) GetPodPrefixes(ctx context.Context, r *vecnetv1.GetPodPrefixesRequest) (*vecnetv1.PodPrefixes, error) {
	out := &vecnetv1.PodPrefixes{}
	for _, p := range s.d.PodPrefixes() {
		out.Prefixes = append(out.Prefixes, p.String())
	}
	return out, nil
}
