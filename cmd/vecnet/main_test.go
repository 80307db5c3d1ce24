package main

// End-to-end tests: the plugin binary, built into a temporary directory as
// "vecnet", driven exactly as containerd drives CNI plugins, through
// libcni's CNIConfig (AddNetworkList, CheckNetworkList, DelNetworkList,
// GCNetworkList, GetStatusNetworkList) with a result cache, containerd's
// CNI_ARGS and real network namespaces, against a fake vecnet-agent on a
// unix socket (agent_test.go).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	types040 "github.com/containernetworking/cni/pkg/types/040"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	cniv1 "github.com/vecnet/vecnet/api/cni/v1"
	"github.com/vecnet/vecnet/test/netlab"
)

var build struct {
	once sync.Once
	dir  string
	err  error
}

// pluginDir builds the plugin once per test binary (not in TestMain, so
// that `go test -list` stays cheap) and returns the directory holding it.
func pluginDir(t *testing.T) string {
	t.Helper()
	build.once.Do(func() {
		goBin, err := exec.LookPath("go")
		if err != nil {
			goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		build.dir, build.err = os.MkdirTemp("", "vecnet-cni-bin-")
		if build.err != nil {
			return
		}
		out, err := exec.Command(goBin, "build", "-o", filepath.Join(build.dir, "vecnet"), ".").CombinedOutput()
		if err != nil {
			build.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// syncBuffer collects the plugin's stderr.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type harness struct {
	t      *testing.T
	dir    string
	agent  *fakeAgent
	cni    *libcni.CNIConfig
	stderr *syncBuffer
	ctx    context.Context
}

func newHarness(t *testing.T) *harness {
	bin := pluginDir(t)
	h := &harness{t: t, dir: t.TempDir(), stderr: &syncBuffer{}, ctx: context.Background()}
	h.agent = newFakeAgent(t, filepath.Join(h.dir, "cni.sock"))
	h.cni = libcni.NewCNIConfigWithCacheDir([]string{bin}, filepath.Join(h.dir, "cache"), &invoke.DefaultExec{
		RawExec:       &invoke.RawExec{Stderr: h.stderr},
		PluginDecoder: version.PluginDecoder{},
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("plugin stderr:\n%s", h.stderr)
		}
	})
	return h
}

// list is a network configuration list named "vecnet" with the vecnet
// plugin talking to the fake agent; extra is more JSON members for it.
func (h *harness) list(cniVersion, extra string) *libcni.NetworkConfigList {
	return h.listWithSocket(cniVersion, h.agent.socket, extra)
}

func (h *harness) listWithSocket(cniVersion, socket, extra string) *libcni.NetworkConfigList {
	h.t.Helper()
	if extra != "" {
		extra = "," + extra
	}
	s := fmt.Sprintf(`{"cniVersion": %q, "name": "vecnet", "plugins": [
		{"type": "vecnet", "agentSocket": %q, "timeout": "10s", "logLevel": "info"%s}]}`, cniVersion, socket, extra)
	l, err := libcni.ConfListFromBytes([]byte(s))
	if err != nil {
		h.t.Fatal(err)
	}
	return l
}

// pod is one pod sandbox: its network namespace and runtime parameters as
// containerd passes them.
type pod struct {
	rt *libcni.RuntimeConf
	ns string // netns name
}

// newPod creates a network namespace (root) for a pod sandbox.
func (h *harness) newPod(name string) *pod {
	h.t.Helper()
	requireRoot(h.t)
	ns := netlab.Netns(h.t, "vcni")
	return h.podAt(name, "/var/run/netns/"+ns, ns)
}

// podAt is a pod whose netns path is given (it may not exist).
func (h *harness) podAt(name, nsPath, ns string) *pod {
	id := "sandbox-" + name + "-" + netlab.Unique()
	return &pod{ns: ns, rt: &libcni.RuntimeConf{
		ContainerID: id,
		NetNS:       nsPath,
		IfName:      "eth0",
		// containerd's CNI_ARGS, in its order.
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", "default"},
			{"K8S_POD_NAME", name},
			{"K8S_POD_INFRA_CONTAINER_ID", id},
			{"K8S_POD_UID", "uid-" + name},
		},
	}}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip (iproute2)")
	}
}

// cniError returns the CNI error inside err (nil if there is none).
func cniError(err error) *types.Error {
	var e *types.Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// wantCode fails unless err carries CNI error code and msg contains want.
func wantCode(t *testing.T, err error, code uint, want string) {
	t.Helper()
	e := cniError(err)
	if e == nil {
		t.Fatalf("want CNI error %d %q, got %v", code, want, err)
	}
	if e.Code != code || !strings.Contains(e.Msg, want) {
		t.Fatalf("want CNI error %d containing %q, got %d %q (details %q)", code, want, e.Code, e.Msg, e.Details)
	}
}

func reqsOf[T proto.Message](reqs []proto.Message) []T {
	var out []T
	for _, r := range reqs {
		if m, ok := r.(T); ok {
			out = append(out, m)
		}
	}
	return out
}

func TestLifecycle(t *testing.T) {
	h := newHarness(t)
	p := h.newPod("web-0")
	list := h.list("1.1.0", `"mtu": 1400, "dns": {"nameservers": ["10.96.0.10"], "search": ["default.svc.cluster.local"]}`)

	// ADD.
	r, err := h.cni.AddNetworkList(h.ctx, list, p.rt)
	if err != nil {
		t.Fatal(err)
	}
	res, ok := r.(*types100.Result)
	if !ok {
		t.Fatalf("result is %T", r)
	}
	nsPath := p.rt.NetNS
	if res.CNIVersion != "1.1.0" ||
		!reflect.DeepEqual(res.Interfaces, []*types100.Interface{{Name: "eth0", Sandbox: nsPath, Mtu: 1400}}) {
		t.Fatalf("result: %s", mustJSON(res))
	}
	var ips, routes []string
	for _, ip := range res.IPs {
		if ip.Interface == nil || *ip.Interface != 0 || ip.Gateway != nil {
			t.Errorf("ip %+v", ip)
		}
		ips = append(ips, ip.Address.String())
	}
	for _, rt := range res.Routes {
		routes = append(routes, fmt.Sprintf("%s via %v", rt.Dst.String(), rt.GW))
	}
	if !slices.Equal(ips, []string{"10.244.1.2/32", "fd00:10:244::2/128"}) ||
		!slices.Equal(routes, []string{"0.0.0.0/0 via <nil>", "::/0 via <nil>", "10.96.0.0/12 via 169.254.1.1"}) {
		t.Fatalf("ips %v routes %v", ips, routes)
	}
	if !reflect.DeepEqual(res.DNS, types.DNS{Nameservers: []string{"10.96.0.10"}, Search: []string{"default.svc.cluster.local"}}) {
		t.Fatalf("dns %+v", res.DNS)
	}

	adds := reqsOf[*cniv1.AddRequest](h.agent.requests())
	if len(adds) != 1 {
		t.Fatalf("agent saw %d Adds", len(adds))
	}
	at := adds[0].GetAttachment()
	wantAt := &cniv1.Attachment{
		ContainerId: p.rt.ContainerID, Netns: nsPath, Ifname: "eth0", Network: "vecnet", CniVersion: "1.1.0",
		Config: at.GetConfig(),
		Pod:    &cniv1.KubernetesPod{Namespace: "default", Name: "web-0", Uid: "uid-web-0", InfraContainerId: p.rt.ContainerID},
		CniArgs: map[string]string{"IgnoreUnknown": "1", "K8S_POD_NAMESPACE": "default", "K8S_POD_NAME": "web-0",
			"K8S_POD_INFRA_CONTAINER_ID": p.rt.ContainerID, "K8S_POD_UID": "uid-web-0"},
		RuntimeConfig: &cniv1.RuntimeConfig{},
		Options:       &cniv1.PluginOptions{Mtu: 1400},
	}
	if !proto.Equal(at, wantAt) {
		t.Fatalf("Add attachment:\n got  %v\n want %v", at, wantAt)
	}
	if !bytes.Contains(at.GetConfig(), []byte(`"agentSocket":"`+h.agent.socket+`"`)) {
		t.Fatalf("config not passed as is: %s", at.GetConfig())
	}

	// CHECK: the agent gets the recorded result.
	if err := h.cni.CheckNetworkList(h.ctx, list, p.rt); err != nil {
		t.Fatal(err)
	}
	checks := reqsOf[*cniv1.CheckRequest](h.agent.requests())
	if len(checks) != 1 || len(checks[0].GetPrevResult().GetIps()) != 2 || checks[0].GetPrevResult().GetMtu() != 1400 ||
		checks[0].GetPrevResult().GetIps()[1].GetAddress() != "fd00:10:244::2/128" {
		t.Fatalf("Check requests: %v", checks)
	}

	// The pod is listed in STATUS-ready agent; GC keeping it releases nothing.
	if err := h.cni.GetStatusNetworkList(h.ctx, list); err != nil {
		t.Fatal(err)
	}

	// DEL, then DEL again (no prevResult the second time: libcni dropped
	// it), then once more with the agent gone: all succeed.
	if err := h.cni.DelNetworkList(h.ctx, list, p.rt); err != nil {
		t.Fatal(err)
	}
	dels := reqsOf[*cniv1.DelRequest](h.agent.requests())
	if len(dels) != 1 || dels[0].GetAttachment().GetContainerId() != p.rt.ContainerID ||
		len(dels[0].GetPrevResult().GetIps()) != 2 || dels[0].GetAttachment().GetPod().GetName() != "web-0" {
		t.Fatalf("Del requests: %v", dels)
	}
	if len(h.agent.attachments()) != 0 {
		t.Fatalf("attachments left: %v", h.agent.attachments())
	}
	if err := h.cni.DelNetworkList(h.ctx, list, p.rt); err != nil {
		t.Fatalf("second DEL: %v", err)
	}
	dels = reqsOf[*cniv1.DelRequest](h.agent.requests())
	if len(dels) != 1 || dels[0].GetPrevResult() != nil {
		t.Fatalf("second Del requests: %v", dels)
	}
	h.agent.stop()
	if err := h.cni.DelNetworkList(h.ctx, list, p.rt); err != nil {
		t.Fatalf("DEL with the agent down and nothing recorded: %v", err)
	}
	if !strings.Contains(h.stderr.String(), "nothing to clean up") {
		t.Errorf("no warning logged:\n%s", h.stderr)
	}
}

// A CHECK fails when the agent lost the attachment (3) or has other
// addresses (102).
func TestCheckFailures(t *testing.T) {
	h := newHarness(t)
	p := h.newPod("web-1")
	list := h.list("1.1.0", "")
	if _, err := h.cni.AddNetworkList(h.ctx, list, p.rt); err != nil {
		t.Fatal(err)
	}
	h.agent.mu.Lock()
	for k, r := range h.agent.atts {
		r = proto.Clone(r).(*cniv1.Result)
		r.Ips[0].Address = "10.244.1.99/32"
		h.agent.atts[k] = r
	}
	h.agent.mu.Unlock()
	wantCode(t, h.cni.CheckNetworkList(h.ctx, list, p.rt), 102, "check failed: ips[0]: prevResult has 10.244.1.2/32, the agent 10.244.1.99/32")

	h.agent.mu.Lock()
	clear(h.agent.atts)
	h.agent.mu.Unlock()
	wantCode(t, h.cni.CheckNetworkList(h.ctx, list, p.rt), 3, "vecnet-agent has no record of this attachment")

	h.agent.stop()
	wantCode(t, h.cni.CheckNetworkList(h.ctx, list, p.rt), 11, "vecnet-agent is not reachable")
}

// ADD and STATUS with no agent: the socket is missing, or nobody listens.
func TestAgentDown(t *testing.T) {
	h := newHarness(t)
	missing := filepath.Join(h.dir, "missing.sock")
	refused := filepath.Join(h.dir, "refused.sock")
	lis, err := net.Listen("unix", refused)
	if err != nil {
		t.Fatal(err)
	}
	lis.(*net.UnixListener).SetUnlinkOnClose(false)
	lis.Close()

	for _, sock := range []string{missing, refused} {
		list := h.listWithSocket("1.1.0", sock, "")
		want := "vecnet-agent is not reachable at " + sock + ": is the vecnet-agent pod running on this node?"
		err := h.cni.GetStatusNetworkList(h.ctx, list)
		wantCode(t, err, 50, want)
		detail := map[string]string{missing: "no such file or directory", refused: "connection refused"}[sock]
		if d := cniError(err).Details; !strings.Contains(d, detail) {
			t.Errorf("details %q, want %q", d, detail)
		}
		wantCode(t, h.cni.GCNetworkList(h.ctx, list, &libcni.GCArgs{}), 11, want)
		if os.Geteuid() == 0 {
			p := h.newPod("down")
			_, err := h.cni.AddNetworkList(h.ctx, list, p.rt)
			wantCode(t, err, 11, want)
		}
	}
	if n := len(h.agent.requests()); n != 0 {
		t.Fatalf("the running agent got %d requests", n)
	}
}

// DEL with the agent down: code 11 while the runtime has the ADD's result
// (and even once the netns is gone), success once the agent is back; for a
// 0.3.1 configuration (no prevResult on DEL, so nothing to go by) always 11.
func TestDelAgentDown(t *testing.T) {
	h := newHarness(t)
	for _, v := range []string{"1.1.0", "0.4.0", "0.3.1"} {
		t.Run(v, func(t *testing.T) {
			p := h.newPod("del-" + strings.ReplaceAll(v, ".", ""))
			list := h.list(v, "")
			if _, err := h.cni.AddNetworkList(h.ctx, list, p.rt); err != nil {
				t.Fatal(err)
			}
			h.agent.stop()
			wantCode(t, h.cni.DelNetworkList(h.ctx, list, p.rt), 11, "vecnet-agent is not reachable at "+h.agent.socket)
			netlab.MustRun(t, "ip", "netns", "del", p.ns)
			wantCode(t, h.cni.DelNetworkList(h.ctx, list, p.rt), 11, "vecnet-agent is not reachable")

			// Not ready (Unavailable) is the same as not there.
			h.agent.start(t)
			h.agent.setFail("Del", status.Error(codes.Unavailable, "starting"))
			wantCode(t, h.cni.DelNetworkList(h.ctx, list, p.rt), 11, "vecnet-agent is not ready: starting")

			h.agent.setFail("Del", nil)
			h.agent.requests()
			if err := h.cni.DelNetworkList(h.ctx, list, p.rt); err != nil {
				t.Fatal(err)
			}
			dels := reqsOf[*cniv1.DelRequest](h.agent.requests())
			if len(dels) != 1 || dels[0].GetAttachment().GetNetns() != p.rt.NetNS {
				t.Fatalf("Del: %v", dels)
			}
			if v != "0.3.1" && len(dels[0].GetPrevResult().GetIps()) != 2 {
				t.Fatalf("Del without prevResult: %v", dels[0])
			}
			if len(h.agent.attachments()) != 0 {
				t.Fatal("attachment left")
			}
			// Gone for good; a DEL of an unknown attachment is fine, with
			// the agent there (NotFound included) or, for >= 0.4.0, not.
			h.agent.setFail("Del", status.Error(codes.NotFound, "no such attachment"))
			if err := h.cni.DelNetworkList(h.ctx, list, p.rt); err != nil {
				t.Fatal(err)
			}
			h.agent.setFail("Del", nil)
			h.agent.stop()
			err := h.cni.DelNetworkList(h.ctx, list, p.rt)
			if v == "0.3.1" {
				wantCode(t, err, 11, "not reachable")
			} else if err != nil {
				t.Fatal(err)
			}
			h.agent.start(t)
		})
	}
}

// Invalid configurations and environments fail before reaching the agent,
// with the key or variable named.
func TestBadConfig(t *testing.T) {
	h := newHarness(t)
	missingNS := h.podAt("bad", "/var/run/netns/vecnet-no-such-ns", "")
	for _, tc := range []struct {
		version, extra string
		code           uint
		msg            string
	}{
		{"1.1.0", `"agentSocket": "run/vecnet/cni.sock"`, 7, `invalid config: "agentSocket" must be an absolute path, got "run/vecnet/cni.sock"`},
		{"1.1.0", `"mtu": 70000`, 7, `invalid config: "mtu" must be from 68 to 65535`},
		{"1.1.0", `"timeout": "soon"`, 7, `invalid config: "timeout" must be a duration such as "30s"`},
		{"1.1.0", `"logLevel": 3`, 7, `invalid config: "logLevel" must be a string, got number`},
		{"1.1.0", `"dns": {"nameservers": ["kube-dns"]}`, 7, `invalid config: "dns.nameservers[0]" must be an IP address, got "kube-dns"`},
		{"1.1.0", `"ipam": {"type": "host-local", "subnet": "10.1.0.0/16"}`, 2, `"ipam" is not supported`},
		{"0.2.0", ``, 1, "incompatible CNI versions"},
	} {
		list := h.list(tc.version, tc.extra)
		// agentSocket is set twice in the bad-socket case; the later wins.
		_, err := h.cni.AddNetworkList(h.ctx, list, missingNS.rt)
		wantCode(t, err, tc.code, tc.msg)
	}

	list := h.list("1.1.0", "")
	_, err := h.cni.AddNetworkList(h.ctx, list, missingNS.rt)
	wantCode(t, err, 4, "CNI_NETNS /var/run/netns/vecnet-no-such-ns does not exist")

	host := h.podAt("host", "/proc/self/ns/net", "")
	_, err = h.cni.AddNetworkList(h.ctx, list, host.rt)
	wantCode(t, err, 4, "CNI_NETNS /proc/self/ns/net is the plugin's own (the host's) network namespace")

	bad := h.podAt("bad", "/var/run/netns/vecnet-no-such-ns", "")
	bad.rt.Args = append(bad.rt.Args, [2]string{"", "x"})
	_, err = h.cni.AddNetworkList(h.ctx, list, bad.rt)
	wantCode(t, err, 4, `invalid CNI_ARGS: "=x" is not KEY=VALUE`)

	if n := len(h.agent.requests()); n != 0 {
		t.Fatalf("the agent got %d requests", n)
	}
}

// The agent's errors, as a person sees them.
func TestAgentErrors(t *testing.T) {
	h := newHarness(t)
	p := h.newPod("err")
	list := h.list("1.1.0", "")
	for _, tc := range []struct {
		err  error
		code uint
		msg  string
	}{
		{status.Error(codes.ResourceExhausted, "pool default-ipv4 10.244.1.0/24 has no free address"), 100, "IP pool exhausted: pool default-ipv4 10.244.1.0/24 has no free address"},
		{status.Error(codes.InvalidArgument, "attachment.pod.name: K8S_POD_NAME missing from CNI_ARGS"), 4, "vecnet-agent rejected the CNI environment: attachment.pod.name: K8S_POD_NAME missing from CNI_ARGS"},
		{status.Error(codes.InvalidArgument, "attachment.options.mtu: 9000 is above the node's MTU 1500"), 7, "vecnet-agent rejected the configuration: attachment.options.mtu"},
		{status.Error(codes.Unavailable, "waiting for vecnetd at /run/vecnet/vecnetd.sock"), 11, "vecnet-agent is not ready: waiting for vecnetd"},
		{status.Error(codes.Internal, "vecnetd: CreateInterface: device busy"), 101, "vecnet-agent failed to add the pod to the network: vecnetd: CreateInterface: device busy"},
	} {
		h.agent.setFail("Add", tc.err)
		_, err := h.cni.AddNetworkList(h.ctx, list, p.rt)
		wantCode(t, err, tc.code, tc.msg)
	}
	h.agent.setFail("Add", nil)

	// A result the plugin cannot use.
	h.agent.set(func(a *fakeAgent) { a.bogus = true })
	_, err := h.cni.AddNetworkList(h.ctx, list, p.rt)
	wantCode(t, err, 101, `vecnet-agent returned an unusable result: ips[0].address: "10.244.1.300/32"`)
	h.agent.set(func(a *fakeAgent) { a.bogus = false })
	if err := h.cni.DelNetworkList(h.ctx, list, p.rt); err != nil {
		t.Fatal(err)
	}

	// Timeout: the plugin gives up, the agent sees its context end.
	h.agent.set(func(a *fakeAgent) { a.delay = 5 * time.Second })
	_, err = h.cni.AddNetworkList(h.ctx, h.list("1.1.0", `"timeout": "300ms"`), p.rt)
	wantCode(t, err, 11, "vecnet-agent did not answer ADD within 300ms")
	time.Sleep(100 * time.Millisecond)
	h.agent.mu.Lock()
	cancelled := h.agent.cancelled
	h.agent.mu.Unlock()
	if cancelled != 1 {
		t.Errorf("agent saw %d cancelled Adds", cancelled)
	}
}

func TestStatus(t *testing.T) {
	h := newHarness(t)
	list := h.list("1.1.0", "")
	if err := h.cni.GetStatusNetworkList(h.ctx, list); err != nil {
		t.Fatal(err)
	}
	st := reqsOf[*cniv1.StatusRequest](h.agent.requests())
	if len(st) != 1 || st[0].GetNetwork() != "vecnet" || !bytes.Contains(st[0].GetConfig(), []byte(h.agent.socket)) {
		t.Fatalf("Status requests %v", st)
	}
	h.agent.set(func(a *fakeAgent) { a.status = &cniv1.StatusResponse{Message: "IP pool 10.244.1.0/24 exhausted"} })
	wantCode(t, h.cni.GetStatusNetworkList(h.ctx, list), 50, "vecnet-agent is not ready: IP pool 10.244.1.0/24 exhausted")
	h.agent.set(func(a *fakeAgent) {
		a.status = &cniv1.StatusResponse{Message: "vecnetd is not running", ExistingPodsAffected: true}
	})
	wantCode(t, h.cni.GetStatusNetworkList(h.ctx, list), 51, "vecnet-agent is not ready: vecnetd is not running")
	h.agent.set(func(a *fakeAgent) { a.status = nil })
	h.agent.setFail("Status", status.Error(codes.Unimplemented, "unknown method Status"))
	wantCode(t, h.cni.GetStatusNetworkList(h.ctx, list), 50, "vecnet-agent is not available: unknown method Status")
	h.agent.setFail("Status", nil)
	h.agent.stop()
	wantCode(t, h.cni.GetStatusNetworkList(h.ctx, list), 50, "vecnet-agent is not reachable")
	// Before 1.1.0 there is no STATUS: libcni does not call the plugin.
	if err := h.cni.GetStatusNetworkList(h.ctx, h.list("1.0.0", "")); err != nil {
		t.Fatal(err)
	}
}

// GC as containerd would run it: libcni DELs the cached attachments that
// are not valid, then the plugin passes the valid ones to the agent, which
// releases the rest (here, one the runtime never recorded).
func TestGC(t *testing.T) {
	h := newHarness(t)
	list := h.list("1.1.0", "")
	keep, stale := h.newPod("keep"), h.newPod("stale")
	for _, p := range []*pod{keep, stale} {
		if _, err := h.cni.AddNetworkList(h.ctx, list, p.rt); err != nil {
			t.Fatal(err)
		}
	}
	// An attachment the runtime does not know about (its ADD's answer was lost).
	lost := h.podAt("lost", stale.rt.NetNS, "")
	lost.rt.IfName = "net1"
	h.agent.mu.Lock()
	h.agent.atts[attKey{"vecnet", lost.rt.ContainerID, "net1"}] = &cniv1.Result{}
	h.agent.mu.Unlock()
	h.agent.requests()

	err := h.cni.GCNetworkList(h.ctx, list, &libcni.GCArgs{ValidAttachments: []types.GCAttachment{{ContainerID: keep.rt.ContainerID, IfName: "eth0"}}})
	if err != nil {
		t.Fatal(err)
	}
	reqs := h.agent.requests()
	dels, gcs := reqsOf[*cniv1.DelRequest](reqs), reqsOf[*cniv1.GCRequest](reqs)
	if len(dels) != 1 || dels[0].GetAttachment().GetContainerId() != stale.rt.ContainerID {
		t.Fatalf("Del requests %v", dels)
	}
	wantGC := &cniv1.GCRequest{Network: "vecnet", Config: gcs[0].GetConfig(),
		ValidAttachments: []*cniv1.AttachmentKey{{ContainerId: keep.rt.ContainerID, Ifname: "eth0"}}}
	if len(gcs) != 1 || !proto.Equal(gcs[0], wantGC) {
		t.Fatalf("GC requests %v", gcs)
	}
	if got := h.agent.attachments(); len(got) != 1 || got[attKey{"vecnet", keep.rt.ContainerID, "eth0"}] == nil {
		t.Fatalf("attachments after GC: %v", got)
	}
	if !strings.Contains(h.stderr.String(), "released=1") {
		t.Errorf("GC not logged:\n%s", h.stderr)
	}

	// No valid attachments at all: everything goes.
	if err := h.cni.GCNetworkList(h.ctx, list, &libcni.GCArgs{}); err != nil {
		t.Fatal(err)
	}
	if got := h.agent.attachments(); len(got) != 0 {
		t.Fatalf("attachments after the second GC: %v", got)
	}
	// The agent's failure is reported.
	h.agent.setFail("GC", status.Error(codes.Internal, "vecnetd: DeleteInterface tun7: no such interface"))
	wantCode(t, h.cni.GCNetworkList(h.ctx, list, &libcni.GCArgs{}), 101, "vecnet-agent failed to garbage-collect stale attachments: vecnetd")
}

// GC without a valid-attachments list (libcni omits it for nil GCArgs)
// must not release anything.
func TestGCWithoutList(t *testing.T) {
	h := newHarness(t)
	if err := h.cni.GCNetworkList(h.ctx, h.list("1.1.0", ""), nil); err != nil {
		t.Fatal(err)
	}
	if n := len(h.agent.requests()); n != 0 {
		t.Fatalf("agent got %d requests", n)
	}
}

// A 0.4.0 configuration gets a 0.4.0 result; CHECK and DEL work with it.
func TestOldVersion(t *testing.T) {
	h := newHarness(t)
	p := h.newPod("old")
	list := h.list("0.4.0", `"mtu": 1400`)
	r, err := h.cni.AddNetworkList(h.ctx, list, p.rt)
	if err != nil {
		t.Fatal(err)
	}
	res, ok := r.(*types040.Result)
	if !ok {
		t.Fatalf("result is %T: %s", r, mustJSON(r))
	}
	if res.CNIVersion != "0.4.0" || len(res.IPs) != 2 || res.IPs[0].Version != "4" || res.IPs[1].Version != "6" ||
		res.IPs[0].Address.String() != "10.244.1.2/32" || len(res.Interfaces) != 1 || res.Interfaces[0].Sandbox != p.rt.NetNS ||
		len(res.Routes) != 3 {
		t.Fatalf("0.4.0 result: %s", mustJSON(res))
	}
	if err := h.cni.CheckNetworkList(h.ctx, list, p.rt); err != nil {
		t.Fatal(err)
	}
	if err := h.cni.DelNetworkList(h.ctx, list, p.rt); err != nil {
		t.Fatal(err)
	}
	// 1.0.0: a 1.0.0 result, without the 1.1 interface MTU.
	r, err = h.cni.AddNetworkList(h.ctx, h.list("1.0.0", `"mtu": 1400`), p.rt)
	if err != nil {
		t.Fatal(err)
	}
	if res, ok := r.(*types100.Result); !ok || res.CNIVersion != "1.0.0" || res.Interfaces[0].Mtu != 0 {
		t.Fatalf("1.0.0 result: %s", mustJSON(r))
	}
}

// Requested addresses (the "ips" capability) reach the agent.
func TestCapabilityIPs(t *testing.T) {
	h := newHarness(t)
	p := h.newPod("static")
	list := h.list("1.1.0", `"capabilities": {"ips": true, "io.kubernetes.cri.pod-annotations": true}`)
	p.rt.CapabilityArgs = map[string]interface{}{
		"ips":                               []string{"10.244.7.7/32"},
		"io.kubernetes.cri.pod-annotations": map[string]string{"vecnet.io/pool": "blue"},
		"portMappings":                      []map[string]interface{}{{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}},
	}
	r, err := h.cni.AddNetworkList(h.ctx, list, p.rt)
	if err != nil {
		t.Fatal(err)
	}
	if res := r.(*types100.Result); res.IPs[0].Address.String() != "10.244.7.7/32" {
		t.Fatalf("result %s", mustJSON(r))
	}
	adds := reqsOf[*cniv1.AddRequest](h.agent.requests())
	want := &cniv1.RuntimeConfig{Ips: []string{"10.244.7.7/32"}, PodAnnotations: map[string]string{"vecnet.io/pool": "blue"}}
	if len(adds) != 1 || !proto.Equal(adds[0].GetAttachment().GetRuntimeConfig(), want) {
		t.Fatalf("Add: %v", adds)
	}
}

// VERSION, and the deploy/ configuration list validated against the built
// plugin as a runtime would (libcni.ValidateNetworkList runs VERSION).
func TestVersionAndDeployConflist(t *testing.T) {
	h := newHarness(t)
	vi, err := h.cni.GetVersionInfo(h.ctx, "vecnet")
	if err != nil {
		t.Fatal(err)
	}
	if got := vi.SupportedVersions(); !slices.Equal(got, []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}) {
		t.Fatalf("supported versions %v", got)
	}
	list, err := libcni.ConfListFromFile("../../deploy/cni/10-vecnet.conflist")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.cni.ValidateNetworkList(h.ctx, list); err != nil {
		t.Fatal(err)
	}
	// Its STATUS reaches the default socket, which is not there in a test
	// (or is a real agent's).
	if _, err := os.Stat("/run/vecnet/cni.sock"); err != nil {
		wantCode(t, h.cni.GetStatusNetworkList(h.ctx, list), 50, "vecnet-agent is not reachable at /run/vecnet/cni.sock: is the vecnet-agent pod running on this node?")
	}
}

// logFile gets the log; unknown keys are warned about.
func TestLogFile(t *testing.T) {
	h := newHarness(t)
	logFile := filepath.Join(h.dir, "log", "cni.log")
	list := h.list("1.1.0", fmt.Sprintf(`"logFile": %q, "agentsocket": "/typo"`, logFile))
	if err := h.cni.GCNetworkList(h.ctx, list, &libcni.GCArgs{}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ignoring unknown configuration keys", "keys=agentsocket", "garbage collected", "cmd=GC"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("log lacks %q:\n%s", want, b)
		}
	}
	if fi, err := os.Stat(logFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("log file mode: %v %v", fi.Mode(), err)
	}
}

func mustJSON(v any) string {
	if r, ok := v.(types.Result); ok {
		var b bytes.Buffer
		_ = r.PrintTo(&b)
		return b.String()
	}
	return fmt.Sprint(v)
}
