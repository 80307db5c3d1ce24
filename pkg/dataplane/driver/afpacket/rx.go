package afpacket

import (
	"encoding/binary"
	"sync/atomic"
	"unsafe"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/pkg/dataplane/driver"
	"golang.org/x/sys/unix"
)

// Layout of the TPACKET_V3 ring (Documentation/networking/packet_mmap.rst and
// include/uapi/linux/if_packet.h): every block starts with struct
// tpacket_block_desc, whose tpacket_hdr_v1 (at offset 8) holds the block's
// status, frame count and first frame offset. Frames are struct
// tpacket3_hdr followed, at TPACKET_ALIGN(sizeof(tpacket3_hdr)), by the
// struct sockaddr_ll of the frame; the frame itself is at tp_mac, and with
// PACKET_VNET_HDR the virtio-net header sits right before it.
const (
	blockHdrOffset = 8
	sllOffset      = 48 // TPACKET_ALIGN(sizeof(struct tpacket3_hdr))
	sllPkttype     = sllOffset + 10
)

// Receive copies up to len(out) frames from the ring into buffers of p.
//
// The kernel hands the ring over block by block: a block whose status has
// TP_STATUS_USER is ours until we write TP_STATUS_KERNEL back, and the kernel
// fills blocks strictly in order. We therefore keep our place (block, frames
// left, offset) across calls, since out may be shorter than a block, and
// give a block back as soon as its last frame is copied, so the kernel can
// refill it while the worker processes the frames.
//
// A frame goes into a small buffer when it fits, else into a large one. A
// frame the kernel truncated (tp_snaplen < tp_len: the filter cut it or it
// did not fit the block) is dropped and counted, since forwarding part of a
// packet is worse than losing it. When p has no buffer of the needed size,
// Receive stops and the frame waits in the ring for the next call (and so do
// the frames behind it: a super-packet waiting for a large buffer holds up
// small frames, which keeps the order of every flow).
func (q *Queue) Receive(p *buffer.Pool, out []buffer.Index) int {
	if q.ring == nil {
		return 0
	}
	base := unsafe.Pointer(unsafe.SliceData(q.ring))
	n := 0
	for n < len(out) {
		blk := unsafe.Add(base, q.cur*q.blockSize)
		if q.left < 0 {
			bh := (*unix.TpacketHdrV1)(unsafe.Add(blk, blockHdrOffset))
			// The atomic load orders the reads of the block after
			// the kernel's smp_wmb() and status store.
			st := atomic.LoadUint32(&bh.Block_status)
			if st&unix.TP_STATUS_USER == 0 {
				break
			}
			if st&unix.TP_STATUS_LOSING != 0 {
				q.foldKernelStats()
			}
			q.left = int(bh.Num_pkts)
			q.off = int(bh.Offset_to_first_pkt)
			if q.left == 0 {
				q.release(blk)
				continue
			}
		}
		h := (*unix.Tpacket3Hdr)(unsafe.Add(blk, q.off))
		snap := int(h.Snaplen)
		size := snap
		if h.Status&unix.TP_STATUS_VLAN_VALID != 0 {
			size += 4
		}
		switch {
		case *(*uint8)(unsafe.Add(unsafe.Pointer(h), sllPkttype)) == unix.PACKET_OUTGOING:
			// Our own or the host's transmissions, on kernels
			// without PACKET_IGNORE_OUTGOING: not received.
		case snap < int(h.Len) || snap < ethHdrLen || size > buffer.LargeDataSize:
			q.stats.RxDropped++
		default:
			b, ok := q.copyFrame(p, h, snap, size)
			if !ok {
				return n
			}
			out[n] = b
			n++
			q.stats.RxFrames++
		}
		q.left--
		q.off += int(h.Next_offset)
		if q.left == 0 {
			q.release(blk)
		}
	}
	return n
}

// release gives the current block back to the kernel and moves on.
func (q *Queue) release(blk unsafe.Pointer) {
	bh := (*unix.TpacketHdrV1)(unsafe.Add(blk, blockHdrOffset))
	atomic.StoreUint32(&bh.Block_status, unix.TP_STATUS_KERNEL)
	q.cur++
	if q.cur == q.nBlocks {
		q.cur = 0
	}
	q.left = -1
}

// copyFrame copies the frame of h into a new buffer and decodes its
// virtio-net header. The kernel moves an 802.1Q/802.1ad tag out of the frame
// into skb metadata before packet sockets see it (skb_vlan_untag, or the NIC
// strips it); we put it back so that the dataplane sees the frame as it was on
// the wire. The header's offsets count from the frame as delivered (tag
// removed), so they are still right relative to the L3 header.
func (q *Queue) copyFrame(p *buffer.Pool, h *unix.Tpacket3Hdr, snap, size int) (buffer.Index, bool) {
	var b buffer.Index
	var ok bool
	if size <= buffer.SmallDataSize {
		b, ok = p.Alloc()
	} else {
		b, ok = p.AllocLarge()
	}
	if !ok {
		return 0, false
	}
	mac := unsafe.Add(unsafe.Pointer(h), int(h.Mac))
	frame := unsafe.Slice((*byte)(mac), snap)
	d := p.Data(b)[buffer.Headroom : buffer.Headroom+size]
	if size != snap {
		tpid := uint16(unix.ETH_P_8021Q)
		if h.Status&unix.TP_STATUS_VLAN_TPID_VALID != 0 {
			tpid = h.Hv1.Vlan_tpid
		}
		copy(d[:12], frame[:12])
		binary.BigEndian.PutUint16(d[12:14], tpid)
		binary.BigEndian.PutUint16(d[14:16], uint16(h.Hv1.Vlan_tci))
		copy(d[16:], frame[12:])
	} else {
		copy(d, frame)
	}
	m := p.Meta(b)
	m.Len = int32(size)
	vh := unsafe.Slice((*byte)(unsafe.Add(mac, -vnetHdrLen)), vnetHdrLen)
	if vh[0]|vh[1] != 0 {
		// A header the kernel never writes (checksum start inside the
		// Ethernet header) leaves the frame without offloads.
		_ = driver.DecodeVnetHdr(vh, m, l2Len(frame))
	}
	return b, true
}
