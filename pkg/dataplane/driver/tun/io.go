package tun

import (
	"encoding/binary"
	"syscall"
	"unsafe"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"golang.org/x/sys/unix"
)

// Virtio-net header fields (virtio 1.x section 5.1.6, in the little-endian
// layout tun uses on every architecture we build for).
const (
	vnetFlagNeedsCsum = 1
	vnetFlagDataValid = 2
	VnetGSONone       = 0
	VnetGSOTCPv4      = 1
	VnetGSOUDP        = 3
	VnetGSOTCPv6      = 4
	VnetGSOUDPL4      = 5
	vnetGSOECN        = 0x80
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
	h := data[head:buffer.Headroom]
	if h[0]&vnetFlagNeedsCsum != 0 {
		m.Flags |= buffer.FlagCsumPart
		cs := binary.LittleEndian.Uint16(h[6:8])
		if l2 {
			cs -= 14
		}
		m.CsumStart = cs
		m.CsumOffset = binary.LittleEndian.Uint16(h[8:10])
	}
	if h[0]&vnetFlagDataValid != 0 {
		m.Flags |= buffer.FlagCsumOK
	}
	if gt := h[1] &^ vnetGSOECN; gt != VnetGSONone {
		m.Flags |= buffer.FlagGSO
		m.GSOType = h[1]
		m.HdrLen = binary.LittleEndian.Uint16(h[2:4])
		m.GSOSize = binary.LittleEndian.Uint16(h[4:6])
		if l2 && m.HdrLen >= 14 {
			m.HdrLen -= 14
		}
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
	h := d[start:m.Start]
	clear(h)
	if m.Flags&buffer.FlagCsumPart != 0 {
		h[0] = vnetFlagNeedsCsum
		binary.LittleEndian.PutUint16(h[6:8], m.CsumStart+uint16(l2Len))
		binary.LittleEndian.PutUint16(h[8:10], m.CsumOffset)
	} else if m.Flags&buffer.FlagCsumOK != 0 {
		h[0] = vnetFlagDataValid
	}
	if m.Flags&buffer.FlagGSO != 0 {
		h[1] = m.GSOType
		binary.LittleEndian.PutUint16(h[2:4], m.HdrLen+uint16(l2Len))
		binary.LittleEndian.PutUint16(h[4:6], m.GSOSize)
	}
	end := int(m.Start + m.Len)
	_, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&d[start])), uintptr(end-start))
	return e
}
