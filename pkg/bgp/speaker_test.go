package bgp

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// freePort returns a TCP port free on loopback.
func freePort(t *testing.T) int32 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return int32(l.Addr().(*net.TCPAddr).Port)
}

// learnedTable collects a speaker's learned routes.
type learnedTable struct {
	mu     sync.Mutex
	routes map[netip.Prefix]Learned
	states map[netip.Addr]string
}

func newLearnedTable() *learnedTable {
	return &learnedTable{routes: map[netip.Prefix]Learned{}, states: map[netip.Addr]string{}}
}

func (l *learnedTable) on(ls []Learned) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range ls {
		if r.Withdrawn {
			delete(l.routes, r.Prefix)
		} else {
			l.routes[r.Prefix] = r
		}
	}
}

func (l *learnedTable) peer(e PeerEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.states[e.Addr] = e.State
}

func (l *learnedTable) get(p string) (Learned, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.routes[netip.MustParsePrefix(p)]
	return r, ok
}

func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pair starts two speakers on 127.0.0.1 and 127.0.0.2 peering with each
// other (iBGP, AS 64512), each listening on its own port.
func pair(t *testing.T, aImport []Rule) (a, b *Speaker, la, lb *learnedTable, ca, cb Config) {
	t.Helper()
	la, lb = newLearnedTable(), newLearnedTable()
	a = NewSpeaker(Options{OnLearned: la.on, OnPeer: la.peer})
	b = NewSpeaker(Options{OnLearned: lb.on, OnPeer: lb.peer})
	t.Cleanup(a.Stop)
	t.Cleanup(b.Stop)
	pa, pb := freePort(t), freePort(t)
	ipA, ipB := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	ca = Config{ASN: 64512, RouterID: ipA, ListenPort: pa, LocalV4: ipA, HoldTime: 9 * time.Second, Peers: []Peer{{
		Addr: ipB, Port: uint16(pb), ASN: 64512, LocalASN: 64512, LocalAddr: ipA, Origin: "test", RestartTime: 10 * time.Second, Import: aImport,
	}}}
	cb = Config{ASN: 64512, RouterID: ipB, ListenPort: pb, LocalV4: ipB, HoldTime: 9 * time.Second, Peers: []Peer{{
		Addr: ipA, Port: uint16(pa), ASN: 64512, LocalASN: 64512, LocalAddr: ipB, Origin: "test", RestartTime: 10 * time.Second,
	}}}
	ctx := context.Background()
	if err := a.Apply(ctx, ca); err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(ctx, cb); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the session to come up", func() bool {
		la.mu.Lock()
		defer la.mu.Unlock()
		return la.states[ipB] == "Established"
	})
	return
}

func TestSpeakerAdvertiseWithdrawFilter(t *testing.T) {
	reject := []Rule{{Prefix: netip.MustParsePrefix("10.9.0.0/16"), Min: 16, Max: 32, Family: 4, Filter: "f", Index: 0}}
	a, b, la, _, _, _ := pair(t, reject)
	_ = a
	if err := b.SetOrigins([]Origin{{Prefix: netip.MustParsePrefix("10.1.2.0/26")}, {Prefix: netip.MustParsePrefix("10.9.1.0/24")}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "10.1.2.0/26 to be learned", func() bool { _, ok := la.get("10.1.2.0/26"); return ok })
	r, _ := la.get("10.1.2.0/26")
	if r.NextHop != netip.MustParseAddr("127.0.0.2") || r.Peer != netip.MustParseAddr("127.0.0.2") {
		t.Errorf("learned %+v, want next hop and peer 127.0.0.2", r)
	}
	time.Sleep(300 * time.Millisecond)
	if _, ok := la.get("10.9.1.0/24"); ok {
		t.Errorf("10.9.1.0/24 was learned despite the import filter")
	}
	// Withdraw one and change the other.
	if err := b.SetOrigins([]Origin{{Prefix: netip.MustParsePrefix("10.1.3.0/26")}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "10.1.2.0/26 to be withdrawn and 10.1.3.0/26 learned", func() bool {
		_, old := la.get("10.1.2.0/26")
		_, nw := la.get("10.1.3.0/26")
		return !old && nw
	})
	// Setting the same origins again changes nothing: the path is not
	// withdrawn and added again.
	originID := func() uuid.UUID {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.origins[netip.MustParsePrefix("10.1.3.0/26")].id
	}
	id := originID()
	if err := b.SetOrigins([]Origin{{Prefix: netip.MustParsePrefix("10.1.3.0/26")}}); err != nil {
		t.Fatal(err)
	}
	if got := originID(); id == uuid.Nil || got != id {
		t.Errorf("the same origins again: path %v became %v", id, got)
	}
	if _, ok := la.get("10.1.3.0/26"); !ok {
		t.Errorf("10.1.3.0/26 no longer learned after setting the same origins again")
	}
	peers, err := a.Peers(context.Background())
	if err != nil || len(peers) != 1 || peers[0].State != "Established" || peers[0].Origin != "test" {
		t.Fatalf("Peers() = %+v, %v", peers, err)
	}
}

func TestSpeakerFilterChangeApplies(t *testing.T) {
	a, b, la, _, ca, _ := pair(t, nil)
	if err := b.SetOrigins([]Origin{{Prefix: netip.MustParsePrefix("10.9.1.0/24")}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "10.9.1.0/24 to be learned", func() bool { _, ok := la.get("10.9.1.0/24"); return ok })
	ca.Peers[0].Import = []Rule{{Prefix: netip.MustParsePrefix("10.9.1.0/24"), Min: 24, Max: 24, Family: 4, Filter: "f"}}
	if err := a.Apply(context.Background(), ca); err != nil {
		t.Fatal(err)
	}
	eventually(t, "10.9.1.0/24 to be dropped by the new filter", func() bool { _, ok := la.get("10.9.1.0/24"); return !ok })
	ca.Peers[0].Import = nil
	if err := a.Apply(context.Background(), ca); err != nil {
		t.Fatal(err)
	}
	eventually(t, "10.9.1.0/24 to come back without the filter", func() bool { _, ok := la.get("10.9.1.0/24"); return ok })
}
