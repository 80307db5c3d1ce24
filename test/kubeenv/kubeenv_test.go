package kubeenv

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func TestNodesAndPods(t *testing.T) {
	t.Parallel()
	env := Get(t)
	ctx := context.Background()
	ns := env.Namespace(t)
	cs := env.Client

	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-" + ns, Labels: map[string]string{"kubernetes.io/os": "linux"}},
		Spec:       corev1.NodeSpec{PodCIDR: "10.244.1.0/24", PodCIDRs: []string{"10.244.1.0/24", "fd00:10:244:1::/64"}},
	}
	if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.CoreV1().Nodes().Delete(context.Background(), node.Name, metav1.DeleteOptions{}) })

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p1", Namespace: ns},
		Spec: corev1.PodSpec{
			NodeName:   node.Name,
			Containers: []corev1.Container{{Name: "c", Image: "example.invalid/none:1"}},
		},
	}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	gotNode, err := cs.CoreV1().Nodes().Get(ctx, node.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(gotNode.Spec.PodCIDRs) != 2 || gotNode.Spec.PodCIDRs[1] != "fd00:10:244:1::/64" {
		t.Errorf("node podCIDRs = %v", gotNode.Spec.PodCIDRs)
	}
	gotPod, err := cs.CoreV1().Pods(ns).Get(ctx, "p1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if gotPod.Spec.NodeName != node.Name || gotPod.Status.Phase != corev1.PodPending {
		t.Errorf("pod nodeName=%q phase=%q", gotPod.Spec.NodeName, gotPod.Status.Phase)
	}

	// What a CNI's IPAM reports: the status subresource takes pod IPs.
	gotPod.Status.PodIPs = []corev1.PodIP{{IP: "10.244.1.5"}, {IP: "fd00:10:244:1::5"}}
	gotPod.Status.PodIP = "10.244.1.5"
	if _, err := cs.CoreV1().Pods(ns).UpdateStatus(ctx, gotPod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	list, err := cs.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + node.Name})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || len(list.Items[0].Status.PodIPs) != 2 {
		t.Errorf("pods on %s: %+v", node.Name, list.Items)
	}
}

func TestDualStackService(t *testing.T) {
	t.Parallel()
	env := Get(t)
	ctx := context.Background()
	ns := env.Namespace(t)
	policy := corev1.IPFamilyPolicyRequireDualStack
	svc, err := env.Client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "s"},
		Spec: corev1.ServiceSpec{
			IPFamilyPolicy: &policy,
			Ports:          []corev1.ServicePort{{Port: 80}},
			Selector:       map[string]string{"app": "x"},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(svc.Spec.ClusterIPs) != 2 {
		t.Fatalf("clusterIPs = %v", svc.Spec.ClusterIPs)
	}
	for i, cidr := range DefaultServiceCIDRs {
		if !netip.MustParsePrefix(cidr).Contains(netip.MustParseAddr(svc.Spec.ClusterIPs[i])) {
			t.Errorf("clusterIP %s not in %s", svc.Spec.ClusterIPs[i], cidr)
		}
	}
}

func TestInstallCRDs(t *testing.T) {
	t.Parallel()
	env := Get(t)
	ctx := context.Background()
	ns := env.Namespace(t)

	crds := env.InstallCRDs(t, "testdata/crds")
	if len(crds) != 2 {
		t.Fatalf("installed %d CRDs, want 2", len(crds))
	}
	env.InstallCRDs(t, "testdata/crds") // again: updates in place

	gvr := schema.GroupVersionResource{Group: "kubeenv.test.vecnet.io", Version: "v1alpha1", Resource: "widgets"}
	w := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kubeenv.test.vecnet.io/v1alpha1",
		"kind":       "Widget",
		"metadata":   map[string]any{"name": "w1"},
		"spec":       map[string]any{"cidr": "10.244.0.0/16", "size": int64(24)},
	}}
	if _, err := env.Dynamic.Resource(gvr).Namespace(ns).Create(ctx, w, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := env.Dynamic.Resource(gvr).Namespace(ns).Get(ctx, "w1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cidr, _, _ := unstructured.NestedString(got.Object, "spec", "cidr"); cidr != "10.244.0.0/16" {
		t.Errorf("spec.cidr = %q", cidr)
	}
	// The schema is enforced: spec.cidr is required.
	bad := w.DeepCopy()
	bad.SetName("w2")
	unstructured.RemoveNestedField(bad.Object, "spec", "cidr")
	if _, err := env.Dynamic.Resource(gvr).Namespace(ns).Create(ctx, bad, metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("widget without spec.cidr: err = %v, want Invalid", err)
	}

	// The cluster-scoped one from the JSON file.
	g := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kubeenv.test.vecnet.io/v1",
		"kind":       "Gadget",
		"metadata":   map[string]any{"name": "g-" + ns},
		"anything":   "goes",
	}}
	ggvr := schema.GroupVersionResource{Group: "kubeenv.test.vecnet.io", Version: "v1", Resource: "gadgets"}
	if _, err := env.Dynamic.Resource(ggvr).Create(ctx, g, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestInstallCRDsErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := readCRDs(dir); err == nil {
		t.Error("empty dir: no error")
	}
	os.WriteFile(filepath.Join(dir, "old.yaml"), []byte("apiVersion: apiextensions.k8s.io/v1beta1\nkind: CustomResourceDefinition\nmetadata: {name: x}\n"), 0o644)
	if _, err := readCRDs(dir); err == nil {
		t.Error("v1beta1 CRD: no error")
	}
}

func TestKubeconfigAndServiceAccount(t *testing.T) {
	t.Parallel()
	env := Get(t)
	ctx := context.Background()
	ns := env.Namespace(t)

	cfg, err := clientcmd.BuildConfigFromFlags("", env.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	v, err := cs.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v.GitVersion != KubeVersion {
		t.Errorf("server version %s, want %s", v.GitVersion, KubeVersion)
	}
	if _, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}

	// A ServiceAccount gets only what RBAC grants it.
	sa := kubernetes.NewForConfigOrDie(env.ServiceAccountConfig(t, ns, "agent"))
	if _, err := sa.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("list pods before RBAC: err = %v, want Forbidden", err)
	}
	if _, err := env.Client.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "pod-reader"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Client.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "agent"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "pod-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "agent", Namespace: ns}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// RBAC is read from an informer cache: allow it a moment.
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := sa.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("list pods after RBAC: %v", err)
	}
}

// TestStartPrivate checks the per-test env and that Stop leaves nothing behind.
func TestStartPrivate(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a second apiserver")
	}
	t.Parallel()
	env := Start(t, WithServiceCIDRs("10.97.0.0/16"))
	ctx := context.Background()
	ns := env.Namespace(t)
	if _, err := env.Client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "c"}, Data: map[string]string{"k": "v"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc, err := env.Client.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Spec.ClusterIP != "10.97.0.1" {
		t.Errorf("kubernetes service IP %s, want 10.97.0.1", svc.Spec.ClusterIP)
	}
	if got := os.Getenv(EnvKeep); got == "1" {
		return
	}
	pids := env.pids()
	env.deleteNamespace(ns)
	env.Stop()
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("pid %d still exists after Stop (kill 0: %v)", pid, err)
		}
	}
	if _, err := os.Stat(env.Dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after Stop: %v", env.Dir, err)
	}
}

func TestSkipWhenBinariesMissing(t *testing.T) {
	var sub testing.TB
	t.Run("empty-bin-dir", func(t *testing.T) {
		sub = t
		t.Setenv(EnvBin, t.TempDir())
		t.Setenv(EnvRequire, "")
		Start(t)
		t.Error("Start returned without the binaries")
	})
	if !sub.Skipped() {
		t.Error("Start did not skip")
	}

	t.Setenv(EnvBin, t.TempDir())
	var m *errMissing
	if _, err := start(); !errors.As(err, &m) {
		t.Errorf("start() = %v, want errMissing", err)
	}
}

func TestNamespacePrefix(t *testing.T) {
	for in, want := range map[string]string{
		"TestFoo":             "testfoo-",
		"TestFoo/sub_case#01": "testfoo-sub-case-01-",
		"/__/":                "test-",
		"TestAVeryLongNameThatGoesOnAndOnAndOnForeverAndEver": "testaverylongnamethatgoesonandonandonfor-",
	} {
		if got := namespacePrefix(in); got != want {
			t.Errorf("namespacePrefix(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNamespaceCleanup(t *testing.T) {
	t.Parallel()
	env := Get(t)
	ctx := context.Background()
	var ns string
	t.Run("sub", func(t *testing.T) {
		ns = env.Namespace(t)
		if _, err := env.Client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "bound"},
			Spec: corev1.PodSpec{NodeName: "no-such-node",
				Containers: []corev1.Container{{Name: "c", Image: "example.invalid/none:1"}}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := env.Client.CoreV1().Pods(ns).Get(ctx, "bound", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("pod after namespace cleanup: err = %v, want NotFound", err)
	}
	if _, err := env.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("namespace after cleanup: err = %v, want NotFound", err)
	}
}
