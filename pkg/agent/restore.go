package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sort"
	"time"

	vecnetv1 "github.com/vecnet/vecnet/api/vecnet/v1"
	v3 "github.com/vecnet/vecnet/pkg/apis/projectcalico/v3"
	"github.com/vecnet/vecnet/pkg/ipam"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
)

// Restoring pods after a vecnetd restart.
//
// vecnetd owns the pods' tun devices; when it exits (upgrade, crash) the
// devices go with it. The agent then re-creates every attachment of this
// node that still has a live pod and a network namespace, with the same
// addresses: the allocations in the IPAM blocks say which (their
// attributes carry the container id, interface name and netns path that
// Add recorded), so the agent needs no state file of its own. Calico/VPP's
// agent does the same after VPP restarts, from its local pod cache.

const workRestore = "restore"

// attachment is a pod interface as recorded in IPAM.
type attachment struct {
	handle string
	attrs  map[string]string
	addrs  []netip.Prefix
}

// nodeAttachments reads this node's attachments from the blocks informer.
func (a *Agent) nodeAttachments() (map[string]*attachment, error) {
	objs, err := a.blocks.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	out := map[string]*attachment{}
	for _, o := range objs {
		u, ok := o.(*unstructured.Unstructured)
		if !ok {
			continue
		}
		var b v3.IPAMBlock
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &b); err != nil {
			continue
		}
		for _, al := range ipam.BlockAllocations(&b) {
			if al.Attrs["node"] != a.cfg.NodeName || al.Attrs["netns"] == "" {
				continue
			}
			att := out[al.HandleID]
			if att == nil {
				att = &attachment{handle: al.HandleID, attrs: al.Attrs}
				out[al.HandleID] = att
			}
			att.addrs = append(att.addrs, netip.PrefixFrom(al.Addr, al.Addr.BitLen()))
		}
	}
	return out, nil
}

// restorePods re-creates attachments vecnetd does not have.
func (a *Agent) restorePods(ctx context.Context) error {
	if a.ready.check() != nil {
		return fmt.Errorf("not ready")
	}
	atts, err := a.nodeAttachments()
	if err != nil {
		return err
	}
	l, err := a.dp.ListInterfaces(ctx, &vecnetv1.ListInterfacesRequest{})
	if err != nil {
		return vecnetdError(err, a.cfg.VecnetdSocket)
	}
	have := map[string]bool{}
	for _, i := range l.GetInterfaces() {
		have[i.GetName()] = true
	}
	slog.Debug("restore: checking", "attachments", len(atts), "vecnetd_interfaces", len(have))
	restored := 0
	for _, att := range atts {
		name := podInterfaceName(att.attrs["container"], att.attrs["ifname"])
		if have[name] {
			continue
		}
		if _, err := os.Stat(att.attrs["netns"]); err != nil {
			continue // the sandbox is gone: GC or the runtime's DEL will release it
		}
		if ns, pod := att.attrs["namespace"], att.attrs["pod"]; pod != "" {
			p, err := a.getPod(ctx, ns, pod)
			if err != nil || (att.attrs["uid"] != "" && string(p.UID) != att.attrs["uid"]) {
				continue
			}
		}
		// The informer may lag a DEL that released the addresses a moment
		// ago: confirm the reservation with a consistent read.
		if ips, err := a.ipam.IPsByHandle(ctx, att.handle); err != nil || len(ips) == 0 {
			continue
		}
		sort.Slice(att.addrs, func(i, j int) bool { return att.addrs[i].Addr().Less(att.addrs[j].Addr()) })
		var hostAddrs []string
		for _, p := range att.addrs {
			hostAddrs = append(hostAddrs, p.String())
		}
		mtu := uint32(a.cfg.MTU)
		if _, err := fmt.Sscan(att.attrs["mtu"], &mtu); err != nil {
			mtu = uint32(a.cfg.MTU)
		}
		_, err := a.dp.CreateInterface(ctx, &vecnetv1.CreateInterfaceRequest{
			Kind: vecnetv1.InterfaceKind_INTERFACE_KIND_TUN, Netns: att.attrs["netns"], HostIf: att.attrs["ifname"],
			HostAddrs: hostAddrs, Mtu: mtu, Name: name,
		})
		if err != nil && status.Code(err) != codes.AlreadyExists {
			slog.Warn("restore: could not re-create a pod interface", "pod", att.attrs["namespace"]+"/"+att.attrs["pod"], "interface", name, "err", status.Convert(err).Message())
			continue
		}
		restored++
		slog.Info("restore: pod interface re-created after a vecnetd restart", "pod", att.attrs["namespace"]+"/"+att.attrs["pod"], "interface", name, "addrs", hostAddrs)
	}
	if restored > 0 {
		slog.Info("restore: done", "restored", restored)
	}
	return nil
}

// vecnetdRestarted tells whether vecnetd restarted since the last check,
// from its start time (now minus its uptime): uptime alone cannot tell a
// young vecnetd from a restarted one.
func (a *Agent) vecnetdRestarted(ctx context.Context) bool {
	rt, err := a.dp.GetRuntime(ctx, &vecnetv1.GetRuntimeRequest{})
	if err != nil {
		return false
	}
	started := time.Now().Add(-time.Duration(rt.GetUptimeNs()))
	a.upMu.Lock()
	defer a.upMu.Unlock()
	// Clock reads on both sides jitter by far less than a second.
	restarted := !a.vecnetdStart.IsZero() && started.Sub(a.vecnetdStart) > 500*time.Millisecond
	a.vecnetdStart = started
	return restarted
}
