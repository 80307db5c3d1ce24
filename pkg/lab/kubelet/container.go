package kubelet

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Restart backoff of crashed containers: 1s, 2s, 4s ... 30s. A container
// that ran longer than maxBackoff starts over at minBackoff.
const (
	minBackoff = time.Second
	maxBackoff = 30 * time.Second
)

// defaultPath is a container's PATH when the kubelet has none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// container is one container (or init container) of a pod and its
// current process. It belongs to the pod worker's goroutine.
type container struct {
	spec corev1.Container
	init bool

	cmd         *exec.Cmd // the running process; nil when none runs
	pid         int
	startedAt   metav1.Time
	containerID string // "lab://<pid>" of the current or last process
	starts      int    // processes started by this kubelet

	restartCount int32
	// restartOnAdopt: the pod was adopted after a kubelet restart; the
	// container's process (killed) ran before, so starting it again is a
	// restart.
	restartOnAdopt bool
	lastTerm       *corev1.ContainerStateTerminated // the previous process's end
	term           *corev1.ContainerStateTerminated // set once it will not run again
	nextStart      time.Time                        // not before (restart backoff)
	backoff        time.Duration
}

func (c *container) running() bool { return c.cmd != nil }
func (c *container) done() bool    { return c.term != nil }
func (c *container) succeeded() bool {
	return c.term != nil && c.term.ExitCode == 0
}

// exitEvent is a container process's end, sent by its waiter goroutine.
type exitEvent struct {
	c     *container
	pid   int
	state *os.ProcessState
}

// commandLine works out what a container runs: command and args with
// $(VAR) references expanded as Kubernetes does, the environment, and the
// working directory. Without an image there is no ENTRYPOINT or CMD: args
// alone are run as the command (an image without ENTRYPOINT), and neither
// runs `sleep infinity` so that the pod still has a process, as a pause
// container does; note says so.
func commandLine(pod *corev1.Pod, c *corev1.Container, podIPs, hostIPs []string) (argv, env []string, dir, note string) {
	vars := map[string]string{}
	set := func(k, v string) {
		if _, ok := vars[k]; !ok {
			env = append(env, k)
		}
		vars[k] = v
	}
	path := os.Getenv("PATH")
	if path == "" {
		path = defaultPath
	}
	set("PATH", path)
	set("HOME", "/root")
	set("HOSTNAME", pod.Name)
	for _, e := range c.Env {
		v := e.Value
		if e.ValueFrom != nil {
			var ok bool
			if v, ok = fieldRef(pod, e.ValueFrom, podIPs, hostIPs); !ok {
				continue
			}
		}
		set(e.Name, expand(v, vars))
	}
	argv = append(append([]string{}, c.Command...), c.Args...)
	for i := range argv {
		argv[i] = expand(argv[i], vars)
	}
	if len(argv) == 0 {
		argv = []string{"sleep", "infinity"}
		note = fmt.Sprintf("container %q has no command or args and images are not run by the lab kubelet: running `sleep infinity` (like a pause container)", c.Name)
	}
	for i, k := range env {
		env[i] = k + "=" + vars[k]
	}
	dir = c.WorkingDir
	if dir == "" {
		dir = "/"
	}
	return argv, env, dir, note
}

// fieldRef resolves the downward-API fields a lab pod is likely to use
// (env[].valueFrom.fieldRef); other valueFrom sources (secrets, config
// maps, resources) are not supported and the variable is left unset.
func fieldRef(pod *corev1.Pod, src *corev1.EnvVarSource, podIPs, hostIPs []string) (string, bool) {
	if src.FieldRef == nil {
		return "", false
	}
	first := func(s []string) string {
		if len(s) == 0 {
			return ""
		}
		return s[0]
	}
	switch p := src.FieldRef.FieldPath; p {
	case "metadata.name":
		return pod.Name, true
	case "metadata.namespace":
		return pod.Namespace, true
	case "metadata.uid":
		return string(pod.UID), true
	case "spec.nodeName":
		return pod.Spec.NodeName, true
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, true
	case "status.podIP":
		return first(podIPs), true
	case "status.podIPs":
		return strings.Join(podIPs, ","), true
	case "status.hostIP":
		return first(hostIPs), true
	case "status.hostIPs":
		return strings.Join(hostIPs, ","), true
	default:
		if k, ok := strings.CutPrefix(p, "metadata.labels['"); ok {
			return pod.Labels[strings.TrimSuffix(k, "']")], true
		}
		if k, ok := strings.CutPrefix(p, "metadata.annotations['"); ok {
			return pod.Annotations[strings.TrimSuffix(k, "']")], true
		}
	}
	return "", false
}

// expand replaces $(VAR) with vars[VAR] as the kubelet does in env values,
// command and args: an undefined variable is left as written, and $$ is a
// literal $ (so "$$(VAR)" gives "$(VAR)").
func expand(s string, vars map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString("$(")
				i++
				continue
			}
			name := s[i+2 : i+2+end]
			if v, ok := vars[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString("$(" + name + ")")
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// lookPath finds file in the container's PATH (from env), so that a
// missing command is reported as a start error of the container instead of
// a cryptic exit code from `ip netns exec`. Names with a slash are taken
// as they are, relative ones from dir.
func lookPath(file string, env []string, dir string) (string, error) {
	if strings.Contains(file, "/") {
		p := file
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if err := executable(p); err != nil {
			return "", err
		}
		return file, nil
	}
	path := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, d := range filepath.SplitList(path) {
		if d == "" {
			d = "."
		}
		p := filepath.Join(d, file)
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if executable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("executable file %q not found in $PATH (%s)", file, path)
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}

// terminatedState describes a process's end as the kubelet does: exit
// code, or 128+signal for a killed process.
func terminatedState(ps *os.ProcessState, startedAt metav1.Time, id string) *corev1.ContainerStateTerminated {
	code := int32(ps.ExitCode())
	var sig int32
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		sig = int32(ws.Signal())
		code = 128 + sig
	}
	reason := "Completed"
	if code != 0 {
		reason = "Error"
	}
	return &corev1.ContainerStateTerminated{
		ExitCode: code, Signal: sig, Reason: reason,
		StartedAt: startedAt, FinishedAt: metav1.Now(), ContainerID: id,
	}
}

// startError is the end of a container that could not be started (exit
// code 128, as runc reports it).
func startError(err error) *corev1.ContainerStateTerminated {
	now := metav1.Now()
	return &corev1.ContainerStateTerminated{ExitCode: 128, Reason: "StartError", Message: err.Error(), StartedAt: now, FinishedAt: now}
}

// openLog opens a container's log file, truncated for a new pod's first
// start, appended to on restarts (the file then holds every run, where
// the kubelet would keep the previous one apart).
func openLog(dir, name string, truncate bool) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_APPEND
	if truncate {
		flags |= os.O_TRUNC
	}
	return os.OpenFile(filepath.Join(dir, name+".log"), flags, 0o644)
}

// signalGroup signals a container's process group (its processes and
// their children that stayed in the group).
func signalGroup(pid int, sig syscall.Signal) {
	if pid <= 0 {
		return
	}
	if err := syscall.Kill(-pid, sig); errors.Is(err, syscall.ESRCH) {
		_ = syscall.Kill(pid, sig)
	}
}
