package afxdp

import (
	"errors"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/pkg/dataplane/driver"
	"github.com/vecnet/vecnet/pkg/header"
	"golang.org/x/sys/unix"
)

// errEmpty is Transmit's answer to a zero-length frame: the kernel would
// count its descriptor as invalid and never complete it, leaking the frame.
var errEmpty = errors.New("afxdp: empty frame")

// Receive copies up to len(out) received frames into small buffers of p,
// starting at buffer.Headroom, and returns how many it stored. The UMEM
// frames go back to the fill ring in one batch. When p runs out of buffers
// the remaining descriptors stay in the rx ring for the next call. Frames
// longer than a small buffer's 2048 data bytes are dropped and counted in
// Stats().RxDropped.
func (q *Queue) Receive(p *buffer.Pool, out []buffer.Index) int {
	if q.fd < 0 || len(out) == 0 {
		return 0
	}
	n := q.rx.avail(uint32(len(out)))
	if n == 0 {
		return 0
	}
	// Every rx frame is in exactly one place: the fill ring, the kernel,
	// the rx ring or this loop. The fill ring has a slot for each, so this
	// never limits n; it only keeps a broken invariant from overwriting
	// entries the kernel has not read.
	n = q.fill.free(n)

	got := 0
	rxCons, fillProd := q.rx.cachedCons, q.fill.cachedProd
	var i uint32
	for ; i < n; i++ {
		d := &q.rx.descs[(rxCons+i)&q.rx.mask]
		if d.Len > buffer.SmallDataSize || d.Options&unix.XDP_PKT_CONTD != 0 {
			// Cannot happen on a 2048-byte UMEM frame (1792 bytes of
			// data at most); on a 4096-byte one it is a jumbo frame the
			// pool has no room for.
			q.stats.rxTooBig++
		} else {
			b, ok := p.Alloc()
			if !ok {
				break
			}
			data := p.Data(b)
			copy(data[buffer.Headroom:buffer.Headroom+int(d.Len)], q.umem[d.Addr:d.Addr+uint64(d.Len)])
			p.Meta(b).Len = int32(d.Len)
			out[got] = b
			got++
		}
		// The rx descriptor points past the kernel's headroom; the fill
		// ring wants the frame (the kernel would mask it anyway).
		q.fill.addrs[(fillProd+i)&q.fill.mask] = d.Addr &^ q.frameMask
	}
	if i == 0 {
		return 0
	}
	q.fill.cachedProd = fillProd + i
	q.fill.publish()
	q.rx.release(i)
	q.stats.rxFrames += uint64(got)
	q.wakeFill()
	return got
}

// wakeFill kicks a zero-copy driver that stopped polling the queue for lack
// of fill entries (it set XDP_RING_NEED_WAKEUP on the fill ring). Copy mode
// never sets the flag: the kernel takes fill entries as frames arrive.
func (q *Queue) wakeFill() {
	if q.fill.needWakeup() {
		unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(q.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	}
}

// Transmit copies frame b into a free tx UMEM frame and queues its
// descriptor; Flush hands it to the kernel. On success b is freed to p.
//
// It fails with driver.ErrTxFull when every tx frame is in flight (after
// reaping the completion ring) and with driver.ErrTooBig for a frame larger
// than a UMEM frame or a GSO super-packet, which AF_XDP without multi-buffer
// cannot carry: the caller must segment. A frame with FlagCsumPart has its
// checksum finished here, in the UMEM copy: the kernel's checksum offload
// for AF_XDP (XDP_TX_METADATA) is driver-specific, and a frame sent with a
// partial checksum would be dropped by its receiver.
func (q *Queue) Transmit(p *buffer.Pool, b buffer.Index) error {
	if q.fd < 0 {
		return driver.ErrDown
	}
	m := p.Meta(b)
	if m.Flags&buffer.FlagGSO != 0 || m.Len > int32(q.frameSize) {
		return driver.ErrTooBig
	}
	if m.Len <= 0 {
		return errEmpty
	}
	nf := len(q.txFree)
	if nf == 0 {
		q.reap()
		if nf = len(q.txFree); nf == 0 {
			return driver.ErrTxFull
		}
	}
	// The tx ring has a slot for every tx frame, so a free frame implies a
	// free slot; the check costs nothing while the cached index says so.
	if q.tx.free(1) == 0 {
		return driver.ErrTxFull
	}
	addr := q.txFree[nf-1]
	q.txFree = q.txFree[:nf-1]
	frame := q.umem[addr : addr+uint64(m.Len)]
	copy(frame, p.Packet(b))
	if m.Flags&buffer.FlagCsumPart != 0 {
		finishChecksum(frame, m)
	}
	q.tx.descs[q.tx.cachedProd&q.tx.mask] = unix.XDPDesc{Addr: addr, Len: uint32(m.Len)}
	q.tx.cachedProd++
	p.Free(b)
	return nil
}

// finishChecksum does what a NIC does for CHECKSUM_PARTIAL (virtio 1.x
// 5.1.6.2): the field at CsumStart+CsumOffset holds the pseudo-header sum;
// sum from CsumStart to the end of the frame and store the complement.
// CsumStart is relative to the L3 header (driver.Queue's convention).
func finishChecksum(frame []byte, m *buffer.Meta) {
	start := int(m.CsumStart) + 14
	field := start + int(m.CsumOffset)
	if field+2 > len(frame) {
		return // malformed; the receiver will drop it
	}
	c := header.Fold(header.Checksum(frame[start:], 0))
	if c == 0 {
		c = 0xffff // UDP's "no checksum"; equivalent for TCP (skb_checksum_help)
	}
	frame[field], frame[field+1] = byte(c>>8), byte(c)
}

// reap moves the addresses on the completion ring back to the free list.
func (q *Queue) reap() {
	n := q.comp.avail(q.comp.size)
	if n == 0 {
		return
	}
	cons := q.comp.cachedCons
	nf := len(q.txFree)
	free := q.txFree[:nf+int(n)] // within capacity: one slot per tx frame
	for i := range n {
		free[nf+int(i)] = q.comp.addrs[(cons+i)&q.comp.mask] &^ q.frameMask
	}
	q.txFree = free
	q.comp.release(n)
	q.stats.txCompleted += uint64(n)
}

// Flush publishes the descriptors queued by Transmit and makes the kernel
// send them: in copy mode only a sendto transmits, in zero-copy mode a
// sendto is needed only when the driver asked for it (need_wakeup). It then
// reaps the completion ring.
//
// EAGAIN (the device queue is busy, or the socket's send buffer is full),
// ENOBUFS and EBUSY (the device dropped one frame) leave the rest of the
// ring to the next Flush and return nil: the frames are not lost.
func (q *Queue) Flush(p *buffer.Pool) error {
	if q.fd < 0 {
		return driver.ErrDown
	}
	if q.tx.cachedProd != q.txPublished {
		q.tx.publish()
		q.txPublished = q.tx.cachedProd
	}
	var err error
	if q.txPending() && (!q.zerocopy || q.tx.needWakeup()) {
		err = q.kick()
	}
	q.reap()
	return err
}

// txPending reports whether the kernel has published descriptors it has
// not consumed yet.
func (q *Queue) txPending() bool {
	q.tx.free(q.tx.size) // refreshes cachedCons
	return q.tx.cachedCons-q.tx.size != q.txPublished
}

// kick asks the kernel to transmit with sendto(MSG_DONTWAIT). In copy mode
// one sendto sends at most max_tx_budget frames and answers EAGAIN while
// more remain, so kick repeats as long as the kernel makes progress; when it
// makes none (the device queue is stopped, the socket's send buffer is
// full) the rest waits for the next Flush.
func (q *Queue) kick() error {
	for range q.tx.size/32 + 1 {
		before := q.tx.cachedCons
		_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(q.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			return nil
		case unix.EBUSY:
			// The device dropped one frame (NET_XMIT_DROP); it has been
			// completed and the rest wait in the ring.
			q.stats.txDropped++
		case unix.EAGAIN, unix.ENOBUFS:
		case unix.ENETDOWN, unix.ENXIO:
			return driver.ErrDown
		default:
			return e
		}
		if !q.txPending() {
			return nil
		}
		if q.tx.cachedCons == before {
			break
		}
	}
	q.stats.txDeferred++
	return nil
}
