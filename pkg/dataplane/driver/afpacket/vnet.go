package afpacket

import (
	"encoding/binary"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
)

// The virtio-net header (struct virtio_net_hdr, virtio 1.x section 5.1.6)
// that PACKET_VNET_HDR puts in front of every frame, in both directions. It is
// the 10-byte legacy layout (no num_buffers), little-endian on the
// little-endian machines we build for. The constants are those of driver/tun,
// which speaks the same header to pods.
const (
	vnetHdrLen = 10

	vnetFlagNeedsCsum = 1 // VIRTIO_NET_HDR_F_NEEDS_CSUM
	vnetFlagDataValid = 2 // VIRTIO_NET_HDR_F_DATA_VALID

	VnetGSONone  = 0 // VIRTIO_NET_HDR_GSO_NONE
	VnetGSOTCPv4 = 1
	VnetGSOUDP   = 3
	VnetGSOTCPv6 = 4
	VnetGSOUDPL4 = 5
	vnetGSOECN   = 0x80
)

const ethHdrLen = 14

// l2Len is the length of the link-layer header of Ethernet frame f: 14 plus 4
// for each 802.1Q/802.1ad tag in the frame (at most two). The kernel counts
// csum_start and hdr_len from the start of the frame; Meta counts them from
// the L3 header, so this is what converts between the two.
func l2Len(f []byte) int {
	n := ethHdrLen
	for i := 0; i < 2 && len(f) >= n+4; i++ {
		if et := binary.BigEndian.Uint16(f[n-2:]); et != 0x8100 && et != 0x88a8 {
			break
		}
		n += 4
	}
	return n
}

// decodeVnet sets m's offload state from header h the way tun.Reader does
// for a tap, with l2 the frame's link-layer header length.
func decodeVnet(m *buffer.Meta, h []byte, l2 int) {
	if h[0]&vnetFlagNeedsCsum != 0 {
		m.Flags |= buffer.FlagCsumPart
		m.CsumStart = binary.LittleEndian.Uint16(h[6:8]) - uint16(l2)
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
		if m.HdrLen >= uint16(l2) {
			m.HdrLen -= uint16(l2)
		}
	}
}

// encodeVnet writes the header for m into h, as tun.Write does.
func encodeVnet(h []byte, m *buffer.Meta, l2 int) {
	clear(h)
	if m.Flags&buffer.FlagCsumPart != 0 {
		h[0] = vnetFlagNeedsCsum
		binary.LittleEndian.PutUint16(h[6:8], m.CsumStart+uint16(l2))
		binary.LittleEndian.PutUint16(h[8:10], m.CsumOffset)
	} else if m.Flags&buffer.FlagCsumOK != 0 {
		h[0] = vnetFlagDataValid
	}
	if m.Flags&buffer.FlagGSO != 0 {
		h[1] = m.GSOType
		binary.LittleEndian.PutUint16(h[2:4], m.HdrLen+uint16(l2))
		binary.LittleEndian.PutUint16(h[4:6], m.GSOSize)
	}
}
