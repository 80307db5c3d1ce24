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
	"sync"
	"sync/atomic"

	"github.com/vecnet/vecnet/pkg/dataplane/driver"
	"github.com/vecnet/vecnet/pkg/dataplane/fib"
)

// InterfaceKind is the kind of a dataplane interface.
type InterfaceKind uint8

const (
	KindTun InterfaceKind = iota + 1 // L3, no link-layer header
	KindTap                          // L2, Ethernet
	// KindUplink is the node's NIC, reached through an uplink driver
	// (AF_XDP or AF_PACKET). It is L2 like a tap, but the host kernel keeps
	// its addresses (HostAddrs) and resolves its neighbours: the dataplane
	// only borrows the traffic that belongs to pods and tunnels.
	KindUplink
)

func (k InterfaceKind) String() string {
	switch k {
	case KindTun:
		return "tun"
	case KindTap:
		return "tap"
	case KindUplink:
		return "uplink"
	}
	return "unknown"
}

// L2 reports whether the interface carries Ethernet frames.
func (k InterfaceKind) L2() bool { return k == KindTap || k == KindUplink }

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

	// Uplinks only.
	//
	// HostAddrs are the kernel's addresses on the link (the node
	// addresses), followed through netlink; the first IPv4 one is the
	// outer source of tunnels.
	HostAddrs4 [][4]byte
	HostAddrs6 [][16]byte
	// Tx are the driver's transmit queues; worker w uses Tx[w%len(Tx)].
	Tx []*TxQueue
	// TxGSO says the driver takes (unencapsulated) GSO super-packets and
	// TxCsum that it takes partial checksums; without them the dataplane
	// segments and checksums in software first.
	TxGSO, TxCsum bool
	// TxTunnelGSO says the driver also takes VXLAN-encapsulated
	// super-packets (buffer.FlagGSOTunnel): only driver/taptc does.
	TxTunnelGSO bool
	// Down is the link's operational state: frames for a down link are
	// dropped and counted instead of filling the driver's rings.
	Down bool
}

// TxQueue is an uplink driver queue used for transmit. Receive on a queue
// belongs to one worker alone; transmit may come from every worker when
// there are fewer queues than workers, and is then serialised by Mu. The
// driver keeps its receive and transmit state apart, so the lock is never
// taken on the receive path.
type TxQueue struct {
	Q      driver.Queue
	Shared bool
	Mu     sync.Mutex
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
	// AdjEncap sends through a tunnel to NextHop (another node): the
	// packet is encapsulated (Encap, VNI, Src, Port) and then leaves by
	// the underlay adjacency Under.
	AdjEncap
	// AdjHost is an address of the host kernel (a node address): tunnel
	// packets for it are decapsulated by the dataplane, everything else is
	// handed to the host through TxIf, the host tun (dropped when 0).
	AdjHost
)

var adjKindNames = [...]string{"drop", "unreachable", "local", "rewrite", "incomplete", "glean", "encap", "host"}

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

	// AdjEncap only. The outer header goes from Src to NextHop (IPv4);
	// VXLAN's UDP port is the node-wide Snapshot.VXLANPort.
	Encap EncapType
	VNI   uint32
	Src   [4]byte
	Under uint32 // underlay adjacency
}

// EncapType is a tunnel encapsulation.
type EncapType uint8

const (
	EncapNone  EncapType = iota // routed, no tunnel
	EncapIPIP                   // RFC 2003 IPv4-in-IPv4, RFC 4213 IPv6-in-IPv4
	EncapVXLAN                  // RFC 7348, over IPv4 and UDP
)

var encapNames = [...]string{"none", "ipip", "vxlan"}

func (e EncapType) String() string {
	if int(e) < len(encapNames) {
		return encapNames[e]
	}
	return "unknown"
}

// ParseEncap is the inverse of String.
func ParseEncap(s string) (EncapType, bool) {
	for i, n := range encapNames {
		if n == s {
			return EncapType(i), true
		}
	}
	return 0, false
}

// Overhead is the number of bytes the encapsulation adds in front of an
// inner IP packet: outer IPv4 (20), plus UDP (8), VXLAN (8) and the inner
// Ethernet header (14) for VXLAN.
func (e EncapType) Overhead() int {
	switch e {
	case EncapIPIP:
		return 20
	case EncapVXLAN:
		return 50
	}
	return 0
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

	// TunnelPeers are the nodes a tunnel route points to: decapsulation
	// accepts packets from them only, so no stranger can inject packets
	// into pods by wrapping them in IPIP or VXLAN.
	TunnelPeers map[[4]byte]struct{}
	// VNIs are the VXLAN network identifiers in use, VXLANPort their UDP
	// port.
	VNIs      map[uint32]struct{}
	VXLANPort uint16
}

// Interface returns interface i or nil.
func (s *Snapshot) Interface(i uint32) *Interface {
	if int(i) < len(s.Interfaces) {
		return s.Interfaces[i]
	}
	return nil
}
