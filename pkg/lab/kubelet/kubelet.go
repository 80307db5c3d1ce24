package kubelet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/containernetworking/cni/libcni"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Config is one lab node's kubelet.
type Config struct {
	// NodeName is the Node whose pods (spec.nodeName) this kubelet runs.
	// The Node object is the lab's to create; its InternalIP addresses
	// become the pods' hostIP.
	NodeName string
	Client   kubernetes.Interface
	// CNIConfList is the conflist of the node, like
	// /etc/cni/net.d/10-vecnet.conflist. It is read for every CNI call.
	CNIConfList string
	// CNIBinDirs is CNI_PATH: where the plugins (`vecnet`) are.
	CNIBinDirs []string
	// NetnsPrefix starts the names of pod network namespaces (see
	// NetnsName); "" means NodeName + "-".
	NetnsPrefix string
	// RunDir is the node's directory: container logs in
	// RunDir/<namespace>_<pod>/<container>.log, pod records in
	// RunDir/pods, libcni's cache in RunDir/cni-cache.
	RunDir string
	// Log gets one line per pod lifecycle step (with pod= and uid=; give
	// it node= when nodes share a handler); nil: slog.Default().
	Log *slog.Logger
}

// kubelet is Run's state.
type kubelet struct {
	cfg Config
	log *slog.Logger
	ip  string // path of the ip command
	cni *libcni.CNIConfig

	mu       sync.Mutex
	closed   bool // Run is returning: no new workers
	workers  map[types.UID]*podWorker
	finished map[types.UID]bool // pods deleted and cleaned up: ignore late events
	wg       sync.WaitGroup

	hostMu    sync.Mutex
	hostIPs   []string
	hostIPsAt time.Time
}

// Run runs the node's pods until ctx is done. On return the pods' processes,
// namespaces and addresses are left as they are (the lab's `down` removes
// them, a new Run adopts them). It returns an error only when it cannot
// start.
func Run(ctx context.Context, cfg Config) error {
	k, err := newKubelet(cfg)
	if err != nil {
		return err
	}
	k.log.Info("lab kubelet starting", "node", cfg.NodeName, "conflist", cfg.CNIConfList, "cni_path", cfg.CNIBinDirs,
		"netns_prefix", k.cfg.NetnsPrefix, "run_dir", cfg.RunDir)
	factory := informers.NewSharedInformerFactoryWithOptions(cfg.Client, time.Minute,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", cfg.NodeName).String()
		}))
	inf := factory.Core().V1().Pods().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { k.update(ctx, o) },
		UpdateFunc: func(_, o any) { k.update(ctx, o) },
		DeleteFunc: func(o any) { k.vanish(o) },
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	if cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		k.log.Info("lab kubelet running", "node", cfg.NodeName, "pods", len(inf.GetStore().ListKeys()))
		k.wg.Add(1)
		go func() { defer k.wg.Done(); k.cleanOrphans(ctx, inf.GetStore()) }()
	}
	<-ctx.Done()
	factory.Shutdown()
	k.mu.Lock()
	k.closed = true
	k.mu.Unlock()
	k.wg.Wait()
	k.log.Info("lab kubelet stopped; pods left running", "node", cfg.NodeName)
	return nil
}

func newKubelet(cfg Config) (*kubelet, error) {
	var errs []error
	if cfg.NodeName == "" {
		errs = append(errs, errors.New("kubelet: NodeName is required"))
	}
	if cfg.Client == nil {
		errs = append(errs, errors.New("kubelet: Client is required"))
	}
	if cfg.CNIConfList == "" {
		errs = append(errs, errors.New("kubelet: CNIConfList is required"))
	}
	if len(cfg.CNIBinDirs) == 0 {
		errs = append(errs, errors.New("kubelet: CNIBinDirs is required"))
	}
	if cfg.RunDir == "" || !filepath.IsAbs(cfg.RunDir) {
		errs = append(errs, fmt.Errorf("kubelet: RunDir %q must be an absolute path", cfg.RunDir))
	}
	ip, err := exec.LookPath("ip")
	if err != nil {
		errs = append(errs, fmt.Errorf("kubelet: needs the ip command (iproute2): %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.NetnsPrefix == "" {
		cfg.NetnsPrefix = cfg.NodeName + "-"
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	for _, d := range []string{filepath.Join(cfg.RunDir, "pods"), filepath.Join(cfg.RunDir, "cni-cache")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("kubelet: %w", err)
		}
	}
	return &kubelet{
		cfg: cfg,
		log: cfg.Log,
		ip:  ip,
		// A cache per node: the lab's nodes share the machine's
		// /var/lib/cni otherwise.
		cni:      libcni.NewCNIConfigWithCacheDir(cfg.CNIBinDirs, filepath.Join(cfg.RunDir, "cni-cache"), nil),
		workers:  map[types.UID]*podWorker{},
		finished: map[types.UID]bool{},
	}, nil
}

// update hands a pod from the informer to its worker, starting one for a
// pod not seen before.
func (k *kubelet) update(ctx context.Context, o any) {
	pod, ok := o.(*corev1.Pod)
	if !ok {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed || ctx.Err() != nil || k.finished[pod.UID] {
		return
	}
	w := k.workers[pod.UID]
	if w == nil {
		w = newPodWorker(k, pod)
		k.workers[pod.UID] = w
		k.wg.Add(1)
		go func() {
			defer k.wg.Done()
			if w.run(ctx) {
				k.mu.Lock()
				k.finished[w.uid] = true
				k.mu.Unlock()
			}
			k.mu.Lock()
			delete(k.workers, w.uid)
			k.mu.Unlock()
		}()
	}
	w.setPod(pod, false)
}

// vanish tells a pod's worker that the object is gone from the API (a
// force deletion, or our own final delete).
func (k *kubelet) vanish(o any) {
	if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	pod, ok := o.(*corev1.Pod)
	if !ok {
		return
	}
	k.mu.Lock()
	w := k.workers[pod.UID]
	k.mu.Unlock()
	if w != nil {
		w.setPod(pod, true)
	}
}

// record is the podRecord of a pod on this node.
func (k *kubelet) record(pod *corev1.Pod) *podRecord {
	r := &podRecord{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID, ContainerID: ContainerID(pod.UID)}
	if !pod.Spec.HostNetwork {
		r.Netns = NetnsName(k.cfg.NetnsPrefix, pod.UID)
	}
	return r
}

// tearDown undoes a pod's network: kills what is left in its namespace,
// CNI DEL, removes the namespace. Every step is idempotent, so a failed
// tear-down is simply retried.
func (k *kubelet) tearDown(ctx context.Context, r *podRecord, log *slog.Logger) error {
	if r.Netns == "" {
		return nil // hostNetwork: nothing was set up
	}
	if pids, _ := netnsPids(r.Netns); len(pids) > 0 {
		log.Info("killing processes left in the pod netns", "netns", r.Netns, "pids", pids)
		if err := killNetnsPids(r.Netns, 5*time.Second); err != nil {
			return err
		}
	}
	if err := k.cniDel(ctx, r); err != nil {
		return err
	}
	log.Info("CNI DEL done", "container_id", r.ContainerID)
	if netnsExists(r.Netns) {
		if err := deleteNetns(r.Netns); err != nil {
			return err
		}
		log.Info("netns deleted", "netns", r.Netns)
	}
	return nil
}

// cleanOrphans tears down pods recorded in RunDir/pods that are no longer
// in the API: deleted while no kubelet was running.
func (k *kubelet) cleanOrphans(ctx context.Context, store cache.Store) {
	recs, err := k.readRecords()
	if err != nil {
		k.log.Error("cannot read pod records; pods deleted while the kubelet was down are not cleaned up", "err", err)
		return
	}
	for _, r := range recs {
		backoff := minBackoff
		for ctx.Err() == nil {
			if o, exists, _ := store.GetByKey(r.Namespace + "/" + r.Name); exists {
				if p, ok := o.(*corev1.Pod); ok && p.UID == r.UID {
					break // its worker takes care of it
				}
			}
			k.mu.Lock()
			_, busy := k.workers[r.UID]
			k.mu.Unlock()
			if busy {
				break
			}
			log := k.log.With("pod", r.Namespace+"/"+r.Name, "uid", r.UID)
			log.Info("pod is gone from the API since the kubelet last ran: tearing down what is left of it")
			if err := k.tearDown(ctx, r, log); err != nil {
				log.Warn("tear-down of a vanished pod failed; retrying", "err", err, "retry_in", backoff)
				select {
				case <-ctx.Done():
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, maxBackoff)
				continue
			}
			k.removeRecord(r.UID)
			break
		}
	}
}

// nodeIPs returns the node's InternalIP addresses (one per family, IPv4
// first), looked up again at most every 5s while the node has none.
func (k *kubelet) nodeIPs(ctx context.Context) []string {
	k.hostMu.Lock()
	defer k.hostMu.Unlock()
	if len(k.hostIPs) > 0 || time.Since(k.hostIPsAt) < 5*time.Second {
		return k.hostIPs
	}
	k.hostIPsAt = time.Now()
	n, err := k.cfg.Client.CoreV1().Nodes().Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
	if err != nil {
		k.log.Debug("cannot get the node for hostIP", "err", err)
		return nil
	}
	var addrs []netip.Addr
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		if ip, err := netip.ParseAddr(a.Address); err == nil {
			addrs = append(addrs, ip)
		}
	}
	k.hostIPs = podIPs(addrs)
	return k.hostIPs
}
