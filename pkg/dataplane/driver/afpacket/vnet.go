package afpacket

import (
	"encoding/binary"

	"github.com/vecnet/vecnet/pkg/dataplane/driver"
)

// The virtio-net header that PACKET_VNET_HDR puts in front of every frame,
// both ways: the 10-byte legacy layout, mapped to buffer.Meta by the
// driver package as for every other device.
const (
	vnetHdrLen        = driver.VnetHdrLen
	vnetFlagNeedsCsum = driver.VnetFlagNeedsCsum
	vnetFlagDataValid = driver.VnetFlagDataValid
	vnetGSOECN        = driver.VnetGSOECN

	VnetGSONone  = driver.VnetGSONone
	VnetGSOTCPv4 = driver.VnetGSOTCPv4
	VnetGSOUDP   = driver.VnetGSOUDP
	VnetGSOTCPv6 = driver.VnetGSOTCPv6
	VnetGSOUDPL4 = driver.VnetGSOUDPL4
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
