package tables

import (
	"errors"
	"fmt"
	"maps"
	"math/bits"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/vecnet/vecnet/pkg/dataplane/fib"
)

// Source says who installed a route. When several sources install the same
// prefix, the one earliest in sourcePriority wins, as with VPP's FIB
// sources. The zero value is SourceStatic, what API callers mean by default.
type Source uint8

const (
	SourceStatic    Source = iota // the API
	SourceLocal                   // the dataplane's own address (/32, /128)
	SourceConnected               // subnet of an address on an interface
	SourceHost                    // a pod's address on its interface
	SourceNeighbor                // a neighbour learned on an attached subnet
	// SourceNode is a node address: the host kernel's address on an
	// uplink, which resolves to an AdjHost adjacency.
	SourceNode
	// SourceUplink is what the uplink manager installs besides node
	// addresses: the uplink's subnets, the pod prefixes (dropped unless a
	// more specific route exists) and the default routes to the host.
	SourceUplink
	// SourceBGP is the API's second source, owned by vecnet-agent's BGP
	// speaker: its learned routes live beside the static ones of the same
	// prefix (static wins) and beat the uplink manager's fallbacks.
	SourceBGP
	numSources
)

var sourcePriority = [numSources]Source{SourceLocal, SourceNode, SourceConnected, SourceHost, SourceStatic, SourceBGP, SourceUplink, SourceNeighbor}

var sourceNames = [numSources]string{"static", "local", "connected", "host", "neighbor", "node", "uplink", "bgp"}

func (s Source) String() string {
	if s >= numSources {
		return fmt.Sprintf("source(%d)", uint8(s))
	}
	return sourceNames[s]
}

// ParseSource returns the source named s (as String prints it).
func ParseSource(s string) (Source, bool) {
	for i, n := range sourceNames {
		if n == s {
			return Source(i), true
		}
	}
	return 0, false
}

// Path is one next hop of a route.
type Path struct {
	// NextHop is the gateway; invalid for an attached route ("dev").
	NextHop netip.Addr
	// Interface is the outgoing interface index; 0 resolves NextHop
	// through the FIB (recursive route).
	Interface uint32
	Weight    uint32
	// Encap sends through a tunnel to NextHop, which must be an IPv4
	// address reachable through an L2 interface (another node).
	Encap Encap
}

// Encap is a path's tunnel: its type and, for VXLAN, the network
// identifier (24 bits, RFC 7348 section 5).
type Encap struct {
	Type EncapType
	VNI  uint32
}

// Route is a prefix and its paths.
type Route struct {
	Prefix netip.Prefix
	VRF    uint32
	Paths  []Path
	Source Source
}

// Reserved load-balance and adjacency indices. FIB value 0 means "no
// route", so load balances are numbered from 1.
const (
	adjDrop        = 0
	adjUnreachable = 1
	adjLocal       = 2
	numFixedAdjs   = 3
)

// Errors returned by the Writer; the API maps them to gRPC codes. Test
// with errors.Is; the messages stand on their own without the sentinel's
// text appended.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrInvalid  = errors.New("invalid")
)

type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string        { return e.msg }
func (e *kindError) Is(target error) bool { return target == e.kind }

func errf(kind error, format string, args ...any) error {
	return &kindError{msg: fmt.Sprintf(format, args...), kind: kind}
}

type adjKey struct {
	kind  AdjKind
	tx    uint32
	nh    netip.Addr
	encap Encap
	under uint32 // AdjEncap: the underlay adjacency it holds a reference on
}

type adjEntry struct {
	adj  Adjacency
	key  adjKey
	refs int
}

type lbEntry struct {
	lb   LoadBalance
	key  string
	adjs []uint32 // distinct adjacencies referenced (for refcounts)
	refs int
}

type routeSet struct {
	by [numSources]*Route
	lb uint32 // installed load balance, 0 when none
}

func (rs *routeSet) best() *Route {
	for _, src := range sourcePriority {
		if r := rs.by[src]; r != nil {
			return r
		}
	}
	return nil
}

type vrfState struct {
	id     uint32
	ip4    *fib.IP4
	ip6    *fib.IP6
	routes map[netip.Prefix]*routeSet
	// gateways counts the routes (of any source) with a recursive path
	// per next hop, so that commit only looks for dependants of a changed
	// prefix when it covers a next hop in use.
	gateways map[netip.Addr]int
}

func (v *vrfState) countGateways(r *Route, delta int) {
	if r == nil {
		return
	}
	for _, p := range r.Paths {
		if p.Interface == 0 && p.NextHop.IsValid() {
			if v.gateways[p.NextHop] += delta; v.gateways[p.NextHop] == 0 {
				delete(v.gateways, p.NextHop)
			}
		}
	}
}

type neighKey struct {
	ifIndex uint32
	ip      netip.Addr
}

// Neighbor is a resolved IP-to-MAC binding on an L2 interface.
type Neighbor struct {
	Interface uint32
	IP        netip.Addr
	MAC       [6]byte
	Static    bool
}

// Writer owns the authoritative tables and publishes snapshots. All methods
// are safe for concurrent use; they serialise on one mutex, which workers
// never take.
type Writer struct {
	mu      sync.Mutex
	cur     atomic.Pointer[Snapshot]
	version uint64

	ifaces   map[uint32]*Interface
	ifByName map[string]uint32
	nextIf   uint32

	vrfs     map[uint32]*vrfState
	adjs     []adjEntry
	freeAdjs []uint32
	adjByKey map[adjKey]uint32
	lbs      []lbEntry
	freeLBs  []uint32
	lbByKey  map[string]uint32
	neigh    map[neighKey]Neighbor

	vxlanPort uint16
}

// DefaultVXLANPort is the IANA-assigned VXLAN port (RFC 7348 section 5).
const DefaultVXLANPort = 4789

// NewWriter returns a Writer with VRF 0 and publishes the first snapshot.
func NewWriter() *Writer {
	w := &Writer{
		ifaces:   map[uint32]*Interface{},
		ifByName: map[string]uint32{},
		nextIf:   1,
		vrfs:     map[uint32]*vrfState{},
		adjByKey: map[adjKey]uint32{},
		lbByKey:  map[string]uint32{},
		neigh:    map[neighKey]Neighbor{},

		vxlanPort: DefaultVXLANPort,
	}
	w.adjs = []adjEntry{
		{adj: Adjacency{Kind: AdjDrop}, refs: 1},
		{adj: Adjacency{Kind: AdjUnreachable}, refs: 1},
		{adj: Adjacency{Kind: AdjLocal}, refs: 1},
	}
	w.lbs = []lbEntry{{refs: 1}} // index 0: "no route"
	w.vrfs[0] = newVRF(0)
	w.publish()
	return w
}

func newVRF(id uint32) *vrfState {
	return &vrfState{id: id, ip4: fib.NewIP4(), ip6: fib.NewIP6(), routes: map[netip.Prefix]*routeSet{}, gateways: map[netip.Addr]int{}}
}

// Snapshot returns the current version; this is what workers call.
func (w *Writer) Snapshot() *Snapshot { return w.cur.Load() }

func (w *Writer) publish() {
	w.version++
	s := &Snapshot{Version: w.version}
	maxIf := uint32(0)
	for i := range w.ifaces {
		maxIf = max(maxIf, i)
	}
	ids := make([]uint32, 0, len(w.vrfs))
	for id := range w.vrfs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	slot := map[uint32]int{}
	for i, id := range ids {
		v := w.vrfs[id]
		s.VRFs = append(s.VRFs, &VRF{ID: id, IP4: v.ip4.Snapshot(), IP6: v.ip6.Snapshot()})
		slot[id] = i
	}
	s.Interfaces = make([]*Interface, maxIf+1)
	for i, ifc := range w.ifaces {
		if ifc.VRFSlot != slot[ifc.VRF] {
			c := *ifc
			c.VRFSlot = slot[ifc.VRF]
			w.ifaces[i] = &c
			ifc = &c
		}
		s.Interfaces[i] = ifc
	}
	s.Adjs = make([]Adjacency, len(w.adjs))
	for i := range w.adjs {
		s.Adjs[i] = w.adjs[i].adj
	}
	s.LBs = make([]LoadBalance, len(w.lbs))
	for i := range w.lbs {
		s.LBs[i] = w.lbs[i].lb
	}
	s.VXLANPort = w.vxlanPort
	s.TunnelPeers = map[[4]byte]struct{}{}
	s.VNIs = map[uint32]struct{}{}
	for i := numFixedAdjs; i < len(w.adjs); i++ {
		e := &w.adjs[i]
		if e.refs > 0 && e.key.kind == AdjEncap {
			s.TunnelPeers[e.key.nh.As4()] = struct{}{}
			if e.key.encap.Type == EncapVXLAN {
				s.VNIs[e.key.encap.VNI] = struct{}{}
			}
		}
	}
	w.cur.Store(s)
}

// ---- interfaces ----

// AddInterface registers an interface and returns its index. Its VRF must
// exist; the Counters and Capture fields are created if nil.
func (w *Writer) AddInterface(ifc Interface) (uint32, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.ifByName[ifc.Name]; ok {
		return 0, errf(ErrExists, "interface %q already exists", ifc.Name)
	}
	if _, ok := w.vrfs[ifc.VRF]; !ok {
		return 0, errf(ErrNotFound, "vrf %d does not exist", ifc.VRF)
	}
	ifc.Index = w.nextIf
	w.nextIf++
	if ifc.Counters == nil {
		ifc.Counters = new(InterfaceCounters)
	}
	if ifc.Capture == nil {
		ifc.Capture = new(atomic.Pointer[Capture])
	}
	c := ifc
	w.ifaces[c.Index] = &c
	w.ifByName[c.Name] = c.Index
	w.publish()
	return c.Index, nil
}

// InterfaceByName returns the current version of an interface.
func (w *Writer) InterfaceByName(name string) (*Interface, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	i, ok := w.ifByName[name]
	if !ok {
		return nil, false
	}
	return w.ifaces[i], true
}

// Interfaces returns the current interfaces sorted by index.
func (w *Writer) Interfaces() []*Interface {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]*Interface, 0, len(w.ifaces))
	for _, i := range w.ifaces {
		out = append(out, i)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Index < out[b].Index })
	return out
}

// DeleteInterface removes an interface with every route and neighbour that
// refers to it, in one published version.
func (w *Writer) DeleteInterface(name string) (*Interface, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	idx, ok := w.ifByName[name]
	if !ok {
		return nil, errf(ErrNotFound, "interface %q does not exist", name)
	}
	ifc := w.ifaces[idx]
	tx := w.begin()
	for _, v := range w.vrfs {
		for p, rs := range v.routes {
			for src, r := range rs.by {
				if r == nil {
					continue
				}
				if routeUsesInterface(r, idx) || (Source(src) == SourceLocal && ifcOwns(ifc, p.Addr())) {
					tx.set(v, p, Source(src), nil)
				}
			}
		}
	}
	for k := range w.neigh {
		if k.ifIndex == idx {
			delete(w.neigh, k)
		}
	}
	delete(w.ifaces, idx)
	delete(w.ifByName, name)
	if err := tx.commit(); err != nil {
		return nil, err
	}
	return ifc, nil
}

func routeUsesInterface(r *Route, idx uint32) bool {
	for _, p := range r.Paths {
		if p.Interface == idx {
			return true
		}
	}
	return false
}

func ifcOwns(ifc *Interface, a netip.Addr) bool {
	if a.Is4() {
		return slices.Contains(ifc.Addrs4, a.As4())
	}
	return slices.Contains(ifc.Addrs6, a.As16())
}

// AddAddress gives the dataplane address p.Addr() on an interface: a local
// route for the address and a connected route for the subnet.
func (w *Writer) AddAddress(name string, p netip.Prefix) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	idx, ifc, err := w.ifaceCopy(name)
	if err != nil {
		return err
	}
	a := p.Addr()
	if ifcOwns(&ifc, a) {
		return nil // idempotent
	}
	if a.Is4() {
		ifc.Addrs4 = append(slices.Clone(ifc.Addrs4), a.As4())
	} else {
		ifc.Addrs6 = append(slices.Clone(ifc.Addrs6), a.As16())
	}
	v := w.vrfs[ifc.VRF]
	tx := w.begin()
	tx.set(v, netip.PrefixFrom(a, a.BitLen()), SourceLocal, &Route{Source: SourceLocal})
	if p.Bits() < a.BitLen() {
		tx.set(v, p.Masked(), SourceConnected, &Route{Paths: []Path{{Interface: idx}}})
	}
	w.ifaces[idx] = &ifc
	if err := tx.commit(); err != nil {
		return err
	}
	return nil
}

// DeleteAddress removes an address added by AddAddress.
func (w *Writer) DeleteAddress(name string, p netip.Prefix) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	idx, ifc, err := w.ifaceCopy(name)
	if err != nil {
		return err
	}
	a := p.Addr()
	if !ifcOwns(&ifc, a) {
		return errf(ErrNotFound, "address %s is not on %q", a, name)
	}
	if a.Is4() {
		ifc.Addrs4 = slices.DeleteFunc(slices.Clone(ifc.Addrs4), func(x [4]byte) bool { return x == a.As4() })
	} else {
		ifc.Addrs6 = slices.DeleteFunc(slices.Clone(ifc.Addrs6), func(x [16]byte) bool { return x == a.As16() })
	}
	v := w.vrfs[ifc.VRF]
	tx := w.begin()
	tx.set(v, netip.PrefixFrom(a, a.BitLen()), SourceLocal, nil)
	if p.Bits() < a.BitLen() {
		if rs := v.routes[p.Masked()]; rs != nil && rs.by[SourceConnected] != nil && routeUsesInterface(rs.by[SourceConnected], idx) {
			tx.set(v, p.Masked(), SourceConnected, nil)
			// LearnNeighbor added host routes for neighbours on the
			// subnet; without it they must not keep forwarding.
			for q, rs := range v.routes {
				if r := rs.by[SourceNeighbor]; r != nil && q.IsSingleIP() && p.Contains(q.Addr()) && routeUsesInterface(r, idx) {
					tx.set(v, q, SourceNeighbor, nil)
				}
			}
		}
	}
	w.ifaces[idx] = &ifc
	return tx.commit()
}

// ---- VRFs ----

// AddVRF creates a VRF; adding an existing one succeeds.
func (w *Writer) AddVRF(id uint32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.vrfs[id]; ok {
		return
	}
	w.vrfs[id] = newVRF(id)
	w.publish()
}

// DeleteVRF removes a VRF and its routes. VRF 0 and VRFs with interfaces
// cannot be deleted.
func (w *Writer) DeleteVRF(id uint32) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	v, ok := w.vrfs[id]
	if !ok {
		return errf(ErrNotFound, "vrf %d does not exist", id)
	}
	if id == 0 {
		return errf(ErrInvalid, "vrf 0 is the default table and cannot be deleted")
	}
	for _, ifc := range w.ifaces {
		if ifc.VRF == id {
			return errf(ErrInvalid, "vrf %d is used by interface %q", id, ifc.Name)
		}
	}
	tx := w.begin()
	for p, rs := range v.routes {
		for src, r := range rs.by {
			if r != nil {
				tx.set(v, p, Source(src), nil)
			}
		}
	}
	if err := tx.commit(); err != nil {
		return err
	}
	delete(w.vrfs, id)
	w.publish()
	return nil
}

// VRFs lists VRF ids.
func (w *Writer) VRFs() []uint32 {
	w.mu.Lock()
	defer w.mu.Unlock()
	var ids []uint32
	for id := range w.vrfs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// ---- routes ----

// RouteError names the route of a batch that failed.
type RouteError struct {
	Index int // position in the batch
	Path  int // path index, -1 for the route itself
	Err   error
}

func (e *RouteError) Error() string { return e.Err.Error() }
func (e *RouteError) Unwrap() error { return e.Err }

// AddRoutes installs routes (source static unless set) as one version. If
// any route cannot be installed nothing changes and a *RouteError says
// which. A route replaces its own source's entry of the prefix only; the
// other sources' entries stay, and the one first in sourcePriority
// forwards. An entry that does not win is not resolved, so a bad next hop
// in it is only noticed when it comes to win (it then drops).
func (w *Writer) AddRoutes(routes []Route) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	tx := w.begin()
	for i := range routes {
		r := routes[i]
		if err := checkRoute(&r); err != nil {
			tx.rollback()
			return asRouteError(i, err)
		}
		v, ok := w.vrfs[r.VRF]
		if !ok {
			tx.rollback()
			return &RouteError{Index: i, Path: -1, Err: errf(ErrNotFound, "vrf %d does not exist", r.VRF)}
		}
		for j, p := range r.Paths {
			if p.Interface != 0 {
				if ifc, ok := w.ifaces[p.Interface]; !ok {
					tx.rollback()
					return &RouteError{Index: i, Path: j, Err: errf(ErrNotFound, "interface index %d does not exist", p.Interface)}
				} else if ifc.VRF != r.VRF {
					tx.rollback()
					return &RouteError{Index: i, Path: j, Err: errf(ErrInvalid, "interface %q is in vrf %d, not %d", ifc.Name, ifc.VRF, r.VRF)}
				}
			}
		}
		r.Prefix = r.Prefix.Masked()
		r.Paths = slices.Clone(r.Paths)
		tx.set(v, r.Prefix, r.Source, &r)
		tx.batchIndex[routeKey{r.VRF, r.Prefix, r.Source}] = i
	}
	return tx.commit()
}

// DeleteRoutes removes routes of the given source (static unless set) by
// prefix; paths are ignored, and other sources' entries of the prefix are
// left alone (the best remaining one then forwards). Deleting a missing
// route (no entry of that source) is an error so that scripts notice
// typos; the whole batch is then left untouched.
func (w *Writer) DeleteRoutes(routes []Route) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	tx := w.begin()
	for i, r := range routes {
		if err := checkRoute(&r); err != nil {
			tx.rollback()
			return &RouteError{Index: i, Path: -1, Err: err}
		}
		v, ok := w.vrfs[r.VRF]
		if !ok {
			tx.rollback()
			return &RouteError{Index: i, Path: -1, Err: errf(ErrNotFound, "vrf %d does not exist", r.VRF)}
		}
		p := r.Prefix.Masked()
		rs := v.routes[p]
		if rs == nil || rs.by[r.Source] == nil {
			tx.rollback()
			return &RouteError{Index: i, Path: -1, Err: errf(ErrNotFound, "route %s (%s) does not exist in vrf %d", p, r.Source, r.VRF)}
		}
		tx.set(v, p, r.Source, nil)
	}
	return tx.commit()
}

func asRouteError(i int, err error) error {
	var re *RouteError
	if errors.As(err, &re) {
		re.Index = i
		return re
	}
	return &RouteError{Index: i, Path: -1, Err: err}
}

// checkRoute rejects what the FIB cannot hold (it would panic in commit,
// after reference counts have changed).
func checkRoute(r *Route) error {
	if !r.Prefix.IsValid() {
		return errf(ErrInvalid, "invalid prefix")
	}
	if r.Source >= numSources {
		return errf(ErrInvalid, "invalid route source %d", uint8(r.Source))
	}
	for j, p := range r.Paths {
		if p.Encap.Type == EncapNone {
			continue
		}
		if p.Encap.Type > EncapVXLAN {
			return &RouteError{Path: j, Err: errf(ErrInvalid, "unknown encapsulation %d", p.Encap.Type)}
		}
		if !p.NextHop.Is4() || p.Interface != 0 {
			return &RouteError{Path: j, Err: errf(ErrInvalid, "a tunnel path needs an IPv4 next hop (the remote node) and no interface")}
		}
		if p.Encap.VNI >= 1<<24 {
			return &RouteError{Path: j, Err: errf(ErrInvalid, "vni %d does not fit in 24 bits", p.Encap.VNI)}
		}
	}
	return nil
}

// RouteInfo is a route with its resolved forwarding for listings.
type RouteInfo struct {
	Route
	Resolved []Adjacency
}

// Routes lists the winning route of every prefix of a VRF (all VRFs when
// all), sorted by VRF, family and prefix.
func (w *Writer) Routes(vrf uint32, all bool) []RouteInfo {
	return w.listRoutes(vrf, all, (*routeSet).best)
}

// SourceRoutes lists the entries of one source in a VRF (all VRFs when
// all), whether or not they win their prefix, sorted like Routes. Resolved
// is filled in only for the entries that win (the others do not forward).
func (w *Writer) SourceRoutes(vrf uint32, all bool, src Source) []RouteInfo {
	if src >= numSources {
		return nil
	}
	return w.listRoutes(vrf, all, func(rs *routeSet) *Route { return rs.by[src] })
}

func (w *Writer) listRoutes(vrf uint32, all bool, pick func(*routeSet) *Route) []RouteInfo {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []RouteInfo
	for id, v := range w.vrfs {
		if !all && id != vrf {
			continue
		}
		for _, rs := range v.routes {
			r := pick(rs)
			if r == nil {
				continue
			}
			ri := RouteInfo{Route: *r}
			if rs.lb != 0 && r == rs.best() {
				for _, a := range w.lbs[rs.lb].adjs {
					ri.Resolved = append(ri.Resolved, w.adjs[a].adj)
				}
			}
			out = append(out, ri)
		}
	}
	sort.Slice(out, func(a, b int) bool {
		x, y := out[a], out[b]
		if x.VRF != y.VRF {
			return x.VRF < y.VRF
		}
		if x.Prefix.Addr().Is4() != y.Prefix.Addr().Is4() {
			return x.Prefix.Addr().Is4()
		}
		if c := x.Prefix.Addr().Compare(y.Prefix.Addr()); c != 0 {
			return c < 0
		}
		return x.Prefix.Bits() < y.Prefix.Bits()
	})
	return out
}

// RouteCount returns the number of prefixes in all VRFs.
func (w *Writer) RouteCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, v := range w.vrfs {
		n += len(v.routes)
	}
	return n
}

// ---- neighbours ----

// LearnNeighbor records ip -> mac on an L2 interface (from ARP or ND).
// Adjacencies waiting for it become complete, and on an attached subnet a
// host route is added so later packets skip the glean path.
func (w *Writer) LearnNeighbor(ifIndex uint32, ip netip.Addr, mac [6]byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ifc, ok := w.ifaces[ifIndex]
	if !ok || !ifc.Kind.L2() || !ip.IsValid() {
		return
	}
	k := neighKey{ifIndex, ip}
	if n, ok := w.neigh[k]; ok && (n.MAC == mac || n.Static) {
		return
	}
	w.neigh[k] = Neighbor{Interface: ifIndex, IP: ip, MAC: mac}
	tx := w.begin()
	v := w.vrfs[ifc.VRF]
	host := netip.PrefixFrom(ip, ip.BitLen())
	if rs := v.routes[host]; rs == nil || rs.best() == nil {
		if r := w.lpm(v, ip); r != nil && len(r.Paths) == 1 && r.Paths[0].Interface == ifIndex && !r.Paths[0].NextHop.IsValid() {
			tx.set(v, host, SourceNeighbor, &Route{Paths: []Path{{Interface: ifIndex, NextHop: ip}}})
		}
	}
	w.refreshAdjs(ifIndex, ip)
	_ = tx.commit()
}

// Neighbors lists the neighbour table.
func (w *Writer) Neighbors() []Neighbor {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]Neighbor, 0, len(w.neigh))
	for _, n := range w.neigh {
		out = append(out, n)
	}
	sort.Slice(out, func(a, b int) bool {
		if out[a].Interface != out[b].Interface {
			return out[a].Interface < out[b].Interface
		}
		return out[a].IP.Less(out[b].IP)
	})
	return out
}

// IncompleteAdjacencies returns next hops still waiting for resolution, so
// `show neighbors` can list them as incomplete.
func (w *Writer) IncompleteAdjacencies() []Adjacency {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []Adjacency
	for _, e := range w.adjs[numFixedAdjs:] {
		if e.refs > 0 && e.adj.Kind == AdjIncomplete {
			out = append(out, e.adj)
		}
	}
	return out
}

func (w *Writer) refreshAdjs(ifIndex uint32, ip netip.Addr) {
	for i := numFixedAdjs; i < len(w.adjs); i++ {
		e := &w.adjs[i]
		if e.refs > 0 && e.key.tx == ifIndex && e.key.nh == ip && e.key.kind == AdjRewrite {
			e.adj = w.buildAdj(e.key)
		}
	}
}

// ---- transactions ----

// routeKey names one entry of a route set: a batch's route is only to
// blame for a resolution failure when it is the entry that wins.
type routeKey struct {
	vrf    uint32
	prefix netip.Prefix
	src    Source
}

type journalEntry struct {
	v      *vrfState
	prefix netip.Prefix
	src    Source
	old    *Route
}

type tx struct {
	w          *Writer
	journal    []journalEntry
	dirty      map[*vrfState]map[netip.Prefix]struct{}
	reresolve  map[*vrfState]bool
	batchIndex map[routeKey]int
	resolved   map[resolveKey][]uint32
}

type resolveKey struct {
	vrf *vrfState
	nh  netip.Addr
}

func (w *Writer) begin() *tx {
	return &tx{
		w:          w,
		dirty:      map[*vrfState]map[netip.Prefix]struct{}{},
		reresolve:  map[*vrfState]bool{},
		batchIndex: map[routeKey]int{},
		resolved:   map[resolveKey][]uint32{},
	}
}

// set replaces the route of one source for a prefix (nil removes it).
func (t *tx) set(v *vrfState, p netip.Prefix, src Source, r *Route) {
	rs := v.routes[p]
	if rs == nil {
		rs = &routeSet{}
		v.routes[p] = rs
	}
	if r != nil {
		r.Prefix, r.VRF, r.Source = p, v.id, src
	}
	t.journal = append(t.journal, journalEntry{v, p, src, rs.by[src]})
	v.countGateways(rs.by[src], -1)
	v.countGateways(r, +1)
	rs.by[src] = r
	d := t.dirty[v]
	if d == nil {
		d = map[netip.Prefix]struct{}{}
		t.dirty[v] = d
	}
	d[p] = struct{}{}
	// Any change (attached, local, null or a gateway route itself) may
	// change how gateway routes whose next hop lies inside p resolve;
	// commit finds them.
	t.reresolve[v] = true
}

func (t *tx) rollback() {
	for i := len(t.journal) - 1; i >= 0; i-- {
		j := t.journal[i]
		rs := j.v.routes[j.prefix]
		j.v.countGateways(rs.by[j.src], -1)
		j.v.countGateways(j.old, +1)
		rs.by[j.src] = j.old
		if rs.best() == nil && rs.lb == 0 {
			delete(j.v.routes, j.prefix)
		}
	}
}

// commit resolves every changed prefix to a load balance, applies the FIB
// changes in one transaction per VRF and publishes one snapshot. Resolution
// errors roll everything back.
func (t *tx) commit() error {
	w := t.w
	type change struct {
		p  netip.Prefix
		lb uint32
	}
	changes := map[*vrfState][]change{}
	for v := range t.reresolve {
		d := t.dirty[v]
		if d == nil {
			d = map[netip.Prefix]struct{}{}
			t.dirty[v] = d
		}
		// A gateway route must be resolved again when a changed prefix
		// covers one of its next hops. Its own resolution may then change
		// too, so repeat until no more routes are added (the chain is at
		// most as long as the recursion limit).
		for added := true; added; {
			added = false
			covered := map[netip.Addr]bool{}
			for nh := range v.gateways {
				if coveredBy(d, nh) {
					covered[nh] = true
				}
			}
			if len(covered) == 0 {
				break
			}
			for p, rs := range v.routes {
				if _, ok := d[p]; ok {
					continue
				}
				r := rs.best()
				if r == nil {
					continue
				}
				for _, pa := range r.Paths {
					if pa.Interface != 0 || !pa.NextHop.IsValid() {
						continue
					}
					if covered[pa.NextHop] {
						d[p] = struct{}{}
						added = true
						break
					}
				}
			}
		}
	}
	// Resolve first, install after: nothing is refcounted until every
	// route of the batch is known to resolve.
	newLBs := map[*vrfState]map[netip.Prefix][]uint32{}
	for v, d := range t.dirty {
		m := map[netip.Prefix][]uint32{}
		for p := range d {
			rs := v.routes[p]
			r := rs.best()
			if r == nil {
				m[p] = nil
				continue
			}
			adjs, err := t.resolveRoute(v, r, 0)
			if err != nil {
				// Only the batch's own route fails the batch: another
				// source's entry winning the prefix (a static route that
				// stopped resolving, above a BGP one being added) keeps
				// dropping as before.
				if i, ok := t.batchIndex[routeKey{v.id, p, r.Source}]; ok {
					for _, mm := range append(slices.Collect(maps.Values(newLBs)), m) {
						for _, as := range mm {
							for _, a := range as {
								w.putAdj(a)
							}
						}
					}
					t.releaseCache()
					t.rollback()
					var re *RouteError
					if errors.As(err, &re) {
						re.Index = i
						return re
					}
					return &RouteError{Index: i, Path: -1, Err: err}
				}
				// A route that no longer resolves (its gateway went away)
				// stays in the table and drops, like VPP's unresolved paths.
				adjs = []uint32{adjDrop}
			}
			m[p] = adjs
		}
		newLBs[v] = m
	}
	for v, m := range newLBs {
		for p, adjs := range m {
			rs := v.routes[p]
			var lb uint32
			if adjs != nil {
				lb = w.getLB(adjs, weightsOf(rs.best(), len(adjs)))
			}
			if lb != rs.lb {
				changes[v] = append(changes[v], change{p, lb})
				if rs.lb != 0 {
					w.putLB(rs.lb)
				}
				rs.lb = lb
			} else if lb != 0 {
				w.putLB(lb) // getLB took a reference we don't need
			}
			if rs.best() == nil && rs.lb == 0 {
				delete(v.routes, p)
			}
		}
	}
	t.releaseCache()
	for v, cs := range changes {
		var err4, err6 error
		err4 = v.ip4.Update(func(tx *fib.IP4Txn) error {
			for _, c := range cs {
				if !c.p.Addr().Is4() {
					continue
				}
				a := ip4u32(c.p.Addr())
				if c.lb == 0 {
					if _, err := tx.Delete(a, c.p.Bits()); err != nil {
						return err
					}
				} else if err := tx.Set(a, c.p.Bits(), c.lb); err != nil {
					return err
				}
			}
			return nil
		})
		err6 = v.ip6.Update(func(tx *fib.IP6Txn) error {
			for _, c := range cs {
				if c.p.Addr().Is4() {
					continue
				}
				hi, lo := ip6u64(c.p.Addr())
				if c.lb == 0 {
					if _, err := tx.Delete(hi, lo, c.p.Bits()); err != nil {
						return err
					}
				} else if err := tx.Set(hi, lo, c.p.Bits(), c.lb); err != nil {
					return err
				}
			}
			return nil
		})
		if err := errors.Join(err4, err6); err != nil {
			// Prefixes are validated before they get here; this is a bug.
			panic(fmt.Sprintf("tables: fib update: %v", err))
		}
	}
	w.publish()
	return nil
}

// coveredBy reports whether any prefix in d contains a.
func coveredBy(d map[netip.Prefix]struct{}, a netip.Addr) bool {
	for l := a.BitLen(); l >= 0; l-- {
		p, _ := a.Prefix(l)
		if _, ok := d[p]; ok {
			return true
		}
	}
	return false
}

func weightsOf(r *Route, n int) []uint32 {
	ws := make([]uint32, n)
	for i := range ws {
		ws[i] = 1
		if r != nil && len(r.Paths) == n && r.Paths[i].Weight > 0 {
			ws[i] = r.Paths[i].Weight
		}
	}
	return ws
}

// resolveRoute turns a route's paths into adjacency indices (one per path;
// a recursive path contributes its gateway route's adjacencies).
func (t *tx) resolveRoute(v *vrfState, r *Route, depth int) ([]uint32, error) {
	w := t.w
	if r.Source == SourceLocal {
		return []uint32{adjLocal}, nil
	}
	if r.Source == SourceNode {
		var tx uint32
		if len(r.Paths) > 0 {
			tx = r.Paths[0].Interface
		}
		return []uint32{w.getAdj(adjKey{kind: AdjHost, tx: tx})}, nil
	}
	if len(r.Paths) == 0 {
		return []uint32{adjDrop}, nil
	}
	var out []uint32
	fail := func(err error) ([]uint32, error) {
		for _, a := range out {
			w.putAdj(a)
		}
		return nil, err
	}
	for j, p := range r.Paths {
		switch {
		case p.Encap.Type != EncapNone:
			unders, err := t.resolveNextHop(v, p.NextHop, depth)
			if err != nil {
				return fail(&RouteError{Path: j, Err: err})
			}
			for _, u := range unders {
				out = append(out, w.getEncapAdj(p.NextHop, p.Encap, u))
			}
		case p.Interface != 0:
			ifc := w.ifaces[p.Interface]
			if ifc == nil {
				return fail(&RouteError{Path: j, Err: errf(ErrNotFound, "interface index %d does not exist", p.Interface)})
			}
			out = append(out, w.getAdj(t.attachedKey(ifc, r.Prefix, p.NextHop)))
		case p.NextHop.IsValid():
			adjs, err := t.resolveNextHop(v, p.NextHop, depth)
			if err != nil {
				return fail(&RouteError{Path: j, Err: err})
			}
			out = append(out, adjs...)
		default:
			return fail(&RouteError{Path: j, Err: errf(ErrInvalid, "path has neither next hop nor interface")})
		}
	}
	return out, nil
}

func (t *tx) attachedKey(ifc *Interface, p netip.Prefix, nh netip.Addr) adjKey {
	if ifc.Kind == KindTun {
		// Point-to-point: one adjacency per interface, no link-layer
		// address to learn.
		return adjKey{kind: AdjRewrite, tx: ifc.Index}
	}
	if !nh.IsValid() {
		if p.Bits() != p.Addr().BitLen() {
			return adjKey{kind: AdjGlean, tx: ifc.Index, nh: netip.Addr{}}
		}
		nh = p.Addr()
	}
	return adjKey{kind: AdjRewrite, tx: ifc.Index, nh: nh}
}

func (t *tx) resolveNextHop(v *vrfState, nh netip.Addr, depth int) ([]uint32, error) {
	if depth > 4 {
		return nil, errf(ErrInvalid, "next hop %s: recursion too deep", nh)
	}
	if adjs, ok := t.resolved[resolveKey{v, nh}]; ok {
		for _, a := range adjs {
			t.w.adjs[a].refs++
		}
		return adjs, nil
	}
	r := t.w.lpm(v, nh)
	if r == nil {
		return nil, errf(ErrInvalid, "next hop %s is not reachable in vrf %d", nh, v.id)
	}
	if r.Source == SourceLocal || r.Source == SourceNode {
		return nil, errf(ErrInvalid, "next hop %s is a local address", nh)
	}
	var adjs []uint32
	for _, p := range r.Paths {
		if p.Interface != 0 {
			ifc := t.w.ifaces[p.Interface]
			if ifc == nil {
				continue
			}
			gw := p.NextHop
			if !gw.IsValid() {
				gw = nh
			}
			adjs = append(adjs, t.w.getAdj(t.attachedKey(ifc, netip.PrefixFrom(gw, gw.BitLen()), gw)))
			continue
		}
		sub, err := t.resolveNextHop(v, p.NextHop, depth+1)
		if err != nil {
			for _, a := range adjs {
				t.w.putAdj(a)
			}
			return nil, err
		}
		adjs = append(adjs, sub...)
	}
	if len(adjs) == 0 {
		return nil, errf(ErrInvalid, "next hop %s has no usable path", nh)
	}
	// Cache for the rest of the batch; every hit takes its own references.
	// The cache holds one more until the commit ends, so that a caller
	// releasing its references (a later path of its route failed) cannot
	// free an adjacency the cache still hands out.
	for _, a := range adjs {
		t.w.adjs[a].refs++
	}
	t.resolved[resolveKey{v, nh}] = adjs
	return adjs, nil
}

// releaseCache drops the resolution cache's references.
func (t *tx) releaseCache() {
	for _, adjs := range t.resolved {
		for _, a := range adjs {
			t.w.putAdj(a)
		}
	}
	clear(t.resolved)
}

// lpm is the control plane's longest-prefix match over the authoritative
// route maps (which may hold changes not yet in the FIB).
func (w *Writer) lpm(v *vrfState, a netip.Addr) *Route {
	for l := a.BitLen(); l >= 0; l-- {
		p, _ := a.Prefix(l)
		if rs := v.routes[p]; rs != nil {
			if r := rs.best(); r != nil {
				return r
			}
		}
	}
	return nil
}

// ---- adjacency and load-balance pools ----

func (w *Writer) buildAdj(k adjKey) Adjacency {
	ifc := w.ifaces[k.tx]
	a := Adjacency{Kind: k.kind, TxIf: k.tx, NextHop: k.nh}
	if ifc != nil {
		a.MTU = ifc.MTU
	}
	if k.kind == AdjEncap {
		return w.buildEncapAdj(k, a)
	}
	if ifc == nil || !ifc.Kind.L2() || k.kind != AdjRewrite {
		return a
	}
	n, ok := w.neigh[neighKey{k.tx, k.nh}]
	if !ok {
		a.Kind = AdjIncomplete
		return a
	}
	et := uint16(0x0800)
	if k.nh.Is6() {
		et = 0x86dd
	}
	copy(a.Rewrite[0:6], n.MAC[:])
	copy(a.Rewrite[6:12], ifc.MAC[:])
	a.Rewrite[12], a.Rewrite[13] = byte(et>>8), byte(et)
	a.RewriteLen = 14
	return a
}

// getAdj returns the adjacency for k with one more reference.
func (w *Writer) getAdj(k adjKey) uint32 {
	if i, ok := w.adjByKey[k]; ok {
		w.adjs[i].refs++
		return i
	}
	e := adjEntry{adj: w.buildAdj(k), key: k, refs: 1}
	var i uint32
	if n := len(w.freeAdjs); n > 0 {
		i = w.freeAdjs[n-1]
		w.freeAdjs = w.freeAdjs[:n-1]
		w.adjs[i] = e
	} else {
		i = uint32(len(w.adjs))
		w.adjs = append(w.adjs, e)
	}
	w.adjByKey[k] = i
	return i
}

func (w *Writer) putAdj(i uint32) {
	if i < numFixedAdjs {
		return
	}
	e := &w.adjs[i]
	e.refs--
	if e.refs == 0 {
		k := e.key
		delete(w.adjByKey, k)
		*e = adjEntry{}
		w.freeAdjs = append(w.freeAdjs, i)
		if k.kind == AdjEncap {
			w.putAdj(k.under)
		}
	}
}

// getEncapAdj returns the tunnel adjacency to node nh over underlay
// adjacency u, taking over the caller's reference on u.
func (w *Writer) getEncapAdj(nh netip.Addr, e Encap, u uint32) uint32 {
	if e.Type != EncapVXLAN {
		e.VNI = 0
	}
	k := adjKey{kind: AdjEncap, tx: w.adjs[u].adj.TxIf, nh: nh, encap: e, under: u}
	if _, ok := w.adjByKey[k]; ok {
		w.putAdj(u) // the existing adjacency holds its own reference
	}
	return w.getAdj(k)
}

// buildEncapAdj fills in a tunnel adjacency from its underlay: the
// underlay's interface and MTU less the encapsulation, and the interface's
// node address as the outer source. Without a source address (the uplink
// has no IPv4 address yet) the tunnel drops until one appears.
func (w *Writer) buildEncapAdj(k adjKey, a Adjacency) Adjacency {
	under := w.adjs[k.under].adj
	a.Encap, a.VNI, a.Under = k.encap.Type, k.encap.VNI, k.under
	a.TxIf = under.TxIf
	ifc := w.ifaces[under.TxIf]
	if ifc == nil {
		a.Kind = AdjDrop
		return a
	}
	a.MTU = ifc.MTU - uint32(k.encap.Type.Overhead())
	switch {
	case len(ifc.HostAddrs4) > 0:
		a.Src = ifc.HostAddrs4[0]
	case len(ifc.Addrs4) > 0:
		a.Src = ifc.Addrs4[0]
	default:
		a.Kind = AdjDrop
	}
	return a
}

// rebuildAdjs recomputes every adjacency on interface idx and every tunnel
// adjacency (whose source address and MTU come from their underlay's
// interface), after the interface's MTU, addresses or link state changed.
func (w *Writer) rebuildAdjs(idx uint32) {
	for i := numFixedAdjs; i < len(w.adjs); i++ {
		if e := &w.adjs[i]; e.refs > 0 && e.key.tx == idx && e.key.kind != AdjEncap {
			e.adj = w.buildAdj(e.key)
		}
	}
	// Second pass: tunnels read their (now rebuilt) underlay.
	for i := numFixedAdjs; i < len(w.adjs); i++ {
		if e := &w.adjs[i]; e.refs > 0 && e.key.kind == AdjEncap {
			e.adj = w.buildAdj(e.key)
		}
	}
}

// getLB returns the load balance over adjs (each holding one reference the
// load balance takes over) with one more reference.
func (w *Writer) getLB(adjs []uint32, weights []uint32) uint32 {
	key := lbKey(adjs, weights)
	if i, ok := w.lbByKey[key]; ok {
		for _, a := range adjs {
			w.putAdj(a)
		}
		w.lbs[i].refs++
		return i
	}
	e := lbEntry{lb: buildLB(adjs, weights), key: key, adjs: adjs, refs: 1}
	var i uint32
	if n := len(w.freeLBs); n > 0 {
		i = w.freeLBs[n-1]
		w.freeLBs = w.freeLBs[:n-1]
		w.lbs[i] = e
	} else {
		i = uint32(len(w.lbs))
		w.lbs = append(w.lbs, e)
	}
	w.lbByKey[key] = i
	return i
}

func (w *Writer) putLB(i uint32) {
	if i == 0 {
		return
	}
	e := &w.lbs[i]
	e.refs--
	if e.refs == 0 {
		for _, a := range e.adjs {
			w.putAdj(a)
		}
		delete(w.lbByKey, e.key)
		*e = lbEntry{}
		w.freeLBs = append(w.freeLBs, i)
	}
}

func lbKey(adjs, weights []uint32) string {
	var b strings.Builder
	for i, a := range adjs {
		fmt.Fprintf(&b, "%d*%d,", a, weights[i])
	}
	return b.String()
}

// buildLB spreads adjacencies over a power-of-two bucket array in
// proportion to their weights. Sixteen buckets per unit of weight keep the
// error of rounding to a power of two under a few percent (three equal
// paths get 64 buckets split 22/21/21, not 2/1/1 as with four).
func buildLB(adjs, weights []uint32) LoadBalance {
	if len(adjs) == 1 {
		return LoadBalance{Buckets: []uint32{adjs[0]}, Mask: 0}
	}
	var total uint64
	for _, wt := range weights {
		total += uint64(wt)
	}
	n := uint64(1) << bits.Len64(total*16-1)
	n = min(n, 1024)
	b := make([]uint32, 0, n)
	// Largest-remainder apportionment, then interleave so that
	// neighbouring hash values spread over all paths.
	counts := make([]uint64, len(adjs))
	var used uint64
	for i, wt := range weights {
		counts[i] = n * uint64(wt) / total
		used += counts[i]
	}
	for i := 0; used < n; i = (i + 1) % len(counts) {
		counts[i]++
		used++
	}
	for uint64(len(b)) < n {
		for i := range adjs {
			if counts[i] > 0 {
				b = append(b, adjs[i])
				counts[i]--
			}
		}
	}
	return LoadBalance{Buckets: b, Mask: uint32(n - 1)}
}

func ip4u32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func ip6u64(a netip.Addr) (hi, lo uint64) {
	b := a.As16()
	for i := 0; i < 8; i++ {
		hi = hi<<8 | uint64(b[i])
		lo = lo<<8 | uint64(b[8+i])
	}
	return hi, lo
}
