// Package kubeenv runs a real Kubernetes control plane (etcd and
// kube-apiserver, no controllers, no kubelet) for Go tests, in the spirit of
// controller-runtime's envtest but with the binaries that hack/kube-build.sh
// builds from the Go module proxy. The processes are started by
// pkg/kubecluster, which vecnet-lab uses too; this package adds what tests
// need on top: one shared apiserver per test binary, skipping when the
// binaries are missing, per-test namespaces, and logs on failure.
//
// One apiserver per test binary (recommended, start-up takes seconds):
//
//	func TestMain(m *testing.M) { os.Exit(kubeenv.Main(m)) }
//
//	func TestSomething(t *testing.T) {
//		env := kubeenv.Get(t)     // started on first use, stopped by Main
//		ns := env.Namespace(t)    // fresh namespace, removed when t ends
//		env.Client.CoreV1().Pods(ns).Create(...)
//	}
//
// A private apiserver for one test: env := kubeenv.Start(t), stopped by
// t.Cleanup.
//
// The binaries are looked up in $VECNET_KUBE_BIN, or else in
// ${VECNET_KUBE_DIR:-/var/tmp/vecnet-kube}/<KubeVersion>/bin, the cache that
// `bash hack/kube-build.sh` fills. When they are missing the test is skipped,
// unless VECNET_REQUIRE_KUBE=1 (hack/test.sh sets it), which makes it fail.
//
// What the apiserver looks like:
//   - listens on 127.0.0.1 on a random port, TLS with a CA generated per env
//     (in Config.CAData and in the kubeconfig file);
//   - authentication: a static token for user "admin" in group
//     system:masters (Config carries it), client certificates signed by the
//     CA, and ServiceAccount tokens (see ServiceAccountConfig);
//   - authorization Node,RBAC; admission as in a real cluster plus
//     NodeRestriction, but without the ServiceAccount plugin (no token
//     controller runs, so it would reject every Pod whose namespace lacks a
//     "default" ServiceAccount);
//   - service cluster IP ranges 10.96.0.0/16 and fd00:10:96::/112 (dual stack);
//   - nothing reconciles: no namespace, garbage-collection, node-lifecycle or
//     scheduler controllers, no kubelet. Pods stay Pending unless a test sets
//     spec.nodeName and the status itself.
//
// Processes are started with a parent-death signal, so they die with the test
// binary even when it is killed (for example by go test's -timeout); the
// temporary directory of such a killed run is removed by the next Start.
// Set VECNET_KUBEENV_KEEP=1 to keep the directory (logs, kubeconfig, keys).
package kubeenv
