package bench

// Cross-node benchmarks: a pod on node 1 talks to a pod on node 2 over a
// VXLAN overlay, through vecnetd (one cluster per uplink driver) and
// through the kernel path flannel and Calico-VXLAN build (veth pods, a
// kernel vxlan device per node, static FDB and neighbour entries). Every
// topology is built once; the paths then take turns, round by round, so
// that all of them see the same machine conditions, and each RESULT line
// compares medians.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vecnet/vecnet/pkg/lab/baseline"
	"github.com/vecnet/vecnet/test/netlab"
)

// xnPodMTU is the pod MTU on both paths: 1500 less the VXLAN overhead.
const xnPodMTU = 1450

func xnSeconds() int {
	if s, _ := strconv.Atoi(os.Getenv("VECNET_BENCH_SECONDS")); s > 0 {
		return s
	}
	return 10
}

func xnRounds() int {
	if r, _ := strconv.Atoi(os.Getenv("VECNET_BENCH_ROUNDS")); r > 0 {
		return r
	}
	return 3
}

// xnDrivers are the uplink drivers to benchmark: VECNET_BENCH_DRIVERS
// (comma-separated) if set, else every driver vecnetctl accepts except
// auto, which only picks one of the others.
func xnDrivers(t *testing.T) []string {
	t.Helper()
	if s := os.Getenv("VECNET_BENCH_DRIVERS"); s != "" {
		return strings.Split(s, ",")
	}
	out, _ := netlab.Run(filepath.Join(netlab.Binaries(t), "vecnetctl"), "uplink", "add", "--help")
	var drivers []string
	if m := regexp.MustCompile(`--driver ([a-z0-9_]+(?:\|[a-z0-9_]+)*)`).FindStringSubmatch(out); m != nil {
		for _, d := range strings.Split(m[1], "|") {
			if d != "auto" {
				drivers = append(drivers, d)
			}
		}
	}
	if len(drivers) == 0 {
		t.Logf("could not read the uplink drivers from vecnetctl uplink add --help; using af_xdp, af_packet:\n%s", out)
		drivers = []string{"af_xdp", "af_packet"}
	}
	return drivers
}

// xnSoftTB turns the fatal failures of a netlab helper into an error: a
// helper run through xnTry that calls Fatalf ends its goroutine instead of
// the test. Its cleanups are held back: after a failure they run at once
// (what they log, e.g. a vecnetd's log, joins the error), else they are
// handed to the test.
type xnSoftTB struct {
	testing.TB
	mu       sync.Mutex
	msg      []string
	cleanups []func()
	capture  bool // Logf goes to msg
}

func (s *xnSoftTB) record(msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msg = append(s.msg, msg)
}

func (s *xnSoftTB) Failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msg) > 0 || s.TB.Failed()
}

func (s *xnSoftTB) Cleanup(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleanups = append(s.cleanups, f)
}

func (s *xnSoftTB) Logf(format string, args ...any) {
	s.mu.Lock()
	capture := s.capture
	s.mu.Unlock()
	if capture {
		s.record(fmt.Sprintf(format, args...))
		return
	}
	s.TB.Logf(format, args...)
}

func (s *xnSoftTB) Log(args ...any)                   { s.Logf("%s", fmt.Sprint(args...)) }
func (s *xnSoftTB) Error(args ...any)                 { s.record(fmt.Sprint(args...)) }
func (s *xnSoftTB) Errorf(format string, args ...any) { s.record(fmt.Sprintf(format, args...)) }
func (s *xnSoftTB) Fail()                             { s.record("failed") }
func (s *xnSoftTB) FailNow()                          { s.record("failed"); runtime.Goexit() }
func (s *xnSoftTB) Fatal(args ...any)                 { s.Error(args...); runtime.Goexit() }
func (s *xnSoftTB) Fatalf(format string, args ...any) { s.Errorf(format, args...); runtime.Goexit() }
func (s *xnSoftTB) Skip(args ...any)                  { s.record("skipped: " + fmt.Sprint(args...)); runtime.Goexit() }
func (s *xnSoftTB) Skipf(format string, args ...any) {
	s.record("skipped: " + fmt.Sprintf(format, args...))
	runtime.Goexit()
}
func (s *xnSoftTB) SkipNow() { s.record("skipped"); runtime.Goexit() }

// xnTry runs fn and returns what it reported as failed, or nil.
func xnTry(t testing.TB, fn func(tb testing.TB)) error {
	s := &xnSoftTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(s)
	}()
	<-done
	s.mu.Lock()
	failed, cleanups := len(s.msg) > 0, s.cleanups
	s.capture = failed
	s.mu.Unlock()
	if !failed {
		for _, f := range cleanups {
			t.Cleanup(f) // same order as if fn had registered them
		}
		return nil
	}
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.New(strings.Join(s.msg, "\n"))
}

// xnPod is one end of a cross-node path.
type xnPod struct {
	NS, Ifname, Addr string
	// For pods on a veth (kernel path): the frame header a packet
	// generator writes. Empty for vecnet's tun pods (no L2 header).
	MAC, GwMAC net.HardwareAddr
}

// xnPath is one way from a pod on node 1 to a pod on node 2.
type xnPath struct {
	Name     string // "kernel" or the vecnet uplink driver
	Src, Dst xnPod
	Cluster  *netlab.Cluster // vecnet only
}

func xnLinkMAC(t testing.TB, ns, ifname string) net.HardwareAddr {
	t.Helper()
	out := netlab.MustRun(t, "ip", "-n", ns, "-j", "link", "show", "dev", ifname)
	var links []struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -j link show %s in %s: %v\n%s", ifname, ns, err, out)
	}
	mac, err := net.ParseMAC(links[0].Address)
	if err != nil {
		t.Fatalf("MAC of %s in %s: %v", ifname, ns, err)
	}
	return mac
}

// xnKernelVXLAN builds the kernel baseline, baseline.CrossNodeVXLAN: two
// node namespaces with eth0 veths into an underlay bridge, one pod per node
// on a Calico-style routed veth (a /32, default route via 169.254.1.1
// answered by proxy ARP), and per node a kernel vxlan0 set up the way
// flannel's vxlan backend does it (no learning, a permanent neighbour and
// an FDB entry for the other node's VTEP, a route to its pod /24 through
// it). vxlan0 and the pods have MTU mtu, the underlay 1500 (for mtu 1450).
func xnKernelVXLAN(t *testing.T, mtu int) *xnPath {
	t.Helper()
	k := kernelPath(t, baseline.CrossNodeVXLAN, mtu)
	p := &xnPath{Name: "kernel",
		Src: xnPod{NS: k.Client, Ifname: "eth0", Addr: k.ClientAddr},
		Dst: xnPod{NS: k.Server, Ifname: "eth0", Addr: k.ServerAddr}}
	p.Src.MAC = xnLinkMAC(t, p.Src.NS, "eth0")
	p.Src.GwMAC = xnGatewayMAC(t, p.Src.NS, "eth0")
	return p
}

// xnGatewayMAC is the MAC that ifname in ns resolved the pods' gateway
// 169.254.1.1 to: the node side of the pod's veth, which answers for it by
// proxy ARP. The path was pinged when it was built, so it is resolved.
func xnGatewayMAC(t testing.TB, ns, ifname string) net.HardwareAddr {
	t.Helper()
	out := netlab.MustRun(t, "ip", "-n", ns, "-j", "neigh", "show", "169.254.1.1", "dev", ifname)
	var neigh []struct {
		LLAddr string `json:"lladdr"`
	}
	if err := json.Unmarshal([]byte(out), &neigh); err != nil || len(neigh) != 1 || neigh[0].LLAddr == "" {
		t.Fatalf("ip -j neigh show 169.254.1.1 dev %s in %s: %v\n%s", ifname, ns, err, out)
	}
	mac, err := net.ParseMAC(neigh[0].LLAddr)
	if err != nil {
		t.Fatalf("gateway MAC of %s in %s: %v", ifname, ns, err)
	}
	return mac
}

// xnVecnetVXLAN builds a two-node vecnet cluster with uplink driver drv and
// one pod per node, and checks that a ping crosses it. A driver that does
// not attach, or a path that does not carry a ping, is an error, not a
// test failure: the caller reports it and goes on without that driver.
func xnVecnetVXLAN(t *testing.T, drv string, mtu int) (*xnPath, error) {
	t.Helper()
	var p *xnPath
	err := xnTry(t, func(tb testing.TB) {
		c := netlab.NewCluster(tb, 2, netlab.ClusterOptions{Driver: drv, Encap: "vxlan"})
		a, b := c.Nodes[0].AddPod(tb, mtu), c.Nodes[1].AddPod(tb, mtu)
		// Pod.Ifname is vecnetd's name for the tun; inside the pod it is
		// the --host-if AddPod gives, eth0.
		p = &xnPath{Name: drv, Cluster: c,
			Src: xnPod{NS: a.NS, Ifname: "eth0", Addr: a.V4},
			Dst: xnPod{NS: b.NS, Ifname: "eth0", Addr: b.V4}}
		for _, nd := range c.Nodes {
			out := nd.V.MustCtl(tb, "show", "interfaces")
			if !strings.Contains(out, drv) {
				tb.Fatalf("node %d: show interfaces does not name driver %s:\n%s", nd.N, drv, out)
			}
			t.Logf("vecnet %s, node %d interfaces:\n%s", drv, nd.N, out)
		}
		if out, ok := xnPing(a.NS, b.V4); !ok {
			tb.Fatalf("ping %s -> %s across the cluster failed:\n%s\nnode 1 errors:\n%s\nnode 2 errors:\n%s", a.V4, b.V4, out,
				xnCtl(c.Nodes[0].V, "show", "errors"), xnCtl(c.Nodes[1].V, "show", "errors"))
		}
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

func xnCtl(v *netlab.Vecnetd, args ...string) string {
	out, err := v.Ctl(args...)
	if err != nil {
		return fmt.Sprintf("vecnetctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// xnPing pings addr from ns, allowing the first tries for neighbour
// resolution.
func xnPing(ns, addr string) (string, bool) {
	var out string
	for i := 0; i < 3; i++ {
		var err error
		if out, err = netlab.InNetns(ns, "ping", "-c", "2", "-i", "0.2", "-W", "1", addr); err == nil {
			return out, true
		}
	}
	return out, false
}

// xnPaths builds the kernel path and one vecnet cluster per driver. It
// reports (and leaves out) the drivers that do not work.
func xnPaths(t *testing.T, test string) (kernel *xnPath, vecnet []*xnPath) {
	t.Helper()
	netlab.Require(t, "bridge", "ping")
	kernel = xnKernelVXLAN(t, xnPodMTU)
	for _, drv := range xnDrivers(t) {
		p, err := xnVecnetVXLAN(t, drv, xnPodMTU)
		if err != nil {
			fmt.Printf("RESULT cross-node %s vxlan %s: skipped, no working path (%s)\n", test, drv, xnWhy(err))
			t.Logf("vecnet with uplink driver %s left out: %v", drv, err)
			continue
		}
		vecnet = append(vecnet, p)
	}
	if len(vecnet) == 0 {
		t.Fatal("no vecnet uplink driver gave a working cross-node path")
	}
	return kernel, vecnet
}

// xnWhy is the gist of a failure on one line: vecnetd's error if it logged
// one, else the first line.
func xnWhy(err error) string {
	msg := err.Error()
	if m := regexp.MustCompile(`level=ERROR msg="[^"]*" err="((?:[^"\\]|\\.)*)"`).FindStringSubmatch(msg); m != nil {
		if s, uerr := strconv.Unquote(`"` + m[1] + `"`); uerr == nil {
			return "vecnetd: " + s
		}
		return "vecnetd: " + m[1]
	}
	first, _, _ := strings.Cut(msg, "\n")
	return first
}

// xnIperf3 is one iperf3 run over p in Gbit/s, the first second omitted.
func xnIperf3(p *xnPath, secs int) (gbps float64, err error) {
	bps, err := baseline.Iperf3(context.Background(), p.Src.NS, p.Dst.NS, p.Dst.Addr, secs, "-O", "1")
	return bps / 1e9, err
}

// TestCrossNodeTCP: one iperf3 TCP stream from a pod on node 1 to a pod
// on node 2 over VXLAN, vecnet (per uplink driver) versus the kernel.
func TestCrossNodeTCP(t *testing.T) {
	requireBench(t)
	secs, rounds := xnSeconds(), xnRounds()
	kernel, vecnet := xnPaths(t, "TCP")
	var kn []float64
	vn := map[string][]float64{}
	failed := map[string]bool{}
	for r := 1; r <= rounds; r++ {
		g, err := xnIperf3(kernel, secs)
		if err != nil {
			t.Fatalf("round %d, kernel path: %v", r, err)
		}
		kn = append(kn, g)
		line := fmt.Sprintf("round %d: kernel %.2f", r, g)
		for _, p := range vecnet {
			if failed[p.Name] {
				continue
			}
			g, err := xnIperf3(p, secs)
			if err != nil {
				t.Errorf("round %d, vecnet %s: %v\nnode 1 errors:\n%s\nnode 2 errors:\n%s", r, p.Name, err,
					xnCtl(p.Cluster.Nodes[0].V, "show", "errors"), xnCtl(p.Cluster.Nodes[1].V, "show", "errors"))
				failed[p.Name] = true
				continue
			}
			vn[p.Name] = append(vn[p.Name], g)
			line += fmt.Sprintf(", vecnet %s %.2f", p.Name, g)
		}
		t.Log(line + " Gbit/s")
	}
	mk := median(kn)
	for _, p := range vecnet {
		if failed[p.Name] || len(vn[p.Name]) == 0 {
			fmt.Printf("FAIL cross-node TCP vxlan %s: no result (see the test log)\n", p.Name)
			continue
		}
		mv := median(vn[p.Name])
		fmt.Printf("RESULT cross-node TCP vxlan %s: vecnet %.2f Gbit/s, kernel %.2f Gbit/s, ratio %.2f (median of %d x %ds rounds)\n", p.Name, mv, mk, mv/mk, len(vn[p.Name]), secs)
	}
	for _, p := range vecnet {
		t.Logf("vecnet %s, node 1 runtime:\n%s", p.Name, xnCtl(p.Cluster.Nodes[0].V, "show", "runtime"))
	}
}

// --- UDP 64-byte packets per second ---

// xnUDPPayload: 18 bytes of UDP payload make a 46-byte IPv4 packet, i.e.
// a 64-byte Ethernet frame with FCS, the usual "64-byte" packet.
const xnUDPPayload = 18

const (
	xnUDPSrcPort = 40000
	xnUDPDstPort = 9 // discard: nothing listens, the receiver counts at IP
)

// xnUDPPacket is an IPv4/UDP packet from src to dst with a fixed payload
// and a valid IP checksum (UDP checksum 0: none, allowed for IPv4).
func xnUDPPacket(src, dst net.IP, payload int) []byte {
	b := make([]byte, 20+8+payload)
	b[0], b[8], b[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	binary.BigEndian.PutUint16(b[6:], 0x4000) // DF
	copy(b[12:16], src.To4())
	copy(b[16:20], dst.To4())
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(b[10:], ^uint16(sum))
	u := b[20:]
	binary.BigEndian.PutUint16(u[0:], xnUDPSrcPort)
	binary.BigEndian.PutUint16(u[2:], xnUDPDstPort)
	binary.BigEndian.PutUint16(u[4:], uint16(8+payload))
	for i := range payload {
		u[8+i] = 'v'
	}
	return b
}

// xnTrafgenConf is a trafgen packet configuration sending pkt, behind an
// Ethernet header if dst is set (a tun takes the bare IP packet). All
// bytes are constants, trafgen's fastest case.
func xnTrafgenConf(pkt []byte, src, dst net.HardwareAddr) string {
	var frame []byte
	if dst != nil {
		frame = append(append(append(frame, dst...), src...), 0x08, 0x00)
	}
	frame = append(frame, pkt...)
	var sb strings.Builder
	sb.WriteString("{\n")
	for i, c := range frame {
		fmt.Fprintf(&sb, "0x%02x,", c)
		if i%16 == 15 {
			sb.WriteString("\n")
		}
	}
	sb.WriteString("\n}\n")
	return sb.String()
}

// xnGen is a packet generator running in a namespace.
type xnGen struct {
	cmd  *exec.Cmd
	out  bytes.Buffer
	done chan struct{}
}

// xnStartTrafgen runs trafgen on one CPU, sending conf on ifname in ns as
// fast as it can, until stop. It leaves the machine's IRQ affinities and
// socket memory limits alone.
func xnStartTrafgen(t *testing.T, ns, ifname, conf string) *xnGen {
	t.Helper()
	f := filepath.Join(t.TempDir(), "pkt.cfg")
	if err := os.WriteFile(f, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	g := &xnGen{done: make(chan struct{})}
	g.cmd = exec.Command("ip", "netns", "exec", ns, "trafgen", "--dev", ifname, "--conf", f, "--cpus", "1", "--notouch-irq", "--no-sock-mem")
	g.cmd.Stdout, g.cmd.Stderr = &g.out, &g.out
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := g.cmd.Start(); err != nil {
		t.Fatalf("start trafgen in %s: %v", ns, err)
	}
	go func() { _ = g.cmd.Wait(); close(g.done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-g.cmd.Process.Pid, syscall.SIGKILL)
		<-g.done
	})
	return g
}

func (g *xnGen) running() bool {
	select {
	case <-g.done:
		return false
	default:
		return true
	}
}

// stop interrupts the generator (trafgen prints its totals on SIGINT)
// and returns its output.
func (g *xnGen) stop() string {
	_ = syscall.Kill(-g.cmd.Process.Pid, syscall.SIGINT)
	select {
	case <-g.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-g.cmd.Process.Pid, syscall.SIGKILL)
		<-g.done
	}
	return g.out.String()
}

// xnCounters are an interface's tx and rx counters and the IP and UDP
// MIB of namespace ns in one command.
type xnCounters struct {
	at                                 time.Time
	txPackets, txDropped               uint64
	rxPackets, rxDropped               uint64
	ipInReceives, udpInDatagrams       uint64
	udpNoPorts, udpInErrors, udpRcvBuf uint64
}

func xnReadCounters(ns, ifname string) (xnCounters, error) {
	dir := "/sys/class/net/" + ifname + "/statistics/"
	c := xnCounters{at: time.Now()}
	out, err := netlab.InNetns(ns, "cat", dir+"tx_packets", dir+"tx_dropped", dir+"rx_packets", dir+"rx_dropped", "/proc/net/snmp")
	if err != nil {
		return c, fmt.Errorf("read counters in %s: %v\n%s", ns, err, out)
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	for _, p := range []*uint64{&c.txPackets, &c.txDropped, &c.rxPackets, &c.rxDropped} {
		if !sc.Scan() {
			return c, fmt.Errorf("short counters in %s:\n%s", ns, out)
		}
		if *p, err = strconv.ParseUint(strings.TrimSpace(sc.Text()), 10, 64); err != nil {
			return c, fmt.Errorf("counters in %s: %v\n%s", ns, err, out)
		}
	}
	// /proc/net/snmp: a header line of names, then a line of values.
	var names []string
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if names == nil || names[0] != f[0] {
			names = f
			continue
		}
		for i := 1; i < len(f) && i < len(names); i++ {
			v, _ := strconv.ParseUint(f[i], 10, 64)
			switch f[0] + names[i] {
			case "Ip:InReceives":
				c.ipInReceives = v
			case "Udp:InDatagrams":
				c.udpInDatagrams = v
			case "Udp:NoPorts":
				c.udpNoPorts = v
			case "Udp:InErrors":
				c.udpInErrors = v
			case "Udp:RcvbufErrors":
				c.udpRcvBuf = v
			}
		}
		names = nil
	}
	return c, nil
}

// xnUDPResult is one measured window, in packets per second.
type xnUDPResult struct {
	sent    float64 // offered by the generator: the sender interface's tx + tx drops
	senttx  float64 // of those, taken by the interface
	rcvd    float64 // IP packets received in the receiver pod
	rcvdUDP float64 // UDP datagrams (delivered + no port + errors) there
	cpus    string  // how busy each CPU was
}

func (r xnUDPResult) String() string {
	return fmt.Sprintf("sent %.0f kpps (%.0f taken by the pod interface), received %.0f kpps (UDP %.0f); CPUs busy %s", r.sent/1e3, r.senttx/1e3, r.rcvd/1e3, r.rcvdUDP/1e3, r.cpus)
}

// xnCPUTimes are the busy and total jiffies of each CPU (/proc/stat).
func xnCPUTimes() (busy, total []uint64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil, nil
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		var sum, idle uint64
		for i, v := range f[1:] {
			n, _ := strconv.ParseUint(v, 10, 64)
			if i < 8 { // user nice system idle iowait irq softirq steal
				sum += n
			}
			if i == 3 || i == 4 {
				idle += n
			}
		}
		busy, total = append(busy, sum-idle), append(total, sum)
	}
	return busy, total
}

func xnCPUBusy(b0, t0, b1, t1 []uint64) string {
	var parts []string
	for i := range min(len(b0), len(b1)) {
		if dt := t1[i] - t0[i]; dt > 0 {
			parts = append(parts, fmt.Sprintf("%.0f%%", 100*float64(b1[i]-b0[i])/float64(dt)))
		}
	}
	return strings.Join(parts, " ")
}

// xnWarmup is how long a generator runs before the measured window: for
// neighbour resolution, and for queues and pollers to reach their steady
// state.
const xnWarmup = time.Second

// xnUDPWindow runs the generator from p.Src to p.Dst for xnWarmup+secs and
// measures the last secs seconds.
func xnUDPWindow(t *testing.T, p *xnPath, secs int) (xnUDPResult, error) {
	// A socket that is never read: datagrams find a socket and are
	// dropped when its buffer is full (Udp RcvbufErrors), as a busy
	// receiver would, instead of each costing an ICMP port unreachable
	// (a route lookup before the rate limit) on both paths.
	var sink *net.UDPConn
	if err := netlab.Do(p.Dst.NS, func() error {
		var err error
		sink, err = net.ListenUDP("udp4", &net.UDPAddr{Port: xnUDPDstPort})
		return err
	}); err != nil {
		return xnUDPResult{}, fmt.Errorf("sink socket in %s: %w", p.Dst.NS, err)
	}
	defer sink.Close()
	pkt := xnUDPPacket(net.ParseIP(p.Src.Addr), net.ParseIP(p.Dst.Addr), xnUDPPayload)
	g := xnStartTrafgen(t, p.Src.NS, p.Src.Ifname, xnTrafgenConf(pkt, p.Src.MAC, p.Src.GwMAC))
	defer g.stop()
	time.Sleep(xnWarmup)
	if !g.running() {
		return xnUDPResult{}, fmt.Errorf("trafgen on %s in %s exited:\n%s", p.Src.Ifname, p.Src.NS, g.out.String())
	}
	cb0, ct0 := xnCPUTimes()
	s0, err := xnReadCounters(p.Src.NS, p.Src.Ifname)
	if err != nil {
		return xnUDPResult{}, err
	}
	d0, err := xnReadCounters(p.Dst.NS, p.Dst.Ifname)
	if err != nil {
		return xnUDPResult{}, err
	}
	time.Sleep(time.Duration(secs) * time.Second)
	cb1, ct1 := xnCPUTimes()
	s1, err := xnReadCounters(p.Src.NS, p.Src.Ifname)
	if err != nil {
		return xnUDPResult{}, err
	}
	d1, err := xnReadCounters(p.Dst.NS, p.Dst.Ifname)
	if err != nil {
		return xnUDPResult{}, err
	}
	if !g.running() {
		return xnUDPResult{}, fmt.Errorf("trafgen on %s in %s exited:\n%s", p.Src.Ifname, p.Src.NS, g.out.String())
	}
	g.stop()
	st, dt := s1.at.Sub(s0.at).Seconds(), d1.at.Sub(d0.at).Seconds()
	r := xnUDPResult{
		sent:    float64(s1.txPackets+s1.txDropped-s0.txPackets-s0.txDropped) / st,
		senttx:  float64(s1.txPackets-s0.txPackets) / st,
		rcvd:    float64(d1.ipInReceives-d0.ipInReceives) / dt,
		rcvdUDP: float64(d1.udpInDatagrams+d1.udpNoPorts+d1.udpInErrors-d0.udpInDatagrams-d0.udpNoPorts-d0.udpInErrors) / dt,
		cpus:    xnCPUBusy(cb0, ct0, cb1, ct1),
	}
	return r, nil
}

// xnGeneratorMax measures what trafgen sends with nobody else on the
// machine, into a device that drops everything at once.
func xnGeneratorMax(t *testing.T, secs int) float64 {
	t.Helper()
	ns := netlab.Netns(t, "vngen")
	// A veth whose peer is down drops at transmit (counted in tx_dropped):
	// the cheapest sink without the dummy module.
	netlab.MustRun(t, "ip", "-n", ns, "link", "add", "gen0", "type", "veth", "peer", "name", "sink0")
	netlab.MustRun(t, "ip", "-n", ns, "link", "set", "gen0", "up")
	mac := xnLinkMAC(t, ns, "gen0")
	pkt := xnUDPPacket(net.ParseIP("10.88.1.2"), net.ParseIP("10.88.2.2"), xnUDPPayload)
	g := xnStartTrafgen(t, ns, "gen0", xnTrafgenConf(pkt, mac, net.HardwareAddr{2, 0, 0, 0, 0, 1}))
	defer g.stop()
	time.Sleep(xnWarmup)
	c0, err := xnReadCounters(ns, "gen0")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Duration(secs) * time.Second)
	c1, err := xnReadCounters(ns, "gen0")
	if err != nil {
		t.Fatal(err)
	}
	if !g.running() {
		t.Fatalf("trafgen into gen0 exited:\n%s", g.out.String())
	}
	g.stop()
	return float64(c1.txPackets+c1.txDropped-c0.txPackets-c0.txDropped) / c1.at.Sub(c0.at).Seconds()
}

// TestCrossNodeUDP64: 64-byte UDP packets (46-byte IP packets) from a pod
// on node 1 to a pod on node 2 over VXLAN, as fast as trafgen sends them
// for the same time on every path; what reaches the receiving pod's IP
// layer per second, vecnet (per uplink driver) versus the kernel.
//
// On veths the kernel path runs entirely in the softirq of the sending
// call, on the generator's CPU (no RSS, no RPS): its rate is what one CPU
// does generating and forwarding, and the sender's rate equals the
// received rate. vecnet's workers run on their own threads, so the tun
// takes the generator's packets at once and drops what vecnetd does not
// read in time (counted in the sent rate). The round lines show how busy
// each CPU was.
func TestCrossNodeUDP64(t *testing.T) {
	requireBench(t)
	netlab.Require(t, "trafgen")
	secs, rounds := xnSeconds(), xnRounds()
	genMax := xnGeneratorMax(t, secs)
	t.Logf("trafgen alone (into a sink device): %.0f kpps", genMax/1e3)
	kernel, vecnet := xnPaths(t, "UDP 64B")
	var kn []xnUDPResult
	vn := map[string][]xnUDPResult{}
	failed := map[string]bool{}
	for r := 1; r <= rounds; r++ {
		res, err := xnUDPWindow(t, kernel, secs)
		if err != nil {
			t.Fatalf("round %d, kernel path: %v", r, err)
		}
		kn = append(kn, res)
		t.Logf("round %d, kernel: %v", r, res)
		for _, p := range vecnet {
			if failed[p.Name] {
				continue
			}
			res, err := xnUDPWindow(t, p, secs)
			if err == nil && res.rcvd < 1 {
				err = fmt.Errorf("no packet reached the receiving pod (%v)", res)
			}
			if err != nil {
				t.Errorf("round %d, vecnet %s: %v\nnode 1 errors:\n%s\nnode 2 errors:\n%s", r, p.Name, err,
					xnCtl(p.Cluster.Nodes[0].V, "show", "errors"), xnCtl(p.Cluster.Nodes[1].V, "show", "errors"))
				failed[p.Name] = true
				continue
			}
			vn[p.Name] = append(vn[p.Name], res)
			t.Logf("round %d, vecnet %s: %v", r, p.Name, res)
		}
	}
	pick := func(rs []xnUDPResult, f func(xnUDPResult) float64) float64 {
		var xs []float64
		for _, r := range rs {
			xs = append(xs, f(r))
		}
		return median(xs)
	}
	rcvd := func(r xnUDPResult) float64 { return r.rcvd }
	sent := func(r xnUDPResult) float64 { return r.sent }
	mk, sk := pick(kn, rcvd), pick(kn, sent)
	for _, p := range vecnet {
		if failed[p.Name] || len(vn[p.Name]) == 0 {
			fmt.Printf("FAIL cross-node UDP 64B vxlan %s: no result (see the test log)\n", p.Name)
			continue
		}
		mv, sv := pick(vn[p.Name], rcvd), pick(vn[p.Name], sent)
		fmt.Printf("RESULT cross-node UDP 64B vxlan %s: vecnet %.0f kpps, kernel %.0f kpps, ratio %.2f (sender: vecnet %.0f kpps, kernel %.0f kpps, trafgen alone %.0f kpps; median of %d x %ds rounds)\n",
			p.Name, mv/1e3, mk/1e3, mv/mk, sv/1e3, sk/1e3, genMax/1e3, len(vn[p.Name]), secs)
	}
	for _, p := range vecnet {
		t.Logf("vecnet %s, node 1 runtime:\n%s\nnode 1 errors:\n%s\nnode 2 errors:\n%s", p.Name, xnCtl(p.Cluster.Nodes[0].V, "show", "runtime"),
			xnCtl(p.Cluster.Nodes[0].V, "show", "errors"), xnCtl(p.Cluster.Nodes[1].V, "show", "errors"))
	}
}
