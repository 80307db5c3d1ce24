package agent

// Interop with BIRD 2 as a top-of-rack router: BIRD runs in its own
// network namespace on the underlay, peers with every vecnet node (global
// BGPPeers, node-to-node mesh off, one AS per node from the nodes'
// annotations), learns every pod block and originates prefixes of its own.

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vecnet/vecnet/test/netlab"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

const (
	torAddr4 = "192.168.77.250"
	torAddr6 = "fd00:77::fa"
	torASN   = 65000
	// torNet4, torNet6 are what BIRD originates: the addresses of an
	// interface in its namespace (a bridge: this kernel has no dummy) (documentation prefixes, RFC 5737
	// and RFC 3849, used only inside the test's namespaces).
	torNet4  = "198.51.100.0/24"
	torHost4 = "198.51.100.1"
	torNet6  = "2001:db8:100::/64"
	torHost6 = "2001:db8:100::1"
	md5Key   = "vecnet-md5-key"
)

// bird is a BIRD daemon in its own namespace.
type bird struct {
	t     *testing.T
	ns    string
	conf  string // configuration file
	birdc func(args ...string) (string, error)
}

// torConf is the router's configuration: a session per node and family;
// the session named badPassword gets a password the node does not have.
func torConf(b *bgpLab, badPassword string) string {
	var conf strings.Builder
	fmt.Fprintf(&conf, `log stderr all;
router id %s;
protocol device { scan time 1; }
# The prefixes this router originates.
protocol direct { ipv4; ipv6; interface "dummy0"; }
# Pod blocks learned from the nodes go to this namespace's kernel, so that
# replies to pods find their way back.
protocol kernel { ipv4 { import none; export where source = RTS_BGP; }; }
protocol kernel { ipv6 { import none; export where source = RTS_BGP; }; }
template bgp vnode {
  local as %d;
  hold time 6;
  graceful restart on;
}
`, torAddr4, torASN)
	for _, n := range b.nodes {
		asn := 65000 + n.nd.N
		for _, s := range []struct{ fam, addr string }{{"v4", n.nd.Addr4}, {"v6", n.nd.Addr6}} {
			name := fmt.Sprintf("node%d_%s", n.nd.N, s.fam)
			pw := md5Key
			if name == badPassword {
				pw = "not-" + md5Key
			}
			afi := "ipv4"
			if s.fam == "v6" {
				afi = "ipv6"
			}
			fmt.Fprintf(&conf, "protocol bgp %s from vnode { neighbor %s as %d; password %q; %s { import all; export all; }; }\n", name, s.addr, asn, pw, afi)
		}
	}
	return conf.String()
}

// reconfigure rewrites BIRD's configuration and makes it apply it.
func (r *bird) reconfigure(b *bgpLab, badPassword string) {
	r.t.Helper()
	if err := os.WriteFile(r.conf, []byte(torConf(b, badPassword)), 0o644); err != nil {
		r.t.Fatal(err)
	}
	if out, err := r.birdc("configure"); err != nil {
		r.t.Fatalf("birdc configure: %v\n%s", err, out)
	}
}

// established counts BIRD's established BGP sessions.
func (r *bird) established() (int, string) {
	out, _ := r.birdc("show", "protocols")
	return strings.Count(out, "Established"), out
}

// startBIRD attaches a router namespace to the lab's underlay and runs
// BIRD there, peering with every node (AS 65001, 65002, ...).
func startBIRD(t *testing.T, b *bgpLab) *bird {
	t.Helper()
	netlab.Require(t, "bird", "birdc")
	r := &bird{t: t, ns: netlab.Netns(t, "vntor")}
	port := "tor-" + netlab.Unique()
	netlab.MustRun(t, "ip", "link", "add", port, "netns", b.lab.Underlay, "type", "veth", "peer", "name", "eth0", "netns", r.ns)
	netlab.MustRun(t, "ip", "-n", b.lab.Underlay, "link", "set", port, "master", "br0", "up")
	netlab.MustRun(t, "ip", "netns", "exec", r.ns, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	netlab.MustRun(t, "ip", "-n", r.ns, "addr", "add", torAddr4+"/24", "dev", "eth0")
	netlab.MustRun(t, "ip", "-n", r.ns, "addr", "add", torAddr6+"/64", "dev", "eth0", "nodad")
	netlab.MustRun(t, "ip", "-n", r.ns, "link", "set", "eth0", "up")
	netlab.MustRun(t, "ip", "-n", r.ns, "link", "set", "lo", "up")
	netlab.MustRun(t, "ip", "-n", r.ns, "link", "add", "dummy0", "type", "bridge")
	netlab.MustRun(t, "ip", "-n", r.ns, "addr", "add", torHost4+"/24", "dev", "dummy0")
	netlab.MustRun(t, "ip", "-n", r.ns, "addr", "add", torHost6+"/64", "dev", "dummy0", "nodad")
	netlab.MustRun(t, "ip", "-n", r.ns, "link", "set", "dummy0", "up")

	r.birdc, r.conf = startBIRDWith(t, r.ns, "top of rack", torConf(b, ""))
	return r
}

// waitRoute waits until BIRD's table has (or, with present false, lacks)
// prefix p.
func (r *bird) waitRoute(p string, present bool, d time.Duration) {
	r.t.Helper()
	deadline := time.Now().Add(d)
	for {
		out, _ := r.birdc("show", "route")
		if strings.Contains(out, p+" ") == present {
			return
		}
		if time.Now().After(deadline) {
			out, _ := r.birdc("show", "route")
			proto, _ := r.birdc("show", "protocols")
			r.t.Fatalf("BIRD: route %s present=%v not reached in %s\n%s\n%s", p, !present, d, out, proto)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pingFails checks that dst is unreachable from pod p.
func pingFails(t *testing.T, what string, n *routeNode, p *pod, dst string) {
	t.Helper()
	out, err := netlab.InNetns(p.netns, "ping", "-c", "2", "-i", "0.2", "-W", "1", dst)
	if err == nil {
		t.Fatalf("%s: ping %s from %s succeeded:\n%s", what, dst, n.node, out)
	}
}

// TestBGPWithBIRD: BIRD as a top-of-rack router. Every node peers with it
// (IPv4 and IPv6, TCP MD5 password from a Secret); BIRD learns every pod
// block, the nodes learn each other's blocks and BIRD's own prefixes
// through it, pods reach each other and BIRD's prefixes; a BGPFilter
// rejecting BIRD's prefixes takes them away; a wrong password leaves the
// session down without disturbing the others.
func TestBGPWithBIRD(t *testing.T) {
	b := newBGPLab(t, 3, `{nodeToNodeMeshEnabled: false, serviceClusterIPs: [{cidr: 10.96.0.0/16}],
  communities: [{name: svc, value: "65000:100"}],
  prefixAdvertisements: [{cidr: 10.96.0.0/16, communities: [svc, "65000:200:300"]}]}`, func(i int, n *corev1.Node) {
		n.Annotations["projectcalico.org/ASNumber"] = fmt.Sprint(65001 + i)
	})
	tor := startBIRD(t, b)
	if _, err := b.env.Client.CoreV1().Secrets(b.ns).Create(ctxTODO, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "bgp-passwords"}, StringData: map[string]string{"tor": md5Key},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct{ name, ip string }{{"tor-v4", torAddr4}, {"tor-v6", torAddr6}} {
		apply(t, b.env, bgppeers, fmt.Sprintf(`apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: %s}
spec:
  peerIP: %q
  asNumber: %d
  password: {secretKeyRef: {name: bgp-passwords, key: tor}}
`, p.name, p.ip, torASN))
		name := p.name
		t.Cleanup(func() { _ = b.env.Dynamic.Resource(bgppeers).Delete(ctxTODO, name, metav1.DeleteOptions{}) })
	}
	b.addPods()

	// BIRD learns every pod block.
	for _, p := range b.pods {
		tor.waitRoute(blockOf(p.v4), true, 30*time.Second)
		tor.waitRoute(blockOf(p.v6), true, 30*time.Second)
	}
	// Every node advertises the service CIDR with the communities of its
	// prefixAdvertisements; BIRD keeps the three paths.
	tor.waitRoute("10.96.0.0/16", true, 30*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _ := tor.birdc("show", "route", "all", "for", "10.96.0.0/16")
		if strings.Count(out, "BGP.community: (65000,100)") == 3 && strings.Count(out, "BGP.large_community: (65000, 200, 300)") == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("BIRD: want 10.96.0.0/16 from 3 nodes with community (65000,100) and large community (65000, 200, 300):\n%s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// The nodes learn each other's blocks (through BIRD) and BIRD's
	// prefixes; BIRD's own are routed via BIRD.
	b.waitBGPRoutes("through BIRD", b.nodes, 30*time.Second, func(n *routeNode) map[string]string {
		m := b.blocksWant()(n)
		m[torNet4], m[torNet6] = torAddr4, torAddr6
		return m
	}, nil)
	b.pingAll("through BIRD")
	for n, p := range b.pods {
		pingRetry(t, "to BIRD's prefix", n, p, mustAddr(torHost4))
		pingRetry(t, "to BIRD's prefix", n, p, mustAddr(torHost6))
	}
	if n, out := tor.established(); n != 6 {
		t.Fatalf("BIRD sessions:\n%s", out)
	}

	// A BGPFilter on the BGPPeers rejects BIRD's prefixes.
	apply(t, b.env, bgpfilters, fmt.Sprintf(`apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata: {name: no-tor-nets}
spec:
  importV4: [{cidr: %q, matchOperator: Equal, action: Reject}]
  importV6: [{cidr: %q, matchOperator: In, action: Reject}]
`, torNet4, torNet6))
	t.Cleanup(func() { _ = b.env.Dynamic.Resource(bgpfilters).Delete(ctxTODO, "no-tor-nets", metav1.DeleteOptions{}) })
	for _, name := range []string{"tor-v4", "tor-v6"} {
		if _, err := b.env.Dynamic.Resource(bgppeers).Patch(ctxTODO, name, types.MergePatchType, []byte(`{"spec":{"filters":["no-tor-nets"]}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	b.waitBGPRoutes("filtered", b.nodes, 30*time.Second, func(*routeNode) map[string]string { return nil },
		func(*routeNode) []string { return []string{torNet4, torNet6} })
	for n, p := range b.pods {
		pingFails(t, "BIRD's prefix filtered", n, p, torHost4)
		pingFails(t, "BIRD's prefix filtered", n, p, torHost6)
	}
	// The pod blocks still come through.
	b.pingAll("filtered")

	// A wrong password on one session (BIRD's side of node1's IPv4
	// session): it goes down and stays down, node1's agent keeps running,
	// every other session is untouched.
	n1 := b.nodes[0]
	tor.reconfigure(b, "node1_v4")
	deadline = time.Now().Add(30 * time.Second)
	for {
		out, _ := tor.birdc("show", "protocols", "node1_v4")
		if !strings.Contains(out, "Established") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node1's session survived a wrong password:\n%s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(2 * b.holdTime())
	if n, out := tor.established(); n != 5 {
		t.Fatalf("with one wrong password, want the 5 other sessions established:\n%s", out)
	}
	select {
	case <-n1.agentDone:
		t.Fatalf("node1's agent exited:\n%s", n1.agentLog.String())
	default:
	}
	if !strings.Contains(n1.agentLog.String(), "bgp: session down") {
		t.Errorf("node1's agent did not log the session going down:\n%s", n1.agentLog.String())
	}
	// IPv6 still works from node1; fixed, everything comes back.
	for peer, p := range b.pods {
		if peer != n1 {
			pingRetry(t, "one IPv4 session down", n1, b.pods[n1], p.v6)
		}
	}
	tor.reconfigure(b, "")
	deadline = time.Now().Add(30 * time.Second)
	for {
		n, out := tor.established()
		if n == 6 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sessions not all back after the password was fixed:\n%s\nagent log:\n%s", out, n1.agentLog.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	b.waitBGPRoutes("password fixed", b.nodes, 30*time.Second, b.blocksWant(), nil)
	b.pingAll("password fixed")
}

// blocksWant: every other node's pod blocks, via any next hop (BIRD's,
// or the node's when BIRD passes it on).
func (b *bgpLab) blocksWant() func(n *routeNode) map[string]string {
	return func(n *routeNode) map[string]string {
		m := map[string]string{}
		for peer, p := range b.pods {
			if peer != n {
				m[blockOf(p.v4)], m[blockOf(p.v6)] = "*", "*"
			}
		}
		return m
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
