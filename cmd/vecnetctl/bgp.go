package main

// show bgp [routes]: the state of the BGP speaker (GoBGP) that vecnet-agent
// embeds. Unlike the other commands it does not talk to vecnetd: it reads
// GoBGP's own gRPC API (api.GoBgpService), which the agent serves on the
// node's loopback.

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const (
	// defaultBgpAPI is where vecnet-agent serves GoBGP's API, in the
	// node's (host) network namespace.
	defaultBgpAPI = "127.0.0.1:50051"
	// bgpDialTimeout bounds each TCP connect to the API, so that an
	// address nobody answers fails fast instead of at the --timeout.
	bgpDialTimeout = 3 * time.Second
	bgpHint        = "vecnet-agent runs the BGP speaker only when BGP is enabled, and serves its API " +
		"in the node's network namespace: run vecnetctl on the node or in a hostNetwork pod, " +
		"or point --bgp-api or VECNET_BGP_API at it"
)

// bgpFamilies are the address families vecnet uses, in display order.
var bgpFamilies = []bgp.Family{bgp.RF_IPv4_UC, bgp.RF_IPv6_UC}

var showBgpCmd = &command{
	path: "show bgp",
	synopsis: []string{
		"show bgp [--bgp-api ADDR]",
		"show bgp routes [--family ipv4|ipv6|all] [--bgp-api ADDR]",
	},
	help: `Shows the BGP speaker that vecnet-agent runs when BGP is enabled, from its
GoBGP API (not from vecnetd). Without "routes": the speaker's AS, router ID
and listen port; the peers with their type (iBGP or eBGP, and whether the peer
is a route-reflector client), session state and time in that state (since the
session came up, or since it last went down); the prefixes received, accepted
and advertised per peer and family; and the number of destinations and paths
in the local RIB. With "routes": the local RIB, one row per path, sorted by
prefix; Best is "*" for the best path, From is the peer that sent the path
("local" for the node's own).

flags:
  --bgp-api ADDR   the speaker's GoBGP API, HOST:PORT in the node's network namespace
                   (default $VECNET_BGP_API or ` + defaultBgpAPI + `)
  --family F       routes: ipv4, ipv6 or all (default all)
`,
	noVecnetd: true,
	parse: func(args []string) (action, error) {
		opts, err := parseShowBgp(args)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, e *env) error { return runShowBgp(ctx, e, opts) }, nil
	},
}

type showBgpOpts struct {
	addr     string
	routes   bool
	families []bgp.Family // for routes
}

func parseShowBgp(args []string) (showBgpOpts, error) {
	fs := newFlagSet("show bgp")
	addr := os.Getenv("VECNET_BGP_API")
	if addr == "" {
		addr = defaultBgpAPI
	}
	fs.StringVar(&addr, "bgp-api", addr, "")
	family := fs.String("family", "all", "")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return showBgpOpts{}, err
	}
	opts := showBgpOpts{addr: addr}
	if len(pos) > 0 && pos[0] == "routes" {
		opts.routes, pos = true, pos[1:]
	}
	if err := wantArgs(pos); err != nil {
		return showBgpOpts{}, err
	}
	if host, port, err := net.SplitHostPort(addr); err != nil || host == "" || port == "" {
		return showBgpOpts{}, usagef("invalid --bgp-api %q: want HOST:PORT such as %s", addr, defaultBgpAPI)
	}
	familySet := false
	fs.Visit(func(f *flag.Flag) { familySet = familySet || f.Name == "family" })
	switch {
	case familySet && !opts.routes:
		return showBgpOpts{}, usagef("--family applies only to show bgp routes")
	case *family == "ipv4":
		opts.families = []bgp.Family{bgp.RF_IPv4_UC}
	case *family == "ipv6":
		opts.families = []bgp.Family{bgp.RF_IPv6_UC}
	case *family == "all":
		opts.families = bgpFamilies
	default:
		return showBgpOpts{}, usagef("--family %q: want ipv4, ipv6 or all", *family)
	}
	return opts, nil
}

// noVecnetd is the dialFunc of the commands that do not use vecnetd.
func noVecnetd(string) (grpc.ClientConnInterface, io.Closer, error) {
	return nil, io.NopCloser(nil), nil
}

// bgpConn is a connection to GoBGP's API.
type bgpConn struct {
	addr   string
	conn   *grpc.ClientConn
	client api.GoBgpServiceClient

	mu      sync.Mutex
	dialErr error // of the last TCP connect, clearer than gRPC's message
}

func dialBgp(addr string) (*bgpConn, error) {
	c := &bgpConn{addr: addr}
	// passthrough: the address goes as is to dial, which resolves names
	// itself; the API is not behind a load balancer.
	conn, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(c.dial),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsgSize)),
	)
	if err != nil {
		return nil, fmt.Errorf("BGP speaker API %s: %v", addr, err)
	}
	c.conn, c.client = conn, api.NewGoBgpServiceClient(conn)
	return c, nil
}

func (c *bgpConn) dial(ctx context.Context, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: bgpDialTimeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	c.mu.Lock()
	c.dialErr = err
	c.mu.Unlock()
	return conn, err
}

// fromRPC converts an error returned by a GoBGP client method, as fromRPC
// in main.go does for vecnetd's.
func (c *bgpConn) fromRPC(err error) error {
	if err == nil {
		return nil
	}
	s, ok := status.FromError(err)
	if !ok {
		return err
	}
	msg := s.Message()
	switch s.Code() {
	case codes.Unavailable:
		c.mu.Lock()
		if c.dialErr != nil {
			msg = c.dialErr.Error()
			if oe := (*net.OpError)(nil); errors.As(c.dialErr, &oe) && oe.Err != nil {
				msg = oe.Err.Error() // without "dial tcp ADDR: "
			}
		}
		c.mu.Unlock()
		msg = fmt.Sprintf("cannot reach the BGP speaker at %s: %s (%s)", c.addr, msg, bgpHint)
	case codes.Canceled:
		msg = "interrupted"
	case codes.Unimplemented:
		msg = fmt.Sprintf("%s does not serve GoBGP's API (is it the BGP speaker's --bgp-api address?): %s", c.addr, msg)
	default:
		msg = fmt.Sprintf("BGP speaker at %s: %s", c.addr, msg)
	}
	return &rpcError{code: s.Code(), msg: msg}
}

func runShowBgp(ctx context.Context, e *env, opts showBgpOpts) error {
	c, err := dialBgp(opts.addr)
	if err != nil {
		return err
	}
	defer c.conn.Close()
	ctx, cancel := e.rpcContext(ctx)
	defer cancel()
	if opts.routes {
		return showBgpRoutes(ctx, c, e.stdout, opts.families, time.Now())
	}
	return showBgpSummary(ctx, c, e.stdout, time.Now())
}

// getGlobal returns the speaker's global configuration, or an error if BGP
// is not started (GoBGP then answers AS 0, and RIB requests fail).
func getGlobal(ctx context.Context, c *bgpConn) (*api.Global, error) {
	resp, err := c.client.GetBgp(ctx, &api.GetBgpRequest{})
	if err != nil {
		return nil, c.fromRPC(err)
	}
	g := resp.GetGlobal()
	if g.GetAsn() == 0 {
		return nil, fmt.Errorf("the BGP speaker at %s is not started (no AS number configured yet)", c.addr)
	}
	return g, nil
}

func apiFamily(f bgp.Family) *api.Family { return apiutil.ToApiFamily(f.Afi(), f.Safi()) }

// familyName is "ipv4-unicast", "ipv6-unicast", ...
func familyName(f *api.Family) string {
	if f == nil {
		return ""
	}
	return apiutil.ToFamily(f).String()
}

// unsupportedFamily tells whether err says that the speaker does not have
// the family enabled (an IPv4-only cluster has no IPv6 RIB).
func unsupportedFamily(err error) bool {
	var re *rpcError
	return errors.As(err, &re) && re.code == codes.Unknown && strings.Contains(re.msg, "not supported")
}

func sessionState(p *api.Peer) string {
	switch p.GetState().GetAdminState() {
	case api.PeerState_ADMIN_STATE_DOWN:
		return "Idle(Admin)"
	case api.PeerState_ADMIN_STATE_PFX_CT:
		return "Idle(PfxCt)"
	}
	switch s := p.GetState().GetSessionState(); s {
	case api.PeerState_SESSION_STATE_IDLE:
		return "Idle"
	case api.PeerState_SESSION_STATE_CONNECT:
		return "Connect"
	case api.PeerState_SESSION_STATE_ACTIVE:
		return "Active"
	case api.PeerState_SESSION_STATE_OPENSENT:
		return "OpenSent"
	case api.PeerState_SESSION_STATE_OPENCONFIRM:
		return "OpenConfirm"
	case api.PeerState_SESSION_STATE_ESTABLISHED:
		return "Established"
	case api.PeerState_SESSION_STATE_UNSPECIFIED:
		return ""
	default:
		return strings.ToLower(strings.TrimPrefix(s.String(), "SESSION_STATE_"))
	}
}

// peerType is iBGP or eBGP, with "/rr-client" for a route-reflector client.
// (Whether a peer comes from a mesh or from configuration is vecnet-agent's
// business; GoBGP does not know it.)
func peerType(p *api.Peer, localAS uint32) string {
	t := p.GetState().GetType()
	if t == api.PeerType_PEER_TYPE_UNSPECIFIED {
		t = p.GetConf().GetType()
	}
	var s string
	switch t {
	case api.PeerType_PEER_TYPE_INTERNAL:
		s = "iBGP"
	case api.PeerType_PEER_TYPE_EXTERNAL:
		s = "eBGP"
	default:
		if as := peerAS(p); as != 0 {
			if local := cmp.Or(p.GetState().GetLocalAsn(), p.GetConf().GetLocalAsn(), localAS); as == local {
				s = "iBGP"
			} else {
				s = "eBGP"
			}
		}
	}
	if p.GetRouteReflector().GetRouteReflectorClient() {
		s += "/rr-client"
	}
	return s
}

func peerAS(p *api.Peer) uint32 { return cmp.Or(p.GetState().GetPeerAsn(), p.GetConf().GetPeerAsn()) }

func peerAddr(p *api.Peer) string {
	return cmp.Or(p.GetConf().GetNeighborAddress(), p.GetState().GetNeighborAddress(), p.GetConf().GetNeighborInterface())
}

// age is the time from ts to now, to the second; "" for no time (nil, or
// the zero Unix time that a path added without an age has).
func age(ts *timestamppb.Timestamp, now time.Time) string {
	if ts == nil || ts.GetSeconds() <= 0 {
		return ""
	}
	return max(now.Sub(ts.AsTime()), 0).Truncate(time.Second).String()
}

// peerSince is the time since the session came up (established), else
// since it last went down ("" if it never was up).
func peerSince(p *api.Peer, now time.Time) string {
	st := p.GetTimers().GetState()
	if p.GetState().GetSessionState() == api.PeerState_SESSION_STATE_ESTABLISHED {
		return age(st.GetUptime(), now)
	}
	return age(st.GetDowntime(), now)
}

func showBgpSummary(ctx context.Context, c *bgpConn, w io.Writer, now time.Time) error {
	g, err := getGlobal(ctx, c)
	if err != nil {
		return err
	}
	listen := "not listening"
	if g.GetListenPort() > 0 {
		listen = "listen port " + strconv.Itoa(int(g.GetListenPort()))
		if addrs := g.GetListenAddresses(); len(addrs) > 0 {
			listen += " on " + strings.Join(addrs, ", ")
		}
	}
	fmt.Fprintf(w, "BGP speaker at %s: AS %d, router ID %s, %s\n", c.addr, g.GetAsn(), g.GetRouterId(), listen)

	stream, err := c.client.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true})
	if err != nil {
		return c.fromRPC(err)
	}
	var peers []*api.Peer
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return c.fromRPC(err)
		}
		if r.GetPeer() != nil {
			peers = append(peers, r.GetPeer())
		}
	}
	slices.SortStableFunc(peers, func(a, b *api.Peer) int { return compareAddrs(peerAddr(a), peerAddr(b)) })

	fmt.Fprintf(w, "\nPeers\n")
	tw := newTable(w)
	row(tw, "Peer", "AS", "Type", "State", "Since")
	for _, p := range peers {
		row(tw, peerAddr(p), u32(peerAS(p)), peerType(p, g.GetAsn()), sessionState(p), peerSince(p, now))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(w, "\nPrefixes\n")
	tw = newTable(w)
	row(tw, "Peer", "Family", "Received", "Accepted", "Advertised")
	for _, p := range peers {
		var states []*api.AfiSafiState
		for _, af := range p.GetAfiSafis() {
			if st := af.GetState(); st != nil && (st.GetEnabled() || af.GetConfig().GetEnabled()) {
				states = append(states, st)
			}
		}
		slices.SortStableFunc(states, func(a, b *api.AfiSafiState) int {
			return cmp.Compare(apiutil.ToFamily(a.GetFamily()), apiutil.ToFamily(b.GetFamily()))
		})
		for _, st := range states {
			row(tw, peerAddr(p), familyName(st.GetFamily()), u64(st.GetReceived()), u64(st.GetAccepted()), u64(st.GetAdvertised()))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(w, "\nLocal RIB\n")
	tw = newTable(w)
	row(tw, "Family", "Destinations", "Paths")
	for _, f := range bgpFamilies {
		resp, err := c.client.GetTable(ctx, &api.GetTableRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: apiFamily(f)})
		if err := c.fromRPC(err); unsupportedFamily(err) {
			row(tw, f.String(), "", "")
			continue
		} else if err != nil {
			return err
		}
		row(tw, f.String(), u64(resp.GetNumDestination()), u64(resp.GetNumPath()))
	}
	return tw.Flush()
}

// bgpRoute is one row of show bgp routes.
type bgpRoute struct {
	prefix string
	path   *api.Path
}

func showBgpRoutes(ctx context.Context, c *bgpConn, w io.Writer, families []bgp.Family, now time.Time) error {
	if _, err := getGlobal(ctx, c); err != nil {
		return err
	}
	var routes []bgpRoute
	for _, f := range families {
		stream, err := c.client.ListPath(ctx, &api.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: apiFamily(f)})
		if err != nil {
			return c.fromRPC(err)
		}
		for {
			r, err := stream.Recv()
			if err == io.EOF {
				break
			}
			if err := c.fromRPC(err); unsupportedFamily(err) && len(families) > 1 {
				break // --family all on a speaker without this family
			} else if err != nil {
				return err
			}
			d := r.GetDestination()
			for _, p := range d.GetPaths() {
				routes = append(routes, bgpRoute{prefix: d.GetPrefix(), path: p})
			}
		}
	}
	slices.SortStableFunc(routes, func(a, b bgpRoute) int {
		// best path first within a prefix
		return cmp.Or(comparePrefixes(a.prefix, b.prefix), -compareBool(a.path.GetBest(), b.path.GetBest()))
	})
	tw := newTable(w)
	row(tw, "Prefix", "NextHop", "From", "Best", "Age", "ASPath")
	for _, r := range routes {
		p := r.path
		nextHop, asPath := "?", "?"
		if attrs, err := apiutil.GetNativePathAttributes(p); err == nil {
			nextHop, asPath = pathNextHop(attrs), pathASPath(attrs)
		}
		from := p.GetNeighborIp()
		if from == "" {
			from = "local"
		}
		best := ""
		if p.GetBest() {
			best = "*"
		}
		row(tw, r.prefix, nextHop, from, best, age(p.GetAge(), now), asPath)
	}
	return tw.Flush()
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// pathNextHop is the NEXT_HOP of an IPv4 path or the MP_REACH_NLRI next
// hop of an IPv6 one.
func pathNextHop(attrs []bgp.PathAttributeInterface) string {
	for _, a := range attrs {
		switch a := a.(type) {
		case *bgp.PathAttributeNextHop:
			if a.Value.IsValid() {
				return a.Value.String()
			}
		case *bgp.PathAttributeMpReachNLRI:
			if a.Nexthop.IsValid() {
				return a.Nexthop.String()
			}
			if a.LinkLocalNexthop.IsValid() {
				return a.LinkLocalNexthop.String()
			}
		}
	}
	return ""
}

func pathASPath(attrs []bgp.PathAttributeInterface) string {
	for _, a := range attrs {
		if a, ok := a.(*bgp.PathAttributeAsPath); ok {
			return bgp.AsPathString(a)
		}
	}
	return ""
}
