package tables

import (
	"errors"
	"net/netip"
	"testing"
)

// uplinkNode builds what the uplink manager sets up on a node: an uplink
// with the kernel's address 192.0.2.1/24, its subnet as an uplink route,
// a host tun, and the node address routed to the host.
func uplinkNode(t *testing.T) (w *Writer, up, host uint32) {
	t.Helper()
	w = newTestWriter(t)
	up, err := w.AddInterface(Interface{Name: "eth0", Kind: KindUplink, MTU: 1500, MAC: ifMAC1})
	if err != nil {
		t.Fatal(err)
	}
	host = addIf(t, w, "vecnet0", KindTun, 0)
	if err := w.SetHostAddrs("eth0", []netip.Addr{ip("192.0.2.1"), ip("2001:db8::1")}); err != nil {
		t.Fatal(err)
	}
	if err := w.SyncSource(SourceUplink, []Route{
		{Prefix: pfx("192.0.2.0/24"), Paths: []Path{dev(up)}},
		{Prefix: pfx("10.244.0.0/16")},
		{Prefix: pfx("0.0.0.0/0"), Paths: []Path{dev(host)}},
	}); err != nil {
		t.Fatal(err)
	}
	if err := w.SyncSource(SourceNode, []Route{{Prefix: pfx("192.0.2.1/32"), Paths: []Path{dev(host)}}}); err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, w)
	return w, up, host
}

func TestUplinkNodeRoutes(t *testing.T) {
	w, up, host := uplinkNode(t)
	wantAdj(t, w, 0, "192.0.2.1", Adjacency{Kind: AdjHost, TxIf: host, MTU: 1500})
	wantAdj(t, w, 0, "192.0.2.7", Adjacency{Kind: AdjGlean, TxIf: up, MTU: 1500})
	wantKind(t, w, 0, "10.244.3.4", AdjDrop)
	wantAdj(t, w, 0, "8.8.8.8", Adjacency{Kind: AdjRewrite, TxIf: host, MTU: 1500})
	// Syncing the same set changes nothing; a smaller set removes the rest.
	v := w.Snapshot().Version
	if err := w.SyncSource(SourceNode, []Route{{Prefix: pfx("192.0.2.1/32"), Paths: []Path{dev(host)}}}); err != nil {
		t.Fatal(err)
	}
	if w.Snapshot().Version != v {
		t.Errorf("syncing an unchanged set published a new version")
	}
	if err := w.SyncSource(SourceNode, nil); err != nil {
		t.Fatal(err)
	}
	wantAdj(t, w, 0, "192.0.2.1", Adjacency{Kind: AdjGlean, TxIf: up, MTU: 1500})
	checkInvariants(t, w)
	if err := w.SyncSource(SourceStatic, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("SyncSource(static) = %v, want ErrInvalid", err)
	}
}

func TestEncapRoute(t *testing.T) {
	w, up, _ := uplinkNode(t)
	vx := Route{Prefix: pfx("10.244.1.0/26"), Paths: []Path{{NextHop: ip("192.0.2.2"), Encap: Encap{Type: EncapVXLAN, VNI: 4096}}}}
	ipip := Route{Prefix: pfx("10.244.2.0/26"), Paths: []Path{{NextHop: ip("192.0.2.3"), Encap: Encap{Type: EncapIPIP}}}}
	none := Route{Prefix: pfx("10.244.3.0/26"), Paths: []Path{via("192.0.2.4")}}
	mustAdd(t, w, vx, ipip, none)

	s := w.Snapshot()
	a := resolve(s, 0, ip("10.244.1.9"), 0)
	if a.Kind != AdjEncap || a.Encap != EncapVXLAN || a.VNI != 4096 || s.VXLANPort != DefaultVXLANPort ||
		a.Src != [4]byte{192, 0, 2, 1} || a.NextHop != ip("192.0.2.2") || a.MTU != 1450 || a.TxIf != up {
		t.Fatalf("vxlan adjacency %+v", a)
	}
	if u := s.Adjs[a.Under]; u.Kind != AdjIncomplete || u.NextHop != ip("192.0.2.2") {
		t.Errorf("underlay before the neighbour is known: %+v", u)
	}
	b := resolve(s, 0, ip("10.244.2.9"), 0)
	if b.Kind != AdjEncap || b.Encap != EncapIPIP || b.VNI != 0 || b.MTU != 1480 {
		t.Errorf("ipip adjacency %+v", b)
	}
	wantKind(t, w, 0, "10.244.3.9", AdjIncomplete)
	if _, ok := s.TunnelPeers[[4]byte{192, 0, 2, 2}]; !ok || len(s.TunnelPeers) != 2 {
		t.Errorf("tunnel peers %v", s.TunnelPeers)
	}
	if _, ok := s.VNIs[4096]; !ok || len(s.VNIs) != 1 {
		t.Errorf("vnis %v", s.VNIs)
	}

	// The kernel resolves the neighbour: the underlay completes in place
	// and the tunnel follows without being rebuilt.
	w.LearnNeighbor(up, ip("192.0.2.2"), nbMAC)
	s = w.Snapshot()
	a = resolve(s, 0, ip("10.244.1.9"), 0)
	if u := s.Adjs[a.Under]; u.Kind != AdjRewrite || u.Rewrite != ethRewrite(nbMAC, ifMAC1, 0x0800) {
		t.Errorf("underlay after learning: %+v", u)
	}
	checkInvariants(t, w)

	// Path MTU follows the uplink; the source follows the node address.
	if err := w.SetLinkState("eth0", true, 9000); err != nil {
		t.Fatal(err)
	}
	if a := resolve(w.Snapshot(), 0, ip("10.244.1.9"), 0); a.MTU != 8950 {
		t.Errorf("MTU after change = %d, want 8950", a.MTU)
	}
	if err := w.SetHostAddrs("eth0", nil); err != nil {
		t.Fatal(err)
	}
	wantKind(t, w, 0, "10.244.1.9", AdjDrop)
	if err := w.SetHostAddrs("eth0", []netip.Addr{ip("192.0.2.1")}); err != nil {
		t.Fatal(err)
	}
	wantKind(t, w, 0, "10.244.1.9", AdjEncap)
	checkInvariants(t, w)

	// The host changes the uplink's MAC: underlay rewrites follow.
	newMAC := [6]byte{0x02, 0xaa, 0, 0, 0, 1}
	if err := w.SetMAC("eth0", newMAC); err != nil {
		t.Fatal(err)
	}
	s = w.Snapshot()
	if u := s.Adjs[resolve(s, 0, ip("10.244.1.9"), 0).Under]; u.Rewrite != ethRewrite(nbMAC, newMAC, 0x0800) {
		t.Errorf("underlay after MAC change: %+v", u)
	}
	checkInvariants(t, w)

	// The kernel forgets the neighbour: incomplete again.
	w.ForgetNeighbor(up, ip("192.0.2.2"))
	s = w.Snapshot()
	if u := s.Adjs[resolve(s, 0, ip("10.244.1.9"), 0).Under]; u.Kind != AdjIncomplete {
		t.Errorf("underlay after forgetting: %+v", u)
	}

	// Deleting the tunnel routes releases every adjacency.
	mustDel(t, w, vx, ipip, none)
	if s := w.Snapshot(); len(s.TunnelPeers) != 0 || len(s.VNIs) != 0 {
		t.Errorf("after delete: peers %v vnis %v", s.TunnelPeers, s.VNIs)
	}
	checkInvariants(t, w)
}

func TestEncapRouteInvalid(t *testing.T) {
	w, up, _ := uplinkNode(t)
	for _, r := range []Route{
		{Prefix: pfx("10.244.1.0/26"), Paths: []Path{{NextHop: ip("2001:db8::2"), Encap: Encap{Type: EncapIPIP}}}},
		{Prefix: pfx("10.244.1.0/26"), Paths: []Path{{NextHop: ip("192.0.2.2"), Interface: up, Encap: Encap{Type: EncapIPIP}}}},
		{Prefix: pfx("10.244.1.0/26"), Paths: []Path{{NextHop: ip("192.0.2.2"), Encap: Encap{Type: EncapVXLAN, VNI: 1 << 24}}}},
		{Prefix: pfx("10.244.1.0/26"), Paths: []Path{{NextHop: ip("192.0.2.2"), Encap: Encap{Type: 9}}}},
	} {
		err := w.AddRoutes([]Route{static("10.9.9.0/24", dev(up)), r})
		var re *RouteError
		if !errors.As(err, &re) || re.Index != 1 || re.Path != 0 {
			t.Errorf("AddRoutes(%+v) = %v, want RouteError at 1/0", r.Paths[0], err)
		}
	}
	// A tunnel to the node's own address cannot resolve.
	err := w.AddRoutes([]Route{{Prefix: pfx("10.244.1.0/26"), Paths: []Path{{NextHop: ip("192.0.2.1"), Encap: Encap{Type: EncapIPIP}}}}})
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("tunnel to the node's own address: %v, want ErrInvalid", err)
	}
	checkInvariants(t, w)
}
