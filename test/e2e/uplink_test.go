package e2e

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vecnet/vecnet/pkg/header"
	"github.com/vecnet/vecnet/test/netlab"
)

// Cross-node tests: three nodes, each a namespace with vecnetd attached to
// its uplink veth into one underlay bridge, two pods per node.

// threeNodes builds the cluster with two pods on every node.
func threeNodes(t *testing.T, driver, encap string) (*netlab.Cluster, []*netlab.Pod) {
	t.Helper()
	netlab.Require(t, "ping")
	c := netlab.NewCluster(t, 3, netlab.ClusterOptions{Driver: driver, Encap: encap})
	var pods []*netlab.Pod
	for _, nd := range c.Nodes {
		pods = append(pods, nd.AddPod(t, 0), nd.AddPod(t, 0))
	}
	return c, pods
}

// pingOK pings addr from ns; the first packets may be spent on the
// kernel resolving a next hop, so it retries for a few seconds.
func pingOK(ns, addr string) (string, bool) {
	var out string
	for i := 0; i < 3; i++ {
		var err error
		out, err = netlab.InNetns(ns, "ping", "-c", "2", "-i", "0.1", "-W", "1", addr)
		if err == nil {
			// A duplicate would mean the host kernel forwarded the packet
			// too: the uplink filter must take it from the kernel.
			return out, !strings.Contains(out, "DUP!")
		}
	}
	return out, false
}

// allPairs pings every pod from every other pod over IPv4 and IPv6, in
// parallel, and reports the failures.
func allPairs(t *testing.T, pods []*netlab.Pod) {
	t.Helper()
	var mu sync.Mutex
	var failed []string
	var wg sync.WaitGroup
	for _, a := range pods {
		for _, b := range pods {
			if a == b {
				continue
			}
			for _, dst := range []string{b.V4, b.V6} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if out, ok := pingOK(a.NS, dst); !ok {
						mu.Lock()
						failed = append(failed, fmt.Sprintf("%s -> %s:\n%s", a.V4, dst, out))
						mu.Unlock()
					}
				}()
			}
		}
	}
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("%d of %d pings failed:\n%s", len(failed), len(pods)*(len(pods)-1)*2, strings.Join(failed, "\n"))
	}
}

// TestCrossNodeTwoWorkers: with one AF_XDP queue and two workers, both
// workers transmit on the one queue (the shared-queue lock).
func TestCrossNodeTwoWorkers(t *testing.T) {
	netlab.Require(t, "ping")
	c := netlab.NewCluster(t, 2, netlab.ClusterOptions{Driver: "af_xdp", Encap: "vxlan", Workers: 2})
	var pods []*netlab.Pod
	for _, nd := range c.Nodes {
		pods = append(pods, nd.AddPod(t, 0), nd.AddPod(t, 0))
	}
	allPairs(t, pods)
}

func TestCrossNodeAllPairs(t *testing.T) {
	for _, driver := range []string{"af_xdp", "af_packet", "tap"} {
		for _, encap := range []string{"ipip", "vxlan", "none"} {
			t.Run(driver+"/"+encap, func(t *testing.T) {
				c, pods := threeNodes(t, driver, encap)
				allPairs(t, pods)
				for _, nd := range c.Nodes {
					if !strings.Contains(nd.V.MustCtl(t, "show", "interfaces"), driver) {
						t.Errorf("node %d: show interfaces does not name driver %s", nd.N, driver)
					}
					// The packets really crossed the tunnels: every node
					// decapsulated some (4 pods elsewhere x 2 families x
					// at least 2 echo requests each).
					if encap != "none" {
						node := encap + "-decap"
						if n := errorCount(t, nd.V, node, "decapsulated"); n < 16 {
							t.Errorf("node %d: %s decapsulated %d packets, want >= 16", nd.N, node, n)
						}
					}
				}
				if t.Failed() {
					for _, nd := range c.Nodes {
						t.Logf("node %d errors:\n%s", nd.N, nd.V.MustCtl(t, "show", "errors"))
					}
				}
			})
		}
	}
}

// vxlanEcho is a VXLAN packet (from the UDP payload on: RFC 7348 header,
// inner Ethernet, IPv4, ICMP echo request) carrying a ping to dst.
func vxlanEcho(vni uint32, src, dst netip.Addr) []byte {
	const ipLen = header.IPv4MinimumSize + 8
	b := make([]byte, header.VXLANSize+header.EthernetMinSize+ipLen)
	header.VXLAN(b).Encode(vni)
	header.Ethernet(b[8:]).Encode([6]byte{2, 0, 0, 0, 0, 1}, [6]byte{2, 0, 0, 0, 0, 2}, header.EtherTypeIPv4)
	ip := header.IPv4(b[8+14:])
	ip.Encode(&header.IPv4Fields{TotalLength: ipLen, TTL: 64, Protocol: header.ProtocolICMP, Src: src.As4(), Dst: dst.As4()})
	ip.SetChecksum(ip.CalculateChecksum())
	icmp := ip[header.IPv4MinimumSize:]
	icmp[0] = 8 // echo request
	binary.BigEndian.PutUint16(icmp[2:], header.Fold(header.Checksum(icmp, 0)))
	return b
}

// TestUplinkHostUntouchedAndFaults checks what users of a shared NIC care
// about: the host keeps its networking, the host and pods reach each
// other through the host interface, strangers cannot inject tunnel
// packets, and link and MTU changes are followed without a restart.
func TestUplinkHostUntouchedAndFaults(t *testing.T) {
	netlab.Require(t, "iperf3")
	for _, driver := range []string{"af_xdp", "af_packet", "tap"} {
		t.Run(driver, func(t *testing.T) {
			c, pods := threeNodes(t, driver, "vxlan")
			n1, n2 := c.Nodes[0], c.Nodes[1]
			p1, p3 := pods[0], pods[2] // on node 1 and node 2
			allPairs(t, pods)

			t.Run("host-network-untouched", func(t *testing.T) {
				// The underlay (think: the ToR, the ssh client) and the
				// other nodes' kernels reach the node's own stack.
				netlab.MustRun(t, "ip", "-n", c.Underlay, "addr", "add", "192.168.77.254/24", "dev", "br0")
				netlab.MustRun(t, "ip", "-n", c.Underlay, "addr", "add", "fd00:77::fe/64", "dev", "br0", "nodad")
				for _, ns := range []string{c.Underlay, n2.NS} {
					for _, a := range []string{n1.Addr4, n1.Addr6} {
						if out, ok := pingOK(ns, a); !ok {
							t.Errorf("ping %s from %s:\n%s", a, ns, out)
						}
					}
				}
				bps := netlab.Iperf3(t, c.Underlay, n1.NS, n1.Addr4, 1)
				t.Logf("underlay -> node 1 kernel TCP: %.2f Gbit/s", bps/1e9)
			})

			t.Run("host-to-pods", func(t *testing.T) {
				for _, p := range []*netlab.Pod{p1, p3} {
					for _, a := range []string{p.V4, p.V6} {
						if out, ok := pingOK(n1.NS, a); !ok {
							t.Errorf("node 1 -> pod %s:\n%s", a, out)
						}
					}
				}
				for _, a := range []string{n1.Addr4, n1.Addr6} {
					if out, ok := pingOK(p1.NS, a); !ok {
						t.Errorf("pod on node 1 -> node address %s:\n%s", a, out)
					}
				}
				// Remote node addresses are reached through the uplink.
				if out, ok := pingOK(p1.NS, n2.Addr4); !ok {
					t.Errorf("pod on node 1 -> node 2 address:\n%s", out)
				}
			})

			t.Run("cross-node-iperf3", func(t *testing.T) {
				bps := netlab.Iperf3(t, p1.NS, p3.NS, p3.V4, 2)
				t.Logf("pod node 1 -> pod node 2 TCP over vxlan (%s): %.2f Gbit/s", driver, bps/1e9)
			})

			t.Run("spoofed-vxlan-dropped", func(t *testing.T) {
				before := errorCount(t, n1.V, "vxlan-decap", "unknown_peer")
				stranger := netip.MustParseAddr("192.168.77.254")
				pkt := vxlanEcho(vecnetdDefaultVNI, netip.MustParseAddr("10.88.9.9"), netip.MustParseAddr(p1.V4))
				err := netlab.Do(c.Underlay, func() error {
					conn, err := net.DialUDP("udp4", &net.UDPAddr{IP: stranger.AsSlice()}, &net.UDPAddr{IP: net.ParseIP(n1.Addr4), Port: 4789})
					if err != nil {
						return err
					}
					defer conn.Close()
					for i := 0; i < 5; i++ {
						if _, err := conn.Write(pkt); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				deadline := time.Now().Add(3 * time.Second)
				for errorCount(t, n1.V, "vxlan-decap", "unknown_peer") < before+5 {
					if time.Now().After(deadline) {
						t.Fatalf("vxlan-decap unknown_peer = %d, want %d\n%s", errorCount(t, n1.V, "vxlan-decap", "unknown_peer"), before+5, n1.V.MustCtl(t, "show", "errors"))
					}
					time.Sleep(50 * time.Millisecond)
				}
			})

			t.Run("mtu-change", func(t *testing.T) {
				netlab.MustRun(t, "ip", "-n", n1.NS, "link", "set", "eth0", "mtu", "1400")
				waitFor(t, "uplink MTU 1400", func() bool { return uplinkMTU(t, n1) == "1400" })
				// 1400 bytes with DF no longer fit the 1350-byte tunnel.
				out, _ := netlab.InNetns(p1.NS, "ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1372", p3.V4)
				if !strings.Contains(out, "mtu = 1350") && !strings.Contains(out, "mtu=1350") {
					t.Errorf("ping -M do -s 1372 over a 1400-byte uplink: want fragmentation needed (mtu 1350), got:\n%s", out)
				}
				if out, ok := pingOK(p1.NS, p3.V4); !ok {
					t.Errorf("small ping after MTU change:\n%s", out)
				}
				netlab.MustRun(t, "ip", "-n", n1.NS, "link", "set", "eth0", "mtu", "1500")
				waitFor(t, "uplink MTU 1500", func() bool { return uplinkMTU(t, n1) == "1500" })
			})

			t.Run("link-down-up", func(t *testing.T) {
				netlab.MustRun(t, "ip", "-n", n1.NS, "link", "set", "eth0", "down")
				waitFor(t, "uplink down", func() bool { return strings.Contains(n1.V.MustCtl(t, "show", "interfaces"), "DOWN") })
				if out, err := netlab.InNetns(p1.NS, "ping", "-c", "1", "-W", "1", p3.V4); err == nil {
					t.Errorf("ping across a down uplink succeeded:\n%s", out)
				}
				netlab.MustRun(t, "ip", "-n", n1.NS, "link", "set", "eth0", "up")
				waitFor(t, "uplink up", func() bool { return !strings.Contains(n1.V.MustCtl(t, "show", "interfaces"), "DOWN") })
				allPairs(t, pods)
			})
			t.Run("uplink-del-add", func(t *testing.T) {
				n1.V.MustCtl(t, "uplink", "del", "eth0")
				if out, ok := pingOK(c.Nodes[1].NS, n1.Addr4); !ok {
					t.Errorf("host traffic after uplink del:\n%s", out)
				}
				if out, err := netlab.InNetns(p1.NS, "ping", "-c", "1", "-W", "1", p3.V4); err == nil {
					t.Errorf("ping across a deleted uplink succeeded:\n%s", out)
				}
				n1.V.MustCtl(t, "uplink", "add", "eth0", "--driver", driver)
				allPairs(t, pods)
			})
			if t.Failed() {
				t.Logf("node 1 errors:\n%s", n1.V.MustCtl(t, "show", "errors"))
			}
		})
	}
}

// vecnetdDefaultVNI is the VNI of routes added without --vni.
const vecnetdDefaultVNI = 4096

func uplinkMTU(t *testing.T, nd *netlab.Node) string {
	for _, line := range strings.Split(nd.V.MustCtl(t, "show", "interfaces"), "\n") {
		if f := strings.Fields(line); len(f) > 5 && f[2] == "uplink" {
			return f[5]
		}
	}
	return ""
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestUplinkCleanup: a stopped vecnetd leaves the node's networking as it
// found it — no host tun, no tap, no eBPF program on the uplink, and the
// host's traffic still flows.
func TestUplinkCleanup(t *testing.T) {
	for _, driver := range []string{"af_xdp", "af_packet", "tap"} {
		t.Run(driver, func(t *testing.T) {
			c, _ := threeNodes(t, driver, "vxlan")
			n1 := c.Nodes[0]
			if n := tcxIngressPrograms(t, n1.NS, "eth0"); driver != "af_xdp" && n == 0 {
				t.Errorf("%s uplink without its tcx ingress program", driver)
			}
			before := netlab.MustRun(t, "ip", "-n", n1.NS, "-d", "link", "show", "eth0")
			if !strings.Contains(before, "prog/xdp") && driver == "af_xdp" {
				t.Errorf("af_xdp uplink without an XDP program:\n%s", before)
			}
			if !n1.V.Stop(5 * time.Second) {
				t.Fatalf("vecnetd did not exit on SIGTERM")
			}
			links := netlab.MustRun(t, "ip", "-n", n1.NS, "-d", "link", "show")
			for _, leftover := range []string{"vecnet0", "vnt-", "prog/xdp"} {
				if strings.Contains(links, leftover) {
					t.Errorf("after vecnetd stopped, %q is left:\n%s", leftover, links)
				}
			}
			if n := tcxIngressPrograms(t, n1.NS, "eth0"); n != 0 {
				t.Errorf("%d tcx ingress programs left on eth0", n)
			}
			if out, ok := pingOK(c.Nodes[1].NS, n1.Addr4); !ok {
				t.Errorf("host traffic after vecnetd stopped:\n%s", out)
			}
		})
	}
}

// TestHostToPodsWithoutUplink: a single node (pod prefixes, no uplink)
// still gets the host tun, so the host (kubelet probes) reaches its pods
// and pods reach the host.
func TestHostToPodsWithoutUplink(t *testing.T) {
	netlab.Require(t, "ping")
	node := netlab.Netns(t, "vnsingle")
	netlab.MustRun(t, "ip", "-n", node, "addr", "add", "192.168.78.1/32", "dev", "lo")
	// The host's IPv6 source for pods: a node of a dual-stack cluster has
	// a global address.
	netlab.MustRun(t, "ip", "-n", node, "addr", "add", "fd00:78::1/128", "dev", "lo")
	v := netlab.StartVecnetdIn(t, node, "--pod-cidrs", strings.Join(netlab.PodPrefixes, ","))
	pod := netlab.Netns(t, "vnpod")
	v.MustCtl(t, "interface", "create", "tun", "--netns", pod, "--host-if", "eth0", "--host-addr", "10.88.1.2/32,fd88:0:0:1::2/128")
	for _, a := range []string{"10.88.1.2", "fd88:0:0:1::2"} {
		if out, ok := pingOK(node, a); !ok {
			t.Errorf("host -> pod %s:\n%s", a, out)
		}
	}
	for _, a := range []string{"192.168.78.1", "fd00:78::1"} {
		if out, ok := pingOK(pod, a); !ok {
			t.Errorf("pod -> host address %s:\n%s", a, out)
		}
	}
	if !strings.Contains(v.MustCtl(t, "show", "interfaces"), "vecnet0") {
		t.Errorf("no host interface without an uplink")
	}
}

// tcxIngressPrograms counts the programs on ifname's tcx ingress in ns.
func tcxIngressPrograms(t *testing.T, ns, ifname string) int {
	t.Helper()
	var n int
	err := netlab.Do(ns, func() error {
		ifc, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		r, err := link.QueryPrograms(link.QueryOptions{Target: ifc.Index, Attach: ebpf.AttachTCXIngress})
		if err != nil {
			return err
		}
		n = len(r.Programs)
		return nil
	})
	if err != nil {
		t.Fatalf("query tcx programs on %s in %s: %v", ifname, ns, err)
	}
	return n
}
