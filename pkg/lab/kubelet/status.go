package kubelet

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

// Reasons the lab kubelet writes besides the kubelet's own.
const (
	// ReasonNetworkNotReady: CNI ADD (or the netns) failed; retried with
	// backoff. On the pod's status.reason (kubectl's STATUS column) and
	// its Ready condition; the message has the CNI error.
	ReasonNetworkNotReady = "NetworkNotReady"
)

// statusRetryDelay is the wait before a failed status write is retried.
const statusRetryDelay = 2 * time.Second

// phase is the pod's phase from the worker's state, as the kubelet
// computes it.
func (w *podWorker) phase() corev1.PodPhase {
	if w.terminal {
		for _, c := range append(w.inits, w.ctrs...) {
			if c.done() && !c.succeeded() {
				return corev1.PodFailed
			}
		}
		for _, c := range w.ctrs {
			if !c.succeeded() {
				return corev1.PodFailed
			}
		}
		return corev1.PodSucceeded
	}
	if !w.sandbox || !w.initialized() {
		return corev1.PodPending
	}
	return corev1.PodRunning
}

func (w *podWorker) initialized() bool {
	for _, c := range w.inits {
		if !c.succeeded() {
			return false
		}
	}
	return true
}

// status computes the parts of the pod's status the kubelet owns.
func (w *podWorker) status(pod *corev1.Pod, hostIPs []string) *corev1.PodStatus {
	st := &corev1.PodStatus{
		Phase:              w.phase(),
		StartTime:          w.startTime,
		ObservedGeneration: pod.Generation,
	}
	for i, ip := range hostIPs {
		if i == 0 {
			st.HostIP = ip
		}
		st.HostIPs = append(st.HostIPs, corev1.HostIP{IP: ip})
	}
	for i, ip := range w.ips {
		if i == 0 {
			st.PodIP = ip
		}
		st.PodIPs = append(st.PodIPs, corev1.PodIP{IP: ip})
	}
	netDown := !w.sandbox && w.netErr != "" && !w.terminal
	if netDown {
		st.Reason = ReasonNetworkNotReady
		st.Message = "network not ready (retrying): " + w.netErr
	}

	// Container states.
	initWaiting := "PodInitializing"
	ctrWaiting := "ContainerCreating"
	if w.sandbox && !w.initialized() {
		ctrWaiting = "PodInitializing"
	}
	var notInit, notReady []string
	for _, c := range w.inits {
		cs := w.containerStatus(pod, c, initWaiting)
		cs.Ready = c.succeeded()
		st.InitContainerStatuses = append(st.InitContainerStatuses, cs)
		if !c.succeeded() {
			notInit = append(notInit, c.spec.Name)
		}
	}
	for _, c := range w.ctrs {
		cs := w.containerStatus(pod, c, ctrWaiting)
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
		if !cs.Ready {
			notReady = append(notReady, c.spec.Name)
		}
	}

	// Conditions.
	conds := []corev1.PodCondition{w.condition(corev1.PodScheduled, true, "", "")}
	// The sandbox is ready while its network is up (rec: not torn down).
	conds = append(conds, w.condition(corev1.PodReadyToStartContainers, w.sandbox && w.rec != nil, "", ""))
	if len(notInit) == 0 {
		conds = append(conds, w.condition(corev1.PodInitialized, true, "", ""))
	} else {
		conds = append(conds, w.condition(corev1.PodInitialized, false, "ContainersNotInitialized",
			fmt.Sprintf("containers with incomplete status: [%s]", strings.Join(notInit, " "))))
	}
	reason, msg := "ContainersNotReady", fmt.Sprintf("containers with unready status: [%s]", strings.Join(notReady, " "))
	switch {
	case w.terminal:
		reason = "PodCompleted"
		msg = ""
	case netDown:
		reason, msg = ReasonNetworkNotReady, st.Message
	}
	ready := len(notReady) == 0 && !w.terminal
	if ready {
		reason, msg = "", ""
	}
	conds = append(conds, w.condition(corev1.ContainersReady, ready, reason, msg), w.condition(corev1.PodReady, ready, reason, msg))
	st.Conditions = conds
	w.conds = conds
	return st
}

// condition builds a condition, keeping its last transition time when its
// status did not change since the last one computed (or read at start).
func (w *podWorker) condition(t corev1.PodConditionType, ok bool, reason, msg string) corev1.PodCondition {
	s := corev1.ConditionFalse
	if ok {
		s = corev1.ConditionTrue
	}
	c := corev1.PodCondition{Type: t, Status: s, Reason: reason, Message: msg, LastTransitionTime: metav1.Now()}
	for _, old := range w.conds {
		if old.Type == t && old.Status == s {
			c.LastTransitionTime = old.LastTransitionTime
		}
	}
	return c
}

// containerStatus is a container's status; waiting is the reason shown
// while it has not started yet.
func (w *podWorker) containerStatus(pod *corev1.Pod, c *container, waiting string) corev1.ContainerStatus {
	cs := corev1.ContainerStatus{
		Name:         c.spec.Name,
		Image:        c.spec.Image,
		RestartCount: c.restartCount,
		ContainerID:  c.containerID,
	}
	started := false
	switch {
	case c.running():
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: c.startedAt}
		cs.Ready, started = true, true
	case c.done():
		cs.State.Terminated = c.term.DeepCopy()
	case c.lastTerm != nil:
		cs.State.Waiting = &corev1.ContainerStateWaiting{
			Reason:  "CrashLoopBackOff",
			Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)", c.backoff, c.spec.Name, pod.Name, pod.Namespace, pod.UID),
		}
	default:
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: waiting}
	}
	if c.lastTerm != nil {
		cs.LastTerminationState.Terminated = c.lastTerm.DeepCopy()
	}
	cs.Started = &started
	return cs
}

// errOtherPod: the name now belongs to a re-created pod.
var errOtherPod = errors.New("the pod was re-created with another UID")

// writeStatus writes the pod's status if it changed since the last write,
// with UpdateStatus (retried on conflicts; a failed write is retried after
// statusRetryDelay).
func (w *podWorker) writeStatus(ctx context.Context, pod *corev1.Pod) {
	if w.statusFailed && time.Now().Before(w.statusRetry) {
		return
	}
	st := w.status(pod, w.k.nodeIPs(ctx))
	if w.written != nil && apiequality.Semantic.DeepEqual(st, w.written) {
		return
	}
	pods := w.k.cfg.Client.CoreV1().Pods(pod.Namespace)
	cur := pod.DeepCopy()
	first := true
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		if !first {
			var err error
			if cur, err = pods.Get(ctx, pod.Name, metav1.GetOptions{}); err != nil {
				return err
			}
		}
		first = false
		if cur.UID != w.uid {
			return errOtherPod
		}
		cur.Status = mergeStatus(cur.Status, st)
		_, err := pods.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	switch {
	case err == nil:
	case apierrors.IsNotFound(err) || errors.Is(err, errOtherPod) || ctx.Err() != nil:
		return // deleted: the informer tells the worker
	default:
		w.statusFailed, w.statusRetry = true, time.Now().Add(statusRetryDelay)
		w.log.Warn("cannot update the pod status; will retry", "err", err, "retry_in", statusRetryDelay)
		return
	}
	if w.written == nil || w.written.Phase != st.Phase || w.written.PodIP != st.PodIP {
		w.log.Info("pod status", "phase", st.Phase, "pod_ip", st.PodIP, "host_ip", st.HostIP, "reason", st.Reason)
	}
	w.written, w.statusFailed = st, false
}

// mergeStatus puts the kubelet's parts of the status (ours) into the
// object's (cur), keeping what others own: QOS class, nominated node,
// conditions of other types (DisruptionTarget, readiness gates...).
func mergeStatus(cur corev1.PodStatus, ours *corev1.PodStatus) corev1.PodStatus {
	out := *cur.DeepCopy()
	out.Phase, out.Reason, out.Message = ours.Phase, ours.Reason, ours.Message
	out.HostIP, out.HostIPs = ours.HostIP, ours.HostIPs
	out.PodIP, out.PodIPs = ours.PodIP, ours.PodIPs
	out.StartTime = ours.StartTime
	out.ObservedGeneration = ours.ObservedGeneration
	out.InitContainerStatuses = ours.InitContainerStatuses
	out.ContainerStatuses = ours.ContainerStatuses
	for _, c := range ours.Conditions {
		found := false
		for i := range out.Conditions {
			if out.Conditions[i].Type == c.Type {
				out.Conditions[i], found = c, true
			}
		}
		if !found {
			out.Conditions = append(out.Conditions, c)
		}
	}
	return out
}
