package kubeenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// InstallCRDs creates (or updates) every CustomResourceDefinition found in
// the *.yaml, *.yml and *.json files of dir (not recursive; several documents
// per file allowed; documents of other kinds, like a kustomization, are
// ignored) and waits until each is Established and its versions are served.
// It fails t if dir holds no CRD. CRDs are cluster-scoped and stay installed
// for the life of the env; installing the same ones again is cheap.
func (e *Env) InstallCRDs(t testing.TB, dir string) []*apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	crds, err := e.installCRDs(ctx, dir)
	if err != nil {
		t.Fatalf("kubeenv: installing CRDs from %s: %v", dir, err)
	}
	return crds
}

func (e *Env) installCRDs(ctx context.Context, dir string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	crds, err := readCRDs(dir)
	if err != nil {
		return nil, err
	}
	cs, err := apiextensionsclient.NewForConfig(e.Config)
	if err != nil {
		return nil, err
	}
	api := cs.ApiextensionsV1().CustomResourceDefinitions()
	var out []*apiextensionsv1.CustomResourceDefinition
	for _, crd := range crds {
		got, err := api.Create(ctx, crd, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			got, err = updateCRD(ctx, cs, crd)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", crd.Name, err)
		}
		out = append(out, got)
	}
	for i, crd := range out {
		if out[i], err = e.waitCRD(ctx, cs, crd); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func updateCRD(ctx context.Context, cs apiextensionsclient.Interface, crd *apiextensionsv1.CustomResourceDefinition) (*apiextensionsv1.CustomResourceDefinition, error) {
	api := cs.ApiextensionsV1().CustomResourceDefinitions()
	var got *apiextensionsv1.CustomResourceDefinition
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		cur, err := api.Get(ctx, crd.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		upd := crd.DeepCopy()
		upd.ResourceVersion = cur.ResourceVersion
		got, err = api.Update(ctx, upd, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			return false, nil
		}
		return err == nil, err
	})
	return got, err
}

// waitCRD waits for Established (NamesAccepted failing is an error) and for
// discovery to list the resource in every served version, after which
// clients can use it without racing the apiserver's handlers.
func (e *Env) waitCRD(ctx context.Context, cs apiextensionsclient.Interface, crd *apiextensionsv1.CustomResourceDefinition) (*apiextensionsv1.CustomResourceDefinition, error) {
	api := cs.ApiextensionsV1().CustomResourceDefinitions()
	var last *apiextensionsv1.CustomResourceDefinition
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		cur, err := api.Get(ctx, crd.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		last = cur
		established := false
		for _, c := range cur.Status.Conditions {
			switch {
			case c.Type == apiextensionsv1.NamesAccepted && c.Status == apiextensionsv1.ConditionFalse:
				return false, fmt.Errorf("names not accepted: %s", c.Message)
			case c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue:
				established = true
			}
		}
		if !established {
			return false, nil
		}
		for _, v := range cur.Spec.Versions {
			if !v.Served {
				continue
			}
			rl, err := e.Client.Discovery().ServerResourcesForGroupVersion(cur.Spec.Group + "/" + v.Name)
			if err != nil {
				return false, nil
			}
			if !slices.ContainsFunc(rl.APIResources, func(r metav1.APIResource) bool { return r.Name == cur.Spec.Names.Plural }) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		cond := ""
		if last != nil {
			cond = fmt.Sprintf(" (conditions %+v)", last.Status.Conditions)
		}
		return nil, fmt.Errorf("CRD %s not established: %w%s", crd.Name, err, cond)
	}
	return last, nil
}

// readCRDs decodes the CRDs of dir's YAML/JSON files, in file name order.
func readCRDs(dir string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, ent := range entries {
		ext := strings.ToLower(filepath.Ext(ent.Name()))
		if ent.IsDir() || (ext != ".yaml" && ext != ".yml" && ext != ".json") {
			continue
		}
		path := filepath.Join(dir, ent.Name())
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
		for doc := 1; ; doc++ {
			var obj map[string]any
			err := dec.Decode(&obj)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("%s: document %d: %w", path, doc, err)
			}
			if obj == nil || obj["kind"] != "CustomResourceDefinition" {
				continue
			}
			if obj["apiVersion"] != apiextensionsv1.SchemeGroupVersion.String() {
				f.Close()
				return nil, fmt.Errorf("%s: document %d: CRD apiVersion %v, want %s", path, doc, obj["apiVersion"],
					apiextensionsv1.SchemeGroupVersion)
			}
			crd := &apiextensionsv1.CustomResourceDefinition{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(obj, crd, true); err != nil {
				f.Close()
				return nil, fmt.Errorf("%s: document %d: %w", path, doc, err)
			}
			crds = append(crds, crd)
		}
		f.Close()
	}
	if len(crds) == 0 {
		return nil, fmt.Errorf("no CustomResourceDefinition in %s/*.{yaml,yml,json}", dir)
	}
	return crds, nil
}
