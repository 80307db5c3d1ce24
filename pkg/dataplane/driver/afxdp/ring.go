package afxdp

import (
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ringIdx is the part of an AF_XDP ring common to all four: the shared
// producer/consumer indices and flags, and our cached copies.
//
// For a ring we produce into (fill, tx), cachedCons is the kernel's consumer
// index plus the ring size, so cachedCons-cachedProd is the number of free
// slots; for a ring we consume from (rx, completion), cachedProd is the
// kernel's producer index and cachedProd-cachedCons the number of entries.
// The indices are free-running u32s; subtraction is modulo 2^32.
type ringIdx struct {
	producer *uint32
	consumer *uint32
	flags    *uint32
	mask     uint32
	size     uint32

	cachedProd uint32
	cachedCons uint32

	mem []byte // the mmap'd ring, nil when not mapped
}

// mapRing maps ring pgoff of fd, whose header and descriptor array lie at
// the offsets the kernel gave in XDP_MMAP_OFFSETS, and returns a pointer to
// the first descriptor.
func (r *ringIdx) mapRing(fd int, pgoff int64, off *unix.XDPRingOffset, size uint32, descSize uintptr, producer bool) (unsafe.Pointer, error) {
	mem, err := unix.Mmap(fd, pgoff, int(off.Desc)+int(size)*int(descSize),
		unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, err
	}
	r.mem = mem
	r.producer = (*uint32)(unsafe.Pointer(&mem[off.Producer]))
	r.consumer = (*uint32)(unsafe.Pointer(&mem[off.Consumer]))
	r.flags = (*uint32)(unsafe.Pointer(&mem[off.Flags]))
	r.size = size
	r.mask = size - 1
	r.cachedProd = atomic.LoadUint32(r.producer)
	r.cachedCons = atomic.LoadUint32(r.consumer)
	if producer {
		r.cachedCons += size
	}
	return unsafe.Pointer(&mem[off.Desc]), nil
}

func (r *ringIdx) unmap() error {
	if r.mem == nil {
		return nil
	}
	err := unix.Munmap(r.mem)
	*r = ringIdx{}
	return err
}

// free returns how many of n slots a producer can fill now. It reloads the
// kernel's consumer index (load-acquire: the kernel is done with the slots
// it released) only when the cached value shows fewer than n.
func (r *ringIdx) free(n uint32) uint32 {
	f := r.cachedCons - r.cachedProd
	if f >= n {
		return n
	}
	r.cachedCons = atomic.LoadUint32(r.consumer) + r.size
	return min(r.cachedCons-r.cachedProd, n)
}

// publish makes the entries written up to cachedProd visible to the kernel
// (store-release: the entries are written before the index).
func (r *ringIdx) publish() { atomic.StoreUint32(r.producer, r.cachedProd) }

// avail returns how many of n entries a consumer can read now, reloading
// the kernel's producer index (load-acquire: the entries it covers are
// written) only when the cached value shows fewer than n.
func (r *ringIdx) avail(n uint32) uint32 {
	a := r.cachedProd - r.cachedCons
	if a >= n {
		return n
	}
	r.cachedProd = atomic.LoadUint32(r.producer)
	return min(r.cachedProd-r.cachedCons, n)
}

// release gives k consumed entries back to the kernel (store-release: we
// are done reading them).
func (r *ringIdx) release(k uint32) {
	r.cachedCons += k
	atomic.StoreUint32(r.consumer, r.cachedCons)
}

// needWakeup reports whether the kernel asked for a syscall to resume
// processing this ring (XDP_RING_NEED_WAKEUP).
func (r *ringIdx) needWakeup() bool {
	return atomic.LoadUint32(r.flags)&unix.XDP_RING_NEED_WAKEUP != 0
}

// addrRing is a fill or completion ring: its entries are UMEM addresses.
type addrRing struct {
	ringIdx
	addrs []uint64
}

func (r *addrRing) mmap(fd int, pgoff int64, off *unix.XDPRingOffset, size uint32, producer bool) error {
	p, err := r.mapRing(fd, pgoff, off, size, 8, producer)
	if err != nil {
		return err
	}
	r.addrs = unsafe.Slice((*uint64)(p), size)
	return nil
}

func (r *addrRing) unmap() error {
	r.addrs = nil
	return r.ringIdx.unmap()
}

// descRing is an rx or tx ring: its entries are struct xdp_desc.
type descRing struct {
	ringIdx
	descs []unix.XDPDesc
}

func (r *descRing) mmap(fd int, pgoff int64, off *unix.XDPRingOffset, size uint32, producer bool) error {
	p, err := r.mapRing(fd, pgoff, off, size, unsafe.Sizeof(unix.XDPDesc{}), producer)
	if err != nil {
		return err
	}
	r.descs = unsafe.Slice((*unix.XDPDesc)(p), size)
	return nil
}

func (r *descRing) unmap() error {
	r.descs = nil
	return r.ringIdx.unmap()
}
