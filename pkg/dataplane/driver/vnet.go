package driver

import (
	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/pkg/header"
)

// The virtio-net header (struct virtio_net_hdr, virtio 1.x section 5.1.6)
// that tun/tap (IFF_VNET_HDR) and AF_PACKET (PACKET_VNET_HDR) put in front
// of every packet, both ways. Every driver maps it to buffer.Meta here, so
// the offload state means the same whichever device a packet came from.
// The layout and its values are pkg/header's VirtioNetHdr; these names are
// the drivers' short forms of them.
const (
	// VnetHdrLen is the legacy 10-byte header (no num_buffers).
	VnetHdrLen = header.VirtioNetHdrSize

	VnetFlagNeedsCsum = header.VirtioNetHdrFNeedsCsum // finish the L4 checksum
	VnetFlagDataValid = header.VirtioNetHdrFDataValid // checksum verified

	VnetGSONone  = header.VirtioNetHdrGSONone
	VnetGSOTCPv4 = header.VirtioNetHdrGSOTCPv4
	VnetGSOUDP   = header.VirtioNetHdrGSOUDP // UFO, which no modern kernel hands out
	VnetGSOTCPv6 = header.VirtioNetHdrGSOTCPv6
	VnetGSOUDPL4 = header.VirtioNetHdrGSOUDPL4
	VnetGSOECN   = header.VirtioNetHdrGSOECN // the sender uses ECN: CWR only on the first segment
)

// DecodeVnetHdr sets m's offload state from header h of a packet whose
// link-layer header is l2 bytes long (0 on tun, 14 or more on Ethernet):
// Meta counts csum_start and hdr_len from the L3 header, the kernel from
// the start of the frame. It reports false for a checksum start inside the
// link-layer header, which nothing can make sense of.
func DecodeVnetHdr(h []byte, m *buffer.Meta, l2 int) bool {
	v := header.VirtioNetHdr(h)
	flags := v.Flags()
	if flags&VnetFlagNeedsCsum != 0 {
		cs := v.CsumStart()
		if int(cs) < l2 {
			return false
		}
		m.Flags |= buffer.FlagCsumPart
		m.CsumStart = cs - uint16(l2)
		m.CsumOffset = v.CsumOffset()
	}
	// A partial checksum is not a verified one: NEEDS_CSUM wins, as in
	// virtio_net_hdr_to_skb.
	if flags&VnetFlagDataValid != 0 && flags&VnetFlagNeedsCsum == 0 {
		m.Flags |= buffer.FlagCsumOK
	}
	if gt := v.GSOType(); gt&^VnetGSOECN != VnetGSONone {
		m.Flags |= buffer.FlagGSO
		m.GSOType = gt
		m.GSOSize = v.GSOSize()
		// hdr_len is only a hint (the kernel's linear length);
		// ip4/ip6-input replace it with the parsed header length.
		if hl := v.HdrLen(); int(hl) >= l2 {
			m.HdrLen = hl - uint16(l2)
		}
	}
	return true
}

// EncodeVnetHdr writes the header for m into h (at least VnetHdrLen
// bytes; the rest of h is cleared), for a packet with an l2-byte
// link-layer header.
func EncodeVnetHdr(h []byte, m *buffer.Meta, l2 int) {
	v := header.VirtioNetHdr(h)
	v.Reset()
	if m.Flags&buffer.FlagCsumPart != 0 {
		v.SetFlags(VnetFlagNeedsCsum)
		v.SetCsumStart(m.CsumStart + uint16(l2))
		v.SetCsumOffset(m.CsumOffset)
	} else if m.Flags&buffer.FlagCsumOK != 0 {
		v.SetFlags(VnetFlagDataValid)
	}
	if m.Flags&buffer.FlagGSO != 0 {
		v.SetGSOType(m.GSOType)
		v.SetHdrLen(m.HdrLen + uint16(l2))
		v.SetGSOSize(m.GSOSize)
	}
}
