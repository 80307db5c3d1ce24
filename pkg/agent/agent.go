package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	cniv1 "github.com/vecnet/vecnet/api/cni/v1"
	vecnetv1 "github.com/vecnet/vecnet/api/vecnet/v1"
	v3 "github.com/vecnet/vecnet/pkg/apis/projectcalico/v3"
	"github.com/vecnet/vecnet/pkg/ipam"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Agent is a running vecnet-agent.
type Agent struct {
	cfg     Config
	kube    kubernetes.Interface
	crc     client.Client
	ipam    *ipam.Client
	dp      vecnetv1.DataplaneClient
	metrics *metrics
	ready   readiness

	podLister  listersv1.PodLister
	nsLister   listersv1.NamespaceLister
	nodeLister listersv1.NodeLister
	queue      workqueue.TypedRateLimitingInterface[string]
}

// Work items of the reconciler's queue.
const (
	workGC    = "gc"
	workPools = "pools"
)

// RestConfig loads the Kubernetes client configuration.
func RestConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		return rest.InClusterConfig()
	}
	return clientcmd.BuildConfigFromFlags("", kubeconfig)
}

// New builds an agent; Run starts it.
func New(cfg Config, rc *rest.Config) (*Agent, error) {
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := v3.AddToScheme(scheme); err != nil {
		return nil, err
	}
	crc, err := client.New(rc, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	_, dp, err := dialVecnetd(cfg.VecnetdSocket)
	if err != nil {
		return nil, err
	}
	a := &Agent{
		cfg:     cfg,
		kube:    kube,
		crc:     crc,
		ipam:    ipam.New(crc, ipam.Options{StrictAffinity: cfg.StrictAffinity}),
		dp:      dp,
		metrics: newMetrics(),
		queue:   workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
	}
	a.ready.set("informers", errors.New("not synced yet"))
	a.ready.set("vecnetd", errors.New("not contacted yet"))
	return a, nil
}

// Run serves until ctx ends. It returns an error only if it cannot start.
func (a *Agent) Run(ctx context.Context) error {
	// Pods of this node only: the agent never needs the others, and at
	// scale watching every pod from every node would load the API server.
	podFactory := informers.NewSharedInformerFactoryWithOptions(a.kube, 10*time.Minute,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", a.cfg.NodeName).String()
		}))
	factory := informers.NewSharedInformerFactory(a.kube, 10*time.Minute)
	pods := podFactory.Core().V1().Pods()
	a.podLister = pods.Lister()
	a.nsLister = factory.Core().V1().Namespaces().Lister()
	a.nodeLister = factory.Core().V1().Nodes().Lister()
	_, _ = pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		DeleteFunc: func(any) { a.queue.AddAfter(workGC, 2*time.Second) },
	})
	podFactory.Start(ctx.Done())
	factory.Start(ctx.Done())

	if err := a.serveCNI(ctx); err != nil {
		return err
	}
	if err := serveHTTP(ctx, a.cfg.HealthAddr, healthHandler(&a.ready), "health"); err != nil {
		return err
	}
	if a.cfg.MetricsAddr != "" {
		if err := serveHTTP(ctx, a.cfg.MetricsAddr, metricsHandler(a.metrics), "metrics"); err != nil {
			return err
		}
	}
	go func() {
		synced := cache.WaitForCacheSync(ctx.Done(), pods.Informer().HasSynced,
			factory.Core().V1().Namespaces().Informer().HasSynced, factory.Core().V1().Nodes().Informer().HasSynced)
		if synced {
			a.ready.set("informers", nil)
			slog.Info("informers synced")
			a.queue.Add(workGC)
			a.queue.Add(workPools)
		}
	}()
	go wait.UntilWithContext(ctx, a.watchVecnetd, 2*time.Second)
	go wait.UntilWithContext(ctx, func(context.Context) { a.queue.Add(workGC); a.queue.Add(workPools) }, a.cfg.GCInterval)
	go func() { <-ctx.Done(); a.queue.ShutDown() }()
	slog.Info("vecnet-agent running", "node", a.cfg.NodeName, "cni_socket", a.cfg.CNISocket, "vecnetd_socket", a.cfg.VecnetdSocket)
	for a.processNext(ctx) {
	}
	return nil
}

// watchVecnetd keeps the "vecnetd" readiness condition current.
func (a *Agent) watchVecnetd(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := a.dp.ListVrfs(cctx, &vecnetv1.ListVrfsRequest{})
	if err != nil {
		err = fmt.Errorf("not reachable at %s: %v", a.cfg.VecnetdSocket, status.Convert(err).Message())
	}
	a.ready.set("vecnetd", err)
}

func (a *Agent) serveCNI(ctx context.Context) error {
	if err := os.MkdirAll(filepath.Dir(a.cfg.CNISocket), 0o755); err != nil {
		return err
	}
	_ = os.Remove(a.cfg.CNISocket)
	l, err := net.Listen("unix", a.cfg.CNISocket)
	if err != nil {
		return fmt.Errorf("CNI socket %s: %w", a.cfg.CNISocket, err)
	}
	if err := os.Chmod(a.cfg.CNISocket, 0o600); err != nil {
		l.Close()
		return err
	}
	srv := grpc.NewServer()
	cniv1.RegisterCNIServer(srv, &cniServer{a: a})
	go func() {
		<-ctx.Done()
		srv.GracefulStop()
		_ = os.Remove(a.cfg.CNISocket)
	}()
	go func() {
		if err := srv.Serve(l); err != nil {
			slog.Error("CNI server stopped", "err", err)
		}
	}()
	return nil
}

func (a *Agent) processNext(ctx context.Context) bool {
	item, shutdown := a.queue.Get()
	if shutdown {
		return false
	}
	defer a.queue.Done(item)
	var err error
	switch item {
	case workGC:
		err = a.gcDeletedPods(ctx)
	case workPools:
		err = a.updatePoolMetrics(ctx)
	}
	if err != nil {
		slog.Warn("reconcile failed; will retry", "item", item, "err", err)
		a.queue.AddRateLimited(item)
		return true
	}
	a.queue.Forget(item)
	return true
}

// gcDeletedPods releases the addresses of this node's pods that no longer
// exist (or exist with another UID: deleted and re-created). Attachments
// without a pod (non-Kubernetes runtimes) are left to CNI GC.
func (a *Agent) gcDeletedPods(ctx context.Context) error {
	if a.ready.check() != nil {
		return nil
	}
	n, err := a.ipam.GC(ctx, func(handle string, attrs map[string]string) bool {
		if attrs["node"] != a.cfg.NodeName || attrs["pod"] == "" {
			return true
		}
		p, err := a.podLister.Pods(attrs["namespace"]).Get(attrs["pod"])
		if err != nil {
			// Not in the cache: confirm with the API before releasing, the
			// cache may be behind a pod created a moment ago.
			p, err = a.getPod(ctx, attrs["namespace"], attrs["pod"])
			if status.Code(err) != codes.NotFound {
				return true
			}
			return false
		}
		return attrs["uid"] == "" || string(p.UID) == attrs["uid"]
	})
	if n > 0 {
		a.metrics.released.Add(float64(n))
		slog.Info("released addresses of deleted pods", "count", n)
	}
	return err
}

func (a *Agent) updatePoolMetrics(ctx context.Context) error {
	us, err := a.ipam.Usage(ctx)
	if err != nil {
		return err
	}
	for _, u := range us {
		a.metrics.poolSize.WithLabelValues(u.Name, u.CIDR.String()).Set(float64(u.Size))
		a.metrics.poolInUse.WithLabelValues(u.Name, u.CIDR.String()).Set(float64(u.Allocated))
	}
	return nil
}

// nodeLabels returns this node's labels (for pools' nodeSelector).
func (a *Agent) nodeLabels(ctx context.Context) (map[string]string, error) {
	if n, err := a.nodeLister.Get(a.cfg.NodeName); err == nil {
		return n.Labels, nil
	}
	n, err := a.kube.CoreV1().Nodes().Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "node %s is not in the Kubernetes API (check --node-name): %v", a.cfg.NodeName, err)
	}
	return n.Labels, nil
}

// poolFamilies says which address families the attachment gets: those with
// pools named in the annotations, else those with any enabled pool.
func (a *Agent) poolFamilies(ctx context.Context, req addressRequest) (has4, has6 bool, err error) {
	if len(req.IPv4Pools) > 0 || len(req.IPv6Pools) > 0 {
		return len(req.IPv4Pools) > 0, len(req.IPv6Pools) > 0, nil
	}
	var pools v3.IPPoolList
	if err := a.crc.List(ctx, &pools); err != nil {
		return false, false, status.Errorf(codes.Unavailable, "listing IPPools: %v", err)
	}
	for _, p := range pools.Items {
		if p.Spec.Disabled {
			continue
		}
		pfx, err := parseCIDR(p.Spec.CIDR)
		if err != nil {
			continue
		}
		if pfx.Addr().Is4() {
			has4 = true
		} else {
			has6 = true
		}
	}
	return has4, has6, nil
}

func parseCIDR(s string) (netip.Prefix, error) { return netip.ParsePrefix(s) }
