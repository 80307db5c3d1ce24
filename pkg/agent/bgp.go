package agent

// BGP routing (--bgp): what calico-node's BIRD does, with an embedded
// GoBGP speaker (pkg/bgp).
//
// The speaker runs in the agent, on the host's network stack (the agent
// runs with the host network), so vecnetd restarts do not touch the
// sessions. It advertises this node's IPAM blocks (and /32, /128 for
// addresses it borrowed from other nodes' blocks) and the service
// prefixes of the default BGPConfiguration. What it learns becomes
// vecnetd routes of source "bgp", with the encapsulation of the IPPool
// holding the prefix (routes.go's rules: Never = routed via the BGP next
// hop, CrossSubnet = encapsulated only when the next hop is off this
// node's subnet, Always = encapsulated); prefixes outside every pool (a
// router's own routes) are routed via the next hop.
//
// With --bgp the static block routes of routes.go are off: BGP is the
// only source of other nodes' routes, as in a Calico cluster with
// calico_backend bird.
//
// Faults:
//   - a resource that does not validate is reported (a Warning Event on
//     it and a log line naming the field) and its last valid version stays
//     in force; one that never validated is ignored;
//   - a peer that flaps or never answers is GoBGP's business: other
//     sessions are separate state machines;
//   - graceful restart (RFC 4724): the agent exits without a NOTIFICATION,
//     so peers keep this node's routes for the restart time; vecnetd keeps
//     the routes the agent programmed. The next agent starts with the
//     restart flag, and deletes routes it did not learn again only once
//     every peer has sent End-of-RIB, or after the longest restart time.

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vecnetv1 "github.com/vecnet/vecnet/api/vecnet/v1"
	v3 "github.com/vecnet/vecnet/pkg/apis/projectcalico/v3"
	"github.com/vecnet/vecnet/pkg/bgp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"
)

// Work items of BGP.
const (
	workBGP       = "bgp"        // configuration and origins
	workBGPRoutes = "bgp-routes" // learned routes into vecnetd
)

const sourceBGP = "bgp"

var (
	gvrBGPConfigurations = schema.GroupVersionResource{Group: v3.GroupName, Version: "v3", Resource: "bgpconfigurations"}
	gvrBGPPeers          = schema.GroupVersionResource{Group: v3.GroupName, Version: "v3", Resource: "bgppeers"}
	gvrBGPFilters        = schema.GroupVersionResource{Group: v3.GroupName, Version: "v3", Resource: "bgpfilters"}
)

// bgpState is the agent's BGP side.
type bgpState struct {
	speaker *bgp.Speaker
	configs cache.GenericLister
	peers   cache.GenericLister
	filters cache.GenericLister

	// lastGood holds the last valid version of each resource
	// (kind/name), what stays in force when an update is invalid.
	lastGood map[string]runtime.Object
	// reported is the last problem reported per resource, so that each
	// is logged and evented once.
	reported map[string]string

	mu      sync.Mutex
	learned map[netip.Prefix]bgp.Learned
	// dirty are the prefixes whose learned route changed since the last
	// reconcile.
	dirty map[netip.Prefix]bool
	// syncDeadline ends the initial sync (see stale) if not every peer
	// has sent End-of-RIB by then.
	syncDeadline time.Time
	peersUp      map[netip.Addr]string // session state by peer
	eor          map[netip.Addr]bool
	configured   map[netip.Addr]bool
	restartTime  time.Duration

	// have is what the agent believes vecnetd's bgp routes are (nil:
	// unknown), so that a burst of updates does not list every route
	// from vecnetd per reconcile. Only the worker touches it; resync
	// (vecnetd restarted, periodic check) makes the next reconcile list.
	have   map[netip.Prefix]*vecnetv1.Route
	resync atomic.Bool
	// stale are the bgp routes vecnetd held when the agent started (its
	// previous life's): kept until the initial sync is done even if not
	// learned yet. Routes learned and withdrawn in this life go at once.
	// nil once the initial sync is done. Only the worker touches it.
	stale map[netip.Prefix]bool
	// sig is routeInputsSig of the last complete pass ("": none).
	sig string
}

// startBGP creates the speaker. When vecnetd already holds BGP routes
// (from this agent's previous life) this start is a graceful restart.
func (a *Agent) startBGP(ctx context.Context) error {
	b := &a.bgp
	b.lastGood = map[string]runtime.Object{}
	b.reported = map[string]string{}
	b.learned = map[netip.Prefix]bgp.Learned{}
	b.dirty = map[netip.Prefix]bool{}
	b.peersUp = map[netip.Addr]string{}
	b.eor = map[netip.Addr]bool{}
	b.configured = map[netip.Addr]bool{}
	have, err := a.listBGPRoutes(ctx)
	restarting := err == nil && len(have) > 0
	b.stale = map[netip.Prefix]bool{}
	for p := range have {
		b.stale[p] = true
	}
	b.syncDeadline = time.Now().Add(bgp.DefaultRestartTime)
	b.speaker = bgp.NewSpeaker(bgp.Options{
		APIAddress: a.cfg.BGPAPIAddress,
		Logger:     slog.Default(),
		Restarting: restarting,
		OnLearned:  a.onLearned,
		OnPeer:     a.onBGPPeer,
		OnEOR:      a.onEOR,
	})
	slog.Info("bgp: speaker created", "api", a.cfg.BGPAPIAddress, "graceful_restart", restarting, "bgp_routes_in_vecnetd", len(have))
	go func() {
		<-ctx.Done()
		// No NOTIFICATION: peers keep our routes (graceful restart).
		b.speaker.Stop()
	}()
	return nil
}

func (a *Agent) onLearned(ls []bgp.Learned) {
	b := &a.bgp
	b.mu.Lock()
	for _, l := range ls {
		if l.Withdrawn {
			delete(b.learned, l.Prefix)
		} else {
			b.learned[l.Prefix] = l
		}
		b.dirty[l.Prefix] = true
	}
	b.mu.Unlock()
	a.queue.Add(workBGPRoutes)
}

func (a *Agent) onBGPPeer(e bgp.PeerEvent) {
	b := &a.bgp
	b.mu.Lock()
	old := b.peersUp[e.Addr]
	b.peersUp[e.Addr] = e.State
	b.mu.Unlock()
	a.updateSessionMetrics()
	switch {
	case e.State == "Established":
		slog.Info("bgp: session established", "peer", e.Addr)
	case old == "Established":
		slog.Warn("bgp: session down", "peer", e.Addr, "state", e.State, "reason", e.Reason)
	default:
		slog.Debug("bgp: session state", "peer", e.Addr, "state", e.State, "reason", e.Reason)
	}
}

// updateSessionMetrics counts the configured sessions by state (a peer
// not heard of yet is Idle).
func (a *Agent) updateSessionMetrics() {
	b := &a.bgp
	byState := map[string]int{"Established": 0, "Active": 0, "Connect": 0, "Idle": 0, "OpenSent": 0, "OpenConfirm": 0}
	b.mu.Lock()
	for p := range b.configured {
		byState[cmp.Or(b.peersUp[p], "Idle")]++
	}
	b.mu.Unlock()
	for st, n := range byState {
		a.metrics.bgpSessions.WithLabelValues(st).Set(float64(n))
	}
}

func (a *Agent) onEOR(peer netip.Addr, family int) {
	b := &a.bgp
	b.mu.Lock()
	b.eor[peer] = true
	b.mu.Unlock()
	slog.Debug("bgp: end of RIB", "peer", peer, "family", family)
	a.queue.Add(workBGPRoutes)
}

// nodeBGPSig is what of a Node BGP depends on: addresses, labels (for
// selectors) and the BGP annotations.
func nodeBGPSig(obj any) string {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return ""
	}
	keys := slices.Sorted(maps.Keys(n.Labels))
	var b strings.Builder
	b.WriteString(nodeAddrSig(obj))
	for _, k := range keys {
		fmt.Fprintf(&b, "|%s=%s", k, n.Labels[k])
	}
	fmt.Fprintf(&b, "|%s|%s", n.Annotations[bgp.AnnotationASNumber], n.Annotations[bgp.AnnotationClusterID])
	return b.String()
}

// validObjects converts a lister's objects, keeping the last valid
// version of each one that does not validate now.
func validObjects[T any, P interface {
	*T
	runtime.Object
	Validate() error
	GetName() string
}](a *Agent, kind string, l cache.GenericLister) []T {
	objs, err := l.List(labels.Everything())
	if err != nil {
		return nil
	}
	var out []T
	seen := map[string]bool{}
	for _, o := range objs {
		u, ok := o.(*unstructured.Unstructured)
		if !ok {
			continue
		}
		var v T
		p := P(&v)
		key := kind + "/" + u.GetName()
		seen[key] = true
		err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, p)
		if err == nil {
			err = p.Validate()
		}
		if err != nil {
			good, ok := a.bgp.lastGood[key]
			msg := fmt.Sprintf("invalid, ignored: %v", err)
			if ok {
				msg = fmt.Sprintf("invalid, its previous valid version stays in force: %v", err)
			}
			a.reportBGP(kind, u.GetName(), "valid", msg)
			if ok {
				out = append(out, *good.(P))
			}
			continue
		}
		a.reportBGP(kind, u.GetName(), "valid", "")
		a.bgp.lastGood[key] = p.DeepCopyObject()
		out = append(out, v)
	}
	for key := range a.bgp.lastGood {
		if strings.HasPrefix(key, kind+"/") && !seen[key] {
			delete(a.bgp.lastGood, key)
		}
	}
	return out
}

// reportBGP logs (and records as an Event) a resource's problem about
// topic ("valid": the object itself, "use": applying it here) once per
// change; msg "" clears it.
func (a *Agent) reportBGP(kind, name, topic, msg string) {
	key := kind + "/" + name + "/" + topic
	if a.bgp.reported[key] == msg {
		return
	}
	if msg == "" {
		slog.Info("bgp: resource problem resolved", "kind", kind, "name", name, "was", a.bgp.reported[key])
		delete(a.bgp.reported, key)
		return
	}
	a.bgp.reported[key] = msg
	slog.Warn("bgp: "+msg, "kind", kind, "name", name)
	a.event(kind, name, "BGPConfigInvalid", msg)
}

// event records a Warning Event about a cluster-scoped resource; the
// API server's own deduplication merges repeats.
func (a *Agent) event(kind, name, reason, msg string) {
	apiVersion := v3.GroupName + "/v3"
	if kind == "Node" {
		apiVersion = "v1"
	}
	now := metav1.Now()
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: strings.ToLower(name) + "-", Namespace: metav1.NamespaceDefault},
		InvolvedObject: corev1.ObjectReference{Kind: kind, Name: name, APIVersion: apiVersion},
		Reason:         reason, Message: msg, Type: corev1.EventTypeWarning,
		Source:         corev1.EventSource{Component: "vecnet-agent", Host: a.cfg.NodeName},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := a.kube.CoreV1().Events(metav1.NamespaceDefault).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
			slog.Debug("bgp: could not record an event", "err", err)
		}
	}()
}

// reconcileBGP applies the BGP resources to the speaker and sets what it
// advertises.
func (a *Agent) reconcileBGP(ctx context.Context) error {
	if a.bgp.speaker == nil || a.ready.get("informers") != nil {
		return nil
	}
	in := bgp.Inputs{Self: a.cfg.NodeName, Nodes: map[string]bgp.Node{}, HoldTime: a.cfg.BGPHoldTime}
	nodes, err := a.nodeLister.List(labels.Everything())
	if err != nil {
		return err
	}
	for _, n := range nodes {
		na := nodeAddresses(n)
		bn := bgp.NodeFromAnnotations(n.Name, n.Labels, n.Annotations, na.v4, na.v6)
		if n.Name != a.cfg.NodeName {
			// This node's own problems come back from Build.
			a.reportBGP("Node", n.Name, "valid", bn.Invalid)
		}
		in.Nodes[n.Name] = bn
	}
	in.Configs = validObjects[v3.BGPConfiguration](a, "BGPConfiguration", a.bgp.configs)
	in.Peers = validObjects[v3.BGPPeer](a, "BGPPeer", a.bgp.peers)
	in.Filters = validObjects[v3.BGPFilter](a, "BGPFilter", a.bgp.filters)
	in.Secret = func(name, key string) (string, error) {
		s, err := a.kube.CoreV1().Secrets(a.cfg.BGPSecretNamespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return "", fmt.Errorf("secret %s/%s: %v", a.cfg.BGPSecretNamespace, name, err)
		}
		v, ok := s.Data[key]
		if !ok {
			return "", fmt.Errorf("secret %s/%s has no key %q", a.cfg.BGPSecretNamespace, name, key)
		}
		return string(v), nil
	}
	cfg, adv, probs := bgp.Build(in)
	byRes := map[string][]string{}
	for _, p := range probs {
		k := p.Kind + "/" + p.Name
		byRes[k] = append(byRes[k], strings.TrimPrefix(p.Error(), p.Kind+" "+p.Name+": "))
	}
	for k, msgs := range byRes {
		kind, name, _ := strings.Cut(k, "/")
		a.reportBGP(kind, name, "use", "not applied on node "+a.cfg.NodeName+": "+strings.Join(msgs, "; "))
	}
	for key := range a.bgp.reported {
		kind, rest, _ := strings.Cut(key, "/")
		name, topic, _ := strings.Cut(rest, "/")
		if _, ok := byRes[kind+"/"+name]; topic == "use" && !ok {
			a.reportBGP(kind, name, "use", "")
		}
	}
	if cfg.ASN == 0 {
		return fmt.Errorf("bgp: no configuration for this node yet (%v)", probs)
	}
	if err := a.bgp.speaker.Apply(ctx, cfg); err != nil {
		return fmt.Errorf("bgp: %w", err)
	}
	a.bgp.mu.Lock()
	a.bgp.configured = map[netip.Addr]bool{}
	a.bgp.restartTime = 0
	for _, p := range cfg.Peers {
		a.bgp.configured[p.Addr] = true
		a.bgp.restartTime = max(a.bgp.restartTime, p.RestartTime)
	}
	a.bgp.mu.Unlock()
	a.updateSessionMetrics()

	origins, err := a.bgpOrigins(adv)
	if err != nil {
		return err
	}
	if err := a.bgp.speaker.SetOrigins(origins); err != nil {
		return fmt.Errorf("bgp: %w", err)
	}
	slog.Debug("bgp: configured", "asn", cfg.ASN, "peers", len(cfg.Peers), "origins", len(origins))
	a.queue.Add(workBGPRoutes)
	return nil
}

// bgpOrigins is what this node advertises: its blocks, the addresses it
// borrowed from other nodes' blocks, and the service prefixes.
func (a *Agent) bgpOrigins(adv bgp.Advertise) ([]bgp.Origin, error) {
	blocks, err := a.blocks.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	set := map[netip.Prefix]bool{}
	for _, o := range blocks {
		b := blockFromObject(o)
		if b == nil {
			continue
		}
		if b.node == a.cfg.NodeName {
			set[b.cidr] = true
		}
		for addr, n := range b.borrowed {
			if n == a.cfg.NodeName && b.node != a.cfg.NodeName {
				set[netip.PrefixFrom(addr, addr.BitLen())] = true
			}
		}
	}
	for _, p := range adv.Services {
		set[p] = true
	}
	var out []bgp.Origin
	for _, p := range slices.SortedFunc(maps.Keys(set), comparePrefix) {
		out = append(out, adv.Decorate(p))
	}
	return out, nil
}

// listBGPRoutes lists vecnetd's routes of source bgp in VRF 0.
func (a *Agent) listBGPRoutes(ctx context.Context) (map[netip.Prefix]*vecnetv1.Route, error) {
	stream, err := a.dp.ListRoutes(ctx, &vecnetv1.ListRoutesRequest{Source: sourceBGP})
	if err != nil {
		return nil, vecnetdError(err, a.cfg.VecnetdSocket)
	}
	out := map[netip.Prefix]*vecnetv1.Route{}
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, vecnetdError(err, a.cfg.VecnetdSocket)
		}
		if r.GetSource() != sourceBGP || r.GetVrf() != 0 {
			continue
		}
		if p, err := netip.ParsePrefix(r.GetPrefix()); err == nil {
			out[p] = r
		}
	}
}

// bgpSynced tells whether the routes of the agent's previous life that
// BGP has not learned again may be deleted: the restart is over when
// every configured peer has sent End-of-RIB, or the longest restart time
// has passed (a peer without graceful restart sends no End-of-RIB). It
// stays true once reconcileBGPRoutes, having swept them, clears stale.
func (a *Agent) bgpSynced() bool {
	b := &a.bgp
	if b.stale == nil {
		return true
	}
	b.mu.Lock()
	if b.restartTime > 0 {
		b.syncDeadline = minTime(b.syncDeadline, time.Now().Add(b.restartTime))
	}
	all := len(b.configured) > 0
	for p := range b.configured {
		if !b.eor[p] {
			all = false
		}
	}
	done := all || time.Now().After(b.syncDeadline)
	b.mu.Unlock()
	if done {
		// Outside b.mu: the speaker's lock is taken while GoBGP calls
		// back into the agent.
		b.speaker.RestartDone()
		slog.Info("bgp: initial sync done; routes not learned again will be removed", "all_peers_sent_eor", all)
	}
	return done
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// routeInputsSig is what of routeInputs a learned route's programming
// depends on besides the route itself.
func routeInputsSig(in *routeInputs) string {
	var b strings.Builder
	for _, p := range in.pools {
		fmt.Fprintf(&b, "%s %s %s %s|", p.name, p.cidr, p.vxlan, p.ipip)
	}
	for _, name := range slices.Sorted(maps.Keys(in.nodes)) {
		fmt.Fprintf(&b, "%s %s %s|", name, in.nodes[name].v4, in.nodes[name].v6)
	}
	for _, u := range in.uplinks {
		fmt.Fprintf(&b, "%s|", u)
	}
	fmt.Fprintf(&b, "%d", in.vni)
	return b.String()
}

// bgpRoute decides the vecnetd route of a learned prefix.
func bgpRoute(in *routeInputs, l bgp.Learned, byAddr map[netip.Addr]string) (wantRoute, string) {
	w := wantRoute{prefix: l.Prefix, via: l.NextHop, encap: encapNone, node: byAddr[l.NextHop]}
	if in.isLocal(l.NextHop) {
		return w, "the next hop is this node"
	}
	for _, u := range in.uplinks {
		// BGP ranks above the uplink's subnet routes in vecnetd: a peer
		// advertising (part of) this node's own underlay subnet would
		// take it over.
		if u.Bits() < u.Addr().BitLen() && u.Masked().Contains(l.Prefix.Addr()) && l.Prefix.Bits() >= u.Bits() {
			return w, "inside this node's underlay subnet " + u.Masked().String()
		}
	}
	pl := in.poolOf(l.Prefix)
	if pl == nil || w.node == "" {
		// Not a pod prefix, or a next hop that is no node (a router):
		// routed as learned.
		return w, ""
	}
	w.pool = pl.name
	route, why := in.routeTo(pl, w.node, l.Prefix)
	if why != "" {
		return w, why
	}
	if route.encap == encapNone {
		route.via = l.NextHop // what BGP says, not what the node object says
	}
	return route, ""
}

// reconcileBGPRoutes makes vecnetd's bgp routes the learned ones.
func (a *Agent) reconcileBGPRoutes(ctx context.Context) error {
	if a.bgp.speaker == nil || a.ready.get("informers") != nil || a.ready.get("vecnetd") != nil {
		return nil
	}
	in, err := a.routeInputs(ctx)
	if err != nil {
		return err
	}
	byAddr := map[netip.Addr]string{}
	for name, na := range in.nodes {
		if na.v4.IsValid() {
			byAddr[na.v4.Addr()] = name
		}
		if na.v6.IsValid() {
			byAddr[na.v6.Addr()] = name
		}
	}
	have := a.bgp.have
	if a.bgp.resync.Swap(false) || have == nil {
		if have, err = a.listBGPRoutes(ctx); err != nil {
			return err
		}
		a.bgp.have = have
		a.bgp.sig = "" // full pass
	}
	synced := a.bgpSynced()
	// A full pass looks at every prefix: after a (re)list of vecnetd's
	// routes, when what routes depend on (pools, nodes' addresses,
	// uplinks) changed, and when the initial sync ends (stale routes go).
	// Otherwise only the prefixes BGP changed since the last pass: a
	// burst of updates costs what it changes, not the table's size.
	sig := routeInputsSig(in)
	full := sig != a.bgp.sig || (synced && a.bgp.stale != nil)
	if synced {
		a.bgp.stale = nil
	}
	a.bgp.mu.Lock()
	var consider []netip.Prefix
	if full {
		consider = slices.Collect(maps.Keys(a.bgp.learned))
		for p := range have {
			if _, ok := a.bgp.learned[p]; !ok {
				consider = append(consider, p)
			}
		}
	} else {
		consider = slices.Collect(maps.Keys(a.bgp.dirty))
	}
	clear(a.bgp.dirty)
	learned := make(map[netip.Prefix]bgp.Learned, len(consider))
	for _, p := range consider {
		if l, ok := a.bgp.learned[p]; ok {
			learned[p] = l
		}
	}
	total := len(a.bgp.learned)
	a.bgp.mu.Unlock()
	slices.SortFunc(consider, comparePrefix)

	var adds, dels []*vecnetv1.Route
	for _, p := range consider {
		if l, ok := learned[p]; ok {
			// Learned again in this life: from now on it is this life's
			// route, and its withdrawal goes at once.
			delete(a.bgp.stale, p)
			w, why := bgpRoute(in, l, byAddr)
			if why == "" {
				if old := have[p]; old == nil || !sameRoute(old, w) {
					r := w.proto()
					r.Source = sourceBGP
					adds = append(adds, r)
				}
				continue
			}
			slog.Debug("bgp: learned route not programmed", "prefix", l.Prefix, "next_hop", l.NextHop, "reason", why)
		}
		if _, ok := have[p]; ok && (synced || !a.bgp.stale[p]) {
			dels = append(dels, &vecnetv1.Route{Prefix: p.String(), Source: sourceBGP})
		}
	}
	start := time.Now()
	var errs []string
	for i, err := range sendRoutes(ctx, a.dp.AddRoutes, adds) {
		if err != nil {
			errs = append(errs, adds[i].GetPrefix()+": "+status.Convert(err).Message())
			continue
		}
		have[netip.MustParsePrefix(adds[i].GetPrefix())] = adds[i]
	}
	for i, err := range sendRoutes(ctx, a.dp.DeleteRoutes, dels) {
		if err != nil && status.Code(err) != codes.NotFound {
			errs = append(errs, dels[i].GetPrefix()+": "+status.Convert(err).Message())
			continue
		}
		delete(have, netip.MustParsePrefix(dels[i].GetPrefix()))
	}
	if len(errs) > 0 {
		a.bgp.have = nil // ask vecnetd, and look at everything, next time
	} else {
		a.bgp.sig = sig
	}
	if n := len(adds) + len(dels); n > 0 {
		msg := "bgp: routes programmed"
		args := []any{"added_or_changed", len(adds), "removed", len(dels), "in_vecnetd", len(have), "learned", total, "took", time.Since(start).Round(time.Microsecond)}
		if n <= 8 {
			var ps []string
			for _, r := range adds {
				ps = append(ps, "+"+r.GetPrefix()+" "+describeRoute(r))
			}
			for _, r := range dels {
				ps = append(ps, "-"+r.GetPrefix())
			}
			sort.Strings(ps)
			args = append(args, "changes", strings.Join(ps, "; "))
		}
		slog.Info(msg, args...)
	}
	a.metrics.routes.WithLabelValues("bgp").Set(float64(len(have)))
	if len(errs) > 0 {
		a.metrics.routeErrors.Add(float64(len(errs)))
		return fmt.Errorf("bgp: %d route(s) not programmed: %s", len(errs), strings.Join(errs, ", "))
	}
	if !synced {
		// Check the restart deadline again later.
		a.queue.AddAfter(workBGPRoutes, 5*time.Second)
	}
	return nil
}
