package baseline

import (
	"context"
	"fmt"
	"strconv"
)

// calicoPod adds a pod namespace attached the way Calico attaches pods: a
// veth whose node side has no address, a /32 route to the pod on the node,
// and proxy ARP on the node side so the pod's fixed gateway 169.254.1.1
// resolves to it. The node must have a route for 169.254.1.1 that does not
// go through the veth (proxy ARP answers only for addresses routed through
// another interface); see gatewayRoute.
func (t *topo) calicoPod(role, node, hostIf, addr string, mtu int) string {
	p := t.netns(role)
	m := strconv.Itoa(mtu)
	t.do("ip", "link", "add", "eth0", "netns", p, "mtu", m, "type", "veth", "peer", "name", hostIf, "netns", node, "mtu", m)
	t.do("ip", "-n", p, "addr", "add", addr+"/32", "dev", "eth0")
	t.do("ip", "-n", p, "link", "set", "eth0", "up")
	t.do("ip", "-n", p, "route", "add", podGateway, "dev", "eth0", "scope", "link")
	t.do("ip", "-n", p, "route", "add", "default", "via", podGateway, "dev", "eth0")
	t.sysctl(node, "net.ipv4.conf."+hostIf+".proxy_arp=1")
	t.do("ip", "-n", node, "link", "set", hostIf, "up")
	t.do("ip", "-n", node, "route", "add", addr+"/32", "dev", hostIf)
	return p
}

// routingNode makes ns forward IPv4 and gives it the route for the pods'
// gateway that proxy ARP needs (on lo, so it never points at a pod).
func (t *topo) routingNode(ns string) {
	t.sysctl(ns, "net.ipv4.ip_forward=1")
	t.do("ip", "-n", ns, "route", "add", podGateway+"/32", "dev", "lo")
}

// checkPing fails the build if the path does not carry a ping, so that a
// broken reference is reported as such rather than as an iperf3 failure;
// it also resolves the neighbours before anything is measured.
func (t *topo) checkPing(p *Path) {
	if t.err != nil {
		return
	}
	if ok, out := Ping(t.ctx, p.Client, p.ServerAddr); !ok {
		t.err = fmt.Errorf("%s: ping %s from netns %s failed:\n%s", p.Name, p.ServerAddr, p.Client, out)
	}
}

func podMTU(o Options, def int) (int, error) {
	mtu := o.PodMTU
	if mtu == 0 {
		mtu = def
	}
	// 68 is IPv4's minimum; 65535 is the veth maximum.
	if mtu < 68 || mtu > 65535 {
		return 0, fmt.Errorf("baseline: pod MTU %d out of range 68..65535", mtu)
	}
	return mtu, nil
}

// SameNode builds Calico's same-node kernel path: two pods on veths into a
// routing namespace (the node) that has a /32 route per pod and answers ARP
// for the pods' gateway 169.254.1.1 by proxy. Traffic crosses two veths
// and one IPv4 forward, as between two pods of a Calico node without eBPF.
//
// The pods are 10.250.0.2 (client) and 10.250.0.3 (server). The path is
// checked with a ping before SameNode returns. The returned func removes
// every namespace (and so every link); on error, nothing is left behind.
func SameNode(ctx context.Context, o Options) (*Path, func() error, error) {
	mtu, err := podMTU(o, 1500)
	if err != nil {
		return nil, nil, err
	}
	t, err := newTopo(ctx, o, "sn")
	if err != nil {
		return nil, nil, err
	}
	host := t.netns("node")
	t.routingNode(host)
	client := t.calicoPod("pod1", host, "cali1", "10.250.0.2", mtu)
	server := t.calicoPod("pod2", host, "cali2", "10.250.0.3", mtu)
	p := &Path{Client: client, Server: server, ClientAddr: "10.250.0.2", ServerAddr: "10.250.0.3", Name: "kernel same-node (routed veth)"}
	t.checkPing(p)
	if t.err == nil {
		o.logf("kernel baseline: same-node path %s (%s) -> %s (%s) via %s, pod MTU %d", client, p.ClientAddr, server, p.ServerAddr, host, mtu)
	}
	return t.finish(p)
}

// CrossNodeVXLAN builds the cross-node kernel path of flannel's vxlan
// backend (and of Calico in VXLAN mode): two node namespaces whose eth0
// veths meet on a bridge in an underlay namespace (192.168.250.1 and .2),
// and on each node a kernel vxlan0 set up as flannel does it: no learning,
// a permanent neighbour and an FDB entry for the other node's VTEP, and a
// route to the other node's pod /24 through it. Each node has one
// Calico-style pod (see SameNode): 10.250.1.2 on node 1 (client) and
// 10.250.2.2 on node 2 (server).
//
// vxlan0 and the pods get the pod MTU (default 1450) and the underlay
// 50 bytes more, at least 1500, so the encapsulated packets never
// fragment, whatever pod MTU is compared. The path is checked with a ping
// before CrossNodeVXLAN returns; the returned func removes everything.
func CrossNodeVXLAN(ctx context.Context, o Options) (*Path, func() error, error) {
	mtu, err := podMTU(o, 1500-vxlanOverhead)
	if err != nil {
		return nil, nil, err
	}
	if mtu+vxlanOverhead > 65535 {
		return nil, nil, fmt.Errorf("baseline: pod MTU %d leaves no room for the VXLAN header under the veth maximum 65535", mtu)
	}
	underMTU := strconv.Itoa(max(1500, mtu+vxlanOverhead))
	t, err := newTopo(ctx, o, "xn")
	if err != nil {
		return nil, nil, err
	}
	underlay := t.netns("underlay")
	t.do("ip", "-n", underlay, "link", "add", "br0", "type", "bridge")
	t.do("ip", "-n", underlay, "link", "set", "br0", "up")

	type node struct {
		ns, addr, mac, pod, podAddr string
	}
	var nodes []*node
	for i := 1; i <= 2; i++ {
		nd := &node{
			addr:    fmt.Sprintf("192.168.250.%d", i),
			mac:     fmt.Sprintf("02:fa:00:00:00:%02x", i),
			podAddr: fmt.Sprintf("10.250.%d.2", i),
		}
		nd.ns = t.netns(fmt.Sprintf("node%d", i))
		port := fmt.Sprintf("n%d", i)
		t.do("ip", "link", "add", port, "netns", underlay, "mtu", underMTU, "type", "veth", "peer", "name", "eth0", "netns", nd.ns, "mtu", underMTU)
		t.do("ip", "-n", underlay, "link", "set", port, "master", "br0", "up")
		t.do("ip", "-n", nd.ns, "addr", "add", nd.addr+"/24", "dev", "eth0")
		t.do("ip", "-n", nd.ns, "link", "set", "eth0", "up")
		t.routingNode(nd.ns)

		t.do("ip", "-n", nd.ns, "link", "add", "vxlan0", "address", nd.mac, "mtu", strconv.Itoa(mtu), "type", "vxlan",
			"id", strconv.Itoa(vxlanVNI), "dstport", strconv.Itoa(vxlanPort), "local", nd.addr, "dev", "eth0", "nolearning")
		// flannel gives vxlan0 the .0 of the node's pod /24 as a /32: the
		// next hop other nodes route this node's pods through.
		t.do("ip", "-n", nd.ns, "addr", "add", fmt.Sprintf("10.250.%d.0/32", i), "dev", "vxlan0")
		t.do("ip", "-n", nd.ns, "link", "set", "vxlan0", "up")

		nd.pod = t.calicoPod(fmt.Sprintf("pod%d", i), nd.ns, "cali1", nd.podAddr, mtu)
		nodes = append(nodes, nd)
	}
	for i, nd := range nodes {
		for j, peer := range nodes {
			if i == j {
				continue
			}
			gw := fmt.Sprintf("10.250.%d.0", j+1)
			t.do("ip", "-n", nd.ns, "neigh", "add", gw, "lladdr", peer.mac, "dev", "vxlan0", "nud", "permanent")
			t.do("bridge", "-n", nd.ns, "fdb", "append", peer.mac, "dev", "vxlan0", "dst", peer.addr)
			t.do("ip", "-n", nd.ns, "route", "add", fmt.Sprintf("10.250.%d.0/24", j+1), "via", gw, "dev", "vxlan0", "onlink")
		}
	}
	p := &Path{Client: nodes[0].pod, Server: nodes[1].pod, ClientAddr: nodes[0].podAddr, ServerAddr: nodes[1].podAddr, Name: "kernel cross-node (VXLAN)"}
	t.checkPing(p)
	if t.err == nil {
		o.logf("kernel baseline: cross-node VXLAN path %s (%s) -> %s (%s), nodes %s %s on underlay %s, pod MTU %d",
			p.Client, p.ClientAddr, p.Server, p.ServerAddr, nodes[0].ns, nodes[1].ns, underlay, mtu)
	}
	return t.finish(p)
}
