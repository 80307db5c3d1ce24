package netlab

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/vecnet/vecnet/pkg/kubecluster"
)

// A Cluster is several nodes on one underlay: each node is a network
// namespace (its "host network") with an uplink veth eth0 into a bridge in
// the underlay namespace, and a vecnetd attached to that uplink. Pods are
// namespaces with an interface made by their node's vecnetd.
//
// Addresses: node i (from 1) is 192.168.77.i/24 and fd00:77::i/64 on eth0;
// its pods get 10.88.i.k and fd88:0:0:i::k; the pod prefixes (what every
// uplink filter steers to vecnetd) are 10.88.0.0/16 and fd88::/48.
type Cluster struct {
	Underlay string // namespace with the bridge br0
	Nodes    []*Node

	proxyOnce sync.Once // Proxy's address on br0
}

// Node is one node of a Cluster.
type Node struct {
	N            int
	NS           string
	Addr4, Addr6 string
	V            *Vecnetd
	pods         int
}

// Pod is a namespace with one interface from its node's vecnetd.
type Pod struct {
	NS, Ifname string
	V4, V6     string
	Node       *Node
}

// ClusterOptions choose how the nodes attach and route.
type ClusterOptions struct {
	Driver string // uplink driver: af_xdp, af_packet or auto
	// Encap is how nodes route each other's pod prefixes: ipip, vxlan or
	// none (routed on the underlay). Empty: no routes are added.
	Encap   string
	Workers int
	// Flags are extra vecnetd flags.
	Flags []string
}

// PodPrefixes are the cluster's pod prefixes.
var PodPrefixes = []string{"10.88.0.0/16", "fd88::/48"}

// NewCluster builds n nodes. Everything is removed when the test ends.
func NewCluster(t testing.TB, n int, o ClusterOptions) *Cluster {
	t.Helper()
	Require(t, "ip")
	c := &Cluster{Underlay: Netns(t, "vnul")}
	MustRun(t, "ip", "-n", c.Underlay, "link", "add", "br0", "type", "bridge")
	MustRun(t, "ip", "-n", c.Underlay, "link", "set", "br0", "up")
	for i := 1; i <= n; i++ {
		nd := &Node{N: i, NS: Netns(t, fmt.Sprintf("vnnode%d", i)), Addr4: fmt.Sprintf("192.168.77.%d", i), Addr6: fmt.Sprintf("fd00:77::%d", i)}
		port := fmt.Sprintf("n%d-%s", i, Unique())
		MustRun(t, "ip", "link", "add", port, "netns", c.Underlay, "type", "veth", "peer", "name", "eth0", "netns", nd.NS)
		MustRun(t, "ip", "-n", c.Underlay, "link", "set", port, "master", "br0", "up")
		// Keep IPv6 addresses across link down/up, as a configured
		// server does; the kernel default drops them.
		MustRun(t, "ip", "netns", "exec", nd.NS, "sysctl", "-qw", "net.ipv6.conf.all.keep_addr_on_down=1", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
		MustRun(t, "ip", "-n", nd.NS, "addr", "add", nd.Addr4+"/24", "dev", "eth0")
		MustRun(t, "ip", "-n", nd.NS, "addr", "add", nd.Addr6+"/64", "dev", "eth0", "nodad")
		MustRun(t, "ip", "-n", nd.NS, "link", "set", "eth0", "up")
		c.Nodes = append(c.Nodes, nd)
	}
	drv := o.Driver
	if drv == "" {
		drv = "auto"
	}
	workers := max(o.Workers, 1)
	for _, nd := range c.Nodes {
		flags := append([]string{"--workers", fmt.Sprint(workers), "--pod-cidrs", strings.Join(PodPrefixes, ","), "--uplinks", "eth0:" + drv}, o.Flags...)
		nd.V = StartVecnetdIn(t, nd.NS, flags...)
	}
	if o.Encap != "" {
		for _, nd := range c.Nodes {
			for _, peer := range c.Nodes {
				if peer != nd {
					nd.RouteTo(t, peer, o.Encap)
				}
			}
		}
	}
	return c
}

// PodCIDRs are node n's pod prefixes.
func (nd *Node) PodCIDRs() (v4, v6 string) {
	return fmt.Sprintf("10.88.%d.0/24", nd.N), fmt.Sprintf("fd88:0:0:%d::/64", nd.N)
}

// RouteTo routes peer's pod prefixes from nd with encap (ipip, vxlan or
// none).
func (nd *Node) RouteTo(t testing.TB, peer *Node, encap string) {
	t.Helper()
	v4, v6 := peer.PodCIDRs()
	if encap == "none" {
		nd.V.MustCtl(t, "route", "add", v4, "via", peer.Addr4)
		nd.V.MustCtl(t, "route", "add", v6, "via", peer.Addr6)
		return
	}
	nd.V.MustCtl(t, "route", "add", v4, "via", peer.Addr4, "--encap", encap)
	nd.V.MustCtl(t, "route", "add", v6, "via", peer.Addr4, "--encap", encap)
}

// AddPod creates a pod on nd with a tun interface and MTU mtu (0: 1500
// less what a VXLAN tunnel takes, as a CNI would configure).
func (nd *Node) AddPod(t testing.TB, mtu int) *Pod {
	t.Helper()
	nd.pods++
	k := nd.pods + 1
	if mtu == 0 {
		mtu = 1450
	}
	p := &Pod{NS: Netns(t, fmt.Sprintf("vnpod%d", nd.N)), V4: fmt.Sprintf("10.88.%d.%d", nd.N, k), V6: fmt.Sprintf("fd88:0:0:%d::%d", nd.N, k), Node: nd}
	out := nd.V.MustCtl(t, "interface", "create", "tun", "--netns", p.NS, "--host-if", "eth0",
		"--host-addr", p.V4+"/32,"+p.V6+"/128", "--mtu", fmt.Sprint(mtu))
	p.Ifname = strings.TrimSpace(out)
	return p
}

// Do runs fn on an OS thread inside namespace ns; sockets fn opens stay
// in ns. Every descriptor Do itself opens is closed before it returns.
func Do(ns string, fn func() error) error { return kubecluster.InNetns(ns, fn) }
