package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	cniv1 "github.com/vecnet/vecnet/api/cni/v1"
)

// fakeAgent implements the CNI service the way vecnet-agent must (see
// api/cni/v1): it allocates addresses, keeps attachments keyed by
// (network, container id, ifname), answers Del idempotently, compares
// Check's prev_result, releases stale attachments on GC. It records every
// request. It can be stopped and started again on the same socket, keeping
// its state, like an agent pod being restarted.
type fakeAgent struct {
	cniv1.UnimplementedCNIServer
	socket string

	mu     sync.Mutex
	srv    *grpc.Server
	reqs   []proto.Message
	atts   map[attKey]*cniv1.Result
	next   int
	fail   map[string]error // method name -> error to answer with
	delay  time.Duration    // Add waits this long first (honouring ctx)
	status *cniv1.StatusResponse
	// cancelled counts Add calls whose context ended before the answer.
	cancelled int
	// bogus makes Add answer a result the plugin must refuse.
	bogus bool
}

type attKey struct{ network, container, ifname string }

func newFakeAgent(t *testing.T, socket string) *fakeAgent {
	a := &fakeAgent{socket: socket, atts: map[attKey]*cniv1.Result{}, fail: map[string]error{}}
	a.start(t)
	t.Cleanup(a.stop)
	return a
}

func (a *fakeAgent) start(t *testing.T) {
	t.Helper()
	lis, err := net.Listen("unix", a.socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	cniv1.RegisterCNIServer(srv, a)
	a.mu.Lock()
	a.srv = srv
	a.mu.Unlock()
	go srv.Serve(lis)
}

// stop stops serving; the socket file goes away with the listener.
func (a *fakeAgent) stop() {
	a.mu.Lock()
	srv := a.srv
	a.srv = nil
	a.mu.Unlock()
	if srv != nil {
		srv.Stop()
	}
	os.Remove(a.socket)
}

func (a *fakeAgent) record(method string, m proto.Message) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.reqs = append(a.reqs, proto.Clone(m))
	return a.fail[method]
}

func (a *fakeAgent) setFail(method string, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.fail[method] = err
}

// set changes the agent's behaviour under its lock.
func (a *fakeAgent) set(f func(*fakeAgent)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f(a)
}

// requests returns the recorded requests and forgets them.
func (a *fakeAgent) requests() []proto.Message {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.reqs
	a.reqs = nil
	return r
}

func (a *fakeAgent) attachments() map[attKey]*cniv1.Result {
	a.mu.Lock()
	defer a.mu.Unlock()
	m := map[attKey]*cniv1.Result{}
	for k, v := range a.atts {
		m[k] = v
	}
	return m
}

func keyOf(at *cniv1.Attachment) attKey {
	return attKey{at.GetNetwork(), at.GetContainerId(), at.GetIfname()}
}

func (a *fakeAgent) Add(ctx context.Context, req *cniv1.AddRequest) (*cniv1.AddResponse, error) {
	if err := a.record("Add", req); err != nil {
		return nil, err
	}
	a.mu.Lock()
	delay, bogus := a.delay, a.bogus
	a.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			a.mu.Lock()
			a.cancelled++
			a.mu.Unlock()
			return nil, ctx.Err()
		}
	}
	at := req.GetAttachment()
	if at.GetContainerId() == "" || at.GetIfname() == "" || at.GetNetns() == "" {
		return nil, status.Error(codes.InvalidArgument, "attachment: container_id, ifname and netns are required")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	k := keyOf(at)
	if _, ok := a.atts[k]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "%s already has %s", at.GetContainerId(), at.GetIfname())
	}
	a.next++
	mtu := at.GetOptions().GetMtu()
	if mtu == 0 {
		mtu = 1500
	}
	zero := uint32(0)
	res := &cniv1.Result{
		Interfaces: []*cniv1.Interface{{Name: at.GetIfname(), Sandbox: at.GetNetns()}},
		Ips: []*cniv1.IPConfig{
			{Address: fmt.Sprintf("10.244.1.%d/32", a.next+1), Interface: &zero},
			{Address: fmt.Sprintf("fd00:10:244::%x/128", a.next+1), Interface: &zero},
		},
		Routes: []*cniv1.Route{{Dst: "0.0.0.0/0"}, {Dst: "::/0"}, {Dst: "10.96.0.0/12", Gw: "169.254.1.1"}},
		Mtu:    mtu,
	}
	if ips := at.GetRuntimeConfig().GetIps(); len(ips) > 0 {
		res.Ips = []*cniv1.IPConfig{{Address: ips[0], Interface: &zero}}
	}
	if bogus {
		res.Ips[0].Address = "10.244.1.300/32"
	}
	a.atts[k] = res
	return &cniv1.AddResponse{Result: res}, nil
}

func (a *fakeAgent) Del(_ context.Context, req *cniv1.DelRequest) (*cniv1.DelResponse, error) {
	if err := a.record("Del", req); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.atts, keyOf(req.GetAttachment()))
	return &cniv1.DelResponse{}, nil
}

func (a *fakeAgent) Check(_ context.Context, req *cniv1.CheckRequest) (*cniv1.CheckResponse, error) {
	if err := a.record("Check", req); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	k := keyOf(req.GetAttachment())
	have, ok := a.atts[k]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no attachment %s/%s in network %s", k.container, k.ifname, k.network)
	}
	want := req.GetPrevResult().GetIps()
	if len(want) != len(have.GetIps()) {
		return nil, status.Errorf(codes.FailedPrecondition, "ips: prevResult has %d addresses, the agent %d", len(want), len(have.GetIps()))
	}
	for i := range want {
		if want[i].GetAddress() != have.GetIps()[i].GetAddress() {
			return nil, status.Errorf(codes.FailedPrecondition, "ips[%d]: prevResult has %s, the agent %s", i, want[i].GetAddress(), have.GetIps()[i].GetAddress())
		}
	}
	return &cniv1.CheckResponse{}, nil
}

func (a *fakeAgent) Status(_ context.Context, req *cniv1.StatusRequest) (*cniv1.StatusResponse, error) {
	if err := a.record("Status", req); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.status != nil {
		return a.status, nil
	}
	return &cniv1.StatusResponse{Ready: true}, nil
}

func (a *fakeAgent) GC(_ context.Context, req *cniv1.GCRequest) (*cniv1.GCResponse, error) {
	if err := a.record("GC", req); err != nil {
		return nil, err
	}
	valid := map[attKey]bool{}
	for _, v := range req.GetValidAttachments() {
		valid[attKey{req.GetNetwork(), v.GetContainerId(), v.GetIfname()}] = true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var released uint32
	for k := range a.atts {
		if k.network == req.GetNetwork() && !valid[k] {
			delete(a.atts, k)
			released++
		}
	}
	return &cniv1.GCResponse{Released: released}, nil
}
