// Package tables holds the forwarding state that dataplane workers read:
// interfaces, VRFs with their FIBs, load-balance objects and adjacencies.
//
// Workers never lock. The control plane (Writer) builds a new immutable
// Snapshot for every change and publishes it with one atomic pointer store;
// a worker loads the pointer once per dispatch round, so every packet is
// forwarded by one consistent version from input to output. The garbage
// collector frees an old version only when no worker references it any
// more, which is exactly the grace period RCU would otherwise have to track.
//
// Indices (FIB value -> load balance -> adjacency -> interface) are only
// meaningful within one Snapshot; the Writer may reuse a freed index in the
// next version, which is safe because a worker never mixes versions.
package tables

import (
	"net/netip"
	"sync/atomic"

	"github.com/vecnet/vecnet/pkg/dataplane/fib"
)

// InterfaceKind is the kind of a dataplane interface.
type InterfaceKind uint8

const (
	KindTun InterfaceKind = iota + 1 // L3, no link-layer header
	KindTap                          // L2, Ethernet
)

func (k InterfaceKind) String() string {
	switch k {
	case KindTun:
		return "tun"
	case KindTap:
		return "tap"
	}
	return "unknown"
}

// Interface is a dataplane interface as workers see it. The struct is
// immutable; Counters and Capture are shared by all versions of the same
// interface.
type Interface struct {
	Index    uint32
	Name     string
	Kind     InterfaceKind
	MTU      uint32
	VRF      uint32 // VRF id
	VRFSlot  int    // index of the VRF in Snapshot.VRFs
	MAC      [6]byte
	Addrs4   [][4]byte // dataplane-owned addresses, used as ICMP sources
	Addrs6   [][16]byte
	PodAddrs []netip.Addr // addresses on the other side (proxy ARP/ND must not answer for them)

	// TxFDs are the file descriptors packets are written to, one per queue.
	// Worker w writes to TxFDs[w%len(TxFDs)], so workers never contend on a
	// queue of the kernel device.
	TxFDs    []int
	Counters *InterfaceCounters
	Capture  *atomic.Pointer[Capture]
}

// InterfaceCounters are updated once per frame and interface.
type InterfaceCounters struct {
	RxPackets, RxBytes atomic.Uint64
	TxPackets, TxBytes atomic.Uint64
	Drops, TxErrors    atomic.Uint64
}

// Capture receives copies of packets for vecnetctl pcap. Workers send
// without blocking; a slow reader loses packets, never the dataplane.
type Capture struct {
	C chan CapturedPacket
}

// CapturedPacket is a copy of a packet seen on an interface.
type CapturedPacket struct {
	UnixNano int64
	Data     []byte
	OrigLen  int
	Tx       bool
}

// AdjKind says what to do with a packet whose lookup chose an adjacency.
type AdjKind uint8

const (
	// AdjDrop silently discards (null route).
	AdjDrop AdjKind = iota
	// AdjUnreachable answers with ICMP destination unreachable.
	AdjUnreachable
	// AdjLocal delivers to the dataplane itself (its own addresses).
	AdjLocal
	// AdjRewrite sends on TxIf after prepending Rewrite (empty for tun).
	AdjRewrite
	// AdjIncomplete is a next hop on an L2 interface whose MAC is not known
	// yet: packets trigger an ARP/ND request for NextHop and are dropped.
	AdjIncomplete
	// AdjGlean is an attached subnet on an L2 interface: packets trigger a
	// request for their own destination address.
	AdjGlean
)

var adjKindNames = [...]string{"drop", "unreachable", "local", "rewrite", "incomplete", "glean"}

func (k AdjKind) String() string {
	if int(k) < len(adjKindNames) {
		return adjKindNames[k]
	}
	return "unknown"
}

// Adjacency is a resolved next hop with its precomputed link-layer rewrite.
type Adjacency struct {
	Kind    AdjKind
	TxIf    uint32
	MTU     uint32
	NextHop netip.Addr
	// Rewrite is the Ethernet header for L2 interfaces (dst, src, type);
	// empty for tun interfaces.
	Rewrite    [14]byte
	RewriteLen uint8
}

// LoadBalance spreads packets over adjacencies. Buckets has a power-of-two
// length; weights are expressed by repeating an adjacency. With one bucket
// no flow hash is computed.
type LoadBalance struct {
	Buckets []uint32
	Mask    uint32
}

// VRF is one routing table.
type VRF struct {
	ID  uint32
	IP4 *fib.IP4Snapshot
	IP6 *fib.IP6Snapshot
}

// Snapshot is one immutable version of all forwarding tables.
type Snapshot struct {
	Version    uint64
	Interfaces []*Interface // by index; nil where deleted
	VRFs       []*VRF
	LBs        []LoadBalance
	Adjs       []Adjacency
}

// Interface returns interface i or nil.
func (s *Snapshot) Interface(i uint32) *Interface {
	if int(i) < len(s.Interfaces) {
		return s.Interfaces[i]
	}
	return nil
}
