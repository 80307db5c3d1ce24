package agent

// BGP figures: how fast a new node's pods become reachable, and how fast
// learned routes reach the forwarding table, side by side with Calico's
// path (BIRD programming the Linux FIB) fed by the same router.

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	vecnetv1 "github.com/vecnet/vecnet/api/vecnet/v1"
	"github.com/vecnet/vecnet/test/netlab"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestBGPConvergence: three meshed nodes; the third gets its first pod
// (so its first IPAM block) and the test measures how long until the
// other nodes' pods reach it over BGP-learned routes.
func TestBGPConvergence(t *testing.T) {
	b := newBGPLab(t, 3, "{asNumber: 64512}", nil)
	for _, n := range b.nodes[:2] {
		p := n.newPod("pod-"+n.node, nil)
		n.add(p)
		b.pods[n] = p
	}
	b.waitBGPRoutes("mesh of two", b.nodes[:2], 30*time.Second, b.meshWant(), nil)
	n3 := b.nodes[2]
	p3 := n3.newPod("pod-new", nil)
	start := time.Now()
	n3.add(p3) // allocates node3's first block
	added := time.Since(start)
	b.pods[n3] = p3
	reach := map[*routeNode]time.Duration{}
	for time.Since(start) < 30*time.Second && len(reach) < 2 {
		for _, n := range b.nodes[:2] {
			if _, ok := reach[n]; ok {
				continue
			}
			if _, err := netlab.InNetns(b.pods[n].netns, "ping", "-c", "1", "-W", "0.1", p3.v4.String()); err == nil {
				reach[n] = time.Since(start)
			}
		}
	}
	if len(reach) < 2 {
		t.Fatalf("node3's new pod not reachable from both other nodes after 30s (%v)\nnode3 agent log:\n%s", reach, n3.agentLog.String())
	}
	worst := max(reach[b.nodes[0]], reach[b.nodes[1]])
	fmt.Printf("RESULT bgp-convergence: new node's first block to its pod reachable from all others: %v (CNI ADD %v, node1 %v, node2 %v)\n",
		worst.Round(time.Millisecond), added.Round(time.Millisecond), reach[b.nodes[0]].Round(time.Millisecond), reach[b.nodes[1]].Round(time.Millisecond))
	b.pingAll("after convergence")
}

// TestBGPProgramming: a BIRD router with 10 000 prefixes peers with one
// vecnet node and, in turn, with a Calico-style node (BIRD exporting to
// its kernel). The time from enabling each session to the last route in
// the node's forwarding table gives routes/s for both, and their ratio.
func TestBGPProgramming(t *testing.T) {
	routes := 10000
	if os.Getenv("VECNET_BENCH") == "" && testing.Short() {
		routes = 1000
	}
	b := newBGPLab(t, 1, "{nodeToNodeMeshEnabled: false}", func(_ int, n *corev1.Node) {
		n.Annotations["projectcalico.org/ASNumber"] = "65001"
	})
	apply(t, b.env, bgppeers, fmt.Sprintf(`apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: injector}
spec: {peerIP: %q, asNumber: %d}
`, torAddr4, torASN))
	t.Cleanup(func() { _ = b.env.Dynamic.Resource(bgppeers).Delete(ctxTODO, "injector", metav1.DeleteOptions{}) })

	// The Calico-style node: a namespace on the underlay with BIRD
	// exporting what it learns to the kernel.
	knAddr := "192.168.77.240"
	kn := netlab.Netns(t, "vnkn")
	attach(t, b.lab.Underlay, kn, knAddr+"/24")
	knConf := fmt.Sprintf(`router id %s;
protocol device { scan time 10; }
protocol kernel { ipv4 { import none; export all; }; }
protocol bgp injector { local as 65100; neighbor %s as %d; hold time 6; ipv4 { import all; export none; }; }
`, knAddr, torAddr4, torASN)
	startBIRDWith(t, kn, "kernel node", knConf)

	// The router with the prefixes, both sessions disabled.
	inj := netlab.Netns(t, "vninj")
	attach(t, b.lab.Underlay, inj, torAddr4+"/24")
	var conf strings.Builder
	fmt.Fprintf(&conf, "router id %s;\nprotocol device { scan time 10; }\nprotocol static { ipv4;\n", torAddr4)
	for i := range routes {
		// 10.200.0.0/26, 10.200.0.64/26, ...: /26 like Calico blocks.
		fmt.Fprintf(&conf, "  route 10.%d.%d.%d/26 blackhole;\n", 200+i/(256*4), (i/4)%256, (i%4)*64)
	}
	fmt.Fprintf(&conf, "};\n")
	fmt.Fprintf(&conf, "protocol bgp vecnet { disabled; local as %d; neighbor %s as 65001; hold time 6; ipv4 { import none; export all; }; }\n", torASN, b.nodes[0].nd.Addr4)
	fmt.Fprintf(&conf, "protocol bgp calico { disabled; local as %d; neighbor %s as 65100; hold time 6; ipv4 { import none; export all; }; }\n", torASN, knAddr)
	birdc := startBIRDWith(t, inj, "injector", conf.String())

	dp := dialDataplane(t, b.nodes[0].v.Socket)
	countVecnet := func() int {
		ctx, cancel := context.WithTimeout(ctxTODO, 10*time.Second)
		defer cancel()
		s, err := dp.ListRoutes(ctx, &vecnetv1.ListRoutesRequest{Source: "bgp"})
		if err != nil {
			return -1
		}
		n := 0
		for {
			if _, err := s.Recv(); err != nil {
				if err != io.EOF {
					return -1
				}
				return n
			}
			n++
		}
	}
	countKernel := func() int {
		out, err := exec.Command("ip", "-n", kn, "-4", "route", "show", "proto", "bird").Output()
		if err != nil {
			return -1
		}
		return strings.Count(string(out), "\n")
	}
	// measure enables the router's session proto and returns the time
	// from the session's establishment (as the router sees it, the same
	// clock for both) to the last route in the node's forwarding table:
	// transfer, best path, and programming. Session set-up is left out,
	// it depends on connect-retry timers, not on speed.
	measure := func(proto string, count func() int) (time.Duration, time.Duration) {
		t.Helper()
		start := time.Now()
		if out, err := birdc("enable", proto); err != nil {
			t.Fatalf("birdc enable %s: %v\n%s", proto, err, out)
		}
		var up time.Time
		for up.IsZero() {
			if out, _ := birdc("show", "protocols", proto); strings.Contains(out, "Established") {
				up = time.Now()
			}
			if time.Since(start) > 60*time.Second {
				t.Fatalf("%s: session not established after 60s", proto)
			}
			time.Sleep(5 * time.Millisecond)
		}
		for {
			n := count()
			if n >= routes {
				return time.Since(up), time.Since(start)
			}
			if time.Since(start) > 120*time.Second {
				t.Fatalf("%s: %d of %d routes after 120s\nagent log:\n%s", proto, n, routes, b.nodes[0].agentLog.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	dv, tv := measure("vecnet", countVecnet)
	dk, tk := measure("calico", countKernel)
	rv, rk := float64(routes)/dv.Seconds(), float64(routes)/dk.Seconds()
	fmt.Printf("RESULT bgp-programming %d routes, session up to last route in the FIB: vecnet (GoBGP -> agent -> vecnetd) %v = %.0f routes/s; Calico-style (BIRD -> kernel FIB) %v = %.0f routes/s; ratio %.2f (from enabling the session: %v and %v)\n",
		routes, dv.Round(time.Millisecond), rv, dk.Round(time.Millisecond), rk, rv/rk, tv.Round(time.Millisecond), tk.Round(time.Millisecond))
	// Withdrawal: disabling the session empties vecnetd's bgp routes.
	if out, err := birdc("disable", "vecnet"); err != nil {
		t.Fatalf("birdc disable: %v\n%s", err, out)
	}
	deadline := time.Now().Add(60 * time.Second)
	for countVecnet() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("routes left in vecnetd 60s after the session was disabled: %d", countVecnet())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// attach connects namespace ns to the underlay bridge with address addr.
func attach(t *testing.T, underlay, ns, addr string) {
	t.Helper()
	port := "br-" + netlab.Unique()
	netlab.MustRun(t, "ip", "link", "add", port, "netns", underlay, "type", "veth", "peer", "name", "eth0", "netns", ns)
	netlab.MustRun(t, "ip", "-n", underlay, "link", "set", port, "master", "br0", "up")
	netlab.MustRun(t, "ip", "-n", ns, "addr", "add", addr, "dev", "eth0")
	netlab.MustRun(t, "ip", "-n", ns, "link", "set", "eth0", "up")
	netlab.MustRun(t, "ip", "-n", ns, "link", "set", "lo", "up")
}

// startBIRDWith runs BIRD in ns with configuration conf and returns a
// birdc function for it.
func startBIRDWith(t *testing.T, ns, what, conf string) func(args ...string) (string, error) {
	t.Helper()
	netlab.Require(t, "bird", "birdc")
	dir := t.TempDir()
	sock, cfg := filepath.Join(dir, "bird.ctl"), filepath.Join(dir, "bird.conf")
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	log := &lockedBuf{}
	cmd := exec.Command("ip", "netns", "exec", ns, "bird", "-f", "-c", cfg, "-s", sock, "-P", filepath.Join(dir, "bird.pid"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("BIRD (%s) log:\n%s", what, log.String())
		}
	})
	birdc := func(args ...string) (string, error) {
		out, err := exec.Command("birdc", append([]string{"-s", sock}, args...)...).CombinedOutput()
		return string(out), err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := birdc("show", "status"); err == nil {
			return birdc
		}
		select {
		case <-done:
			t.Fatalf("BIRD (%s) exited:\n%s", what, log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("BIRD (%s) did not start:\n%s", what, log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func dialDataplane(t *testing.T, socket string) vecnetv1.DataplaneClient {
	t.Helper()
	conn, err := grpc.NewClient("unix:"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return vecnetv1.NewDataplaneClient(conn)
}
