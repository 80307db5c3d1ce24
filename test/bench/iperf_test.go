// Package bench holds the side-by-side benchmarks of vecnet against the
// kernel dataplane. They need root and a quiet machine, so they run only
// with VECNET_BENCH=1 (make bench); each prints vecnet/kernel ratios.
package bench

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"testing"

	"github.com/vecnet/vecnet/test/netlab"
)

func requireBench(t *testing.T) {
	if os.Getenv("VECNET_BENCH") == "" {
		t.Skip("benchmark: set VECNET_BENCH=1 (make bench)")
	}
	netlab.Require(t, "iperf3")
}

// kernelPods builds the kernel path Calico's iptables/eBPF-free dataplane
// uses on one node: each pod has a veth to a routing namespace (the "host")
// that has a /32 route per pod and answers ARP for the pods' gateway
// 169.254.1.1 by proxy ARP.
func kernelPods(t *testing.T, mtu int) (a, b string) {
	host := netlab.Netns(t, "vnkhost")
	netlab.MustRun(t, "ip", "netns", "exec", host, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	// Proxy ARP answers only for addresses routed through another
	// interface; a host route for the gateway on lo provides one.
	netlab.MustRun(t, "ip", "-n", host, "route", "add", "169.254.1.1/32", "dev", "lo")
	var pods []string
	for i, addr := range []string{"10.78.0.2", "10.78.0.3"} {
		p := netlab.Netns(t, "vnkpod")
		hv := fmt.Sprintf("cali%d%s", i, netlab.Unique())
		netlab.MustRun(t, "ip", "link", "add", "eth0", "netns", p, "mtu", strconv.Itoa(mtu), "type", "veth", "peer", "name", hv, "netns", host, "mtu", strconv.Itoa(mtu))
		netlab.MustRun(t, "ip", "-n", p, "addr", "add", addr+"/32", "dev", "eth0")
		netlab.MustRun(t, "ip", "-n", p, "link", "set", "eth0", "up")
		netlab.MustRun(t, "ip", "-n", p, "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link")
		netlab.MustRun(t, "ip", "-n", p, "route", "add", "default", "via", "169.254.1.1", "dev", "eth0")
		netlab.MustRun(t, "ip", "netns", "exec", host, "sysctl", "-qw", "net.ipv4.conf."+hv+".proxy_arp=1")
		netlab.MustRun(t, "ip", "-n", host, "link", "set", hv, "up")
		netlab.MustRun(t, "ip", "-n", host, "route", "add", addr+"/32", "dev", hv)
		pods = append(pods, p)
	}
	return pods[0], pods[1]
}

func vecnetPods(t *testing.T, v *netlab.Vecnetd, mtu int) (a, b string) {
	var pods []string
	for _, addr := range []string{"10.79.0.2", "10.79.0.3"} {
		p := netlab.Netns(t, "vnvpod")
		v.MustCtl(t, "interface", "create", "tun", "--netns", p, "--host-if", "eth0", "--host-addr", addr+"/32", "--mtu", strconv.Itoa(mtu))
		pods = append(pods, p)
	}
	return pods[0], pods[1]
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// TestIperf3SameNodeVsKernel: one TCP stream, 10 s, pod to pod on one node,
// through vecnetd versus the kernel path of the same shape, alternating
// rounds so that both see the same machine conditions.
func TestIperf3SameNodeVsKernel(t *testing.T) {
	requireBench(t)
	secs, _ := strconv.Atoi(os.Getenv("VECNET_BENCH_SECONDS"))
	if secs == 0 {
		secs = 10
	}
	rounds, _ := strconv.Atoi(os.Getenv("VECNET_BENCH_ROUNDS"))
	if rounds == 0 {
		rounds = 3
	}
	const mtu = 1500
	v := netlab.StartVecnetd(t, "--workers", "1")
	va, vb := vecnetPods(t, v, mtu)
	ka, kb := kernelPods(t, mtu)
	var vn, kn []float64
	for r := 0; r < rounds; r++ {
		kn = append(kn, netlab.Iperf3(t, ka, kb, "10.78.0.3", secs, "-O", "1")/1e9)
		vn = append(vn, netlab.Iperf3(t, va, vb, "10.79.0.3", secs, "-O", "1")/1e9)
		t.Logf("round %d: vecnet %.2f Gbit/s, kernel %.2f Gbit/s", r+1, vn[r], kn[r])
	}
	mv, mk := median(vn), median(kn)
	fmt.Printf("RESULT iperf3-tcp-same-node: vecnet %.2f Gbit/s, kernel %.2f Gbit/s, vecnet/kernel %.2f (median of %d x %ds rounds)\n", mv, mk, mv/mk, rounds, secs)
	t.Logf("vecnetd runtime after the runs:\n%s", v.MustCtl(t, "show", "runtime"))
}
