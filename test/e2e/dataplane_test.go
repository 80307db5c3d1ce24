// End-to-end tests of vecnetd on one node: real network namespaces as pods,
// real tun/tap devices, real ping and iperf3 traffic through the dataplane.
package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vecnet/vecnet/test/netlab"
)

// pod is a namespace with an interface created by vecnetd.
type pod struct {
	ns, ifname string
	v4, v6     string
}

func newPod(t *testing.T, v *netlab.Vecnetd, kind string, idx int) pod {
	t.Helper()
	p := pod{
		ns: netlab.Netns(t, "vnpod"),
		v4: fmt.Sprintf("10.77.0.%d", idx),
		v6: fmt.Sprintf("fd77::%d", idx),
	}
	out := v.MustCtl(t, "interface", "create", kind, "--netns", p.ns, "--host-if", "eth0",
		"--host-addr", p.v4+"/32,"+p.v6+"/128")
	p.ifname = strings.TrimSpace(out)
	if p.ifname == "" {
		t.Fatalf("interface create printed no name")
	}
	return p
}

func ping(t *testing.T, from pod, to string, args ...string) string {
	t.Helper()
	a := append([]string{"-c", "3", "-i", "0.2", "-W", "2"}, args...)
	out, err := netlab.InNetns(from.ns, "ping", append(a, to)...)
	if err != nil {
		t.Fatalf("ping %s from %s: %v\n%s", to, from.ns, err, out)
	}
	return out
}

func TestPodsTalkThroughVecnetd(t *testing.T) {
	netlab.Require(t, "ping", "iperf3")
	for _, kind := range []string{"tun", "tap"} {
		t.Run(kind, func(t *testing.T) {
			v := netlab.StartVecnetd(t)
			a := newPod(t, v, kind, 2)
			b := newPod(t, v, kind, 3)

			t.Run("ping", func(t *testing.T) {
				ping(t, a, b.v4)
				ping(t, b, a.v4)
				ping(t, a, b.v6)
				ping(t, b, a.v6)
				if kind == "tap" {
					// The pods' link-layer addresses are known (from the
					// device at creation, then from ARP/ND).
					n := v.MustCtl(t, "show", "neighbors")
					for _, ip := range []string{a.v4, b.v4, a.v6, b.v6} {
						if !regexp.MustCompile(regexp.QuoteMeta(ip) + `\s+\S+\s+reachable`).MatchString(n) {
							t.Errorf("show neighbors lacks %s as reachable:\n%s", ip, n)
						}
					}
				}
			})
			t.Run("iperf3", func(t *testing.T) {
				for _, dir := range []struct {
					client, server pod
				}{{a, b}, {b, a}} {
					bps := iperf3(t, dir.client, dir.server, dir.server.v4, 2)
					t.Logf("%s -> %s: %.2f Gbit/s", dir.client.v4, dir.server.v4, bps/1e9)
				}
				bps := iperf3(t, a, b, b.v6, 2)
				t.Logf("%s -> %s: %.2f Gbit/s", a.v6, b.v6, bps/1e9)
			})
			t.Run("ttl-expired", func(t *testing.T) {
				out, _ := netlab.InNetns(a.ns, "ping", "-c", "1", "-W", "2", "-t", "1", b.v4)
				if !strings.Contains(out, "Time to live exceeded") {
					t.Fatalf("ping -t 1: want ICMP time exceeded, got:\n%s", out)
				}
				out, _ = netlab.InNetns(a.ns, "ping", "-6", "-c", "1", "-W", "2", "-t", "1", b.v6)
				if !strings.Contains(out, "Time exceeded: Hop limit") {
					t.Fatalf("ping -6 -t 1: want ICMPv6 time exceeded, got:\n%s", out)
				}
			})
			t.Run("unknown-prefix", func(t *testing.T) {
				out, _ := netlab.InNetns(a.ns, "ping", "-c", "1", "-W", "2", "10.99.0.1")
				if !strings.Contains(out, "Destination Net Unreachable") {
					t.Fatalf("ping to unrouted prefix: want net unreachable, got:\n%s", out)
				}
				out, _ = netlab.InNetns(a.ns, "ping", "-c", "1", "-W", "2", "fd99::1")
				if !strings.Contains(out, "Destination unreachable: No route") {
					t.Fatalf("ping to unrouted v6 prefix: want no route, got:\n%s", out)
				}
			})
			t.Run("dataplane-address", func(t *testing.T) {
				v.MustCtl(t, "address", "add", a.ifname, "10.77.255.1/32")
				v.MustCtl(t, "address", "add", a.ifname, "fd77:ffff::1/128")
				ping(t, b, "10.77.255.1")
				ping(t, b, "fd77:ffff::1")
				// Traceroute-style: the hop that expires the TTL is the
				// input interface's address.
				out, _ := netlab.InNetns(a.ns, "ping", "-c", "1", "-W", "2", "-t", "1", b.v4)
				if !strings.Contains(out, "From 10.77.255.1") {
					t.Errorf("time exceeded should come from the rx interface address:\n%s", out)
				}
			})
			errs := v.MustCtl(t, "show", "errors")
			t.Logf("show errors:\n%s", errs)
		})
	}
}

// iperf3 runs a TCP test for secs seconds and returns the receiver's bits/s.
func iperf3(t *testing.T, client, server pod, addr string, secs int) float64 {
	t.Helper()
	return netlab.Iperf3(t, client.ns, server.ns, addr, secs)
}

// errorCount reads one counter from `vecnetctl show errors`.
func errorCount(t *testing.T, v *netlab.Vecnetd, node, reason string) uint64 {
	t.Helper()
	out := v.MustCtl(t, "show", "errors")
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[1] == node && f[2] == reason {
			n, _ := strconv.ParseUint(f[0], 10, 64)
			return n
		}
	}
	return 0
}

func TestGarbageIsCountedWhileTrafficFlows(t *testing.T) {
	netlab.Require(t, "ping")
	v := netlab.StartVecnetd(t)
	a := newPod(t, v, "tun", 2)
	b := newPod(t, v, "tun", 3)
	ping(t, a, b.v4)

	// Keep a ping running while garbage is injected.
	pinger := exec.Command("ip", "netns", "exec", a.ns, "ping", "-i", "0.05", "-c", "60", "-W", "1", b.v4)
	var pout strings.Builder
	pinger.Stdout, pinger.Stderr = &pout, &pout
	if err := pinger.Start(); err != nil {
		t.Fatal(err)
	}
	frames := garbageFrames()
	for i := 0; i < 20; i++ {
		injectRaw(t, a.ns, "eth0", frames)
	}
	if err := pinger.Wait(); err != nil {
		t.Fatalf("ping during garbage injection: %v\n%s", err, pout.String())
	}
	if m := regexp.MustCompile(`(\d+) received`).FindStringSubmatch(pout.String()); m == nil || m[1] != "60" {
		t.Errorf("ping lost packets while garbage was injected:\n%s", pout.String())
	}
	for _, want := range []struct{ node, reason string }{
		{"ip4-input", "too_short"},
		{"ip4-input", "bad_header_length"},
		{"ip4-input", "bad_total_length"},
		{"ip4-input", "bad_checksum"},
		{"ip4-input", "bad_source_address"},
		{"ip6-input", "too_short"},
		{"ip6-input", "bad_payload_length"},
		{"tun-input", "unknown_ip_version"},
	} {
		if n := errorCount(t, v, want.node, want.reason); n < 20 {
			t.Errorf("%s %s = %d, want >= 20", want.node, want.reason, n)
		}
	}
	ping(t, a, b.v6)
}

func TestTraceAndPcap(t *testing.T) {
	netlab.Require(t, "ping", "tcpdump")
	v := netlab.StartVecnetd(t)
	a := newPod(t, v, "tun", 2)
	b := newPod(t, v, "tun", 3)
	v.MustCtl(t, "trace", "add", "4")
	ping(t, a, b.v4, "-c", "2")
	tr := v.MustCtl(t, "trace", "show")
	for _, node := range []string{"tun-input", "ip4-input", "ip4-lookup", "ip4-rewrite", "interface-output"} {
		if !strings.Contains(tr, node) {
			t.Errorf("trace lacks %s:\n%s", node, tr)
		}
	}
	file := filepath.Join(t.TempDir(), "cap.pcap")
	done := make(chan string, 1)
	go func() {
		out, _ := v.Ctl("pcap", "--interface", b.ifname, "--count", "4", "--file", file, "--timeout", "10s")
		done <- out
	}()
	time.Sleep(300 * time.Millisecond)
	ping(t, a, b.v4, "-c", "3")
	<-done
	out := netlab.MustRun(t, "tcpdump", "-nr", file)
	if !strings.Contains(out, "ICMP echo request") || !strings.Contains(out, "ICMP echo reply") {
		t.Errorf("tcpdump -r: want echo request and reply:\n%s", out)
	}
	rt := v.MustCtl(t, "show", "runtime")
	if !strings.Contains(rt, "ip4-lookup") {
		t.Errorf("show runtime lacks ip4-lookup:\n%s", rt)
	}
}

func TestBadRequestsLeaveNothingBehind(t *testing.T) {
	netlab.Require(t)
	v := netlab.StartVecnetd(t)
	a := newPod(t, v, "tun", 2)
	before := v.MustCtl(t, "show", "interfaces")
	links := netlab.MustRun(t, "ip", "-n", a.ns, "-o", "link")

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"interface", "create", "tun", "--netns", "no-such-ns-" + netlab.Unique(), "--host-if", "eth0", "--host-addr", "10.77.0.9/32"}, "does not exist"},
		{[]string{"interface", "create", "tun", "--netns", a.ns, "--host-if", "eth0", "--host-addr", "10.77.0.9/32"}, "already exists"},
		{[]string{"interface", "create", "tun", "--netns", a.ns, "--host-if", "eth1", "--host-addr", "10.77.0.9/32", "--mtu", "100"}, "mtu"},
		{[]string{"interface", "create", "tun", "--netns", a.ns, "--host-if", "this-name-is-too-long", "--host-addr", "10.77.0.9/32"}, "host-if"},
		{[]string{"interface", "create", "tun", "--netns", a.ns, "--host-if", "eth1", "--host-addr", "10.77.0.9/32,10.77.0.10/32"}, "host_addrs[1]"},
		{[]string{"route", "add", "10.88.0.0/16", "via", "10.200.0.1"}, "not reachable"},
		{[]string{"route", "add", "10.88.0.0/16", "dev", "nosuchif"}, "nosuchif"},
		{[]string{"interface", "delete", "nosuchif"}, "nosuchif"},
	} {
		out, err := v.Ctl(tc.args...)
		if err == nil {
			t.Errorf("vecnetctl %v: succeeded, want error containing %q", tc.args, tc.want)
			continue
		}
		if !strings.Contains(out, tc.want) {
			t.Errorf("vecnetctl %v: error %q does not mention %q", tc.args, strings.TrimSpace(out), tc.want)
		}
	}
	if after := v.MustCtl(t, "show", "interfaces"); stripCounters(after) != stripCounters(before) {
		t.Errorf("interfaces changed after failed requests:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if after := netlab.MustRun(t, "ip", "-n", a.ns, "-o", "link"); after != links {
		t.Errorf("pod links changed after failed requests:\nbefore:\n%s\nafter:\n%s", links, after)
	}
}

func stripCounters(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		f := strings.Fields(l)
		if len(f) > 3 {
			f = f[:3]
		}
		out = append(out, strings.Join(f, " "))
	}
	return strings.Join(out, "\n")
}

func TestSIGTERMRemovesInterfaces(t *testing.T) {
	netlab.Require(t)
	v := netlab.StartVecnetd(t, "--workers", "2")
	a := newPod(t, v, "tun", 2)
	b := newPod(t, v, "tap", 3)
	for _, p := range []pod{a, b} {
		if out := netlab.MustRun(t, "ip", "-n", p.ns, "link", "show", "eth0"); !strings.Contains(out, "eth0") {
			t.Fatalf("no eth0 in %s", p.ns)
		}
	}
	if !v.Stop(10 * time.Second) {
		t.Fatalf("vecnetd did not exit on SIGTERM:\n%s", v.Log())
	}
	if code := v.ExitCode(); code != 0 {
		t.Errorf("vecnetd exit code %d:\n%s", code, v.Log())
	}
	for _, p := range []pod{a, b} {
		if out, err := netlab.Run("ip", "-n", p.ns, "link", "show", "eth0"); err == nil {
			t.Errorf("eth0 still exists in %s after vecnetd exit:\n%s", p.ns, out)
		}
	}
	if !strings.Contains(v.Log(), "stopped cleanly") {
		t.Errorf("vecnetd log lacks clean stop:\n%s", v.Log())
	}
}

// A multiqueue pod interface spreads its queues over the workers, and
// parallel streams use them all.
func TestMultiqueue(t *testing.T) {
	netlab.Require(t, "iperf3")
	v := netlab.StartVecnetd(t, "--workers", "2")
	var pods []pod
	for i, addr := range []string{"10.77.1.2", "10.77.1.3"} {
		p := pod{ns: netlab.Netns(t, "vnmq"), v4: addr}
		p.ifname = strings.TrimSpace(v.MustCtl(t, "interface", "create", "tun", "--netns", p.ns, "--host-if", "eth0",
			"--host-addr", addr+"/32", "--queues", "2", "--name", fmt.Sprintf("mq%d", i)))
		pods = append(pods, p)
	}
	if out := v.MustCtl(t, "show", "interfaces"); !regexp.MustCompile(`mq0\s+\d+\s+tun\s+\S+\s+eth0\s+1500\s+2\b`).MatchString(out) {
		t.Fatalf("show interfaces does not list 2 queues for mq0:\n%s", out)
	}
	netlab.Iperf3(t, pods[0].ns, pods[1].ns, pods[1].v4, 2, "-P", "4")
	rt := v.MustCtl(t, "show", "runtime")
	sections := strings.Split(rt, "Worker ")
	if len(sections) != 3 {
		t.Fatalf("show runtime: want 2 worker sections:\n%s", rt)
	}
	for w, sec := range sections[1:] {
		if !regexp.MustCompile(`tun-input\s+\d+\s+\d+\s+[1-9]\d{2,}`).MatchString(sec) {
			t.Errorf("worker %d received (almost) nothing:\n%s", w, rt)
		}
	}
}
