package tun

import (
	"syscall"
	"unsafe"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/pkg/dataplane/driver"
	"golang.org/x/sys/unix"
)

// Virtio-net header constants, for the tun driver's users.
const (
	VnetGSONone  = driver.VnetGSONone
	VnetGSOTCPv4 = driver.VnetGSOTCPv4
	VnetGSOUDP   = driver.VnetGSOUDP
	VnetGSOTCPv6 = driver.VnetGSOTCPv6
	VnetGSOUDPL4 = driver.VnetGSOUDPL4
)

// Reader reads packets from tun/tap descriptors into one worker's pool.
//
// A read(2) on a tun must offer room for the largest packet, but we don't
// know the size before reading. Reader offers two iovecs: a small buffer and
// the tail of a spare large buffer. A normal packet lands in the small
// buffer only; a super-packet spills into the large one, and then the
// (at most 2 KiB) head is copied in front of it so the packet is contiguous.
// Small packets thus cost no extra copy and large ones 3% of one.
type Reader struct {
	pool     *buffer.Pool
	spare    buffer.Index
	hasSpare bool
	iov      [2]unix.Iovec
}

// NewReader returns a reader over pool.
func NewReader(pool *buffer.Pool) *Reader { return &Reader{pool: pool} }

// Read reads one packet from fd. It returns ok=false with errno EAGAIN
// when the queue is empty, or another errno on error (the caller counts
// it). L2 says the device is a tap: csum_start is then made relative to the
// L3 header by subtracting the Ethernet header.
func (r *Reader) Read(fd int, l2 bool) (b buffer.Index, ok bool, errno syscall.Errno) {
	p := r.pool
	if !r.hasSpare {
		s, ok := p.AllocLarge()
		if !ok {
			return 0, false, syscall.ENOBUFS
		}
		r.spare, r.hasSpare = s, true
	}
	small, ok := p.Alloc()
	if !ok {
		return 0, false, syscall.ENOBUFS
	}
	sd := p.Data(small)
	ld := p.Data(r.spare)
	const head = buffer.Headroom - VnetHdrLen
	const smallCap = buffer.SmallSize - head
	r.iov[0].Base = &sd[head]
	r.iov[0].SetLen(smallCap)
	r.iov[1].Base = &ld[head+smallCap]
	r.iov[1].SetLen(len(ld) - head - smallCap)
	n, _, e := unix.RawSyscall(unix.SYS_READV, uintptr(fd), uintptr(unsafe.Pointer(&r.iov[0])), 2)
	if e != 0 {
		p.Free(small)
		return 0, false, e
	}
	if int(n) < VnetHdrLen+1 {
		p.Free(small)
		return 0, false, syscall.EINVAL
	}
	b = small
	data := sd
	if int(n) > smallCap {
		copy(ld[head:head+smallCap], sd[head:])
		p.Free(small)
		b, data = r.spare, ld
		r.hasSpare = false
	}
	m := p.Meta(b)
	*m = buffer.Meta{Start: buffer.Headroom, Len: int32(n) - VnetHdrLen}
	l2Len := 0
	if l2 {
		l2Len = 14
	}
	if !driver.DecodeVnetHdr(data[head:buffer.Headroom], m, l2Len) {
		p.Free(b)
		return 0, false, syscall.EINVAL
	}
	return b, true, 0
}

// Release returns the spare buffer to the pool.
func (r *Reader) Release() {
	if r.hasSpare {
		r.pool.Free(r.spare)
		r.hasSpare = false
	}
}

// Write writes buffer b to fd, prefixed with a virtio-net header rebuilt
// from its metadata. l2Len is the length of the link-layer header at the
// start of the packet (0 on tun), by which csum_start moves.
func Write(pool *buffer.Pool, b buffer.Index, fd int, l2Len int) syscall.Errno {
	m := pool.Meta(b)
	d := pool.Data(b)
	start := int(m.Start) - VnetHdrLen
	driver.EncodeVnetHdr(d[start:m.Start], m, l2Len)
	end := int(m.Start + m.Len)
	_, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&d[start])), uintptr(end-start))
	return e
}
