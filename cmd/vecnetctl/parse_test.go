package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	vecnetv1 "github.com/vecnet/vecnet/api/vecnet/v1"
)

func args(s string) []string { return strings.Fields(s) }

// checkParse compares a parse result with the wanted message, or checks that
// a usage error mentioning wantErr was returned.
func checkParse(t *testing.T, in string, got proto.Message, err error, want proto.Message, wantErr string) {
	t.Helper()
	if wantErr != "" {
		var ue *usageError
		if !errors.As(err, &ue) {
			t.Fatalf("%q: got %v, %v; want usage error containing %q", in, got, err, wantErr)
		}
		if !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("%q: error %q does not contain %q", in, err, wantErr)
		}
		return
	}
	if err != nil {
		t.Fatalf("%q: %v", in, err)
	}
	if !proto.Equal(got, want) {
		t.Fatalf("%q:\n got %v\nwant %v", in, got, want)
	}
}

const (
	tun = vecnetv1.InterfaceKind_INTERFACE_KIND_TUN
	tap = vecnetv1.InterfaceKind_INTERFACE_KIND_TAP
)

func TestParseInterfaceCreate(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    *vecnetv1.CreateInterfaceRequest
		wantErr string
	}{
		{in: "tun --netns pod1 --host-if eth0 --host-addr 10.1.0.5/32",
			want: &vecnetv1.CreateInterfaceRequest{Kind: tun, Netns: "pod1", HostIf: "eth0", HostAddrs: []string{"10.1.0.5/32"}}},
		{in: "--netns /proc/42/ns/net tap --host-if eth0 --host-addr 10.1.0.5/24,fd00::5/64 --mtu 9000 --queues 4 --vrf 7 --name pod1 --no-default-route",
			want: &vecnetv1.CreateInterfaceRequest{Kind: tap, Netns: "/proc/42/ns/net", HostIf: "eth0",
				HostAddrs: []string{"10.1.0.5/24", "fd00::5/64"}, Mtu: 9000, Queues: 4, Vrf: 7, Name: "pod1", NoDefaultRoute: true}},
		{in: "tun --netns=pod1 --host-if=eth0 --host-addr=10.1.0.5 --host-addr FD00::5",
			want: &vecnetv1.CreateInterfaceRequest{Kind: tun, Netns: "pod1", HostIf: "eth0", HostAddrs: []string{"10.1.0.5/32", "fd00::5/128"}}},
		{in: "-netns pod1 -host-if eth0 -host-addr 10.1.0.5/32 tun",
			want: &vecnetv1.CreateInterfaceRequest{Kind: tun, Netns: "pod1", HostIf: "eth0", HostAddrs: []string{"10.1.0.5/32"}}},
		{in: "--netns pod1 --host-if eth0 --host-addr 10.1.0.5/32", wantErr: "missing interface kind"},
		{in: "veth --netns pod1 --host-if eth0 --host-addr 10.1.0.5/32", wantErr: `invalid interface kind "veth"`},
		{in: "tun tap --netns pod1 --host-if eth0 --host-addr 10.1.0.5/32", wantErr: `unexpected argument "tap"`},
		{in: "tun --host-if eth0 --host-addr 10.1.0.5/32", wantErr: "missing --netns"},
		{in: "tun --netns a/b --host-if eth0 --host-addr 10.1.0.5/32", wantErr: "absolute path"},
		{in: "tun --netns pod1 --host-addr 10.1.0.5/32", wantErr: "missing --host-if"},
		{in: "tun --netns pod1 --host-if averyveryverylongname --host-addr 10.1.0.5/32", wantErr: "longer than 15"},
		{in: "tun --netns pod1 --host-if eth0", wantErr: "missing --host-addr"},
		{in: "tun --netns pod1 --host-if eth0 --host-addr 10.1.0.5/33", wantErr: `invalid address "10.1.0.5/33"`},
		{in: "tun --netns pod1 --host-if eth0 --host-addr 10.1.0.5/32,", wantErr: "empty element"},
		{in: "tun --netns pod1 --host-if eth0 --host-addr 10.1.0.5/32 --mtu -1", wantErr: "--mtu"},
		{in: "tun --netns pod1 --host-if eth0 --host-addr 10.1.0.5/32 --vrf 4294967296", wantErr: "--vrf"},
		{in: "tun --netns pod1 --host-if eth0 --host-addr 10.1.0.5/32 --name a,b", wantErr: "invalid character"},
		{in: "tun --netns pod1 --host-if eth0 --host-addr 10.1.0.5/32 --bogus", wantErr: "not defined: --bogus"},
		{in: "tun --netns pod1 --host-if eth0 --host-addr", wantErr: "needs an argument"},
	} {
		got, err := parseInterfaceCreate(args(tc.in))
		checkParse(t, tc.in, got, err, tc.want, tc.wantErr)
	}
}

func TestParseInterfaceDeleteAndAddress(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    *vecnetv1.DeleteInterfaceRequest
		wantErr string
	}{
		{in: "tun0", want: &vecnetv1.DeleteInterfaceRequest{Name: "tun0"}},
		{in: "", wantErr: "missing interface NAME"},
		{in: "tun0 tun1", wantErr: `unexpected argument "tun1"`},
		{in: "-- -x", wantErr: "must not start with '-'"},
	} {
		got, err := parseInterfaceDelete(args(tc.in))
		checkParse(t, tc.in, got, err, tc.want, tc.wantErr)
	}
	for _, tc := range []struct {
		in      string
		want    *vecnetv1.AddressRequest
		wantErr string
	}{
		{in: "tap0 10.0.0.1/24", want: &vecnetv1.AddressRequest{Interface: "tap0", Address: "10.0.0.1/24"}},
		{in: "tap0 fd00::1", want: &vecnetv1.AddressRequest{Interface: "tap0", Address: "fd00::1/128"}},
		{in: "tap0", wantErr: "missing CIDR"},
		{in: "", wantErr: "missing interface NAME"},
		{in: "tap0 10.0.0.1/24 x", wantErr: "unexpected argument"},
		{in: "tap0 10.0.0.300/24", wantErr: "invalid address"},
		{in: "tap0 fe80::1%eth0", wantErr: "invalid address"},
	} {
		got, err := parseAddress(args(tc.in))
		checkParse(t, tc.in, got, err, tc.want, tc.wantErr)
	}
}

func routes(rs ...*vecnetv1.Route) *vecnetv1.RoutesRequest {
	return &vecnetv1.RoutesRequest{Routes: rs}
}

func route(prefix string, vrf uint32, nhs ...*vecnetv1.NextHop) *vecnetv1.Route {
	return &vecnetv1.Route{Prefix: prefix, Vrf: vrf, NextHops: nhs}
}

func via(ip, dev string) *vecnetv1.NextHop { return &vecnetv1.NextHop{Ip: ip, Interface: dev} }

func TestParseRouteChange(t *testing.T) {
	for _, tc := range []struct {
		in      string
		add     bool
		want    *vecnetv1.RoutesRequest
		wantErr string
	}{
		{in: "10.0.0.0/8 via 192.168.1.1", add: true,
			want: routes(route("10.0.0.0/8", 0, via("192.168.1.1", "")))},
		{in: "10.0.0.0/8 via 192.168.1.1,192.168.1.2 --vrf 3", add: true,
			want: routes(route("10.0.0.0/8", 3, via("192.168.1.1", ""), via("192.168.1.2", "")))},
		{in: "--vrf 3 10.0.0.0/8 dev tun0", add: true,
			want: routes(route("10.0.0.0/8", 3, via("", "tun0")))},
		{in: "10.0.0.0/8 via 192.168.1.1 dev tap0", add: true,
			want: routes(route("10.0.0.0/8", 0, via("192.168.1.1", "tap0")))},
		{in: "10.0.0.0/8 dev tap0 --vrf=9 via 192.168.1.1,192.168.1.2", add: true,
			want: routes(route("10.0.0.0/8", 9, via("192.168.1.1", "tap0"), via("192.168.1.2", "tap0")))},
		{in: "2001:DB8::/32 via FE80::1 dev tap0", add: true,
			want: routes(route("2001:db8::/32", 0, via("fe80::1", "tap0")))},
		{in: "10.1.2.3 dev tun0", add: true,
			want: routes(route("10.1.2.3/32", 0, via("", "tun0")))},
		{in: "0.0.0.0/0 via 10.0.0.1", add: true,
			want: routes(route("0.0.0.0/0", 0, via("10.0.0.1", "")))},
		{in: "10.0.0.0/8", add: false, want: routes(route("10.0.0.0/8", 0))},
		{in: "10.0.0.0/8 --vrf 2", add: false, want: routes(route("10.0.0.0/8", 2))},
		{in: "10.0.0.0/8 via 1.1.1.1", add: false, want: routes(route("10.0.0.0/8", 0, via("1.1.1.1", "")))},

		{in: "", add: true, wantErr: "missing CIDR"},
		{in: "10.0.0.0/8", add: true, wantErr: "missing next hop"},
		{in: "10.0.0.1/8 via 1.1.1.1", add: true, wantErr: "host bits set (did you mean 10.0.0.0/8?)"},
		{in: "10.0.0.0/33 via 1.1.1.1", add: true, wantErr: `invalid prefix "10.0.0.0/33"`},
		{in: "default via 1.1.1.1", add: true, wantErr: `invalid prefix "default"`},
		{in: "10.0.0.0/8 via", add: true, wantErr: "via: missing IP address"},
		{in: "10.0.0.0/8 dev", add: true, wantErr: "dev: missing interface name"},
		{in: "10.0.0.0/8 via 1.1.1", add: true, wantErr: `invalid IP address "1.1.1"`},
		{in: "10.0.0.0/8 via 1.1.1.1,", add: true, wantErr: "via: empty element"},
		{in: "10.0.0.0/8 via 1.1.1.1,1.1.1.1", add: true, wantErr: "duplicate next hop 1.1.1.1"},
		{in: "10.0.0.0/8 via 1.1.1.1 via 1.1.1.2", add: true, wantErr: "via given twice"},
		{in: "10.0.0.0/8 dev a dev b", add: true, wantErr: "dev given twice"},
		{in: "10.0.0.0/8 gw 1.1.1.1", add: true, wantErr: `unexpected "gw"`},
		{in: "10.0.0.0/8 via fe80::1%eth0", add: true, wantErr: "zones are not supported"},
		{in: "10.0.0.0/8 via 1.1.1.1 --vrf x", add: true, wantErr: `invalid value "x" for flag --vrf`},
		{in: "10.0.0.0/8 via 1.1.1.1 --vrf", add: true, wantErr: "flag needs an argument"},
	} {
		got, err := parseRouteChange(args(tc.in), tc.add)
		checkParse(t, tc.in, got, err, tc.want, tc.wantErr)
	}
}

func TestParseRouteLoad(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    routeLoadOpts
		wantErr string
	}{
		{in: "routes.txt", want: routeLoadOpts{file: "routes.txt"}},
		{in: "routes.txt --vrf 4 --batch 1000", want: routeLoadOpts{file: "routes.txt", vrf: 4, batch: 1000}},
		{in: "--batch=10 -", want: routeLoadOpts{file: "-", batch: 10}},
		{in: "", wantErr: "missing FILE"},
		{in: "a b", wantErr: "unexpected argument"},
		{in: "a --batch -1", wantErr: "--batch must not be negative"},
		{in: "a --batch x", wantErr: "--batch"},
	} {
		got, err := parseRouteLoad(args(tc.in))
		if tc.wantErr != "" {
			var ue *usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: got %v, want usage error %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: got %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseShowAndTrace(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    *vecnetv1.ListRoutesRequest
		wantErr string
	}{
		{in: "", want: &vecnetv1.ListRoutesRequest{}},
		{in: "--vrf 5", want: &vecnetv1.ListRoutesRequest{Vrf: 5}},
		{in: "--all", want: &vecnetv1.ListRoutesRequest{AllVrfs: true}},
		{in: "--vrf 0 --all", wantErr: "mutually exclusive"},
		{in: "10.0.0.0/8", wantErr: "unexpected argument"},
	} {
		got, err := parseShowRoutes(args(tc.in))
		checkParse(t, tc.in, got, err, tc.want, tc.wantErr)
	}
	if all, err := parseShowRuntime(args("--all")); err != nil || !all {
		t.Errorf("show runtime --all: %v %v", all, err)
	}
	if all, err := parseShowRuntime(nil); err != nil || all {
		t.Errorf("show runtime: %v %v", all, err)
	}
	if _, err := parseShowRuntime(args("x")); err == nil {
		t.Error("show runtime x: no error")
	}
	for _, tc := range []struct {
		in      string
		want    *vecnetv1.TraceAddRequest
		wantErr string
	}{
		{in: "50", want: &vecnetv1.TraceAddRequest{Count: 50}},
		{in: "", wantErr: "missing packet count"},
		{in: "0", wantErr: "invalid packet count"},
		{in: "x", wantErr: "invalid packet count"},
		{in: "4294967296", wantErr: "invalid packet count"},
		{in: "1 2", wantErr: "unexpected argument"},
	} {
		got, err := parseTraceAdd(args(tc.in))
		checkParse(t, tc.in, got, err, tc.want, tc.wantErr)
	}
	for _, tc := range []struct {
		in      string
		want    *vecnetv1.VrfRequest
		wantErr string
	}{
		{in: "7", want: &vecnetv1.VrfRequest{Vrf: 7}},
		{in: "", wantErr: "missing VRF"},
		{in: "-1", wantErr: "not defined"},
		{in: "blue", wantErr: "invalid VRF"},
	} {
		got, err := parseVrf(args(tc.in))
		checkParse(t, tc.in, got, err, tc.want, tc.wantErr)
	}
	// Commands without arguments reject them.
	for _, path := range []string{"show interfaces", "show neighbors", "show errors", "show vrfs", "trace show", "trace clear"} {
		c := findCommand(path)
		if _, err := c.parse(nil); err != nil {
			t.Errorf("%s: %v", path, err)
		}
		var ue *usageError
		if _, err := c.parse(args("extra")); !errors.As(err, &ue) {
			t.Errorf("%s extra: got %v, want usage error", path, err)
		}
		if _, err := c.parse(args("-h")); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%s -h: got %v, want flag.ErrHelp", path, err)
		}
	}
}

func TestParsePcap(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    *vecnetv1.PcapRequest
		file    string
		timeout time.Duration
		wantErr string
	}{
		{in: "--interface tun0 --count 100 --file /tmp/x.pcap",
			want: &vecnetv1.PcapRequest{Interface: "tun0", Count: 100}, file: "/tmp/x.pcap"},
		{in: "--interface tun0 --count 5 --file - --timeout 1m",
			want: &vecnetv1.PcapRequest{Interface: "tun0", Count: 5, TimeoutMs: 60000}, file: "-", timeout: time.Minute},
		{in: "--timeout 1500us --interface tun0 --count 5 --file f",
			want: &vecnetv1.PcapRequest{Interface: "tun0", Count: 5, TimeoutMs: 2}, file: "f", timeout: 1500 * time.Microsecond},
		{in: "--count 5 --file f", wantErr: "missing --interface"},
		{in: "--interface tun0 --file f", wantErr: "missing --count"},
		{in: "--interface tun0 --count 0 --file f", wantErr: "missing --count"},
		{in: "--interface tun0 --count 5", wantErr: "missing --file"},
		{in: "--interface tun0 --count 5 --file f --timeout -1s", wantErr: "must not be negative"},
		{in: "--interface tun0 --count 5 --file f --timeout 10", wantErr: "want a duration"},
		{in: "--interface tun0 --count 5 --file f --timeout 2000h", wantErr: "too long"},
		{in: "--interface tun0 --count 5 --file f extra", wantErr: "unexpected argument"},
	} {
		got, err := parsePcap(args(tc.in))
		checkParse(t, tc.in, got.req, err, tc.want, tc.wantErr)
		if tc.wantErr == "" && (got.file != tc.file || got.timeout != tc.timeout) {
			t.Errorf("%q: file %q timeout %v, want %q %v", tc.in, got.file, got.timeout, tc.file, tc.timeout)
		}
	}
}

func TestParseArgsInterspersed(t *testing.T) {
	fs := newFlagSet("t")
	v := fs.Int("n", 0, "")
	pos, err := parseArgs(fs, args("a --n 3 b -- --n c"))
	if err != nil {
		t.Fatal(err)
	}
	if *v != 3 || strings.Join(pos, " ") != "a b --n c" {
		t.Fatalf("n=%d pos=%q", *v, pos)
	}
}

// noDial fails tests that reach the server when they should not.
func noDial(t *testing.T) dialFunc {
	return func(string) (grpc.ClientConnInterface, io.Closer, error) {
		t.Fatal("unexpected dial")
		return nil, nil, nil
	}
}

// TestDispatch checks exit codes and where usage text goes, without a server.
func TestDispatch(t *testing.T) {
	for _, tc := range []struct {
		in         string
		code       int
		stdout     string // substring
		stderr     string // substring
		quietOut   bool   // stdout must be empty
		quietError bool   // stderr must be empty
	}{
		{in: "", code: 2, stderr: "vecnetctl: missing command\n\nusage: vecnetctl interface create", quietOut: true},
		{in: "help", code: 0, stdout: "usage: vecnetctl interface create", quietError: true},
		{in: "-h", code: 0, stdout: "global flags", quietError: true},
		{in: "help route", code: 0, stdout: "route load FILE", quietError: true},
		{in: "help route add", code: 0, stdout: "ECMP", quietError: true},
		{in: "help pcap", code: 0, stdout: "--timeout DURATION", quietError: true},
		{in: "help nope", code: 2, stderr: `unknown command "nope"`},
		{in: "nope", code: 2, stderr: `vecnetctl: unknown command "nope"`},
		{in: "route", code: 2, stderr: "route: missing subcommand (add, del, load)"},
		{in: "route -h", code: 0, stdout: "usage: vecnetctl route add|del", quietError: true},
		{in: "route frob", code: 2, stderr: `unknown subcommand "frob"`},
		{in: "route add -h", code: 0, stdout: "--vrf N", quietError: true},
		{in: "route add --help", code: 0, stdout: "--vrf N", quietError: true},
		{in: "show routes -h", code: 0, stdout: "--all", quietError: true},
		{in: "pcap -h", code: 0, stdout: "--interface NAME", quietError: true},
		{in: "interface create -h", code: 0, stdout: "--host-addr", quietError: true},
		{in: "route add 10.0.0.0/8", code: 2, stderr: "vecnetctl: route add: missing next hop", quietOut: true},
		{in: "route add 10.0.0.0/8", code: 2, stderr: "usage: vecnetctl route add|del CIDR via"},
		{in: "trace add", code: 2, stderr: "usage: vecnetctl trace add N"},
		{in: "--bogus show vrfs", code: 2, stderr: "not defined: --bogus"},
		{in: "--timeout x show vrfs", code: 2, stderr: "--timeout"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), args(tc.in), &stdout, &stderr, noDial(t))
		if code != tc.code {
			t.Errorf("%q: exit %d, want %d\nstdout: %s\nstderr: %s", tc.in, code, tc.code, stdout.String(), stderr.String())
		}
		if !strings.Contains(stdout.String(), tc.stdout) {
			t.Errorf("%q: stdout %q does not contain %q", tc.in, stdout.String(), tc.stdout)
		}
		if !strings.Contains(stderr.String(), tc.stderr) {
			t.Errorf("%q: stderr %q does not contain %q", tc.in, stderr.String(), tc.stderr)
		}
		if tc.quietOut && stdout.Len() > 0 {
			t.Errorf("%q: unexpected stdout %q", tc.in, stdout.String())
		}
		if tc.quietError && stderr.Len() > 0 {
			t.Errorf("%q: unexpected stderr %q", tc.in, stderr.String())
		}
	}
}

// TestMissingSocket checks the error for a socket that does not exist.
func TestMissingSocket(t *testing.T) {
	var stdout, stderr bytes.Buffer
	sock := t.TempDir() + "/none.sock"
	code := run(context.Background(), []string{"--socket", sock, "show", "vrfs"}, &stdout, &stderr, dialSocket)
	if code != 1 || !strings.Contains(stderr.String(), "vecnetd socket "+sock+" does not exist") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	t.Setenv("VECNET_SOCKET", sock+"2")
	stderr.Reset()
	code = run(context.Background(), []string{"show", "vrfs"}, &stdout, &stderr, dialSocket)
	if code != 1 || !strings.Contains(stderr.String(), sock+"2") {
		t.Fatalf("VECNET_SOCKET: exit %d, stderr %q", code, stderr.String())
	}
}
