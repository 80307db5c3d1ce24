// Package baseline builds the kernel's own pod-network paths so that
// vecnet-lab can print vecnet's iperf3 throughput next to the kernel's,
// measured on the same machine in the same run. A number measured elsewhere,
// or on another day, says little on a shared 2-core VM; a reference built
// seconds before the measurement does.
//
// Two references are offered, mirroring test/bench:
//
//   - SameNode: Calico's same-node path (pods on veths into a routing
//     namespace with a /32 route per pod and proxy ARP for 169.254.1.1).
//   - CrossNodeVXLAN: flannel's (and Calico-VXLAN's) cross-node path (two
//     node namespaces on an underlay bridge, a kernel vxlan device per node
//     with static FDB and neighbour entries, Calico-style veth pods).
//
// Everything lives in network namespaces whose names start with
// Options.Prefix and nothing is created in the caller's namespace: deleting
// the namespaces deletes every link, and DeleteByPrefix can therefore clean
// up after a crash without any record of what was built. Addresses are taken
// from ranges the lab does not use (10.250.0.0/16 for pods,
// 192.168.250.0/24 for the underlay) so that a reader of `ip addr` never
// confuses the two networks.
//
// Everything is done with iproute2 (ip, bridge, ss) and sysctl run as
// commands, so an error names the exact command and its output, and a
// failing step can be replayed by hand.
package baseline

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options configure a kernel reference path.
type Options struct {
	// Prefix starts the name of every network namespace created, so that
	// DeleteByPrefix (and the lab's `down`) find leftovers after a crash.
	// It must be non-empty and made of letters, digits, '.', '_' and '-'.
	Prefix string
	// PodMTU is the MTU of the pods' interfaces. 0 means 1500 for SameNode
	// and 1450 (1500 less the VXLAN overhead) for CrossNodeVXLAN; use the
	// same value as the vecnet pods being compared, or the comparison is
	// between different packet sizes.
	PodMTU int
	// Log, if set, receives a line per topology built or removed.
	Log func(format string, args ...any)
}

// Path is a built reference path: iperf3 or ping from the Client namespace
// (whose pod address is ClientAddr, on eth0) to ServerAddr, which is in the
// Server namespace (also on eth0).
type Path struct {
	Client, Server         string // network namespace names
	ClientAddr, ServerAddr string
	Name                   string // for display, e.g. "kernel same-node (routed veth)"
}

// The gateway every Calico-style pod routes through. Nothing owns it; the
// node side of each pod veth answers ARP for it by proxy.
const podGateway = "169.254.1.1"

// vxlanVNI and vxlanPort are those of the kernel VXLAN path: 4789 is the
// IANA port flannel uses; the VNI is test/bench's (flannel's default is 1,
// but any value works on a path whose only VTEPs are its two nodes).
const (
	vxlanVNI  = 4096
	vxlanPort = 4789
	// vxlanOverhead is outer IPv4 + UDP + VXLAN + inner Ethernet.
	vxlanOverhead = 50
)

var prefixRE = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

func checkPrefix(prefix string) error {
	if prefix == "" {
		// An empty prefix would make DeleteByPrefix delete every
		// namespace on the machine.
		return errors.New("baseline: empty namespace prefix")
	}
	if !prefixRE.MatchString(prefix) || strings.HasPrefix(prefix, ".") {
		return fmt.Errorf("baseline: namespace prefix %q: use letters, digits, '.', '_' and '-' (not leading '.')", prefix)
	}
	return nil
}

func (o Options) logf(format string, args ...any) {
	if o.Log != nil {
		o.Log(format, args...)
	}
}

func unique() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// run runs a command and returns its combined output. The error names the
// command and carries its output, since "exit status 2" alone tells nothing.
func run(ctx context.Context, name string, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		msg := strings.TrimSpace(out.String())
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			// Killed by the context: say so rather than "signal: killed".
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		if msg != "" {
			return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
		}
		return out.String(), fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return out.String(), nil
}

// topo records the namespaces of one topology as they are created, so that
// a failure half-way, or the caller's cleanup, removes exactly those.
type topo struct {
	ctx  context.Context
	o    Options
	kind string // e.g. "sn", "xn": part of every namespace name
	id   string // one suffix per topology, to tell concurrent ones apart
	nss  []string
	err  error // the first failed step; later steps are skipped
}

func newTopo(ctx context.Context, o Options, kind string) (*topo, error) {
	if err := checkPrefix(o.Prefix); err != nil {
		return nil, err
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("baseline: needs iproute2's ip: %w", err)
	}
	return &topo{ctx: ctx, o: o, kind: kind, id: unique()}, nil
}

// do runs one setup step unless an earlier one failed. Collecting the
// first error lets the builders read as the list of commands they are.
func (t *topo) do(name string, args ...string) {
	if t.err != nil {
		return
	}
	_, t.err = run(t.ctx, name, args...)
}

// sysctl sets sysctls inside ns. `ip netns exec` remounts /sys and the
// net.* sysctls follow the caller's namespace, so this is ns's value.
func (t *topo) sysctl(ns string, kv ...string) {
	t.do("ip", append([]string{"netns", "exec", ns, "sysctl", "-qw"}, kv...)...)
}

// netns creates <prefix><kind>-<role>-<id> with lo up. It is recorded
// before `ip netns add` runs, so that cleanup does not miss a namespace
// whose creation was interrupted by the context (removeNetns skips names
// that do not exist).
func (t *topo) netns(role string) string {
	name := fmt.Sprintf("%s%s-%s-%s", t.o.Prefix, t.kind, role, t.id)
	if t.err != nil {
		return name
	}
	t.nss = append(t.nss, name)
	t.do("ip", "netns", "add", name)
	t.do("ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// cleanup returns the function that removes the topology. It is safe to
// call more than once and does not use the build's context, which may be
// cancelled by then.
func (t *topo) cleanup() func() error {
	var once sync.Once
	var err error
	nss := append([]string(nil), t.nss...)
	return func() error {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var errs []error
			for i := len(nss) - 1; i >= 0; i-- {
				errs = append(errs, removeNetns(ctx, nss[i]))
			}
			err = errors.Join(errs...)
			t.o.logf("kernel baseline: removed %s", strings.Join(nss, " "))
		})
		return err
	}
}

// finish returns the caller's cleanup, or removes what was built and
// returns the first error.
func (t *topo) finish(p *Path) (*Path, func() error, error) {
	clean := t.cleanup()
	if t.err != nil {
		if cerr := clean(); cerr != nil {
			return nil, nil, fmt.Errorf("%w (cleanup: %v)", t.err, cerr)
		}
		return nil, nil, t.err
	}
	return p, clean, nil
}

// listNetns returns the names of the named network namespaces.
func listNetns(ctx context.Context) ([]string, error) {
	out, err := run(ctx, "ip", "netns", "list")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, line := range strings.Split(out, "\n") {
		// Lines are "name" or "name (id: N)".
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names, nil
}

// removeNetns kills every process in ns and deletes it. A process left in
// it (an iperf3 server of a crashed run, say) would keep the namespace and
// its links alive after `ip netns del`, invisible to `ip netns list`. A
// namespace that no longer exists is not an error.
func removeNetns(ctx context.Context, ns string) error {
	names, err := listNetns(ctx)
	if err != nil {
		return err
	}
	found := false
	for _, n := range names {
		found = found || n == ns
	}
	if !found {
		return nil
	}
	var errs []error
	out, err := run(ctx, "ip", "netns", "pids", ns)
	if err != nil {
		errs = append(errs, err)
	}
	var pids []int
	for _, f := range strings.Fields(out) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
				errs = append(errs, fmt.Errorf("kill %d in netns %s: %w", pid, ns, err))
			}
		}
	}
	// Wait (briefly) until they have left the namespace, so that once
	// cleanup returns its links are gone too, not merely unnamed.
	for deadline := time.Now().Add(2 * time.Second); len(pids) > 0 && time.Now().Before(deadline); {
		out, err := run(ctx, "ip", "netns", "pids", ns)
		if err != nil || strings.TrimSpace(out) == "" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := run(ctx, "ip", "netns", "del", ns); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// DeleteByPrefix deletes every network namespace whose name starts with
// prefix, killing the processes inside first. It is for cleaning up after a
// crash, when the cleanup funcs of SameNode and CrossNodeVXLAN never ran.
func DeleteByPrefix(prefix string) error {
	if err := checkPrefix(prefix); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	names, err := listNetns(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			errs = append(errs, removeNetns(ctx, n))
		}
	}
	return errors.Join(errs...)
}
