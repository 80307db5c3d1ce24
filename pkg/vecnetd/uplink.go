package vecnetd

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sort"
	"time"

	"github.com/vecnet/vecnet/pkg/dataplane/driver"
	"github.com/vecnet/vecnet/pkg/dataplane/driver/afpacket"
	"github.com/vecnet/vecnet/pkg/dataplane/driver/afxdp"
	"github.com/vecnet/vecnet/pkg/dataplane/driver/taptc"
	"github.com/vecnet/vecnet/pkg/dataplane/driver/tun"
	"github.com/vecnet/vecnet/pkg/dataplane/driver/uplinkfilter"
	"github.com/vecnet/vecnet/pkg/dataplane/node"
	"github.com/vecnet/vecnet/pkg/dataplane/tables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// An uplink is the node's NIC, shared with the host. Calico/VPP moves the
// NIC into VPP and gives the host a tap in its place, which breaks what
// the host had configured on it (DHCP leases, NetworkManager, udev names).
// vecnet leaves the NIC and its addresses to the kernel: an eBPF program
// (XDP for AF_XDP, tc for AF_PACKET) takes only the frames that belong to
// the dataplane — pod prefixes, and tunnel packets for the node address —
// and vecnetd follows the kernel's view of the link (addresses, state,
// MTU, neighbours) through netlink.

// Uplink drivers.
const (
	DriverAFXDP    = "af_xdp"
	DriverAFPacket = "af_packet"
	// DriverTap redirects the dataplane's frames between the uplink and
	// a tap with tc programs: the one driver that keeps VXLAN
	// super-packets whole (see driver/taptc).
	DriverTap  = "tap"
	DriverAuto = "auto"
)

type uplink struct {
	name    string
	ifindex int // kernel
	index   uint32
	driver  string
	mode    string // how the driver attached, for show interfaces
	filter  *uplinkfilter.Set
	queues  []driver.Queue
	tap     *taptc.Tap
	closers []func() error
	mac     [6]byte

	// Kernel state, written by the follow goroutine under d.mu: the
	// filters, the tables and Uplinks read it.
	addrs []netip.Prefix
	gw4   netip.Addr
	gw6   netip.Addr
	done  chan struct{}
	stop  chan struct{}
}

// UplinkInfo describes an uplink for the API.
type UplinkInfo struct {
	Name, Driver, Mode string
	Queues             int
	Addrs              []netip.Prefix
	Gateway4, Gateway6 netip.Addr
}

// ErrUplinkExists is returned when the uplink is already attached.
var ErrUplinkExists = errors.New("uplink already attached")

// AddUplink attaches vecnetd to the host interface name with drv
// (af_xdp, af_packet or auto: AF_XDP when the kernel and driver allow
// it, AF_PACKET otherwise) and queues receive queues (0: one for AF_XDP,
// one per worker for AF_PACKET). Adding the same uplink again with the
// same driver succeeds and changes nothing.
func (d *Daemon) AddUplink(name, drv string, queues int) (*UplinkInfo, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if u, ok := d.uplinks[name]; ok {
		if drv == DriverAuto || drv == u.driver {
			return u.info(), nil
		}
		return nil, fmt.Errorf("uplink %q uses %s: %w", name, u.driver, ErrUplinkExists)
	}
	link, err := netlink.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("uplink %q: %w (%v)", name, ErrNoInterface, err)
	}
	if link.Attrs().Flags&net.FlagLoopback != 0 || len(link.Attrs().HardwareAddr) != 6 {
		return nil, fmt.Errorf("uplink %q: not an Ethernet interface", name)
	}
	if err := d.ensureHostTun(); err != nil {
		return nil, err
	}
	u := &uplink{name: name, ifindex: link.Attrs().Index, done: make(chan struct{}), stop: make(chan struct{})}
	copy(u.mac[:], link.Attrs().HardwareAddr)
	u.addrs, err = kernelAddrs(u.ifindex)
	if err != nil {
		return nil, fmt.Errorf("uplink %q: read addresses: %w", name, err)
	}
	ok := false
	defer func() {
		if !ok {
			u.close()
		}
	}()
	switch drv {
	case DriverAFXDP, DriverAFPacket, DriverTap:
		err = d.openUplink(u, drv, queues)
	case DriverAuto, "":
		if err = d.openUplink(u, DriverAFXDP, queues); err != nil {
			slog.Warn("AF_XDP unavailable on uplink, falling back to AF_PACKET", "uplink", name, "err", err)
			u.close()
			u.filter, u.queues, u.closers = nil, nil, nil
			err = d.openUplink(u, DriverAFPacket, queues)
		}
	default:
		return nil, fmt.Errorf("uplink %q: unknown driver %q (want af_xdp, af_packet, tap or auto)", name, drv)
	}
	if err != nil {
		return nil, fmt.Errorf("uplink %q: %w", name, err)
	}
	up, mtu := linkState(link)
	txqs := make([]*tables.TxQueue, len(u.queues))
	for i, q := range u.queues {
		txqs[i] = &tables.TxQueue{Q: q, Shared: len(u.queues) < len(d.Workers)}
	}
	gso, tunnelGSO := false, false
	if pq, isPkt := u.queues[0].(*afpacket.Queue); isPkt {
		gso = pq.GSO()
	}
	if u.tap != nil {
		gso, tunnelGSO = true, u.tap.TunnelGSO
	}
	idx, err := d.Tables.AddInterface(tables.Interface{
		Name: name, Kind: tables.KindUplink, MTU: uint32(mtu), MAC: u.mac, Down: !up,
		Tx: txqs, TxCsum: gso, TxGSO: gso, TxTunnelGSO: tunnelGSO,
	})
	if err != nil {
		return nil, err
	}
	u.index = idx
	d.uplinks[name] = u
	if err := d.syncUplinkState(); err != nil {
		delete(d.uplinks, name)
		_, _ = d.Tables.DeleteInterface(name)
		_ = d.syncUplinkState()
		return nil, err
	}
	if err := d.assignUplinkQueues(); err != nil {
		delete(d.uplinks, name)
		_, _ = d.Tables.DeleteInterface(name)
		_ = d.assignUplinkQueues()
		_ = d.syncUplinkState()
		return nil, err
	}
	ok = true
	go d.follow(u)
	slog.Info("uplink attached", "uplink", name, "driver", u.driver, "mode", u.mode, "queues", len(u.queues),
		"addrs", u.addrs, "mtu", mtu, "up", up, "gso", gso)
	return u.info(), nil
}

// openUplink opens the driver's queues and attaches the filter programs.
func (d *Daemon) openUplink(u *uplink, drv string, queues int) error {
	if queues <= 0 {
		queues = 1
		if drv == DriverAFPacket || drv == DriverTap {
			queues = len(d.Workers)
		}
	}
	f, err := uplinkfilter.New(queues)
	if err != nil {
		return fmt.Errorf("load eBPF filter: %w", err)
	}
	u.filter, u.driver = f, drv
	u.closers = append(u.closers, f.Close)
	if err := f.Update(d.filterSpec()); err != nil {
		return err
	}
	switch drv {
	case DriverAFXDP:
		for q := 0; q < queues; q++ {
			xq, err := afxdp.Open(u.name, q, afxdp.Options{})
			if err != nil {
				return fmt.Errorf("AF_XDP queue %d: %w", q, err)
			}
			u.queues = append(u.queues, xq)
			u.closers = append(u.closers, xq.Close)
			if err := f.SetSocket(q, xq.FD()); err != nil {
				return err
			}
		}
		mode, err := f.AttachXDP(u.ifindex)
		if err != nil {
			return fmt.Errorf("attach XDP: %w", err)
		}
		u.mode = mode + " xdp, " + u.queues[0].(*afxdp.Queue).Mode()
	case DriverAFPacket:
		qs, err := afpacket.Open(u.name, afpacket.Options{Queues: queues, SocketFilterFD: f.SocketFilterFD()})
		if err != nil {
			return err
		}
		for _, q := range qs {
			u.queues = append(u.queues, q)
			u.closers = append(u.closers, q.Close)
		}
		// The packet socket (a tap) copies the frame before tc ingress
		// runs; the tc program then keeps the kernel from routing the
		// same frame a second time.
		if err := f.AttachTC(u.ifindex); err != nil {
			return fmt.Errorf("attach tc: %w", err)
		}
		u.mode = "tpacket-v3, tcx"
		if qs[0].GSO() {
			u.mode += ", gso"
		}
	case DriverTap:
		link, err := netlink.LinkByIndex(u.ifindex)
		if err != nil {
			return err
		}
		tap, err := taptc.Open(tapName(u.name), queues, link.Attrs().MTU)
		if err != nil {
			return err
		}
		u.tap = tap
		u.closers = append(u.closers, tap.Close)
		for _, q := range tap.Queues {
			u.queues = append(u.queues, q)
		}
		if err := f.AttachTCRedirect(u.ifindex, tap.Ifindex); err != nil {
			return fmt.Errorf("attach tc redirect: %w", err)
		}
		u.mode = "tcx redirect via " + tap.Name + ", gso"
		if tap.TunnelGSO {
			u.mode += ", udp-tunnel-gso"
		}
	}
	return nil
}

// close releases everything openUplink made, filter first so the kernel
// stops steering frames to sockets that are going away.
func (u *uplink) close() {
	for _, c := range u.closers {
		if err := c(); err != nil {
			slog.Warn("uplink close", "uplink", u.name, "err", err)
		}
	}
	u.closers = nil
}

func (u *uplink) info() *UplinkInfo {
	return &UplinkInfo{Name: u.name, Driver: u.driver, Mode: u.mode, Queues: len(u.queues), Addrs: slices.Clone(u.addrs), Gateway4: u.gw4, Gateway6: u.gw6}
}

// DeleteUplink detaches from an uplink; the host's networking on it is as
// it was before AddUplink.
func (d *Daemon) DeleteUplink(name string) error {
	d.mu.Lock()
	u, ok := d.uplinks[name]
	if !ok {
		d.mu.Unlock()
		return fmt.Errorf("uplink %q: %w", name, ErrNoInterface)
	}
	delete(d.uplinks, name)
	close(u.stop)
	_, err := d.Tables.DeleteInterface(name)
	err = errors.Join(err, d.assignUplinkQueues(), d.syncUplinkState())
	d.quiesce()
	d.mu.Unlock()
	<-u.done
	u.close()
	slog.Info("uplink detached", "uplink", name)
	return err
}

// Uplinks lists the attached uplinks.
func (d *Daemon) Uplinks() []*UplinkInfo {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []*UplinkInfo
	for _, u := range d.uplinks {
		out = append(out, u.info())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// assignUplinkQueues gives queue q of each uplink to worker q mod workers.
func (d *Daemon) assignUplinkQueues() error {
	per := make([][]node.UplinkRxQueue, len(d.Workers))
	names := make([]string, 0, len(d.uplinks))
	for n := range d.uplinks {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		u := d.uplinks[n]
		for q, dq := range u.queues {
			w := q % len(d.Workers)
			per[w] = append(per[w], node.UplinkRxQueue{Q: dq, IfIndex: u.index})
		}
	}
	var errs []error
	for i, w := range d.Workers {
		if err := w.SetUplinkQueues(per[i]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// SetPodPrefixes sets the pod (and service) prefixes: the uplink filters
// steer traffic for them to the dataplane, the host routes them to the
// host tun, and the dataplane drops what no more specific route claims.
func (d *Daemon) SetPodPrefixes(ps []netip.Prefix) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	old := d.podPrefixes
	d.podPrefixes = normalize(ps)
	if len(d.podPrefixes) > 0 {
		if err := d.ensureHostTun(); err != nil {
			d.podPrefixes = old
			return err
		}
	}
	if err := d.syncUplinkState(); err != nil {
		d.podPrefixes = old
		_ = d.syncUplinkState()
		return err
	}
	slog.Info("pod prefixes set", "prefixes", d.podPrefixes)
	return nil
}

// PodPrefixes returns the pod prefixes.
func (d *Daemon) PodPrefixes() []netip.Prefix {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.podPrefixes)
}

func normalize(ps []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(ps))
	for _, p := range ps {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()).Masked()
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return out
}

// filterSpec is what every uplink's eBPF filter takes for the dataplane.
func (d *Daemon) filterSpec() driver.Filter {
	f := driver.Filter{Prefixes: slices.Clone(d.podPrefixes), UDPPorts: []uint16{d.Tables.VXLANPort()}}
	for _, u := range d.uplinks {
		for _, a := range u.addrs {
			if a.Addr().Is4() && !slices.Contains(f.NodeAddrs, a.Addr()) {
				f.NodeAddrs = append(f.NodeAddrs, a.Addr())
			}
		}
	}
	return f
}

// syncUplinkState recomputes everything derived from the uplinks' kernel
// state and the pod prefixes: host addresses in the tables, the routes of
// sources node and uplink, every uplink's filter, and the host's routes to
// the pods through the host tun. Called with d.mu held.
func (d *Daemon) syncUplinkState() error {
	var hostIf uint32
	if d.hostTun != nil {
		hostIf = d.hostTun.index
	}
	var nodeRoutes, upRoutes []tables.Route
	hostPath := func() []tables.Path {
		if hostIf == 0 {
			return nil
		}
		return []tables.Path{{Interface: hostIf}}
	}
	seen := map[netip.Prefix]bool{}
	var errs []error
	for _, u := range d.uplinks {
		var addrs []netip.Addr
		for _, p := range u.addrs {
			addrs = append(addrs, p.Addr())
			host := netip.PrefixFrom(p.Addr(), p.Addr().BitLen())
			if !seen[host] {
				seen[host] = true
				nodeRoutes = append(nodeRoutes, tables.Route{Prefix: host, Paths: hostPath()})
			}
			if p.Bits() < p.Addr().BitLen() && !seen[p.Masked()] {
				seen[p.Masked()] = true
				upRoutes = append(upRoutes, tables.Route{Prefix: p.Masked(), Paths: []tables.Path{{Interface: u.index}}})
			}
		}
		errs = append(errs, d.Tables.SetHostAddrs(u.name, addrs))
	}
	for _, p := range d.podPrefixes {
		if !seen[p] {
			seen[p] = true
			upRoutes = append(upRoutes, tables.Route{Prefix: p})
		}
	}
	if hostIf != 0 {
		for _, p := range []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")} {
			if !seen[p] {
				upRoutes = append(upRoutes, tables.Route{Prefix: p, Paths: hostPath()})
			}
		}
	}
	errs = append(errs, d.Tables.SyncSource(tables.SourceNode, nodeRoutes), d.Tables.SyncSource(tables.SourceUplink, upRoutes))
	spec := d.filterSpec()
	for _, u := range d.uplinks {
		if err := u.filter.Update(spec); err != nil {
			errs = append(errs, fmt.Errorf("uplink %q filter: %w", u.name, err))
		}
	}
	errs = append(errs, d.syncHostRoutes())
	return errors.Join(errs...)
}

// ensureHostTun creates the host tun on first use (the first uplink or
// pod prefix): the host's path to the pods and theirs to the host (kubelet
// probes, hostNetwork pods, the node's own services).
func (d *Daemon) ensureHostTun() error {
	if d.hostTun != nil || d.cfg.HostInterface == "" {
		return nil
	}
	if l, err := netlink.LinkByName(d.cfg.HostInterface); err == nil {
		// vecnetd's tuns are not persistent: they vanish with the process
		// that made them, so an existing one has a live owner — most
		// likely another vecnetd in this network namespace.
		return fmt.Errorf("host interface %q already exists (a %s; another vecnetd in this network namespace?): stop it or choose another --host-interface: %w",
			d.cfg.HostInterface, l.Type(), ErrNameTaken)
	}
	dev, err := tun.Create(tun.Config{Kind: tun.Tun, Netns: "/proc/self/ns/net", Name: d.cfg.HostInterface, MTU: d.cfg.HostMTU})
	if err != nil {
		return fmt.Errorf("host interface: %w", err)
	}
	idx, err := d.Tables.AddInterface(tables.Interface{Name: d.cfg.HostInterface, Kind: tables.KindTun, MTU: uint32(dev.MTU), TxFDs: dev.FDs})
	if err != nil {
		dev.Close()
		return err
	}
	pi := &podInterface{name: d.cfg.HostInterface, index: idx, dev: dev}
	d.ifaces[pi.name] = pi
	d.hostTun = pi
	if err := d.assignQueues(); err != nil {
		return err
	}
	slog.Info("host interface created", "name", pi.name, "index", idx, "mtu", dev.MTU)
	return nil
}

// syncHostRoutes routes the pod prefixes to the host tun in the kernel.
func (d *Daemon) syncHostRoutes() error {
	if d.hostTun == nil {
		return nil
	}
	link, err := netlink.LinkByName(d.hostTun.name)
	if err != nil {
		return fmt.Errorf("host interface %q: %w", d.hostTun.name, err)
	}
	want := map[netip.Prefix]bool{}
	for _, p := range d.podPrefixes {
		want[p] = true
	}
	var errs []error
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rs, err := netlink.RouteList(link, fam)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, r := range rs {
			if r.Dst == nil || r.Protocol != routeProtoVecnet {
				continue
			}
			p, _ := netip.AddrFromSlice(r.Dst.IP)
			ones, _ := r.Dst.Mask.Size()
			if pp := netip.PrefixFrom(p.Unmap(), ones); !want[pp] {
				errs = append(errs, netlink.RouteDel(&r))
			}
		}
	}
	for p := range want {
		r := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())},
			Scope: netlink.SCOPE_LINK, Protocol: routeProtoVecnet}
		if err := netlink.RouteReplace(r); err != nil {
			errs = append(errs, fmt.Errorf("host route %s dev %s: %w", p, d.hostTun.name, err))
		}
	}
	return errors.Join(errs...)
}

// routeProtoVecnet marks the kernel routes vecnetd installs (rtnetlink
// protocol numbers above 4 are free for routing daemons; 0x76 is 'v').
const routeProtoVecnet = netlink.RouteProtocol(0x76)

// kernelAddrs lists the global addresses of a link.
func kernelAddrs(ifindex int) ([]netip.Prefix, error) {
	link, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return nil, err
	}
	as, err := netlink.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, a := range as {
		if p, ok := addrPrefix(a.IPNet, a.Scope); ok {
			out = append(out, p)
		}
	}
	return normalizeAddrs(out), nil
}

func addrPrefix(n *net.IPNet, scope int) (netip.Prefix, bool) {
	if n == nil || scope != unix.RT_SCOPE_UNIVERSE {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}

func normalizeAddrs(ps []netip.Prefix) []netip.Prefix {
	slices.SortFunc(ps, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return slices.Compact(ps)
}

// linkState is the usable state and MTU of a link: administratively up
// and with a carrier (a veth whose peer is down is LOWERLAYERDOWN).
func linkState(l netlink.Link) (up bool, mtu int) {
	a := l.Attrs()
	up = a.Flags&net.FlagUp != 0 && a.OperState != netlink.OperDown && a.OperState != netlink.OperLowerLayerDown
	return up, a.MTU
}

// follow keeps the dataplane's view of an uplink equal to the kernel's
// until the uplink is deleted.
func (d *Daemon) follow(u *uplink) {
	defer close(u.done)
	for {
		err := d.followOnce(u)
		select {
		case <-u.stop:
			return
		default:
		}
		slog.Error("netlink subscription for uplink lost; resubscribing", "uplink", u.name, "err", err)
		select {
		case <-u.stop:
			return
		case <-time.After(time.Second):
		}
	}
}

func (d *Daemon) followOnce(u *uplink) error {
	stop := make(chan struct{})
	defer close(stop)
	links := make(chan netlink.LinkUpdate, 64)
	addrs := make(chan netlink.AddrUpdate, 64)
	neighs := make(chan netlink.NeighUpdate, 256)
	errc := make(chan error, 3)
	cb := func(err error) {
		select {
		case errc <- err:
		default:
		}
	}
	if err := netlink.LinkSubscribeWithOptions(links, stop, netlink.LinkSubscribeOptions{ErrorCallback: cb}); err != nil {
		return err
	}
	if err := netlink.AddrSubscribeWithOptions(addrs, stop, netlink.AddrSubscribeOptions{ErrorCallback: cb}); err != nil {
		return err
	}
	if err := netlink.NeighSubscribeWithOptions(neighs, stop, netlink.NeighSubscribeOptions{ErrorCallback: cb, ListExisting: true}); err != nil {
		return err
	}
	// Anything that changed before the subscriptions started.
	d.refreshUplink(u)
	for {
		select {
		case <-u.stop:
			return nil
		case err := <-errc:
			return err
		case l, ok := <-links:
			if !ok {
				return errors.New("link subscription closed")
			}
			if int(l.Index) == u.ifindex {
				d.refreshUplink(u)
			}
		case a, ok := <-addrs:
			if !ok {
				return errors.New("address subscription closed")
			}
			if a.LinkIndex == u.ifindex {
				d.refreshUplink(u)
			}
		case n, ok := <-neighs:
			if !ok {
				return errors.New("neighbour subscription closed")
			}
			if n.LinkIndex == u.ifindex {
				d.neighbor(u, n)
			}
		}
	}
}

// refreshUplink re-reads the link's state and addresses from the kernel.
func (d *Daemon) refreshUplink(u *uplink) {
	link, err := netlink.LinkByIndex(u.ifindex)
	if err != nil {
		slog.Error("uplink gone from the kernel; marking it down", "uplink", u.name, "err", err)
		_ = d.Tables.SetLinkState(u.name, false, 0)
		return
	}
	up, mtu := linkState(link)
	if mac := link.Attrs().HardwareAddr; len(mac) == 6 {
		if ifc, ok := d.Tables.InterfaceByName(u.name); ok && ifc.MAC != [6]byte(mac) {
			slog.Info("uplink MAC changed", "uplink", u.name, "mac", mac)
			if err := d.Tables.SetMAC(u.name, [6]byte(mac)); err != nil {
				slog.Error("uplink MAC", "uplink", u.name, "err", err)
			}
		}
	}
	if ifc, ok := d.Tables.InterfaceByName(u.name); ok && (ifc.Down == up || int(ifc.MTU) != mtu) {
		slog.Info("uplink state changed", "uplink", u.name, "up", up, "mtu", mtu)
		for _, q := range u.queues {
			if pq, ok := q.(*afpacket.Queue); ok {
				pq.SetMTU(mtu)
			}
		}
		if u.tap != nil {
			if err := u.tap.SetMTU(mtu); err != nil {
				slog.Error("uplink tap MTU", "uplink", u.name, "err", err)
			}
		}
		if err := d.Tables.SetLinkState(u.name, up, uint32(mtu)); err != nil {
			slog.Error("uplink state", "uplink", u.name, "err", err)
		}
	}
	addrs, err := kernelAddrs(u.ifindex)
	if err != nil {
		slog.Error("uplink addresses", "uplink", u.name, "err", err)
		return
	}
	gw4, gw6 := defaultGateways(u.ifindex)
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, still := d.uplinks[u.name]; !still {
		return
	}
	u.gw4, u.gw6 = gw4, gw6
	if slices.Equal(addrs, u.addrs) {
		return
	}
	slog.Info("uplink addresses changed", "uplink", u.name, "old", u.addrs, "new", addrs)
	u.addrs = addrs
	if err := d.syncUplinkState(); err != nil {
		slog.Error("uplink addresses", "uplink", u.name, "err", err)
	}
}

// defaultGateways returns the kernel's default gateways through a link.
func defaultGateways(ifindex int) (gw4, gw6 netip.Addr) {
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rs, err := netlink.RouteListFiltered(fam, &netlink.Route{LinkIndex: ifindex}, netlink.RT_FILTER_OIF)
		if err != nil {
			continue
		}
		for _, r := range rs {
			if (r.Dst == nil || isDefault(r.Dst)) && r.Gw != nil {
				if a, ok := netip.AddrFromSlice(r.Gw); ok {
					if a.Unmap().Is4() {
						gw4 = a.Unmap()
					} else {
						gw6 = a
					}
				}
			}
		}
	}
	return gw4, gw6
}

func isDefault(n *net.IPNet) bool { ones, _ := n.Mask.Size(); return ones == 0 }

// neighbor mirrors one kernel neighbour entry of the uplink.
func (d *Daemon) neighbor(u *uplink, n netlink.NeighUpdate) {
	ip, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return
	}
	ip = ip.Unmap()
	const usable = netlink.NUD_REACHABLE | netlink.NUD_STALE | netlink.NUD_DELAY | netlink.NUD_PROBE | netlink.NUD_PERMANENT | netlink.NUD_NOARP
	if n.Type == unix.RTM_NEWNEIGH && n.State&usable != 0 && len(n.HardwareAddr) == 6 {
		d.Tables.LearnNeighbor(u.index, ip, [6]byte(n.HardwareAddr))
		return
	}
	if n.Type == unix.RTM_DELNEIGH || n.State&(netlink.NUD_FAILED|netlink.NUD_INCOMPLETE) != 0 {
		d.Tables.ForgetNeighbor(u.index, ip)
	}
}

// resolveLoop asks the kernel to resolve next hops the workers found
// unresolved on an uplink. NTF_USE makes the kernel treat the request
// like one of its own packets to the neighbour: it creates the entry and
// sends ARP or a neighbour solicitation, and the reply shows up in the
// neighbour subscription.
func (d *Daemon) resolveLoop() {
	for ev := range d.resolve {
		d.mu.Lock()
		var ifindex int
		for _, u := range d.uplinks {
			if u.index == ev.IfIndex {
				ifindex = u.ifindex
			}
		}
		d.mu.Unlock()
		if ifindex == 0 {
			continue
		}
		fam := netlink.FAMILY_V4
		if ev.IP.Is6() {
			fam = netlink.FAMILY_V6
		}
		err := netlink.NeighSet(&netlink.Neigh{LinkIndex: ifindex, Family: fam, IP: ev.IP.AsSlice(), State: netlink.NUD_NONE, Flags: netlink.NTF_USE})
		if err != nil {
			slog.Debug("kernel neighbour resolution request failed", "ip", ev.IP, "err", err)
		}
	}
}

// tapName is the name of an uplink's tap: "vnt-" and as much of the
// uplink's name as fits in IFNAMSIZ.
func tapName(uplink string) string {
	n := "vnt-" + uplink
	if len(n) > 15 {
		n = n[:15]
	}
	return n
}

// isHostTun reports whether pi is the host tun.
func (d *Daemon) isHostTun(pi *podInterface) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return pi == d.hostTun
}
