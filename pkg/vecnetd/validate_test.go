package vecnetd

import (
	"net/netip"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	vecnetv1 "github.com/vecnet/vecnet/api/vecnet/v1"
	"github.com/vecnet/vecnet/pkg/dataplane/driver/tun"
	"github.com/vecnet/vecnet/pkg/dataplane/tables"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// wantInvalid checks that err is an InvalidArgument status whose message
// starts with "field: ".
func wantInvalid(t *testing.T, err error, field string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want InvalidArgument on %s", field)
	}
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("err %v (%T) is not a status", err, err)
	}
	if st.Code() != codes.InvalidArgument {
		t.Errorf("code %s, want InvalidArgument (%s)", st.Code(), st.Message())
	}
	if !strings.HasPrefix(st.Message(), field+": ") {
		t.Errorf("message %q does not start with %q", st.Message(), field+": ")
	}
}

type createCase struct {
	name  string
	req   *vecnetv1.CreateInterfaceRequest
	want  *createInterface
	field string // for invalid requests
}

func okCreate() *vecnetv1.CreateInterfaceRequest {
	return &vecnetv1.CreateInterfaceRequest{Netns: "pod1", HostIf: "eth0", HostAddrs: []string{"10.0.0.2/32"}}
}

func modCreate(f func(r *vecnetv1.CreateInterfaceRequest)) *vecnetv1.CreateInterfaceRequest {
	r := okCreate()
	f(r)
	return r
}

func TestParseCreateInterface(t *testing.T) {
	valid := []createCase{
		{name: "minimal", req: okCreate(), want: &createInterface{dev: tun.Config{
			Kind: tun.Tun, Netns: "pod1", Name: "eth0", Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.2/32")},
			MTU: 1500, Queues: 1, DefaultRoute: true,
		}}},
		{name: "everything", req: &vecnetv1.CreateInterfaceRequest{
			Kind: vecnetv1.InterfaceKind_INTERFACE_KIND_TAP, Netns: "/proc/1/ns/net", HostIf: "eth1",
			HostAddrs: []string{"fd00::5/64", "10.1.2.3/24"}, Mtu: 9000, Queues: 64, Vrf: 3,
			Name: "pod-a.eth1", NoDefaultRoute: true,
		}, want: &createInterface{vrf: 3, name: "pod-a.eth1", dev: tun.Config{
			Kind: tun.Tap, Netns: "/proc/1/ns/net", Name: "eth1",
			Addrs: []netip.Prefix{netip.MustParsePrefix("fd00::5/64"), netip.MustParsePrefix("10.1.2.3/24")},
			MTU:   9000, Queues: 64,
		}}},
		{name: "explicit tun, minimum mtu, 15-byte names", req: &vecnetv1.CreateInterfaceRequest{
			Kind: vecnetv1.InterfaceKind_INTERFACE_KIND_TUN, Netns: "n", HostIf: "abcdefghijklmno",
			HostAddrs: []string{"192.168.0.1/16"}, Mtu: MinMTU, Name: "ABCDEFGHIJKLMNO",
		}, want: &createInterface{name: "ABCDEFGHIJKLMNO", dev: tun.Config{
			Kind: tun.Tun, Netns: "n", Name: "abcdefghijklmno",
			Addrs: []netip.Prefix{netip.MustParsePrefix("192.168.0.1/16")}, MTU: MinMTU, Queues: 1, DefaultRoute: true,
		}}},
		{name: "ipv6 at 1280", req: modCreate(func(r *vecnetv1.CreateInterfaceRequest) {
			r.HostAddrs = []string{"2001:db8::1/128"}
			r.Mtu = 1280
			r.Netns = "..x"
		}), want: &createInterface{dev: tun.Config{
			Kind: tun.Tun, Netns: "..x", Name: "eth0",
			Addrs: []netip.Prefix{netip.MustParsePrefix("2001:db8::1/128")}, MTU: 1280, Queues: 1, DefaultRoute: true,
		}}},
		{name: "max mtu", req: modCreate(func(r *vecnetv1.CreateInterfaceRequest) { r.Mtu = MaxMTU }), want: &createInterface{dev: tun.Config{
			Kind: tun.Tun, Netns: "pod1", Name: "eth0", Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.2/32")},
			MTU: MaxMTU, Queues: 1, DefaultRoute: true,
		}}},
	}
	for _, c := range valid {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseCreateInterface(c.req)
			if err != nil {
				t.Fatalf("err %v", err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}

	type m = func(r *vecnetv1.CreateInterfaceRequest)
	invalid := []struct {
		name  string
		mod   m
		field string
	}{
		{"unknown kind", func(r *vecnetv1.CreateInterfaceRequest) { r.Kind = 7 }, "kind"},
		{"negative kind", func(r *vecnetv1.CreateInterfaceRequest) { r.Kind = -1 }, "kind"},
		{"no netns", func(r *vecnetv1.CreateInterfaceRequest) { r.Netns = "" }, "netns"},
		{"relative path", func(r *vecnetv1.CreateInterfaceRequest) { r.Netns = "run/netns/x" }, "netns"},
		{"netns .", func(r *vecnetv1.CreateInterfaceRequest) { r.Netns = "." }, "netns"},
		{"netns ..", func(r *vecnetv1.CreateInterfaceRequest) { r.Netns = ".." }, "netns"},
		{"netns NUL", func(r *vecnetv1.CreateInterfaceRequest) { r.Netns = "a\x00b" }, "netns"},
		{"netns path NUL", func(r *vecnetv1.CreateInterfaceRequest) { r.Netns = "/proc/1\x00/ns/net" }, "netns"},
		{"no host_if", func(r *vecnetv1.CreateInterfaceRequest) { r.HostIf = "" }, "host_if"},
		{"host_if 16 bytes", func(r *vecnetv1.CreateInterfaceRequest) { r.HostIf = "abcdefghijklmnop" }, "host_if"},
		{"host_if 16 bytes utf-8", func(r *vecnetv1.CreateInterfaceRequest) { r.HostIf = "ééééééééé" }, "host_if"},
		{"host_if slash", func(r *vecnetv1.CreateInterfaceRequest) { r.HostIf = "a/b" }, "host_if"},
		{"host_if colon", func(r *vecnetv1.CreateInterfaceRequest) { r.HostIf = "eth0:1" }, "host_if"},
		{"host_if space", func(r *vecnetv1.CreateInterfaceRequest) { r.HostIf = "eth 0" }, "host_if"},
		{"host_if tab", func(r *vecnetv1.CreateInterfaceRequest) { r.HostIf = "eth\t0" }, "host_if"},
		{"host_if cr", func(r *vecnetv1.CreateInterfaceRequest) { r.HostIf = "eth\r0" }, "host_if"},
		{"host_if vt", func(r *vecnetv1.CreateInterfaceRequest) { r.HostIf = "eth\v0" }, "host_if"},
		{"host_if ff", func(r *vecnetv1.CreateInterfaceRequest) { r.HostIf = "eth\f0" }, "host_if"},
		{"host_if NUL", func(r *vecnetv1.CreateInterfaceRequest) { r.HostIf = "eth\x000" }, "host_if"},
		{"host_if nbsp", func(r *vecnetv1.CreateInterfaceRequest) { r.HostIf = "eth\u00a00" }, "host_if"},
		{"host_if .", func(r *vecnetv1.CreateInterfaceRequest) { r.HostIf = "." }, "host_if"},
		{"host_if ..", func(r *vecnetv1.CreateInterfaceRequest) { r.HostIf = ".." }, "host_if"},
		{"name too long", func(r *vecnetv1.CreateInterfaceRequest) { r.Name = "a-very-long-name0" }, "name"},
		{"name colon", func(r *vecnetv1.CreateInterfaceRequest) { r.Name = "a:b" }, "name"},
		{"name ..", func(r *vecnetv1.CreateInterfaceRequest) { r.Name = ".." }, "name"},
		{"no addresses", func(r *vecnetv1.CreateInterfaceRequest) { r.HostAddrs = nil }, "host_addrs"},
		{"empty address", func(r *vecnetv1.CreateInterfaceRequest) { r.HostAddrs = []string{""} }, "host_addrs[0]"},
		{"no prefix length", func(r *vecnetv1.CreateInterfaceRequest) { r.HostAddrs = []string{"10.0.0.2"} }, "host_addrs[0]"},
		{"bad prefix length", func(r *vecnetv1.CreateInterfaceRequest) { r.HostAddrs = []string{"10.0.0.2/33"} }, "host_addrs[0]"},
		{"garbage", func(r *vecnetv1.CreateInterfaceRequest) { r.HostAddrs = []string{"10.0.0.2/24", "x"} }, "host_addrs[1]"},
		{"zone", func(r *vecnetv1.CreateInterfaceRequest) { r.HostAddrs = []string{"fe80::1%eth0/64"} }, "host_addrs[0]"},
		{"4in6", func(r *vecnetv1.CreateInterfaceRequest) { r.HostAddrs = []string{"::ffff:10.0.0.2/128"} }, "host_addrs[0]"},
		{"duplicate", func(r *vecnetv1.CreateInterfaceRequest) { r.HostAddrs = []string{"10.0.0.2/32", "10.0.0.2/24"} }, "host_addrs[1]"},
		{"two ipv4", func(r *vecnetv1.CreateInterfaceRequest) { r.HostAddrs = []string{"10.0.0.2/32", "10.0.0.3/32"} }, "host_addrs[1]"},
		{"two ipv6", func(r *vecnetv1.CreateInterfaceRequest) {
			r.HostAddrs = []string{"fd00::1/64", "10.0.0.3/32", "fd00::2/64"}
		}, "host_addrs[2]"},
		{"unspecified", func(r *vecnetv1.CreateInterfaceRequest) { r.HostAddrs = []string{"0.0.0.0/0"} }, "host_addrs[0]"},
		{"unspecified v6", func(r *vecnetv1.CreateInterfaceRequest) { r.HostAddrs = []string{"::/0"} }, "host_addrs[0]"},
		{"multicast", func(r *vecnetv1.CreateInterfaceRequest) { r.HostAddrs = []string{"224.0.0.5/32"} }, "host_addrs[0]"},
		{"loopback", func(r *vecnetv1.CreateInterfaceRequest) { r.HostAddrs = []string{"127.0.0.2/8"} }, "host_addrs[0]"},
		{"link-local", func(r *vecnetv1.CreateInterfaceRequest) { r.HostAddrs = []string{"fe80::2/64"} }, "host_addrs[0]"},
		{"mtu too small", func(r *vecnetv1.CreateInterfaceRequest) { r.Mtu = MinMTU - 1 }, "mtu"},
		{"mtu too large", func(r *vecnetv1.CreateInterfaceRequest) { r.Mtu = MaxMTU + 1 }, "mtu"},
		{"mtu huge", func(r *vecnetv1.CreateInterfaceRequest) { r.Mtu = 1 << 31 }, "mtu"},
		{"mtu below ipv6 minimum", func(r *vecnetv1.CreateInterfaceRequest) {
			r.HostAddrs = []string{"10.0.0.2/32", "fd00::2/64"}
			r.Mtu = 1279
		}, "mtu"},
		{"too many queues", func(r *vecnetv1.CreateInterfaceRequest) { r.Queues = MaxQueues + 1 }, "queues"},
	}
	for _, c := range invalid {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseCreateInterface(modCreate(c.mod))
			wantInvalid(t, err, c.field)
			if got != nil {
				t.Errorf("result %+v with error", got)
			}
		})
	}
}

var testIfs = map[string]uint32{"tun0": 1, "tap0": 2}

func testIfIndex(name string) (uint32, bool) {
	i, ok := testIfs[name]
	return i, ok
}

func TestParseRoutes(t *testing.T) {
	nh := func(ip, ifc string, w uint32) *vecnetv1.NextHop {
		return &vecnetv1.NextHop{Ip: ip, Interface: ifc, Weight: w}
	}
	p := netip.MustParsePrefix
	a := netip.MustParseAddr
	many := func(n int) []*vecnetv1.NextHop {
		var out []*vecnetv1.NextHop
		for i := range n {
			out = append(out, nh("10.0.0."+strconv.Itoa(i+1), "", 0))
		}
		return out
	}
	manyPaths := func(n int) []tables.Path {
		var out []tables.Path
		for i := range n {
			out = append(out, tables.Path{NextHop: a("10.0.0." + strconv.Itoa(i+1)), Weight: 1})
		}
		return out
	}
	valid := []struct {
		name      string
		routes    []*vecnetv1.Route
		forDelete bool
		want      []tables.Route
	}{
		{"empty batch", nil, false, []tables.Route{}},
		{"via", []*vecnetv1.Route{{Prefix: "10.0.0.0/8", NextHops: []*vecnetv1.NextHop{nh("192.168.1.1", "", 0)}}},
			false, []tables.Route{{Prefix: p("10.0.0.0/8"), Source: tables.SourceStatic, Paths: []tables.Path{{NextHop: a("192.168.1.1"), Weight: 1}}}}},
		{"dev, via+dev, weights, vrf", []*vecnetv1.Route{
			{Prefix: "0.0.0.0/0", Vrf: 7, NextHops: []*vecnetv1.NextHop{nh("", "tun0", 3), nh("10.0.0.1", "tap0", 1000)}},
			{Prefix: "2001:db8::/32", NextHops: []*vecnetv1.NextHop{nh("fe80::1", "tap0", 0)}},
			{Prefix: "192.0.2.1/32", NextHops: []*vecnetv1.NextHop{nh("", "tap0", 1)}},
		}, false, []tables.Route{
			{Prefix: p("0.0.0.0/0"), VRF: 7, Source: tables.SourceStatic, Paths: []tables.Path{{Interface: 1, Weight: 3}, {NextHop: a("10.0.0.1"), Interface: 2, Weight: 1000}}},
			{Prefix: p("2001:db8::/32"), Source: tables.SourceStatic, Paths: []tables.Path{{NextHop: a("fe80::1"), Interface: 2, Weight: 1}}},
			{Prefix: p("192.0.2.1/32"), Source: tables.SourceStatic, Paths: []tables.Path{{Interface: 2, Weight: 1}}},
		}},
		{"64 next hops", []*vecnetv1.Route{{Prefix: "10.0.0.0/8", NextHops: many(64)}},
			false, []tables.Route{{Prefix: p("10.0.0.0/8"), Source: tables.SourceStatic, Paths: manyPaths(64)}}},
		{"delete without next hops", []*vecnetv1.Route{{Prefix: "10.0.0.0/8", Vrf: 2}, {Prefix: "::/0"}},
			true, []tables.Route{{Prefix: p("10.0.0.0/8"), VRF: 2, Source: tables.SourceStatic}, {Prefix: p("::/0"), Source: tables.SourceStatic}}},
		{"sources", []*vecnetv1.Route{
			{Prefix: "10.0.0.0/8", Source: "bgp", NextHops: []*vecnetv1.NextHop{nh("192.168.1.1", "", 0)}},
			{Prefix: "10.0.0.0/8", Source: "static", NextHops: []*vecnetv1.NextHop{nh("192.168.1.2", "", 0)}},
		}, false, []tables.Route{
			{Prefix: p("10.0.0.0/8"), Source: tables.SourceBGP, Paths: []tables.Path{{NextHop: a("192.168.1.1"), Weight: 1}}},
			{Prefix: p("10.0.0.0/8"), Source: tables.SourceStatic, Paths: []tables.Path{{NextHop: a("192.168.1.2"), Weight: 1}}},
		}},
		{"delete bgp", []*vecnetv1.Route{{Prefix: "10.0.0.0/8", Source: "bgp"}, {Prefix: "::/0", Source: "static"}},
			true, []tables.Route{{Prefix: p("10.0.0.0/8"), Source: tables.SourceBGP}, {Prefix: p("::/0"), Source: tables.SourceStatic}}},
	}
	for _, c := range valid {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseRoutes(c.routes, c.forDelete, testIfIndex)
			if err != nil {
				t.Fatalf("err %v", err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}

	ok := &vecnetv1.Route{Prefix: "10.0.0.0/8", NextHops: []*vecnetv1.NextHop{nh("192.168.1.1", "", 0)}}
	r := func(prefix string, nhs ...*vecnetv1.NextHop) *vecnetv1.Route {
		return &vecnetv1.Route{Prefix: prefix, NextHops: nhs}
	}
	invalid := []struct {
		name      string
		routes    []*vecnetv1.Route
		forDelete bool
		field     string
	}{
		{"null route", []*vecnetv1.Route{ok, nil}, false, "routes[1]"},
		{"no prefix", []*vecnetv1.Route{r("", nh("10.0.0.1", "", 0))}, false, "routes[0].prefix"},
		{"bad prefix", []*vecnetv1.Route{ok, ok, r("10.0.0.0/33", nh("10.0.0.1", "", 0))}, false, "routes[2].prefix"},
		{"no length", []*vecnetv1.Route{r("10.0.0.0", nh("10.0.0.1", "", 0))}, false, "routes[0].prefix"},
		{"host bits", []*vecnetv1.Route{r("10.0.0.1/8", nh("10.0.0.1", "", 0))}, false, "routes[0].prefix"},
		{"host bits on delete", []*vecnetv1.Route{r("10.0.0.1/8")}, true, "routes[0].prefix"},
		{"4in6", []*vecnetv1.Route{r("::ffff:10.0.0.0/104", nh("::ffff:10.0.0.1", "", 0))}, false, "routes[0].prefix"},
		{"zone", []*vecnetv1.Route{r("fe80::%eth0/64", nh("fe80::1", "", 0))}, false, "routes[0].prefix"},
		{"no next hops", []*vecnetv1.Route{ok, r("10.0.0.0/8")}, false, "routes[1].next_hops"},
		{"null next hop", []*vecnetv1.Route{r("10.0.0.0/8", nh("10.0.0.1", "", 0), nil)}, false, "routes[0].next_hops[1]"},
		{"empty next hop", []*vecnetv1.Route{r("10.0.0.0/8", nh("", "", 5))}, false, "routes[0].next_hops[0]"},
		{"bad ip", []*vecnetv1.Route{r("10.0.0.0/8", nh("10.0.0", "", 0))}, false, "routes[0].next_hops[0].ip"},
		{"ip with length", []*vecnetv1.Route{r("10.0.0.0/8", nh("10.0.0.1/32", "", 0))}, false, "routes[0].next_hops[0].ip"},
		{"ip zone", []*vecnetv1.Route{r("fd00::/8", nh("fe80::1%eth0", "", 0))}, false, "routes[0].next_hops[0].ip"},
		{"ip 4in6", []*vecnetv1.Route{r("fd00::/8", nh("::ffff:1.2.3.4", "", 0))}, false, "routes[0].next_hops[0].ip"},
		{"family mismatch", []*vecnetv1.Route{r("fd00::/8", nh("10.0.0.1", "", 0))}, false, "routes[0].next_hops[0].ip"},
		{"family mismatch v4", []*vecnetv1.Route{r("10.0.0.0/8", nh("10.0.0.1", "", 0), nh("fd00::1", "", 0))}, false, "routes[0].next_hops[1].ip"},
		{"unspecified", []*vecnetv1.Route{r("10.0.0.0/8", nh("0.0.0.0", "", 0))}, false, "routes[0].next_hops[0].ip"},
		{"multicast", []*vecnetv1.Route{r("fd00::/8", nh("ff02::1", "tap0", 0))}, false, "routes[0].next_hops[0].ip"},
		{"unknown interface", []*vecnetv1.Route{r("10.0.0.0/8", nh("", "eth9", 0))}, false, "routes[0].next_hops[0].interface"},
		{"unknown interface on delete", []*vecnetv1.Route{r("10.0.0.0/8", nh("", "eth9", 0))}, true, "routes[0].next_hops[0].interface"},
		{"weight", []*vecnetv1.Route{r("10.0.0.0/8", nh("10.0.0.1", "", 1001))}, false, "routes[0].next_hops[0].weight"},
		{"65 next hops", []*vecnetv1.Route{{Prefix: "10.0.0.0/8", NextHops: many(65)}}, false, "routes[0].next_hops"},
		{"source connected", []*vecnetv1.Route{ok, {Prefix: "10.0.0.0/8", Source: "connected", NextHops: []*vecnetv1.NextHop{nh("10.0.0.1", "", 0)}}}, false, "routes[1].source"},
		{"source case", []*vecnetv1.Route{{Prefix: "10.0.0.0/8", Source: "BGP", NextHops: []*vecnetv1.NextHop{nh("10.0.0.1", "", 0)}}}, false, "routes[0].source"},
		{"source on delete", []*vecnetv1.Route{{Prefix: "10.0.0.0/8", Source: "uplink"}}, true, "routes[0].source"},
	}
	for _, c := range invalid {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseRoutes(c.routes, c.forDelete, testIfIndex)
			wantInvalid(t, err, c.field)
			if got != nil {
				t.Errorf("result %+v with error", got)
			}
		})
	}
}

func TestParseAddress(t *testing.T) {
	for _, c := range []struct {
		ifc, addr string
		want      netip.Prefix
	}{
		{"tun0", "10.0.0.1/24", netip.MustParsePrefix("10.0.0.1/24")}, // host bits kept
		{"tap0", "192.168.255.254/32", netip.MustParsePrefix("192.168.255.254/32")},
		{"x", "100.64.0.1/10", netip.MustParsePrefix("100.64.0.1/10")},
		{"abcdefghijklmno", "fd00::1/64", netip.MustParsePrefix("fd00::1/64")},
		{"tap0", "2001:db8::1/128", netip.MustParsePrefix("2001:db8::1/128")},
		{"tap0", "fe80::1/64", netip.MustParsePrefix("fe80::1/64")},
		{"tap0", "169.254.1.1/16", netip.MustParsePrefix("169.254.1.1/16")},
	} {
		name, p, err := parseAddress(&vecnetv1.AddressRequest{Interface: c.ifc, Address: c.addr})
		if err != nil {
			t.Errorf("%s %s: %v", c.ifc, c.addr, err)
			continue
		}
		if name != c.ifc || p != c.want {
			t.Errorf("%s %s: got %s %s", c.ifc, c.addr, name, p)
		}
	}
	for _, c := range []struct {
		ifc, addr, field string
	}{
		{"", "10.0.0.1/24", "interface"},
		{"abcdefghijklmnop", "10.0.0.1/24", "interface"},
		{"a/b", "10.0.0.1/24", "interface"},
		{"tun0", "", "address"},
		{"tun0", "10.0.0.1", "address"},
		{"tun0", "10.0.0.1/40", "address"},
		{"tun0", "fe80::1%eth0/64", "address"},
		{"tun0", "::ffff:10.0.0.1/120", "address"},
		{"tun0", "0.0.0.0/0", "address"},
		{"tun0", "::/0", "address"},
		{"tun0", "::1/128", "address"},
		{"tun0", "127.0.0.1/8", "address"},
		{"tun0", "224.0.0.1/4", "address"},
		{"tun0", "ff02::1/16", "address"},
		{"tun0", "255.255.255.255/32", "address"},
		{"", "", "interface"}, // the first bad field is named
	} {
		name, p, err := parseAddress(&vecnetv1.AddressRequest{Interface: c.ifc, Address: c.addr})
		t.Run(c.ifc+" "+c.addr, func(t *testing.T) {
			wantInvalid(t, err, c.field)
			if name != "" || p.IsValid() {
				t.Errorf("result %q %s with error", name, p)
			}
		})
	}
}

// ---- fuzzing ----

// fuzzField checks a failed parse: an InvalidArgument status whose message
// starts with "FIELD: " where FIELD matches re and, if it names indices,
// they exist in the request (bounds checks them).
func fuzzField(t *testing.T, err error, re *regexp.Regexp, bounds func(idx []int) bool) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("err %v (%T) is not a status", err, err)
	}
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("code %s, want InvalidArgument: %s", st.Code(), st.Message())
	}
	field, _, found := strings.Cut(st.Message(), ": ")
	if !found {
		t.Fatalf("message %q has no field", st.Message())
	}
	m := re.FindStringSubmatch(field)
	if m == nil {
		t.Fatalf("message %q: %q is not a field of the request", st.Message(), field)
	}
	var idx []int
	for _, s := range m[1:] {
		if s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("field %q: %v", field, err)
		}
		idx = append(idx, n)
	}
	if bounds != nil && !bounds(idx) {
		t.Fatalf("message %q names an index outside the request", st.Message())
	}
}

var createFields = regexp.MustCompile(`^(?:kind|netns|host_if|name|mtu|queues|host_addrs(?:\[(\d+)\])?)$`)

func FuzzParseCreateInterface(f *testing.F) {
	f.Add(int32(1), "pod1", "eth0", "10.0.0.2/32", "", uint32(0), uint32(0), uint32(0), "", false)
	f.Add(int32(2), "/proc/1/ns/net", "eth1", "10.1.2.3/24", "fd00::5/64", uint32(9000), uint32(4), uint32(3), "pod-a", true)
	f.Add(int32(0), "..", "eth0", "10.0.0.2/32", "10.0.0.2/32", uint32(1279), uint32(65), uint32(0), "a:b", false)
	f.Add(int32(9), "a/b", "abcdefghijklmnop", "fe80::1%eth0/64", "::ffff:1.2.3.4/128", uint32(1<<31), uint32(0), uint32(0), "x", false)
	f.Add(int32(0), "n", "e\v", "fd00::1/64", "fd00::2/64", uint32(1280), uint32(1), uint32(0), "", false)
	f.Fuzz(func(t *testing.T, kind int32, netns, hostIf, addr1, addr2 string, mtu, queues, vrf uint32, name string, noDefault bool) {
		r := &vecnetv1.CreateInterfaceRequest{
			Kind: vecnetv1.InterfaceKind(kind), Netns: netns, HostIf: hostIf, Mtu: mtu, Queues: queues,
			Vrf: vrf, Name: name, NoDefaultRoute: noDefault,
		}
		if addr1 != "" {
			r.HostAddrs = append(r.HostAddrs, addr1)
		}
		if addr2 != "" {
			r.HostAddrs = append(r.HostAddrs, addr2)
		}
		c, err := parseCreateInterface(r)
		if err != nil {
			if c != nil {
				t.Fatalf("result with error %v", err)
			}
			fuzzField(t, err, createFields, func(idx []int) bool { return len(idx) == 0 || idx[0] < len(r.HostAddrs) })
			return
		}
		if c.dev.MTU < MinMTU || c.dev.MTU > MaxMTU {
			t.Fatalf("mtu %d", c.dev.MTU)
		}
		if c.dev.Queues < 1 || c.dev.Queues > MaxQueues {
			t.Fatalf("queues %d", c.dev.Queues)
		}
		if c.dev.Kind != tun.Tun && c.dev.Kind != tun.Tap {
			t.Fatalf("kind %v", c.dev.Kind)
		}
		for _, n := range []string{c.dev.Name, c.name} {
			if len(n) > 15 || n == "." || n == ".." || badIfNameByte(n) {
				t.Fatalf("interface name %q accepted", n)
			}
		}
		if c.dev.Name == "" || c.dev.Netns == "" || strings.ContainsRune(c.dev.Netns, 0) {
			t.Fatalf("host_if %q netns %q", c.dev.Name, c.dev.Netns)
		}
		if len(c.dev.Addrs) == 0 || len(c.dev.Addrs) != len(r.HostAddrs) {
			t.Fatalf("%d addresses from %d", len(c.dev.Addrs), len(r.HostAddrs))
		}
		fams := map[bool]int{}
		for _, p := range c.dev.Addrs {
			a := p.Addr()
			fams[a.Is4()]++
			if !p.IsValid() || a.Zone() != "" || a.Is4In6() || a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() || a.IsLinkLocalUnicast() {
				t.Fatalf("address %s accepted", p)
			}
		}
		if fams[true] > 1 || fams[false] > 1 {
			t.Fatalf("addresses %v: more than one per family", c.dev.Addrs)
		}
		if fams[false] > 0 && c.dev.MTU < 1280 {
			t.Fatalf("ipv6 with mtu %d", c.dev.MTU)
		}
		if c.vrf != vrf || c.name != name || c.dev.DefaultRoute == noDefault {
			t.Fatalf("fields not copied: %+v", c)
		}
	})
}

var routeFields = regexp.MustCompile(`^routes\[(\d+)\](?:\.prefix|\.next_hops(?:\[(\d+)\](?:\.ip|\.interface|\.weight)?)?)?$`)

func FuzzParseRoutes(f *testing.F) {
	f.Add("10.0.0.0/8", "192.168.1.1", "", uint32(0), "", "", uint32(0), "fd00::/8", uint32(0), false, uint8(0))
	f.Add("0.0.0.0/0", "10.0.0.1", "tap0", uint32(1000), "", "tun0", uint32(3), "::/0", uint32(7), false, uint8(0))
	f.Add("10.0.0.1/8", "x", "eth9", uint32(1001), "fd00::1", "", uint32(0), "::ffff:0.0.0.0/96", uint32(0), true, uint8(1))
	f.Add("2001:db8::/32", "fe80::1%eth0", "", uint32(0), "ff02::1", "", uint32(0), "", uint32(0), false, uint8(2))
	f.Add("10.0.0.0/8", "", "", uint32(0), "0.0.0.0", "", uint32(0), "10.0.0.0", uint32(0), false, uint8(3))
	f.Add("10.0.0.0/8", "10.0.0.1", "", uint32(0), "", "", uint32(0), "10.0.0.0/8", uint32(0), false, uint8(4|8))
	f.Fuzz(func(t *testing.T, prefix, ip1, if1 string, w1 uint32, ip2, if2 string, w2 uint32, prefix2 string, vrf uint32, forDelete bool, shape uint8) {
		// shape: bit 0 appends a null route, bit 1 a null next hop,
		// bit 2 repeats next hop 1 to 70 paths, bit 3 drops route 1's hops.
		hops := []*vecnetv1.NextHop{{Ip: ip1, Interface: if1, Weight: w1}}
		if ip2 != "" || if2 != "" || w2 != 0 {
			hops = append(hops, &vecnetv1.NextHop{Ip: ip2, Interface: if2, Weight: w2})
		}
		if shape&2 != 0 {
			hops = append(hops, nil)
		}
		if shape&4 != 0 {
			for len(hops) < 70 {
				hops = append(hops, hops[0])
			}
		}
		if shape&8 != 0 {
			hops = nil
		}
		rs := []*vecnetv1.Route{
			{Prefix: prefix, Vrf: vrf, NextHops: hops},
			{Prefix: prefix2, Vrf: vrf + 1, NextHops: []*vecnetv1.NextHop{{Ip: ip2, Interface: if1, Weight: w1}}},
		}
		if shape&1 != 0 {
			rs = append(rs, nil)
		}
		out, err := parseRoutes(rs, forDelete, testIfIndex)
		if err != nil {
			if out != nil {
				t.Fatalf("result with error %v", err)
			}
			fuzzField(t, err, routeFields, func(idx []int) bool {
				if idx[0] >= len(rs) || rs[idx[0]] == nil && len(idx) > 1 {
					return false
				}
				return len(idx) < 2 || idx[1] < len(rs[idx[0]].NextHops)
			})
			return
		}
		if len(out) != len(rs) {
			t.Fatalf("%d routes from %d", len(out), len(rs))
		}
		for i, r := range out {
			if !r.Prefix.IsValid() || r.Prefix.Masked() != r.Prefix || r.Prefix.Addr().Zone() != "" || r.Prefix.Addr().Is4In6() {
				t.Fatalf("route %d: prefix %s", i, r.Prefix)
			}
			if r.Source != tables.SourceStatic || r.VRF != rs[i].Vrf {
				t.Fatalf("route %d: source %s vrf %d", i, r.Source, r.VRF)
			}
			if len(r.Paths) > 64 || (!forDelete && len(r.Paths) == 0) || len(r.Paths) != len(rs[i].NextHops) {
				t.Fatalf("route %d: %d paths from %d next hops", i, len(r.Paths), len(rs[i].NextHops))
			}
			for j, p := range r.Paths {
				if !p.NextHop.IsValid() && p.Interface == 0 {
					t.Fatalf("route %d path %d: empty", i, j)
				}
				if p.NextHop.IsValid() && (p.NextHop.Is4() != r.Prefix.Addr().Is4() || p.NextHop.Zone() != "" || p.NextHop.IsUnspecified() || p.NextHop.IsMulticast()) {
					t.Fatalf("route %d path %d: next hop %s for %s", i, j, p.NextHop, r.Prefix)
				}
				if p.Weight < 1 || p.Weight > 1000 {
					t.Fatalf("route %d path %d: weight %d", i, j, p.Weight)
				}
			}
		}
	})
}

var addressFields = regexp.MustCompile(`^(?:interface|address)$`)

func FuzzParseAddress(f *testing.F) {
	f.Add("tun0", "10.0.0.1/24")
	f.Add("abcdefghijklmnop", "fd00::1/64")
	f.Add("a/b", "fe80::1%eth0/64")
	f.Add("tap0", "::ffff:10.0.0.1/120")
	f.Add("tap0", "255.255.255.255/32")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, ifc, addr string) {
		name, p, err := parseAddress(&vecnetv1.AddressRequest{Interface: ifc, Address: addr})
		if err != nil {
			if name != "" || p.IsValid() {
				t.Fatalf("result with error %v", err)
			}
			fuzzField(t, err, addressFields, nil)
			return
		}
		if name != ifc || len(name) == 0 || len(name) > 15 || badIfNameByte(name) {
			t.Fatalf("interface %q accepted", name)
		}
		a := p.Addr()
		if !p.IsValid() || a.Zone() != "" || a.Is4In6() || a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() {
			t.Fatalf("address %s accepted", p)
		}
		if q, err := netip.ParsePrefix(addr); err != nil || q != p {
			t.Fatalf("address %q parsed as %s", addr, p)
		}
	})
}
