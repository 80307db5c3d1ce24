package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"time"

	cniv1 "github.com/vecnet/vecnet/api/cni/v1"
	vecnetv1 "github.com/vecnet/vecnet/api/vecnet/v1"
	"github.com/vecnet/vecnet/pkg/ipam"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// cniServer serves the vecnet CNI plugin (api/cni/v1).
type cniServer struct {
	cniv1.UnimplementedCNIServer
	a *Agent
}

// handleID names an attachment's address reservation, like Calico's
// "k8s-pod-network.<container id>" but with the interface name so that a
// pod may have several vecnet interfaces.
func handleID(network, containerID, ifname string) string {
	return sanitize(network) + "." + strings.ToLower(containerID) + "." + sanitize(ifname)
}

var notDNS = regexp.MustCompile(`[^a-z0-9-]`)

func sanitize(s string) string { return notDNS.ReplaceAllString(strings.ToLower(s), "-") }

func (s *cniServer) observe(op string, start time.Time, err error) {
	s.a.metrics.requests.WithLabelValues(op, status.Code(err).String()).Inc()
	s.a.metrics.latency.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

func invalidArg(field, format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, "%s: %s", field, fmt.Sprintf(format, args...))
}

func checkAttachment(at *cniv1.Attachment, needNetns bool) error {
	if at == nil {
		return invalidArg("attachment", "missing")
	}
	if at.GetContainerId() == "" {
		return invalidArg("attachment.container_id", "CNI_CONTAINERID is empty")
	}
	if at.GetIfname() == "" || len(at.GetIfname()) > 15 {
		return invalidArg("attachment.ifname", "CNI_IFNAME %q must be 1 to 15 characters", at.GetIfname())
	}
	if at.GetNetwork() == "" {
		return invalidArg("attachment.network", "the network configuration has no name")
	}
	if needNetns {
		if !strings.HasPrefix(at.GetNetns(), "/") {
			return invalidArg("attachment.netns", "CNI_NETNS %q must be an absolute path", at.GetNetns())
		}
		if _, err := os.Stat(at.GetNetns()); err != nil {
			return invalidArg("attachment.netns", "CNI_NETNS %s: %v", at.GetNetns(), err)
		}
	}
	return nil
}

// Add allocates the pod's addresses and has vecnetd create its interface.
func (s *cniServer) Add(ctx context.Context, r *cniv1.AddRequest) (resp *cniv1.AddResponse, err error) {
	start := time.Now()
	defer func() { s.observe("add", start, err) }()
	at := r.GetAttachment()
	if err := checkAttachment(at, true); err != nil {
		return nil, err
	}
	a := s.a
	if err := a.ready.check(); err != nil {
		return nil, status.Errorf(codes.Unavailable, "vecnet-agent is not ready: %v", err)
	}
	log := slog.With("op", "add", "container", short(at.GetContainerId()), "ifname", at.GetIfname(),
		"pod", at.GetPod().GetNamespace()+"/"+at.GetPod().GetName())
	name := podInterfaceName(at.GetContainerId(), at.GetIfname())
	if _, err := a.interfaceByName(ctx, name); err == nil {
		return nil, status.Errorf(codes.AlreadyExists, "attachment %s/%s already exists (vecnetd interface %s); the runtime must DEL before a second ADD", short(at.GetContainerId()), at.GetIfname(), name)
	}

	tPod := time.Now()
	req, attrs, err := a.podAddressRequest(ctx, at)
	if err != nil {
		return nil, err
	}
	handle := handleID(at.GetNetwork(), at.GetContainerId(), at.GetIfname())
	mtu := uint32(a.cfg.MTU)
	if m := at.GetOptions().GetMtu(); m != 0 {
		mtu = m
	} else if mtu == 0 {
		mtu = a.autoMTU(ctx)
	}
	// What it takes to re-create the interface after a vecnetd restart
	// (restore.go), kept with the allocation.
	attrs["netns"] = at.GetNetns()
	attrs["mtu"] = fmt.Sprint(mtu)
	tIPAM := time.Now()
	addrs, err := a.assign(ctx, handle, req, attrs)
	log.Debug("add timing", "pod", tIPAM.Sub(tPod), "ipam", time.Since(tIPAM), "before", tPod.Sub(start))
	if err != nil {
		log.Warn("address assignment failed", "err", err)
		return nil, err
	}
	// From here on, a failure must give the addresses back.
	defer func() {
		if err != nil {
			rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, rerr := a.ipam.ReleaseByHandle(rctx, handle); rerr != nil {
				log.Error("could not release addresses after a failed add; GC will", "handle", handle, "err", rerr)
			}
		}
	}()
	var hostAddrs []string
	for _, p := range addrs {
		hostAddrs = append(hostAddrs, p.String())
	}
	ifc, err := a.dp.CreateInterface(ctx, &vecnetv1.CreateInterfaceRequest{
		Kind:      vecnetv1.InterfaceKind_INTERFACE_KIND_TUN,
		Netns:     at.GetNetns(),
		HostIf:    at.GetIfname(),
		HostAddrs: hostAddrs,
		Mtu:       mtu,
		Name:      name,
	})
	if err != nil {
		log.Warn("vecnetd could not create the interface", "err", err)
		return nil, vecnetdError(err, a.cfg.VecnetdSocket)
	}
	res := &cniv1.Result{
		Interfaces: []*cniv1.Interface{{Name: at.GetIfname(), Sandbox: at.GetNetns()}},
		Mtu:        ifc.GetMtu(),
	}
	for _, p := range addrs {
		idx := uint32(0)
		res.Ips = append(res.Ips, &cniv1.IPConfig{Address: p.String(), Interface: &idx})
		dst := "0.0.0.0/0"
		if p.Addr().Is6() {
			dst = "::/0"
		}
		res.Routes = append(res.Routes, &cniv1.Route{Dst: dst})
	}
	log.Info("pod attached", "interface", name, "addrs", hostAddrs, "duration", time.Since(start))
	return &cniv1.AddResponse{Result: res}, nil
}

// podAddressRequest reads what the pod (and its namespace) ask for.
func (a *Agent) podAddressRequest(ctx context.Context, at *cniv1.Attachment) (addressRequest, map[string]string, error) {
	attrs := map[string]string{"node": a.cfg.NodeName, "container": at.GetContainerId(), "ifname": at.GetIfname()}
	var podAnn, nsAnn map[string]string
	if p := at.GetPod(); p.GetName() != "" {
		attrs["namespace"], attrs["pod"] = p.GetNamespace(), p.GetName()
		pod, err := a.getPod(ctx, p.GetNamespace(), p.GetName())
		if err != nil {
			return addressRequest{}, nil, err
		}
		if p.GetUid() != "" && string(pod.UID) != p.GetUid() {
			return addressRequest{}, nil, status.Errorf(codes.FailedPrecondition, "pod %s/%s has uid %s, not %s: it was deleted and re-created", p.GetNamespace(), p.GetName(), pod.UID, p.GetUid())
		}
		attrs["uid"] = string(pod.UID)
		podAnn = pod.Annotations
		if ns, err := a.getNamespace(ctx, p.GetNamespace()); err == nil {
			nsAnn = ns.Annotations
		}
	}
	if ann := at.GetRuntimeConfig().GetPodAnnotations(); podAnn == nil && ann != nil {
		podAnn = ann
	}
	req, err := parseAnnotations(podAnn, nsAnn)
	if err != nil {
		return req, nil, invalidArg("pod.annotations", "%v", err)
	}
	for i, s := range at.GetRuntimeConfig().GetIps() {
		pfx, err := netip.ParsePrefix(s)
		var ip netip.Addr
		if err == nil {
			ip = pfx.Addr()
		} else if ip, err = netip.ParseAddr(s); err != nil {
			return req, nil, invalidArg(fmt.Sprintf("attachment.runtime_config.ips[%d]", i), "%q is not an IP address", s)
		}
		req.Fixed = append(req.Fixed, ip)
	}
	return req, attrs, nil
}

func (a *Agent) getPod(ctx context.Context, ns, name string) (*corev1.Pod, error) {
	if p, err := a.podLister.Pods(ns).Get(name); err == nil {
		return p, nil
	}
	// The informer may not have seen a pod created a moment ago.
	p, err := a.kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, status.Errorf(codes.NotFound, "pod %s/%s does not exist in the Kubernetes API", ns, name)
	}
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "reading pod %s/%s from the Kubernetes API: %v", ns, name, err)
	}
	return p, nil
}

func (a *Agent) getNamespace(ctx context.Context, name string) (*corev1.Namespace, error) {
	if n, err := a.nsLister.Get(name); err == nil {
		return n, nil
	}
	return a.kube.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
}

// assign reserves the attachment's addresses: the fixed ones asked for, or
// one per address family for which an enabled pool exists.
func (a *Agent) assign(ctx context.Context, handle string, req addressRequest, attrs map[string]string) ([]netip.Prefix, error) {
	// A retried Add (the plugin timed out, the runtime tried again after a
	// DEL that failed) finds its reservation and reuses it.
	if prev, err := a.ipam.IPsByHandle(ctx, handle); err == nil && len(prev) > 0 {
		var out []netip.Prefix
		for _, ip := range prev {
			out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
		}
		return out, nil
	}
	node, err := a.nodeLabels(ctx)
	if err != nil {
		return nil, err
	}
	if len(req.Fixed) > 0 {
		var out []netip.Prefix
		for _, ip := range req.Fixed {
			if err := a.ipam.AssignIP(ctx, ipam.AssignIPArgs{IP: ip, HandleID: handle, Node: a.cfg.NodeName, Attrs: attrs}); err != nil {
				_, _ = a.ipam.ReleaseByHandle(ctx, handle)
				return nil, ipamError(err)
			}
			out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
		}
		return out, nil
	}
	args := ipam.AssignArgs{HandleID: handle, Node: a.cfg.NodeName, NodeLabels: node, IPv4Pools: req.IPv4Pools, IPv6Pools: req.IPv6Pools, Attrs: attrs}
	// Pool annotations name the families a pod wants; otherwise it gets
	// one address of each family that has a pool for this node.
	has4, has6 := len(req.IPv4Pools) > 0, len(req.IPv6Pools) > 0
	if !has4 && !has6 {
		if has4, has6, err = a.ipam.Families(ctx, args); err != nil {
			return nil, status.Errorf(codes.Unavailable, "listing IPPools: %v", err)
		}
	}
	if !has4 && !has6 {
		return nil, status.Errorf(codes.FailedPrecondition, "no enabled IPPool selects node %s: create one (kubectl apply -f an IPPool with apiVersion projectcalico.org/v3)", a.cfg.NodeName)
	}
	if has4 {
		args.Num4 = 1
	}
	if has6 {
		args.Num6 = 1
	}
	got, err := a.ipam.AutoAssign(ctx, args)
	if err != nil {
		return nil, ipamError(err)
	}
	if (has4 && len(got.IPv4) == 0) || (has6 && len(got.IPv6) == 0) {
		_, _ = a.ipam.ReleaseByHandle(ctx, handle)
		return nil, status.Errorf(codes.ResourceExhausted, "no address left for node %s (IPv4 %d of 1, IPv6 %d of 1)", a.cfg.NodeName, len(got.IPv4), len(got.IPv6))
	}
	return append(got.IPv4, got.IPv6...), nil
}

func ipamError(err error) error {
	if errors.Is(err, ipam.ErrPoolExhausted) {
		return status.Error(codes.ResourceExhausted, err.Error())
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Errorf(codes.Internal, "IPAM: %v", err)
}

func vecnetdError(err error, socket string) error {
	st, _ := status.FromError(err)
	switch st.Code() {
	case codes.Unavailable:
		return status.Errorf(codes.Unavailable, "vecnetd is not reachable at %s: is it running on this node? (%s)", socket, st.Message())
	case codes.InvalidArgument:
		return status.Errorf(codes.InvalidArgument, "vecnetd: %s", st.Message())
	case codes.AlreadyExists:
		return status.Errorf(codes.AlreadyExists, "vecnetd: %s", st.Message())
	}
	return status.Errorf(codes.Internal, "vecnetd: %s", st.Message())
}

// Del removes the interface and releases the addresses; both are
// idempotent, so a repeated or partial Del succeeds.
func (s *cniServer) Del(ctx context.Context, r *cniv1.DelRequest) (_ *cniv1.DelResponse, err error) {
	start := time.Now()
	defer func() { s.observe("del", start, err) }()
	at := r.GetAttachment()
	if err := checkAttachment(at, false); err != nil {
		return nil, err
	}
	a := s.a
	name := podInterfaceName(at.GetContainerId(), at.GetIfname())
	if _, err := a.dp.DeleteInterface(ctx, &vecnetv1.DeleteInterfaceRequest{Name: name}); err != nil && status.Code(err) != codes.NotFound {
		return nil, vecnetdError(err, a.cfg.VecnetdSocket)
	}
	released, err := a.ipam.ReleaseByHandle(ctx, handleID(at.GetNetwork(), at.GetContainerId(), at.GetIfname()))
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "releasing addresses: %v", err)
	}
	slog.Info("pod detached", "op", "del", "container", short(at.GetContainerId()), "ifname", at.GetIfname(), "interface", name, "released", released, "duration", time.Since(start))
	return &cniv1.DelResponse{}, nil
}

// Check compares prev_result with the reservation and vecnetd's interface.
func (s *cniServer) Check(ctx context.Context, r *cniv1.CheckRequest) (_ *cniv1.CheckResponse, err error) {
	start := time.Now()
	defer func() { s.observe("check", start, err) }()
	at := r.GetAttachment()
	if err := checkAttachment(at, true); err != nil {
		return nil, err
	}
	a := s.a
	name := podInterfaceName(at.GetContainerId(), at.GetIfname())
	ifc, err := a.interfaceByName(ctx, name)
	if err != nil {
		return nil, err
	}
	ips, err := a.ipam.IPsByHandle(ctx, handleID(at.GetNetwork(), at.GetContainerId(), at.GetIfname()))
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "reading the address reservation: %v", err)
	}
	have := map[string]bool{}
	for _, ip := range ips {
		have[netip.PrefixFrom(ip, ip.BitLen()).String()] = true
	}
	for _, h := range ifc.GetHostAddrs() {
		if !have[h] {
			return nil, status.Errorf(codes.FailedPrecondition, "interface %s has address %s that is not reserved for this attachment", name, h)
		}
	}
	for _, ipc := range r.GetPrevResult().GetIps() {
		if !have[ipc.GetAddress()] {
			return nil, status.Errorf(codes.FailedPrecondition, "prevResult address %s is not reserved for this attachment (reserved: %v)", ipc.GetAddress(), ips)
		}
	}
	if ifc.GetNetns() != at.GetNetns() {
		return nil, status.Errorf(codes.FailedPrecondition, "interface %s is in netns %s, not %s", name, ifc.GetNetns(), at.GetNetns())
	}
	return &cniv1.CheckResponse{}, nil
}

func (a *Agent) interfaceByName(ctx context.Context, name string) (*vecnetv1.Interface, error) {
	l, err := a.dp.ListInterfaces(ctx, &vecnetv1.ListInterfacesRequest{})
	if err != nil {
		return nil, vecnetdError(err, a.cfg.VecnetdSocket)
	}
	for _, i := range l.GetInterfaces() {
		if i.GetName() == name {
			return i, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "no vecnetd interface %s for this attachment", name)
}

// Status is ready when vecnetd answers and the agent is synced.
func (s *cniServer) Status(ctx context.Context, r *cniv1.StatusRequest) (*cniv1.StatusResponse, error) {
	if err := s.a.ready.check(); err != nil {
		return &cniv1.StatusResponse{Ready: false, Message: err.Error(), ExistingPodsAffected: strings.Contains(err.Error(), "vecnetd")}, nil
	}
	if _, err := s.a.dp.ListVrfs(ctx, &vecnetv1.ListVrfsRequest{}); err != nil {
		return &cniv1.StatusResponse{Ready: false, Message: fmt.Sprintf("vecnetd is not reachable at %s", s.a.cfg.VecnetdSocket), ExistingPodsAffected: true}, nil
	}
	return &cniv1.StatusResponse{Ready: true}, nil
}

// GC releases attachments of network that the runtime no longer has.
func (s *cniServer) GC(ctx context.Context, r *cniv1.GCRequest) (_ *cniv1.GCResponse, err error) {
	start := time.Now()
	defer func() { s.observe("gc", start, err) }()
	a := s.a
	validIf := map[string]bool{}
	validHandle := map[string]bool{}
	for _, k := range r.GetValidAttachments() {
		validIf[podInterfaceName(k.GetContainerId(), k.GetIfname())] = true
		validHandle[handleID(r.GetNetwork(), k.GetContainerId(), k.GetIfname())] = true
	}
	var errs []error
	released := 0
	l, err := a.dp.ListInterfaces(ctx, &vecnetv1.ListInterfacesRequest{})
	if err != nil {
		return nil, vecnetdError(err, a.cfg.VecnetdSocket)
	}
	for _, i := range l.GetInterfaces() {
		if isPodInterface(i.GetName()) && !validIf[i.GetName()] {
			if _, err := a.dp.DeleteInterface(ctx, &vecnetv1.DeleteInterfaceRequest{Name: i.GetName()}); err != nil && status.Code(err) != codes.NotFound {
				errs = append(errs, fmt.Errorf("interface %s: %v", i.GetName(), err))
			}
		}
	}
	prefix := sanitize(r.GetNetwork()) + "."
	n, err := a.ipam.GC(ctx, func(handle string, attrs map[string]string) bool {
		if !strings.HasPrefix(handle, prefix) || attrs["node"] != a.cfg.NodeName {
			return true // another network's or node's: not ours to judge
		}
		return validHandle[handle]
	})
	released += n
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, status.Errorf(codes.Internal, "gc: %v", errors.Join(errs...))
	}
	slog.Info("cni gc", "network", r.GetNetwork(), "valid", len(r.GetValidAttachments()), "released", released)
	return &cniv1.GCResponse{Released: uint32(released)}, nil
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// tunnelOverhead is what the largest encapsulation vecnetd offers (VXLAN
// over IPv4: outer IPv4, UDP, VXLAN and inner Ethernet) takes from the
// uplink MTU. Pods get the same MTU whatever their routes use, so a route
// changing from routed to VXLAN never needs pods re-created.
const tunnelOverhead = 50

// autoMTU is the pod MTU when none is configured: the smallest uplink MTU
// less the tunnel overhead, or 1500 on a node without uplinks. It is read
// from vecnetd at most every few seconds.
func (a *Agent) autoMTU(ctx context.Context) uint32 {
	a.mtuMu.Lock()
	defer a.mtuMu.Unlock()
	if a.mtuValue != 0 && time.Since(a.mtuAt) < 5*time.Second {
		return a.mtuValue
	}
	mtu := uint32(1500)
	resp, err := a.dp.ListInterfaces(ctx, &vecnetv1.ListInterfacesRequest{})
	if err != nil {
		slog.Warn("cannot read uplink MTUs from vecnetd; pod MTU 1500", "err", err)
		return mtu
	}
	found := false
	for _, i := range resp.GetInterfaces() {
		if i.GetKind() == vecnetv1.InterfaceKind_INTERFACE_KIND_UPLINK && i.GetMtu() > tunnelOverhead+1280 {
			if !found || i.GetMtu()-tunnelOverhead < mtu {
				mtu = i.GetMtu() - tunnelOverhead
			}
			found = true
		}
	}
	a.mtuValue, a.mtuAt = mtu, time.Now()
	return mtu
}
