package agent

// BGP figures: how fast a new node's pods become reachable, and how fast
// learned routes reach the forwarding table, side by side with Calico's
// path (BIRD programming the Linux FIB) fed by the same router.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	gobgpapi "github.com/osrg/gobgp/v4/api"
	gobgputil "github.com/osrg/gobgp/v4/pkg/apiutil"
	bgppkt "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	vecnetv1 "github.com/vecnet/vecnet/api/vecnet/v1"
	"github.com/vecnet/vecnet/pkg/kubecluster"
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
	rounds := 5
	if os.Getenv("VECNET_BENCH") == "" {
		rounds = 1
	}
	var worsts, adds []time.Duration
	for round := range rounds {
		p3 := n3.newPod(fmt.Sprintf("pod-new-%d", round), nil)
		start := time.Now()
		n3.add(p3) // allocates node3's first block
		added := time.Since(start)
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
		worsts = append(worsts, max(reach[b.nodes[0]], reach[b.nodes[1]]))
		adds = append(adds, added)
		b.pods[n3] = p3
		b.pingAll("after convergence")
		// The node gives its block back (pod deleted, affinity released):
		// the others withdraw it, and the next round starts from no block.
		gone := []string{blockOf(p3.v4), blockOf(p3.v6)}
		n3.del(p3)
		delete(b.pods, n3)
		releaseAffinity(t, b.env, n3.node)
		b.waitBGPRoutes("node3's block withdrawn", b.nodes[:2], 30*time.Second, b.meshWant(), func(*routeNode) []string { return gone })
	}
	fmt.Printf("RESULT bgp-convergence: a node's first block to its pod reachable from all other nodes, median of %d: %v (rounds %v; CNI ADD, which allocates the block, median %v)\n",
		rounds, median(worsts).Round(time.Millisecond), roundAll(worsts), median(adds).Round(time.Millisecond))
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
	knBirdc, _ := startBIRDWith(t, kn, "kernel node", knConf)

	// The router with the prefixes: gobgpd, both sessions administratively
	// down. (BIRD as the sender stalls its last UPDATE for about 1.5 s
	// now and then when the receiver's TCP window narrows, which made
	// single rounds meaningless.)
	inj := netlab.Netns(t, "vninj")
	attach(t, b.lab.Underlay, inj, torAddr4+"/24")
	neighbor := map[string]string{"vecnet": b.nodes[0].nd.Addr4, "calico": knAddr}
	gobgp := startGoBGPD(t, inj, fmt.Sprintf(`[global.config]
  as = %d
  router-id = %q
[[neighbors]]
  [neighbors.config]
    neighbor-address = %q
    peer-as = 65001
    admin-down = true
  [neighbors.timers.config]
    hold-time = 6
    keepalive-interval = 2
[[neighbors]]
  [neighbors.config]
    neighbor-address = %q
    peer-as = 65100
    admin-down = true
  [neighbors.timers.config]
    hold-time = 6
    keepalive-interval = 2
`, torASN, torAddr4, neighbor["vecnet"], neighbor["calico"]))
	injectRoutes(t, gobgp, routes, torAddr4)
	router := func(op, proto string) (bool, error) {
		ctx, cancel := context.WithTimeout(ctxTODO, 10*time.Second)
		defer cancel()
		addr := neighbor[proto]
		switch op {
		case "enable":
			_, err := gobgp.EnablePeer(ctx, &gobgpapi.EnablePeerRequest{Address: addr})
			return err == nil, err
		case "disable":
			_, err := gobgp.DisablePeer(ctx, &gobgpapi.DisablePeerRequest{Address: addr})
			return err == nil, err
		}
		s, err := gobgp.ListPeer(ctx, &gobgpapi.ListPeerRequest{Address: addr})
		if err != nil {
			return false, err
		}
		p, err := s.Recv()
		if err != nil {
			return false, err
		}
		return p.GetPeer().GetState().GetSessionState() == gobgpapi.PeerState_SESSION_STATE_ESTABLISHED, nil
	}

	dp := dialDataplane(t, b.nodes[0].v.Socket)
	// Both counts are what each control plane has written to its FIB,
	// read cheaply so that polling every few milliseconds does not steal
	// the CPU being measured: the agent's gauge of bgp routes (set once
	// vecnetd's AddRoutes, which publishes the FIB, returned), and BIRD's
	// count of routes exported to the kernel (netlink writes done).
	n1 := b.nodes[0]
	countVecnet := func() int {
		_, body, err := nsHTTPGet(n1.nd.NS, "http://"+n1.metrics+"/metrics")
		if err != nil {
			return -1
		}
		for _, l := range strings.Split(body, "\n") {
			if v, ok := strings.CutPrefix(l, `vecnet_routes{encap="bgp"} `); ok {
				var n int
				fmt.Sscan(v, &n)
				return n
			}
		}
		return 0
	}
	countKernel := func() int {
		out, err := knBirdc("show", "protocols", "all", "kernel1")
		if err != nil {
			return -1
		}
		// "Routes:         0 imported, 10000 exported, 0 preferred"
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) >= 4 && f[0] == "Routes:" {
				var n int
				fmt.Sscan(f[3], &n)
				return n
			}
		}
		return 0
	}
	// vecnetdRoutes checks the gauge against vecnetd itself.
	vecnetdRoutes := func() int {
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
	kernelRoutes := func() int {
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
		if _, err := router("enable", proto); err != nil {
			t.Fatalf("enable %s: %v", proto, err)
		}
		var up time.Time
		for up.IsZero() {
			if ok, _ := router("established", proto); ok {
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
				d, total := time.Since(up), time.Since(start)
				if proto == "vecnet" && vecnetdRoutes() != routes || proto == "calico" && kernelRoutes() != routes {
					t.Fatalf("%s: the FIB does not hold the %d routes counted: vecnetd %d, kernel %d", proto, routes, vecnetdRoutes(), kernelRoutes())
				}
				return d, total
			}
			if time.Since(start) > 120*time.Second {
				t.Fatalf("%s: %d of %d routes after 120s\nagent log:\n%s", proto, n, routes, b.nodes[0].agentLog.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// disable turns proto off and waits until count drops to zero.
	disable := func(proto string, count func() int) {
		t.Helper()
		if _, err := router("disable", proto); err != nil {
			t.Fatalf("disable %s: %v", proto, err)
		}
		deadline := time.Now().Add(60 * time.Second)
		for count() != 0 || (proto == "vecnet" && vecnetdRoutes() != 0) || (proto == "calico" && kernelRoutes() != 0) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d routes left 60s after the session was disabled", proto, count())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// Rounds alternate the two paths; medians are reported.
	rounds := 5
	if os.Getenv("VECNET_BENCH") == "" {
		rounds = 1
	}
	var vs, ks, vts, kts []time.Duration
	for range rounds {
		dv, tv := measure("vecnet", countVecnet)
		disable("vecnet", countVecnet) // withdrawal empties vecnetd's bgp routes
		dk, tk := measure("calico", countKernel)
		disable("calico", countKernel)
		vs, ks, vts, kts = append(vs, dv), append(ks, dk), append(vts, tv), append(kts, tk)
	}
	dv, dk := median(vs), median(ks)
	rv, rk := float64(routes)/dv.Seconds(), float64(routes)/dk.Seconds()
	bv, bk := slices.Min(vs), slices.Min(ks)
	fmt.Printf("RESULT bgp-programming %d routes, session up to last route in the FIB: median of %d: vecnet (GoBGP -> agent -> vecnetd) %v = %.0f routes/s; Calico-style (BIRD -> kernel FIB) %v = %.0f routes/s; ratio %.2f; best: %v vs %v, ratio %.2f (rounds: vecnet %v, calico %v; from enabling the session: %v and %v)\n",
		routes, rounds, dv.Round(time.Millisecond), rv, dk.Round(time.Millisecond), rk, rv/rk,
		bv.Round(time.Millisecond), bk.Round(time.Millisecond), bk.Seconds()/bv.Seconds(),
		roundAll(vs), roundAll(ks), median(vts).Round(time.Millisecond), median(kts).Round(time.Millisecond))
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
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

// startBIRDWith runs BIRD in ns with configuration conf; it returns a
// birdc function for it and the configuration file's path.
func startBIRDWith(t *testing.T, ns, what, conf string) (func(args ...string) (string, error), string) {
	t.Helper()
	netlab.Require(t, "bird", "birdc")
	dir := t.TempDir()
	sock, cfg := filepath.Join(dir, "bird.ctl"), filepath.Join(dir, "bird.conf")
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	birdc := func(args ...string) (string, error) {
		out, err := exec.Command("birdc", append([]string{"-s", sock}, args...)...).CombinedOutput()
		return string(out), err
	}
	startDaemon(t, ns, "BIRD ("+what+")", func() error { _, err := birdc("show", "status"); return err },
		"bird", "-f", "-c", cfg, "-s", sock, "-P", filepath.Join(dir, "bird.pid"))
	return birdc, cfg
}

// startDaemon runs argv in namespace ns until the test ends (SIGTERM,
// then SIGKILL after 5 s), logging its output if the test failed, and
// waits up to 10 s for ready to succeed.
func startDaemon(t *testing.T, ns, what string, ready func() error, argv ...string) {
	t.Helper()
	log := &netlab.SyncBuffer{}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
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
			t.Logf("%s log:\n%s", what, log.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := ready()
		if err == nil {
			return
		}
		select {
		case <-done:
			t.Fatalf("%s exited:\n%s", what, log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after 10s: %v\n%s", what, err, log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startGoBGPD runs gobgpd (hack/test.sh installs it in bin/) in ns with
// configuration conf and returns a client of its API, reached inside ns.
func startGoBGPD(t *testing.T, ns, conf string) gobgpapi.GoBgpServiceClient {
	t.Helper()
	bin := filepath.Join(repoRoot, "bin", "gobgpd")
	if !fileExists(bin) {
		p, err := exec.LookPath("gobgpd")
		if err != nil {
			missingGoBGP(t, "gobgpd")
			t.Skip("needs gobgpd (hack/test.sh installs it in bin/)")
		}
		bin = p
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gobgpd.toml")
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// The API listens on ns's loopback: dial from inside ns.
	conn, err := grpc.NewClient("passthrough:///127.0.0.1:50051", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			var c net.Conn
			err := kubecluster.InNetns(ns, func() (err error) {
				c, err = (&net.Dialer{}).DialContext(ctx, "tcp", addr)
				return err
			})
			return c, err
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := gobgpapi.NewGoBgpServiceClient(conn)
	startDaemon(t, ns, "gobgpd", func() error {
		ctx, cancel := context.WithTimeout(ctxTODO, time.Second)
		defer cancel()
		r, err := c.GetBgp(ctx, &gobgpapi.GetBgpRequest{})
		if err == nil && r.GetGlobal().GetAsn() == 0 {
			err = errors.New("BGP not started")
		}
		return err
	}, bin, "-f", cfg, "-l", "warn", "-p", "--api-hosts", "127.0.0.1:50051", "--pprof-disable")
	return c
}

// injectRoutes adds n /26 prefixes (10.200.0.0/26, 10.200.0.64/26, ...,
// like Calico blocks) with next hop nh to gobgpd's global RIB.
func injectRoutes(t *testing.T, c gobgpapi.GoBgpServiceClient, n int, nh string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctxTODO, 60*time.Second)
	defer cancel()
	stream, err := c.AddPathStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	nhAttr, err := bgppkt.NewPathAttributeNextHop(netip.MustParseAddr(nh))
	if err != nil {
		t.Fatal(err)
	}
	attrs := []bgppkt.PathAttributeInterface{bgppkt.NewPathAttributeOrigin(bgppkt.BGP_ORIGIN_ATTR_TYPE_IGP), nhAttr}
	var batch []*gobgpapi.Path
	flush := func() {
		if err := stream.Send(&gobgpapi.AddPathStreamRequest{TableType: gobgpapi.TableType_TABLE_TYPE_GLOBAL, Paths: batch}); err != nil {
			t.Fatal(err)
		}
		batch = batch[:0]
	}
	for i := range n {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(200 + i/1024), byte(i / 4 % 256), byte(i % 4 * 64)}), 26)
		nlri, err := bgppkt.NewIPAddrPrefix(p)
		if err != nil {
			t.Fatal(err)
		}
		ap, err := gobgputil.NewPath(bgppkt.RF_IPv4_UC, nlri, false, attrs, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		batch = append(batch, ap)
		if len(batch) == 500 {
			flush()
		}
	}
	if len(batch) > 0 {
		flush()
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		t.Fatal(err)
	}
	r, err := c.GetTable(ctx, &gobgpapi.GetTableRequest{TableType: gobgpapi.TableType_TABLE_TYPE_GLOBAL, Family: &gobgpapi.Family{Afi: gobgpapi.Family_AFI_IP, Safi: gobgpapi.Family_SAFI_UNICAST}})
	if err != nil || r.GetNumDestination() != uint64(n) {
		t.Fatalf("gobgpd holds %d destinations, want %d: %v", r.GetNumDestination(), n, err)
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
