package ipam

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v3 "github.com/vecnet/vecnet/pkg/apis/projectcalico/v3"
	"github.com/vecnet/vecnet/test/kubeenv"
)

// The IPAM tests run twice: against controller-runtime's fake client (which
// enforces resourceVersion conflicts) and against a real kube-apiserver +
// etcd from test/kubeenv with the CRDs of deploy/crds installed (skipped when
// kubeenv's binaries are missing, like every kubeenv test).

func TestMain(m *testing.M) { os.Exit(kubeenv.Main(m)) }

var testScheme = func() *k8sruntime.Scheme {
	s := k8sruntime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := v3.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}()

type backend string

const (
	backendFake      backend = "fake"
	backendAPIServer backend = "apiserver"
)

var backends = []backend{backendFake, backendAPIServer}

// runBackends runs f as a subtest per backend, each with an empty store.
func runBackends(t *testing.T, f func(t *testing.T, k client.Client)) {
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			f(t, newStore(t, be))
		})
	}
}

var crdsOnce sync.Once

func newStore(t *testing.T, be backend) client.Client {
	t.Helper()
	if be == backendFake {
		return fake.NewClientBuilder().WithScheme(testScheme).Build()
	}
	env := kubeenv.Get(t)
	crdsOnce.Do(func() { env.InstallCRDs(t, crdDir()) })
	k, err := client.New(env.Config, client.Options{Scheme: testScheme})
	if err != nil {
		t.Fatal(err)
	}
	// All IPAM objects are cluster-scoped: the tests using the shared
	// apiserver run one after the other and start from nothing.
	wipe(t, k)
	t.Cleanup(func() { wipe(t, k) })
	return k
}

func crdDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "deploy", "crds")
}

func wipe(t *testing.T, k client.Client) {
	t.Helper()
	ctx := context.Background()
	kinds := []struct {
		obj  client.Object
		list client.ObjectList
	}{
		{&v3.IPPool{}, &v3.IPPoolList{}},
		{&v3.IPAMBlock{}, &v3.IPAMBlockList{}},
		{&v3.BlockAffinity{}, &v3.BlockAffinityList{}},
		{&v3.IPAMHandle{}, &v3.IPAMHandleList{}},
	}
	for _, kd := range kinds {
		if err := k.DeleteAllOf(ctx, kd.obj); err != nil {
			t.Fatalf("wipe %T: %v", kd.obj, err)
		}
	}
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		for _, kd := range kinds {
			if err := k.List(ctx, kd.list); err != nil {
				return false, err
			}
			if n := len(mustItems(kd.list)); n > 0 {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("wipe: %v", err)
	}
}

func mustItems(l client.ObjectList) []any {
	var out []any
	switch l := l.(type) {
	case *v3.IPPoolList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *v3.IPAMBlockList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *v3.BlockAffinityList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *v3.IPAMHandleList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	}
	return out
}
