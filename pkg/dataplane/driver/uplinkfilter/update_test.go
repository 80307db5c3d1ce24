package uplinkfilter

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/vecnet/vecnet/pkg/dataplane/driver"
)

// contents lists what the four filter maps hold, sorted, in the words of
// keyString ("10.0.0.0/8", "192.168.1.10", "port 4789").
func contents(t testing.TB, s *Set) [4][]string {
	t.Helper()
	var out [4][]string
	for i, m := range []*ebpf.Map{s.maps.prefix4, s.maps.prefix6, s.maps.nodes, s.maps.ports} {
		have, err := keys(m)
		if err != nil {
			t.Fatal(err)
		}
		for k := range have {
			out[i] = append(out[i], keyString(i, []byte(k)))
		}
		slices.Sort(out[i])
	}
	return out
}

func wantContents(p4, p6, nodes, ports []string) [4][]string {
	for _, l := range [][]string{p4, p6, nodes, ports} {
		slices.Sort(l)
	}
	return [4][]string{p4, p6, nodes, ports}
}

func TestUpdateContents(t *testing.T) {
	ts := newTestSet(t, 1)
	if err := ts.Update(tableFilter); err != nil {
		t.Fatal(err)
	}
	want := wantContents(
		[]string{"10.244.0.0/16", "10.96.0.0/12", "172.30.0.0/16", "203.0.113.0/24"},
		[]string{"fd00:10:244::/56"},
		[]string{"192.168.1.10", "192.168.1.11"},
		[]string{"port 4789", "port 8472"},
	)
	if got := contents(t, ts.Set); !slices.EqualFunc(got[:], want[:], slices.Equal) {
		t.Errorf("maps hold %v, want %v", got, want)
	}
}

func TestUpdateReplacesAndRemovesStale(t *testing.T) {
	ts := newTestSet(t, 1)
	if err := ts.Update(tableFilter); err != nil {
		t.Fatal(err)
	}
	next := driver.Filter{
		Prefixes: []netip.Prefix{
			netip.MustParsePrefix("10.244.0.0/16"), // kept
			netip.MustParsePrefix("10.245.0.0/16"), // new
		},
		NodeAddrs: []netip.Addr{netip.MustParseAddr("192.168.1.12")},
		UDPPorts:  []uint16{4789},
	}
	if err := ts.Update(next); err != nil {
		t.Fatal(err)
	}
	want := wantContents(
		[]string{"10.244.0.0/16", "10.245.0.0/16"},
		nil,
		[]string{"192.168.1.12"},
		[]string{"port 4789"},
	)
	if got := contents(t, ts.Set); !slices.EqualFunc(got[:], want[:], slices.Equal) {
		t.Errorf("maps hold %v, want %v", got, want)
	}
	// The programs follow, on the table and on frames of the new filter.
	cases := append(decisionCases(),
		decisionCase{frame: v4(ipv4Opts{dst: "10.245.3.3", proto: 6}, make([]byte, 20))},
		decisionCase{frame: v4(ipv4Opts{dst: "192.168.1.12", proto: 4}, make([]byte, 20))},
		decisionCase{frame: v4(ipv4Opts{dst: "192.168.1.12", proto: 17}, udp(8472, vxlanPayload))},
	)
	for _, c := range cases {
		want := Decide(c.frame, &next)
		if err := ts.check(c.frame, want); err != nil {
			t.Errorf("%s (ours=%v under the new filter): %v", c.name, want, err)
		}
	}
	// Back to empty.
	if err := ts.Update(driver.Filter{}); err != nil {
		t.Fatal(err)
	}
	if got := contents(t, ts.Set); len(slices.Concat(got[:]...)) != 0 {
		t.Errorf("maps hold %v after an empty update", got)
	}
}

func TestUpdateIdempotent(t *testing.T) {
	ref := newTestSet(t, 1)
	if err := ref.Update(tableFilter); err != nil {
		t.Fatal(err)
	}
	want := contents(t, ref.Set)

	ts := newTestSet(t, 1)
	dup := tableFilter
	dup.Prefixes = append(slices.Clone(tableFilter.Prefixes),
		netip.MustParsePrefix("10.244.9.9/16"),        // the first one again, unmasked
		netip.MustParsePrefix("::ffff:10.96.0.0/108"), // the second one again, mapped
	)
	dup.NodeAddrs = append(slices.Clone(tableFilter.NodeAddrs), netip.MustParseAddr("::ffff:192.168.1.10"))
	dup.UDPPorts = append(slices.Clone(tableFilter.UDPPorts), 4789)
	for i, f := range []driver.Filter{tableFilter, tableFilter, dup, tableFilter} {
		if err := ts.Update(f); err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
		if got := contents(t, ts.Set); !slices.EqualFunc(got[:], want[:], slices.Equal) {
			t.Fatalf("after update %d the maps hold %v, want %v", i, got, want)
		}
	}
}

func TestUpdateRejects(t *testing.T) {
	ts := newTestSet(t, 1)
	if err := ts.Update(tableFilter); err != nil {
		t.Fatal(err)
	}
	before := contents(t, ts.Set)
	many := func(n int, v6 bool) []netip.Prefix {
		var ps []netip.Prefix
		for i := range n {
			if v6 {
				ps = append(ps, netip.PrefixFrom(netip.AddrFrom16([16]byte{0xfd, 0, byte(i >> 8), byte(i)}), 32))
			} else {
				ps = append(ps, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24))
			}
		}
		return ps
	}
	var addrs []netip.Addr
	for i := range MaxNodeAddrs + 1 {
		addrs = append(addrs, netip.AddrFrom4([4]byte{192, 168, 0, byte(i)}))
	}
	var ports []uint16
	for i := range MaxUDPPorts + 1 {
		ports = append(ports, uint16(1000+i))
	}
	ok := netip.MustParsePrefix("10.0.0.0/8")
	for _, c := range []struct {
		f    driver.Filter
		want string
	}{
		{driver.Filter{Prefixes: []netip.Prefix{ok, {}}}, "Prefixes[1]"},
		{driver.Filter{Prefixes: []netip.Prefix{netip.PrefixFrom(netip.MustParseAddr("10.0.0.0"), 33)}}, "Prefixes[0]"},
		{driver.Filter{NodeAddrs: []netip.Addr{netip.MustParseAddr("192.168.1.1"), netip.MustParseAddr("::1"), {}}}, "NodeAddrs[2]"},
		{driver.Filter{UDPPorts: []uint16{4789, 0}}, "UDPPorts[1]: port 0"},
		{driver.Filter{Prefixes: many(MaxPrefixes+1, false)}, "1025 IPv4 prefixes"},
		{driver.Filter{Prefixes: many(MaxPrefixes+1, true)}, "1025 IPv6 prefixes"},
		{driver.Filter{NodeAddrs: addrs}, "17 IPv4 node addresses"},
		{driver.Filter{UDPPorts: ports}, "9 UDP ports"},
	} {
		err := ts.Update(c.f)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Update: error %v, want one naming %q", err, c.want)
		}
	}
	// A rejected filter changes nothing.
	if got := contents(t, ts.Set); !slices.EqualFunc(got[:], before[:], slices.Equal) {
		t.Errorf("maps changed by rejected updates: %v, was %v", got, before)
	}
	// The limits themselves are fine, and duplicates do not count.
	full := driver.Filter{
		Prefixes:  append(many(MaxPrefixes, false), many(MaxPrefixes, true)...),
		NodeAddrs: append(addrs[:MaxNodeAddrs:MaxNodeAddrs], addrs[0]),
		UDPPorts:  append(ports[:MaxUDPPorts:MaxUDPPorts], ports[0]),
	}
	if err := ts.Update(full); err != nil {
		t.Errorf("filter at the limits: %v", err)
	}
}

// A full filter replaced by an entirely different full filter: the maps
// are sized for both at once, as Update adds before it deletes.
func TestUpdateFullReplacement(t *testing.T) {
	ts := newTestSet(t, 1)
	gen := func(base byte) driver.Filter {
		var f driver.Filter
		for i := range MaxPrefixes {
			f.Prefixes = append(f.Prefixes,
				netip.PrefixFrom(netip.AddrFrom4([4]byte{base, byte(i >> 8), byte(i), 0}), 24),
				netip.PrefixFrom(netip.AddrFrom16([16]byte{0xfd, base, byte(i >> 8), byte(i)}), 32))
		}
		for i := range MaxNodeAddrs {
			f.NodeAddrs = append(f.NodeAddrs, netip.AddrFrom4([4]byte{192, base, 0, byte(i)}))
		}
		for i := range MaxUDPPorts {
			f.UDPPorts = append(f.UDPPorts, uint16(base)<<8|uint16(i+1))
		}
		return f
	}
	a, b := gen(10), gen(11)
	for _, f := range []driver.Filter{a, b, a} {
		if err := ts.Update(f); err != nil {
			t.Fatal(err)
		}
		got := contents(t, ts.Set)
		if len(got[0]) != MaxPrefixes || len(got[1]) != MaxPrefixes || len(got[2]) != MaxNodeAddrs || len(got[3]) != MaxUDPPorts {
			t.Fatalf("map sizes %d %d %d %d", len(got[0]), len(got[1]), len(got[2]), len(got[3]))
		}
		fr := v4(ipv4Opts{dst: f.Prefixes[100].Addr().Next().String(), proto: 6}, make([]byte, 20))
		if err := ts.check(fr, true); err != nil {
			t.Errorf("frame in the new filter: %v", err)
		}
	}
}

// While Update moves between filters that both contain a frame's
// destination (through different entries: 10.244.0.0/16 and
// 10.244.0.0/15, node address and port sets that both hold the frame's),
// the programs never see the frame as not ours. A delete-then-add Update
// would open a window here.
func TestUpdateNoGap(t *testing.T) {
	ts := newTestSet(t, 1)
	fa := driver.Filter{
		Prefixes:  []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")},
		NodeAddrs: []netip.Addr{netip.MustParseAddr("192.168.1.10")},
		UDPPorts:  []uint16{4789},
	}
	fb := driver.Filter{
		Prefixes:  []netip.Prefix{netip.MustParsePrefix("10.244.0.0/15"), netip.MustParsePrefix("10.1.0.0/16")},
		NodeAddrs: []netip.Addr{netip.MustParseAddr("::ffff:192.168.1.10"), netip.MustParseAddr("192.168.1.11")},
		UDPPorts:  []uint16{8472, 4789},
	}
	if err := ts.Update(fa); err != nil {
		t.Fatal(err)
	}
	frames := [][]byte{
		v4(ipv4Opts{dst: "10.244.1.1", proto: 6}, make([]byte, 20)),
		v4(ipv4Opts{dst: "192.168.1.10", proto: 17}, udp(4789, vxlanPayload)),
	}
	var (
		stop   atomic.Bool
		missed atomic.Int64
		runs   atomic.Int64
		runErr error
		wg     sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			for _, fr := range frames {
				r, _, err := runXDP(ts.xdpTest, fr)
				if err != nil {
					runErr = err
					return
				}
				runs.Add(1)
				if r != xdpTX {
					missed.Add(1)
				}
			}
		}
	}()
	for i := range 300 {
		f := fa
		if i%2 == 0 {
			f = fb
		}
		if err := ts.Update(f); err != nil {
			t.Error(err)
			break
		}
	}
	stop.Store(true)
	wg.Wait()
	if runErr != nil {
		t.Fatal(runErr)
	}
	if n := missed.Load(); n != 0 {
		t.Errorf("%d of %d runs saw a wanted frame as not ours during updates", n, runs.Load())
	}
	t.Logf("%d program runs during 300 updates", runs.Load())
}

func TestSocketAndCloseErrors(t *testing.T) {
	ts := newTestSet(t, 2)
	for _, q := range []int{-1, 2} {
		if err := ts.SetSocket(q, 0); err == nil {
			t.Errorf("SetSocket(%d) accepted", q)
		}
		if err := ts.DeleteSocket(q); err == nil {
			t.Errorf("DeleteSocket(%d) accepted", q)
		}
	}
	// Only AF_XDP sockets go in an XSK map.
	if err := ts.SetSocket(0, ts.SocketFilterFD()); err == nil {
		t.Error("SetSocket took a BPF program fd")
	}
	if err := ts.DeleteSocket(1); err != nil {
		t.Errorf("DeleteSocket of an empty entry: %v", err)
	}
	if _, err := New(0); err == nil {
		t.Error("New(0) accepted")
	}

	s, err := New(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	for name, err := range map[string]error{
		"Update":       s.Update(tableFilter),
		"SetSocket":    s.SetSocket(0, 0),
		"DeleteSocket": s.DeleteSocket(0),
		"AttachTC":     s.AttachTC(1),
	} {
		if !errors.Is(err, errClosed) {
			t.Errorf("%s after Close: %v", name, err)
		}
	}
	if _, err := s.AttachXDP(1); !errors.Is(err, errClosed) {
		t.Errorf("AttachXDP after Close: %v", err)
	}
}
