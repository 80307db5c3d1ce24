package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vecnet/vecnet/deploy"
	"github.com/vecnet/vecnet/pkg/kubecluster"
	"github.com/vecnet/vecnet/pkg/lab/baseline"
	"github.com/vecnet/vecnet/pkg/lab/kubelet"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Controllers are the kube-controller-manager controllers the lab runs:
// namespaces can be deleted, owner references garbage-collected,
// ServiceAccounts exist, and Deployments/ReplicaSets make pods, so that
// everyday kubectl works. Not node-lifecycle: nothing renews the lab's
// Node heartbeats, and it would mark every node NotReady and evict its pods.
var Controllers = []string{
	"namespace-controller", "garbage-collector-controller",
	"serviceaccount-controller", "serviceaccount-token-controller",
	"deployment-controller", "replicaset-controller",
}

var (
	gvrIPPools          = schema.GroupVersionResource{Group: "projectcalico.org", Version: "v3", Resource: "ippools"}
	gvrBGPConfiguration = schema.GroupVersionResource{Group: "projectcalico.org", Version: "v3", Resource: "bgpconfigurations"}
)

// supervisor is `vecnet-lab serve`: it builds the lab, keeps it running
// and takes it down on SIGTERM.
type supervisor struct {
	cfg      Config
	l        layout
	prefix   string
	log      *slog.Logger
	progress io.Writer

	cluster  *kubecluster.Cluster
	proxy    *kubecluster.Proxy // --encap bgp: the nodes' way to the apiserver
	daemons  []*daemon
	nodes    []NodeState
	notes    []string
	kubelets sync.WaitGroup
	stopPods context.CancelFunc
}

// Serve runs the supervisor of the lab in stateDir (started by Up, which
// wrote its config.json there) until ctx ends, then tears the lab down. It
// returns an error if the lab could not be started.
func Serve(ctx context.Context, stateDir string) error {
	cfg, err := readConfig(stateDir)
	if err != nil {
		return fmt.Errorf("reading the lab's configuration (start labs with `vecnet-lab up`, not `serve`): %w", err)
	}
	l := cfg.layout()
	if err := writePid(l.servePid(), os.Getpid()); err != nil {
		return err
	}
	pf, err := os.OpenFile(l.progress(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer pf.Close()
	s := &supervisor{
		cfg:      *cfg,
		l:        l,
		prefix:   Prefix(cfg.StateDir),
		log:      slog.New(slog.NewTextHandler(os.Stderr, nil)),
		progress: pf,
	}
	s.log.Info("vecnet-lab supervisor starting", "pid", os.Getpid(), "config", fmt.Sprintf("%+v", *cfg))

	sctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	err = s.start(sctx)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("interrupted: %w", err)
		}
		// One line for up to print; the whole error, with the logs of the
		// process that failed, goes to serve.log when Serve returns it.
		fmt.Fprintf(pf, "FAILED: %s\n", firstLine(err.Error()))
		s.teardown()
		return err
	}
	fmt.Fprintf(pf, "ready\n")
	s.log.Info("lab ready")
	<-ctx.Done()
	s.log.Info("stopping the lab", "reason", context.Cause(ctx))
	s.teardown()
	s.log.Info("lab stopped")
	return nil
}

// step runs f with a progress line: "what... ok (1.2s)".
func (s *supervisor) step(what string, f func() error) error {
	fmt.Fprintf(s.progress, "%s... ", what)
	t0 := time.Now()
	s.log.Info("step", "what", what)
	err := f()
	if err != nil {
		fmt.Fprintf(s.progress, "failed (%.1fs)\n", time.Since(t0).Seconds())
		return fmt.Errorf("%s: %w", what, err)
	}
	fmt.Fprintf(s.progress, "ok (%.1fs)\n", time.Since(t0).Seconds())
	return nil
}

func (s *supervisor) start(ctx context.Context) error {
	if err := s.startKube(ctx); err != nil {
		return err
	}
	if err := s.step("installing the projectcalico.org CRDs and the IP pools", func() error { return s.installPools(ctx) }); err != nil {
		return err
	}
	if err := s.step("creating the underlay (netns "+s.prefix+"underlay, bridge br0)", s.makeUnderlay); err != nil {
		return err
	}
	if s.cfg.BGP() {
		what := fmt.Sprintf("serving the apiserver to the nodes' agents at %s:%d on the underlay", APIProxyAddr4, APIProxyPort)
		if err := s.step(what, s.startAPIProxy); err != nil {
			return err
		}
	}
	podCtx, stopPods := context.WithCancel(context.Background())
	s.stopPods = stopPods
	for i := 1; i <= s.cfg.Nodes; i++ {
		v4, _ := NodeAddrs(i)
		agent := "vecnet-agent"
		if s.cfg.BGP() {
			agent = "vecnet-agent --bgp"
		}
		what := fmt.Sprintf("node %d/%d (%s, %s): vecnetd with a %s uplink, %s, kubelet", i, s.cfg.Nodes, NodeName(i), v4, s.cfg.Driver, agent)
		if err := s.step(what, func() error { return s.startNode(ctx, podCtx, i) }); err != nil {
			return err
		}
	}
	if s.cfg.BGP() && s.cfg.Nodes > 1 {
		what := fmt.Sprintf("waiting for the BGP mesh (AS %d: %d sessions per node, IPv4 and IPv6 to each other node)", BGPASNumber, 2*(s.cfg.Nodes-1))
		if err := s.step(what, func() error { return s.waitBGPMesh(ctx) }); err != nil {
			return err
		}
	}
	var names []string
	for _, n := range s.nodes {
		names = append(names, n.Name)
	}
	s.kubelets.Add(1)
	go func() {
		defer s.kubelets.Done()
		log := s.log.With("component", "scheduler")
		if err := kubelet.Schedule(podCtx, s.cluster.Client, names, log); err != nil && podCtx.Err() == nil {
			log.Error("scheduler stopped", "err", err)
		}
	}()
	st := State{
		Config:     s.cfg,
		Prefix:     s.prefix,
		Kubeconfig: s.cluster.Kubeconfig,
		APIServer:  s.cluster.Config.Host,
		Supervisor: os.Getpid(),
		Started:    time.Now(),
		Pools:      s.pools(),
		Nodes:      s.nodes,
		Notes:      s.notes,
	}
	if s.proxy != nil {
		st.NodeKubeconfig, st.APIProxy = s.l.nodeKubeconfig(), s.proxy.Addr()
	}
	return writeJSON(s.l.state(), st)
}

func (s *supervisor) startKube(ctx context.Context) error {
	if err := os.MkdirAll(s.l.kube(), 0o755); err != nil {
		return err
	}
	var controllers []string
	if _, err := kubecluster.FindBinaries(s.cfg.KubeBin, kubecluster.ControllerManager); err == nil {
		controllers = Controllers
	} else {
		s.notes = append(s.notes, "kube-controller-manager is not built, so namespaces are never finalized after deletion and "+
			"Deployments make no pods; build it with `bash hack/kube-build.sh kube-controller-manager` and start the lab again")
	}
	var t0 time.Time
	c, err := kubecluster.Start(ctx, kubecluster.Options{
		Dir:          s.l.kube(),
		BinDir:       s.cfg.KubeBin,
		Name:         "vecnet-lab",
		Controllers:  controllers,
		StartTimeout: s.cfg.Timeout,
		Progress: func(component string, done bool, err error) {
			switch {
			case !done:
				t0 = time.Now()
				fmt.Fprintf(s.progress, "starting %s... ", component)
			case err != nil:
				fmt.Fprintf(s.progress, "failed (%.1fs)\n", time.Since(t0).Seconds())
			default:
				fmt.Fprintf(s.progress, "ok (%.1fs)\n", time.Since(t0).Seconds())
			}
		},
	})
	if err != nil {
		return err
	}
	s.cluster = c
	for _, p := range c.Processes() {
		if err := writePid(s.l.pidFile(p.Name), p.Pid()); err != nil {
			return err
		}
	}
	return nil
}

// pools are the lab's pool CIDRs: vecnetd's pod prefixes.
func (s *supervisor) pools() []string {
	if s.cfg.IPv6 {
		return []string{PoolV4, PoolV6}
	}
	return []string{PoolV4}
}

// installPools installs the CRDs (built into the binary: the lab works
// from any directory) and the default IPPools, with the modes of
// --encap. IPv6 has no IP-in-IP: with ipip its pool is routed. With bgp
// (routed pools, as none) it also creates the default BGPConfiguration.
func (s *supervisor) installPools(ctx context.Context) error {
	if _, err := s.cluster.InstallCRDs(ctx, deploy.CRDs); err != nil {
		return err
	}
	vx, ipip := "Never", "Never"
	switch s.cfg.Encap {
	case "vxlan":
		vx = "Always"
	case "ipip":
		ipip = "Always"
	}
	pool := func(name, cidr string, block int, vx, ipip string) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "projectcalico.org/v3",
			"kind":       "IPPool",
			"metadata":   map[string]any{"name": name},
			"spec": map[string]any{
				"cidr": cidr, "blockSize": int64(block), "vxlanMode": vx, "ipipMode": ipip,
				"natOutgoing": true, "nodeSelector": "all()",
			},
		}}
	}
	pools := []*unstructured.Unstructured{pool(PoolV4Name, PoolV4, PoolV4Block, vx, ipip)}
	if s.cfg.IPv6 {
		pools = append(pools, pool(PoolV6Name, PoolV6, PoolV6Block, vx, "Never"))
	}
	for _, p := range pools {
		if _, err := s.cluster.Dynamic.Resource(gvrIPPools).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("IPPool %s: %w", p.GetName(), err)
		}
	}
	if s.cfg.BGP() {
		cfg := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "projectcalico.org/v3",
			"kind":       "BGPConfiguration",
			"metadata":   map[string]any{"name": "default"},
			"spec": map[string]any{
				"asNumber": int64(BGPASNumber), "nodeToNodeMeshEnabled": true, "logSeverityScreen": "Info",
			},
		}}
		if _, err := s.cluster.Dynamic.Resource(gvrBGPConfiguration).Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("BGPConfiguration default: %w", err)
		}
	}
	return nil
}

// startAPIProxy gives the underlay bridge the address APIProxyAddr4 and
// serves a proxy to the apiserver there (its socket in the underlay
// namespace, its connections to the apiserver from the supervisor's), and
// writes the kubeconfig of the agents that run inside the nodes'
// namespaces, where the apiserver's loopback address is out of reach.
func (s *supervisor) startAPIProxy() error {
	ul := s.prefix + "underlay"
	if err := ip("-n", ul, "addr", "add", APIProxyAddr4+"/24", "dev", "br0"); err != nil {
		return err
	}
	listen := fmt.Sprintf("%s:%d", APIProxyAddr4, APIProxyPort)
	return kubecluster.ProxyKubeconfig(s.cluster.Kubeconfig, s.l.nodeKubeconfig(), func(target string) (string, error) {
		if s.proxy != nil {
			if s.proxy.Target() != target {
				return "", fmt.Errorf("a second API server %s in the kubeconfig (the proxy serves %s)", target, s.proxy.Target())
			}
			return s.proxy.Addr(), nil
		}
		// Its life is the supervisor's: teardown closes it.
		p, err := kubecluster.StartProxy(context.Background(), ul, listen, target)
		if err != nil {
			return "", err
		}
		s.proxy = p
		return p.Addr(), nil
	})
}

// ip runs an ip(8) command; the error carries the command and its output.
func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// addNetns makes a network namespace with lo up. Nothing records it:
// teardown and down find the lab's namespaces by their prefix.
func (s *supervisor) addNetns(name string) error {
	if err := ip("netns", "add", name); err != nil {
		return err
	}
	return ip("-n", name, "link", "set", "lo", "up")
}

// makeUnderlay makes the network the nodes' uplinks plug into: a bridge in
// a namespace of its own, so that the lab touches nothing of the host's.
func (s *supervisor) makeUnderlay() error {
	ul := s.prefix + "underlay"
	if err := s.addNetns(ul); err != nil {
		return err
	}
	if err := ip("-n", ul, "link", "add", "br0", "type", "bridge"); err != nil {
		return err
	}
	return ip("-n", ul, "link", "set", "br0", "up")
}

// startNode builds node i: its namespace and uplink, vecnetd inside it,
// the Node object, vecnet-agent, the conflist and the kubelet. The agent
// runs in the host namespace (it only talks to the apiserver and to
// vecnetd's socket), except with BGP: its speaker's sessions run on the
// agent's own network stack, which must be the node's, so it runs inside
// the node's namespace and reaches the apiserver through the proxy.
func (s *supervisor) startNode(ctx, podCtx context.Context, i int) error {
	name := NodeName(i)
	ns := s.prefix + name
	ul := s.prefix + "underlay"
	v4, v6 := NodeAddrs(i)
	dir := s.l.node(i)
	if err := os.MkdirAll(filepath.Join(dir, "net.d"), 0o755); err != nil {
		return err
	}
	if err := s.addNetns(ns); err != nil {
		return err
	}
	port := "n" + strconv.Itoa(i)
	for _, args := range [][]string{
		{"link", "add", port, "netns", ul, "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"-n", ul, "link", "set", port, "master", "br0", "up"},
		// Keep IPv6 addresses across link down/up, as a configured server
		// does (the kernel default drops them); nodes forward, as hosts
		// of a CNI do.
		{"netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.keep_addr_on_down=1", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"},
		{"-n", ns, "addr", "add", v4 + "/24", "dev", "eth0"},
		{"-n", ns, "addr", "add", v6 + "/64", "dev", "eth0", "nodad"},
		{"-n", ns, "link", "set", "eth0", "up"},
	} {
		if err := ip(args...); err != nil {
			return err
		}
	}

	vsock := s.l.vecnetdSock(i)
	vargv := []string{"ip", "netns", "exec", ns, filepath.Join(s.cfg.BinDir, "vecnetd"),
		"--socket", vsock, "--workers", "1", "--pod-cidrs", strings.Join(s.pools(), ","),
		"--uplinks", "eth0:" + s.cfg.Driver}
	vd := &daemon{
		name: "vecnetd-" + name, log: filepath.Join(dir, "vecnetd.log"), sup: s,
		args:  func() []string { return vargv },
		ready: func() bool { return vecnetctl(s.cfg.BinDir, vsock, "show", "uplinks") == nil },
	}
	if err := vd.start(ctx); err != nil {
		return err
	}
	if err := s.createNode(ctx, name, v4, v6); err != nil {
		return err
	}

	st := &NodeState{Name: name, Netns: ns, Addr4: v4, Addr6: v6, VecnetdSocket: vsock, CNISocket: s.l.cniSock(i),
		ConfList: s.l.confList(i), Dir: dir}
	agent := &daemon{name: "agent-" + name, log: filepath.Join(dir, "agent.log"), sup: s}
	if s.cfg.BGP() {
		// The node's loopback: the agent's usual ports are free there.
		st.AgentNetns, st.HealthAddr, st.MetricsAddr = ns, "127.0.0.1:9099", "127.0.0.1:9091"
		argv := []string{"ip", "netns", "exec", ns, filepath.Join(s.cfg.BinDir, "vecnet-agent"), "--bgp",
			"--node-name", name, "--kubeconfig", s.l.nodeKubeconfig(),
			"--vecnetd-socket", vsock, "--cni-socket", st.CNISocket, "--health-addr", st.HealthAddr, "--metrics-addr", st.MetricsAddr}
		agent.args = func() []string { return argv }
		agent.ready = func() bool { return nsHTTPOK(ns, "http://"+st.HealthAddr+"/readyz") }
	} else {
		// The agent's ports are picked here and kept across restarts
		// (lab.json has them); only a port taken before the agent bound
		// it makes new ones.
		pickPorts := func() {
			h, _ := kubecluster.FreePort()
			m, _ := kubecluster.FreePort()
			st.HealthAddr, st.MetricsAddr = fmt.Sprintf("127.0.0.1:%d", h), fmt.Sprintf("127.0.0.1:%d", m)
		}
		pickPorts()
		agent.repick = pickPorts
		agent.args = func() []string {
			return []string{filepath.Join(s.cfg.BinDir, "vecnet-agent"), "--node-name", name, "--kubeconfig", s.cluster.Kubeconfig,
				"--vecnetd-socket", vsock, "--cni-socket", st.CNISocket, "--health-addr", st.HealthAddr, "--metrics-addr", st.MetricsAddr}
		}
		agent.ready = func() bool { return httpOK("http://" + st.HealthAddr + "/readyz") }
	}
	if err := agent.start(ctx); err != nil {
		return err
	}

	conf := fmt.Sprintf(`{
  "cniVersion": "1.1.0",
  "name": "vecnet",
  "plugins": [{"type": "vecnet", "agentSocket": %q, "timeout": "30s", "logLevel": "warn"}]
}
`, st.CNISocket)
	if err := os.WriteFile(st.ConfList, []byte(conf), 0o644); err != nil {
		return err
	}
	klog, err := os.OpenFile(filepath.Join(dir, "kubelet.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	kcfg := kubelet.Config{
		NodeName:    name,
		Client:      s.cluster.Client,
		CNIConfList: st.ConfList,
		CNIBinDirs:  []string{s.cfg.BinDir},
		NetnsPrefix: s.prefix + "pod-",
		RunDir:      filepath.Join(dir, "kubelet"),
		Log:         slog.New(slog.NewTextHandler(klog, nil)).With("node", name),
	}
	s.kubelets.Add(1)
	go func() {
		defer s.kubelets.Done()
		defer klog.Close()
		if err := kubelet.Run(podCtx, kcfg); err != nil {
			s.log.Error("kubelet stopped", "node", name, "err", err)
		}
	}()
	s.nodes = append(s.nodes, *st)
	return nil
}

// createNode registers node name as a kubelet would: Ready, with the
// uplink addresses as InternalIPs (the agents route other nodes' blocks
// to them), and the capacity the scheduler and kubectl describe show.
func (s *supervisor) createNode(ctx context.Context, name, v4, v6 string) error {
	nodes := s.cluster.Client.CoreV1().Nodes()
	n, err := nodes.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name: name,
		Labels: map[string]string{
			"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
			"vecnet.io/lab": "true",
		},
	}}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	now := metav1.Now()
	capacity := corev1.ResourceList{
		corev1.ResourcePods:   resource.MustParse("110"),
		corev1.ResourceCPU:    resource.MustParse("2"),
		corev1.ResourceMemory: resource.MustParse("4Gi"),
	}
	n.Status = corev1.NodeStatus{
		Capacity:    capacity,
		Allocatable: capacity,
		Phase:       corev1.NodeRunning,
		Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			Message: "vecnet-lab node", LastHeartbeatTime: now, LastTransitionTime: now,
		}},
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: v4},
			{Type: corev1.NodeInternalIP, Address: v6},
			{Type: corev1.NodeHostName, Address: name},
		},
		NodeInfo: corev1.NodeSystemInfo{
			KubeletVersion: kubecluster.KubeVersion, OperatingSystem: "linux", Architecture: "amd64",
			ContainerRuntimeVersion: "vecnet-lab://processes",
		},
	}
	_, err = nodes.UpdateStatus(ctx, n, metav1.UpdateOptions{})
	return err
}

func httpOK(url string) bool {
	c := &http.Client{Timeout: time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// nsHTTPOK is httpOK from inside network namespace ns: the connection is
// made there (by a thread in ns), then used from here.
func nsHTTPOK(ns, url string) bool {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	var conn net.Conn
	if err := kubecluster.InNetns(ns, func() (err error) {
		conn, err = net.DialTimeout("tcp", req.URL.Host, time.Second)
		return err
	}); err != nil {
		return false
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	req.Close = true
	if err := req.Write(conn); err != nil {
		return false
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// vecnetctl runs vecnetctl against socket and returns its output.
func vecnetctlOut(binDir, socket string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(binDir, "vecnetctl"), append([]string{"--socket", socket}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("vecnetctl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func vecnetctl(binDir, socket string, args ...string) error {
	_, err := vecnetctlOut(binDir, socket, args...)
	return err
}

// teardown stops everything the supervisor started, in the order that lets
// each piece clean up after itself: kubelets (so nothing reacts to what
// follows), agents, vecnetd (removes its interfaces and eBPF programs),
// the control plane; then it deletes the lab's namespaces, with whatever
// pod processes are still in them.
func (s *supervisor) teardown() {
	if s.stopPods != nil {
		s.stopPods()
		done := make(chan struct{})
		go func() { s.kubelets.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			s.log.Warn("kubelets did not stop within 15s")
		}
	}
	stopAll := func(prefix string) {
		var wg sync.WaitGroup
		for _, d := range s.daemons {
			if strings.HasPrefix(d.name, prefix) {
				wg.Add(1)
				go func() { defer wg.Done(); d.stop(10 * time.Second) }()
			}
		}
		wg.Wait()
	}
	stopAll("agent-")
	stopAll("vecnetd-")
	if s.proxy != nil {
		s.proxy.Close()
	}
	if s.cluster != nil {
		s.cluster.Stop()
	}
	if err := baseline.DeleteByPrefix(s.prefix); err != nil {
		s.log.Warn("deleting the lab's network namespaces", "err", err)
	}
	os.RemoveAll(s.l.pids())
	os.Remove(s.l.servePid())
}

// daemon is a long-running process of the lab (vecnetd, vecnet-agent),
// restarted when it dies: a supervisor that left a node without its
// dataplane until someone noticed would make the lab lie about vecnet.
type daemon struct {
	name, log string
	args      func() []string
	ready     func() bool
	repick    func() // new ports after a port-in-use failure; nil: none
	sup       *supervisor

	ctx    context.Context // cancelled by stop
	cancel context.CancelFunc
	mu     sync.Mutex
	proc   *kubecluster.Process
}

// start starts the daemon, waits until ready (up to a minute, retrying on
// a taken port) and supervises it from then on.
func (d *daemon) start(ctx context.Context) error {
	d.ctx, d.cancel = context.WithCancel(context.Background())
	d.sup.daemons = append(d.sup.daemons, d) // teardown stops it even if it failed to start
	// Start-up is bounded by ctx; the daemon's life by stop.
	sctx, cancel := context.WithCancel(d.ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	if err := d.launch(sctx); err != nil {
		return err
	}
	go d.supervise()
	return nil
}

func (d *daemon) launch(ctx context.Context) error {
	pidFile := d.sup.l.pidFile(d.name)
	for attempt := 1; ; attempt++ {
		p, err := kubecluster.StartProcess(d.name, d.args(), d.log, filepath.Dir(d.log))
		if err != nil {
			return err
		}
		d.mu.Lock()
		d.proc = p
		d.mu.Unlock()
		if err := writePid(pidFile, p.Pid()); err != nil {
			p.Stop(time.Second)
			return err
		}
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		err = p.WaitReady(rctx, d.ready)
		cancel()
		if err == nil {
			return nil
		}
		p.Stop(5 * time.Second)
		if !errors.Is(err, kubecluster.ErrPortInUse) || d.repick == nil || attempt == 3 {
			return fmt.Errorf("%s did not start: %w\n%s", d.name, err, kubecluster.LogTail(d.log, 0, 30))
		}
		d.repick()
	}
}

// supervise restarts the daemon when it exits, with a backoff of 1s
// doubling to 30s, until stop.
func (d *daemon) supervise() {
	backoff := time.Second
	for {
		d.mu.Lock()
		p := d.proc
		d.mu.Unlock()
		select {
		case <-p.Done():
		case <-d.ctx.Done():
			return
		}
		d.sup.log.Error("process exited; restarting it", "name", d.name, "err", p.Err(), "after", backoff, "log", d.log)
		select {
		case <-time.After(backoff):
		case <-d.ctx.Done():
			return
		}
		backoff = min(2*backoff, 30*time.Second)
		if err := d.launch(d.ctx); err != nil {
			d.sup.log.Error("restart failed", "name", d.name, "err", err)
		} else {
			d.mu.Lock()
			pid := d.proc.Pid()
			d.mu.Unlock()
			d.sup.log.Info("restarted", "name", d.name, "pid", pid)
		}
	}
}

// stop stops the daemon for good: no restart, SIGTERM, SIGKILL after
// grace.
func (d *daemon) stop(grace time.Duration) {
	d.cancel()
	d.mu.Lock()
	p := d.proc
	d.mu.Unlock()
	if p != nil {
		p.Stop(grace)
	}
}
