// End-to-end test of vecnet-lab, through its command line as a user runs
// it: up, kubectl, exec, down, against a real kube-apiserver and real
// vecnetd/vecnet-agent processes in network namespaces.
package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vecnet/vecnet/pkg/kubecluster"
	"github.com/vecnet/vecnet/pkg/lab"
	"github.com/vecnet/vecnet/test/netlab"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// requireKube skips t when the Kubernetes binaries are missing, or fails
// it with VECNET_REQUIRE_KUBE=1, as test/kubeenv does. kubectl is only
// required with VECNET_REQUIRE_KUBE=1: then `vecnet-lab kubectl` builds a
// missing one itself, which is part of what is tested.
func requireKube(t *testing.T) {
	t.Helper()
	required := os.Getenv("VECNET_REQUIRE_KUBE") == "1"
	names := []string{kubecluster.APIServer, kubecluster.Etcd}
	if !required {
		names = append(names, kubecluster.Kubectl)
	}
	if _, err := kubecluster.FindBinaries(kubecluster.BinDir(), names...); err != nil {
		if required {
			t.Fatalf("%v (failing, not skipping: VECNET_REQUIRE_KUBE=1)", err)
		}
		t.Skip(err)
	}
}

// cli runs vecnet-lab commands against one state directory.
type cli struct {
	t        *testing.T
	bin      string
	stateDir string
}

func (c *cli) run(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, "vecnet-lab"), append([]string{"--state-dir", c.stateDir}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (c *cli) must(args ...string) string {
	c.t.Helper()
	t0 := time.Now()
	out, err := c.run("", args...)
	if err != nil {
		c.t.Fatalf("vecnet-lab %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	c.t.Logf("vecnet-lab %s (%.1fs)", strings.Join(args, " "), time.Since(t0).Seconds())
	return out
}

// newCLI skips t unless it can run a lab, and returns a cli on a fresh
// state directory whose lab is taken down when the test ends (with the
// lab's logs if it failed).
func newCLI(t *testing.T) *cli {
	t.Helper()
	netlab.Require(t, "ping", "sysctl")
	requireKube(t)
	c := &cli{t: t, bin: netlab.Binaries(t), stateDir: filepath.Join(t.TempDir(), "lab")}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("lab logs:\n%s", c.logs())
		}
		if out, err := c.run("", "down"); err != nil {
			t.Errorf("down at cleanup: %v\n%s", err, out)
		}
	})
	return c
}

// clients are Kubernetes clients of the lab's apiserver, from the
// kubeconfig `vecnet-lab kubeconfig` names.
func (c *cli) clients() (kubernetes.Interface, dynamic.Interface) {
	c.t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", strings.TrimSpace(c.must("kubeconfig")))
	if err != nil {
		c.t.Fatal(err)
	}
	return kubernetes.NewForConfigOrDie(rc), dynamic.NewForConfigOrDie(rc)
}

// down runs `vecnet-lab down` and checks that it left no network
// namespace of the lab, no process naming the state directory or
// podProcess (a pod's command line), and no state directory.
func (c *cli) down(podProcess string) {
	c.t.Helper()
	c.must("down")
	if ns := netnsWithPrefix(lab.Prefix(c.stateDir)); len(ns) > 0 {
		c.t.Errorf("network namespaces left after down: %v", ns)
	}
	if pids := append(processesUsing(c.stateDir), processesUsing(podProcess)...); len(pids) > 0 {
		c.t.Errorf("processes left after down: %v", pids)
	}
	if _, err := os.Stat(c.stateDir); !errors.Is(err, os.ErrNotExist) {
		c.t.Errorf("state dir after down: %v, want it gone", err)
	}
}

// logs returns the tails of the lab's logs, for a failed test.
func (c *cli) logs() string {
	var b strings.Builder
	files, _ := filepath.Glob(filepath.Join(c.stateDir, "*.log"))
	more, _ := filepath.Glob(filepath.Join(c.stateDir, "nodes", "*", "*.log"))
	kube, _ := filepath.Glob(filepath.Join(c.stateDir, "kube", "*.log"))
	for _, f := range append(append(files, more...), kube...) {
		b.WriteString(kubecluster.LogTail(f, 0, 30))
	}
	return b.String()
}

var gvrHandles = schema.GroupVersionResource{Group: "projectcalico.org", Version: "v3", Resource: "ipamhandles"}
var gvrBlocks = schema.GroupVersionResource{Group: "projectcalico.org", Version: "v3", Resource: "ipamblocks"}

// podsYAML: pod-a and pod-b are the pair under test; keeper stays up
// through down, whose job includes its process. %s: keeper's sleep, a
// number no other process on the machine is likely to sleep.
const podsYAML = `apiVersion: v1
kind: Pod
metadata: {name: pod-a}
spec:
  nodeName: node1
  containers: [{name: c, image: none, command: [sleep, infinity]}]
---
apiVersion: v1
kind: Pod
metadata: {name: pod-b}
spec:
  nodeName: node2
  containers: [{name: c, image: none, command: [iperf3, -s]}]
---
apiVersion: v1
kind: Pod
metadata: {name: keeper}
spec:
  containers: [{name: c, image: none, command: [sleep, "%s"]}]
`

// TestLab: a 2-node lab from the command line; two pods (one per node)
// from kubectl get addresses from the pool and reach each other through
// vecnet; deleting them returns their addresses; down leaves nothing
// behind, and down again succeeds.
func TestLab(t *testing.T) {
	c := newCLI(t)

	out := c.must("up", "--nodes", "2")
	for _, want := range []string{"starting kube-apiserver... ok", "node 2/2", "the lab is up"} {
		if !strings.Contains(out, want) {
			t.Errorf("up printed no %q:\n%s", want, out)
		}
	}
	if out, err := c.run("", "up", "--nodes", "2"); err == nil || !strings.Contains(out, "already running") || !strings.Contains(out, "down") {
		t.Errorf("second up: err %v, want one saying the lab is already running and how to stop it:\n%s", err, out)
	}

	cs, dyn := c.clients()
	ctx := context.Background()

	keeperSleep := strconv.Itoa(90000 + rand.IntN(9999))
	if out, err := c.run(fmt.Sprintf(podsYAML, keeperSleep), "kubectl", "apply", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	pool := netip.MustParsePrefix(lab.PoolV4)
	ips := map[string]netip.Addr{}
	uids := map[string]string{}
	deadline := time.Now().Add(60 * time.Second)
	for len(ips) < 2 {
		for _, name := range []string{"pod-a", "pod-b"} {
			p, err := cs.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
			if err != nil || p.Status.Phase != corev1.PodRunning || len(p.Status.PodIPs) == 0 {
				continue
			}
			a, err := netip.ParseAddr(p.Status.PodIPs[0].IP)
			if err != nil || !pool.Contains(a) {
				t.Fatalf("%s has IP %q, not in the pool %s", name, p.Status.PodIPs[0].IP, pool)
			}
			ips[name], uids[name] = a, strings.ReplaceAll(string(p.UID), "-", "")
		}
		if time.Now().After(deadline) {
			out, _ := c.run("", "status")
			t.Fatalf("pods not Running with IPs after 60s (have %v)\n%s", ips, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("pods running: %v", ips)

	// Across nodes, both ways. A fresh path may lose its first packet to
	// neighbour resolution: ping succeeds with any reply, and is retried.
	for _, pair := range [][2]string{{"pod-a", "pod-b"}, {"pod-b", "pod-a"}} {
		var out string
		var err error
		for range 3 {
			if out, err = c.run("", "exec", pair[0], "--", "ping", "-c", "2", "-i", "0.2", "-W", "1", ips[pair[1]].String()); err == nil {
				break
			}
		}
		if err != nil {
			t.Fatalf("exec %s -- ping %s (%s): %v\n%s", pair[0], ips[pair[1]], pair[1], err, out)
		}
	}
	// exec passes the command's exit status on.
	if _, err := c.run("", "exec", "pod-a", "--", "sh", "-c", "exit 3"); exitCode(err) != 3 {
		t.Errorf("exec ... exit 3: got %v, want exit status 3", err)
	}
	if out := c.must("status"); !strings.Contains(out, ips["pod-a"].String()) || !strings.Contains(out, "eth0 tap") {
		t.Errorf("status lacks pod-a's IP or node1's tap uplink:\n%s", out)
	}

	handles := func() []string {
		l, err := dyn.Resource(gvrHandles).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var ours []string
		for _, h := range l.Items {
			for _, uid := range uids {
				if strings.Contains(h.GetName(), uid) {
					ours = append(ours, h.GetName())
				}
			}
		}
		return ours
	}
	if h := handles(); len(h) != 2 {
		t.Fatalf("IPAM handles of the pods: %v, want 2", h)
	}
	c.must("kubectl", "delete", "pod", "pod-a", "pod-b", "--timeout=60s")
	if h := handles(); len(h) != 0 {
		t.Errorf("IPAM handles left after deleting the pods: %v", h)
	}
	// Nor do the blocks: no allocation's attributes name their handles.
	blocks, err := dyn.Resource(gvrBlocks).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks.Items {
		allocs, _, _ := unstructured.NestedSlice(b.Object, "spec", "allocations")
		attrs, _, _ := unstructured.NestedSlice(b.Object, "spec", "attributes")
		for ord, a := range allocs {
			i, ok := a.(int64)
			if !ok || int(i) >= len(attrs) {
				continue
			}
			h, _, _ := unstructured.NestedString(attrs[i].(map[string]any), "handle_id")
			for name, uid := range uids {
				if strings.Contains(h, uid) {
					t.Errorf("block %s ordinal %d is still allocated to deleted %s (handle %s)", b.GetName(), ord, name, h)
				}
			}
		}
	}

	// keeper (placed by the lab's scheduler) runs until down.
	for deadline := time.Now().Add(30 * time.Second); len(processesUsing("sleep "+keeperSleep)) == 0; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			out, _ := c.run("", "status")
			t.Fatalf("keeper's process (sleep %s) not running after 30s\n%s", keeperSleep, out)
		}
	}
	c.down("sleep " + keeperSleep)
	if out := c.must("down"); !strings.Contains(out, "nothing to do") {
		t.Errorf("second down: %q, want it to say there is nothing to do", out)
	}
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

func netnsWithPrefix(prefix string) []string {
	ents, _ := os.ReadDir("/run/netns")
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// processesUsing lists processes (pid: command line) whose command line
// contains s.
func processesUsing(s string) []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		cmdline := strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " ")
		if strings.Contains(cmdline, s) {
			out = append(out, e.Name()+": "+cmdline)
		}
	}
	return out
}

// bgpPodsYAML: one pod per node; %s: their sleep, as keeper's in podsYAML.
const bgpPodsYAML = `apiVersion: v1
kind: Pod
metadata: {name: bgp-a}
spec:
  nodeName: node1
  containers: [{name: c, image: none, command: [sleep, "%[1]s"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: bgp-b}
spec:
  nodeName: node2
  containers: [{name: c, image: none, command: [sleep, "%[1]s"]}]
`

// TestLabBGP: a 2-node lab with --encap bgp, Calico's BIRD set-up: routed
// pools, each node's agent in the node's namespace peering with the other
// (through the supervisor's proxy to the apiserver). Pods on both nodes
// reach each other over BGP-learned routes; status shows the sessions
// established; an agent killed is restarted by the supervisor (graceful
// restart: the routes stay) and its sessions come back; down leaves
// nothing behind.
func TestLabBGP(t *testing.T) {
	c := newCLI(t)
	t0 := time.Now()

	out := c.must("up", "--nodes", "2", "--encap", "bgp")
	for _, want := range []string{"192.168.77.254:6443", "vecnet-agent --bgp", "waiting for the BGP mesh", "the lab is up", "encap bgp"} {
		if !strings.Contains(out, want) {
			t.Errorf("up printed no %q:\n%s", want, out)
		}
	}
	st, err := lab.ReadState(c.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	if st.APIProxy != lab.APIProxyAddr4+":6443" || st.NodeKubeconfig == "" {
		t.Errorf("lab.json: API proxy %q, node kubeconfig %q", st.APIProxy, st.NodeKubeconfig)
	}
	for _, n := range st.Nodes {
		if n.AgentNetns != n.Netns {
			t.Errorf("%s: agent in netns %q, want the node's %s", n.Name, n.AgentNetns, n.Netns)
		}
	}

	cs, dyn := c.clients()
	ctx := context.Background()
	// The pools are routed and the mesh is configured.
	p, err := dyn.Resource(schema.GroupVersionResource{Group: "projectcalico.org", Version: "v3", Resource: "ippools"}).Get(ctx, lab.PoolV4Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if vx, _, _ := unstructured.NestedString(p.Object, "spec", "vxlanMode"); vx != "Never" {
		t.Errorf("pool %s vxlanMode %q, want Never", lab.PoolV4Name, vx)
	}
	if ipip, _, _ := unstructured.NestedString(p.Object, "spec", "ipipMode"); ipip != "Never" {
		t.Errorf("pool %s ipipMode %q, want Never", lab.PoolV4Name, ipip)
	}
	bc, err := dyn.Resource(schema.GroupVersionResource{Group: "projectcalico.org", Version: "v3", Resource: "bgpconfigurations"}).Get(ctx, "default", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("default BGPConfiguration: %v", err)
	}
	if as, _, _ := unstructured.NestedInt64(bc.Object, "spec", "asNumber"); as != 64512 {
		t.Errorf("default BGPConfiguration asNumber %d, want 64512", as)
	}

	sleep := strconv.Itoa(90000 + rand.IntN(9999))
	if out, err := c.run(fmt.Sprintf(bgpPodsYAML, sleep), "kubectl", "apply", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	ips := map[string]string{}
	for deadline := time.Now().Add(30 * time.Second); len(ips) < 2; time.Sleep(200 * time.Millisecond) {
		for _, name := range []string{"bgp-a", "bgp-b"} {
			p, err := cs.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
			if err == nil && p.Status.Phase == corev1.PodRunning && len(p.Status.PodIPs) > 0 {
				ips[name] = p.Status.PodIPs[0].IP
			}
		}
		if time.Now().After(deadline) {
			out, _ := c.run("", "status")
			t.Fatalf("pods not Running with IPs after 30s (have %v)\n%s", ips, out)
		}
	}
	t.Logf("pods running: %v", ips)

	// Across nodes, both ways, over routes BGP carries once the pods'
	// blocks exist: retried for a while.
	ping := func(what string) {
		t.Helper()
		for _, pair := range [][2]string{{"bgp-a", "bgp-b"}, {"bgp-b", "bgp-a"}} {
			var out string
			var err error
			for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
				if out, err = c.run("", "exec", pair[0], "--", "ping", "-c", "2", "-i", "0.2", "-W", "1", ips[pair[1]]); err == nil || time.Now().After(deadline) {
					break
				}
			}
			if err != nil {
				routes, _ := c.run("", "status")
				t.Fatalf("%s: exec %s -- ping %s (%s): %v\n%s\n%s", what, pair[0], ips[pair[1]], pair[1], err, out, routes)
			}
		}
	}
	ping("mesh")
	// The route is BGP's, via the other node's address, without a tunnel.
	routes, err := exec.Command(filepath.Join(c.bin, "vecnetctl"), "--socket", st.Nodes[0].VecnetdSocket, "show", "routes", "--source", "bgp").CombinedOutput()
	if err != nil || !strings.Contains(string(routes), st.Nodes[1].Addr4) {
		t.Errorf("node1's bgp routes (want one via %s): %v\n%s", st.Nodes[1].Addr4, err, routes)
	}

	established := func(out string) map[string]int {
		n := map[string]int{}
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) >= 5 && f[4] == "Established" && strings.HasPrefix(f[0], "node") {
				n[f[0]]++
			}
		}
		return n
	}
	status := c.must("status")
	if e := established(status); e["node1"] != 2 || e["node2"] != 2 || !strings.Contains(status, "BGP on") {
		t.Errorf("status: established sessions %v, want 2 per node (IPv4, IPv6), and \"BGP on\":\n%s", e, status)
	}

	// The supervisor restarts a killed agent (inside its namespace again);
	// node1 keeps node2's routes meanwhile (graceful restart) and the
	// sessions come back.
	pidFile := filepath.Join(c.stateDir, "pids", "agent-node2.pid")
	old := readPidFile(pidFile)
	if old <= 0 {
		t.Fatalf("no pid in %s", pidFile)
	}
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	restart := time.Now()
	for deadline := restart.Add(30 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		status, _ = c.run("", "status")
		e := established(status)
		if pid := readPidFile(pidFile); pid != old && pid > 0 && e["node1"] == 2 && e["node2"] == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30s after agent-node2 was killed: pid %d (was %d), sessions %v\n%s", readPidFile(pidFile), old, e, status)
		}
	}
	t.Logf("agent-node2 restarted and its sessions re-established %s after it was killed", time.Since(restart).Round(100*time.Millisecond))
	if agentLog, _ := os.ReadFile(filepath.Join(c.stateDir, "nodes", "node2", "agent.log")); !strings.Contains(string(agentLog), "graceful_restart=true") {
		t.Errorf("node2's agent did not come back with graceful restart:\n%s", agentLog)
	}
	ping("after node2's agent restart")

	c.down("sleep " + sleep)
	t.Logf("up, pods, pings, agent restart and down took %s", time.Since(t0).Round(100*time.Millisecond))
}

func readPidFile(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}
