// End-to-end tests of vecnet-agent and the vecnet CNI plugin on one node,
// driven through libcni exactly as containerd drives a plugin, against a
// real kube-apiserver (test/kubeenv), a real vecnetd and real network
// namespaces.
package agent

import (
	"bufio"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vecnet/vecnet/test/kubeenv"
	"github.com/vecnet/vecnet/test/netlab"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

func TestMain(m *testing.M) { os.Exit(kubeenv.Main(m)) }

var (
	ippools   = schema.GroupVersionResource{Group: "projectcalico.org", Version: "v3", Resource: "ippools"}
	ipamhdls  = schema.GroupVersionResource{Group: "projectcalico.org", Version: "v3", Resource: "ipamhandles"}
	crdsOnce  sync.Once
	repoRoot  = func() string { wd, _ := os.Getwd(); return filepath.Join(wd, "..", "..") }()
	ctxTODO   = context.Background()
	nodeCount int
	nodeMu    sync.Mutex
)

// agentGCInterval is short so tests see garbage collection; the latency
// benchmark uses the production default so GC does not compete with ADDs.
var agentGCInterval = "2s"

// cluster is one node: the API objects, vecnetd and vecnet-agent.
type cluster struct {
	t        *testing.T
	env      *kubeenv.Env
	node     string
	ns       string
	v        *netlab.Vecnetd
	bin      string
	cniSock  string
	health   string
	metrics  string
	agent    *exec.Cmd
	agentLog *netlab.SyncBuffer
	// agentDone is closed when the agent process has exited.
	agentDone chan struct{}
	cni       *libcni.CNIConfig
	conf      *libcni.NetworkConfigList
	ids       []string // container ids of this cluster's pods
	// netns runs the agent in a node's network namespace (its host
	// network), with kubeconfig reaching the API server from there and
	// agentFlags added; empty: the test's namespace, env.Kubeconfig.
	netns      string
	kubeconfig string
	agentFlags []string
}

func apply(t *testing.T, env *kubeenv.Env, gvr schema.GroupVersionResource, doc string) {
	t.Helper()
	var u unstructured.Unstructured
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatal(err)
	}
	_ = env.Dynamic.Resource(gvr).Delete(ctxTODO, u.GetName(), metav1.DeleteOptions{})
	if _, err := env.Dynamic.Resource(gvr).Create(ctxTODO, &u, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create %s %s: %v", gvr.Resource, u.GetName(), err)
	}
}

// newCluster starts vecnetd and vecnet-agent for a fresh node with its own
// v4 and v6 pools.
func newCluster(t *testing.T) *cluster {
	netlab.Require(t, "ping", "iperf3")
	env := kubeenv.Get(t)
	crdsOnce.Do(func() { env.InstallCRDs(t, filepath.Join(repoRoot, "deploy", "crds")) })
	nodeMu.Lock()
	nodeCount++
	n := nodeCount
	nodeMu.Unlock()
	c := &cluster{t: t, env: env, node: fmt.Sprintf("node-%d-%s", n, netlab.Unique()), ns: env.Namespace(t)}
	_, err := env.Client.CoreV1().Nodes().Create(ctxTODO, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: c.node, Labels: map[string]string{"kubernetes.io/hostname": c.node}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.CoreV1().Nodes().Delete(ctxTODO, c.node, metav1.DeleteOptions{}) })
	// Each test gets pools that select only its node, so tests don't
	// share addresses.
	for _, p := range []struct{ name, cidr, bs string }{
		{"v4-" + c.node, fmt.Sprintf("10.%d.0.0/16", 100+n), "26"},
		{"v6-" + c.node, fmt.Sprintf("fd%02x::/48", n), "122"},
	} {
		apply(t, env, ippools, fmt.Sprintf(`apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: %s}
spec: {cidr: %q, blockSize: %s, nodeSelector: "kubernetes.io/hostname == '%s'", ipipMode: Never, vxlanMode: Never, natOutgoing: true}
`, p.name, p.cidr, p.bs, c.node))
		name := p.name
		t.Cleanup(func() { _ = env.Dynamic.Resource(ippools).Delete(ctxTODO, name, metav1.DeleteOptions{}) })
	}
	c.v = netlab.StartVecnetd(t)
	c.bin = netlab.Binaries(t)
	dir := t.TempDir()
	c.cniSock = filepath.Join(dir, "cni.sock")
	c.health = freeAddr(t)
	c.metrics = freeAddr(t)
	c.startAgent()
	c.cni = libcni.NewCNIConfig([]string{c.bin}, nil)
	conf, err := libcni.ConfListFromBytes([]byte(fmt.Sprintf(`{
  "cniVersion": "1.1.0",
  "name": "vecnet",
  "plugins": [{"type": "vecnet", "agentSocket": %q, "dns": {"nameservers": ["10.96.0.10"]}}]
}`, c.cniSock)))
	if err != nil {
		t.Fatal(err)
	}
	c.conf = conf
	return c
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// nsHTTPGet GETs url from network namespace ns ("" = the test's).
func nsHTTPGet(ns, url string) (int, string, error) {
	if ns == "" {
		resp, err := http.Get(url)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	var conn net.Conn
	// The socket is made inside ns and used from here.
	if err := netlab.Do(ns, func() (err error) {
		conn, err = net.DialTimeout("tcp", req.URL.Host, 2*time.Second)
		return err
	}); err != nil {
		return 0, "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	req.Close = true
	if err := req.Write(conn); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (c *cluster) startAgent() {
	c.t.Helper()
	c.agentLog = &netlab.SyncBuffer{}
	argv := []string{filepath.Join(c.bin, "vecnet-agent"), "--node-name", c.node, "--kubeconfig", cmp.Or(c.kubeconfig, c.env.Kubeconfig),
		"--vecnetd-socket", c.v.Socket, "--cni-socket", c.cniSock, "--health-addr", c.health, "--metrics-addr", c.metrics, "--gc-interval", agentGCInterval, "--log-level", cmp.Or(os.Getenv("VECNET_AGENT_LOG"), "info")}
	argv = append(argv, c.agentFlags...)
	if c.netns != "" {
		argv = append([]string{"ip", "netns", "exec", c.netns}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = c.agentLog, c.agentLog
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.agent = cmd
	done := make(chan struct{})
	c.agentDone = done
	go func() { _ = cmd.Wait(); close(done) }()
	c.t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
		}
		if c.t.Failed() || os.Getenv("VECNET_AGENT_LOG") == "debug" {
			c.t.Logf("vecnet-agent log:\n%s", c.agentLog.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if code, _, err := nsHTTPGet(c.netns, "http://"+c.health+"/readyz"); err == nil && code == 200 {
			return
		}
		select {
		case <-done:
			c.t.Fatalf("vecnet-agent exited:\n%s", c.agentLog.String())
		default:
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("vecnet-agent not ready after 30s:\n%s", c.agentLog.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pod is a Pod object on the cluster's node with a network namespace.
type pod struct {
	name, netns, id string
	rt              *libcni.RuntimeConf
	v4, v6          netip.Addr
}

func (c *cluster) newPod(name string, annotations map[string]string) *pod {
	c.t.Helper()
	p := &pod{name: name, netns: netlab.Netns(c.t, "vnk8s"), id: containerID()}
	c.ids = append(c.ids, p.id)
	_, err := c.env.Client.CoreV1().Pods(c.ns).Create(ctxTODO, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations},
		Spec:       corev1.PodSpec{NodeName: c.node, Containers: []corev1.Container{{Name: "c", Image: "none"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	pp, _ := c.env.Client.CoreV1().Pods(c.ns).Get(ctxTODO, name, metav1.GetOptions{})
	p.rt = &libcni.RuntimeConf{
		ContainerID: p.id, NetNS: "/var/run/netns/" + p.netns, IfName: "eth0",
		Args: [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", c.ns}, {"K8S_POD_NAME", name}, {"K8S_POD_INFRA_CONTAINER_ID", p.id}, {"K8S_POD_UID", string(pp.UID)}},
	}
	return p
}

func (c *cluster) add(p *pod) *types100.Result {
	c.t.Helper()
	r, err := c.cni.AddNetworkList(ctxTODO, c.conf, p.rt)
	if err != nil {
		c.t.Fatalf("CNI ADD %s: %v\nagent log:\n%s", p.name, err, c.agentLog.String())
	}
	res, err := types100.NewResultFromResult(r)
	if err != nil {
		c.t.Fatal(err)
	}
	for _, ip := range res.IPs {
		a, _ := netip.AddrFromSlice(ip.Address.IP)
		a = a.Unmap()
		if a.Is4() {
			p.v4 = a
		} else {
			p.v6 = a
		}
	}
	return res
}

func (c *cluster) del(p *pod) {
	c.t.Helper()
	if err := c.cni.DelNetworkList(ctxTODO, c.conf, p.rt); err != nil {
		c.t.Fatalf("CNI DEL %s: %v", p.name, err)
	}
}

func (c *cluster) handles() []string {
	l, err := c.env.Dynamic.Resource(ipamhdls).List(ctxTODO, metav1.ListOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	var out []string
	for _, h := range l.Items {
		for _, id := range c.ids {
			if strings.Contains(h.GetName(), id) {
				out = append(out, h.GetName())
			}
		}
	}
	return out
}

// containerID returns a random 64-hex-digit id, like containerd's.
func containerID() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func ping(t *testing.T, from *pod, to netip.Addr) {
	t.Helper()
	out, err := netlab.InNetns(from.netns, "ping", "-c", "2", "-i", "0.2", "-W", "2", to.String())
	if err != nil {
		t.Fatalf("ping %s from %s: %v\n%s", to, from.name, err, out)
	}
}

func TestCNIAddCheckDelThroughLibcni(t *testing.T) {
	c := newCluster(t)
	a, b := c.newPod("pod-a", nil), c.newPod("pod-b", nil)
	ra := c.add(a)
	c.add(b)
	if !a.v4.IsValid() || !a.v6.IsValid() {
		t.Fatalf("want one IPv4 and one IPv6 address, got %v", ra.IPs)
	}
	if len(ra.Interfaces) == 0 || ra.Interfaces[0].Name != "eth0" || ra.Interfaces[0].Sandbox != a.rt.NetNS {
		t.Errorf("result interfaces %+v", ra.Interfaces)
	}
	if len(ra.DNS.Nameservers) != 1 {
		t.Errorf("result DNS %+v: want the configured nameserver", ra.DNS)
	}
	if out := netlab.MustRun(t, "ip", "-n", a.netns, "addr", "show", "eth0"); !strings.Contains(out, a.v4.String()) || !strings.Contains(out, a.v6.String()) {
		t.Errorf("pod eth0 lacks its addresses:\n%s", out)
	}
	ping(t, a, b.v4)
	ping(t, b, a.v6)
	m := httpGet(t, "http://"+c.metrics+"/metrics")
	for _, want := range []string{`vecnet_cni_requests_total{code="OK",op="add"} 2`, "vecnet_cni_request_duration_seconds_bucket", "vecnet_ipam_pool_allocated"} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if err := c.cni.CheckNetworkList(ctxTODO, c.conf, a.rt); err != nil {
		t.Errorf("CNI CHECK: %v", err)
	}
	if n := len(c.handles()); n != 2 {
		t.Errorf("%d IPAM handles for the node, want 2", n)
	}
	c.del(a)
	c.del(a) // idempotent
	if _, err := netlab.Run("ip", "-n", a.netns, "link", "show", "eth0"); err == nil {
		t.Errorf("eth0 still in %s after DEL", a.netns)
	}
	if n := len(c.handles()); n != 1 {
		t.Errorf("%d IPAM handles after one DEL, want 1", n)
	}
	// The released addresses are handed out again.
	a2 := c.newPod("pod-a2", nil)
	c.add(a2)
	ping(t, a2, b.v4)
	c.del(b)
	c.del(a2)
	if h := c.handles(); len(h) != 0 {
		t.Errorf("handles left after deleting every pod: %v", h)
	}
}

func TestCNIFixedIPAndPoolAnnotations(t *testing.T) {
	c := newCluster(t)
	v4 := fmt.Sprintf("10.%s.7.7", regexp.MustCompile(`10\.(\d+)`).FindStringSubmatch(poolCIDR(t, c, "v4"))[1])
	p := c.newPod("fixed", map[string]string{"cni.projectcalico.org/ipAddrs": fmt.Sprintf("[%q]", v4)})
	c.add(p)
	if p.v4.String() != v4 {
		t.Fatalf("fixed IP: got %v, want %s", p.v4, v4)
	}
	q := c.newPod("same-ip", map[string]string{"cni.projectcalico.org/ipAddrs": fmt.Sprintf("[%q]", v4)})
	if _, err := c.cni.AddNetworkList(ctxTODO, c.conf, q.rt); err == nil {
		t.Fatalf("a second pod got the same fixed IP %s", v4)
	}
	r := c.newPod("only-v6", map[string]string{"cni.projectcalico.org/ipv6pools": fmt.Sprintf("[%q]", "v6-"+c.node)})
	c.add(r)
	if r.v4.IsValid() || !r.v6.IsValid() {
		t.Fatalf("ipv6pools annotation: got v4 %v v6 %v, want IPv6 only", r.v4, r.v6)
	}
	bad := c.newPod("bad-annotation", map[string]string{"cni.projectcalico.org/ipv4pools": "not json"})
	_, err := c.cni.AddNetworkList(ctxTODO, c.conf, bad.rt)
	if err == nil || !strings.Contains(err.Error(), "ipv4pools") {
		t.Fatalf("bad annotation: want an error naming it, got %v", err)
	}
	for _, x := range []*pod{p, q, r, bad} {
		c.del(x)
	}
}

func poolCIDR(t *testing.T, c *cluster, fam string) string {
	u, err := c.env.Dynamic.Resource(ippools).Get(ctxTODO, fam+"-"+c.node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, _, _ := unstructured.NestedString(u.Object, "spec", "cidr")
	return s
}

func TestCNIErrorsAreActionable(t *testing.T) {
	c := newCluster(t)
	p := c.newPod("p", nil)
	// Bad configuration: the field is named.
	bad, _ := libcni.ConfListFromBytes([]byte(`{"cniVersion":"1.1.0","name":"vecnet","plugins":[{"type":"vecnet","agentSocket":"relative/path"}]}`))
	if _, err := c.cni.AddNetworkList(ctxTODO, bad, p.rt); err == nil || !strings.Contains(err.Error(), "agentSocket") {
		t.Errorf("bad agentSocket: %v", err)
	}
	// Agent down: code 11 with a message that says what to check.
	_ = c.agent.Process.Kill()
	time.Sleep(200 * time.Millisecond)
	_, err := c.cni.AddNetworkList(ctxTODO, c.conf, p.rt)
	if err == nil || !strings.Contains(err.Error(), "vecnet-agent") {
		t.Errorf("agent down: want an error naming vecnet-agent, got %v", err)
	}
	// No ADD succeeded, so the runtime has no prevResult: per the plugin's
	// DEL rule (pkg/cniplugin) there is nothing to release and DEL succeeds
	// even with the agent down.
	if err := c.cni.DelNetworkList(ctxTODO, c.conf, p.rt); err != nil {
		t.Errorf("DEL with the agent down and no prevResult: %v", err)
	}
	c.startAgent()
	c.add(p)
	c.del(p)
}

// The agent holds no forwarding state: killing it (SIGKILL) and starting it
// again does not disturb running pods.
func TestAgentRestartKeepsTraffic(t *testing.T) {
	c := newCluster(t)
	a, b := c.newPod("pod-a", nil), c.newPod("pod-b", nil)
	c.add(a)
	c.add(b)
	pinger := exec.Command("ip", "netns", "exec", a.netns, "ping", "-i", "0.02", "-c", "200", "-W", "1", b.v4.String())
	var out strings.Builder
	pinger.Stdout, pinger.Stderr = &out, &out
	if err := pinger.Start(); err != nil {
		t.Fatal(err)
	}
	iperf := netlab.Background(t, b.netns, "iperf3", "-s", "-1", "-p", "5410")
	_ = iperf
	time.Sleep(300 * time.Millisecond)
	ic := exec.Command("ip", "netns", "exec", a.netns, "iperf3", "-c", b.v4.String(), "-p", "5410", "-t", "4")
	var iout strings.Builder
	ic.Stdout, ic.Stderr = &iout, &iout
	if err := ic.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	_ = c.agent.Process.Signal(syscall.SIGKILL)
	time.Sleep(500 * time.Millisecond)
	c.startAgent()
	if err := ic.Wait(); err != nil {
		t.Fatalf("iperf3 through the pod failed across the agent restart: %v\n%s", err, iout.String())
	}
	if err := pinger.Wait(); err != nil {
		t.Fatalf("ping: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), " 0% packet loss") {
		t.Fatalf("packets lost across the agent restart:\n%s", out.String())
	}
	// The restarted agent still serves the existing pods' DEL.
	c.del(a)
	c.del(b)
}

// TestCNILatency measures ADD and DEL latency (the benchmark): 100
// pods one after another, then 20 at once. Set VECNET_BENCH=1 to run it.
func TestCNILatency(t *testing.T) {
	if os.Getenv("VECNET_BENCH") == "" {
		t.Skip("benchmark: VECNET_BENCH=1")
	}
	agentGCInterval = "5m"
	defer func() { agentGCInterval = "2s" }()
	c := newCluster(t)
	measure := func(n, conc int) (add, del []time.Duration) {
		pods := make([]*pod, n)
		for i := range pods {
			pods[i] = c.newPod(fmt.Sprintf("lat-%d-%d", conc, i), nil)
		}
		var mu sync.Mutex
		run := func(f func(p *pod) time.Duration, into *[]time.Duration) {
			sem := make(chan struct{}, conc)
			var wg sync.WaitGroup
			for _, p := range pods {
				wg.Add(1)
				sem <- struct{}{}
				go func() {
					defer wg.Done()
					d := f(p)
					mu.Lock()
					*into = append(*into, d)
					mu.Unlock()
					<-sem
				}()
			}
			wg.Wait()
		}
		run(func(p *pod) time.Duration {
			s := time.Now()
			if _, err := c.cni.AddNetworkList(ctxTODO, c.conf, p.rt); err != nil {
				t.Errorf("ADD: %v", err)
			}
			return time.Since(s)
		}, &add)
		run(func(p *pod) time.Duration {
			s := time.Now()
			if err := c.cni.DelNetworkList(ctxTODO, c.conf, p.rt); err != nil {
				t.Errorf("DEL: %v", err)
			}
			return time.Since(s)
		}, &del)
		return add, del
	}
	pct := func(ds []time.Duration, p float64) time.Duration {
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[int(float64(len(ds)-1)*p)]
	}
	for _, run := range []struct{ n, conc int }{{100, 1}, {20, 20}} {
		add, del := measure(run.n, run.conc)
		fmt.Printf("RESULT cni-latency %d pods, %d concurrent: ADD p50 %v p99 %v, DEL p50 %v p99 %v\n",
			run.n, run.conc, pct(add, .5).Round(time.Millisecond/10), pct(add, .99).Round(time.Millisecond/10),
			pct(del, .5).Round(time.Millisecond/10), pct(del, .99).Round(time.Millisecond/10))
	}
}

// cnitool (containernetworking/cni's own CLI) drives the plugin too, the
// way operators debug a node by hand.
func TestCnitool(t *testing.T) {
	c := newCluster(t)
	dir := t.TempDir()
	tool := filepath.Join(dir, "cnitool")
	build := exec.Command("go", "build", "-o", tool, "github.com/containernetworking/cni/cnitool")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build cnitool: %v\n%s", err, out)
	}
	confDir := filepath.Join(dir, "net.d")
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(confDir, "10-vecnet.conflist"), []byte(fmt.Sprintf(
		`{"cniVersion":"1.1.0","name":"vecnet","plugins":[{"type":"vecnet","agentSocket":%q}]}`, c.cniSock)), 0o644); err != nil {
		t.Fatal(err)
	}
	p := c.newPod("cnitool-pod", nil)
	run := func(verb string) string {
		cmd := exec.Command(tool, verb, "vecnet", p.rt.NetNS)
		cmd.Env = append(os.Environ(), "NETCONFPATH="+confDir, "CNI_PATH="+c.bin, "CNI_IFNAME=eth0",
			fmt.Sprintf("CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=%s;K8S_POD_NAME=%s", c.ns, p.name))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("cnitool %s: %v\n%s\nagent log:\n%s", verb, err, out, c.agentLog.String())
		}
		return string(out)
	}
	out := run("add")
	if !strings.Contains(out, `"ips"`) {
		t.Fatalf("cnitool add printed no IPs:\n%s", out)
	}
	if o := netlab.MustRun(t, "ip", "-n", p.netns, "-o", "addr", "show", "eth0"); !strings.Contains(o, "inet ") {
		t.Fatalf("no address on eth0 after cnitool add:\n%s", o)
	}
	run("check")
	run("del")
	run("del")
	if _, err := netlab.Run("ip", "-n", p.netns, "link", "show", "eth0"); err == nil {
		t.Fatal("eth0 still there after cnitool del")
	}
}

// A pod deleted from the API without a CNI DEL (node crash, runtime bug)
// gets its addresses and interface released by the agent's GC.
func TestGCReleasesDeletedPods(t *testing.T) {
	c := newCluster(t)
	a, b := c.newPod("gone", nil), c.newPod("stays", nil)
	c.add(a)
	c.add(b)
	if err := c.env.Client.CoreV1().Pods(c.ns).Delete(ctxTODO, "gone", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(c.handles()) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("handles after GC: %v, want only the live pod's\nagent log:\n%s", c.handles(), c.agentLog.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := netlab.Run("ip", "-n", a.netns, "link", "show", "eth0"); err == nil {
		t.Error("the deleted pod's interface is still there after GC")
	}
	if out, err := netlab.Run("ip", "-n", b.netns, "addr", "show", "eth0"); err != nil || !strings.Contains(out, b.v4.String()) {
		t.Errorf("the live pod lost its interface or address: %v\n%s", err, out)
	}
	c.del(b)
	c.del(a) // the runtime's late DEL still succeeds
}

// vecnetd takes the pods' tun devices with it when it exits; once it is
// back, the agent re-creates them with the same addresses.
func TestVecnetdRestartRestoresPods(t *testing.T) {
	c := newCluster(t)
	a, b := c.newPod("pod-a", nil), c.newPod("pod-b", nil)
	c.add(a)
	c.add(b)
	ping(t, a, b.v4)
	socket := c.v.Socket
	if !c.v.Stop(10 * time.Second) {
		t.Fatal("vecnetd did not stop")
	}
	if _, err := netlab.Run("ip", "-n", a.netns, "link", "show", "eth0"); err == nil {
		t.Fatal("eth0 survived vecnetd's exit")
	}
	v2 := netlab.StartVecnetdAt(t, socket)
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, _ := v2.Ctl("show", "interfaces")
		if strings.Count(out, "vn") >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pods not restored after vecnetd restart:\n%s\nagent log:\n%s", out, c.agentLog.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	ping(t, a, b.v4)
	ping(t, b, a.v6)
	c.v = v2
	c.del(a)
	c.del(b)
}
