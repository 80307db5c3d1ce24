package cniplugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	types040 "github.com/containernetworking/cni/pkg/types/040"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	cniv1 "github.com/vecnet/vecnet/api/cni/v1"
)

func TestAgentError(t *testing.T) {
	const sock = "/run/vecnet/cni.sock"
	unreach := &unreachableError{socket: sock, err: fmt.Errorf("dial unix %s: %w", sock, syscall.ENOENT)}
	for _, tc := range []struct {
		cmd  string
		err  error
		code uint
		msg  string
	}{
		{"ADD", unreach, 11, "vecnet-agent is not reachable at /run/vecnet/cni.sock: is the vecnet-agent pod running on this node?"},
		{"DEL", unreach, 11, "vecnet-agent is not reachable"},
		{"GC", unreach, 11, "vecnet-agent is not reachable"},
		{"STATUS", unreach, 50, "vecnet-agent is not reachable at /run/vecnet/cni.sock"},
		{"ADD", status.Error(codes.Unavailable, "syncing with the API server"), 11, "vecnet-agent is not ready: syncing with the API server"},
		{"ADD", status.Error(codes.DeadlineExceeded, "context deadline exceeded"), 11, `vecnet-agent did not answer ADD within 30s (the "timeout" setting)`},
		{"ADD", context.DeadlineExceeded, 11, "did not answer ADD within 30s"},
		{"ADD", status.Error(codes.InvalidArgument, "attachment.pod.name: K8S_POD_NAME missing from CNI_ARGS"), 4, "vecnet-agent rejected the CNI environment: attachment.pod.name: K8S_POD_NAME missing"},
		{"ADD", status.Error(codes.InvalidArgument, "ifname: too long"), 4, "rejected the CNI environment"},
		{"ADD", status.Error(codes.InvalidArgument, "attachment.netns: not a network namespace"), 4, "rejected the CNI environment"},
		{"ADD", status.Error(codes.InvalidArgument, "attachment.options.mtu: 9000 is more than the node's 1500"), 7, "vecnet-agent rejected the configuration: attachment.options.mtu"},
		{"ADD", status.Error(codes.InvalidArgument, "attachment.runtime_config.ips[0]: 10.9.0.1 is in no pool"), 7, "rejected the configuration"},
		{"ADD", status.Error(codes.InvalidArgument, "no field path"), 7, "rejected the configuration"},
		{"ADD", status.Error(codes.ResourceExhausted, "pool default-ipv4 (10.244.1.0/24) has no free address"), 100, "IP pool exhausted: pool default-ipv4 (10.244.1.0/24) has no free address"},
		{"CHECK", status.Error(codes.NotFound, "no attachment c1/eth0"), 3, "vecnet-agent has no record of this attachment: no attachment c1/eth0"},
		{"CHECK", status.Error(codes.FailedPrecondition, "ips: 10.1.0.5/32 expected, 10.1.0.6/32 found"), 102, "check failed: ips: 10.1.0.5/32 expected"},
		{"ADD", status.Error(codes.AlreadyExists, "eth0 exists"), 102, "add failed: eth0 exists"},
		{"ADD", status.Error(codes.Internal, "vecnetd: CreateInterface: boom"), 101, "vecnet-agent failed to add the pod to the network: vecnetd: CreateInterface: boom"},
		{"ADD", status.Error(codes.NotFound, "pod default/web-0 not found"), 101, "vecnet-agent failed to add"},
		{"GC", status.Error(codes.Unimplemented, "unknown method GC"), 101, "vecnet-agent failed to garbage-collect stale attachments: unknown method GC"},
		{"GC", errors.New("weird"), 101, "weird"},
		{"STATUS", status.Error(codes.Internal, "boom"), 50, "vecnet-agent is not available: boom"},
		{"STATUS", status.Error(codes.DeadlineExceeded, "x"), 50, "vecnet-agent did not answer within 30s"},
	} {
		got := agentError(tc.cmd, sock, 30*time.Second, tc.err)
		if got.Code != tc.code || !strings.Contains(got.Msg, tc.msg) {
			t.Errorf("%s %v:\n got  %d %q\n want %d %q", tc.cmd, tc.err, got.Code, got.Msg, tc.code, tc.msg)
		}
	}
	if d := agentError("ADD", sock, time.Second, unreach).Details; !strings.Contains(d, "no such file or directory") {
		t.Errorf("details %q", d)
	}
}

func idx(i uint32) *uint32 { return &i }

func TestToCNIResult(t *testing.T) {
	in := &cniv1.Result{
		Interfaces: []*cniv1.Interface{{Name: "eth0"}, {Name: "tun3", Mac: "02:00:00:00:00:01"}},
		Ips: []*cniv1.IPConfig{
			{Address: "10.244.1.5/32", Gateway: "169.254.1.1", Interface: idx(0)},
			{Address: "fd00:10:244::5/128", Interface: idx(0)},
		},
		Routes: []*cniv1.Route{{Dst: "0.0.0.0/0"}, {Dst: "::/0", Gw: "fe80::1"}, {Dst: "10.96.0.0/12", Gw: "169.254.1.1"}},
		Mtu:    1400,
	}
	res, err := ToCNIResult(in, "eth0", "/var/run/netns/p")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(res)
	// (Result.MarshalJSON goes through a map: keys come out sorted.)
	want := `{"cniVersion":"1.1.0","interfaces":[{"mtu":1400,"name":"eth0","sandbox":"/var/run/netns/p"},{"mac":"02:00:00:00:00:01","name":"tun3"}],` +
		`"ips":[{"address":"10.244.1.5/32","gateway":"169.254.1.1","interface":0},{"address":"fd00:10:244::5/128","interface":0}],` +
		`"routes":[{"dst":"0.0.0.0/0"},{"dst":"::/0","gw":"fe80::1"},{"dst":"10.96.0.0/12","gw":"169.254.1.1"}]}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}

	// Back to the proto (as prevResult): what the agent returned.
	back := FromCNIResult(res, "eth0")
	in.Interfaces[0].Sandbox = "/var/run/netns/p"
	if !proto.Equal(back, in) {
		t.Fatalf("round trip:\n got  %v\n want %v", back, in)
	}

	// 0.4.0 and 1.0.0 results: no interface MTU; 0.4.0 has "version".
	out, err := ResultAsVersion(res, "0.4.0")
	if err != nil {
		t.Fatal(err)
	}
	r040 := out.(*types040.Result)
	if r040.CNIVersion != "0.4.0" || r040.IPs[0].Version != "4" || r040.IPs[1].Version != "6" || len(r040.Routes) != 3 {
		t.Fatalf("0.4.0: %+v", r040)
	}
	out, err = ResultAsVersion(res, "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if r := out.(*types100.Result); r.CNIVersion != "1.0.0" || r.Interfaces[0].Mtu != 0 || res.Interfaces[0].Mtu != 1400 {
		t.Fatalf("1.0.0: %+v (original mtu %d)", r, res.Interfaces[0].Mtu)
	}

	for _, tc := range []struct {
		mut  func(*cniv1.Result)
		want string
	}{
		{func(r *cniv1.Result) { r.Interfaces = nil }, `no interface named "eth0"`},
		{func(r *cniv1.Result) { r.Interfaces[1].Name = "" }, "interfaces[1].name is empty"},
		{func(r *cniv1.Result) { r.Interfaces[1].Mac = "x" }, "interfaces[1].mac"},
		{func(r *cniv1.Result) { r.Ips = nil }, "no IP address"},
		{func(r *cniv1.Result) { r.Ips[1].Address = "fd00::5" }, "ips[1].address"},
		{func(r *cniv1.Result) { r.Ips[0].Gateway = "gw" }, "ips[0].gateway"},
		{func(r *cniv1.Result) { r.Ips[0].Interface = idx(2) }, "ips[0].interface: 2 is not an index"},
		{func(r *cniv1.Result) { r.Routes[0].Dst = "default" }, "routes[0].dst"},
		{func(r *cniv1.Result) { r.Routes[1].Gw = "x" }, "routes[1].gw"},
	} {
		r := proto.Clone(in).(*cniv1.Result)
		tc.mut(r)
		if _, err := ToCNIResult(r, "eth0", "/n"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want %q, got %v", tc.want, err)
		}
	}
	if _, err := ToCNIResult(nil, "eth0", "/n"); err == nil {
		t.Error("nil result accepted")
	}
	if FromCNIResult(nil, "eth0") != nil {
		t.Error("FromCNIResult(nil)")
	}
	var _ types.Result = res
}
