package header

import "encoding/binary"

// VirtioNetHdr is the header that Linux tun/tap prepends to (and expects in
// front of) every packet when the device is opened with IFF_VNET_HDR:
// struct virtio_net_hdr from include/uapi/linux/virtio_net.h, virtio 1.x
// specification section 5.1.6:
//
//	 0               1               2               3
//	+---------------+---------------+-------------------------------+
//	|     flags     |   gso_type    |            hdr_len            |
//	+---------------+---------------+-------------------------------+
//	|           gso_size            |          csum_start           |
//	+-------------------------------+-------------------------------+
//	|          csum_offset          |  num_buffers (12-byte form)   |
//	+-------------------------------+-------------------------------+
//
// All multi-byte fields are little-endian. That matches what the kernel uses
// with virtio 1.x semantics (TUNSETVNETLE) and, since legacy virtio uses
// native byte order, on every little-endian host; big-endian hosts must set
// TUNSETVNETLE.
//
// The 12-byte form (virtio_net_hdr_mrg_rxbuf, or virtio_net_hdr_v1) is what
// tun uses when TUNSETVNETHDRSZ sets 12; num_buffers is meaningless on tun
// and written as zero. Accessors other than NumBuffers/SetNumBuffers need
// only VirtioNetHdrSize bytes.
type VirtioNetHdr []byte

const (
	virtioFlags      = 0
	virtioGSOType    = 1
	virtioHdrLen     = 2
	virtioGSOSize    = 4
	virtioCsumStart  = 6
	virtioCsumOffset = 8
	virtioNumBuffers = 10
)

const (
	// VirtioNetHdrSize is the size of the legacy struct virtio_net_hdr.
	VirtioNetHdrSize = 10
	// VirtioNetHdrMrgRxbufSize is the size with num_buffers.
	VirtioNetHdrMrgRxbufSize = 12
)

// Flags bits (VIRTIO_NET_HDR_F_*).
const (
	// VirtioNetHdrFNeedsCsum: the checksum at csum_start+csum_offset has to
	// be completed by summing from csum_start to the end of the packet; the
	// field holds the pseudo-header sum (partial checksum offload).
	VirtioNetHdrFNeedsCsum = 1
	// VirtioNetHdrFDataValid: the checksum has been validated (receive only).
	VirtioNetHdrFDataValid = 2
	// VirtioNetHdrFRSCInfo: receive segment coalescing info present.
	VirtioNetHdrFRSCInfo = 4
)

// GSO types (VIRTIO_NET_HDR_GSO_*).
const (
	VirtioNetHdrGSONone  = 0
	VirtioNetHdrGSOTCPv4 = 1
	VirtioNetHdrGSOUDP   = 3 // UFO, IPv4 fragmentation; deprecated.
	VirtioNetHdrGSOTCPv6 = 4
	VirtioNetHdrGSOUDPL4 = 5 // UDP segmentation (USO).
	// VirtioNetHdrGSOECN may be ORed into a TCP GSO type: the sender set
	// CWR, so every segment must carry it (as the kernel's SKB_GSO_TCP_ECN).
	VirtioNetHdrGSOECN = 0x80
)

// VirtioError is the result of ValidateVirtioNetHdr.
type VirtioError uint8

// VirtioError values.
const (
	VirtioOK VirtioError = iota
	// VirtioErrTooShort: the header is shorter than VirtioNetHdrSize, or the
	// packet length is negative.
	VirtioErrTooShort
	// VirtioErrBadCsumOffset: NEEDS_CSUM with csum_start+csum_offset+2 past
	// the packet.
	VirtioErrBadCsumOffset
	// VirtioErrBadGSOType: unknown gso_type, or ECN without a GSO type.
	VirtioErrBadGSOType
	// VirtioErrBadGSOSize: a GSO type with gso_size 0.
	VirtioErrBadGSOSize
)

var virtioErrorNames = [...]string{
	VirtioOK:               "ok",
	VirtioErrTooShort:      "too_short",
	VirtioErrBadCsumOffset: "bad_csum_offset",
	VirtioErrBadGSOType:    "bad_gso_type",
	VirtioErrBadGSOSize:    "bad_gso_size",
}

func (e VirtioError) String() string {
	if int(e) < len(virtioErrorNames) {
		return virtioErrorNames[e]
	}
	return "unknown"
}

// ValidateVirtioNetHdr checks a header read from tun against the length of
// the packet that follows it (pktLen, excluding the header), mirroring the
// kernel's virtio_net_hdr_to_skb: the 16-bit checksum field that NEEDS_CSUM
// points at must lie inside the packet, the GSO type must be known, and a
// GSO packet must have a non-zero segment size. hdr_len is only a hint and
// is not checked. Safe on any input.
func ValidateVirtioNetHdr(h []byte, pktLen int) VirtioError {
	if len(h) < VirtioNetHdrSize || pktLen < 0 {
		return VirtioErrTooShort
	}
	v := VirtioNetHdr(h)
	if v.Flags()&VirtioNetHdrFNeedsCsum != 0 &&
		int(v.CsumStart())+int(v.CsumOffset())+2 > pktLen {
		return VirtioErrBadCsumOffset
	}
	gso := v.GSOType()
	if gso != VirtioNetHdrGSONone {
		switch gso &^ VirtioNetHdrGSOECN {
		case VirtioNetHdrGSOTCPv4, VirtioNetHdrGSOUDP, VirtioNetHdrGSOTCPv6, VirtioNetHdrGSOUDPL4:
		default:
			return VirtioErrBadGSOType
		}
		if v.GSOSize() == 0 {
			return VirtioErrBadGSOSize
		}
	}
	return VirtioOK
}

// Flags returns the flags byte (VirtioNetHdrF*).
func (h VirtioNetHdr) Flags() uint8 { return h[virtioFlags] }

// GSOType returns gso_type (VirtioNetHdrGSO*, possibly with ECN).
func (h VirtioNetHdr) GSOType() uint8 { return h[virtioGSOType] }

// HdrLen returns hdr_len: the length of the headers to replicate in each
// segment (a hint).
func (h VirtioNetHdr) HdrLen() uint16 { return binary.LittleEndian.Uint16(h[virtioHdrLen:]) }

// GSOSize returns gso_size: the payload size of each segment (the MSS).
func (h VirtioNetHdr) GSOSize() uint16 { return binary.LittleEndian.Uint16(h[virtioGSOSize:]) }

// CsumStart returns csum_start: where checksumming starts, from the start
// of the packet (the transport header).
func (h VirtioNetHdr) CsumStart() uint16 {
	return binary.LittleEndian.Uint16(h[virtioCsumStart:])
}

// CsumOffset returns csum_offset: where the checksum goes, from csum_start
// (TCPChecksumOffset or UDPChecksumOffset).
func (h VirtioNetHdr) CsumOffset() uint16 {
	return binary.LittleEndian.Uint16(h[virtioCsumOffset:])
}

// NumBuffers returns num_buffers; h must be VirtioNetHdrMrgRxbufSize long.
func (h VirtioNetHdr) NumBuffers() uint16 {
	return binary.LittleEndian.Uint16(h[virtioNumBuffers:])
}

// SetFlags sets the flags byte.
func (h VirtioNetHdr) SetFlags(v uint8) { h[virtioFlags] = v }

// SetGSOType sets gso_type.
func (h VirtioNetHdr) SetGSOType(v uint8) { h[virtioGSOType] = v }

// SetHdrLen sets hdr_len.
func (h VirtioNetHdr) SetHdrLen(v uint16) { binary.LittleEndian.PutUint16(h[virtioHdrLen:], v) }

// SetGSOSize sets gso_size.
func (h VirtioNetHdr) SetGSOSize(v uint16) { binary.LittleEndian.PutUint16(h[virtioGSOSize:], v) }

// SetCsumStart sets csum_start.
func (h VirtioNetHdr) SetCsumStart(v uint16) {
	binary.LittleEndian.PutUint16(h[virtioCsumStart:], v)
}

// SetCsumOffset sets csum_offset.
func (h VirtioNetHdr) SetCsumOffset(v uint16) {
	binary.LittleEndian.PutUint16(h[virtioCsumOffset:], v)
}

// SetNumBuffers sets num_buffers; h must be VirtioNetHdrMrgRxbufSize long.
func (h VirtioNetHdr) SetNumBuffers(v uint16) {
	binary.LittleEndian.PutUint16(h[virtioNumBuffers:], v)
}

// Reset zeroes the whole header (both sizes): no offload requested, the
// right thing to write in front of a fully formed packet.
func (h VirtioNetHdr) Reset() { clear(h) }
