package tables

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// Tests of SourceBGP, the API's second source: its entries live beside the
// static ones of the same prefix.

func bgp(prefix string, paths ...Path) Route {
	return Route{Prefix: pfx(prefix), Paths: paths, Source: SourceBGP}
}

func TestSourceNames(t *testing.T) {
	want := []Source{SourceLocal, SourceNode, SourceConnected, SourceHost, SourceStatic, SourceBGP, SourceUplink, SourceNeighbor}
	if !slices.Equal(sourcePriority[:], want) {
		t.Errorf("sourcePriority = %v, want %v", sourcePriority, want)
	}
	seen := map[string]bool{}
	for s := range numSources {
		n := s.String()
		if n == "" || seen[n] {
			t.Errorf("source %d has name %q", s, n)
		}
		seen[n] = true
		if got, ok := ParseSource(n); !ok || got != s {
			t.Errorf("ParseSource(%q) = %v, %v", n, got, ok)
		}
	}
	if SourceBGP.String() != "bgp" || SourceStatic.String() != "static" {
		t.Errorf("names %q %q", SourceBGP, SourceStatic)
	}
	for _, n := range []string{"", "BGP", "bgp ", "kernel"} {
		if _, ok := ParseSource(n); ok {
			t.Errorf("ParseSource(%q) succeeded", n)
		}
	}
	if s := Source(200).String(); s != "source(200)" {
		t.Errorf("out-of-range source prints %q", s)
	}
}

// sourceEntries returns the prefixes and first next hops of SourceRoutes,
// and whether each was resolved (won).
func sourceEntries(w *Writer, vrf uint32, all bool, src Source) []string {
	var out []string
	for _, ri := range w.SourceRoutes(vrf, all, src) {
		if ri.Source != src {
			return []string{"wrong source " + ri.Source.String()}
		}
		s := ri.Prefix.String()
		if len(ri.Paths) > 0 && ri.Paths[0].NextHop.IsValid() {
			s += " via " + ri.Paths[0].NextHop.String()
		}
		if ri.Resolved != nil {
			s += " (wins)"
		}
		out = append(out, s)
	}
	return out
}

func wantEntries(t *testing.T, w *Writer, src Source, want ...string) {
	t.Helper()
	if got := sourceEntries(w, 0, false, src); !slices.Equal(got, want) {
		t.Errorf("%s entries %q, want %q", src, got, want)
	}
}

func TestStaticAndBGPSamePrefix(t *testing.T) {
	w := newTestWriter(t)
	tap := addIf(t, w, "tap0", KindTap, 0, "10.0.0.1/24")
	tun1 := addIf(t, w, "tun1", KindTun, 0)
	viaTap := func(nh string) Adjacency {
		return Adjacency{Kind: AdjIncomplete, TxIf: tap, NextHop: ip(nh), MTU: 1500}
	}
	onTun1 := Adjacency{Kind: AdjRewrite, TxIf: tun1, MTU: 1500}

	// BGP alone forwards.
	mustAdd(t, w, bgp("10.1.0.0/16", via("10.0.0.2")))
	wantAdj(t, w, 0, "10.1.2.3", viaTap("10.0.0.2"))
	wantEntries(t, w, SourceBGP, "10.1.0.0/16 via 10.0.0.2 (wins)")
	wantEntries(t, w, SourceStatic)

	// A static route of the same prefix wins; the BGP entry stays.
	v := w.Snapshot().Version
	mustAdd(t, w, static("10.1.0.0/16", dev(tun1)))
	if w.Snapshot().Version != v+1 {
		t.Errorf("one AddRoutes published %d versions", w.Snapshot().Version-v)
	}
	wantAdj(t, w, 0, "10.1.2.3", onTun1)
	wantEntries(t, w, SourceBGP, "10.1.0.0/16 via 10.0.0.2")
	wantEntries(t, w, SourceStatic, "10.1.0.0/16 (wins)")
	if ri := w.Routes(0, false); !slices.ContainsFunc(ri, func(r RouteInfo) bool { return r.Prefix == pfx("10.1.0.0/16") && r.Source == SourceStatic }) {
		t.Errorf("Routes does not list the static winner: %v", ri)
	}
	if n := w.RouteCount(); n != 3 { // local, connected, 10.1/16
		t.Errorf("RouteCount = %d", n)
	}

	// Replacing the BGP entry (a new next hop) does not touch the static
	// one, nor what forwards.
	mustAdd(t, w, bgp("10.1.0.0/16", via("10.0.0.3")))
	wantAdj(t, w, 0, "10.1.2.3", onTun1)
	wantEntries(t, w, SourceBGP, "10.1.0.0/16 via 10.0.0.3")

	// Deleting the static entry reveals the BGP one.
	mustDel(t, w, static("10.1.0.0/16"))
	wantAdj(t, w, 0, "10.1.2.3", viaTap("10.0.0.3"))
	wantEntries(t, w, SourceStatic)
	wantEntries(t, w, SourceBGP, "10.1.0.0/16 via 10.0.0.3 (wins)")

	// Deleting the static one again is NotFound, naming the source.
	var re *RouteError
	err := w.DeleteRoutes([]Route{static("10.1.0.0/16")})
	if !errors.As(err, &re) || !errors.Is(err, ErrNotFound) || re.Index != 0 || !strings.Contains(err.Error(), "(static)") {
		t.Errorf("deleting a missing static entry: %v", err)
	}

	// And the other way round: deleting BGP under a static winner keeps
	// the static route forwarding.
	mustAdd(t, w, static("10.1.0.0/16", dev(tun1)))
	mustDel(t, w, bgp("10.1.0.0/16"))
	wantAdj(t, w, 0, "10.1.2.3", onTun1)
	wantEntries(t, w, SourceBGP)
	err = w.DeleteRoutes([]Route{bgp("10.1.0.0/16")})
	if !errors.As(err, &re) || !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "route 10.1.0.0/16 (bgp) does not exist in vrf 0") {
		t.Errorf("deleting a missing bgp entry: %v", err)
	}
	mustDel(t, w, static("10.1.0.0/16"))
	if n := w.RouteCount(); n != 2 {
		t.Errorf("RouteCount = %d after deleting both entries", n)
	}
	wantKind(t, w, 0, "10.1.2.3", adjNoRoute)

	// Both sources in one batch: one version, static wins.
	v = w.Snapshot().Version
	mustAdd(t, w, bgp("10.2.0.0/16", via("10.0.0.2")), static("10.2.0.0/16", dev(tun1)))
	if w.Snapshot().Version != v+1 {
		t.Errorf("one AddRoutes published %d versions", w.Snapshot().Version-v)
	}
	wantAdj(t, w, 0, "10.2.0.1", onTun1)
	// A failed delete batch leaves both entries.
	err = w.DeleteRoutes([]Route{static("10.2.0.0/16"), bgp("10.3.0.0/16")})
	if !errors.As(err, &re) || !errors.Is(err, ErrNotFound) || re.Index != 1 {
		t.Errorf("delete batch with a missing entry: %v", err)
	}
	checkInvariants(t, w)
	wantEntries(t, w, SourceStatic, "10.2.0.0/16 (wins)")
	wantEntries(t, w, SourceBGP, "10.2.0.0/16 via 10.0.0.2")
	// Deleting both in one batch leaves nothing.
	mustDel(t, w, static("10.2.0.0/16"), bgp("10.2.0.0/16"))
	wantKind(t, w, 0, "10.2.0.1", adjNoRoute)
	if n := w.RouteCount(); n != 2 {
		t.Errorf("RouteCount = %d", n)
	}
}

func TestBGPPriority(t *testing.T) {
	w, up, host := uplinkNode(t)
	tun1 := addIf(t, w, "tun1", KindTun, 0, "10.9.0.1/24")
	onHost := Adjacency{Kind: AdjRewrite, TxIf: host, MTU: 1500}
	onTun1 := Adjacency{Kind: AdjRewrite, TxIf: tun1, MTU: 1500}

	// BGP beats the uplink manager's default route to the host and its
	// drop route for the pod prefix.
	wantAdj(t, w, 0, "8.8.8.8", onHost)
	wantKind(t, w, 0, "10.244.7.1", AdjDrop)
	mustAdd(t, w, bgp("0.0.0.0/0", via("192.0.2.254")), bgp("10.244.0.0/16", via("192.0.2.7")))
	wantAdj(t, w, 0, "8.8.8.8", Adjacency{Kind: AdjIncomplete, TxIf: up, NextHop: ip("192.0.2.254"), MTU: 1500})
	wantAdj(t, w, 0, "10.244.7.1", Adjacency{Kind: AdjIncomplete, TxIf: up, NextHop: ip("192.0.2.7"), MTU: 1500})
	if got := w.RoutesOf(SourceUplink); len(got) != 3 {
		t.Errorf("RoutesOf(uplink) lists %d entries, want the 3 it holds, winning or not", len(got))
	}
	// A sync of the uplink's routes leaves the BGP winners alone.
	if err := w.SyncSource(SourceUplink, []Route{
		{Prefix: pfx("192.0.2.0/24"), Paths: []Path{dev(up)}},
		{Prefix: pfx("10.244.0.0/16")},
		{Prefix: pfx("0.0.0.0/0"), Paths: []Path{dev(host)}},
		{Prefix: pfx("::/0"), Paths: []Path{dev(host)}},
	}); err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, w)
	if got := w.RoutesOf(SourceUplink); len(got) != 4 {
		t.Errorf("RoutesOf(uplink) after sync: %v", got)
	}
	wantAdj(t, w, 0, "8.8.8.8", Adjacency{Kind: AdjIncomplete, TxIf: up, NextHop: ip("192.0.2.254"), MTU: 1500})
	// BGP gone: the uplink's routes forward again.
	mustDel(t, w, bgp("0.0.0.0/0"), bgp("10.244.0.0/16"))
	wantAdj(t, w, 0, "8.8.8.8", onHost)
	wantKind(t, w, 0, "10.244.7.1", AdjDrop)

	// Connected, local, node and host routes beat BGP.
	mustAdd(t, w, bgp("10.9.0.0/24", via("192.0.2.7")), bgp("10.9.0.1/32", via("192.0.2.7")), bgp("192.0.2.1/32", via("192.0.2.7")))
	wantAdj(t, w, 0, "10.9.0.5", onTun1)
	wantAdj(t, w, 0, "10.9.0.1", Adjacency{Kind: AdjLocal})
	wantAdj(t, w, 0, "192.0.2.1", Adjacency{Kind: AdjHost, TxIf: host, MTU: 1500})
	mustAdd(t, w, Route{Prefix: pfx("10.9.0.77/32"), Paths: []Path{dev(tun1)}, Source: SourceHost}, bgp("10.9.0.77/32", via("192.0.2.7")))
	wantAdj(t, w, 0, "10.9.0.77", onTun1)
	wantEntries(t, w, SourceBGP, "10.9.0.0/24 via 192.0.2.7", "10.9.0.1/32 via 192.0.2.7", "10.9.0.77/32 via 192.0.2.7", "192.0.2.1/32 via 192.0.2.7")
	mustDel(t, w, Route{Prefix: pfx("10.9.0.77/32"), Source: SourceHost})
	wantAdj(t, w, 0, "10.9.0.77", Adjacency{Kind: AdjIncomplete, TxIf: up, NextHop: ip("192.0.2.7"), MTU: 1500})

	// BGP beats a neighbour's host route.
	tap := addIf(t, w, "tap0", KindTap, 0, "10.8.0.1/24")
	w.LearnNeighbor(tap, ip("10.8.0.5"), nbMAC)
	checkInvariants(t, w)
	if got := w.RoutesOf(SourceNeighbor); len(got) != 1 {
		t.Fatalf("neighbour routes %v", got)
	}
	mustAdd(t, w, bgp("10.8.0.5/32", dev(tun1)))
	wantAdj(t, w, 0, "10.8.0.5", onTun1)
	mustDel(t, w, bgp("10.8.0.5/32"))
	wantKind(t, w, 0, "10.8.0.5", AdjRewrite)
	if a := resolve(w.Snapshot(), 0, ip("10.8.0.5"), 0); a.TxIf != tap {
		t.Errorf("after deleting the bgp /32: %+v", a)
	}
}

// A static route that stopped resolving (its gateway's subnet went away)
// keeps its prefix and drops. Adding a BGP route of that prefix must not
// fail the batch because of the static entry, which is not the batch's.
func TestBGPUnderBrokenStatic(t *testing.T) {
	w := newTestWriter(t)
	addIf(t, w, "tap0", KindTap, 0, "10.0.0.1/24")
	tun1 := addIf(t, w, "tun1", KindTun, 0, "10.5.0.1/24")
	mustAdd(t, w, static("10.1.0.0/16", via("10.0.0.2")))
	if err := w.DeleteAddress("tap0", pfx("10.0.0.1/24")); err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, w)
	wantKind(t, w, 0, "10.1.0.1", AdjDrop)
	mustAdd(t, w, bgp("10.1.0.0/16", via("10.5.0.2")), bgp("10.3.0.0/16", via("10.5.0.2")))
	wantKind(t, w, 0, "10.1.0.1", AdjDrop) // the static entry still wins
	wantKind(t, w, 0, "10.3.0.1", AdjRewrite)
	mustDel(t, w, static("10.1.0.0/16"))
	wantAdj(t, w, 0, "10.1.0.1", Adjacency{Kind: AdjRewrite, TxIf: tun1, MTU: 1500})
	// A BGP route of the batch that does not resolve still fails it.
	var re *RouteError
	err := w.AddRoutes([]Route{bgp("10.6.0.0/16", via("10.5.0.2")), bgp("10.7.0.0/16", via("10.0.0.2"))})
	if !errors.As(err, &re) || re.Index != 1 {
		t.Errorf("unresolvable bgp route: %v", err)
	}
	checkInvariants(t, w)
	wantKind(t, w, 0, "10.6.0.1", adjNoRoute)
}

func TestSourceRoutesVRFs(t *testing.T) {
	w := newTestWriter(t)
	w.AddVRF(5)
	tun0 := addIf(t, w, "tun0", KindTun, 0)
	tun5 := addIf(t, w, "tun5", KindTun, 5)
	mustAdd(t, w,
		bgp("192.168.0.0/16", dev(tun0)),
		Route{Prefix: pfx("192.168.0.0/16"), VRF: 5, Paths: []Path{dev(tun5)}, Source: SourceBGP},
		Route{Prefix: pfx("fd00::/64"), VRF: 5, Paths: []Path{dev(tun5)}, Source: SourceBGP},
		Route{Prefix: pfx("10.0.0.0/8"), VRF: 5, Paths: []Path{dev(tun5)}, Source: SourceStatic},
	)
	list := func(vrf uint32, all bool) []string {
		var out []string
		for _, ri := range w.SourceRoutes(vrf, all, SourceBGP) {
			out = append(out, fmt.Sprintf("%d %s", ri.VRF, ri.Prefix))
		}
		return out
	}
	if got, want := list(5, false), []string{"5 192.168.0.0/16", "5 fd00::/64"}; !slices.Equal(got, want) {
		t.Errorf("vrf 5: %q, want %q", got, want)
	}
	if got, want := list(0, true), []string{"0 192.168.0.0/16", "5 192.168.0.0/16", "5 fd00::/64"}; !slices.Equal(got, want) {
		t.Errorf("all vrfs: %q, want %q", got, want)
	}
	if got := w.SourceRoutes(0, true, numSources); got != nil {
		t.Errorf("invalid source lists %v", got)
	}
}

// An AddRoutes of 10 000 BGP routes is one table transaction: one
// published version.
func TestAddRoutesBGP10kOneVersion(t *testing.T) {
	w, tap := setup100k(t)
	rs := bgpRoutes10k()
	v := w.Snapshot().Version
	mustAddNoCheck(t, w, rs...)
	if got := w.Snapshot().Version - v; got != 1 {
		t.Errorf("AddRoutes of %d bgp routes published %d versions", len(rs), got)
	}
	checkInvariants(t, w)
	if n := len(w.SourceRoutes(0, false, SourceBGP)); n != len(rs) {
		t.Errorf("%d bgp entries", n)
	}
	s := w.Snapshot()
	for _, r := range rs[len(rs)-100:] {
		if a := resolve(s, 0, r.Prefix.Addr(), 0); a.Kind != AdjIncomplete || a.TxIf != tap || a.NextHop != ip("10.0.0.2") {
			t.Fatalf("%s: %+v", r.Prefix, a)
		}
	}
	v = w.Snapshot().Version
	if err := w.DeleteRoutes(rs); err != nil {
		t.Fatal(err)
	}
	if got := w.Snapshot().Version - v; got != 1 {
		t.Errorf("DeleteRoutes of %d bgp routes published %d versions", len(rs), got)
	}
	checkInvariants(t, w)
}

// bgpRoutes10k returns 10 000 /26 routes (10.128.0.0/26 onwards) via
// 10.0.0.2, on setup100k's connected subnet: what a BGP speaker learns
// from peers announcing pod blocks.
func bgpRoutes10k() []Route {
	rs := make([]Route, 10_000)
	nh := []Path{via("10.0.0.2")}
	for i := range rs {
		a := netip.AddrFrom4([4]byte{10, byte(128 + i>>10), byte(i >> 2), byte(i&3) << 6})
		rs[i] = Route{Prefix: netip.PrefixFrom(a, 26), Paths: nh, Source: SourceBGP}
	}
	return rs
}

func BenchmarkAddRoutesBGP10k(b *testing.B) {
	rs := bgpRoutes10k()
	w, _ := setup100k(b)
	for b.Loop() {
		if err := w.AddRoutes(rs); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := w.DeleteRoutes(rs); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(len(rs))*float64(b.N)/b.Elapsed().Seconds(), "routes/s")
}

// BenchmarkAddRoutesBGPIncremental: 10 000 bgp routes in batches of
// 1 000, as a BGP speaker's burst arrives: the cost of one publish must
// not grow with the routes already in the table.
func BenchmarkAddRoutesBGPIncremental(b *testing.B) {
	rs := bgpRoutes10k()
	w, _ := setup100k(b)
	var per [10]time.Duration
	for b.Loop() {
		for i := 0; i < 10; i++ {
			s := time.Now()
			if err := w.AddRoutes(rs[i*1000 : (i+1)*1000]); err != nil {
				b.Fatal(err)
			}
			per[i] += time.Since(s)
		}
		b.StopTimer()
		if err := w.DeleteRoutes(rs); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(len(rs))*float64(b.N)/b.Elapsed().Seconds(), "routes/s")
	b.ReportMetric(float64(per[0].Microseconds())/float64(b.N), "first-batch-µs")
	b.ReportMetric(float64(per[9].Microseconds())/float64(b.N), "last-batch-µs")
}
