package tables

import (
	"net/netip"
	"slices"
)

// This file holds what the uplink manager changes as it follows the
// kernel through netlink: link state and MTU, the node addresses, the
// kernel's neighbour table, and the routes it derives from them.

// ifaceCopy returns interface name's index and a copy of it to change and
// store back (interfaces are immutable once published).
func (w *Writer) ifaceCopy(name string) (uint32, Interface, error) {
	idx, ok := w.ifByName[name]
	if !ok {
		return 0, Interface{}, errf(ErrNotFound, "interface %q does not exist", name)
	}
	return idx, *w.ifaces[idx], nil
}

// SetLinkState records an interface's operational state and MTU. Every
// adjacency on it is rebuilt, so tunnels over it follow a path MTU change
// at once (their MTU is the link's less the encapsulation).
func (w *Writer) SetLinkState(name string, up bool, mtu uint32) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	idx, ifc, err := w.ifaceCopy(name)
	if err != nil {
		return err
	}
	if ifc.Down == !up && ifc.MTU == mtu {
		return nil
	}
	ifc.Down, ifc.MTU = !up, mtu
	w.ifaces[idx] = &ifc
	w.rebuildAdjs(idx)
	w.publish()
	return nil
}

// SetMAC changes an L2 interface's MAC (an uplink's, when the host
// changes it): every rewrite sourced from it is rebuilt.
func (w *Writer) SetMAC(name string, mac [6]byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	idx, ifc, err := w.ifaceCopy(name)
	if err != nil {
		return err
	}
	if ifc.MAC == mac {
		return nil
	}
	ifc.MAC = mac
	w.ifaces[idx] = &ifc
	w.rebuildAdjs(idx)
	w.publish()
	return nil
}

// SetHostAddrs records the host kernel's addresses on an uplink. Tunnels
// take their outer source address from them.
func (w *Writer) SetHostAddrs(name string, addrs []netip.Addr) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	idx, ifc, err := w.ifaceCopy(name)
	if err != nil {
		return err
	}
	ifc.HostAddrs4, ifc.HostAddrs6 = nil, nil
	for _, a := range addrs {
		a = a.Unmap()
		if a.Is4() {
			ifc.HostAddrs4 = append(ifc.HostAddrs4, a.As4())
		} else {
			ifc.HostAddrs6 = append(ifc.HostAddrs6, a.As16())
		}
	}
	w.ifaces[idx] = &ifc
	w.rebuildAdjs(idx)
	w.publish()
	return nil
}

// SetVXLANPort sets the UDP port of VXLAN tunnels (both directions).
func (w *Writer) SetVXLANPort(port uint16) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.vxlanPort = port
	w.publish()
}

// VXLANPort returns the UDP port of VXLAN tunnels.
func (w *Writer) VXLANPort() uint16 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.vxlanPort
}

// ForgetNeighbor removes a learned binding (the kernel's entry went away
// or failed): adjacencies through it become incomplete again and the host
// route LearnNeighbor added is removed.
func (w *Writer) ForgetNeighbor(ifIndex uint32, ip netip.Addr) {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := neighKey{ifIndex, ip}
	if _, ok := w.neigh[k]; !ok {
		return
	}
	delete(w.neigh, k)
	ifc, ok := w.ifaces[ifIndex]
	if !ok {
		return
	}
	tx := w.begin()
	v := w.vrfs[ifc.VRF]
	host := netip.PrefixFrom(ip, ip.BitLen())
	if rs := v.routes[host]; rs != nil && rs.by[SourceNeighbor] != nil {
		tx.set(v, host, SourceNeighbor, nil)
	}
	w.refreshAdjs(ifIndex, ip)
	_ = tx.commit()
}

// SyncSource makes the routes of one source in VRF 0 equal to routes, in
// one version: routes not listed are removed, listed ones added or
// replaced. The uplink manager owns SourceNode and SourceUplink and
// recomputes their whole set on every change, which is simpler to get
// right than tracking deltas and cheap (a node has a handful of them).
func (w *Writer) SyncSource(src Source, routes []Route) error {
	if src != SourceNode && src != SourceUplink {
		return errf(ErrInvalid, "source %s is not synced as a whole", src)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	v := w.vrfs[0]
	want := map[netip.Prefix]*Route{}
	for i := range routes {
		r := routes[i]
		if err := checkRoute(&r); err != nil {
			return asRouteError(i, err)
		}
		for j, p := range r.Paths {
			if p.Interface != 0 {
				if _, ok := w.ifaces[p.Interface]; !ok {
					return &RouteError{Index: i, Path: j, Err: errf(ErrNotFound, "interface index %d does not exist", p.Interface)}
				}
			}
		}
		r.Prefix = r.Prefix.Masked()
		r.Paths = slices.Clone(r.Paths)
		want[r.Prefix] = &r
	}
	tx := w.begin()
	for p, rs := range v.routes {
		if old := rs.by[src]; old != nil {
			if nr, ok := want[p]; ok && sameRoute(old, nr) {
				delete(want, p)
				continue
			}
			if _, ok := want[p]; !ok {
				tx.set(v, p, src, nil)
			}
		}
	}
	for p, r := range want {
		tx.set(v, p, src, r)
	}
	if len(tx.journal) == 0 {
		return nil
	}
	return tx.commit()
}

func sameRoute(a, b *Route) bool {
	return slices.Equal(a.Paths, b.Paths)
}

// RoutesOf lists the routes of one source in VRF 0 (for tests and show),
// winning or not; SourceRoutes does the same for any VRF.
func (w *Writer) RoutesOf(src Source) []Route {
	var out []Route
	for _, ri := range w.SourceRoutes(0, false, src) {
		out = append(out, ri.Route)
	}
	return out
}
