package kubecluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
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
// the *.yaml, *.yml and *.json files at the top of fsys (several documents
// per file allowed; documents of other kinds, like a kustomization, are
// ignored) and waits until each is Established and its versions are served,
// after which clients can use them without racing the apiserver's handlers.
// fsys without any CRD is an error. os.DirFS(dir) reads a directory;
// deploy.CRDs is vecnet's own CRDs, built into the binary.
func (c *Cluster) InstallCRDs(ctx context.Context, fsys fs.FS) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	crds, err := ReadCRDs(fsys)
	if err != nil {
		return nil, err
	}
	cs, err := apiextensionsclient.NewForConfig(c.Config)
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
		if out[i], err = c.waitCRD(ctx, cs, crd); err != nil {
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
func (c *Cluster) waitCRD(ctx context.Context, cs apiextensionsclient.Interface, crd *apiextensionsv1.CustomResourceDefinition) (*apiextensionsv1.CustomResourceDefinition, error) {
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
			rl, err := c.Client.Discovery().ServerResourcesForGroupVersion(cur.Spec.Group + "/" + v.Name)
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

// ReadCRDs decodes the CRDs of the YAML/JSON files at the top of fsys, in
// file name order.
func ReadCRDs(fsys fs.FS) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, err
	}
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, ent := range entries {
		ext := strings.ToLower(path.Ext(ent.Name()))
		if ent.IsDir() || (ext != ".yaml" && ext != ".yml" && ext != ".json") {
			continue
		}
		data, err := fs.ReadFile(fsys, ent.Name())
		if err != nil {
			return nil, err
		}
		got, err := decodeCRDs(ent.Name(), data)
		if err != nil {
			return nil, err
		}
		crds = append(crds, got...)
	}
	if len(crds) == 0 {
		return nil, errors.New("no CustomResourceDefinition in *.{yaml,yml,json}")
	}
	return crds, nil
}

// decodeCRDs decodes the CRDs among the documents of one file.
func decodeCRDs(name string, data []byte) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	var crds []*apiextensionsv1.CustomResourceDefinition
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for doc := 1; ; doc++ {
		var obj map[string]any
		err := dec.Decode(&obj)
		if errors.Is(err, io.EOF) {
			return crds, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, doc, err)
		}
		if obj == nil || obj["kind"] != "CustomResourceDefinition" {
			continue
		}
		if obj["apiVersion"] != apiextensionsv1.SchemeGroupVersion.String() {
			return nil, fmt.Errorf("%s: document %d: CRD apiVersion %v, want %s", name, doc, obj["apiVersion"],
				apiextensionsv1.SchemeGroupVersion)
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(obj, crd, true); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, doc, err)
		}
		crds = append(crds, crd)
	}
}
