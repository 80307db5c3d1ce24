// Package driver holds what every uplink driver (driver/afxdp,
// driver/afpacket) offers the dataplane: queues that receive and transmit
// Ethernet frames in a worker's buffer pool. Pod interfaces use driver/tun,
// which has its own read/write path because a tun carries one packet per
// syscall and never needs a ring.
package driver

import (
	"errors"
	"net/netip"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
)

// Queue is one rx/tx queue pair of an uplink, served by exactly one worker
// goroutine: no method is safe for concurrent use.
//
// Frames are Ethernet frames. A driver with offloads (AF_PACKET with a
// virtio-net header) sets buffer.FlagGSO, FlagCsumPart, FlagCsumOK and the
// GSO fields of buffer.Meta exactly as driver/tun does for a tap: CsumStart
// and HdrLen relative to the L3 header (frame offset minus 14), GSOType one
// of the virtio-net GSO types.
type Queue interface {
	// FD becomes readable (EPOLLIN) when Receive has frames, so an idle
	// worker can sleep in epoll_wait on it.
	FD() int
	// Receive moves up to len(out) received frames into buffers allocated
	// from p and returns how many it stored. It never blocks. When p runs
	// out of buffers it returns the frames it has and leaves the rest in
	// the ring (they are not lost).
	Receive(p *buffer.Pool, out []buffer.Index) int
	// Transmit queues frame b of p. On nil error the queue owns b and frees
	// it to p once it is sent (at the latest in Flush); on error the caller
	// still owns b and drops it, counting the reason (ErrTxFull, ErrDown,
	// ErrTooBig, or another error for a failed syscall).
	Transmit(p *buffer.Pool, b buffer.Index) error
	// Flush hands queued frames to the kernel, one syscall per batch.
	Flush(p *buffer.Pool) error
	// Stats returns the queue's own counters.
	Stats() QueueStats
}

// QueueStats are a queue's counters, read by vecnetctl show interfaces.
type QueueStats struct {
	RxFrames, TxFrames uint64
	// RxDropped counts frames the kernel or the driver dropped on receive
	// (ring full, no buffer, truncated).
	RxDropped uint64
	// TxDropped counts frames lost after Transmit accepted them.
	TxDropped uint64
}

// Errors of Transmit.
var (
	ErrTxFull = errors.New("transmit ring full")
	ErrDown   = errors.New("link down")
	ErrTooBig = errors.New("frame larger than the queue can carry")
)

// Filter is what the dataplane owns on an uplink: a frame is steered to
// vecnetd (and kept from the kernel) only when
//
//   - its IPv4/IPv6 destination lies in one of Prefixes (pods and services), or
//   - its IPv4 destination is one of NodeAddrs and it is IP-in-IP (protocol
//     4), IPv6-in-IPv4 (protocol 41), or UDP to one of UDPPorts (VXLAN).
//
// Everything else (ARP, ND, ssh, DHCP, DNS, kubelet, BGP, ...) belongs to the
// host's kernel and is never touched.
type Filter struct {
	Prefixes  []netip.Prefix
	NodeAddrs []netip.Addr
	UDPPorts  []uint16
}
