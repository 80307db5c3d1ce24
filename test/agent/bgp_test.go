// BGP routing by vecnet-agent (--bgp): three netlab nodes with no
// encapsulation, one agent per node in the node's network namespace
// (sessions run on the node's own stack, as a hostNetwork DaemonSet's),
// against a real kube-apiserver reached over the underlay.
package agent

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/vecnet/vecnet/test/kubeenv"
	"github.com/vecnet/vecnet/test/netlab"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

var (
	bgpconfigs = schema.GroupVersionResource{Group: "projectcalico.org", Version: "v3", Resource: "bgpconfigurations"}
	bgppeers   = schema.GroupVersionResource{Group: "projectcalico.org", Version: "v3", Resource: "bgppeers"}
	bgpfilters = schema.GroupVersionResource{Group: "projectcalico.org", Version: "v3", Resource: "bgpfilters"}
)

// bgpLab is a BGP test cluster.
type bgpLab struct {
	t     *testing.T
	env   *kubeenv.Env
	lab   *netlab.Cluster
	ns    string
	tag   string
	kcfg  string
	nodes []*routeNode
	pods  map[*routeNode]*pod
}

// newBGPLab builds n nodes with routed (Never) pools and no routes but
// BGP's. annotate adds annotations and labels to node i (from 0) before
// its agent starts; config is the default BGPConfiguration's spec.
func newBGPLab(t *testing.T, n int, config string, annotate func(i int, n *corev1.Node)) *bgpLab {
	netlab.Require(t, "ping")
	env := kubeenv.Get(t)
	crdsOnce.Do(func() { env.InstallCRDs(t, filepath.Join(repoRoot, "deploy", "crds")) })
	b := &bgpLab{t: t, env: env, ns: env.Namespace(t), tag: netlab.Unique(), pods: map[*routeNode]*pod{}}
	b.lab = netlab.NewCluster(t, n, netlab.ClusterOptions{Driver: "af_packet"})
	b.kcfg = b.lab.ProxiedKubeconfig(t, env.Kubeconfig)
	sel := fmt.Sprintf("vecnet-routes == '%s'", b.tag)
	for _, p := range []struct{ name, cidr, bs string }{
		{"bgp-v4-" + b.tag, "10.88.0.0/16", "26"},
		{"bgp-v6-" + b.tag, "fd88::/48", "122"},
	} {
		apply(t, env, ippools, fmt.Sprintf(`apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: %s}
spec: {cidr: %q, blockSize: %s, nodeSelector: %q, vxlanMode: Never, ipipMode: Never}
`, p.name, p.cidr, p.bs, sel))
		name := p.name
		t.Cleanup(func() { _ = env.Dynamic.Resource(ippools).Delete(ctxTODO, name, metav1.DeleteOptions{}) })
	}
	apply(t, env, bgpconfigs, "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\nspec: "+config+"\n")
	t.Cleanup(func() { _ = env.Dynamic.Resource(bgpconfigs).Delete(ctxTODO, "default", metav1.DeleteOptions{}) })
	for i, nd := range b.lab.Nodes {
		b.nodes = append(b.nodes, b.newNode(nd, func(n *corev1.Node) {
			if annotate != nil {
				annotate(i, n)
			}
		}))
	}
	waitPrefixes(t, b.nodes, "10.88.0.0/16", "fd88::/48")
	return b
}

// newNode is newRouteNode with the agent in the node's namespace, BGP on.
func (b *bgpLab) newNode(nd *netlab.Node, annotate func(*corev1.Node)) *routeNode {
	t := b.t
	name := fmt.Sprintf("node%d", nd.N)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name: name, Labels: map[string]string{"kubernetes.io/hostname": name, "vecnet-routes": b.tag}, Annotations: map[string]string{},
	}}
	annotate(node)
	node, err := b.env.Client.CoreV1().Nodes().Create(ctxTODO, node, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.env.Client.CoreV1().Nodes().Delete(ctxTODO, name, metav1.DeleteOptions{}) })
	node.Status.Addresses = []corev1.NodeAddress{
		{Type: corev1.NodeHostName, Address: name},
		{Type: corev1.NodeInternalIP, Address: nd.Addr4},
		{Type: corev1.NodeInternalIP, Address: nd.Addr6},
	}
	if _, err := b.env.Client.CoreV1().Nodes().UpdateStatus(ctxTODO, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, env: b.env, node: name, ns: b.ns, v: nd.V, bin: netlab.Binaries(t),
		netns: nd.NS, kubeconfig: b.kcfg,
		agentFlags: []string{"--bgp", "--bgp-hold-time", "6s", "--bgp-secret-namespace", b.ns}}
	c.cniSock = filepath.Join(t.TempDir(), "cni.sock")
	// Loopback of the node's namespace: any port is free there.
	c.health, c.metrics = "127.0.0.1:9099", "127.0.0.1:9091"
	c.startAgent()
	rn := &routeNode{cluster: c, nd: nd}
	rn.cni, rn.conf = newCNI(t, c.bin, c.cniSock)
	return rn
}

// addPods adds one pod per node.
func (b *bgpLab) addPods() {
	for i, n := range b.nodes {
		p := n.newPod(fmt.Sprintf("pod-%d", i+1), nil)
		n.add(p)
		b.pods[n] = p
	}
}

// bgpRoutes reads the bgp routes of a node's vecnetd: prefix -> via.
func bgpRoutes(v *netlab.Vecnetd) (map[string]string, string) {
	out, err := v.Ctl("show", "routes")
	if err != nil {
		return nil, out
	}
	got := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 4 || f[len(f)-1] != "bgp" || strings.HasPrefix(f[2], "resolved:") {
			continue
		}
		got[f[1]] = f[2]
	}
	return got, out
}

// waitBGPRoutes waits until each node's bgp routes include want(node)
// (prefix -> via, "*" for any) and none of absent(node).
func (b *bgpLab) waitBGPRoutes(what string, nodes []*routeNode, timeout time.Duration, want func(n *routeNode) map[string]string, absent func(n *routeNode) []string) time.Duration {
	b.t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for _, n := range nodes {
		for {
			got, raw := bgpRoutes(n.v)
			ok := true
			for p, via := range want(n) {
				if g, there := got[p]; !there || (via != "*" && g != via) {
					ok = false
				}
			}
			if absent != nil {
				for _, p := range absent(n) {
					if _, there := got[p]; there {
						ok = false
					}
				}
			}
			if ok {
				break
			}
			if time.Now().After(deadline) {
				b.t.Fatalf("%s: %s bgp routes %v after %s\nvecnetctl show routes:\n%s\nagent log:\n%s", what, n.node, got, timeout, raw, n.agentLog.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return time.Since(start)
}

// meshWant: every other node's pod blocks, via that node's address.
func (b *bgpLab) meshWant(exclude ...*routeNode) func(n *routeNode) map[string]string {
	return func(n *routeNode) map[string]string {
		m := map[string]string{}
	outer:
		for peer, p := range b.pods {
			if peer == n {
				continue
			}
			for _, x := range exclude {
				if x == peer {
					continue outer
				}
			}
			m[blockOf(p.v4)] = peer.nd.Addr4
			m[blockOf(p.v6)] = peer.nd.Addr6
		}
		return m
	}
}

func (b *bgpLab) pingAll(what string) {
	b.t.Helper()
	for n, from := range b.pods {
		for peer, to := range b.pods {
			if peer == n {
				continue
			}
			pingRetry(b.t, what, n, from, to.v4)
			pingRetry(b.t, what, n, from, to.v6)
		}
	}
}

// TestBGPMesh: node-to-node mesh, no overlay. Pods on all nodes reach
// each other over BGP-learned routes only; an agent restart (graceful
// restart) loses no packet; a removed node's routes are withdrawn within
// the hold time.
func TestBGPMesh(t *testing.T) {
	b := newBGPLab(t, 3, "{asNumber: 64512}", nil)
	b.addPods()
	conv := b.waitBGPRoutes("mesh", b.nodes, 30*time.Second, b.meshWant(), nil)
	t.Logf("mesh converged %s after the last pod", conv.Round(time.Millisecond))
	b.pingAll("mesh")

	// The gobgp CLI's API is up in the node's namespace: vecnetctl reads it.
	out, err := netlab.InNetns(b.nodes[0].nd.NS, filepath.Join(b.nodes[0].bin, "vecnetctl"), "show", "bgp")
	if err != nil || strings.Count(out, "Established") != 4 {
		t.Fatalf("vecnetctl show bgp on node1: %v\n%s", err, out)
	}

	// Metrics: four sessions up (two peers, two families).
	if _, body, err := nsHTTPGet(b.nodes[0].nd.NS, "http://"+b.nodes[0].metrics+"/metrics"); err != nil ||
		!strings.Contains(body, `vecnet_bgp_sessions{state="Established"} 4`) || !strings.Contains(body, `vecnet_routes{encap="bgp"} 4`) {
		t.Errorf("node1 metrics: %v; want 4 established sessions and 4 bgp routes:\n%s", err, grepLines(body, "vecnet_bgp_sessions", "vecnet_routes"))
	}

	// GoBGP's own CLI, as operators use it (hack/test.sh installs it).
	if cli := gobgpCLI(); cli == "" {
		missingGoBGP(t, "gobgp")
		t.Log("gobgp CLI not installed (hack/test.sh installs it in bin/): not checked")
	} else if out, err := netlab.InNetns(b.nodes[0].nd.NS, cli, "neighbor"); err != nil || strings.Count(out, "Establ") != 4 {
		t.Fatalf("gobgp neighbor on node1: %v\n%s", err, out)
	}

	// Graceful restart: node2's agent stops and comes back while node1's
	// pod pings node2's pod every 20 ms. No reply may be lost: node1 keeps
	// node2's routes (GoBGP helper mode), node2's vecnetd keeps its own.
	n1, n2, n3 := b.nodes[0], b.nodes[1], b.nodes[2]
	pinger := netlab.Background(t, b.pods[n1].netns, "ping", "-i", "0.02", "-c", "1000", "-W", "2", b.pods[n2].v4.String())
	time.Sleep(time.Second)
	stopAgent(t, n2, syscall.SIGTERM, 10*time.Second)
	time.Sleep(2 * b.holdTime()) // past the hold time: GR, not keepalives, keeps the routes
	if got, _ := bgpRoutes(n1.v); got[blockOf(b.pods[n2].v4)] == "" {
		t.Fatalf("node1 dropped node2's route while node2's agent was down: %v", got)
	}
	n2.startAgent()
	b.waitBGPRoutes("after node2's agent restart", b.nodes, 30*time.Second, b.meshWant(), nil)
	err = pinger.Wait()
	pout := pinger.Stdout.(*bytes.Buffer).String()
	if err != nil || !strings.Contains(pout, " 0% packet loss") {
		t.Fatalf("ping from node1's pod to node2's during node2's agent restart lost replies: %v\n%s", err, pout[max(0, len(pout)-300):])
	}
	t.Logf("graceful restart: %s", strings.TrimSpace(pout[strings.LastIndex(pout, "---"):]))
	b.pingAll("after graceful restart")

	// Node removal: node3's agent goes and its Node object is deleted; the
	// others withdraw its routes within the hold time.
	stopAgent(t, n3, syscall.SIGKILL, 5*time.Second)
	start := time.Now()
	if err := b.env.Client.CoreV1().Nodes().Delete(ctxTODO, n3.node, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	gone := []string{blockOf(b.pods[n3].v4), blockOf(b.pods[n3].v6)}
	b.waitBGPRoutes("after node3 was removed", []*routeNode{n1, n2}, b.holdTime(), b.meshWant(n3), func(*routeNode) []string { return gone })
	t.Logf("node3's routes withdrawn %s after its Node was deleted (hold time %s)", time.Since(start).Round(time.Millisecond), b.holdTime())
	delete(b.pods, n3)
	b.pingAll("after node3 was removed")
}

// gobgpCLI finds GoBGP's CLI: bin/gobgp (hack/test.sh) or $PATH.
func gobgpCLI() string {
	if p := filepath.Join(repoRoot, "bin", "gobgp"); fileExists(p) {
		return p
	}
	p, _ := exec.LookPath("gobgp")
	return p
}

// missingGoBGP fails t for a GoBGP binary (gobgp, gobgpd) that is not
// installed where hack/test.sh and hack/bench.sh install them and say so
// (VECNET_REQUIRE_GOBGP=1): there the check must not quietly drop out.
func missingGoBGP(t *testing.T, bin string) {
	t.Helper()
	if os.Getenv("VECNET_REQUIRE_GOBGP") == "1" {
		t.Fatalf("%s not found in bin/ or $PATH (VECNET_REQUIRE_GOBGP=1: failing, not skipping)", bin)
	}
}

func grepLines(s string, prefixes ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				out = append(out, l)
			}
		}
	}
	return strings.Join(out, "\n")
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func (b *bgpLab) holdTime() time.Duration { return 6 * time.Second }

// TestBGPRouteReflector: mesh off; node1 is a route reflector (cluster ID
// annotation, label), node2 and node3 peer only with it through one
// BGPPeer, and still learn each other's routes with the originator's next
// hop.
func TestBGPRouteReflector(t *testing.T) {
	b := newBGPLab(t, 3, "{nodeToNodeMeshEnabled: false}", func(i int, n *corev1.Node) {
		if i == 0 {
			n.Labels["route-reflector"] = "true"
			n.Annotations["projectcalico.org/RouteReflectorClusterID"] = "244.0.0.1"
		}
	})
	apply(t, b.env, bgppeers, fmt.Sprintf(`apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: peer-with-rr}
spec: {nodeSelector: "vecnet-routes == '%s' && !has(route-reflector)", peerSelector: "route-reflector == 'true'"}
`, b.tag))
	t.Cleanup(func() { _ = b.env.Dynamic.Resource(bgppeers).Delete(ctxTODO, "peer-with-rr", metav1.DeleteOptions{}) })
	b.addPods()
	b.waitBGPRoutes("route reflection", b.nodes, 30*time.Second, b.meshWant(), nil)
	b.pingAll("route reflection")
	// node2 has one session (to the reflector), node1 two clients.
	out, err := netlab.InNetns(b.nodes[1].nd.NS, filepath.Join(b.nodes[1].bin, "vecnetctl"), "show", "bgp")
	if err != nil || strings.Count(out, "Established") != 2 || !strings.Contains(out, b.nodes[0].nd.Addr4) || strings.Contains(out, b.nodes[2].nd.Addr4) {
		t.Fatalf("node2's sessions: want only node1 (IPv4 and IPv6): %v\n%s", err, out)
	}
	out, err = netlab.InNetns(b.nodes[0].nd.NS, filepath.Join(b.nodes[0].bin, "vecnetctl"), "show", "bgp")
	if err != nil || strings.Count(out, "rr-client") != 4 {
		t.Fatalf("node1's sessions: want 4 route reflector clients: %v\n%s", err, out)
	}
}

// TestBGPInvalidConfigKeepsLastGood: an invalid BGPPeer update is reported
// with the field it got wrong and the previous version stays in force.
func TestBGPInvalidConfigKeepsLastGood(t *testing.T) {
	b := newBGPLab(t, 2, "{nodeToNodeMeshEnabled: false}", nil)
	apply(t, b.env, bgppeers, fmt.Sprintf(`apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: all-nodes}
spec: {nodeSelector: "vecnet-routes == '%s'", peerSelector: "vecnet-routes == '%s'"}
`, b.tag, b.tag))
	t.Cleanup(func() { _ = b.env.Dynamic.Resource(bgppeers).Delete(ctxTODO, "all-nodes", metav1.DeleteOptions{}) })
	b.addPods()
	b.waitBGPRoutes("peers", b.nodes, 30*time.Second, b.meshWant(), nil)
	// A selector the CRD schema accepts but Calico's grammar does not.
	if _, err := b.env.Dynamic.Resource(bgppeers).Patch(ctxTODO, "all-nodes", types.MergePatchType,
		[]byte(`{"spec":{"peerSelector":"vecnet-routes == "}}`), metav1.PatchOptions{}); err != nil {
		t.Fatalf("the API server refused the patch (then the CRD validates selectors, fine, but this test wants the agent's check): %v", err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(b.nodes[0].agentLog.String(), "spec.peerSelector") {
		if time.Now().After(deadline) {
			t.Fatalf("no log naming spec.peerSelector:\n%s", b.nodes[0].agentLog.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The agent records the Event asynchronously, after the log line.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		evs, err := b.env.Client.CoreV1().Events(metav1.NamespaceDefault).List(ctxTODO, metav1.ListOptions{FieldSelector: "involvedObject.name=all-nodes"})
		if err == nil && len(evs.Items) > 0 && strings.Contains(evs.Items[0].Message, "spec.peerSelector") {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("no Event naming spec.peerSelector on BGPPeer all-nodes: %v %+v", err, evs)
			break
		}
	}
	// Still peered: the routes stay and traffic flows.
	time.Sleep(2 * b.holdTime())
	b.waitBGPRoutes("after an invalid update", b.nodes, time.Second, b.meshWant(), nil)
	b.pingAll("after an invalid update")
}

// stopAgent signals node n's agent and waits for it to exit.
func stopAgent(t *testing.T, n *routeNode, sig syscall.Signal, d time.Duration) {
	t.Helper()
	_ = n.agent.Process.Signal(sig)
	select {
	case <-n.agentDone:
	case <-time.After(d):
		t.Fatalf("process did not exit within %s", d)
	}
}

func newCNI(t *testing.T, bin, sock string) (*libcni.CNIConfig, *libcni.NetworkConfigList) {
	t.Helper()
	conf, err := libcni.ConfListFromBytes([]byte(fmt.Sprintf(
		`{"cniVersion": "1.1.0", "name": "vecnet", "plugins": [{"type": "vecnet", "agentSocket": %q}]}`, sock)))
	if err != nil {
		t.Fatal(err)
	}
	return libcni.NewCNIConfig([]string{bin}, nil), conf
}

// TestBGPRestartSweepsStale: a route withdrawn while a node's agent was
// down stays in that node's vecnetd through the restart (no gap for the
// others) and is removed once every peer has sent End-of-RIB.
func TestBGPRestartSweepsStale(t *testing.T) {
	b := newBGPLab(t, 2, "{asNumber: 64512}", nil)
	b.addPods()
	b.waitBGPRoutes("mesh", b.nodes, 30*time.Second, b.meshWant(), nil)
	n1, n2 := b.nodes[0], b.nodes[1]
	stopAgent(t, n2, syscall.SIGTERM, 10*time.Second)

	// node1's pod and blocks go while node2's agent is down.
	gone := []string{blockOf(b.pods[n1].v4), blockOf(b.pods[n1].v6)}
	n1.del(b.pods[n1])
	delete(b.pods, n1)
	releaseAffinity(t, b.env, n1.node)
	time.Sleep(time.Second)
	if got, _ := bgpRoutes(n2.v); got[gone[0]] == "" {
		t.Fatalf("node2's vecnetd lost node1's route while node2's agent was down: %v", got)
	}
	n2.startAgent()
	b.waitBGPRoutes("stale routes swept after the restart", []*routeNode{n2}, 30*time.Second,
		func(*routeNode) map[string]string { return nil }, func(*routeNode) []string { return gone })
	if !strings.Contains(n2.agentLog.String(), "initial sync done") || !strings.Contains(n2.agentLog.String(), "graceful_restart=true") {
		t.Errorf("node2's agent did not restart gracefully:\n%s", n2.agentLog.String())
	}
}
