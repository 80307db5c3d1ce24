package kubelet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Termination grace: the pod's own, but at most maxGrace (the lab should
// not wait 30s per pod) and at least minGrace (the kubelet's floor, so a
// force deletion still gives SIGTERM a moment).
const (
	maxGrace = 10 * time.Second
	minGrace = 2 * time.Second
	// killWait is how long processes get to disappear after SIGKILL.
	killWait = 5 * time.Second
)

// podWorker runs one pod, in one goroutine (run), like the kubelet's pod
// workers: the informer only hands it the latest pod object, and all of the
// pod's state below the mutex belongs to that goroutine, so no step of a
// pod ever runs concurrently with another step of the same pod.
type podWorker struct {
	k   *kubelet
	uid types.UID
	log *slog.Logger

	mu       sync.Mutex
	pod      *corev1.Pod // latest object from the informer
	vanished bool        // the object is gone from the API

	kick    chan struct{}  // the pod changed
	exits   chan exitEvent // a container process ended
	stopped chan struct{}  // run returned

	started      bool       // the first sync ran
	rec          *podRecord // what is set up and must be undone; nil: nothing
	sandbox      bool       // netns and network are ready (or hostNetwork)
	ips          []string   // pod IPs, IPv4 first
	adopted      bool       // found Running after a kubelet restart
	netErr       string     // last network set-up failure
	netClean     bool       // a failed set-up was fully undone
	netBackoff   time.Duration
	netRetryAt   time.Time // next network set-up or tear-down attempt
	terminal     bool      // Succeeded or Failed: nothing runs again
	apiTerminal  bool      // already terminal when first seen: status left alone
	terminating  bool
	killed       bool
	inits, ctrs  []*container
	startTime    *metav1.Time
	conds        []corev1.PodCondition // last computed, for transition times
	written      *corev1.PodStatus     // last status written
	statusRetry  time.Time             // when a failed status write is retried
	statusFailed bool
}

func newPodWorker(k *kubelet, pod *corev1.Pod) *podWorker {
	return &podWorker{
		k:       k,
		uid:     pod.UID,
		pod:     pod, // before run starts: sync needs an object
		log:     k.log.With("pod", pod.Namespace+"/"+pod.Name, "uid", pod.UID),
		kick:    make(chan struct{}, 1),
		exits:   make(chan exitEvent),
		stopped: make(chan struct{}),
	}
}

// setPod records the latest object (or that it vanished) and wakes run.
func (w *podWorker) setPod(pod *corev1.Pod, vanished bool) {
	w.mu.Lock()
	w.pod = pod
	w.vanished = w.vanished || vanished
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *podWorker) snapshot() (*corev1.Pod, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pod, w.vanished
}

// run syncs the pod whenever something happens to it, until the pod is
// deleted and cleaned up (true) or ctx ends (false: everything is left
// running).
func (w *podWorker) run(ctx context.Context) bool {
	defer close(w.stopped)
	for {
		if w.sync(ctx) {
			return true
		}
		var wake <-chan time.Time
		var timer *time.Timer
		if d, ok := w.nextWake(); ok {
			timer = time.NewTimer(d)
			wake = timer.C
		}
		select {
		case <-ctx.Done():
			return false
		case <-w.kick:
		case ev := <-w.exits:
			w.onExit(ev)
		case <-wake:
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// nextWake is when run must sync again without an event: a restart after
// backoff, a network retry, a status write retry.
func (w *podWorker) nextWake() (time.Duration, bool) {
	var at time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && (at.IsZero() || t.Before(at)) {
			at = t
		}
	}
	if !w.terminal || w.rec != nil || w.terminating {
		consider(w.netRetryAt)
	}
	if w.statusFailed {
		consider(w.statusRetry)
	}
	for _, c := range append(w.inits, w.ctrs...) {
		if !c.running() && !c.done() {
			consider(c.nextStart)
		}
	}
	if at.IsZero() {
		return 0, false
	}
	return max(time.Until(at), 0), true
}

// sync moves the pod one step towards what its object asks for. It returns
// true once a deleted pod is cleaned up.
func (w *podWorker) sync(ctx context.Context) bool {
	pod, vanished := w.snapshot()
	if vanished || pod.DeletionTimestamp != nil {
		return w.terminate(ctx, pod, vanished)
	}
	if !w.started {
		w.begin(pod)
	}
	now := time.Now()
	if !w.terminal {
		if !w.sandbox && !now.Before(w.netRetryAt) {
			w.setUp(ctx, pod)
		}
		if w.sandbox {
			w.startDue(ctx, pod)
		}
		if w.allDone() {
			w.terminal = true
			w.log.Info("pod finished: all containers terminated and will not restart", "phase", w.phase())
		}
	}
	// A finished pod gives its address back, as the kubelet stops the
	// sandbox of a completed pod.
	if w.terminal && w.rec != nil && !now.Before(w.netRetryAt) {
		if err := w.k.tearDown(ctx, w.rec, w.log); err != nil {
			w.retryNet("tear-down of a finished pod failed", err)
		} else {
			w.k.removeRecord(w.uid)
			w.rec = nil
			w.netRetryAt = time.Time{}
		}
	}
	if !w.apiTerminal {
		w.writeStatus(ctx, pod)
	}
	return false
}

// begin is the first sync of a pod: it builds the containers and decides,
// from the pod's status and what is on the node, whether the pod is new,
// to be adopted (a previous kubelet ran it), or finished.
func (w *podWorker) begin(pod *corev1.Pod) {
	w.started = true
	for _, c := range pod.Spec.InitContainers {
		w.inits = append(w.inits, &container{spec: c, init: true})
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			w.log.Warn("sidecar init containers are run as ordinary init containers by the lab kubelet", "container", c.Name)
		}
	}
	for _, c := range pod.Spec.Containers {
		w.ctrs = append(w.ctrs, &container{spec: c})
	}
	w.conds = append([]corev1.PodCondition(nil), pod.Status.Conditions...)
	rec := w.k.record(pod)
	_, err := os.Stat(w.k.recordPath(pod.UID))
	recorded := err == nil
	nsThere := rec.Netns != "" && netnsExists(rec.Netns)

	switch phase := pod.Status.Phase; {
	case phase == corev1.PodSucceeded || phase == corev1.PodFailed:
		// Finished before: only make sure nothing is left.
		w.terminal, w.apiTerminal = true, true
		if recorded || nsThere {
			w.rec = rec
		}
		return
	case phase == corev1.PodRunning && len(pod.Status.PodIPs) > 0 && (nsThere || pod.Spec.HostNetwork):
		w.adopt(pod, rec)
	}
	if pod.Status.StartTime != nil {
		w.startTime = pod.Status.StartTime.DeepCopy()
	} else {
		now := metav1.Now()
		w.startTime = &now
	}
	// Containers that ran before (under a previous kubelet) keep their
	// counts and final states.
	restored := func(cs []*container, statuses []corev1.ContainerStatus) {
		for _, c := range cs {
			for _, st := range statuses {
				if st.Name != c.spec.Name {
					continue
				}
				c.restartCount = st.RestartCount
				c.lastTerm = st.LastTerminationState.Terminated
				switch t := st.State.Terminated; {
				case t != nil && !w.restarts(c, t.ExitCode):
					c.term = t.DeepCopy()
					c.containerID = t.ContainerID
				case t != nil || st.State.Running != nil:
					c.restartOnAdopt = true
				}
			}
		}
	}
	if pod.Status.Phase == corev1.PodRunning {
		restored(w.inits, pod.Status.InitContainerStatuses)
		restored(w.ctrs, pod.Status.ContainerStatuses)
	}
}

// adopt takes over a Running pod whose namespace is in place: no CNI ADD
// (its addresses are in its status and still attached). Its processes
// belonged to the previous kubelet and cannot be waited for, so they are
// killed and the containers started again.
func (w *podWorker) adopt(pod *corev1.Pod, rec *podRecord) {
	w.rec, w.sandbox, w.adopted = rec, true, true
	for _, ip := range pod.Status.PodIPs {
		w.ips = append(w.ips, ip.IP)
	}
	if err := w.k.writeRecord(rec); err != nil {
		w.log.Warn("cannot write the pod record", "err", err)
	}
	if rec.Netns == "" {
		// Nothing tells a hostNetwork pod's old processes from others'.
		w.log.Warn("adopting running hostNetwork pod: restarting its containers; its previous processes, if still running, are not stopped", "ips", w.ips)
		return
	}
	pids, _ := netnsPids(rec.Netns)
	w.log.Info("adopting running pod: keeping its netns and addresses, restarting its containers (processes are not adoptable)",
		"netns", rec.Netns, "ips", w.ips, "killing_pids", pids)
	if err := killNetnsPids(rec.Netns, killWait); err != nil {
		w.log.Warn("could not kill the previous processes", "err", err)
	}
}

// setUp makes the pod's netns and calls CNI ADD. On failure nothing is
// left behind (DEL, namespace removed, as containerd does) and it is
// retried with backoff.
func (w *podWorker) setUp(ctx context.Context, pod *corev1.Pod) {
	rec := w.k.record(pod)
	_, err := os.Stat(w.k.recordPath(pod.UID))
	// Recorded, and not known to be clean: an earlier kubelet set up
	// something.
	leftover := err == nil && !w.netClean
	if err := w.k.writeRecord(rec); err != nil {
		w.retryNet("cannot write the pod record", err)
		return
	}
	w.rec = rec
	if rec.Netns == "" {
		w.ips = w.k.nodeIPs(ctx)
		w.sandbox = true
		w.log.Info("hostNetwork pod: no netns, no CNI", "ips", w.ips)
		return
	}
	// A namespace or attachment left by an earlier attempt or kubelet
	// (say, the pod ran, and its netns went away): undo it first, so that
	// the ADD starts from nothing.
	if leftover || netnsExists(rec.Netns) {
		w.log.Info("pod network left by an earlier attempt: tearing it down first", "netns", rec.Netns)
		if err := w.k.tearDown(ctx, rec, w.log); err != nil {
			w.retryNet("tear-down of the earlier netns failed", err)
			return
		}
	}
	if err := createNetns(w.k.ip, rec.Netns); err != nil {
		w.retryNet("cannot create the pod netns", err)
		return
	}
	w.log.Info("netns created", "netns", rec.Netns, "path", NetnsPath(rec.Netns))
	start := time.Now()
	ips, err := w.k.cniAdd(ctx, rec, pod.Annotations)
	if err != nil {
		// Undo it all, as containerd does after a failed ADD.
		w.netClean = true
		if derr := w.k.cniDel(ctx, rec); derr != nil {
			w.netClean = false
			w.log.Warn("CNI DEL after the failed ADD failed", "err", derr)
		}
		if kerr := killNetnsPids(rec.Netns, killWait); kerr != nil {
			w.log.Warn("cannot empty the netns", "err", kerr)
		}
		if derr := deleteNetns(rec.Netns); derr != nil {
			w.netClean = false
			w.log.Warn("cannot delete the netns after the failed ADD", "err", derr)
		}
		w.retryNet("pod network set-up failed", err)
		return
	}
	w.ips, w.sandbox = ips, true
	w.netErr, w.netBackoff, w.netRetryAt = "", 0, time.Time{}
	w.log.Info("CNI ADD done", "ips", ips, "container_id", rec.ContainerID, "took", time.Since(start).Round(time.Millisecond))
}

// retryNet records a failed network step and schedules the next attempt.
func (w *podWorker) retryNet(what string, err error) {
	if w.netBackoff == 0 {
		w.netBackoff = minBackoff
	} else {
		w.netBackoff = min(2*w.netBackoff, maxBackoff)
	}
	w.netRetryAt = time.Now().Add(w.netBackoff)
	w.netErr = err.Error()
	w.log.Warn(what+"; will retry", "err", err, "retry_in", w.netBackoff)
}

// startDue starts what should run now: init containers one at a time in
// order, then, once all succeeded, every container not running, not
// finished and past its backoff.
func (w *podWorker) startDue(ctx context.Context, pod *corev1.Pod) {
	now := time.Now()
	for _, c := range w.inits {
		if c.succeeded() {
			continue
		}
		if !c.running() && !c.done() && !now.Before(c.nextStart) {
			w.startProcess(ctx, pod, c)
		}
		return
	}
	for _, c := range w.ctrs {
		if !c.running() && !c.done() && !now.Before(c.nextStart) {
			w.startProcess(ctx, pod, c)
		}
	}
}

// startProcess starts a container's process in the pod netns, in its own
// process group, output to its log file.
func (w *podWorker) startProcess(ctx context.Context, pod *corev1.Pod, c *container) {
	if c.lastTerm != nil || c.restartOnAdopt {
		c.restartCount++
		c.restartOnAdopt = false
	}
	log := w.log.With("container", c.spec.Name)
	argv, env, dir, note := commandLine(pod, &c.spec, w.ips, w.k.nodeIPs(ctx))
	fail := func(err error) {
		log.Warn("container failed to start", "err", err)
		w.ended(c, startError(err))
	}
	logDir := filepath.Join(w.k.cfg.RunDir, pod.Namespace+"_"+pod.Name)
	f, err := openLog(logDir, c.spec.Name, c.starts == 0 && c.restartCount == 0 && !w.adopted)
	if err != nil {
		fail(fmt.Errorf("container log: %w", err))
		return
	}
	defer f.Close()
	if note != "" {
		log.Info(note)
		fmt.Fprintf(f, "lab kubelet: %s\n", note)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		err = fmt.Errorf("workingDir %s: not a directory on the host (%v)", dir, err)
		fmt.Fprintf(f, "lab kubelet: cannot start: %v\n", err)
		fail(err)
		return
	}
	bin, err := lookPath(argv[0], env, dir)
	if err != nil {
		fmt.Fprintf(f, "lab kubelet: cannot start: %v\n", err)
		fail(err)
		return
	}
	var cmd *exec.Cmd
	if w.rec.Netns == "" {
		cmd = exec.Command(bin, argv[1:]...)
	} else {
		// ip execs the command in place: the pid is the container's.
		cmd = exec.Command(w.k.ip, append([]string{"netns", "exec", w.rec.Netns, bin}, argv[1:]...)...)
	}
	cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = env, dir, f, f
	// Its own process group: signalled as a whole, and not killed with
	// the lab CLI by a ^C to the terminal's process group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		fail(err)
		return
	}
	pid := cmd.Process.Pid
	c.cmd, c.pid, c.startedAt = cmd, pid, metav1.Now()
	c.containerID = fmt.Sprintf("lab://%d", pid)
	c.starts++
	c.nextStart = time.Time{}
	log.Info("container started", "pid", pid, "argv", argv, "restart_count", c.restartCount, "log", f.Name())
	go func() {
		_ = cmd.Wait()
		select {
		case w.exits <- exitEvent{c: c, pid: pid, state: cmd.ProcessState}:
		case <-w.stopped: // Run ended: nobody supervises the pod any more
		}
	}()
}

// onExit records a container process's end.
func (w *podWorker) onExit(ev exitEvent) {
	c := ev.c
	if c.cmd == nil || c.pid != ev.pid {
		return
	}
	c.cmd = nil
	t := terminatedState(ev.state, c.startedAt, c.containerID)
	w.log.Info("container exited", "container", c.spec.Name, "pid", ev.pid, "exit_code", t.ExitCode, "signal", t.Signal,
		"ran", t.FinishedAt.Sub(t.StartedAt.Time).Round(time.Millisecond))
	w.ended(c, t)
}

// restarts tells whether a container that ended with code restarts, per
// the pod's restartPolicy (init containers: only failures, unless Never).
func (w *podWorker) restarts(c *container, code int32) bool {
	pod, _ := w.snapshot()
	policy := pod.Spec.RestartPolicy
	if c.init {
		return code != 0 && policy != corev1.RestartPolicyNever
	}
	switch policy {
	case corev1.RestartPolicyNever:
		return false
	case corev1.RestartPolicyOnFailure:
		return code != 0
	}
	return true // Always, the default
}

// ended decides what follows a container's end: a restart after backoff
// or the final terminated state.
func (w *podWorker) ended(c *container, t *corev1.ContainerStateTerminated) {
	if w.terminating || !w.restarts(c, t.ExitCode) {
		c.term = t
		return
	}
	c.lastTerm = t
	ran := t.FinishedAt.Sub(t.StartedAt.Time)
	if c.backoff == 0 || ran >= maxBackoff {
		c.backoff = minBackoff
	} else {
		c.backoff = min(2*c.backoff, maxBackoff)
	}
	c.nextStart = time.Now().Add(c.backoff)
	w.log.Info("container will be restarted", "container", c.spec.Name, "exit_code", t.ExitCode, "backoff", c.backoff)
}

// allDone tells whether nothing of the pod will run again: an init
// container failed for good, or every container finished.
func (w *podWorker) allDone() bool {
	for _, c := range w.inits {
		if c.done() && !c.succeeded() {
			return true
		}
	}
	if len(w.ctrs) == 0 {
		return false
	}
	for _, c := range w.ctrs {
		if !c.done() {
			return false
		}
	}
	return true
}

// terminate carries out a deletion: SIGTERM, grace period, SIGKILL, CNI
// DEL, namespace removal, then the object's final delete (grace period 0),
// which is the kubelet's confirmation that the pod is gone. Each step is
// retried on the next sync if it fails; true once all are done.
func (w *podWorker) terminate(ctx context.Context, pod *corev1.Pod, vanished bool) bool {
	if !w.terminating {
		w.terminating = true
		w.netRetryAt, w.netBackoff = time.Time{}, 0
		if vanished {
			w.log.Info("pod object is gone from the API: cleaning up")
		} else {
			w.log.Info("pod deletion requested: stopping it", "grace", grace(pod))
		}
		if !w.started {
			// Deleted before this kubelet ran it (or while none ran):
			// undo whatever an earlier kubelet set up.
			w.started = true
			rec := w.k.record(pod)
			if _, err := os.Stat(w.k.recordPath(pod.UID)); err == nil || (rec.Netns != "" && netnsExists(rec.Netns)) {
				w.rec = rec
			}
		}
	}
	if !w.killed {
		if !w.stopContainers(ctx, grace(pod)) {
			return false // ctx ended
		}
		w.killed = true
	}
	if w.rec != nil {
		if time.Now().Before(w.netRetryAt) {
			return false
		}
		if err := w.k.tearDown(ctx, w.rec, w.log); err != nil {
			w.retryNet("tear-down of a deleted pod failed", err)
			return false
		}
		w.k.removeRecord(w.uid)
		w.rec = nil
	}
	if !vanished {
		zero := int64(0)
		err := w.k.cfg.Client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
			GracePeriodSeconds: &zero,
			Preconditions:      &metav1.Preconditions{UID: &w.uid},
		})
		// Conflict: the UID precondition failed, the name is another
		// pod's now: ours is gone.
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			if ctx.Err() == nil {
				w.retryNet("final delete of the pod object failed", err)
			}
			return false
		}
	}
	w.log.Info("pod deleted: processes stopped, network released, netns removed")
	return true
}

// grace is a deletion's grace period, within [minGrace, maxGrace].
func grace(pod *corev1.Pod) time.Duration {
	s := int64(30)
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		s = *pod.Spec.TerminationGracePeriodSeconds
	}
	if pod.DeletionGracePeriodSeconds != nil {
		s = *pod.DeletionGracePeriodSeconds
	}
	return min(max(time.Duration(s)*time.Second, minGrace), maxGrace)
}

// stopContainers sends SIGTERM to every running container's process group,
// waits up to grace for them to end, then SIGKILLs what is left. It
// returns false if ctx ended first.
func (w *podWorker) stopContainers(ctx context.Context, grace time.Duration) bool {
	running := func() (n int) {
		for _, c := range append(w.inits, w.ctrs...) {
			if c.running() {
				n++
			}
		}
		return n
	}
	if running() == 0 {
		return true
	}
	for _, c := range append(w.inits, w.ctrs...) {
		if c.running() {
			w.log.Info("sending SIGTERM", "container", c.spec.Name, "pid", c.pid)
			signalGroup(c.pid, syscall.SIGTERM)
		}
	}
	wait := func(d time.Duration) error {
		t := time.NewTimer(d)
		defer t.Stop()
		for running() > 0 {
			select {
			case ev := <-w.exits:
				w.onExit(ev)
			case <-t.C:
				return errors.New("timeout")
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	err := wait(grace)
	if ctx.Err() != nil {
		return false
	}
	if err == nil {
		return true
	}
	for _, c := range append(w.inits, w.ctrs...) {
		if c.running() {
			w.log.Info("grace period over: sending SIGKILL", "container", c.spec.Name, "pid", c.pid, "grace", grace)
			signalGroup(c.pid, syscall.SIGKILL)
		}
	}
	if err := wait(killWait); err != nil {
		if ctx.Err() != nil {
			return false
		}
		w.log.Warn("processes did not end after SIGKILL; going on", "err", err)
	}
	return true
}
