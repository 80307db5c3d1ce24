package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/vecnet/vecnet/pkg/lab/baseline"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// DemoOptions tune Demo.
type DemoOptions struct {
	Seconds int  // length of each iperf3 run
	Keep    bool // leave the lab up at the end
}

// DemoNamespace holds the demo's pods.
const DemoNamespace = "vecnet-demo"

// demoPod is one pod of the demo, once Running.
type demoPod struct {
	name, node, netns string
	ips               []string
}

// Demo shows vecnet to a newcomer in a few minutes: it starts a lab, runs
// two iperf3 server pods on every node, pings every pod from every other,
// measures TCP throughput between pods on one node and on two nodes next
// to the kernel's own paths measured in the same run (pkg/lab/baseline),
// and takes the lab down again (unless Keep).
func Demo(ctx context.Context, cfg Config, o DemoOptions, out io.Writer) (err error) {
	if o.Seconds < 1 {
		return fmt.Errorf("--seconds %d: want at least 1", o.Seconds)
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := Preflight(&cfg, DemoTools...); err != nil {
		return err
	}
	if cfg.Nodes < 2 {
		return fmt.Errorf("--nodes %d: the demo needs at least 2 nodes (it measures cross-node traffic)", cfg.Nodes)
	}
	title(out, "1. starting the lab")
	if err := Up(ctx, cfg, out); err != nil {
		if errors.Is(err, ErrAlreadyUp) {
			return fmt.Errorf("the demo starts a lab of its own, but %w; or run the demo with another --state-dir", err)
		}
		return err
	}
	if !o.Keep {
		defer func() {
			title(out, "6. taking the lab down")
			if derr := Down(cfg.StateDir, out); derr != nil && err == nil {
				err = derr
			}
		}()
	} else {
		defer fmt.Fprintf(out, "\nthe lab stays up (--keep): `%s` to look around, `%s` to stop it\n",
			command("status", cfg.StateDir), command("down", cfg.StateDir))
	}
	st, cs, err := Open(cfg.StateDir)
	if err != nil {
		return err
	}

	title(out, "2. two pods per node, each running `iperf3 -s`")
	pods, err := demoPods(ctx, st, cs, out)
	if err != nil {
		return err
	}
	if st.Config.BGP() {
		waitBGPRoutes(ctx, st, pods, out)
	}

	title(out, "3. every pod pings every other pod")
	pingMatrix(ctx, pods, out)

	title(out, fmt.Sprintf("4. TCP throughput between pods: iperf3, one stream, %d s per run", o.Seconds))
	if err := throughput(ctx, st, pods, o.Seconds, out); err != nil {
		return err
	}

	title(out, "5. what happened on the way: node1's vecnetd")
	fmt.Fprintf(out, "(vecnetctl --socket %s show interfaces)\n", st.Nodes[0].VecnetdSocket)
	if s, err := vecnetctlOut(cfg.BinDir, st.Nodes[0].VecnetdSocket, "show", "interfaces"); err == nil {
		fmt.Fprint(out, s)
	} else {
		fmt.Fprintln(out, err)
	}
	if st.Config.BGP() {
		n := st.Nodes[0]
		fmt.Fprintf(out, "\n(ip netns exec %s vecnetctl show bgp: the BGP speaker of node1's agent)\n", n.AgentNetns)
		if _, _, s, err := NodeBGP(ctx, cfg.BinDir, n.AgentNetns); err == nil {
			fmt.Fprint(out, s)
		} else {
			fmt.Fprintln(out, err)
		}
		fmt.Fprintf(out, "\n(vecnetctl --socket %s show routes --source bgp: what it learned, in vecnetd)\n", n.VecnetdSocket)
		if s, err := vecnetctlOut(cfg.BinDir, n.VecnetdSocket, "show", "routes", "--source", "bgp"); err == nil {
			fmt.Fprint(out, s)
		} else {
			fmt.Fprintln(out, err)
		}
	}
	return ctx.Err()
}

// waitBGPRoutes waits (up to 30 s) until every node's vecnetd has a route
// of source bgp to every pod of the other nodes: with BGP, a pod's block
// reaches the other nodes after the pod runs, in an UPDATE. It only
// reports a timeout: the ping table shows what is missing.
func waitBGPRoutes(ctx context.Context, st *State, pods []demoPod, out io.Writer) {
	fmt.Fprintf(out, "waiting for BGP to carry every pod's block to the other nodes... ")
	t0 := time.Now()
	deadline := t0.Add(30 * time.Second)
	for {
		var missing []string
		for _, n := range st.Nodes {
			routes, err := bgpRoutePrefixes(st.Config.BinDir, n.VecnetdSocket)
			if err != nil {
				missing = append(missing, n.Name+": "+firstLine(err.Error()))
				continue
			}
			for _, p := range pods {
				if p.node == n.Name {
					continue
				}
				for _, ip := range p.ips {
					if !anyContains(routes, ip) {
						missing = append(missing, fmt.Sprintf("%s has no route to %s (%s)", n.Name, p.name, ip))
					}
				}
			}
		}
		if len(missing) == 0 {
			fmt.Fprintf(out, "ok (%.1fs)\n", time.Since(t0).Seconds())
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			fmt.Fprintf(out, "not all after %s: %s\n", time.Since(t0).Round(time.Second), strings.Join(missing, "; "))
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// bgpRoutePrefixes lists the prefixes of vecnetd's routes of source bgp.
func bgpRoutePrefixes(binDir, socket string) ([]netip.Prefix, error) {
	s, err := vecnetctlOut(binDir, socket, "show", "routes", "--source", "bgp")
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[len(f)-1] != "bgp" {
			continue
		}
		if p, err := netip.ParsePrefix(f[1]); err == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

func anyContains(prefixes []netip.Prefix, ip string) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// title prints a section title, in bold on a terminal.
func title(out io.Writer, s string) {
	if isTerminal(out) {
		fmt.Fprintf(out, "\n\033[1m== %s\033[0m\n", s)
		return
	}
	fmt.Fprintf(out, "\n== %s\n", s)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// demoPods creates the pods, two per node, placed with spec.nodeName so
// that the same-node and cross-node pairs are known, and waits until they
// run with addresses.
func demoPods(ctx context.Context, st *State, cs kubernetes.Interface, out io.Writer) ([]demoPod, error) {
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: DemoNamespace}},
		metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, err
	}
	var names []string
	for _, n := range st.Nodes {
		for _, x := range []string{"a", "b"} {
			name := fmt.Sprintf("iperf-%s-%s", n.Name, x)
			names = append(names, name)
			_, err := cs.CoreV1().Pods(DemoNamespace).Create(ctx, &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "iperf"}},
				Spec: corev1.PodSpec{
					NodeName:   n.Name,
					Containers: []corev1.Container{{Name: "iperf3", Image: "iperf3", Command: []string{"iperf3", "-s"}}},
				},
			}, metav1.CreateOptions{})
			if err != nil {
				return nil, fmt.Errorf("creating pod %s: %w", name, err)
			}
		}
	}
	fmt.Fprintf(out, "created %d pods in namespace %s; waiting for them to run... ", len(names), DemoNamespace)
	t0 := time.Now()
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var pods []demoPod
	for {
		pods = pods[:0]
		list, err := cs.CoreV1().Pods(DemoNamespace).List(wctx, metav1.ListOptions{LabelSelector: "app=iperf"})
		if err == nil {
			for _, p := range list.Items {
				if p.Status.Phase != corev1.PodRunning || len(p.Status.PodIPs) == 0 {
					continue
				}
				dp := demoPod{name: p.Name, node: p.Spec.NodeName}
				for _, ip := range p.Status.PodIPs {
					dp.ips = append(dp.ips, ip.IP)
				}
				if dp.netns, err = PodNetns(wctx, st, cs, DemoNamespace, p.Name); err != nil {
					continue
				}
				pods = append(pods, dp)
			}
		}
		if len(pods) == len(names) {
			break
		}
		select {
		case <-wctx.Done():
			fmt.Fprintln(out, "failed")
			return nil, fmt.Errorf("%d of %d pods running after 2 minutes; `%s` shows why",
				len(pods), len(names), command("kubectl describe pods -n "+DemoNamespace, st.Config.StateDir))
		case <-time.After(200 * time.Millisecond):
		}
	}
	fmt.Fprintf(out, "ok (%.1fs)\n", time.Since(t0).Seconds())
	// Creation order: node by node.
	order := map[string]int{}
	for i, n := range names {
		order[n] = i
	}
	sort.Slice(pods, func(i, j int) bool { return order[pods[i].name] < order[pods[j].name] })
	tw := tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "POD\tNODE\tIPS\tNETNS")
	for _, p := range pods {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.name, p.node, strings.Join(p.ips, ", "), p.netns)
	}
	tw.Flush()
	return pods, nil
}

// pingMatrix pings every address of every pod from every other pod and
// prints a table: ✓ when all of the destination's addresses answered.
func pingMatrix(ctx context.Context, pods []demoPod, out io.Writer) {
	type cell struct {
		ok   bool
		fail []string
	}
	res := make([][]cell, len(pods))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4) // the machine has 2 cores
	for i := range pods {
		res[i] = make([]cell, len(pods))
		for j := range pods {
			if i == j {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				c := cell{ok: true}
				for _, ip := range pods[j].ips {
					if ok, _ := baseline.Ping(ctx, pods[i].netns, ip); !ok {
						c.ok = false
						c.fail = append(c.fail, fmt.Sprintf("%s -> %s (%s)", pods[i].name, pods[j].name, ip))
					}
				}
				res[i][j] = c
			}()
		}
	}
	wg.Wait()
	tw := tabwriter.NewWriter(out, 0, 8, 1, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "from \\ to\t")
	for _, p := range pods {
		fmt.Fprintf(tw, "%s\t", short(p.name))
	}
	fmt.Fprintln(tw)
	var fails []string
	oks, total := 0, 0
	for i, p := range pods {
		fmt.Fprintf(tw, "%s\t", short(p.name))
		for j := range pods {
			switch {
			case i == j:
				fmt.Fprint(tw, "·\t")
			case res[i][j].ok:
				oks++
				total++
				fmt.Fprint(tw, "✓\t")
			default:
				total++
				fails = append(fails, res[i][j].fail...)
				fmt.Fprint(tw, "✗\t")
			}
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	fmt.Fprintf(out, "%d of %d pairs reachable (ping, %s)\n", oks, total, map[bool]string{true: "IPv4 and IPv6", false: "IPv4"}[len(pods[0].ips) > 1])
	for _, f := range fails {
		fmt.Fprintf(out, "  no answer: %s\n", f)
	}
}

// short drops the common "iperf-" of the demo's pod names for the table.
func short(name string) string { return strings.TrimPrefix(name, "iperf-") }

var mtuRE = regexp.MustCompile(`\bmtu (\d+)`)

// podMTU reads the MTU of a pod's eth0, so that the kernel baselines use
// the packet size vecnet's pods were given.
func podMTU(ctx context.Context, netns string) int {
	out, err := exec.CommandContext(ctx, "ip", "-n", netns, "-o", "link", "show", "eth0").Output()
	if err != nil {
		return 0
	}
	m := mtuRE.FindSubmatch(out)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// throughput measures a same-node and a cross-node pair of pods against
// the pods' own `iperf3 -s`, and the kernel's matching paths, built for
// the occasion with the pods' MTU.
func throughput(ctx context.Context, st *State, pods []demoPod, secs int, out io.Writer) error {
	same := [2]demoPod{pods[0], pods[1]}  // node1 a -> node1 b
	cross := [2]demoPod{pods[0], pods[2]} // node1 a -> node2 a
	mtu := podMTU(ctx, pods[0].netns)
	type row struct {
		what, path   string
		vecnet, kern float64
		kernName     string
		verr, kerr   error
	}
	rows := []*row{
		{what: "same node", path: fmt.Sprintf("%s → %s", same[0].name, same[1].name)},
		{what: "cross node", path: fmt.Sprintf("%s → %s (%s)", cross[0].name, cross[1].name, st.Config.Encap)},
	}
	opts := baseline.Options{Prefix: st.Prefix + "base-", PodMTU: mtu}
	builders := []func(context.Context, baseline.Options) (*baseline.Path, func() error, error){baseline.SameNode, baseline.CrossNodeVXLAN}
	for i, pair := range [][2]demoPod{same, cross} {
		r := rows[i]
		fmt.Fprintf(out, "%s, vecnet: %s... ", r.what, r.path)
		r.vecnet, r.verr = podIperf(ctx, pair[0].netns, pair[1].ips[0], secs)
		report(out, r.vecnet, r.verr)
		p, cleanup, err := builders[i](ctx, opts)
		if err != nil {
			r.kerr = err
			fmt.Fprintf(out, "%s, kernel: building the reference path failed: %v\n", r.what, err)
			continue
		}
		r.kernName = p.Name
		fmt.Fprintf(out, "%s, %s... ", r.what, p.Name)
		r.kern, r.kerr = baseline.Iperf3(ctx, p.Client, p.Server, p.ServerAddr, secs)
		report(out, r.kern, r.kerr)
		if err := cleanup(); err != nil {
			fmt.Fprintf(out, "removing the reference path: %v\n", err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "\tvecnet\tkernel\tvecnet/kernel\tkernel path (pod MTU %d)\n", mtu)
	for _, r := range rows {
		ratio := "-"
		if r.verr == nil && r.kerr == nil && r.kern > 0 {
			ratio = fmt.Sprintf("%.2f", r.vecnet/r.kern)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.what, gbps(r.vecnet, r.verr), gbps(r.kern, r.kerr), ratio, orDash(r.kernName))
	}
	tw.Flush()
	fmt.Fprintln(out, "(one run each on a shared machine: expect some noise; `make bench` measures properly)")
	return nil
}

func report(out io.Writer, bps float64, err error) {
	if err != nil {
		fmt.Fprintf(out, "failed: %v\n", err)
		return
	}
	fmt.Fprintf(out, "%.2f Gbit/s\n", bps/1e9)
}

func gbps(bps float64, err error) string {
	if err != nil {
		return "failed"
	}
	return fmt.Sprintf("%.2f Gbit/s", bps/1e9)
}

// podIperf runs an iperf3 client in netns against the `iperf3 -s` of the
// pod at addr (port 5201) and returns the receiver's bits per second.
func podIperf(ctx context.Context, netns, addr string, secs int) (float64, error) {
	return baseline.Client(ctx, netns, addr, 5201, secs)
}
