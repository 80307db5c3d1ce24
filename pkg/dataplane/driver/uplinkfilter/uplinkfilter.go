// Package uplinkfilter holds the eBPF programs that decide which frames
// arriving on the node's NIC (the uplink) belong to vecnetd. vecnetd shares
// the uplink with the host: it must take the frames of its pods, services
// and tunnels (driver.Filter) and leave everything else (ARP, ssh, DHCP,
// kubelet, BGP, ...) to the kernel, untouched.
//
// One decision, three program types, one per way vecnetd can receive:
//
//   - XDP, for the AF_XDP driver: ours -> redirected into the AF_XDP socket
//     of the receive queue, not ours -> XDP_PASS.
//   - tc ingress (tcx), for the AF_PACKET driver: an AF_PACKET socket bound
//     to ETH_P_ALL is a tap that copies the frame before tc ingress runs,
//     so this program only has to keep the kernel from also handling it:
//     ours -> TCX_DROP, not ours -> TCX_NEXT.
//   - a socket filter on that AF_PACKET socket, so vecnetd is not woken for,
//     and does not copy, the host's traffic: ours -> keep, not ours -> 0.
//
// Decide is the same decision in Go; the tests run the programs
// (BPF_PROG_TEST_RUN) against it on a table and under fuzzing.
//
// A Set's maps hold the Filter and are shared by its three programs, so one
// Update changes what all of them take, without reloading anything.
//
// The programs are assembled in Go with cilium/ebpf's asm package (see
// emit.go): no C compiler in the build and no object file to keep in step.
// AttachTC needs Linux 6.6 or later (tcx); the tests run on 6.18.
package uplinkfilter

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/vecnet/vecnet/pkg/dataplane/driver"
)

// Limits of a Filter. The maps are twice as large: Update adds the new
// entries before it deletes the stale ones, so for a moment a map holds
// both.
const (
	MaxPrefixes  = 1024 // per address family
	MaxNodeAddrs = 16   // IPv4 node addresses
	MaxUDPPorts  = 8
)

// Set is the maps and programs of one uplink. Its methods are safe for
// concurrent use.
type Set struct {
	mu     sync.Mutex
	queues int
	maps   maps
	xsks   *ebpf.Map
	xdp    *ebpf.Program
	tc     *ebpf.Program
	sock   *ebpf.Program
	links  []link.Link
	xdpSet bool
	tcSet  bool
	closed bool
}

// New creates the (empty) maps and loads the three programs for an uplink
// with queues receive queues. With an empty filter nothing is ours. It needs
// CAP_BPF and CAP_NET_ADMIN (or root).
func New(queues int) (*Set, error) {
	if queues < 1 {
		return nil, fmt.Errorf("uplinkfilter: %d queues", queues)
	}
	s := &Set{queues: queues}
	err := s.load()
	if err != nil {
		s.closeAll()
		return nil, err
	}
	return s, nil
}

func (s *Set) load() error {
	var err error
	newMap := func(spec *ebpf.MapSpec) *ebpf.Map {
		if err != nil {
			return nil
		}
		var m *ebpf.Map
		m, err = ebpf.NewMap(spec)
		if err != nil {
			err = fmt.Errorf("uplinkfilter: create map %s: %w", spec.Name, err)
		}
		return m
	}
	// LPM tries must be created without preallocation. Values are one
	// byte: only the presence of a key counts.
	s.maps.prefix4 = newMap(&ebpf.MapSpec{Name: "vecnet_pfx4", Type: ebpf.LPMTrie,
		KeySize: 4 + 4, ValueSize: 1, MaxEntries: 2 * MaxPrefixes, Flags: unix.BPF_F_NO_PREALLOC})
	s.maps.prefix6 = newMap(&ebpf.MapSpec{Name: "vecnet_pfx6", Type: ebpf.LPMTrie,
		KeySize: 4 + 16, ValueSize: 1, MaxEntries: 2 * MaxPrefixes, Flags: unix.BPF_F_NO_PREALLOC})
	s.maps.nodes = newMap(&ebpf.MapSpec{Name: "vecnet_nodes", Type: ebpf.Hash,
		KeySize: 4, ValueSize: 1, MaxEntries: 2 * MaxNodeAddrs})
	s.maps.ports = newMap(&ebpf.MapSpec{Name: "vecnet_ports", Type: ebpf.Hash,
		KeySize: 2, ValueSize: 1, MaxEntries: 2 * MaxUDPPorts})
	s.xsks = newMap(&ebpf.MapSpec{Name: "vecnet_xsks", Type: ebpf.XSKMap,
		KeySize: 4, ValueSize: 4, MaxEntries: uint32(s.queues)})
	if err != nil {
		return err
	}
	if s.xdp, err = s.program(kindXDP, xdpRedirectTail(s.xsks), retTail(xdpPass)); err != nil {
		return err
	}
	if s.tc, err = s.program(kindTC, retTail(tcxDrop), retTail(tcxNext)); err != nil {
		return err
	}
	s.sock, err = s.program(kindSocket, retTail(sockKeepAll), retTail(sockDrop))
	return err
}

// program loads a program of kind on the Set's maps with the given tails
// (the tests load variants with tails of their own).
func (s *Set) program(k progKind, ours, notOurs asm.Instructions) (*ebpf.Program, error) {
	spec := k.spec(s.maps, ours, notOurs)
	p, err := ebpf.NewProgram(spec)
	if err != nil {
		return nil, fmt.Errorf("uplinkfilter: load %s: %w", spec.Name, err)
	}
	return p, nil
}

// Update makes the maps hold exactly f. It validates all of f before
// changing anything and returns an error naming the first bad entry:
// invalid prefixes and addresses, UDP port 0, more entries than the
// limits. It then adds the entries the maps lack, and only then deletes
// the stale ones, so a frame that is ours both before and after is never
// given to the kernel in between. Updating to the filter already held
// changes nothing.
//
// Prefixes are masked (10.1.2.3/8 is 10.0.0.0/8) and IPv4-mapped ones
// (::ffff:10.0.0.0/104) stored as IPv4; IPv4-mapped node addresses are
// stored as IPv4, IPv6 node addresses are accepted and ignored (no IPv6
// tunnel is terminated). Duplicates are allowed. See Decide.
//
// If Update fails halfway (a map syscall failing), the maps may hold a mix
// of the old and new filter, with no wanted entry missing that was there
// before; calling Update again converges.
func (s *Set) Update(f driver.Filter) error {
	want, err := compile(f)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	ms := []*ebpf.Map{s.maps.prefix4, s.maps.prefix6, s.maps.nodes, s.maps.ports}
	stale := make([][][]byte, len(ms))
	for i, m := range ms {
		have, err := keys(m)
		if err != nil {
			return fmt.Errorf("uplinkfilter: read %s: %w", mapName(m), err)
		}
		for _, k := range want[i] {
			if _, ok := have[string(k)]; ok {
				delete(have, string(k))
				continue
			}
			if err := m.Update(k, uint8(1), ebpf.UpdateAny); err != nil {
				return fmt.Errorf("uplinkfilter: add %s to %s: %w", keyString(i, k), mapName(m), err)
			}
		}
		for k := range have {
			stale[i] = append(stale[i], []byte(k))
		}
	}
	for i, m := range ms {
		for _, k := range stale[i] {
			if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("uplinkfilter: delete %s from %s: %w", keyString(i, k), mapName(m), err)
			}
		}
	}
	return nil
}

// Indices of compiled keys, in the order of the maps in Update.
const (
	mapPrefix4 = iota
	mapPrefix6
	mapNodes
	mapPorts
)

// compile validates f and returns the keys of each map, deduplicated.
func compile(f driver.Filter) ([4][][]byte, error) {
	var (
		out  [4][][]byte
		seen [4]map[string]bool
	)
	add := func(i int, k []byte) {
		if seen[i] == nil {
			seen[i] = map[string]bool{}
		}
		if !seen[i][string(k)] {
			seen[i][string(k)] = true
			out[i] = append(out[i], k)
		}
	}
	for i, p := range f.Prefixes {
		np, ok := normPrefix(p)
		if !ok {
			return out, fmt.Errorf("uplinkfilter: Prefixes[%d] (%v): not a valid prefix", i, p)
		}
		k := binary.NativeEndian.AppendUint32(nil, uint32(np.Bits()))
		if np.Addr().Is4() {
			a := np.Addr().As4()
			add(mapPrefix4, append(k, a[:]...))
		} else {
			a := np.Addr().As16()
			add(mapPrefix6, append(k, a[:]...))
		}
	}
	for i, a := range f.NodeAddrs {
		if !a.IsValid() {
			return out, fmt.Errorf("uplinkfilter: NodeAddrs[%d] (%v): not a valid address", i, a)
		}
		if a4, ok := nodeAddr4(a); ok {
			b := a4.As4()
			add(mapNodes, b[:])
		}
	}
	for i, p := range f.UDPPorts {
		if p == 0 {
			return out, fmt.Errorf("uplinkfilter: UDPPorts[%d]: port 0", i)
		}
		add(mapPorts, binary.BigEndian.AppendUint16(nil, p))
	}
	for _, c := range []struct {
		i    int
		max  int
		what string
	}{
		{mapPrefix4, MaxPrefixes, "IPv4 prefixes"},
		{mapPrefix6, MaxPrefixes, "IPv6 prefixes"},
		{mapNodes, MaxNodeAddrs, "IPv4 node addresses"},
		{mapPorts, MaxUDPPorts, "UDP ports"},
	} {
		if n := len(out[c.i]); n > c.max {
			return out, fmt.Errorf("uplinkfilter: %d %s, at most %d", n, c.what, c.max)
		}
	}
	return out, nil
}

// keys returns the keys m holds.
func keys(m *ebpf.Map) (map[string]struct{}, error) {
	have := map[string]struct{}{}
	k := make([]byte, m.KeySize())
	var v uint8
	it := m.Iterate()
	for it.Next(&k, &v) {
		have[string(k)] = struct{}{}
	}
	return have, it.Err()
}

// keyString formats a key of map i for an error message.
func keyString(i int, k []byte) string {
	switch i {
	case mapPrefix4, mapPrefix6:
		a, _ := netip.AddrFromSlice(k[4:])
		return netip.PrefixFrom(a, int(binary.NativeEndian.Uint32(k))).String()
	case mapNodes:
		a, _ := netip.AddrFromSlice(k)
		return a.String()
	default:
		return fmt.Sprintf("port %d", binary.BigEndian.Uint16(k))
	}
}

func mapName(m *ebpf.Map) string {
	if info, err := m.Info(); err == nil {
		return info.Name
	}
	return m.String()
}

var errClosed = errors.New("uplinkfilter: set closed")

// SetSocket puts the AF_XDP socket fd in the XSK map entry of queue: the
// XDP program redirects the frames of queue that are ours into it. The map
// holds its own reference to the socket.
func (s *Set) SetSocket(queue int, fd int) error {
	if queue < 0 || queue >= s.queues {
		return fmt.Errorf("uplinkfilter: queue %d of %d", queue, s.queues)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	if err := s.xsks.Update(uint32(queue), uint32(fd), ebpf.UpdateAny); err != nil {
		return fmt.Errorf("uplinkfilter: socket of queue %d: %w", queue, err)
	}
	return nil
}

// DeleteSocket empties the XSK map entry of queue: from then on the frames
// of queue go to the kernel, ours or not.
func (s *Set) DeleteSocket(queue int) error {
	if queue < 0 || queue >= s.queues {
		return fmt.Errorf("uplinkfilter: queue %d of %d", queue, s.queues)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	if err := s.xsks.Delete(uint32(queue)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("uplinkfilter: delete socket of queue %d: %w", queue, err)
	}
	return nil
}

// XDP modes AttachXDP reports.
const (
	ModeNative  = "native"  // in the driver (XDP_FLAGS_DRV_MODE): zero-copy AF_XDP possible
	ModeGeneric = "generic" // on the skb (XDP_FLAGS_SKB_MODE): AF_XDP must bind with XDP_COPY
)

// AttachXDP attaches the XDP program to the interface ifindex (in the
// calling thread's network namespace) in native mode, or in generic mode if
// the driver has no XDP support, and reports the mode. The attachment is a
// BPF link, so it goes away with Close or with the process, never left
// behind.
func (s *Set) AttachXDP(ifindex int) (mode string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return "", errClosed
	}
	if s.xdpSet {
		return "", errors.New("uplinkfilter: XDP program already attached")
	}
	l, errNative := link.AttachXDP(link.XDPOptions{Program: s.xdp, Interface: ifindex, Flags: link.XDPDriverMode})
	mode = ModeNative
	if errNative != nil {
		var errGeneric error
		l, errGeneric = link.AttachXDP(link.XDPOptions{Program: s.xdp, Interface: ifindex, Flags: link.XDPGenericMode})
		if errGeneric != nil {
			return "", fmt.Errorf("uplinkfilter: attach XDP to ifindex %d: native: %v; generic: %w", ifindex, errNative, errGeneric)
		}
		mode = ModeGeneric
	}
	s.links = append(s.links, l)
	s.xdpSet = true
	return mode, nil
}

// AttachTC attaches the tc program at the head of the tcx ingress chain of
// ifindex (in the calling thread's network namespace): first, so that no
// program before it lets one of our frames through to the kernel; frames
// that are not ours continue down the chain (TCX_NEXT). Needs Linux 6.6.
func (s *Set) AttachTC(ifindex int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	if s.tcSet {
		return errors.New("uplinkfilter: tc program already attached")
	}
	l, err := link.AttachTCX(link.TCXOptions{
		Interface: ifindex,
		Program:   s.tc,
		Attach:    ebpf.AttachTCXIngress,
		Anchor:    link.Head(),
	})
	if err != nil {
		return fmt.Errorf("uplinkfilter: attach tcx ingress to ifindex %d: %w", ifindex, err)
	}
	s.links = append(s.links, l)
	s.tcSet = true
	return nil
}

// SocketFilterFD returns the socket filter program, for
// setsockopt(SO_ATTACH_BPF) on an AF_PACKET SOCK_RAW socket; it is valid
// until Close, and a socket it is attached to keeps its own reference.
//
// The program judges every frame the socket sees, outgoing ones included,
// so the socket should set PACKET_IGNORE_OUTGOING: frames the host, or
// another of vecnetd's sockets, sends to a pod prefix would otherwise be
// taken in as if received. Attach
// the filter before binding the socket to ETH_P_ALL, or frames arriving in
// between are queued unfiltered. Bind to ETH_P_ALL, not ETH_P_IP: only
// ETH_P_ALL sockets are taps that run before tc ingress, where the tc
// program drops the frame.
func (s *Set) SocketFilterFD() int { return s.sock.FD() }

// Close detaches what the Set attached and closes its programs and maps.
func (s *Set) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.closeAll()
}

func (s *Set) closeAll() error {
	var errs []error
	for _, l := range s.links {
		errs = append(errs, l.Close())
	}
	s.links = nil
	for _, p := range []*ebpf.Program{s.xdp, s.tc, s.sock} {
		if p != nil {
			errs = append(errs, p.Close())
		}
	}
	for _, m := range []*ebpf.Map{s.maps.prefix4, s.maps.prefix6, s.maps.nodes, s.maps.ports, s.xsks} {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	return errors.Join(errs...)
}
