// Cross-node routing by vecnet-agent: several nodes (netlab network
// namespaces, each with vecnetd on an af_packet uplink), one agent per node
// against a real kube-apiserver, routes to the other nodes' IPAM blocks
// decided from the IPPools' vxlanMode/ipipMode.
package agent

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	v3 "github.com/vecnet/vecnet/pkg/apis/projectcalico/v3"
	"github.com/vecnet/vecnet/pkg/ipam"
	"github.com/vecnet/vecnet/test/kubeenv"
	"github.com/vecnet/vecnet/test/netlab"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// routeNode is a netlab node with its Node object and its agent.
type routeNode struct {
	*cluster
	nd *netlab.Node
}

// newRouteNode creates node<N> (InternalIPs: the netlab node's addresses)
// and starts its agent against the node's vecnetd.
func newRouteNode(t *testing.T, env *kubeenv.Env, ns, tag string, nd *netlab.Node) *routeNode {
	t.Helper()
	name := fmt.Sprintf("node%d", nd.N)
	node, err := env.Client.CoreV1().Nodes().Create(ctxTODO, &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name: name, Labels: map[string]string{"kubernetes.io/hostname": name, "vecnet-routes": tag},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.CoreV1().Nodes().Delete(ctxTODO, name, metav1.DeleteOptions{}) })
	node.Status.Addresses = []corev1.NodeAddress{
		{Type: corev1.NodeHostName, Address: name},
		{Type: corev1.NodeInternalIP, Address: nd.Addr4},
		{Type: corev1.NodeInternalIP, Address: nd.Addr6},
	}
	if _, err := env.Client.CoreV1().Nodes().UpdateStatus(ctxTODO, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, env: env, node: name, ns: ns, v: nd.V, bin: netlab.Binaries(t)}
	c.cniSock = filepath.Join(t.TempDir(), "cni.sock")
	c.health, c.metrics = freeAddr(t), freeAddr(t)
	c.startAgent()
	c.cni = libcni.NewCNIConfig([]string{c.bin}, nil)
	c.conf, err = libcni.ConfListFromBytes([]byte(fmt.Sprintf(
		`{"cniVersion": "1.1.0", "name": "vecnet", "plugins": [{"type": "vecnet", "agentSocket": %q}]}`, c.cniSock)))
	if err != nil {
		t.Fatal(err)
	}
	return &routeNode{cluster: c, nd: nd}
}

// agentRoutes reads the static routes of a node's vecnetd inside the test
// pools: prefix -> "VIA ENCAP" as `vecnetctl show routes` prints them.
func agentRoutes(v *netlab.Vecnetd) (map[string]string, string) {
	out, err := v.Ctl("show", "routes")
	if err != nil {
		return nil, out
	}
	got := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 7 || f[len(f)-1] != "static" || strings.HasPrefix(f[2], "resolved:") {
			continue
		}
		p, err := netip.ParsePrefix(f[1])
		if err != nil || !(netip.MustParsePrefix("10.88.0.0/16").Contains(p.Addr()) || netip.MustParsePrefix("fd88::/48").Contains(p.Addr())) {
			continue
		}
		got[f[1]] = f[2] + " " + strings.Join(f[5:len(f)-1], " ")
	}
	return got, out
}

// blockOf is the IPAM block of a pod address (blocks /26 and /122).
func blockOf(a netip.Addr) string {
	if a.Is4() {
		return netip.PrefixFrom(a, 26).Masked().String()
	}
	return netip.PrefixFrom(a, 122).Masked().String()
}

// waitRoutes waits until every node's agent routes are exactly want(node).
func waitRoutes(t *testing.T, what string, nodes []*routeNode, want func(n *routeNode) map[string]string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for _, n := range nodes {
		w := want(n)
		for {
			got, raw := agentRoutes(n.v)
			if mapsEqual(got, w) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s routes:\n got  %v\n want %v\nvecnetctl show routes:\n%s\nagent log:\n%s", what, n.node, got, w, raw, n.agentLog.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func patchPool(t *testing.T, env *kubeenv.Env, name, spec string) {
	t.Helper()
	if _, err := env.Dynamic.Resource(ippools).Patch(ctxTODO, name, types.MergePatchType, []byte(`{"spec":`+spec+`}`), metav1.PatchOptions{}); err != nil {
		t.Fatalf("patch pool %s: %v", name, err)
	}
}

func waitPrefixes(t *testing.T, nodes []*routeNode, want ...string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for _, n := range nodes {
		for {
			out, _ := n.v.Ctl("show", "prefixes")
			got := strings.Fields(out)
			if slices.Equal(got, want) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s pod prefixes: got %v, want %v\nagent log:\n%s", n.node, got, want, n.agentLog.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// restartVecnetd stops a node's vecnetd and starts another in its network
// namespace on the same socket, with the flags netlab.NewCluster uses.
func restartVecnetd(t *testing.T, n *routeNode) {
	t.Helper()
	socket := n.v.Socket
	if !n.nd.V.Stop(10 * time.Second) {
		t.Fatal("vecnetd did not stop")
	}
	v := &netlab.Vecnetd{Socket: socket, Bin: n.bin}
	startDaemon(t, n.nd.NS, "restarted vecnetd", func() error { _, err := v.Ctl("show", "vrfs"); return err },
		filepath.Join(n.bin, "vecnetd"), "--socket", socket, "--workers", "1",
		"--pod-cidrs", strings.Join(netlab.PodPrefixes, ","), "--uplinks", "eth0:af_packet")
	n.v = v
}

// pingRetry pings dst from pod p of node n. A routed next hop is resolved
// by the node's kernel on first use, which may cost the first packets, so
// it tries three times (as test/e2e does); a duplicate reply would mean the
// host kernel forwarded the packet too.
func pingRetry(t *testing.T, what string, n *routeNode, p *pod, dst netip.Addr) {
	t.Helper()
	var out string
	var err error
	for range 3 {
		out, err = netlab.InNetns(p.netns, "ping", "-c", "2", "-i", "0.2", "-W", "1", dst.String())
		if err == nil {
			if strings.Contains(out, "DUP!") {
				t.Fatalf("%s: ping %s from %s: duplicate replies\n%s", what, dst, n.node, out)
			}
			return
		}
	}
	t.Fatalf("%s: ping %s from %s (%s): %v\n%s\nagent log:\n%s", what, dst, p.name, n.node, err, out, n.agentLog.String())
}

func metricLine(t *testing.T, n *routeNode, name string) string {
	for _, l := range strings.Split(httpGet(t, "http://"+n.metrics+"/metrics"), "\n") {
		if strings.HasPrefix(l, name+" ") {
			return l
		}
	}
	return ""
}

// TestCrossNodeRoutes: three nodes, pods on each, pools switched between
// VXLAN, IPIP, routed and CrossSubnet; the agents route the other nodes'
// blocks accordingly and pods reach each other across nodes (IPv4 and
// IPv6). Releasing a node's blocks removes their routes; a vecnetd restart
// gets them back.
func TestCrossNodeRoutes(t *testing.T) {
	netlab.Require(t, "ping")
	env := kubeenv.Get(t)
	crdsOnce.Do(func() { env.InstallCRDs(t, filepath.Join(repoRoot, "deploy", "crds")) })
	lab := netlab.NewCluster(t, 3, netlab.ClusterOptions{Driver: "af_packet"})
	ns := env.Namespace(t)
	tag := netlab.Unique()
	sel := fmt.Sprintf("vecnet-routes == '%s'", tag)
	pools := []struct{ name, cidr, bs, sel, modes string }{
		{"routes-v4-" + tag, "10.88.0.0/16", "26", sel, "vxlanMode: Always, ipipMode: Never"},
		{"routes-v6-" + tag, "fd88::/48", "122", sel, "vxlanMode: Always"},
		// Selects no node: only a pod prefix.
		{"routes-extra-" + tag, "10.89.0.0/16", "26", "vecnet-none == 'x'", "vxlanMode: Never"},
	}
	for _, p := range pools {
		apply(t, env, ippools, fmt.Sprintf(`apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: %s}
spec: {cidr: %q, blockSize: %s, nodeSelector: %q, %s}
`, p.name, p.cidr, p.bs, p.sel, p.modes))
		name := p.name
		t.Cleanup(func() { _ = env.Dynamic.Resource(ippools).Delete(ctxTODO, name, metav1.DeleteOptions{}) })
	}
	v4pool, v6pool, extraPool := pools[0].name, pools[1].name, pools[2].name

	var nodes []*routeNode
	for _, nd := range lab.Nodes {
		nodes = append(nodes, newRouteNode(t, env, ns, tag, nd))
	}
	waitPrefixes(t, nodes, "10.88.0.0/16", "10.89.0.0/16", "fd88::/48")

	pods := map[*routeNode]*pod{}
	for i, n := range nodes {
		p := n.newPod(fmt.Sprintf("pod-%d", i+1), nil)
		n.add(p)
		if !p.v4.IsValid() || !p.v6.IsValid() {
			t.Fatalf("%s: pod addresses %v %v", n.node, p.v4, p.v6)
		}
		pods[n] = p
	}
	// want: the other nodes' blocks (of the pods in pods) with encap4 for
	// IPv4 blocks and encap6 for IPv6 blocks ("-": routed, via the node's
	// address of the family).
	want := func(encap4, encap6 string) func(n *routeNode) map[string]string {
		return func(n *routeNode) map[string]string {
			m := map[string]string{}
			for peer, p := range pods {
				if peer == n {
					continue
				}
				m[blockOf(p.v4)] = peer.nd.Addr4 + " " + encap4
				if encap6 == "-" {
					m[blockOf(p.v6)] = peer.nd.Addr6 + " -"
				} else {
					m[blockOf(p.v6)] = peer.nd.Addr4 + " " + encap6
				}
			}
			return m
		}
	}
	pingAll := func(what string) {
		t.Helper()
		for i, n := range nodes {
			from, to := pods[n], pods[nodes[(i+1)%len(nodes)]]
			if from == nil || to == nil {
				continue
			}
			for _, dst := range []netip.Addr{to.v4, to.v6} {
				pingRetry(t, what, n, from, dst)
			}
		}
	}

	waitRoutes(t, "vxlan", nodes, want("vxlan vni 4096", "vxlan vni 4096"))
	pingAll("vxlan")
	if l := metricLine(t, nodes[0], `vecnet_routes{encap="vxlan"}`); !strings.HasSuffix(l, " 4") {
		t.Errorf("node1 metric: %q, want 4 vxlan routes", l)
	}
	if l := metricLine(t, nodes[0], `vecnet_ipam_remote_blocks{state="routed"}`); !strings.HasSuffix(l, " 4") {
		t.Errorf("node1 metric: %q, want 4 routed remote blocks", l)
	}

	patchPool(t, env, v4pool, `{"vxlanMode": "Never", "ipipMode": "Always"}`)
	patchPool(t, env, v6pool, `{"vxlanMode": "Never"}`)
	waitRoutes(t, "ipip", nodes, want("ipip", "-"))
	pingAll("ipip")

	// Always -> Never; and CrossSubnet between nodes of one subnet is
	// routed too.
	patchPool(t, env, v4pool, `{"ipipMode": "Never"}`)
	patchPool(t, env, v6pool, `{"vxlanMode": "CrossSubnet"}`)
	waitRoutes(t, "never", nodes, want("-", "-"))
	pingAll("never")

	// A node's blocks go (its pods are deleted, then IPAM releases its
	// affinities, as when the node is removed): the others drop their
	// routes, and the remaining nodes still reach each other.
	gone := nodes[1]
	gone.del(pods[gone])
	delete(pods, gone)
	releaseAffinity(t, env, gone.node)
	waitRoutes(t, "after node2's blocks were released", nodes, want("-", "-"))
	pingRetry(t, "after release", nodes[0], pods[nodes[0]], pods[nodes[2]].v4)
	pingRetry(t, "after release", nodes[2], pods[nodes[2]], pods[nodes[0]].v6)

	// vecnetd restarts on node1: the agent re-creates the pod's interface
	// and the routes, and sets the pod prefixes again (the new vecnetd
	// starts with netlab's, without 10.89.0.0/16).
	patchPool(t, env, v4pool, `{"vxlanMode": "Always"}`)
	waitRoutes(t, "vxlan again", nodes, want("vxlan vni 4096", "-"))
	restartVecnetd(t, nodes[0])
	waitPrefixes(t, nodes[:1], "10.88.0.0/16", "10.89.0.0/16", "fd88::/48")
	waitRoutes(t, "after vecnetd restart", nodes[:1], want("vxlan vni 4096", "-"))
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := netlab.Run("ip", "-n", pods[nodes[0]].netns, "link", "show", "eth0"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod not restored after vecnetd restart\nagent log:\n%s", nodes[0].agentLog.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	pingRetry(t, "after vecnetd restart", nodes[0], pods[nodes[0]], pods[nodes[2]].v4)
	pingRetry(t, "after vecnetd restart", nodes[2], pods[nodes[2]], pods[nodes[0]].v6)

	// Deleting a pool removes its prefix.
	if err := env.Dynamic.Resource(ippools).Delete(ctxTODO, extraPool, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPrefixes(t, nodes, "10.88.0.0/16", "fd88::/48")

	for n, p := range pods {
		n.del(p)
	}
	if os.Getenv("VECNET_AGENT_LOG") != "" {
		t.Logf("node1 agent log:\n%s", nodes[0].agentLog.String())
	}
}

// releaseAffinity releases node's IPAM block affinities, as Calico does
// when a node is removed: its empty blocks go, the others lose their node.
func releaseAffinity(t *testing.T, env *kubeenv.Env, node string) {
	t.Helper()
	s := runtime.NewScheme()
	if err := v3.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	crc, err := client.New(env.Config, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	if err := ipam.New(crc, ipam.Options{}).ReleaseAffinity(ctxTODO, node); err != nil {
		t.Fatal(err)
	}
}
