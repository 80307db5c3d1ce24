// Package bench holds the side-by-side benchmarks of vecnet against the
// kernel dataplane. They need root and a quiet machine, so they run only
// with VECNET_BENCH=1 (make bench); each prints vecnet/kernel ratios.
package bench

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"testing"

	"github.com/vecnet/vecnet/pkg/lab/baseline"
	"github.com/vecnet/vecnet/test/netlab"
)

func requireBench(t *testing.T) {
	if os.Getenv("VECNET_BENCH") == "" {
		t.Skip("benchmark: set VECNET_BENCH=1 (make bench)")
	}
	netlab.Require(t, "iperf3")
}

// kernelPath builds a kernel reference path with pkg/lab/baseline (the
// paths the lab demo also measures against: baseline.SameNode is Calico's
// same-node path, baseline.CrossNodeVXLAN flannel's cross-node one) with
// pod MTU mtu, and removes it when the test ends.
func kernelPath(t *testing.T, build func(context.Context, baseline.Options) (*baseline.Path, func() error, error), mtu int) *baseline.Path {
	t.Helper()
	p, clean, err := build(context.Background(), baseline.Options{Prefix: "vnbench-", PodMTU: mtu, Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := clean(); err != nil {
			t.Errorf("remove %s: %v", p.Name, err)
		}
	})
	return p
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
	k := kernelPath(t, baseline.SameNode, mtu)
	var vn, kn []float64
	for r := 0; r < rounds; r++ {
		kn = append(kn, netlab.Iperf3(t, k.Client, k.Server, k.ServerAddr, secs, "-O", "1")/1e9)
		vn = append(vn, netlab.Iperf3(t, va, vb, "10.79.0.3", secs, "-O", "1")/1e9)
		t.Logf("round %d: vecnet %.2f Gbit/s, kernel %.2f Gbit/s", r+1, vn[r], kn[r])
	}
	mv, mk := median(vn), median(kn)
	fmt.Printf("RESULT iperf3-tcp-same-node: vecnet %.2f Gbit/s, kernel %.2f Gbit/s, vecnet/kernel %.2f (median of %d x %ds rounds)\n", mv, mk, mv/mk, rounds, secs)
	t.Logf("vecnetd runtime after the runs:\n%s", v.MustCtl(t, "show", "runtime"))
}
