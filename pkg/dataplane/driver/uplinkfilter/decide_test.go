package uplinkfilter

import (
	"net/netip"
	"testing"

	"github.com/vecnet/vecnet/pkg/dataplane/driver"
)

func TestDecide(t *testing.T) {
	for _, c := range decisionCases() {
		if got := Decide(c.frame, &tableFilter); got != c.want {
			t.Errorf("%s: Decide = %v, want %v (frame % x)", c.name, got, c.want, c.frame)
		}
	}
}

func TestDecideEmptyFilter(t *testing.T) {
	for _, c := range decisionCases() {
		if Decide(c.frame, &driver.Filter{}) {
			t.Errorf("%s: ours under an empty filter", c.name)
		}
	}
}

// Entries Update rejects must never match, so that Decide stays the
// reference of what the maps can hold.
func TestDecideIgnoresRejectedEntries(t *testing.T) {
	f := driver.Filter{
		Prefixes:  []netip.Prefix{{}},
		NodeAddrs: []netip.Addr{{}, netip.MustParseAddr("192.168.1.10")},
		UDPPorts:  []uint16{0},
	}
	frames := [][]byte{
		v4(ipv4Opts{dst: "10.244.1.2", proto: 17}, udp(0, nil)),
		v4(ipv4Opts{dst: "192.168.1.10", proto: 17}, udp(0, nil)),
	}
	for _, fr := range frames {
		if Decide(fr, &f) {
			t.Errorf("ours: % x", fr)
		}
	}
}

func TestNormPrefix(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"10.1.2.3/8", "10.0.0.0/8"},
		{"::ffff:10.1.0.0/112", "10.1.0.0/16"},
		{"::ffff:10.1.2.3/128", "10.1.2.3/32"},
		{"::ffff:0.0.0.0/96", "0.0.0.0/0"},
		{"::ffff:0:0/95", "::fffe:0:0/95"}, // wider than the mapped space: stays IPv6
		{"fd00::1/64", "fd00::/64"},
		{"::/0", "::/0"},
	} {
		got, ok := normPrefix(netip.MustParsePrefix(c.in))
		if !ok || got.String() != c.want {
			t.Errorf("normPrefix(%s) = %v, %v; want %s", c.in, got, ok, c.want)
		}
	}
	if _, ok := normPrefix(netip.Prefix{}); ok {
		t.Error("zero prefix accepted")
	}
}

func TestDecideDoesNotAllocate(t *testing.T) {
	cases := decisionCases()
	allocs := testing.AllocsPerRun(100, func() {
		for _, c := range cases {
			Decide(c.frame, &tableFilter)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per run of the table", allocs)
	}
}

func BenchmarkDecide(b *testing.B) {
	frames := map[string][]byte{
		"prefix": v4(ipv4Opts{dst: "10.244.1.2", proto: 17}, udp(53, nil)),
		"vxlan":  v4(ipv4Opts{dst: "192.168.1.10", proto: 17}, udp(4789, vxlanPayload)),
		"host":   v4(ipv4Opts{dst: "192.168.1.10", proto: 6}, make([]byte, 20)),
		"ipv6":   eth(0x86DD, ipv6("fd00:10:244::5", 6, nil)),
	}
	for name, fr := range frames {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Decide(fr, &tableFilter)
			}
		})
	}
}
