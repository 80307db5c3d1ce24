package v3

import (
	"context"
	"os"
	"reflect"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vecnet/vecnet/test/kubeenv"
)

func TestMain(m *testing.M) { os.Exit(kubeenv.Main(m)) }

// TestCRDsOnAPIServer installs deploy/crds in a real kube-apiserver
// (test/kubeenv; skipped when its binaries are missing), applies the Calico
// YAML of testdata unchanged, and checks that the schemas' validation (enums,
// CIDR format, block size ranges, CEL rules) rejects what it should.
func TestCRDsOnAPIServer(t *testing.T) {
	env := kubeenv.Get(t)
	env.InstallCRDs(t, crdDir)
	s := runtime.NewScheme()
	if err := AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	k, err := client.New(env.Config, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	create := func(obj client.Object) error {
		obj.SetResourceVersion("")
		err := k.Create(ctx, obj)
		if err == nil {
			t.Cleanup(func() { _ = k.Delete(context.Background(), obj) })
		}
		return err
	}

	// Users' YAML applies unchanged and reads back the same.
	for file, obj := range map[string]client.Object{
		"ippool.yaml": &IPPool{}, "ippool-v6.yaml": &IPPool{}, "bgppeer.yaml": &BGPPeer{}, "bgppeer-selector.yaml": &BGPPeer{},
		"bgpconfiguration.yaml": &BGPConfiguration{}, "bgpfilter.yaml": &BGPFilter{}, "ipamconfiguration.yaml": &IPAMConfiguration{},
	} {
		loadStrict(t, file, obj)
		want := reflect.ValueOf(obj).Elem().FieldByName("Spec").Interface()
		if err := create(obj); err != nil {
			t.Errorf("%s: %v", file, err)
			continue
		}
		back := reflect.New(reflect.TypeOf(obj).Elem()).Interface().(client.Object)
		if err := k.Get(ctx, client.ObjectKeyFromObject(obj), back); err != nil {
			t.Fatal(err)
		}
		if got := reflect.ValueOf(back).Elem().FieldByName("Spec").Interface(); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: read back %+v, want %+v", file, got, want)
		}
	}

	// Rejected by the schema.
	mode := func(m AssignmentMode) *AssignmentMode { return &m }
	bad := []struct {
		obj  client.Object
		want string
	}{
		{pool("10.1.0.0/16", func(s *IPPoolSpec) { s.BlockSize = 19 }), "spec.blockSize"},
		{pool("10.1.0.0/16", func(s *IPPoolSpec) { s.BlockSize = 64 }), "blockSize must be 20..32"},
		{pool("fd00:1::/48", func(s *IPPoolSpec) { s.BlockSize = 26 }), "blockSize must be 20..32 for an IPv4 pool and 116..128"},
		{pool("fd00:1::/48", func(s *IPPoolSpec) { s.IPIPMode = IPIPModeAlways }), "IPIP is not supported"},
		{pool("10.1.0.0/16", func(s *IPPoolSpec) { s.IPIPMode = IPIPModeAlways; s.VXLANMode = VXLANModeAlways }), "cannot both be enabled"},
		{pool("10.1.0.0/16", func(s *IPPoolSpec) { s.VXLANMode = "Sometimes" }), "spec.vxlanMode"},
		{pool("10.1.0.0/16", func(s *IPPoolSpec) { s.AllowedUses = []IPPoolAllowedUse{"Pods"} }), "spec.allowedUses"},
		{pool("10.1.0.0/16", func(s *IPPoolSpec) { s.AssignmentMode = mode("Auto") }), "spec.assignmentMode"},
		{pool("banana"), "spec.cidr"},
		{&BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "both"}, Spec: BGPPeerSpec{Node: "n1", NodeSelector: "all()"}}, "node and nodeSelector"},
		{&BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "sel"}, Spec: BGPPeerSpec{PeerSelector: "has(rr)", PeerIP: "192.0.2.1"}}, "peerSelector cannot"},
		{&BGPFilter{ObjectMeta: metav1.ObjectMeta{Name: "f"}, Spec: BGPFilterSpec{ExportV4: []BGPFilterRuleV4{{Action: Accept, CIDR: "10.0.0.0/8"}}}}, "matchOperator"},
		{&BGPFilter{ObjectMeta: metav1.ObjectMeta{Name: "g"}, Spec: BGPFilterSpec{ImportV4: []BGPFilterRuleV4{{Action: "Drop"}}}}, "action"},
		{&IPAMConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "other"}}, "must be named default"},
		{&BlockAffinity{ObjectMeta: metav1.ObjectMeta{Name: "a"}, Spec: BlockAffinitySpec{State: "done", Node: "n", CIDR: "10.0.0.0/26"}}, "spec.state"},
	}
	for i, b := range bad {
		if p, ok := b.obj.(*IPPool); ok {
			p.Name = "bad-" + strings.ToLower(string(rune('a'+i)))
		}
		err := create(b.obj)
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%d: %T %+v: %v; want Invalid mentioning %q", i, b.obj, b.obj, err, b.want)
		}
	}

	// cidr and blockSize are immutable.
	var p IPPool
	if err := k.Get(ctx, client.ObjectKey{Name: "default-ipv4-ippool"}, &p); err != nil {
		t.Fatal(err)
	}
	p.Spec.NATOutgoing = false // allowed
	if err := k.Update(ctx, &p); err != nil {
		t.Fatal(err)
	}
	for _, f := range []func(*IPPoolSpec){
		func(s *IPPoolSpec) { s.CIDR = "192.168.0.0/17" },
		func(s *IPPoolSpec) { s.BlockSize = 28 },
		func(s *IPPoolSpec) { s.BlockSize = 0 },
	} {
		q := p.DeepCopy()
		f(&q.Spec)
		if err := k.Update(ctx, q); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "immutable") {
			t.Errorf("changing %+v: %v", q.Spec, err)
		}
	}

	// AS numbers may be written as strings, asdot included.
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "projectcalico.org/v3", "kind": "BGPPeer",
		"metadata": map[string]any{"name": "asdot"},
		"spec":     map[string]any{"peerIP": "192.0.2.9", "asNumber": "1.10"},
	}}
	if err := create(u); err != nil {
		t.Fatal(err)
	}
	var peer BGPPeer
	if err := k.Get(ctx, client.ObjectKey{Name: "asdot"}, &peer); err != nil || peer.Spec.ASNumber != 65546 {
		t.Errorf("asdot peer: %v, %v", peer.Spec.ASNumber, err)
	}
	u = u.DeepCopy()
	u.SetName("badas")
	u.Object["spec"] = map[string]any{"peerIP": "192.0.2.9", "asNumber": "AS64512"}
	if err := create(u); !apierrors.IsInvalid(err) {
		t.Errorf("asNumber AS64512: %v", err)
	}
}
