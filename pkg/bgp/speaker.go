package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
	"google.golang.org/protobuf/proto"
)

// Learned is a change of the best route to a prefix learned from a peer.
type Learned struct {
	Prefix  netip.Prefix
	NextHop netip.Addr
	Peer    netip.Addr
	// Withdrawn: no peer offers a route to Prefix any more (or this
	// node's own origin became the best).
	Withdrawn bool
}

// PeerEvent is a session's state change.
type PeerEvent struct {
	Addr   netip.Addr
	State  string // Established, Active, Idle, ...
	Reason string // why it went down, when it did
}

// Options configure a Speaker.
type Options struct {
	// APIAddress is where GoBGP's own gRPC API listens (the gobgp CLI's
	// default is 127.0.0.1:50051); empty: no API.
	APIAddress string
	Logger     *slog.Logger
	// OnLearned receives learned best-route changes, in order, from one
	// goroutine. It must not block for long.
	OnLearned func([]Learned)
	// OnPeer receives session state changes.
	OnPeer func(PeerEvent)
	// OnEOR is called when a peer sent End-of-RIB (RFC 4724 section 2)
	// for a family: it has sent all its routes.
	OnEOR func(peer netip.Addr, family int)
	// Restarting marks this start as a graceful restart (RFC 4724 R bit):
	// peers keep our routes until we send End-of-RIB.
	Restarting bool
}

// Speaker is a GoBGP server driven by Configs.
type Speaker struct {
	o   Options
	log *slog.Logger
	lvl *slog.LevelVar
	srv *server.BgpServer

	mu      sync.Mutex
	started bool
	cur     Config
	peers   map[netip.Addr]Peer
	origins map[netip.Prefix]origin
	cancel  context.CancelFunc
	// policySig is the last policies set, to soft-reset only on change.
	policySig string
}

type origin struct {
	o  Origin
	id uuid.UUID
}

// NewSpeaker starts a GoBGP server (idle until the first Apply).
func NewSpeaker(o Options) *Speaker {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	// GoBGP logs through a handler that also honours lvl (Calico's
	// logSeverityScreen): the LevelVar GoBGP takes only serves its own
	// SetLogLevel API.
	lvl := &slog.LevelVar{}
	lvl.Set(slog.LevelInfo)
	glog := slog.New(levelHandler{log.Handler(), lvl}).With("component", "gobgp")
	opts := []server.ServerOption{server.LoggerOption(glog, lvl)}
	if o.APIAddress != "" {
		opts = append(opts, server.GrpcListenAddress(o.APIAddress))
	}
	s := &Speaker{o: o, log: log, lvl: lvl, srv: server.NewBgpServer(opts...), peers: map[netip.Addr]Peer{}, origins: map[netip.Prefix]origin{}}
	go s.srv.Serve()
	return s
}

// levelHandler drops records below a level.
type levelHandler struct {
	slog.Handler
	lvl *slog.LevelVar
}

func (h levelHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.lvl.Level() && h.Handler.Enabled(ctx, l)
}

func (h levelHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return levelHandler{h.Handler.WithAttrs(a), h.lvl}
}

func (h levelHandler) WithGroup(name string) slog.Handler {
	return levelHandler{h.Handler.WithGroup(name), h.lvl}
}

// Apply makes the server's configuration cfg. A change of AS, router ID,
// listen port or cluster ID restarts BGP (every session); other changes
// touch only the peers they concern.
func (s *Speaker) Apply(ctx context.Context, cfg Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if lv, ok := gobgpLevel(cfg.LogLevel); ok {
		s.lvl.Set(lv)
	}
	if s.started && !globalEqual(&s.cur, &cfg) {
		s.log.Info("bgp: global settings changed; restarting BGP", "asn", cfg.ASN, "router_id", cfg.RouterID, "listen_port", cfg.ListenPort, "cluster_id", addrOrNone(cfg.ClusterID))
		s.stopLocked(ctx)
	}
	if !s.started {
		if err := s.startLocked(ctx, cfg); err != nil {
			return err
		}
	}
	var errs []error
	// Policies first: a new peer must never see routes its filter rejects.
	if err := s.setPolicies(ctx, cfg.Peers); err != nil {
		errs = append(errs, fmt.Errorf("policies: %w", err))
	}
	want := map[netip.Addr]Peer{}
	for _, p := range cfg.Peers {
		want[p.Addr] = p
	}
	for addr, old := range s.peers {
		if p, ok := want[addr]; ok && sessionEqual(&old, &p) {
			continue
		}
		if err := s.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: addr.String()}); err != nil {
			errs = append(errs, fmt.Errorf("delete peer %s: %w", addr, err))
			continue
		}
		delete(s.peers, addr)
		if _, ok := want[addr]; !ok {
			s.log.Info("bgp: peer removed", "peer", addr, "was", old.Origin)
		}
	}
	for _, p := range cfg.Peers {
		if _, ok := s.peers[p.Addr]; ok {
			s.peers[p.Addr] = p // same session; policy may differ
			continue
		}
		if err := s.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: s.apiPeer(&p, cfg)}); err != nil {
			errs = append(errs, fmt.Errorf("add peer %s (%s): %w", p.Addr, p.Origin, err))
			continue
		}
		s.peers[p.Addr] = p
		s.log.Info("bgp: peer added", "peer", p.Addr, "asn", p.ASN, "origin", p.Origin, "rr_client", p.RRClient,
			"password", p.Password != "", "import_rules", len(p.Import), "export_rules", len(p.Export))
	}
	s.cur = cfg
	return errors.Join(errs...)
}

func addrOrNone(a netip.Addr) string {
	if !a.IsValid() {
		return "none"
	}
	return a.String()
}

func gobgpLevel(s string) (slog.Level, bool) {
	switch s {
	case "Debug":
		return slog.LevelDebug, true
	case "Info":
		return slog.LevelInfo, true
	case "Warning":
		return slog.LevelWarn, true
	case "Error", "Fatal":
		return slog.LevelError, true
	}
	return 0, false
}

func (s *Speaker) startLocked(ctx context.Context, cfg Config) error {
	if !cfg.RouterID.Is4() {
		return fmt.Errorf("router ID %s is not an IPv4 address", cfg.RouterID)
	}
	if cfg.ASN == 0 {
		return errors.New("AS number 0 is reserved (RFC 7607)")
	}
	g := &api.Global{
		Asn: cfg.ASN, RouterId: cfg.RouterID.String(), ListenPort: cfg.ListenPort,
		ListenAddresses: []string{"0.0.0.0", "::"},
	}
	if err := s.srv.StartBgp(ctx, &api.StartBgpRequest{Global: g}); err != nil {
		return fmt.Errorf("start BGP (AS %d, router ID %s, port %d): %w", cfg.ASN, cfg.RouterID, cfg.ListenPort, err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	cb := server.WatchEventMessageCallbacks{
		OnBestPath:   s.onBest,
		OnPeerUpdate: s.onPeer,
		OnPathEor: func(p *apiutil.Path, _ time.Time) {
			if s.o.OnEOR != nil && p.PeerAddress.IsValid() {
				s.o.OnEOR(p.PeerAddress.Unmap(), familyOf(p.Family))
			}
		},
	}
	if err := s.srv.WatchEvent(wctx, cb, server.WatchBestPath(true), server.WatchPeer(), server.WatchEor(false)); err != nil {
		cancel()
		return fmt.Errorf("watch BGP events: %w", err)
	}
	s.cancel = cancel
	s.started = true
	s.cur = Config{}
	s.log.Info("bgp: started", "asn", cfg.ASN, "router_id", cfg.RouterID, "listen_port", cfg.ListenPort,
		"cluster_id", addrOrNone(cfg.ClusterID), "graceful_restart", s.o.Restarting)
	// Re-originate after a restart of the server.
	old := s.origins
	s.origins = map[netip.Prefix]origin{}
	if len(old) > 0 {
		var list []Origin
		for _, o := range old {
			list = append(list, o.o)
		}
		s.cur = cfg
		if err := s.setOriginsLocked(list); err != nil {
			return err
		}
	}
	return nil
}

func (s *Speaker) stopLocked(ctx context.Context) {
	if !s.started {
		return
	}
	if s.cancel != nil {
		s.cancel()
	}
	// AllowGracefulRestart: no NOTIFICATION to GR peers, which then keep
	// our routes while the server comes back.
	if err := s.srv.StopBgp(ctx, &api.StopBgpRequest{AllowGracefulRestart: true}); err != nil {
		s.log.Warn("bgp: stop", "err", err)
	}
	s.started = false
	s.peers = map[netip.Addr]Peer{}
}

// RestartDone ends the graceful restart: sessions added from now on are
// ordinary ones (no restart flag, no deferral of our routes).
func (s *Speaker) RestartDone() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.o.Restarting = false
}

// Stop shuts the server down without NOTIFICATION to graceful restart
// peers: they keep this node's routes for the restart time, so an agent
// restart does not withdraw them (RFC 4724 section 4.2).
func (s *Speaker) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked(context.Background())
	// srv.Stop stops BGP again (an error log, since it is stopped: the
	// graceful stop above had to come first) and then the gRPC API.
	s.lvl.Set(slog.LevelError + 1)
	s.srv.Stop()
}

func (s *Speaker) apiPeer(p *Peer, cfg Config) *api.Peer {
	hold := uint64(cfg.HoldTime / time.Second)
	ap := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: p.Addr.String(), PeerAsn: p.ASN, LocalAsn: p.LocalASN,
			AuthPassword: p.Password, Description: p.Origin, AllowOwnAsn: uint32(p.AllowOwnAS),
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			HoldTime: hold, KeepaliveInterval: max(hold/3, 1), ConnectRetry: 5,
			// BIRD's default; GoBGP's is 0 for iBGP and 30 s for eBGP,
			// which would delay a new block's advertisement.
			MinimumAdvertisementInterval: 0,
		}},
		Transport: &api.Transport{RemotePort: uint32(p.Port)},
	}
	if p.Port == 0 {
		ap.Transport.RemotePort = DefaultListenPort
		if cfg.ListenPort != DefaultListenPort && p.Node != "" {
			// Other vecnet nodes listen where this one does.
			ap.Transport.RemotePort = uint32(cfg.ListenPort)
		}
	}
	if p.LocalAddr.IsValid() {
		ap.Transport.LocalAddress = p.LocalAddr.String()
	}
	if p.RRClient {
		ap.RouteReflector = &api.RouteReflector{RouteReflectorClient: true, RouteReflectorClusterId: cfg.ClusterID.String()}
	}
	if p.TTLMin > 0 {
		ap.TtlSecurity = &api.TtlSecurity{Enabled: true, TtlMin: uint32(p.TTLMin)}
	} else if p.ASN != p.LocalASN {
		// Calico peers with eBGP routers that are not always on the
		// node's subnet (BIRD's "multihop" in its templates).
		ap.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: 255}
	}
	fam := &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	if p.Addr.Is6() {
		fam.Afi = api.Family_AFI_IP6
	}
	afi := &api.AfiSafi{Config: &api.AfiSafiConfig{Family: fam, Enabled: true}}
	if p.RestartTime > 0 {
		ap.GracefulRestart = &api.GracefulRestart{
			Enabled: true, RestartTime: uint32(p.RestartTime / time.Second),
			LocalRestarting: s.o.Restarting, DeferralTime: 30,
		}
		afi.MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
	}
	ap.AfiSafis = []*api.AfiSafi{afi}
	return ap
}

// Policy names. GoBGP applies import and export policies to the global
// RIB only (outside route-server mode), so each peer's BGPFilter rules
// become statements conditioned on a neighbor set holding that peer.
const (
	policyImport = "vecnet-import"
	policyExport = "vecnet-export"
)

func (s *Speaker) setPolicies(ctx context.Context, peers []Peer) error {
	var sets []*api.DefinedSet
	imp := &api.Policy{Name: policyImport}
	exp := &api.Policy{Name: policyExport}
	for _, p := range peers {
		if len(p.Import) == 0 && len(p.Export) == 0 && !p.KeepNextHop {
			continue
		}
		ns := "vecnet-peer-" + p.Addr.String()
		sets = append(sets, &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_NEIGHBOR, Name: ns, List: []string{p.Addr.String() + "/" + fmt.Sprint(p.Addr.BitLen())}})
		for dir, rules := range map[string][]Rule{"import": p.Import, "export": p.Export} {
			pol := imp
			if dir == "export" {
				pol = exp
			}
			for i, r := range rules {
				if r.Family != p.Family() {
					continue // a rule of the other family never matches this session
				}
				name := fmt.Sprintf("vecnet-%s-%s-%d", dir, p.Addr, i)
				st := &api.Statement{Name: name, Conditions: &api.Conditions{
					NeighborSet: &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: ns},
				}, Actions: &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_REJECT}}
				if r.Accept {
					st.Actions.RouteAction = api.RouteAction_ROUTE_ACTION_ACCEPT
				}
				if r.Prefix.IsValid() {
					ps := name + "-prefix"
					sets = append(sets, &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_PREFIX, Name: ps, Prefixes: []*api.Prefix{{
						IpPrefix: r.Prefix.String(), MaskLengthMin: uint32(r.Min), MaskLengthMax: uint32(r.Max),
					}}})
					t := api.MatchSet_TYPE_ANY
					if r.Invert {
						t = api.MatchSet_TYPE_INVERT
					}
					st.Conditions.PrefixSet = &api.MatchSet{Type: t, Name: ps}
				}
				if r.RemoteOnly {
					// Learned from peers: internal or external, never local.
					// Two statements, as GoBGP matches one route type.
					for _, rt := range []api.Conditions_RouteType{api.Conditions_ROUTE_TYPE_INTERNAL, api.Conditions_ROUTE_TYPE_EXTERNAL} {
						c := cloneStatement(st)
						c.Name = fmt.Sprintf("%s-rt%d", name, rt)
						c.Conditions.RouteType = rt
						pol.Statements = append(pol.Statements, c)
					}
					continue
				}
				pol.Statements = append(pol.Statements, st)
			}
		}
		if p.KeepNextHop {
			exp.Statements = append(exp.Statements, &api.Statement{
				Name:       "vecnet-export-" + p.Addr.String() + "-keep-next-hop",
				Conditions: &api.Conditions{NeighborSet: &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: ns}},
				Actions:    &api.Actions{Nexthop: &api.NexthopAction{Unchanged: true}},
			})
		}
	}
	// Export statements run in peer order; a keep-next-hop statement has
	// no route action, so evaluation continues past it.
	var policies []*api.Policy
	if len(imp.Statements) > 0 {
		policies = append(policies, imp)
	}
	if len(exp.Statements) > 0 {
		policies = append(policies, exp)
	}
	if err := s.srv.SetPolicies(ctx, &api.SetPoliciesRequest{DefinedSets: sets, Policies: policies}); err != nil {
		return err
	}
	for _, d := range []struct {
		dir api.PolicyDirection
		pol *api.Policy
	}{{api.PolicyDirection_POLICY_DIRECTION_IMPORT, imp}, {api.PolicyDirection_POLICY_DIRECTION_EXPORT, exp}} {
		a := &api.PolicyAssignment{Name: "global", Direction: d.dir, DefaultAction: api.RouteAction_ROUTE_ACTION_ACCEPT}
		if len(d.pol.Statements) > 0 {
			a.Policies = []*api.Policy{{Name: d.pol.Name}}
		}
		if err := s.srv.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: a}); err != nil {
			return err
		}
	}
	// Re-run both directions for established sessions (RFC 2918 route
	// refresh inbound, re-advertisement outbound), so that an edited
	// filter applies to routes already exchanged.
	if s.policiesApplied(sets, policies) && len(s.peers) > 0 {
		if err := s.srv.ResetPeer(ctx, &api.ResetPeerRequest{Address: "all", Soft: true, Direction: api.ResetPeerRequest_DIRECTION_BOTH}); err != nil {
			s.log.Debug("bgp: soft reset after a policy change", "err", err)
		}
	}
	return nil
}

// policiesApplied remembers the last policies and tells whether they
// changed.
func (s *Speaker) policiesApplied(sets []*api.DefinedSet, policies []*api.Policy) bool {
	var b strings.Builder
	for _, d := range sets {
		fmt.Fprintln(&b, d.String())
	}
	for _, p := range policies {
		fmt.Fprintln(&b, p.String())
	}
	sig := b.String()
	changed := sig != s.policySig
	s.policySig = sig
	return changed
}

func cloneStatement(st *api.Statement) *api.Statement {
	return proto.Clone(st).(*api.Statement)
}

// SetOrigins makes what this node advertises exactly origins, next hop
// the node's address of each prefix's family. A prefix of a family the
// node has no address of is not advertised (reported as an error).
func (s *Speaker) SetOrigins(origins []Origin) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.setOriginsLocked(origins)
}

func (s *Speaker) setOriginsLocked(origins []Origin) error {
	if !s.started {
		// Kept for the start: startLocked originates them.
		s.origins = map[netip.Prefix]origin{}
		for _, o := range origins {
			s.origins[o.Prefix] = origin{o: o}
		}
		return nil
	}
	want := map[netip.Prefix]Origin{}
	for _, o := range origins {
		want[o.Prefix] = o
	}
	var errs []error
	var del []*apiutil.Path
	var delKeys []netip.Prefix
	for p, o := range s.origins {
		if w, ok := want[p]; ok && w.Equal(o.o) && o.id != uuid.Nil {
			continue
		}
		if o.id == uuid.Nil {
			delete(s.origins, p)
			continue
		}
		if path, err := s.path(o.o); err == nil {
			del = append(del, path)
			delKeys = append(delKeys, p)
		}
	}
	if len(del) > 0 {
		if err := s.srv.DeletePath(apiutil.DeletePathRequest{Paths: del}); err != nil {
			errs = append(errs, fmt.Errorf("withdraw %d prefixes: %w", len(del), err))
		} else {
			for _, p := range delKeys {
				delete(s.origins, p)
			}
		}
	}
	var add []*apiutil.Path
	var addOrigins []Origin
	for _, o := range origins {
		if cur, ok := s.origins[o.Prefix]; ok && cur.o.Equal(o) {
			continue
		}
		path, err := s.path(o)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		add = append(add, path)
		addOrigins = append(addOrigins, o)
	}
	if len(add) > 0 {
		res, err := s.srv.AddPath(apiutil.AddPathRequest{Paths: add})
		if err != nil {
			return errors.Join(append(errs, fmt.Errorf("advertise %d prefixes: %w", len(add), err))...)
		}
		for i, r := range res {
			if r.Error != nil {
				errs = append(errs, fmt.Errorf("advertise %s: %w", addOrigins[i].Prefix, r.Error))
				continue
			}
			s.origins[addOrigins[i].Prefix] = origin{o: addOrigins[i], id: r.UUID}
		}
	}
	return errors.Join(errs...)
}

// path builds the BGP path of an origin (RFC 4271 section 5: ORIGIN IGP,
// NEXT_HOP; RFC 4760 MP_REACH_NLRI for IPv6).
func (s *Speaker) path(o Origin) (*apiutil.Path, error) {
	nlri, err := bgp.NewIPAddrPrefix(o.Prefix)
	if err != nil {
		return nil, fmt.Errorf("advertise %s: %w", o.Prefix, err)
	}
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
	fam := bgp.RF_IPv4_UC
	if o.Prefix.Addr().Is4() {
		if !s.cur.LocalV4.IsValid() {
			return nil, fmt.Errorf("advertise %s: this node has no IPv4 address for the next hop", o.Prefix)
		}
		nh, err := bgp.NewPathAttributeNextHop(s.cur.LocalV4)
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, nh)
	} else {
		fam = bgp.RF_IPv6_UC
		if !s.cur.LocalV6.IsValid() {
			return nil, fmt.Errorf("advertise %s: this node has no IPv6 address for the next hop", o.Prefix)
		}
		mp, err := bgp.NewPathAttributeMpReachNLRI(bgp.RF_IPv6_UC, []bgp.PathNLRI{{NLRI: nlri}}, s.cur.LocalV6)
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, mp)
	}
	if len(o.Communities) > 0 {
		attrs = append(attrs, bgp.NewPathAttributeCommunities(o.Communities))
	}
	if len(o.Large) > 0 {
		var lc []*bgp.LargeCommunity
		for _, l := range o.Large {
			lc = append(lc, bgp.NewLargeCommunity(l[0], l[1], l[2]))
		}
		attrs = append(attrs, bgp.NewPathAttributeLargeCommunities(lc))
	}
	return &apiutil.Path{Family: fam, Nlri: nlri, Attrs: attrs, Age: time.Now().Unix()}, nil
}

func familyOf(f bgp.Family) int {
	if f == bgp.RF_IPv6_UC {
		return 6
	}
	return 4
}

// onBest turns GoBGP's best-path changes into Learned.
func (s *Speaker) onBest(paths []*apiutil.Path, _ time.Time) {
	if s.o.OnLearned == nil {
		return
	}
	out := make([]Learned, 0, len(paths))
	for _, p := range paths {
		if p.Family != bgp.RF_IPv4_UC && p.Family != bgp.RF_IPv6_UC {
			continue
		}
		pfx, ok := nlriPrefix(p.Nlri)
		if !ok {
			continue
		}
		l := Learned{Prefix: pfx, Peer: p.PeerAddress.Unmap(), NextHop: nextHop(p.Attrs)}
		// Our own origins (no peer) are not learned routes: when one
		// becomes best, the learned route is gone.
		l.Withdrawn = p.Withdrawal || !p.PeerAddress.IsValid() || !l.NextHop.IsValid() || p.IsNexthopInvalid
		out = append(out, l)
	}
	if len(out) > 0 {
		s.o.OnLearned(out)
	}
}

func nlriPrefix(n bgp.NLRI) (netip.Prefix, bool) {
	if p, ok := n.(*bgp.IPAddrPrefix); ok && p.Prefix.IsValid() {
		return p.Prefix.Masked(), true
	}
	return netip.Prefix{}, false
}

func nextHop(attrs []bgp.PathAttributeInterface) netip.Addr {
	for _, a := range attrs {
		switch a := a.(type) {
		case *bgp.PathAttributeNextHop:
			return a.Value.Unmap()
		case *bgp.PathAttributeMpReachNLRI:
			if a.Nexthop.IsValid() && !a.Nexthop.IsUnspecified() {
				return a.Nexthop.Unmap()
			}
			return a.LinkLocalNexthop
		}
	}
	return netip.Addr{}
}

func (s *Speaker) onPeer(ev *apiutil.WatchEventMessage_PeerEvent, _ time.Time) {
	if ev.Type != apiutil.PEER_EVENT_STATE {
		return
	}
	st := ev.Peer.State
	e := PeerEvent{Addr: st.NeighborAddress.Unmap(), State: stateName(st.SessionState)}
	if st.SessionState != bgp.BGP_FSM_ESTABLISHED && st.DisconnectMessage != "" {
		e.Reason = st.DisconnectMessage
	} else if st.SessionState != bgp.BGP_FSM_ESTABLISHED && st.DisconnectReason != api.PeerState_DISCONNECT_REASON_UNSPECIFIED {
		e.Reason = strings.ToLower(strings.TrimPrefix(st.DisconnectReason.String(), "DISCONNECT_REASON_"))
	}
	if s.o.OnPeer != nil {
		s.o.OnPeer(e)
	}
}

func stateName(st bgp.FSMState) string {
	switch st {
	case bgp.BGP_FSM_IDLE:
		return "Idle"
	case bgp.BGP_FSM_CONNECT:
		return "Connect"
	case bgp.BGP_FSM_ACTIVE:
		return "Active"
	case bgp.BGP_FSM_OPENSENT:
		return "OpenSent"
	case bgp.BGP_FSM_OPENCONFIRM:
		return "OpenConfirm"
	case bgp.BGP_FSM_ESTABLISHED:
		return "Established"
	}
	return st.String()
}

// PeerStatus is a session as GoBGP sees it.
type PeerStatus struct {
	Addr                           netip.Addr
	ASN                            uint32
	Origin                         string
	State                          string
	Received, Accepted, Advertised uint64
}

// Peers lists the sessions, sorted by address.
func (s *Speaker) Peers(ctx context.Context) ([]PeerStatus, error) {
	var out []PeerStatus
	err := s.srv.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
		ps := PeerStatus{Origin: p.GetConf().GetDescription(), ASN: p.GetConf().GetPeerAsn()}
		ps.Addr, _ = netip.ParseAddr(p.GetConf().GetNeighborAddress())
		ps.State = stateName(bgp.FSMState(max(int(p.GetState().GetSessionState())-1, 0)))
		for _, a := range p.GetAfiSafis() {
			ps.Received += a.GetState().GetReceived()
			ps.Accepted += a.GetState().GetAccepted()
			ps.Advertised += a.GetState().GetAdvertised()
		}
		out = append(out, ps)
	})
	slices.SortFunc(out, func(a, b PeerStatus) int { return a.Addr.Compare(b.Addr) })
	return out, err
}
