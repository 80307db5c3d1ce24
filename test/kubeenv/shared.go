package kubeenv

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

var shared struct {
	mu      sync.Mutex
	main    bool // Main is running the tests
	opts    []Option
	started bool // a start was attempted (env or err is set)
	env     *Env
	err     error
}

// Main runs the tests of a package that uses Get, then stops the shared env
// (printing the tail of its logs if a test failed). Use it as
//
//	func TestMain(m *testing.M) { os.Exit(kubeenv.Main(m)) }
//
// opts apply to the shared env.
func Main(m *testing.M, opts ...Option) int {
	shared.mu.Lock()
	shared.main, shared.opts = true, opts
	shared.mu.Unlock()

	code := m.Run()

	shared.mu.Lock()
	e := shared.env
	shared.env, shared.main = nil, false
	shared.mu.Unlock()
	if e != nil {
		if code != 0 {
			fmt.Fprint(os.Stderr, e.logsSince(nil, 60))
		}
		e.Stop()
	}
	return code
}

// Get returns the env shared by all tests of this test binary, starting it on
// first use (stopped by Main, which the package's TestMain must call). It
// skips t when the binaries are missing (fails with VECNET_REQUIRE_KUBE=1).
// If t fails, the etcd and apiserver log lines written during t are printed.
//
// Cluster-scoped objects (Nodes, CRDs, ...) are seen by every test: give them
// unique names. Namespaced ones belong in env.Namespace(t).
func Get(t testing.TB) *Env {
	t.Helper()
	shared.mu.Lock()
	if !shared.main {
		shared.mu.Unlock()
		t.Fatal("kubeenv.Get needs `func TestMain(m *testing.M) { os.Exit(kubeenv.Main(m)) }` in this package " +
			"(it stops the shared apiserver); or use kubeenv.Start(t) for a private one")
	}
	if !shared.started {
		shared.started = true
		t0 := time.Now()
		shared.env, shared.err = start(shared.opts...)
		if shared.err == nil {
			t.Logf("kubeenv: shared kube-apiserver %s at %s ready in %.1fs (dir %s)", KubeVersion,
				shared.env.Config.Host, time.Since(t0).Seconds(), shared.env.Dir)
		}
	}
	e, err := shared.env, shared.err
	shared.mu.Unlock()
	if err != nil {
		skipOrFail(t, err)
	}
	offsets := e.logOffsets()
	t.Cleanup(func() {
		if t.Failed() {
			t.Log("kubeenv logs during this test:\n" + e.logsSince(offsets, 80))
		}
	})
	return e
}

// Namespace creates a namespace named after the test (plus a random suffix)
// and returns its name. When t ends, its Pods are deleted at once (there is no
// kubelet to confirm a graceful deletion) and the namespace is deleted and
// finalized (there is no namespace controller); other objects in it stay in
// etcd, unreachable through a namespace of that name.
func (e *Env) Namespace(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	ns, err := e.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: namespacePrefix(t.Name())},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("kubeenv: creating namespace: %v", err)
	}
	t.Cleanup(func() {
		if err := e.deleteNamespace(ns.Name); err != nil {
			t.Logf("kubeenv: deleting namespace %s: %v", ns.Name, err)
		}
	})
	return ns.Name
}

func (e *Env) deleteNamespace(name string) error {
	if e.stopped.Load() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	zero := int64(0)
	nsc := e.Client.CoreV1().Namespaces()
	if err := e.Client.CoreV1().Pods(name).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero},
		metav1.ListOptions{}); err != nil {
		return err
	}
	if err := nsc.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		return ignoreNotFound(err)
	}
	ns, err := nsc.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return ignoreNotFound(err)
	}
	ns.Spec.Finalizers = nil
	_, err = nsc.Finalize(ctx, ns, metav1.UpdateOptions{})
	return ignoreNotFound(err)
}

func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// namespacePrefix turns a test name into a DNS label prefix for GenerateName.
func namespacePrefix(testName string) string {
	var b strings.Builder
	dash := true // no leading dash
	for _, r := range strings.ToLower(testName) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
			dash = false
		case !dash:
			b.WriteByte('-')
			dash = true
		}
		if b.Len() >= 40 {
			break
		}
	}
	s := strings.TrimRight(b.String(), "-")
	if s == "" {
		s = "test"
	}
	return s + "-"
}

// ServiceAccountConfig returns a Config that authenticates as ServiceAccount
// namespace/name (created if missing) with a one-hour token from the
// TokenRequest API: the way to test what RBAC lets a component do. Grant it
// permissions with ordinary (Cluster)Roles and bindings through env.Client.
func (e *Env) ServiceAccountConfig(t testing.TB, namespace, name string) *rest.Config {
	t.Helper()
	ctx := context.Background()
	_, err := e.Client.CoreV1().ServiceAccounts(namespace).Create(ctx, &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: name},
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("kubeenv: creating ServiceAccount %s/%s: %v", namespace, name, err)
	}
	secs := int64(3600)
	tr, err := e.Client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &secs},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("kubeenv: token for ServiceAccount %s/%s: %v", namespace, name, err)
	}
	cfg := rest.AnonymousClientConfig(e.Config)
	cfg.BearerToken = tr.Status.Token
	return cfg
}
