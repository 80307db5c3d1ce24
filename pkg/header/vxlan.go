package header

import "encoding/binary"

// VXLAN is the 8-byte VXLAN header (RFC 7348 section 5):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|R|R|R|R|I|R|R|R|            Reserved                           |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                VXLAN Network Identifier (VNI) |   Reserved    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// It follows the outer UDP header and precedes the inner Ethernet frame.
type VXLAN []byte

const (
	// VXLANSize is the length of the header.
	VXLANSize = 8
	// VXLANFlagVNI is the I flag: it must be set for a valid VNI, and the
	// receiver must not use the VNI otherwise (RFC 7348 section 5).
	VXLANFlagVNI = 0x08
	// VXLANMaxVNI is the largest 24-bit VNI.
	VXLANMaxVNI = 1<<24 - 1
)

// Flags returns the first byte.
func (v VXLAN) Flags() uint8 { return v[0] }

// VNI returns the 24-bit network identifier.
func (v VXLAN) VNI() uint32 { return binary.BigEndian.Uint32(v[4:8]) >> 8 }

// Encode writes a header with the I flag and vni; reserved fields are
// zero as the RFC requires of senders.
func (v VXLAN) Encode(vni uint32) {
	binary.BigEndian.PutUint32(v[0:4], VXLANFlagVNI<<24)
	binary.BigEndian.PutUint32(v[4:8], vni<<8)
}

// VXLANSourcePort maps a flow hash into the dynamic port range 49152-65535
// that RFC 7348 section 5 recommends for the outer UDP source port, so the
// underlay's ECMP spreads tunnel traffic by inner flow.
func VXLANSourcePort(flowHash uint32) uint16 { return 49152 | uint16(flowHash)&0x3fff }
