package kubelet

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// SchedulerName is the scheduler the lab stands in for: pods that ask for
// another one (spec.schedulerName) are left alone.
const SchedulerName = corev1.DefaultSchedulerName

// Schedule is the lab's scheduler: until ctx is done it binds every pod
// without spec.nodeName to one of nodes, round robin, with a Binding (the
// pods/binding subresource, as kube-scheduler does; the API server then
// sets spec.nodeName and the PodScheduled condition). It ignores resources,
// node selectors, affinities and taints: set spec.nodeName to pin a pod.
// It returns nil when ctx ends, an error only when it cannot start.
func Schedule(ctx context.Context, client kubernetes.Interface, nodes []string, log *slog.Logger) error {
	if len(nodes) == 0 {
		return errors.New("schedule: no nodes")
	}
	if log == nil {
		log = slog.Default()
	}
	s := &scheduler{client: client, nodes: nodes, log: log}
	factory := informers.NewSharedInformerFactoryWithOptions(client, time.Minute,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", "").String()
		}))
	inf := factory.Core().V1().Pods().Informer()
	queue := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	enqueue := func(o any) {
		if key, err := cache.MetaNamespaceKeyFunc(o); err == nil {
			queue.Add(key)
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, o any) { enqueue(o) },
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	go func() { <-ctx.Done(); queue.ShutDown() }()
	log.Info("lab scheduler running", "nodes", nodes)
	for {
		key, quit := queue.Get()
		if quit {
			break
		}
		o, exists, _ := inf.GetStore().GetByKey(key)
		var err error
		if p, ok := o.(*corev1.Pod); exists && ok {
			err = s.schedule(ctx, p)
		}
		if err != nil && ctx.Err() == nil {
			log.Warn("cannot bind pod; will retry", "pod", key, "err", err)
			queue.AddRateLimited(key)
		} else {
			queue.Forget(key)
		}
		queue.Done(key)
	}
	factory.Shutdown()
	return nil
}

// ScheduleOnce binds the pods that have no node now (oldest first) and
// returns how many it bound: Schedule's one pass, for a CLI command.
func ScheduleOnce(ctx context.Context, client kubernetes.Interface, nodes []string, log *slog.Logger) (int, error) {
	if len(nodes) == 0 {
		return 0, errors.New("schedule: no nodes")
	}
	if log == nil {
		log = slog.Default()
	}
	l, err := client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", "").String(),
	})
	if err != nil {
		return 0, err
	}
	pods := l.Items
	sort.SliceStable(pods, func(i, j int) bool {
		a, b := pods[i].CreationTimestamp, pods[j].CreationTimestamp
		if !a.Equal(&b) {
			return a.Before(&b)
		}
		return pods[i].Namespace+"/"+pods[i].Name < pods[j].Namespace+"/"+pods[j].Name
	})
	s := &scheduler{client: client, nodes: nodes, log: log}
	var errs []error
	for i := range pods {
		if err := s.schedule(ctx, &pods[i]); err != nil {
			errs = append(errs, err)
		}
	}
	return s.bound, errors.Join(errs...)
}

// scheduler hands out nodes round robin.
type scheduler struct {
	client kubernetes.Interface
	nodes  []string
	log    *slog.Logger
	next   int
	bound  int
}

// schedule binds pod to the next node, unless it is not ours to bind.
func (s *scheduler) schedule(ctx context.Context, pod *corev1.Pod) error {
	if pod.Spec.NodeName != "" || pod.DeletionTimestamp != nil ||
		pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return nil
	}
	if n := pod.Spec.SchedulerName; n != "" && n != SchedulerName {
		return nil
	}
	node := s.nodes[s.next%len(s.nodes)]
	err := s.client.CoreV1().Pods(pod.Namespace).Bind(ctx, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: node},
	}, metav1.CreateOptions{})
	switch {
	case err == nil:
	case apierrors.IsNotFound(err):
		return nil // deleted meanwhile
	case apierrors.IsConflict(err) && isAlreadyBound(ctx, s.client, pod):
		return nil // bound by someone else meanwhile
	default:
		return err
	}
	s.next++
	s.bound++
	s.log.Info("pod bound", "pod", pod.Namespace+"/"+pod.Name, "node", node)
	return nil
}

// isAlreadyBound tells whether the pod has a node now (the binding's
// conflict was "already assigned", not a UID mismatch with a pod
// re-created meanwhile, which is retried).
func isAlreadyBound(ctx context.Context, client kubernetes.Interface, pod *corev1.Pod) bool {
	p, err := client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
	return err == nil && p.UID == pod.UID && p.Spec.NodeName != ""
}
