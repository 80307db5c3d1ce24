package header

import "encoding/binary"

// Ethernet is an Ethernet II frame header (IEEE 802.3 clause 3.2.6, with the
// Length/Type field carrying an EtherType):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                     Destination Address                       |
//	+                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                               |                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
//	|                        Source Address                         |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|           EtherType           |  Payload ...
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// The only validation needed before using the accessors is
// len(e) >= EthernetMinSize.
type Ethernet []byte

const (
	ethDst  = 0
	ethSrc  = 6
	ethType = 12
)

const (
	// EthernetMinSize is the size of an untagged Ethernet II header.
	EthernetMinSize = 14
	// EthernetAddressSize is the size of a MAC address.
	EthernetAddressSize = 6
)

// EtherType values (IEEE Registration Authority).
const (
	EtherTypeIPv4 uint16 = 0x0800
	EtherTypeARP  uint16 = 0x0806
	EtherTypeVLAN uint16 = 0x8100 // IEEE 802.1Q customer tag.
	EtherTypeQinQ uint16 = 0x88A8 // IEEE 802.1ad service tag.
	EtherTypeIPv6 uint16 = 0x86DD
)

// Dst returns the destination MAC address.
func (e Ethernet) Dst() [6]byte { return [6]byte(e[ethDst:ethSrc]) }

// Src returns the source MAC address.
func (e Ethernet) Src() [6]byte { return [6]byte(e[ethSrc:ethType]) }

// Type returns the EtherType.
func (e Ethernet) Type() uint16 { return binary.BigEndian.Uint16(e[ethType:]) }

// SetDst sets the destination MAC address.
func (e Ethernet) SetDst(a [6]byte) { copy(e[ethDst:ethSrc], a[:]) }

// SetSrc sets the source MAC address.
func (e Ethernet) SetSrc(a [6]byte) { copy(e[ethSrc:ethType], a[:]) }

// SetType sets the EtherType.
func (e Ethernet) SetType(t uint16) { binary.BigEndian.PutUint16(e[ethType:], t) }

// Encode writes a complete header.
func (e Ethernet) Encode(dst, src [6]byte, etherType uint16) {
	e.SetDst(dst)
	e.SetSrc(src)
	e.SetType(etherType)
}

// Payload returns the bytes following an untagged header.
func (e Ethernet) Payload() []byte { return e[EthernetMinSize:] }

// IsBroadcast reports whether a is ff:ff:ff:ff:ff:ff.
func IsBroadcast(a [6]byte) bool {
	return a == [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
}

// IsMulticast reports whether a is a group address: the I/G bit, the least
// significant bit of the first octet (IEEE 802-2014 section 8.2), is set.
// The broadcast address is a group address too.
func IsMulticast(a [6]byte) bool { return a[0]&1 != 0 }
