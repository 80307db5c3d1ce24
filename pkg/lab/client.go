package lab

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/vecnet/vecnet/pkg/kubecluster"
	"github.com/vecnet/vecnet/pkg/lab/kubelet"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// ErrNotUp is returned by the commands that need a running lab.
var ErrNotUp = errors.New("no lab is up")

// Open returns the state of the running lab of stateDir and a client for
// its apiserver, or an error wrapping ErrNotUp that says how to start one.
func Open(stateDir string) (*State, kubernetes.Interface, error) {
	st, err := ReadState(stateDir)
	if errors.Is(err, os.ErrNotExist) {
		if supervisorPid(stateDir) != 0 {
			return nil, nil, fmt.Errorf("%w in %s yet: it is still starting (see %s)", ErrNotUp, stateDir, layout{stateDir}.progress())
		}
		return nil, nil, fmt.Errorf("%w in %s: start one with `%s`", ErrNotUp, stateDir, command("up", stateDir))
	}
	if err != nil {
		return nil, nil, err
	}
	if supervisorPid(stateDir) == 0 {
		return st, nil, fmt.Errorf("%w in %s: its supervisor (pid %d) is gone; `%s` cleans up, then `%s` starts a new one",
			ErrNotUp, stateDir, st.Supervisor, command("down", stateDir), command("up", stateDir))
	}
	rc, err := clientcmd.BuildConfigFromFlags("", st.Kubeconfig)
	if err != nil {
		return nil, nil, err
	}
	rc.Timeout = 30 * time.Second
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, nil, err
	}
	return st, cs, nil
}

// PodNetns returns the network namespace of pod namespace/name ("" for a
// hostNetwork pod), with errors that say what is wrong with the pod.
func PodNetns(ctx context.Context, st *State, cs kubernetes.Interface, namespace, name string) (string, error) {
	pod, err := cs.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", fmt.Errorf("pod %s/%s not found (list pods with `%s`)", namespace, name,
			command("kubectl get pods -A", st.Config.StateDir))
	}
	if err != nil {
		return "", err
	}
	if pod.Spec.HostNetwork {
		return "", nil
	}
	if pod.Spec.NodeName == "" {
		return "", fmt.Errorf("pod %s/%s is not scheduled to a node yet", namespace, name)
	}
	ns := kubelet.NetnsName(st.Prefix+"pod-", pod.UID)
	if _, err := os.Stat(filepath.Join(netnsDir, ns)); err != nil {
		return "", fmt.Errorf("pod %s/%s (phase %s on %s) has no network namespace %s yet; `%s` says why",
			namespace, name, pod.Status.Phase, pod.Spec.NodeName, ns, command("kubectl describe pod -n "+namespace+" "+name, st.Config.StateDir))
	}
	return ns, nil
}

// Exec runs argv inside the network namespace of a pod, replacing this
// process (stdin, terminal and exit status are the command's own).
func Exec(stateDir, namespace, pod string, argv []string) error {
	if len(argv) == 0 {
		return errors.New("no command: vecnet-lab exec POD -- COMMAND [ARGS...]")
	}
	if os.Geteuid() != 0 {
		return errors.New("vecnet-lab exec must run as root (it enters a network namespace)")
	}
	st, cs, err := Open(stateDir)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns, err := PodNetns(ctx, st, cs, namespace, pod)
	if err != nil {
		return err
	}
	if ns != "" {
		// ip netns exec also gives the command the namespace's view of
		// /sys, as a container would have.
		argv = append([]string{"ip", "netns", "exec", ns}, argv...)
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return err
	}
	return syscall.Exec(path, argv, os.Environ())
}

// Kubectl runs kubectl from the lab's Kubernetes build with the lab's
// kubeconfig, replacing this process. A missing kubectl is built with
// hack/kube-build.sh when the repository is at hand.
func Kubectl(stateDir string, args []string, stderr io.Writer) error {
	st, _, err := Open(stateDir)
	if err != nil {
		return err
	}
	bins, err := kubecluster.FindBinaries(st.Config.KubeBin, kubecluster.Kubectl)
	if err != nil {
		if bins, err = buildKubectl(st.Config.KubeBin, stderr); err != nil {
			return err
		}
	}
	env := append(os.Environ(), "KUBECONFIG="+st.Kubeconfig)
	argv := append([]string{kubecluster.Kubectl}, args...)
	return syscall.Exec(bins[kubecluster.Kubectl], argv, env)
}

// buildKubectl builds kubectl with hack/kube-build.sh if this runs from
// the repository (the working directory or the binary's, bin/, inside
// it), else says how.
func buildKubectl(kubeBin string, stderr io.Writer) (map[string]string, error) {
	cache := filepath.Join(cmp.Or(os.Getenv(kubecluster.EnvDir), kubecluster.DefaultCacheRoot), kubecluster.KubeVersion, "bin")
	if kubeBin != cache {
		// kube-build.sh builds into its cache, not where this lab looks.
		return nil, fmt.Errorf("kubectl is not in %s (the lab's --kube-bin): put one there, e.g. build it with `bash hack/kube-build.sh kubectl` (into %s) and copy it", kubeBin, cache)
	}
	script := findRepoFile(filepath.Join("hack", "kube-build.sh"))
	if script == "" {
		return nil, fmt.Errorf("kubectl is not built (not in %s): build it with `bash hack/kube-build.sh kubectl` in vecnet's repository (~1 min)", kubeBin)
	}
	fmt.Fprintf(stderr, "vecnet-lab: kubectl is not built yet: building it with `bash %s kubectl` (~1 min the first time)...\n", script)
	cmd := exec.Command("bash", script, kubecluster.Kubectl)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("building kubectl with %s: %w", script, err)
	}
	return kubecluster.FindBinaries(kubeBin, kubecluster.Kubectl)
}

// findRepoFile looks for rel in vecnet's repository: above the working
// directory, or above this binary (bin/vecnet-lab).
func findRepoFile(rel string) string {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		starts = append(starts, filepath.Dir(exe))
	}
	for _, d := range starts {
		for {
			p := filepath.Join(d, rel)
			if _, err := os.Stat(p); err == nil {
				if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
					return p
				}
			}
			parent := filepath.Dir(d)
			if parent == d {
				break
			}
			d = parent
		}
	}
	return ""
}

// Kubeconfig returns the path of the running lab's kubeconfig.
func Kubeconfig(stateDir string) (string, error) {
	st, _, err := Open(stateDir)
	if err != nil {
		return "", err
	}
	return st.Kubeconfig, nil
}

// Status prints the lab's nodes, pods, processes and uplinks.
func Status(stateDir string, out io.Writer) error {
	st, cs, err := Open(stateDir)
	if err != nil {
		if st != nil {
			printProcesses(out, stateDir)
		}
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fmt.Fprintf(out, "lab in %s: up since %s (%s), %d nodes, pools %s, encap %s, uplink driver %s\n",
		stateDir, st.Started.Format("15:04:05"), time.Since(st.Started).Round(time.Second), len(st.Nodes),
		strings.Join(st.Pools, ", "), st.Config.Encap, st.Config.Driver)
	fmt.Fprintf(out, "kube-apiserver %s, kubeconfig %s\n", st.APIServer, st.Kubeconfig)
	if st.Config.BGP() {
		fmt.Fprintf(out, "BGP on: default BGPConfiguration AS %d, node-to-node mesh; the agents run in their nodes' namespaces and reach the apiserver at %s (kubeconfig %s)\n",
			BGPASNumber, orDash(st.APIProxy), orDash(st.NodeKubeconfig))
	}
	fmt.Fprintln(out)

	tw := tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tREADY\tADDRESSES\tNETNS\tUPLINK (vecnetctl show uplinks)")
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing nodes: %w", err)
	}
	ready := map[string]string{}
	for _, n := range nodes.Items {
		ready[n.Name] = "Unknown"
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				ready[n.Name] = string(c.Status)
			}
		}
	}
	for _, n := range st.Nodes {
		r, ok := ready[n.Name]
		if !ok {
			r = "(no Node)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s,%s\t%s\t%s\n", n.Name, r, n.Addr4, n.Addr6, n.Netns, uplinkSummary(st.Config.BinDir, n.VecnetdSocket))
	}
	tw.Flush()
	if st.Config.BGP() {
		fmt.Fprintln(out)
		printBGP(ctx, out, st)
	}

	pods, err := cs.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing pods: %w", err)
	}
	fmt.Fprintln(out)
	if len(pods.Items) == 0 {
		fmt.Fprintf(out, "no pods (try `%s`)\n", command("kubectl run web --image=x --command -- iperf3 -s", stateDir))
	} else {
		tw = tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "NAMESPACE\tPOD\tNODE\tPHASE\tIPS")
		for _, p := range pods.Items {
			var ips []string
			for _, ip := range p.Status.PodIPs {
				ips = append(ips, ip.IP)
			}
			phase := string(p.Status.Phase)
			if p.DeletionTimestamp != nil {
				phase = "Terminating"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Namespace, p.Name, orDash(p.Spec.NodeName), phase, orDash(strings.Join(ips, ",")))
		}
		tw.Flush()
	}
	fmt.Fprintln(out)
	printProcesses(out, stateDir)
	return nil
}

// printBGP lists every node's BGP sessions, from the GoBGP API of the
// node's agent (vecnetctl show bgp inside the node's namespace).
func printBGP(ctx context.Context, out io.Writer, st *State) {
	tw := tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tBGP PEER\tAS\tTYPE\tSTATE\tSINCE")
	for _, n := range st.Nodes {
		ns := cmp.Or(n.AgentNetns, n.Netns)
		_, peers, _, err := NodeBGP(ctx, st.Config.BinDir, ns)
		switch {
		case err != nil:
			fmt.Fprintf(tw, "%s\t-\t-\t-\tspeaker not answering: %s\t-\n", n.Name, firstLine(err.Error()))
		case len(peers) == 0:
			fmt.Fprintf(tw, "%s\t(no peers)\t-\t-\t-\t-\n", n.Name)
		}
		for _, p := range peers {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", n.Name, p.Addr, orDash(p.AS), orDash(p.Type), orDash(p.State), orDash(p.Since))
		}
	}
	tw.Flush()
	if len(st.Nodes) > 0 {
		n := st.Nodes[0]
		fmt.Fprintf(out, "(routes: ip netns exec %s %s show bgp routes; vecnetctl --socket %s show routes --source bgp)\n",
			cmp.Or(n.AgentNetns, n.Netns), filepath.Join(st.Config.BinDir, "vecnetctl"), n.VecnetdSocket)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// uplinkSummary condenses `vecnetctl show uplinks` to one line per
// uplink: name, driver, mode, queues. Columns are cut at the header's
// offsets: the mode has spaces in it.
func uplinkSummary(binDir, socket string) string {
	out, err := vecnetctlOut(binDir, socket, "show", "uplinks")
	if err != nil {
		return "vecnetd not answering: " + firstLine(err.Error())
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	cols := []string{"Name", "Driver", "Mode", "Queues", "Addresses"}
	var offs []int
	for _, c := range cols {
		i := strings.Index(lines[0], c)
		if i < 0 {
			return strings.Join(strings.Fields(strings.Join(lines[1:], "; ")), " ")
		}
		offs = append(offs, i)
	}
	var parts []string
	for _, line := range lines[1:] {
		f := make([]string, len(cols)-1)
		for i := range f {
			if offs[i] < len(line) {
				f[i] = strings.TrimSpace(line[offs[i]:min(offs[i+1], len(line))])
			}
		}
		parts = append(parts, fmt.Sprintf("%s %s, %s, %s queue(s)", f[0], f[1], f[2], f[3]))
	}
	if len(parts) == 0 {
		return "no uplink"
	}
	return strings.Join(parts, "; ")
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// printProcesses lists the processes of the pid files: alive or not.
func printProcesses(out io.Writer, stateDir string) {
	l := layout{stateDir}
	tw := tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "PROCESS\tPID\tSTATE\tLOG")
	row := func(name string, pid int, log string) {
		state := "running"
		if !alive(pid) {
			state = "DEAD"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", name, pid, state, log)
	}
	row("supervisor", readPid(l.servePid()), l.serveLog())
	files, _ := filepath.Glob(filepath.Join(l.pids(), "*.pid"))
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".pid")
		row(name, readPid(f), processLog(l, name))
	}
	tw.Flush()
}

// processLog is where a process of the lab logs.
func processLog(l layout, name string) string {
	for _, p := range []string{"vecnetd-", "agent-"} {
		if node, ok := strings.CutPrefix(name, p); ok {
			return l.path("nodes", node, strings.TrimSuffix(p, "-")+".log")
		}
	}
	return l.path("kube", name+".log")
}
