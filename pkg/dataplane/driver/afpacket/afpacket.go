// Package afpacket is the fallback uplink driver: AF_PACKET sockets with a
// TPACKET_V3 receive ring and sendmmsg(2) transmit, for NICs and kernels
// where AF_XDP (driver/afxdp) is not usable.
//
// Why it can still be fast: every socket is opened with PACKET_VNET_HDR, so
// the kernel hands us GSO super-packets whole (up to 64 KiB, with a 10-byte
// struct virtio_net_hdr in front, virtio 1.x section 5.1.6) and takes plain
// TCP/UDP super-packets back whole (encapsulated ones it cannot: see
// Queue.GSO). The dataplane then pays its per-packet cost once per 64 KiB of
// TCP, exactly as on the tun side (see driver/tun).
//
// Why TPACKET_V3 and not V2 or recvmmsg: V3 packs frames of any size back to
// back into large blocks (Documentation/networking/packet_mmap.rst, "AF_PACKET
// TPACKET_V3 example"), so a block holds thousands of small frames or a few
// super-packets, and the kernel wakes us once per block, not per frame. V2
// would need fixed 64 KiB frame slots to carry a super-packet, wasting 97% of
// the ring on small frames.
//
// AF_PACKET taps a copy of every frame: it does not steal frames from the
// host's stack the way an XDP redirect does. Keeping the host from also
// processing the dataplane's frames is up to whoever attaches the socket
// filter (Options.SocketFilterFD) and the host-side rules; this package only
// moves frames.
//
// A Queue is owned by one worker goroutine and takes no locks; its packet
// path (Receive, Transmit, Flush) does not allocate.
package afpacket

import (
	"errors"
	"fmt"
	"os"
	"time"
	"unsafe"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/pkg/dataplane/driver"
	"golang.org/x/sys/unix"
)

// Defaults of Options.
const (
	// DefaultBlockSize holds four 64 KiB super-packets or ~1500 small frames
	// per block: big enough that a block is not closed for every GSO
	// packet, small enough that a block under light load is retired (by
	// RetireTimeout) without wasting much of the ring.
	DefaultBlockSize = 256 << 10
	// DefaultBlocks gives an 8 MiB ring per queue: ~6 ms of 10 Gbit/s for
	// the worker to be late before the kernel drops. At low rates the
	// retire timer closes a block every RetireTimeout, so the ring then
	// covers Blocks x RetireTimeout (32 ms) instead.
	DefaultBlocks = 32
	// DefaultRetireTimeout bounds the latency a frame waits in a block
	// that is not full yet: with TPACKET_V3 the kernel hands a block to
	// user space only when it is full or this timer retires it, so an
	// idle link adds up to this much to a ping. The timer has jiffy
	// granularity on kernels that do not use an hrtimer for it.
	DefaultRetireTimeout = time.Millisecond

	// minBlockSize must hold the largest frame the kernel can hand us: a
	// 65535-byte IP packet plus Ethernet header, preceded by the block
	// descriptor (48 bytes), the tpacket3_hdr and sockaddr_ll (64) and the
	// virtio-net header. A frame that does not fit would arrive truncated.
	minBlockSize = 68 << 10

	// maxBatch is the number of frames sent with one sendmmsg(2).
	maxBatch = 64

	// sndBuf is the socket send buffer: one full batch of super-packets
	// (64 x 64 KiB) must fit or sendmmsg fails with EAGAIN half-way.
	sndBuf = 8 << 20
)

// Options configure Open. Zero values pick the defaults.
type Options struct {
	// Queues is the number of sockets, one per worker. With more than one
	// they join a PACKET_FANOUT group that hashes flows over them.
	Queues int
	// SocketFilterFD is an eBPF program of type BPF_PROG_TYPE_SOCKET_FILTER
	// attached to every socket with SO_ATTACH_BPF before it is bound, so
	// no frame it rejects is ever queued; 0 attaches none. Its return value
	// is the number of bytes to keep: it must return at least the frame
	// length (skb->len) for frames it accepts (not a classic 65535, which
	// would truncate super-packets; truncated frames are dropped).
	SocketFilterFD int
	// BlockSize is the size of one ring block, a multiple of the page size
	// and at least 68 KiB. Blocks is their number.
	BlockSize int
	Blocks    int
	// RetireTimeout is the longest a partly filled block waits before the
	// kernel hands it over (tp_retire_blk_tov, millisecond resolution).
	RetireTimeout time.Duration
}

// Queue is one AF_PACKET socket with its receive ring and transmit batch.
type Queue struct {
	fd      int
	ifindex int
	mtu     int
	gso     bool

	// Receive ring (TPACKET_V3): blocks of blockSize bytes. cur is the
	// block being consumed; left is the number of its frames not consumed
	// yet, or -1 when cur has not been taken from the kernel; off is the
	// offset of the next frame in cur.
	ring      []byte
	blockSize int
	nBlocks   int
	cur       int
	left      int
	off       int

	// Transmit batch: bufs[:n] are the queued buffers of pool, msgs[i]
	// points at iov[i], which covers the virtio-net header and the frame.
	pool *buffer.Pool
	n    int
	bufs [maxBatch]buffer.Index
	iov  [maxBatch]unix.Iovec
	msgs [maxBatch]unix.Mmsghdr

	stats       driver.QueueStats
	kstats      unix.TpacketStatsV3
	kstatsLen   uint32
	kernelDrops uint64
}

var _ driver.Queue = (*Queue)(nil)

var errClosed = errors.New("afpacket: queue closed")

// Open opens opts.Queues sockets on interface ifname, in the network
// namespace of the calling OS thread: a caller that switched namespaces must
// hold runtime.LockOSThread across Open. The sockets stay in that namespace
// whatever thread uses them later.
func Open(ifname string, opts Options) (qs []*Queue, err error) {
	if opts.Queues <= 0 {
		opts.Queues = 1
	}
	if opts.BlockSize == 0 {
		opts.BlockSize = DefaultBlockSize
	}
	if opts.Blocks == 0 {
		opts.Blocks = DefaultBlocks
	}
	if opts.RetireTimeout == 0 {
		opts.RetireTimeout = DefaultRetireTimeout
	}
	if opts.BlockSize < minBlockSize || opts.BlockSize%os.Getpagesize() != 0 {
		return nil, fmt.Errorf("afpacket: block size %d: must be a multiple of %d and at least %d", opts.BlockSize, os.Getpagesize(), minBlockSize)
	}
	if opts.Blocks < 2 {
		return nil, fmt.Errorf("afpacket: %d blocks: need at least 2", opts.Blocks)
	}
	defer func() {
		if err != nil {
			for _, q := range qs {
				q.Close()
			}
			qs = nil
		}
	}()
	var group uint16
	var flags int
	for i := 0; i < opts.Queues; i++ {
		// Queues after the first are bound before they can join the
		// group (the kernel wants a bound socket), and until they do,
		// their own packet hook would receive a second copy of frames
		// the group already delivers. They start with a filter that
		// drops everything and get the real one once in the group.
		joining := i > 0
		q, err := open(ifname, opts, joining)
		if err != nil {
			return qs, fmt.Errorf("afpacket: %s queue %d: %w", ifname, i, err)
		}
		qs = append(qs, q)
		if opts.Queues == 1 {
			break
		}
		if i == 0 {
			group, flags, err = q.createFanout()
		} else if err = q.joinFanout(group, flags); err == nil {
			err = q.attachFilter(opts.SocketFilterFD)
		}
		if err != nil {
			return qs, fmt.Errorf("afpacket: %s queue %d: fanout: %w", ifname, i, err)
		}
	}
	return qs, nil
}

// open sets up one socket. The order matters:
//
//   - The socket is created with protocol 0, which receives nothing until
//     bind(2) names a protocol (packet(7)). The filter is attached before
//     bind, so not one frame that the filter would reject is ever queued and
//     there is nothing to drain afterwards (the usual race of a socket
//     created with ETH_P_ALL, which collects every frame of every interface
//     until it is bound and filtered).
//   - PACKET_VNET_HDR and PACKET_VERSION must be set before PACKET_RX_RING:
//     the kernel refuses both (EBUSY) once a ring exists, because the ring's
//     frame layout depends on them.
//   - Fanout (in Open) needs a bound socket. With dropAll, the socket is
//     bound with a filter that drops every frame, for Open to replace once
//     the socket is in its fanout group.
func open(ifname string, opts Options, dropAll bool) (_ *Queue, err error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	q := &Queue{fd: fd, left: -1, blockSize: opts.BlockSize, nBlocks: opts.Blocks}
	defer func() {
		if err != nil {
			q.Close()
		}
	}()
	for i := range q.msgs {
		q.msgs[i].Hdr.Iov = &q.iov[i]
		q.msgs[i].Hdr.SetIovlen(1)
	}

	// The ioctls run against the socket's own namespace, so they see the
	// same interface the socket binds to.
	ifr, err := unix.NewIfreq(ifname)
	if err != nil {
		return nil, err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return nil, fmt.Errorf("interface %q: %w", ifname, err)
	}
	q.ifindex = int(ifr.Uint32())
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFMTU, ifr); err != nil {
		return nil, fmt.Errorf("interface %q: mtu: %w", ifname, err)
	}
	q.mtu = int(ifr.Uint32())
	// Devices without ethtool support (lo, some virtual ones) fail here;
	// they are not veth, so GSO stays off.
	if di, err := unix.IoctlGetEthtoolDrvinfo(fd, ifname); err == nil {
		q.gso = unix.ByteSliceToString(di.Driver[:]) == "veth"
	}

	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
		return nil, fmt.Errorf("PACKET_VNET_HDR: %w", err)
	}
	// Without this we would see every frame we send (and the host sends)
	// on the uplink as received. Kernels before 4.20 lack it; Receive
	// skips PACKET_OUTGOING frames anyway.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil && err != unix.ENOPROTOOPT {
		return nil, fmt.Errorf("PACKET_IGNORE_OUTGOING: %w", err)
	}
	if dropAll {
		drop := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}
		if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: 1, Filter: &drop[0]}); err != nil {
			return nil, fmt.Errorf("SO_ATTACH_FILTER: %w", err)
		}
	} else if opts.SocketFilterFD > 0 {
		if err := q.attachFilter(opts.SocketFilterFD); err != nil {
			return nil, err
		}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return nil, fmt.Errorf("PACKET_VERSION: %w", err)
	}
	tov := opts.RetireTimeout.Milliseconds()
	if tov < 1 {
		tov = 1
	}
	// tp_frame_size means nothing to V3 (frames are packed back to back)
	// but the kernel still checks that block_nr * block_size / frame_size
	// == frame_nr.
	const frameSize = 2048
	req := unix.TpacketReq3{
		Block_size:     uint32(opts.BlockSize),
		Block_nr:       uint32(opts.Blocks),
		Frame_size:     frameSize,
		Frame_nr:       uint32(opts.Blocks * (opts.BlockSize / frameSize)),
		Retire_blk_tov: uint32(tov),
	}
	if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return nil, fmt.Errorf("PACKET_RX_RING: %w", err)
	}
	q.ring, err = unix.Mmap(fd, 0, opts.BlockSize*opts.Blocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("mmap ring: %w", err)
	}
	// SO_SNDBUFFORCE may exceed wmem_max (needs CAP_NET_ADMIN); fall back
	// to what the sysctl allows.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, sndBuf); err != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, sndBuf)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: q.ifindex}); err != nil {
		return nil, fmt.Errorf("bind: %w", err)
	}
	return q, nil
}

// attachFilter attaches eBPF socket filter prog (replacing any filter), or
// with prog 0 removes the filter.
func (q *Queue) attachFilter(prog int) error {
	if prog > 0 {
		if err := unix.SetsockoptInt(q.fd, unix.SOL_SOCKET, unix.SO_ATTACH_BPF, prog); err != nil {
			return fmt.Errorf("SO_ATTACH_BPF: %w", err)
		}
		return nil
	}
	if err := unix.SetsockoptInt(q.fd, unix.SOL_SOCKET, unix.SO_DETACH_FILTER, 0); err != nil && err != unix.ENOENT {
		return fmt.Errorf("SO_DETACH_FILTER: %w", err)
	}
	return nil
}

// fanoutFlags: hash flows over the group (PACKET_FANOUT_HASH) so a flow stays
// on one queue and in order; DEFRAG reassembles IPv4 fragments before
// hashing, so a fragmented datagram is not split over queues (the queue then
// receives the reassembled datagram, possibly larger than the MTU, without
// FlagGSO). IGNORE_OUTGOING is the group's version of PACKET_IGNORE_OUTGOING:
// a fanout group has its own packet hook, which ignores the member sockets'
// option (Linux 6.2+; older kernels refuse the flag).
const fanoutFlags = unix.PACKET_FANOUT_HASH | unix.PACKET_FANOUT_FLAG_DEFRAG | unix.PACKET_FANOUT_FLAG_IGNORE_OUTGOING

// createFanout makes q the first member of a new fanout group. Group ids are
// per network namespace and anyone can join a group by id, so rather than
// pick one (and maybe join a stranger's group) we let the kernel allocate an
// unused id (PACKET_FANOUT_FLAG_UNIQUEID) and read it back.
func (q *Queue) createFanout() (group uint16, flags int, err error) {
	flags = fanoutFlags
	err = unix.SetsockoptInt(q.fd, unix.SOL_PACKET, unix.PACKET_FANOUT, (flags|unix.PACKET_FANOUT_FLAG_UNIQUEID)<<16)
	if err == unix.EINVAL {
		flags &^= unix.PACKET_FANOUT_FLAG_IGNORE_OUTGOING
		err = unix.SetsockoptInt(q.fd, unix.SOL_PACKET, unix.PACKET_FANOUT, (flags|unix.PACKET_FANOUT_FLAG_UNIQUEID)<<16)
	}
	if err != nil {
		return 0, 0, err
	}
	v, err := unix.GetsockoptInt(q.fd, unix.SOL_PACKET, unix.PACKET_FANOUT)
	if err != nil {
		return 0, 0, err
	}
	return uint16(v), flags, nil
}

// joinFanout adds q to the group of the first queue; the kernel requires the
// same type and flags as the group's (UNIQUEID is only for its creation).
func (q *Queue) joinFanout(group uint16, flags int) error {
	return unix.SetsockoptInt(q.fd, unix.SOL_PACKET, unix.PACKET_FANOUT, int(group)|flags<<16)
}

// FD is the socket: it polls readable (EPOLLIN) when a ring block is ready
// for Receive.
func (q *Queue) FD() int { return q.fd }

// GSO reports whether frames with buffer.FlagGSO may be transmitted on this
// link as they are. It is true only on veth.
//
// Why not on every link: vecnetd sends VXLAN- and IPIP-encapsulated TCP
// super-packets that carry the inner TCP's gso_type (the virtio-net header
// has no tunnel GSO types). A veth, and a bridge behind it, pass an skb whole
// to the next node's stack, which delivers or segments it correctly. A real
// NIC would segment it with TSO as if the outer header were the TCP/IP
// header, so there the dataplane must segment in software before Transmit.
//
// Measured on Linux 6.18, and a limit to the above: AF_PACKET marks every
// super-packet it is handed SKB_GSO_DODGY (untrusted), and veth lacks
// NETIF_F_GSO_ROBUST, so the sending kernel re-checks the skb with the GSO
// handler of its outermost L4 header before the veth gets it. Plain TCP and
// UDP super-packets pass that check and cross the veth whole; encapsulated
// ones do not (udp4_ufo_fragment and ipip_gso_segment refuse a TCP
// gso_type) and would be dropped, so Transmit refuses them with
// driver.ErrTooBig on every link and the dataplane has to segment them.
func (q *Queue) GSO() bool { return q.gso }

// MTU is the link MTU read at Open. Transmit refuses frames longer than MTU
// plus the link-layer header unless they are GSO super-packets.
func (q *Queue) MTU() int { return q.mtu }

// SetMTU updates the MTU after the link changed (netlink RTM_NEWLINK).
func (q *Queue) SetMTU(mtu int) { q.mtu = mtu }

// Stats returns the queue's counters. RxDropped includes the frames the
// kernel dropped because the ring was full (PACKET_STATISTICS).
func (q *Queue) Stats() driver.QueueStats {
	q.foldKernelStats()
	s := q.stats
	s.RxDropped += q.kernelDrops
	return s
}

// foldKernelStats adds the kernel's drop counter to ours. Reading
// PACKET_STATISTICS resets it, which also clears TP_STATUS_LOSING on the
// next blocks.
func (q *Queue) foldKernelStats() {
	if q.fd < 0 {
		return
	}
	q.kstatsLen = uint32(unsafe.Sizeof(q.kstats))
	_, _, e := unix.RawSyscall6(unix.SYS_GETSOCKOPT, uintptr(q.fd), unix.SOL_PACKET, unix.PACKET_STATISTICS,
		uintptr(unsafe.Pointer(&q.kstats)), uintptr(unsafe.Pointer(&q.kstatsLen)), 0)
	if e == 0 {
		q.kernelDrops += uint64(q.kstats.Drops)
	}
}

// Close sends what Transmit queued, unmaps the ring and closes the socket.
// It is idempotent.
func (q *Queue) Close() error {
	if q.fd < 0 {
		return nil
	}
	if q.n > 0 {
		_ = q.Flush(q.pool)
	}
	q.foldKernelStats()
	var err error
	if q.ring != nil {
		err = unix.Munmap(q.ring)
		q.ring = nil
	}
	if e := unix.Close(q.fd); e != nil && err == nil {
		err = e
	}
	q.fd = -1
	return err
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
