package kubeenv

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/vecnet/vecnet/pkg/kubecluster"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
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
	crds, err := e.Cluster.InstallCRDs(ctx, os.DirFS(dir))
	if err != nil {
		t.Fatalf("kubeenv: installing CRDs from %s: %v", dir, err)
	}
	return crds
}

// readCRDs decodes the CRDs of dir's YAML/JSON files, in file name order.
func readCRDs(dir string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	crds, err := kubecluster.ReadCRDs(os.DirFS(dir))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return crds, nil
}
