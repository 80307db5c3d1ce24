// End-to-end tests of the lab kubelet with real parts: a real apiserver
// (test/kubeenv), and the real CNI chain — libcni runs the vecnet plugin,
// which asks a real vecnet-agent, which asks a real vecnetd — in real
// network namespaces. They need root (skipped otherwise), except the
// scheduler's.
package kubelet

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vecnet/vecnet/test/kubeenv"
	"github.com/vecnet/vecnet/test/netlab"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"
)

func TestMain(m *testing.M) { os.Exit(kubeenv.Main(m)) }

var (
	gvrPools   = schema.GroupVersionResource{Group: "projectcalico.org", Version: "v3", Resource: "ippools"}
	gvrHandles = schema.GroupVersionResource{Group: "projectcalico.org", Version: "v3", Resource: "ipamhandles"}
	crdsOnce   sync.Once
	repoRoot   = func() string { wd, _ := os.Getwd(); return filepath.Join(wd, "..", "..", "..") }()
	bg         = context.Background()
	nodeSeq    int
)

// node is one lab node: a Node object, its IPPools, vecnetd, vecnet-agent,
// the conflist, and the kubelet under test.
type node struct {
	t        *testing.T
	env      *kubeenv.Env
	name, ns string
	seq      int
	prefix   string // netns prefix
	runDir   string
	conflist string
	bin      string
	hostIP   string
	v4Pool   netip.Prefix
	metrics  string
	agentLog *netlab.SyncBuffer
	kLog     *netlab.SyncBuffer
	stop     func() // stops the running kubelet
}

// newNode starts everything but the kubelet (startKubelet) for a fresh
// node; withPools: IPPools that select it (without, CNI ADD fails).
func newNode(t *testing.T, withPools bool) *node {
	netlab.Require(t, "ping")
	env := kubeenv.Get(t)
	crdsOnce.Do(func() { env.InstallCRDs(t, filepath.Join(repoRoot, "deploy", "crds")) })
	nodeSeq++
	n := &node{t: t, env: env, seq: nodeSeq, ns: env.Namespace(t), kLog: &netlab.SyncBuffer{}, agentLog: &netlab.SyncBuffer{}}
	u := netlab.Unique()
	n.name = "kl-" + u
	n.prefix = "klt" + u + "-"
	n.runDir = t.TempDir()
	n.hostIP = fmt.Sprintf("192.0.2.%d", n.seq)
	n.v4Pool = netip.MustParsePrefix(fmt.Sprintf("10.%d.0.0/16", 200+n.seq))

	nodes := env.Client.CoreV1().Nodes()
	obj, err := nodes.Create(bg, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.name, Labels: map[string]string{"kubernetes.io/hostname": n.name}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nodes.Delete(bg, n.name, metav1.DeleteOptions{}) })
	obj.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: n.hostIP}, {Type: corev1.NodeInternalIP, Address: fmt.Sprintf("fd00:db8::%d", n.seq)}}
	if _, err := nodes.UpdateStatus(bg, obj, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if withPools {
		n.addPools()
	}

	v := netlab.StartVecnetd(t)
	n.bin = netlab.Binaries(t)
	dir := t.TempDir()
	cniSock := filepath.Join(dir, "cni.sock")
	health := freeAddr(t)
	n.metrics = freeAddr(t)
	agent := exec.Command(filepath.Join(n.bin, "vecnet-agent"), "--node-name", n.name, "--kubeconfig", env.Kubeconfig,
		"--vecnetd-socket", v.Socket, "--cni-socket", cniSock, "--health-addr", health, "--metrics-addr", n.metrics,
		"--gc-interval", "2s", "--log-level", "info")
	agent.Stdout, agent.Stderr = n.agentLog, n.agentLog
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = agent.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = agent.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = agent.Process.Kill()
		}
		if t.Failed() {
			t.Logf("vecnet-agent log:\n%s", n.agentLog.String())
		}
	})
	waitFor(t, 30*time.Second, "vecnet-agent ready", func() bool {
		resp, err := http.Get("http://" + health + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})

	n.conflist = filepath.Join(dir, "10-vecnet.conflist")
	conf := fmt.Sprintf(`{"cniVersion": "1.1.0", "name": "vecnet",
  "plugins": [{"type": "vecnet", "agentSocket": %q, "timeout": "30s", "logLevel": "warn"}]}`, cniSock)
	if err := os.WriteFile(n.conflist, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// Runs after the kubelet stopped (cleanups run last-in first-out):
	// Run leaves pods running by design, the test must not.
	t.Cleanup(func() { cleanNetns(t, n.prefix) })
	t.Cleanup(func() {
		if t.Failed() || testing.Verbose() {
			t.Logf("kubelet log:\n%s", n.kLog.String())
		}
	})
	return n
}

// addPools creates an IPv4 and an IPv6 pool selecting only this node.
func (n *node) addPools() {
	for _, p := range []struct{ name, cidr, bs string }{
		{"v4-" + n.name, n.v4Pool.String(), "26"},
		{"v6-" + n.name, fmt.Sprintf("fd%02x:%x::/48", 0x90+n.seq, n.seq), "122"},
	} {
		doc := fmt.Sprintf(`apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: %s}
spec: {cidr: %q, blockSize: %s, nodeSelector: "kubernetes.io/hostname == '%s'", ipipMode: Never, vxlanMode: Never, natOutgoing: true}
`, p.name, p.cidr, p.bs, n.name)
		var u unstructured.Unstructured
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			n.t.Fatal(err)
		}
		if _, err := n.env.Dynamic.Resource(gvrPools).Create(bg, &u, metav1.CreateOptions{}); err != nil {
			n.t.Fatalf("create IPPool %s: %v", p.name, err)
		}
		name := p.name
		n.t.Cleanup(func() { _ = n.env.Dynamic.Resource(gvrPools).Delete(bg, name, metav1.DeleteOptions{}) })
	}
}

// startKubelet runs the kubelet under test until stopKubelet or the end
// of the test.
func (n *node) startKubelet() {
	ctx, cancel := context.WithCancel(bg)
	done := make(chan error, 1)
	cfg := Config{
		NodeName: n.name, Client: n.env.Client, CNIConfList: n.conflist, CNIBinDirs: []string{n.bin},
		NetnsPrefix: n.prefix, RunDir: n.runDir,
		Log: slog.New(slog.NewTextHandler(n.kLog, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	go func() { done <- Run(ctx, cfg) }()
	var once sync.Once
	n.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					n.t.Errorf("Run: %v", err)
				}
			case <-time.After(90 * time.Second):
				n.t.Error("Run did not return 90s after its context ended")
			}
		})
	}
	n.t.Cleanup(n.stop)
}

// cleanNetns kills what runs in the test's pod namespaces and removes them.
func cleanNetns(t *testing.T, prefix string) {
	ents, _ := os.ReadDir(NetnsDir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			if err := killNetnsPids(e.Name(), 5*time.Second); err != nil {
				t.Logf("cleanup: %v", err)
			}
			_ = deleteNetns(e.Name())
		}
	}
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// createPod creates a pod on the node; image is required by the API and
// ignored by the lab kubelet.
func (n *node) createPod(name string, spec corev1.PodSpec) *corev1.Pod {
	n.t.Helper()
	spec.NodeName = n.name
	for i := range spec.Containers {
		spec.Containers[i].Image = cmp.Or(spec.Containers[i].Image, "lab.invalid/none")
	}
	for i := range spec.InitContainers {
		spec.InitContainers[i].Image = cmp.Or(spec.InitContainers[i].Image, "lab.invalid/none")
	}
	p, err := n.env.Client.CoreV1().Pods(n.ns).Create(bg, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}, metav1.CreateOptions{})
	if err != nil {
		n.t.Fatal(err)
	}
	return p
}

// waitPod polls the pod until ok; on timeout it fails with the pod's
// status.
func (n *node) waitPod(name string, d time.Duration, what string, ok func(*corev1.Pod) bool) *corev1.Pod {
	n.t.Helper()
	deadline := time.Now().Add(d)
	for {
		p, err := n.env.Client.CoreV1().Pods(n.ns).Get(bg, name, metav1.GetOptions{})
		if err == nil && ok(p) {
			return p
		}
		if time.Now().After(deadline) {
			st, _ := yaml.Marshal(p.Status)
			n.t.Fatalf("pod %s: timed out after %v waiting for %s (err %v); status:\n%s", name, d, what, err, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (n *node) waitGone(name string, d time.Duration) {
	n.t.Helper()
	waitFor(n.t, d, "pod "+name+" to be gone from the API", func() bool {
		_, err := n.env.Client.CoreV1().Pods(n.ns).Get(bg, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
}

func running(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) != len(p.Spec.Containers) {
		return false
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Running == nil {
			return false
		}
	}
	return true
}

// handles are the IPAM handles of a pod (the agent names them after the
// CNI container id).
func (n *node) handles(uid types.UID) []string {
	n.t.Helper()
	l, err := n.env.Dynamic.Resource(gvrHandles).List(bg, metav1.ListOptions{})
	if err != nil {
		n.t.Fatal(err)
	}
	var out []string
	for _, h := range l.Items {
		if strings.Contains(h.GetName(), ContainerID(uid)) {
			out = append(out, h.GetName())
		}
	}
	return out
}

func (n *node) metric(name string) string {
	resp, err := http.Get("http://" + n.metrics + "/metrics")
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, name+" ") {
			return strings.TrimPrefix(l, name+" ")
		}
	}
	return ""
}

func pidOf(t *testing.T, cs corev1.ContainerStatus) int {
	t.Helper()
	pid, err := strconv.Atoi(strings.TrimPrefix(cs.ContainerID, "lab://"))
	if err != nil || !strings.HasPrefix(cs.ContainerID, "lab://") {
		t.Fatalf("container %s: containerID %q is not lab://<pid>", cs.Name, cs.ContainerID)
	}
	return pid
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// inNetns tells whether process pid's network namespace is the named one.
func inNetns(t *testing.T, pid int, name string) bool {
	t.Helper()
	var a, b syscall.Stat_t
	if err := syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &a); err != nil {
		t.Fatalf("pid %d: %v", pid, err)
	}
	if err := syscall.Stat(NetnsPath(name), &b); err != nil {
		t.Fatalf("netns %s: %v", name, err)
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}

func (n *node) logFile(pod, ctr string) string {
	b, _ := os.ReadFile(filepath.Join(n.runDir, n.ns+"_"+pod, ctr+".log"))
	return string(b)
}

func cond(p *corev1.Pod, t corev1.PodConditionType) corev1.PodCondition {
	for _, c := range p.Status.Conditions {
		if c.Type == t {
			return c
		}
	}
	return corev1.PodCondition{}
}

func ctr(name string, cmd ...string) corev1.Container {
	return corev1.Container{Name: name, Command: cmd}
}

// A pod goes Running with addresses from the real chain, its processes
// run inside its netns and log to their files, pods reach each other, and
// deleting the pod (gracefully, or by force behind the kubelet's back)
// stops the processes, releases the addresses and removes the netns.
func TestPodLifecycle(t *testing.T) {
	n := newNode(t, true)
	n.startKubelet()
	web := n.createPod("web", corev1.PodSpec{Containers: []corev1.Container{
		{
			Name:    "main",
			Command: []string{"sh", "-c", "echo $(GREETING) from $POD_IP in $(PWD_HINT); exec sleep 300"},
			Env: []corev1.EnvVar{{Name: "GREETING", Value: "hello"}, {Name: "PWD_HINT", Value: "$(GREETING)-dir"},
				{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}}},
			WorkingDir: "/tmp",
		},
		{Name: "pause"}, // no command: sleep infinity
	}})
	peer := n.createPod("peer", corev1.PodSpec{Containers: []corev1.Container{ctr("c", "sleep", "300")}})
	n.createPod("hostnet", corev1.PodSpec{HostNetwork: true, Containers: []corev1.Container{ctr("c", "sleep", "300")}})

	p := n.waitPod("web", 30*time.Second, "Running", running)
	netns := NetnsName(n.prefix, web.UID)
	ip := netip.MustParseAddr(p.Status.PodIP)
	if !n.v4Pool.Contains(ip) {
		t.Errorf("podIP %s is not from the node's IPv4 pool %s", ip, n.v4Pool)
	}
	if len(p.Status.PodIPs) != 2 || p.Status.PodIPs[0].IP != p.Status.PodIP || !netip.MustParseAddr(p.Status.PodIPs[1].IP).Is6() {
		t.Errorf("podIPs %v: want the IPv4 podIP first, then an IPv6 address", p.Status.PodIPs)
	}
	if p.Status.HostIP != n.hostIP || len(p.Status.HostIPs) != 2 {
		t.Errorf("hostIP %q hostIPs %v: want %s and the node's IPv6 InternalIP", p.Status.HostIP, p.Status.HostIPs, n.hostIP)
	}
	if p.Status.StartTime == nil {
		t.Error("no startTime")
	}
	for _, ct := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady, corev1.PodReadyToStartContainers} {
		if c := cond(p, ct); c.Status != corev1.ConditionTrue {
			t.Errorf("condition %s: %+v, want True", ct, c)
		}
	}
	if p.Status.QOSClass == "" {
		t.Error("the status update lost qosClass")
	}
	var pids []int
	for _, cs := range p.Status.ContainerStatuses {
		if !cs.Ready || cs.Started == nil || !*cs.Started || cs.RestartCount != 0 || cs.Image != "lab.invalid/none" || cs.State.Running.StartedAt.IsZero() {
			t.Errorf("container status %+v", cs)
		}
		pid := pidOf(t, cs)
		pids = append(pids, pid)
		if !inNetns(t, pid, netns) {
			t.Errorf("container %s (pid %d) is not in the pod netns %s", cs.Name, pid, netns)
		}
	}
	if out := netlab.MustRun(t, "ip", "-n", netns, "addr", "show", "eth0"); !strings.Contains(out, ip.String()+"/") {
		t.Errorf("eth0 in %s lacks %s:\n%s", netns, ip, out)
	}
	want := fmt.Sprintf("hello from %s in hello-dir", ip)
	waitFor(t, 5*time.Second, "the container's output in its log", func() bool { return strings.Contains(n.logFile("web", "main"), want) })
	if l := n.logFile("web", "pause"); !strings.Contains(l, "sleep infinity") {
		t.Errorf("pause.log lacks the note about running sleep infinity: %q", l)
	}
	if h := n.handles(web.UID); len(h) != 1 {
		t.Errorf("IPAM handles of web: %v, want 1", h)
	}

	q := n.waitPod("peer", 30*time.Second, "Running", running)
	if out, err := netlab.InNetns(netns, "ping", "-c", "1", "-W", "2", q.Status.PodIP); err != nil {
		t.Errorf("ping peer %s from web: %v\n%s", q.Status.PodIP, err, out)
	}

	// hostNetwork: no netns, no CNI; the node's addresses.
	h := n.waitPod("hostnet", 30*time.Second, "Running", running)
	hostPid := pidOf(t, h.Status.ContainerStatuses[0])
	if h.Status.PodIP != n.hostIP {
		t.Errorf("hostNetwork pod: podIP %s, want the node's %s", h.Status.PodIP, n.hostIP)
	}
	if self, err := os.Readlink("/proc/self/ns/net"); err != nil {
		t.Fatal(err)
	} else if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", hostPid)); err != nil || ns != self {
		t.Errorf("hostNetwork pod's process is in netns %s (%v), want the kubelet's %s", ns, err, self)
	}
	if err := n.env.Client.CoreV1().Pods(n.ns).Delete(bg, "hostnet", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	n.waitGone("hostnet", 20*time.Second)
	if alive(hostPid) {
		t.Errorf("hostNetwork pod's pid %d alive after deletion", hostPid)
	}

	// Graceful deletion: the API sets deletionTimestamp, the kubelet
	// stops the pod and finishes the deletion.
	if err := n.env.Client.CoreV1().Pods(n.ns).Delete(bg, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	n.waitGone("web", 20*time.Second)
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("pid %d still alive after the pod was deleted", pid)
		}
	}
	if netnsExists(netns) {
		t.Errorf("netns %s still there after the pod was deleted", netns)
	}
	if h := n.handles(web.UID); len(h) != 0 {
		t.Errorf("IPAM handles of the deleted pod: %v (CNI DEL did not release the address)", h)
	}
	if _, err := os.Stat(filepath.Join(n.runDir, "pods", string(web.UID)+".json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pod record left: %v", err)
	}

	// Force deletion: the object vanishes at once (the kubelet may or may
	// not see it with a deletionTimestamp first); the kubelet still cleans
	// up. (The agent's GC would release the address too, so the netns and
	// the processes are what prove the kubelet did it.)
	peerPid := pidOf(t, q.Status.ContainerStatuses[0])
	if err := n.env.Client.CoreV1().Pods(n.ns).Delete(bg, "peer", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	peerNetns := NetnsName(n.prefix, peer.UID)
	waitFor(t, 20*time.Second, "the force-deleted pod's netns and process to be gone", func() bool {
		return !netnsExists(peerNetns) && !alive(peerPid)
	})
	waitFor(t, 10*time.Second, "the force-deleted pod's address to be released", func() bool { return len(n.handles(peer.UID)) == 0 })
}

// restartPolicy: Never and OnFailure pods end Succeeded or Failed with
// the exit code (and give their address back); Always restarts with
// growing backoff and counts; a missing command is a StartError; init
// containers run to completion first.
func TestRestartPolicies(t *testing.T) {
	n := newNode(t, true)
	n.startKubelet()
	never, onFail, always := corev1.RestartPolicyNever, corev1.RestartPolicyOnFailure, corev1.RestartPolicyAlways
	pods := map[string]*corev1.Pod{
		"ok-never":   n.createPod("ok-never", corev1.PodSpec{RestartPolicy: never, Containers: []corev1.Container{ctr("c", "true")}}),
		"fail-never": n.createPod("fail-never", corev1.PodSpec{RestartPolicy: never, Containers: []corev1.Container{ctr("c", "sh", "-c", "echo bye; exit 3")}}),
		"ok-onfail":  n.createPod("ok-onfail", corev1.PodSpec{RestartPolicy: onFail, Containers: []corev1.Container{ctr("c", "sh", "-c", "exit 0")}}),
		"crash":      n.createPod("crash", corev1.PodSpec{RestartPolicy: always, Containers: []corev1.Container{ctr("c", "sh", "-c", "echo crash; exit 1")}}),
		"missing":    n.createPod("missing", corev1.PodSpec{RestartPolicy: never, Containers: []corev1.Container{ctr("c", "/nonexistent/binary")}}),
		"init": n.createPod("init", corev1.PodSpec{
			InitContainers: []corev1.Container{ctr("first", "sh", "-c", "echo one > /dev/null"), ctr("second", "true")},
			Containers:     []corev1.Container{ctr("c", "sleep", "300")},
		}),
	}
	terminal := func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
	}
	exit := func(p *corev1.Pod) *corev1.ContainerStateTerminated {
		return p.Status.ContainerStatuses[0].State.Terminated
	}

	for name, want := range map[string]corev1.PodPhase{"ok-never": corev1.PodSucceeded, "ok-onfail": corev1.PodSucceeded, "fail-never": corev1.PodFailed} {
		p := n.waitPod(name, 30*time.Second, "a terminal phase", terminal)
		if p.Status.Phase != want {
			t.Errorf("%s: phase %s, want %s", name, p.Status.Phase, want)
		}
		if cond(p, corev1.PodReady).Status != corev1.ConditionFalse || cond(p, corev1.PodReady).Reason != "PodCompleted" {
			t.Errorf("%s: Ready condition %+v, want False/PodCompleted", name, cond(p, corev1.PodReady))
		}
	}
	p := n.waitPod("fail-never", time.Second, "Failed", terminal)
	if e := exit(p); e == nil || e.ExitCode != 3 || e.Reason != "Error" {
		t.Errorf("fail-never: terminated state %+v, want exit code 3", e)
	}
	if l := n.logFile("fail-never", "c"); l != "bye\n" {
		t.Errorf("fail-never log %q", l)
	}
	p = n.waitPod("ok-never", time.Second, "Succeeded", terminal)
	if e := exit(p); e == nil || e.ExitCode != 0 || e.Reason != "Completed" {
		t.Errorf("ok-never: terminated state %+v", e)
	}
	// A finished pod's network is torn down, as its sandbox is stopped.
	waitFor(t, 10*time.Second, "the finished pod's netns and address to be gone", func() bool {
		return !netnsExists(NetnsName(n.prefix, pods["ok-never"].UID)) && len(n.handles(pods["ok-never"].UID)) == 0
	})

	p = n.waitPod("missing", 30*time.Second, "Failed", terminal)
	if e := exit(p); p.Status.Phase != corev1.PodFailed || e == nil || e.ExitCode != 128 || e.Reason != "StartError" || !strings.Contains(e.Message, "/nonexistent/binary") {
		t.Errorf("missing command: phase %s, state %+v; want Failed, StartError 128", p.Status.Phase, e)
	}

	// Always: 1s then 2s of backoff before the second restart.
	p = n.waitPod("crash", 30*time.Second, "restartCount >= 2", func(p *corev1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 2
	})
	cs := p.Status.ContainerStatuses[0]
	if p.Status.Phase != corev1.PodRunning || cs.LastTerminationState.Terminated == nil || cs.LastTerminationState.Terminated.ExitCode != 1 {
		t.Errorf("crash: phase %s, container %+v; want Running with last state exit code 1", p.Status.Phase, cs)
	}
	// restartCount 2 is reported as the third run starts, which may not
	// have written its line yet: give it a moment.
	c := 0
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c = strings.Count(n.logFile("crash", "c"), "crash\n"); c >= 3 || time.Now().After(deadline) {
			break
		}
	}
	if c < 3 {
		t.Errorf("crash log has %d runs, want at least 3", c)
	}

	p = n.waitPod("init", 30*time.Second, "Running", running)
	if len(p.Status.InitContainerStatuses) != 2 {
		t.Fatalf("init container statuses: %+v", p.Status.InitContainerStatuses)
	}
	for _, cs := range p.Status.InitContainerStatuses {
		if cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 0 || !cs.Ready {
			t.Errorf("init container %s: %+v, want terminated with 0", cs.Name, cs)
		}
	}
	if initEnd, main := p.Status.InitContainerStatuses[1].State.Terminated.FinishedAt, p.Status.ContainerStatuses[0].State.Running.StartedAt; main.Before(&initEnd) {
		t.Errorf("the container started (%v) before the init containers ended (%v)", main, initEnd)
	}
}

// CNI ADD fails (no IPPool selects the node): the pod stays Pending with
// NetworkNotReady and no namespace left behind, and goes Running once the
// pools exist.
func TestNetworkNotReadyRetries(t *testing.T) {
	n := newNode(t, false)
	n.startKubelet()
	pod := n.createPod("p", corev1.PodSpec{Containers: []corev1.Container{ctr("c", "sleep", "300")}})
	p := n.waitPod("p", 30*time.Second, "NetworkNotReady", func(p *corev1.Pod) bool { return p.Status.Reason == ReasonNetworkNotReady })
	if p.Status.Phase != corev1.PodPending {
		t.Errorf("phase %s, want Pending", p.Status.Phase)
	}
	if c := cond(p, corev1.PodReady); c.Status != corev1.ConditionFalse || c.Reason != ReasonNetworkNotReady || !strings.Contains(c.Message, "IPPool") {
		t.Errorf("Ready condition %+v: want False, NetworkNotReady and the agent's message", c)
	}
	if w := p.Status.ContainerStatuses[0].State.Waiting; w == nil || w.Reason != "ContainerCreating" {
		t.Errorf("container state %+v, want waiting ContainerCreating", p.Status.ContainerStatuses[0].State)
	}
	if netnsExists(NetnsName(n.prefix, pod.UID)) {
		t.Error("the netns of the failed ADD was left behind")
	}
	n.addPools()
	p = n.waitPod("p", 45*time.Second, "Running once the pools exist", running)
	if p.Status.Reason != "" || !n.v4Pool.Contains(netip.MustParseAddr(p.Status.PodIP)) {
		t.Errorf("reason %q podIP %s after recovery", p.Status.Reason, p.Status.PodIP)
	}
}

// A restarted kubelet adopts running pods (no second CNI ADD, same
// address, containers restarted) and tears down pods deleted while it was
// not running.
func TestKubeletRestart(t *testing.T) {
	n := newNode(t, true)
	n.startKubelet()
	pod := n.createPod("p", corev1.PodSpec{Containers: []corev1.Container{ctr("c", "sleep", "300")}})
	p := n.waitPod("p", 30*time.Second, "Running", running)
	oldPid := pidOf(t, p.Status.ContainerStatuses[0])
	n.stop()
	if !alive(oldPid) {
		t.Fatal("Run killed the pod's process on return; it must leave pods running")
	}
	n.startKubelet()
	q := n.waitPod("p", 30*time.Second, "the container restarted", func(p *corev1.Pod) bool {
		return running(p) && p.Status.ContainerStatuses[0].RestartCount == 1
	})
	newPid := pidOf(t, q.Status.ContainerStatuses[0])
	if newPid == oldPid || alive(oldPid) {
		t.Errorf("old pid %d (alive %v), new pid %d: want the old process killed and a new one", oldPid, alive(oldPid), newPid)
	}
	if !inNetns(t, newPid, NetnsName(n.prefix, pod.UID)) {
		t.Error("the restarted container is not in the pod netns")
	}
	if q.Status.PodIP != p.Status.PodIP {
		t.Errorf("podIP changed across the restart: %s -> %s", p.Status.PodIP, q.Status.PodIP)
	}
	if adds := n.metric(`vecnet_cni_requests_total{code="OK",op="add"}`); adds != "1" {
		t.Errorf("%s successful CNI ADDs, want 1 (adoption must not ADD again)", adds)
	}

	// Deleted while no kubelet runs: the next one cleans up from its
	// record.
	n.stop()
	if err := n.env.Client.CoreV1().Pods(n.ns).Delete(bg, "p", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	n.startKubelet()
	waitFor(t, 20*time.Second, "the vanished pod's netns, process and record to be gone", func() bool {
		_, err := os.Stat(filepath.Join(n.runDir, "pods", string(pod.UID)+".json"))
		return !netnsExists(NetnsName(n.prefix, pod.UID)) && !alive(newPid) && errors.Is(err, os.ErrNotExist)
	})
}

// Schedule binds unscheduled pods round robin (and leaves pinned pods and
// other schedulers' pods alone); ScheduleOnce does one pass in creation
// order.
func TestSchedule(t *testing.T) {
	env := kubeenv.Get(t)
	ns := env.Namespace(t)
	pods := env.Client.CoreV1().Pods(ns)
	mk := func(name string, mod func(*corev1.PodSpec)) {
		spec := corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x"}}}
		if mod != nil {
			mod(&spec)
		}
		if _, err := pods.Create(bg, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 6 {
		mk(fmt.Sprintf("p%d", i), nil)
	}
	mk("pinned", func(s *corev1.PodSpec) { s.NodeName = "elsewhere" })
	mk("other", func(s *corev1.PodSpec) { s.SchedulerName = "other-scheduler" })
	nodes := []string{"n-a", "n-b", "n-c"}
	var logs netlab.SyncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ctx, cancel := context.WithCancel(bg)
	done := make(chan error, 1)
	go func() { done <- Schedule(ctx, env.Client, nodes, log) }()
	count := map[string]int{}
	waitFor(t, 20*time.Second, "6 pods bound", func() bool {
		l, err := pods.List(bg, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		clear(count)
		for _, p := range l.Items {
			count[p.Spec.NodeName]++
		}
		return count["n-a"]+count["n-b"]+count["n-c"] == 6
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Schedule: %v", err)
	}
	if count["n-a"] != 2 || count["n-b"] != 2 || count["n-c"] != 2 || count["elsewhere"] != 1 || count[""] != 1 {
		t.Errorf("pods per node %v: want 2 on each node, pinned on elsewhere, other unbound\n%s", count, logs.String())
	}
	if p, _ := pods.Get(bg, "p0", metav1.GetOptions{}); cond(p, corev1.PodScheduled).Status != corev1.ConditionTrue {
		t.Errorf("bound pod lacks PodScheduled=True: %+v", p.Status.Conditions)
	}

	for i := range 3 {
		mk(fmt.Sprintf("q%d", i), nil)
	}
	bound, err := ScheduleOnce(bg, env.Client, nodes, log)
	if err != nil || bound != 3 {
		t.Fatalf("ScheduleOnce: bound %d, %v; want 3", bound, err)
	}
	for i := range 3 {
		if p, _ := pods.Get(bg, fmt.Sprintf("q%d", i), metav1.GetOptions{}); p.Spec.NodeName != nodes[i] {
			t.Errorf("q%d on %q, want %s (round robin in creation order)", i, p.Spec.NodeName, nodes[i])
		}
	}
}
