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
	"sync"
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
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
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

	mtuMu    sync.Mutex // autoMTU's cache
	mtuValue uint32
	mtuAt    time.Time

	dyn        dynamic.Interface
	podLister  listersv1.PodLister
	nsLister   listersv1.NamespaceLister
	nodeLister listersv1.NodeLister
	pools      cache.GenericLister
	blocks     cache.GenericLister
	queue      workqueue.TypedRateLimitingInterface[string]

	upMu         sync.Mutex
	vecnetdStart time.Time // to notice vecnetd's restarts

	routes routeState // routes.go
	bgp    bgpState   // bgp.go
}

// Work items of the reconciler's queue. Items are coarse (the whole set of
// pools, of blocks): the work is cheap and coalescing events into one item
// is what keeps a burst of pod churn from becoming a burst of API calls.
const (
	workGC    = "gc"
	workPools = "pools"
)

var (
	gvrIPPools    = schema.GroupVersionResource{Group: v3.GroupName, Version: "v3", Resource: "ippools"}
	gvrIPAMBlocks = schema.GroupVersionResource{Group: v3.GroupName, Version: "v3", Resource: "ipamblocks"}
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
	// client-go's default client-side limit (5 requests/s, bursts of 10)
	// would make every CNI ADD, a handful of IPAM reads and writes, wait
	// for tokens; the API server's own priority and fairness is the
	// right place to limit a node agent.
	rc = rest.CopyConfig(rc)
	rc.QPS, rc.Burst = 200, 400
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
	dyn, err := dynamic.NewForConfig(rc)
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
		dyn:     dyn,
		ipam:    ipam.New(crc, ipam.Options{StrictAffinity: cfg.StrictAffinity}),
		dp:      dp,
		metrics: newMetrics(),
		queue:   workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
		routes:  routeState{owned: map[netip.Prefix]bool{}},
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
	// The IPAM CRDs, through dynamic informers: pool changes refresh the
	// pool metrics; pools, blocks (which node holds which) and nodes'
	// addresses are the inputs of cross-node routing (routes.go).
	crdFactory := dynamicinformer.NewDynamicSharedInformerFactory(a.dyn, 10*time.Minute)
	enqueue := func(item string) cache.ResourceEventHandlerFuncs {
		return cache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { a.queue.Add(item) },
			UpdateFunc: func(any, any) { a.queue.Add(item) },
			DeleteFunc: func(any) { a.queue.Add(item) },
		}
	}
	poolInf := crdFactory.ForResource(gvrIPPools)
	blockInf := crdFactory.ForResource(gvrIPAMBlocks)
	_, _ = poolInf.Informer().AddEventHandler(enqueue(workPools))
	_, _ = poolInf.Informer().AddEventHandler(enqueue(workRoutes))
	_, _ = blockInf.Informer().AddEventHandler(a.sigEventHandler(workRoutes, blockSig))
	_, _ = factory.Core().V1().Nodes().Informer().AddEventHandler(a.sigEventHandler(workRoutes, nodeAddrSig))
	a.pools = poolInf.Lister()
	a.blocks = blockInf.Lister()
	synced := []cache.InformerSynced{pods.Informer().HasSynced,
		factory.Core().V1().Namespaces().Informer().HasSynced, factory.Core().V1().Nodes().Informer().HasSynced,
		poolInf.Informer().HasSynced, blockInf.Informer().HasSynced}
	if a.cfg.BGP {
		for _, r := range []struct {
			gvr schema.GroupVersionResource
			l   *cache.GenericLister
		}{{gvrBGPConfigurations, &a.bgp.configs}, {gvrBGPPeers, &a.bgp.peers}, {gvrBGPFilters, &a.bgp.filters}} {
			inf := crdFactory.ForResource(r.gvr)
			_, _ = inf.Informer().AddEventHandler(enqueue(workBGP))
			*r.l = inf.Lister()
			synced = append(synced, inf.Informer().HasSynced)
		}
		// Pools (encapsulation of learned routes), blocks (what this node
		// advertises) and nodes (peers, AS numbers, labels).
		_, _ = poolInf.Informer().AddEventHandler(enqueue(workBGPRoutes))
		_, _ = blockInf.Informer().AddEventHandler(a.sigEventHandler(workBGP, blockSig))
		_, _ = factory.Core().V1().Nodes().Informer().AddEventHandler(a.sigEventHandler(workBGP, nodeBGPSig))
		if err := a.startBGP(ctx); err != nil {
			return err
		}
	}
	podFactory.Start(ctx.Done())
	factory.Start(ctx.Done())
	crdFactory.Start(ctx.Done())

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
		if cache.WaitForCacheSync(ctx.Done(), synced...) {
			a.ready.set("informers", nil)
			slog.Info("informers synced")
			a.queue.Add(workGC)
			a.queue.Add(workPools)
			a.queue.Add(workRestore)
			a.queue.Add(workRoutes)
			if a.cfg.BGP {
				a.queue.Add(workBGP)
			}
		}
	}()
	go wait.UntilWithContext(ctx, a.watchVecnetd, 2*time.Second)
	go wait.UntilWithContext(ctx, func(context.Context) {
		a.queue.Add(workGC)
		a.queue.Add(workPools)
		a.queue.Add(workRoutes) // resync: routes changed behind the agent's back
		if a.cfg.BGP {
			a.queue.Add(workBGP) // and secrets, which are not watched
			a.bgp.resync.Store(true)
			a.queue.Add(workBGPRoutes)
		}
	}, a.cfg.GCInterval)
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
	wasDown := a.ready.get("vecnetd") != nil
	a.ready.set("vecnetd", err)
	restarted := err == nil && a.vecnetdRestarted(cctx)
	slog.Debug("vecnetd watch", "err", err, "was_down", wasDown, "restarted", restarted)
	if err == nil && (restarted || wasDown) {
		// vecnetd came (back) up: re-create the pods' interfaces it lost,
		// and its pod prefixes and routes to the other nodes.
		a.queue.Add(workRestore)
		a.queue.Add(workRoutes)
		a.bgp.resync.Store(true)
		a.queue.Add(workBGPRoutes)
	}
	if err == nil {
		a.checkUplinks(cctx)
	}
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
	case workRoutes:
		err = a.reconcileRoutes(ctx)
	case workRestore:
		err = a.restorePods(ctx)
	case workBGP:
		err = a.reconcileBGP(ctx)
	case workBGPRoutes:
		err = a.reconcileBGPRoutes(ctx)
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
		alive := true
		p, err := a.podLister.Pods(attrs["namespace"]).Get(attrs["pod"])
		if err != nil {
			// Not in the cache: confirm with the API before releasing, the
			// cache may be behind a pod created a moment ago.
			p, err = a.getPod(ctx, attrs["namespace"], attrs["pod"])
			alive = status.Code(err) != codes.NotFound
		}
		if err == nil && attrs["uid"] != "" && string(p.UID) != attrs["uid"] {
			alive = false
		}
		if !alive {
			// The interface goes with the addresses: an address handed
			// to a new pod must not still be routed to the old one.
			name := podInterfaceName(attrs["container"], attrs["ifname"])
			if _, err := a.dp.DeleteInterface(ctx, &vecnetv1.DeleteInterfaceRequest{Name: name}); err != nil && status.Code(err) != codes.NotFound {
				slog.Warn("gc: could not delete the interface of a deleted pod; keeping its addresses", "interface", name, "pod", attrs["namespace"]+"/"+attrs["pod"], "err", err)
				return true
			}
			slog.Info("gc: pod is gone, releasing its addresses", "pod", attrs["namespace"]+"/"+attrs["pod"], "interface", name, "handle", handle)
		}
		return alive
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
