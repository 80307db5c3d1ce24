package agent

// Cross-node routes: what Calico's Felix does for VXLAN and IPIP pools,
// without BGP.
//
// Every node's pods take their addresses from IPAM blocks affine to that
// node (spec.affinity "host:<node>"). The agent routes each block of the
// other nodes to its node, in vecnetd's VRF 0, with the encapsulation that
// the IPPool holding the block asks for:
//
//	pool                     route to another node's block
//	vxlanMode Always         encap vxlan (VNI --vxlan-vni) via the node's IPv4 address
//	ipipMode Always          encap ipip via the node's IPv4 address
//	either CrossSubnet       that encap if the node is in another subnet than this one, else none
//	both Never               none: via the node's address of the block's family (routed on the underlay)
//
// A node's address is its Calico annotation projectcalico.org/IPv4Address
// (IPv6Address), in CIDR form, else its Node object's first InternalIP of
// the family. IPv6 blocks with an encapsulation go over the IPv4 address
// (vecnetd carries IPv6 in IPIP and in VXLAN over IPv4). "Same subnet" is
// decided against this node's own address and prefix length: the
// annotation's, else the uplink address (vecnetd's ListUplinks) equal to
// this node's InternalIP, else any uplink subnet.
//
// Addresses a node borrowed from another node's block (IPAM does so when
// the pools are exhausted, unless --strict-affinity) are routed to the
// borrowing node with a host route (/32, /128), as Felix does.
//
// The agent owns vecnetd's static routes inside the IPPools' CIDRs (and
// those equal to a block's CIDR): each reconcile adds what is missing,
// replaces what differs (AddRoutes replaces a prefix in place, so a changed
// next hop or encapsulation has no gap) and deletes the rest. It also sets
// vecnetd's pod prefixes to the pools' CIDRs plus --extra-pod-prefixes, so
// that the uplinks steer pod traffic to vecnetd and the host routes it to
// vecnet0. Disabled pools count: they take no new allocations, but their
// pods keep their addresses and must stay reachable.
//
// Reconciling is one coarse work item (workRoutes) triggered by changes of
// IPPools, of IPAMBlocks (affinity, borrowed addresses), of Nodes'
// addresses, of this node's uplink addresses, by vecnetd's restarts, and
// periodically (--gc-interval). Routes that vecnetd refuses (e.g. a next
// hop not reachable yet) do not hold back the others and are retried with
// the work queue's backoff.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strings"

	vecnetv1 "github.com/vecnet/vecnet/api/vecnet/v1"
	v3 "github.com/vecnet/vecnet/pkg/apis/projectcalico/v3"
	"github.com/vecnet/vecnet/pkg/ipam"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"
)

const workRoutes = "routes"

// Calico's node annotations (set by calico-node, or by hand): the node's
// address in CIDR form, which also gives its subnet.
const (
	AnnotationNodeIPv4 = "projectcalico.org/IPv4Address"
	AnnotationNodeIPv6 = "projectcalico.org/IPv6Address"
)

const (
	encapNone  = "none"
	encapIPIP  = "ipip"
	encapVXLAN = "vxlan"
)

// defaultVNI is Calico's (and vecnetd's) VXLAN network identifier.
const defaultVNI = 4096

// maxRouteLogLines bounds the per-route info lines of one reconcile (the
// first sync of a large cluster); the rest go to debug and a summary.
const maxRouteLogLines = 50

// routeState is the reconciler's memory between runs. Only the work
// queue's single worker touches it.
type routeState struct {
	// owned are the prefixes this process installed: still the agent's
	// after their pool is deleted.
	owned map[netip.Prefix]bool
	// skipped is the reason last logged for each block not routed, so
	// that a reconcile logs only what changed.
	skipped map[netip.Prefix]string
	// uplinkSig notices changes of the uplinks' addresses.
	uplinkSig string
}

// poolRoute is what routing needs of an IPPool.
type poolRoute struct {
	name   string
	cidr   netip.Prefix
	vxlan  v3.VXLANMode
	ipip   v3.IPIPMode
	prefix bool // a pod prefix (allows Workload or Tunnel use)
}

// nodeAddr is a node's underlay addresses. A prefix shorter than the
// address length carries the node's subnet (Calico's annotations do).
type nodeAddr struct {
	v4, v6 netip.Prefix
}

// blockRef is what routing needs of an IPAMBlock.
type blockRef struct {
	cidr     netip.Prefix
	affinity string // raw spec.affinity ("" when unset)
	node     string // the affine node ("" unless host:<node>)
	// borrowed are allocations held by pods of another node than the
	// block's: address -> that node.
	borrowed map[netip.Addr]string
}

// wantRoute is a route the agent wants in vecnetd.
type wantRoute struct {
	prefix netip.Prefix
	node   string
	pool   string
	via    netip.Addr
	encap  string
	vni    uint32
}

func (w wantRoute) String() string {
	s := "via " + w.via.String()
	if w.encap != encapNone {
		s += " encap " + w.encap
		if w.encap == encapVXLAN {
			s += fmt.Sprintf(" vni %d", w.vni)
		}
	}
	return s
}

func (w wantRoute) proto() *vecnetv1.Route {
	nh := &vecnetv1.NextHop{Ip: w.via.String()}
	if w.encap != encapNone {
		nh.Encap = w.encap
	}
	if w.encap == encapVXLAN {
		nh.Vni = w.vni
	}
	return &vecnetv1.Route{Prefix: w.prefix.String(), NextHops: []*vecnetv1.NextHop{nh}}
}

// skippedBlock is a remote block (or borrowed address) left without a
// route, and why.
type skippedBlock struct {
	prefix netip.Prefix
	node   string
	reason string
}

// routeInputs is everything the routes are decided from.
type routeInputs struct {
	self    string
	pools   []poolRoute
	nodes   map[string]nodeAddr
	blocks  []blockRef
	uplinks []netip.Prefix // this node's uplink addresses with their prefix lengths
	vni     uint32
	// byBGP: other nodes' blocks are routed by BGP (bgp.go), not here.
	byBGP bool
}

// routePlan is the outcome of planRoutes.
type routePlan struct {
	routes  map[netip.Prefix]wantRoute
	skipped []skippedBlock
	// routed and unroutable count other nodes' blocks (not borrowed
	// addresses).
	routed, unroutable int
}

// poolOf returns the most specific pool that holds prefix p.
func (in *routeInputs) poolOf(p netip.Prefix) *poolRoute {
	var best *poolRoute
	for i := range in.pools {
		pl := &in.pools[i]
		if pl.cidr.Addr().Is4() == p.Addr().Is4() && pl.cidr.Bits() <= p.Bits() && pl.cidr.Contains(p.Addr()) {
			if best == nil || pl.cidr.Bits() > best.cidr.Bits() {
				best = pl
			}
		}
	}
	return best
}

// sameSubnet tells whether peer is on this node's subnet (of peer's
// family): the subnet of this node's address when its length is known,
// else any uplink subnet.
func (in *routeInputs) sameSubnet(peer netip.Addr) bool {
	self := in.nodes[in.self].v4
	if peer.Is6() {
		self = in.nodes[in.self].v6
	}
	if self.IsValid() {
		if self.Bits() < self.Addr().BitLen() {
			return self.Masked().Contains(peer)
		}
		for _, u := range in.uplinks {
			if u.Addr() == self.Addr() && u.Bits() < u.Addr().BitLen() {
				return u.Masked().Contains(peer)
			}
		}
	}
	for _, u := range in.uplinks {
		if u.Bits() < u.Addr().BitLen() && u.Masked().Contains(peer) {
			return true
		}
	}
	return false
}

// isLocal tells whether a is one of this node's addresses.
func (in *routeInputs) isLocal(a netip.Addr) bool {
	self := in.nodes[in.self]
	if a == self.v4.Addr() || a == self.v6.Addr() {
		return true
	}
	for _, u := range in.uplinks {
		if u.Addr() == a {
			return true
		}
	}
	return false
}

// routeTo decides the route of prefix (a block, or a borrowed address) of
// pool to node; a non-empty string says why there is none.
func (in *routeInputs) routeTo(pl *poolRoute, node string, prefix netip.Prefix) (wantRoute, string) {
	w := wantRoute{prefix: prefix, node: node, pool: pl.name, encap: encapNone}
	peer, ok := in.nodes[node]
	if !ok {
		return w, fmt.Sprintf("node %s has no Node object", node)
	}
	famAddr := peer.v4
	if prefix.Addr().Is6() {
		famAddr = peer.v6
	}
	encap := encapNone
	switch {
	case pl.vxlan == v3.VXLANModeAlways:
		encap = encapVXLAN
	case pl.ipip == v3.IPIPModeAlways:
		encap = encapIPIP
	case pl.vxlan == v3.VXLANModeCrossSubnet || pl.ipip == v3.IPIPModeCrossSubnet:
		// Routed when the node is on this node's subnet in the block's
		// family (where the routed next hop would be).
		if !famAddr.IsValid() || !in.sameSubnet(famAddr.Addr()) {
			encap = encapVXLAN
			if pl.vxlan != v3.VXLANModeCrossSubnet {
				encap = encapIPIP
			}
		}
	}
	w.encap = encap
	if encap != encapNone {
		if !peer.v4.IsValid() {
			return w, fmt.Sprintf("pool %s wants %s but node %s has no IPv4 address (InternalIP or %s)", pl.name, encap, node, AnnotationNodeIPv4)
		}
		w.via = peer.v4.Addr()
		if encap == encapVXLAN {
			w.vni = cmpOr(in.vni, defaultVNI)
		}
	} else {
		if !famAddr.IsValid() {
			ann := AnnotationNodeIPv4
			if prefix.Addr().Is6() {
				ann = AnnotationNodeIPv6
			}
			return w, fmt.Sprintf("node %s has no IPv%d address (InternalIP or %s) for a routed (unencapsulated) next hop", node, famBits(prefix), ann)
		}
		w.via = famAddr.Addr()
	}
	if in.isLocal(w.via) {
		return w, fmt.Sprintf("node %s's address %s is this node's", node, w.via)
	}
	return w, ""
}

func famBits(p netip.Prefix) int {
	if p.Addr().Is4() {
		return 4
	}
	return 6
}

func cmpOr(v, def uint32) uint32 {
	if v == 0 {
		return def
	}
	return v
}

// planRoutes decides the routes to other nodes' blocks and borrowed
// addresses.
func planRoutes(in *routeInputs) routePlan {
	plan := routePlan{routes: map[netip.Prefix]wantRoute{}}
	if in.byBGP {
		return plan
	}
	skip := func(p netip.Prefix, node, reason string) {
		plan.skipped = append(plan.skipped, skippedBlock{prefix: p, node: node, reason: reason})
	}
	for _, b := range in.blocks {
		pl := in.poolOf(b.cidr)
		switch {
		case b.node == in.self:
			// Ours: its pods are host routes of their interfaces.
		case b.node == "" && b.affinity == "":
			// Its node is gone (IPAM released the affinity); the block
			// lives on only until its last address is released.
			plan.unroutable++
			skip(b.cidr, "", "the block has no affinity (its node was removed)")
		case b.node == "":
			// Not a node's (e.g. Calico's virtual:load-balancer).
		case pl == nil:
			plan.unroutable++
			skip(b.cidr, b.node, "no IPPool contains the block")
		default:
			w, why := in.routeTo(pl, b.node, b.cidr)
			if why != "" {
				plan.unroutable++
				skip(b.cidr, b.node, why)
				break
			}
			plan.routed++
			plan.routes[b.cidr] = w
		}
		for a, node := range b.borrowed {
			if node == in.self || node == b.node {
				continue
			}
			p := netip.PrefixFrom(a, a.BitLen())
			if pl == nil {
				skip(p, node, "no IPPool contains the borrowed address")
				continue
			}
			w, why := in.routeTo(pl, node, p)
			if why != "" {
				skip(p, node, why)
				continue
			}
			plan.routes[p] = w
		}
	}
	sort.Slice(plan.skipped, func(i, j int) bool { return plan.skipped[i].prefix.Addr().Less(plan.skipped[j].prefix.Addr()) })
	return plan
}

// podPrefixes is what vecnetd's pod prefixes should be: the pools' CIDRs
// and the configured extras, normalized as vecnetd does.
func podPrefixes(pools []poolRoute, extra []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	add := func(p netip.Prefix) {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()).Masked()
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	for _, p := range pools {
		if p.prefix {
			add(p.cidr)
		}
	}
	for _, p := range extra {
		add(p)
	}
	slices.SortFunc(out, comparePrefix)
	return out
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// nodeAddresses reads a Node's underlay addresses: Calico's annotations
// first, then the first InternalIP of each family.
func nodeAddresses(n *corev1.Node) nodeAddr {
	var na nodeAddr
	parse := func(s string) netip.Prefix {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			return netip.PrefixFrom(p.Addr().Unmap(), min(p.Bits(), p.Addr().Unmap().BitLen()))
		}
		if a, err := netip.ParseAddr(s); err == nil {
			a = a.Unmap()
			return netip.PrefixFrom(a, a.BitLen())
		}
		return netip.Prefix{}
	}
	if p := parse(n.Annotations[AnnotationNodeIPv4]); p.IsValid() && p.Addr().Is4() {
		na.v4 = p
	}
	if p := parse(n.Annotations[AnnotationNodeIPv6]); p.IsValid() && p.Addr().Is6() {
		na.v6 = p
	}
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		p := parse(a.Address)
		switch {
		case !p.IsValid():
		case p.Addr().Is4() && !na.v4.IsValid():
			na.v4 = p
		case p.Addr().Is6() && !na.v6.IsValid():
			na.v6 = p
		}
	}
	return na
}

// nodeAddrSig is what of a Node routing depends on, to skip status
// heartbeats.
func nodeAddrSig(obj any) string {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return ""
	}
	na := nodeAddresses(n)
	return na.v4.String() + "," + na.v6.String()
}

// poolFromObject parses an IPPool from the informer; nil if invalid.
func poolFromObject(o runtime.Object) *poolRoute {
	u, ok := o.(*unstructured.Unstructured)
	if !ok {
		return nil
	}
	var p v3.IPPool
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &p); err != nil {
		return nil
	}
	if p.Validate() != nil {
		return nil
	}
	cidr, err := p.Spec.ParseCIDR()
	if err != nil {
		return nil
	}
	return &poolRoute{
		name: p.Name, cidr: cidr, vxlan: p.Spec.VXLANMode, ipip: p.Spec.IPIPMode,
		prefix: p.Spec.Allows(v3.IPPoolAllowedUseWorkload) || p.Spec.Allows(v3.IPPoolAllowedUseTunnel),
	}
}

// blockFromObject parses an IPAMBlock from the informer; nil if invalid
// or marked deleted.
func blockFromObject(o any) *blockRef {
	u, ok := o.(*unstructured.Unstructured)
	if !ok {
		return nil
	}
	var b v3.IPAMBlock
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &b); err != nil {
		return nil
	}
	cidr, err := b.Spec.Prefix()
	if err != nil || b.Spec.Deleted {
		return nil
	}
	ref := &blockRef{cidr: cidr.Masked(), node: b.Spec.AffineNode()}
	if b.Spec.Affinity != nil {
		ref.affinity = *b.Spec.Affinity
	}
	for _, al := range ipam.BlockAllocations(&b) {
		if n := al.Attrs["node"]; n != "" && n != ref.node {
			if ref.borrowed == nil {
				ref.borrowed = map[netip.Addr]string{}
			}
			ref.borrowed[al.Addr] = n
		}
	}
	return ref
}

// blockSig is what of a block routing depends on, so that the allocations
// and releases of pods (most block updates) do not trigger reconciles.
func blockSig(o any) string {
	if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	b := blockFromObject(o)
	if b == nil {
		return ""
	}
	var borrowed []string
	for a, n := range b.borrowed {
		borrowed = append(borrowed, a.String()+"@"+n)
	}
	sort.Strings(borrowed)
	return b.cidr.String() + "|" + b.affinity + "|" + strings.Join(borrowed, ",")
}

// sigEventHandler enqueues item when sig of an object changes (every add
// and delete), so that updates the work does not depend on (a pod's
// allocation, a node's heartbeat) cost nothing.
func (a *Agent) sigEventHandler(item string, sig func(any) string) cache.ResourceEventHandlerFuncs {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { a.queue.Add(item) },
		UpdateFunc: func(o, n any) {
			if sig(o) != sig(n) {
				a.queue.Add(item)
			}
		},
		DeleteFunc: func(any) { a.queue.Add(item) },
	}
}

// checkUplinks queues a reconcile when this node's uplink addresses
// changed (an uplink attached, an address added: what next hops resolve
// through and what "same subnet" means).
func (a *Agent) checkUplinks(ctx context.Context) {
	if !a.cfg.Routes {
		return
	}
	resp, err := a.dp.ListUplinks(ctx, &vecnetv1.ListUplinksRequest{})
	if err != nil {
		return
	}
	var parts []string
	for _, u := range resp.GetUplinks() {
		parts = append(parts, u.GetName()+"="+strings.Join(u.GetAddresses(), ","))
	}
	sort.Strings(parts)
	sig := strings.Join(parts, ";")
	a.upMu.Lock()
	changed := sig != a.routes.uplinkSig
	a.routes.uplinkSig = sig
	a.upMu.Unlock()
	if changed {
		slog.Debug("routes: uplink addresses changed", "uplinks", sig)
		a.queue.Add(workRoutes)
	}
}

// routeInputs reads the informers' caches and vecnetd's uplinks.
func (a *Agent) routeInputs(ctx context.Context) (*routeInputs, error) {
	in := &routeInputs{self: a.cfg.NodeName, nodes: map[string]nodeAddr{}, vni: a.cfg.VXLANVNI, byBGP: a.cfg.BGP}
	pools, err := a.pools.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	for _, o := range pools {
		if p := poolFromObject(o); p != nil {
			in.pools = append(in.pools, *p)
		}
	}
	slices.SortFunc(in.pools, func(x, y poolRoute) int { return comparePrefix(x.cidr, y.cidr) })
	nodes, err := a.nodeLister.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	for _, n := range nodes {
		in.nodes[n.Name] = nodeAddresses(n)
	}
	blocks, err := a.blocks.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	for _, o := range blocks {
		if b := blockFromObject(o); b != nil {
			in.blocks = append(in.blocks, *b)
		}
	}
	ups, err := a.dp.ListUplinks(ctx, &vecnetv1.ListUplinksRequest{})
	if err != nil {
		return nil, vecnetdError(err, a.cfg.VecnetdSocket)
	}
	for _, u := range ups.GetUplinks() {
		for _, s := range u.GetAddresses() {
			if p, err := netip.ParsePrefix(s); err == nil {
				in.uplinks = append(in.uplinks, p)
			}
		}
	}
	return in, nil
}

// reconcileRoutes makes vecnetd's pod prefixes and the agent's routes
// what the pools, blocks and nodes say.
func (a *Agent) reconcileRoutes(ctx context.Context) error {
	if !a.cfg.Routes {
		return nil
	}
	if a.ready.get("informers") != nil {
		return nil // queued again once synced
	}
	if a.ready.get("vecnetd") != nil {
		slog.Debug("routes: vecnetd not reachable; waiting for it")
		return nil // watchVecnetd queues a reconcile when it is back
	}
	in, err := a.routeInputs(ctx)
	if err != nil {
		return err
	}
	errPrefixes := a.syncPodPrefixes(ctx, podPrefixes(in.pools, a.cfg.ExtraPodPrefixes), len(in.pools))
	plan := planRoutes(in)
	a.logSkipped(plan.skipped)

	have, err := a.agentRoutes(ctx, in)
	if err != nil {
		return err
	}
	type change struct {
		want wantRoute
		old  *vecnetv1.Route
	}
	var adds []change
	for _, p := range slices.SortedFunc(maps.Keys(plan.routes), comparePrefix) {
		w := plan.routes[p]
		old := have[p]
		if old != nil && sameRoute(old, w) {
			slog.Debug("routes: unchanged", "prefix", p, "peer", w.node, "route", w.String())
			continue
		}
		adds = append(adds, change{w, old})
	}
	var dels []*vecnetv1.Route
	for _, p := range slices.SortedFunc(maps.Keys(have), comparePrefix) {
		if _, ok := plan.routes[p]; !ok {
			dels = append(dels, have[p])
		}
	}

	var failed []string
	failedSet := map[netip.Prefix]bool{}
	logged := 0
	logLine := func(msg string, args ...any) {
		if logged < maxRouteLogLines {
			slog.Info(msg, args...)
		} else {
			slog.Debug(msg, args...)
		}
		logged++
	}
	// Adds first: a block that moved to another node is replaced in place.
	routes := make([]*vecnetv1.Route, len(adds))
	for i, c := range adds {
		routes[i] = c.want.proto()
	}
	errs := sendRoutes(ctx, a.dp.AddRoutes, routes)
	for i, c := range adds {
		w := c.want
		if errs[i] != nil {
			failed = append(failed, w.prefix.String())
			failedSet[w.prefix] = true
			a.metrics.routeErrors.Inc()
			slog.Warn("routes: vecnetd refused a route to another node's block; will retry", "prefix", w.prefix, "peer", w.node,
				"route", w.String(), "pool", w.pool, "err", status.Convert(errs[i]).Message())
			continue
		}
		a.routes.owned[w.prefix] = true
		if c.old == nil {
			logLine("routes: added", "prefix", w.prefix, "peer", w.node, "route", w.String(), "pool", w.pool)
		} else {
			logLine("routes: changed", "prefix", w.prefix, "peer", w.node, "route", w.String(), "was", describeRoute(c.old), "pool", w.pool)
		}
	}
	if len(dels) > 0 {
		// By prefix: vecnetd ignores next hops on delete (and the listed
		// ones include what they resolved to, not valid input).
		keys := make([]*vecnetv1.Route, len(dels))
		for i, r := range dels {
			keys[i] = &vecnetv1.Route{Prefix: r.GetPrefix(), Vrf: r.GetVrf()}
		}
		derrs := sendRoutes(ctx, a.dp.DeleteRoutes, keys)
		for i, r := range dels {
			p, _ := netip.ParsePrefix(r.GetPrefix())
			if derrs[i] != nil && status.Code(derrs[i]) != codes.NotFound {
				failed = append(failed, r.GetPrefix())
				a.metrics.routeErrors.Inc()
				slog.Warn("routes: could not delete a route; will retry", "prefix", r.GetPrefix(), "err", status.Convert(derrs[i]).Message())
				continue
			}
			delete(a.routes.owned, p)
			logLine("routes: removed", "prefix", r.GetPrefix(), "was", describeRoute(r), "why", removalReason(in, plan, p))
		}
	}
	if logged > maxRouteLogLines {
		slog.Info("routes: more changes logged at debug level", "count", logged-maxRouteLogLines)
	}

	byEncap := map[string]int{encapNone: 0, encapIPIP: 0, encapVXLAN: 0}
	for p, w := range plan.routes {
		if !failedSet[p] {
			byEncap[w.encap]++
		}
	}
	for e, n := range byEncap {
		a.metrics.routes.WithLabelValues(e).Set(float64(n))
	}
	a.metrics.remoteBlocks.WithLabelValues("routed").Set(float64(plan.routed))
	a.metrics.remoteBlocks.WithLabelValues("unroutable").Set(float64(plan.unroutable))
	if len(adds)+len(dels) == 0 {
		slog.Debug("routes: in sync", "routes", len(plan.routes), "unroutable", len(plan.skipped))
	}
	if len(failed) > 0 {
		return errors.Join(fmt.Errorf("%d route(s) not programmed: %s", len(failed), strings.Join(failed, ", ")), errPrefixes)
	}
	return errPrefixes
}

// sendRoutes sends routes to call (vecnetd's AddRoutes or DeleteRoutes) in
// one request and, if vecnetd refuses it, one by one: one bad route fails
// a whole batch, and must hold back none of the others. errs[i] is
// routes[i]'s error.
func sendRoutes(ctx context.Context, call func(context.Context, *vecnetv1.RoutesRequest, ...grpc.CallOption) (*vecnetv1.RoutesResponse, error),
	routes []*vecnetv1.Route) []error {
	errs := make([]error, len(routes))
	if len(routes) == 0 {
		return errs
	}
	_, err := call(ctx, &vecnetv1.RoutesRequest{Routes: routes})
	switch {
	case err == nil:
	case len(routes) == 1:
		errs[0] = err
	default:
		slog.Debug("vecnetd refused a batch of routes; sending them one by one", "count", len(routes), "err", status.Convert(err).Message())
		for i := range routes {
			_, errs[i] = call(ctx, &vecnetv1.RoutesRequest{Routes: routes[i : i+1]})
		}
	}
	return errs
}

// syncPodPrefixes sets vecnetd's pod prefixes when they differ. With no
// pool at all (and no extras) it leaves them as vecnetd was started with.
func (a *Agent) syncPodPrefixes(ctx context.Context, want []netip.Prefix, pools int) error {
	cur, err := a.dp.GetPodPrefixes(ctx, &vecnetv1.GetPodPrefixesRequest{})
	if err != nil {
		return vecnetdError(err, a.cfg.VecnetdSocket)
	}
	var have []netip.Prefix
	for _, s := range cur.GetPrefixes() {
		if p, err := netip.ParsePrefix(s); err == nil {
			have = append(have, p.Masked())
		}
	}
	slices.SortFunc(have, comparePrefix)
	if slices.Equal(have, want) {
		slog.Debug("routes: pod prefixes in sync", "prefixes", want)
		return nil
	}
	if len(want) == 0 && pools == 0 {
		slog.Debug("routes: no IPPool; leaving vecnetd's pod prefixes", "prefixes", have)
		return nil
	}
	req := &vecnetv1.PodPrefixes{}
	for _, p := range want {
		req.Prefixes = append(req.Prefixes, p.String())
	}
	if _, err := a.dp.SetPodPrefixes(ctx, req); err != nil {
		slog.Warn("routes: vecnetd refused the pod prefixes", "prefixes", req.Prefixes, "err", status.Convert(err).Message())
		return fmt.Errorf("set pod prefixes %v: %w", req.Prefixes, vecnetdError(err, a.cfg.VecnetdSocket))
	}
	slog.Info("routes: pod prefixes set", "prefixes", req.Prefixes, "were", have)
	return nil
}

// agentRoutes lists vecnetd's static routes in VRF 0 that are the agent's:
// inside a pool's CIDR, equal to a block's CIDR, or installed by this
// process.
func (a *Agent) agentRoutes(ctx context.Context, in *routeInputs) (map[netip.Prefix]*vecnetv1.Route, error) {
	blocks := map[netip.Prefix]bool{}
	for _, b := range in.blocks {
		blocks[b.cidr] = true
	}
	stream, err := a.dp.ListRoutes(ctx, &vecnetv1.ListRoutesRequest{})
	if err != nil {
		return nil, vecnetdError(err, a.cfg.VecnetdSocket)
	}
	out := map[netip.Prefix]*vecnetv1.Route{}
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, vecnetdError(err, a.cfg.VecnetdSocket)
		}
		if r.GetSource() != "static" || r.GetVrf() != 0 {
			continue
		}
		p, err := netip.ParsePrefix(r.GetPrefix())
		if err != nil {
			continue
		}
		if in.poolOf(p) != nil || blocks[p] || a.routes.owned[p] {
			out[p] = r
		}
	}
	return out, nil
}

// sameRoute tells whether vecnetd's route r is w.
func sameRoute(r *vecnetv1.Route, w wantRoute) bool {
	var nhs []*vecnetv1.NextHop
	for _, nh := range r.GetNextHops() {
		if !strings.HasPrefix(nh.GetIp(), "resolved:") {
			nhs = append(nhs, nh)
		}
	}
	if len(nhs) != 1 || nhs[0].GetInterface() != "" {
		return false
	}
	nh := nhs[0]
	ip, err := netip.ParseAddr(nh.GetIp())
	if err != nil || ip.Unmap() != w.via {
		return false
	}
	encap := nh.GetEncap()
	if encap == "" {
		encap = encapNone
	}
	if encap != w.encap {
		return false
	}
	return w.encap != encapVXLAN || nh.GetVni() == w.vni
}

// describeRoute prints vecnetd's route for logs.
func describeRoute(r *vecnetv1.Route) string {
	var parts []string
	for _, nh := range r.GetNextHops() {
		if strings.HasPrefix(nh.GetIp(), "resolved:") {
			continue
		}
		s := "via " + nh.GetIp()
		if nh.GetInterface() != "" {
			s += " dev " + nh.GetInterface()
		}
		if e := nh.GetEncap(); e != "" && e != encapNone {
			s += " encap " + e
			if e == encapVXLAN {
				s += fmt.Sprintf(" vni %d", nh.GetVni())
			}
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

// removalReason says why the agent's route to p is no longer wanted.
func removalReason(in *routeInputs, plan routePlan, p netip.Prefix) string {
	for _, s := range plan.skipped {
		if s.prefix == p {
			return s.reason
		}
	}
	for _, b := range in.blocks {
		if b.cidr == p {
			if b.node == in.self {
				return "the block is this node's now"
			}
			return "the block is no other node's"
		}
		if p.Bits() == p.Addr().BitLen() && b.cidr.Contains(p.Addr()) {
			return "the address is no longer borrowed by another node"
		}
	}
	return "no IPAM block (released)"
}

// logSkipped logs the blocks left without a route when that changed.
func (a *Agent) logSkipped(skipped []skippedBlock) {
	now := map[netip.Prefix]string{}
	for _, s := range skipped {
		now[s.prefix] = s.reason
		if a.routes.skipped[s.prefix] == s.reason {
			slog.Debug("routes: still not routed", "prefix", s.prefix, "peer", s.node, "reason", s.reason)
			continue
		}
		slog.Warn("routes: no route to another node's block", "prefix", s.prefix, "peer", s.node, "reason", s.reason)
	}
	for p := range a.routes.skipped {
		if _, ok := now[p]; !ok {
			slog.Debug("routes: block no longer unroutable", "prefix", p)
		}
	}
	a.routes.skipped = now
}
