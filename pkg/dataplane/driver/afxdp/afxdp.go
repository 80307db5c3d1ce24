// Package afxdp is the uplink driver built on AF_XDP sockets
// (Documentation/networking/af_xdp.rst): one socket per uplink rx/tx queue,
// each with its own UMEM, served by one dataplane worker.
//
// # How frames move
//
// An AF_XDP socket shares four single-producer/single-consumer rings with the
// kernel, all living in memory both sides have mapped:
//
//   - The UMEM is a region of user memory cut into equal frames ("chunks")
//     that the kernel reads and writes packets in. We register one per queue
//     (XDP_UMEM_REG) rather than share one between queues, so that a queue
//     has a single owner and needs no locking.
//   - The fill ring carries UMEM frame addresses from us to the kernel: frames
//     it may receive into. The rx ring carries descriptors (address, length)
//     of received frames back to us.
//   - The tx ring carries descriptors of frames we want sent; the completion
//     ring returns their addresses once the kernel no longer needs them.
//
// Half of the UMEM frames are rx frames: they cycle fill -> kernel -> rx ->
// (copied into a worker buffer) -> fill, so the fill ring, sized to hold all
// of them, can never overflow. The other half are tx frames, kept on a free
// list: free list -> tx ring -> kernel -> completion ring -> free list.
//
// The packet data is copied once in each direction between the UMEM and the
// worker's buffer.Pool. A zero-copy handoff (the pool's buffers being UMEM
// frames) would save that copy, but the dataplane moves packets between
// uplinks, tun devices and GSO buffers that can never live in one UMEM, and
// a 1500-byte copy costs less than the per-frame bookkeeping a shared
// ownership scheme would need. "zerocopy" in Mode refers to the NIC DMAing
// straight into the UMEM (XDP_ZEROCOPY), which we do use when the driver
// supports it.
//
// # Index ordering
//
// Producer and consumer indices are free-running u32s in the shared ring
// header. The kernel's xsk_queue.h pairs them with barriers; we use
// sync/atomic: a producer writes its entries, then stores the producer index
// (atomic store, a release: entries are visible before the index); a
// consumer loads the producer index (atomic load, an acquire: entries are
// read after it), reads the entries, then stores its consumer index (the
// kernel may overwrite the slots only after that). Like libxdp we cache the
// other side's index and reload it only when the cached value says the ring
// is empty or full, so most batches touch the shared cache line once.
//
// # Waking the kernel (need_wakeup)
//
// The socket is bound with XDP_USE_NEED_WAKEUP: the kernel sets
// XDP_RING_NEED_WAKEUP in a ring's flags only when it stopped processing
// that ring and needs a syscall to restart, so a busy queue makes no
// syscalls but the batched sendto in Flush. In copy mode (every driver
// without AF_XDP zero-copy support, veth included) transmission happens
// only inside sendto (or poll), so Flush always kicks there.
//
// The fill ring's flag is set only by zero-copy drivers, when they ran out
// of fill entries and stopped polling the queue. poll/epoll on FD() wakes
// such a driver (xsk_poll calls ndo_xsk_wakeup), but only when epoll
// actually calls into the socket, which it does not while no event is
// pending on it, so Receive kicks explicitly with recvfrom(MSG_DONTWAIT)
// after refilling when the flag is set. Neither costs anything in copy mode.
//
// # What the caller must know
//
// A Queue is served by one worker goroutine; no method is safe for
// concurrent use. The XDP program that redirects frames into the socket
// (bpf_redirect_map on an XSKMAP at index queueID) is attached by package
// uplinkfilter, which puts FD() into its map. Without multi-buffer
// (XDP_USE_SG) a frame is at most one UMEM frame, so GSO super-packets and
// partial checksums cannot be handed to the kernel: the caller segments
// first (Transmit refuses FlagGSO with driver.ErrTooBig) and partial
// checksums are finished in software as a last resort.
package afxdp

import (
	"errors"
	"fmt"
	"net"
	"time"
	"unsafe"

	"github.com/vecnet/vecnet/pkg/dataplane/driver"
	"golang.org/x/sys/unix"
)

// Defaults of Options.
const (
	// DefaultNumFrames gives each queue 2048 rx and 2048 tx frames: enough
	// to absorb a few milliseconds of line rate while the worker is busy
	// elsewhere, at 16 MiB of UMEM per queue with 4 KiB frames.
	DefaultNumFrames = 4096
	// DefaultFrameSize is one page per frame: the layout every zero-copy
	// driver supports, and room for a 1500-byte MTU frame after the 256
	// bytes of XDP_PACKET_HEADROOM the kernel reserves in each rx frame,
	// up to the 2048 data bytes of a small pool buffer.
	DefaultFrameSize = 4096
)

// bindBusyWait is how long Open retries a bind that fails with EBUSY.
const bindBusyWait = time.Second

// BindMode selects how the socket is bound.
type BindMode int

const (
	// BindAuto tries XDP_ZEROCOPY and falls back to XDP_COPY.
	BindAuto BindMode = iota
	// BindCopy forces copy mode (XDP_COPY), e.g. to rule out a driver bug.
	BindCopy
	// BindZeroCopy fails rather than fall back to copy mode.
	BindZeroCopy
)

// Options size a queue. The zero value means the defaults.
type Options struct {
	// NumFrames is the number of UMEM frames, a power of two >= 64; half
	// are rx frames, half tx frames, and each ring has NumFrames/2 slots.
	NumFrames int
	// FrameSize is the UMEM frame (chunk) size: 2048 or 4096. With 2048 an
	// rx frame holds at most 1792 bytes (2048 minus XDP_PACKET_HEADROOM).
	FrameSize int
	// Bind selects zero-copy or copy mode.
	Bind BindMode
}

// Queue is an AF_XDP socket bound to one queue of an interface, with its
// UMEM and rings. It implements driver.Queue.
type Queue struct {
	fd       int
	ifindex  int
	queueID  int
	zerocopy bool

	umem      []byte
	frameSize uint32
	frameMask uint64 // frameSize-1: addr&^frameMask is the frame's base

	fill addrRing // producer: us
	comp addrRing // consumer: us
	rx   descRing // consumer: us
	tx   descRing // producer: us

	// txFree is a stack of free tx frame addresses; its capacity is the
	// number of tx frames, so pushing never reallocates.
	txFree []uint64
	// txPublished is the tx producer index last stored for the kernel;
	// tx.cachedProd runs ahead of it between Transmit and Flush.
	txPublished uint32
	// bigBudget: XDP_MAX_TX_SKB_BUDGET took, one sendto sends a full ring.
	bigBudget bool

	stats counters
}

type counters struct {
	rxFrames    uint64
	rxTooBig    uint64 // longer than a small buffer, or multi-buffer
	txCompleted uint64 // addresses returned on the completion ring
	txDropped   uint64 // EBUSY: the device dropped a frame after we handed it over
	txDeferred  uint64 // Flushes that left frames in the tx ring for the next one
}

// Open creates an AF_XDP socket on queue queueID of ifname, in the network
// namespace of the calling thread, and binds it.
func Open(ifname string, queueID int, opts Options) (*Queue, error) {
	if opts.NumFrames == 0 {
		opts.NumFrames = DefaultNumFrames
	}
	if opts.FrameSize == 0 {
		opts.FrameSize = DefaultFrameSize
	}
	n := opts.NumFrames
	if n < 64 || n&(n-1) != 0 || n > 1<<20 {
		return nil, fmt.Errorf("afxdp: NumFrames %d: want a power of two in [64, 2^20]", n)
	}
	if opts.FrameSize != 2048 && opts.FrameSize != 4096 {
		return nil, fmt.Errorf("afxdp: FrameSize %d: want 2048 or 4096", opts.FrameSize)
	}
	if queueID < 0 {
		return nil, fmt.Errorf("afxdp: bad queue id %d", queueID)
	}
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("afxdp: %w", err)
	}
	q := &Queue{fd: -1, ifindex: ifi.Index, queueID: queueID}
	if err := q.open(uint32(n), uint32(opts.FrameSize), opts.Bind); err != nil {
		q.Close()
		return nil, fmt.Errorf("afxdp: %s queue %d: %w", ifname, queueID, err)
	}
	return q, nil
}

func (q *Queue) open(nFrames, frameSize uint32, mode BindMode) error {
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket(AF_XDP): %w", err)
	}
	q.fd = fd
	q.frameSize = frameSize
	q.frameMask = uint64(frameSize - 1)

	// The UMEM: anonymous, page-aligned (mmap guarantees it, XDP_UMEM_REG
	// requires it) and populated up front so the kernel can pin it at once.
	q.umem, err = unix.Mmap(-1, 0, int(nFrames*frameSize),
		unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("mmap UMEM: %w", err)
	}
	reg := unix.XDPUmemReg{
		Addr: uint64(uintptr(unsafe.Pointer(&q.umem[0]))),
		Len:  uint64(len(q.umem)),
		Size: frameSize,
	}
	if err := setsockopt(fd, unix.XDP_UMEM_REG, unsafe.Pointer(&reg), unsafe.Sizeof(reg)); err != nil {
		return fmt.Errorf("XDP_UMEM_REG: %w", err)
	}

	half := nFrames / 2
	for _, r := range [...]struct {
		opt  int
		name string
	}{
		{unix.XDP_UMEM_FILL_RING, "XDP_UMEM_FILL_RING"},
		{unix.XDP_UMEM_COMPLETION_RING, "XDP_UMEM_COMPLETION_RING"},
		{unix.XDP_RX_RING, "XDP_RX_RING"},
		{unix.XDP_TX_RING, "XDP_TX_RING"},
	} {
		if err := unix.SetsockoptInt(fd, unix.SOL_XDP, r.opt, int(half)); err != nil {
			return fmt.Errorf("%s: %w", r.name, err)
		}
	}
	// Copy-mode transmission sends at most max_tx_budget frames per sendto
	// (32 by default) and returns EAGAIN for the rest; a budget of the
	// whole ring lets Flush send a full ring in one syscall. Kernels
	// before 6.17 lack the option; Flush then loops on EAGAIN instead.
	q.bigBudget = unix.SetsockoptInt(fd, unix.SOL_XDP, unix.XDP_MAX_TX_SKB_BUDGET, int(half)) == nil

	var off unix.XDPMmapOffsets
	offLen := uint32(unsafe.Sizeof(off))
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, unix.XDP_MMAP_OFFSETS,
		uintptr(unsafe.Pointer(&off)), uintptr(unsafe.Pointer(&offLen)), 0); e != 0 {
		return fmt.Errorf("XDP_MMAP_OFFSETS: %w", e)
	}
	if offLen < uint32(unsafe.Sizeof(off)) {
		return errors.New("XDP_MMAP_OFFSETS: kernel without ring flags (need_wakeup), need Linux >= 5.4")
	}
	if err := q.fill.mmap(fd, unix.XDP_UMEM_PGOFF_FILL_RING, &off.Fr, half, true); err != nil {
		return fmt.Errorf("mmap fill ring: %w", err)
	}
	if err := q.comp.mmap(fd, unix.XDP_UMEM_PGOFF_COMPLETION_RING, &off.Cr, half, false); err != nil {
		return fmt.Errorf("mmap completion ring: %w", err)
	}
	if err := q.rx.mmap(fd, unix.XDP_PGOFF_RX_RING, &off.Rx, half, false); err != nil {
		return fmt.Errorf("mmap rx ring: %w", err)
	}
	if err := q.tx.mmap(fd, unix.XDP_PGOFF_TX_RING, &off.Tx, half, true); err != nil {
		return fmt.Errorf("mmap tx ring: %w", err)
	}

	// A socket closed a moment ago still holds the queue: the kernel
	// detaches its buffer pool from the device in deferred work
	// (xp_release_deferred), and bind says EBUSY until then. Reopening a
	// queue right after closing it is normal (reconfiguration, tests), so
	// wait for that a little before calling the queue taken.
	for deadline := time.Now().Add(bindBusyWait); ; {
		err := q.bind(mode)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Frames [0, half) are rx frames, handed to the kernel now; frames
	// [half, nFrames) are tx frames on the free list.
	for i := range half {
		q.fill.addrs[i] = uint64(i) * uint64(frameSize)
	}
	q.fill.cachedProd = half
	q.fill.publish()
	q.txFree = make([]uint64, half)
	for i := range half {
		q.txFree[i] = uint64(nFrames-1-i) * uint64(frameSize)
	}
	q.wakeFill()
	return nil
}

// bind binds the socket, in zero-copy mode when the driver supports it.
func (q *Queue) bind(mode BindMode) error {
	sa := unix.SockaddrXDP{Ifindex: uint32(q.ifindex), QueueID: uint32(q.queueID)}
	var err error
	if mode != BindCopy {
		sa.Flags = unix.XDP_ZEROCOPY | unix.XDP_USE_NEED_WAKEUP
		err = unix.Bind(q.fd, &sa)
		if err == nil || mode == BindZeroCopy {
			if err != nil {
				return fmt.Errorf("bind (zero-copy): %w", err)
			}
			return q.readMode()
		}
		// A failed bind leaves the socket unbound with its UMEM and rings
		// intact (the kernel destroys only the buffer pool it tried to
		// attach), so the same socket can be bound again in copy mode.
	}
	sa.Flags = unix.XDP_COPY | unix.XDP_USE_NEED_WAKEUP
	if err2 := unix.Bind(q.fd, &sa); err2 != nil {
		if err != nil {
			return fmt.Errorf("bind: zero-copy: %v; copy: %w", err, err2)
		}
		return fmt.Errorf("bind (copy): %w", err2)
	}
	return q.readMode()
}

// readMode asks the kernel which mode the bind ended up in rather than
// trusting the flags we passed.
func (q *Queue) readMode() error {
	var opts struct{ Flags uint32 } // struct xdp_options
	l := uint32(unsafe.Sizeof(opts))
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(q.fd), unix.SOL_XDP, unix.XDP_OPTIONS,
		uintptr(unsafe.Pointer(&opts)), uintptr(unsafe.Pointer(&l)), 0); e != 0 {
		return fmt.Errorf("XDP_OPTIONS: %w", e)
	}
	q.zerocopy = opts.Flags&unix.XDP_OPTIONS_ZEROCOPY != 0
	return nil
}

// FD is the socket: readable (EPOLLIN) when the rx ring has frames.
func (q *Queue) FD() int { return q.fd }

// Mode reports "zerocopy" when the driver DMAs into the UMEM (XDP_ZEROCOPY)
// and "copy" when the kernel copies between its buffers and the UMEM.
func (q *Queue) Mode() string {
	if q.zerocopy {
		return "zerocopy"
	}
	return "copy"
}

// FrameSize is the UMEM frame size, the largest frame Transmit accepts.
func (q *Queue) FrameSize() int { return int(q.frameSize) }

// KernelStats returns the socket's XDP_STATISTICS counters.
func (q *Queue) KernelStats() (unix.XDPStatistics, error) {
	var s unix.XDPStatistics
	if q.fd < 0 {
		return s, driver.ErrDown
	}
	l := uint32(unsafe.Sizeof(s))
	// Syscall, not RawSyscall: the kernel takes the socket's mutex.
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(q.fd), unix.SOL_XDP, unix.XDP_STATISTICS,
		uintptr(unsafe.Pointer(&s)), uintptr(unsafe.Pointer(&l)), 0); e != 0 {
		return s, e
	}
	return s, nil
}

// TxDeferred counts Flushes that left frames in the tx ring because the
// kernel made no progress (EAGAIN: the device queue is stopped or the
// socket's send buffer is full); the next Flush sends them.
func (q *Queue) TxDeferred() uint64 { return q.stats.txDeferred }

// Stats returns the queue's counters, the kernel's included:
//
//   - RxDropped adds frames too long for a small buffer to the kernel's
//     rx_dropped (no fill entry, frame larger than a UMEM frame) and
//     rx_ring_full (we did not drain the rx ring in time).
//     rx_fill_ring_empty_descs is not added: in copy mode every such event
//     is already counted in rx_dropped (the same failed allocation), and in
//     zero-copy mode it counts refill attempts of the driver, not frames
//     (the NIC's own counters have those drops). KernelStats has it.
//   - TxFrames counts frames the kernel completed, less TxDropped's EBUSY
//     part (completed but dropped by the device).
//   - TxDropped adds the kernel's tx_invalid_descs.
func (q *Queue) Stats() driver.QueueStats {
	s := driver.QueueStats{
		RxFrames:  q.stats.rxFrames,
		RxDropped: q.stats.rxTooBig,
		TxDropped: q.stats.txDropped,
	}
	if q.stats.txCompleted > q.stats.txDropped {
		s.TxFrames = q.stats.txCompleted - q.stats.txDropped
	}
	if k, err := q.KernelStats(); err == nil {
		s.RxDropped += k.Rx_dropped + k.Rx_ring_full
		s.TxDropped += k.Tx_invalid_descs
	}
	return s
}

// Close unmaps the rings and the UMEM and closes the socket. Frames still in
// the tx ring are lost. Calling Close again does nothing.
func (q *Queue) Close() error {
	var errs []error
	if q.fd >= 0 {
		errs = append(errs, unix.Close(q.fd))
		q.fd = -1
	}
	errs = append(errs, q.fill.unmap(), q.comp.unmap(), q.rx.unmap(), q.tx.unmap())
	if q.umem != nil {
		errs = append(errs, unix.Munmap(q.umem))
		q.umem = nil
	}
	q.txFree = nil
	return errors.Join(errs...)
}

func setsockopt(fd, opt int, p unsafe.Pointer, l uintptr) error {
	if _, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt),
		uintptr(p), l, 0); e != 0 {
		return e
	}
	return nil
}

var _ driver.Queue = (*Queue)(nil)
