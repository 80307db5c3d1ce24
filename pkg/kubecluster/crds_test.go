package kubecluster

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/vecnet/vecnet/deploy"
)

func TestReadCRDs(t *testing.T) {
	got, err := ReadCRDs(deploy.CRDs)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, c := range got {
		names[c.Name] = true
	}
	for _, want := range []string{"ippools.projectcalico.org", "ipamblocks.projectcalico.org", "ipamhandles.projectcalico.org", "blockaffinities.projectcalico.org"} {
		if !names[want] {
			t.Errorf("embedded CRDs lack %s (have %v)", want, names)
		}
	}

	for name, fsys := range map[string]fstest.MapFS{
		"empty":    {},
		"no CRD":   {"k.yaml": {Data: []byte("kind: Kustomization\n")}},
		"v1beta1":  {"old.yaml": {Data: []byte("apiVersion: apiextensions.k8s.io/v1beta1\nkind: CustomResourceDefinition\nmetadata: {name: x}\n")}},
		"bad YAML": {"bad.yaml": {Data: []byte("kind: [\n")}},
	} {
		if _, err := ReadCRDs(fsys); err == nil {
			t.Errorf("%s: no error", name)
		} else if name == "v1beta1" && !strings.Contains(err.Error(), "old.yaml") {
			t.Errorf("%s: error %q does not name the file", name, err)
		}
	}
}

func TestMissingError(t *testing.T) {
	_, err := FindBinaries(t.TempDir(), APIServer, Etcd, Kubectl)
	var m *MissingError
	if !asMissing(err, &m) || !strings.Contains(err.Error(), "kube-apiserver, etcd and kubectl not found") ||
		m.BuildCommand() != "bash hack/kube-build.sh kube-apiserver etcd kubectl" {
		t.Errorf("err = %v", err)
	}
}

func asMissing(err error, m **MissingError) bool {
	var ok bool
	*m, ok = err.(*MissingError)
	return ok
}
