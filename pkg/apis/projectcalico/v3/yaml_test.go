package v3

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// loadStrict reads a testdata file into obj, rejecting unknown fields
// (sigs.k8s.io/yaml) and, like the API server, fields whose case differs
// (encoding/json, under sigs.k8s.io/yaml, matches names case-insensitively).
func loadStrict(t *testing.T, file string, obj any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, obj); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if err := apiserverStrict(data, reflect.New(reflect.TypeOf(obj).Elem()).Interface()); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// apiserverStrict decodes as the API server does: case-sensitive, unknown
// and duplicate fields are errors.
func apiserverStrict(data []byte, obj any) error {
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		return err
	}
	strict, err := kjson.UnmarshalStrict(j, obj, kjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// validator is what every type with a Validate method is.
type validator interface{ Validate() error }

func TestCalicoYAMLLoadsStrictly(t *testing.T) {
	var pool IPPool
	loadStrict(t, "ippool.yaml", &pool)
	if pool.APIVersion != "projectcalico.org/v3" || pool.Kind != "IPPool" || pool.Name != "default-ipv4-ippool" {
		t.Errorf("meta: %+v", pool.TypeMeta)
	}
	s := pool.Spec
	if s.CIDR != "192.168.0.0/16" || s.BlockSize != 26 || s.IPIPMode != IPIPModeCrossSubnet || s.VXLANMode != VXLANModeNever ||
		!s.NATOutgoing || s.Disabled || s.NodeSelector != "all()" || len(s.AllowedUses) != 2 || s.AllowedUses[1] != IPPoolAllowedUseTunnel {
		t.Errorf("ippool spec: %+v", s)
	}

	var pool6 IPPool
	loadStrict(t, "ippool-v6.yaml", &pool6)
	if s := pool6.Spec; s.CIDR != "fd00:10:244::/56" || s.BlockSize != 122 || s.VXLANMode != VXLANModeAlways || !s.DisableBGPExport ||
		s.AssignmentMode == nil || *s.AssignmentMode != Automatic || !strings.Contains(s.NodeSelector, "kubernetes.io/hostname") {
		t.Errorf("ippool-v6 spec: %+v", s)
	}

	var peer BGPPeer
	loadStrict(t, "bgppeer.yaml", &peer)
	p := peer.Spec
	if p.NodeSelector != "rack == 'rack-1'" || p.PeerIP != "192.20.30.40" || p.ASNumber != 64567 || !p.KeepOriginalNextHop ||
		p.Password == nil || p.Password.SecretKeyRef == nil || p.Password.SecretKeyRef.Name != "bgp-secrets" || p.Password.SecretKeyRef.Key != "rr-password" ||
		p.SourceAddress != SourceAddressUseNodeIP || p.MaxRestartTime == nil || p.MaxRestartTime.Duration != 120*time.Second ||
		p.TTLSecurity == nil || *p.TTLSecurity != 1 || len(p.Filters) != 1 || p.ReachableBy != "192.20.30.1" ||
		p.NumAllowedLocalASNumbers == nil || *p.NumAllowedLocalASNumbers != 1 {
		t.Errorf("bgppeer spec: %+v", p)
	}

	var rr BGPPeer
	loadStrict(t, "bgppeer-selector.yaml", &rr)
	var cfg BGPConfiguration
	loadStrict(t, "bgpconfiguration.yaml", &cfg)
	if c := cfg.Spec; c.ASNumber == nil || *c.ASNumber != 63400 || c.NodeToNodeMeshEnabled == nil || !*c.NodeToNodeMeshEnabled ||
		c.ListenPort != 178 || c.BindMode == nil || *c.BindMode != BindModeNodeIP || len(c.ServiceExternalIPs) != 2 ||
		len(c.PrefixAdvertisements) != 1 || len(c.PrefixAdvertisements[0].Communities) != 2 || c.NodeMeshMaxRestartTime.Duration != 2*time.Minute {
		t.Errorf("bgpconfiguration spec: %+v", c)
	}
	var filter BGPFilter
	loadStrict(t, "bgpfilter.yaml", &filter)
	if f := filter.Spec; len(f.ExportV4) != 2 || f.ExportV4[0].MatchOperator != MatchOperatorIn || f.ImportV4[0].Source != BGPFilterSourceRemotePeers ||
		f.ExportV4[1].Interface != "*.calico" || f.ImportV6[0].Action != Reject {
		t.Errorf("bgpfilter spec: %+v", f)
	}
	var ipamcfg IPAMConfiguration
	loadStrict(t, "ipamconfiguration.yaml", &ipamcfg)
	if ipamcfg.Spec.MaxBlocksPerHost != 4 || !ipamcfg.Spec.AutoAllocateBlocks {
		t.Errorf("ipamconfiguration spec: %+v", ipamcfg.Spec)
	}

	for name, obj := range map[string]validator{"ippool": &pool, "ippool-v6": &pool6, "bgppeer": &peer, "bgppeer-selector": &rr,
		"bgpconfiguration": &cfg, "bgpfilter": &filter, "ipamconfiguration": &ipamcfg} {
		if err := obj.Validate(); err != nil {
			t.Errorf("%s: Validate: %v", name, err)
		}
	}

	// Round trip: what we write reads back strictly.
	out, err := yaml.Marshal(&peer)
	if err != nil {
		t.Fatal(err)
	}
	var back BGPPeer
	if err := yaml.UnmarshalStrict(out, &back); err != nil || back.Spec.ASNumber != peer.Spec.ASNumber || back.Spec.Password.SecretKeyRef.Key != "rr-password" {
		t.Fatalf("round trip: %v\n%s", err, out)
	}
}

func TestUnknownFieldsRejected(t *testing.T) {
	for _, doc := range []string{
		"apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/16, blocksize: 26}\n",
		"apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/16, nat-outgoing: true}\n",
		"apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/16, ipip: {enabled: true}}\n",
		"apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: p}\nspec: {peerIP: 10.0.0.1, asNum: 64512}\n",
	} {
		var obj any = &IPPool{}
		if strings.Contains(doc, "BGPPeer") {
			obj = &BGPPeer{}
		}
		if err := apiserverStrict([]byte(doc), obj); err == nil {
			t.Errorf("accepted %q", doc)
		}
		// sigs.k8s.io/yaml rejects unknown names too (but matches case
		// insensitively: "blocksize" passes it).
		if !strings.Contains(doc, "blocksize") {
			if err := yaml.UnmarshalStrict([]byte(doc), obj); err == nil {
				t.Errorf("sigs.k8s.io/yaml accepted %q", doc)
			}
		}
	}
}

func TestASNumber(t *testing.T) {
	for in, want := range map[string]ASNumber{
		`{"asNumber": 64512}`:         64512,
		`{"asNumber": "64512"}`:       64512,
		`{"asNumber": "1.10"}`:        65546,
		`{"asNumber": 4294967295}`:    4294967295,
		`{"asNumber": "65535.65535"}`: 4294967295,
	} {
		var s BGPPeerSpec
		if err := yaml.UnmarshalStrict([]byte(in), &s); err != nil || s.ASNumber != want {
			t.Errorf("%s: %v, %v; want %d", in, s.ASNumber, err, want)
		}
	}
	for _, in := range []string{`{"asNumber": 4294967296}`, `{"asNumber": "1.65536"}`, `{"asNumber": "x"}`, `{"asNumber": -1}`, `{"asNumber": 1.5}`} {
		var s BGPPeerSpec
		if err := yaml.UnmarshalStrict([]byte(in), &s); err == nil {
			t.Errorf("%s accepted as %d", in, s.ASNumber)
		}
	}
	out, _ := yaml.Marshal(BGPPeerSpec{ASNumber: 65546})
	if string(out) != "asNumber: 65546\n" {
		t.Errorf("marshal: %q", out)
	}
}
