package driver

import (
	"encoding/binary"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
)

// The virtio-net header (struct virtio_net_hdr, virtio 1.x section 5.1.6)
// that tun/tap (IFF_VNET_HDR) and AF_PACKET (PACKET_VNET_HDR) put in front
// of every packet, both ways. Every driver maps it to buffer.Meta here, so
// the offload state means the same whichever device a packet came from.
// All fields are little-endian (virtio 1.x; also the legacy layout on the
// little-endian machines we build for).
const (
	// VnetHdrLen is the legacy 10-byte header (no num_buffers).
	VnetHdrLen = 10

	VnetFlagNeedsCsum = 1 // VIRTIO_NET_HDR_F_NEEDS_CSUM: finish the L4 checksum
	VnetFlagDataValid = 2 // VIRTIO_NET_HDR_F_DATA_VALID: checksum verified

	VnetGSONone  = 0 // VIRTIO_NET_HDR_GSO_NONE
	VnetGSOTCPv4 = 1
	VnetGSOUDP   = 3 // UFO, which no modern kernel hands out
	VnetGSOTCPv6 = 4
	VnetGSOUDPL4 = 5
	VnetGSOECN   = 0x80 // the sender uses ECN: CWR only on the first segment
)

// DecodeVnetHdr sets m's offload state from header h of a packet whose
// link-layer header is l2 bytes long (0 on tun, 14 or more on Ethernet):
// Meta counts csum_start and hdr_len from the L3 header, the kernel from
// the start of the frame. It reports false for a checksum start inside the
// link-layer header, which nothing can make sense of.
func DecodeVnetHdr(h []byte, m *buffer.Meta, l2 int) bool {
	if h[0]&VnetFlagNeedsCsum != 0 {
		cs := binary.LittleEndian.Uint16(h[6:8])
		if int(cs) < l2 {
			return false
		}
		m.Flags |= buffer.FlagCsumPart
		m.CsumStart = cs - uint16(l2)
		m.CsumOffset = binary.LittleEndian.Uint16(h[8:10])
	}
	// A partial checksum is not a verified one: NEEDS_CSUM wins, as in
	// virtio_net_hdr_to_skb.
	if h[0]&VnetFlagDataValid != 0 && h[0]&VnetFlagNeedsCsum == 0 {
		m.Flags |= buffer.FlagCsumOK
	}
	if h[1]&^VnetGSOECN != VnetGSONone {
		m.Flags |= buffer.FlagGSO
		m.GSOType = h[1]
		m.GSOSize = binary.LittleEndian.Uint16(h[4:6])
		// hdr_len is only a hint (the kernel's linear length);
		// ip4/ip6-input replace it with the parsed header length.
		if hl := binary.LittleEndian.Uint16(h[2:4]); int(hl) >= l2 {
			m.HdrLen = hl - uint16(l2)
		}
	}
	return true
}

// EncodeVnetHdr writes the header for m into h (at least VnetHdrLen
// bytes; the rest of h is cleared), for a packet with an l2-byte
// link-layer header.
func EncodeVnetHdr(h []byte, m *buffer.Meta, l2 int) {
	clear(h)
	if m.Flags&buffer.FlagCsumPart != 0 {
		h[0] = VnetFlagNeedsCsum
		binary.LittleEndian.PutUint16(h[6:8], m.CsumStart+uint16(l2))
		binary.LittleEndian.PutUint16(h[8:10], m.CsumOffset)
	} else if m.Flags&buffer.FlagCsumOK != 0 {
		h[0] = VnetFlagDataValid
	}
	if m.Flags&buffer.FlagGSO != 0 {
		h[1] = m.GSOType
		binary.LittleEndian.PutUint16(h[2:4], m.HdrLen+uint16(l2))
		binary.LittleEndian.PutUint16(h[4:6], m.GSOSize)
	}
}
