package header

import "encoding/binary"

// IPv4 is an IPv4 header followed by its payload (RFC 791 section 3.1):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version|  IHL  |Type of Service|          Total Length         |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Identification        |Flags|      Fragment Offset    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Time to Live |    Protocol   |         Header Checksum       |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                       Source Address                          |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Destination Address                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Options                    |    Padding    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Accessors assume ValidateIPv4 returned IPv4OK. The slice may extend past
// TotalLength (Ethernet minimum-frame padding); Payload stops at
// TotalLength.
type IPv4 []byte

const (
	ipv4VersIHL  = 0
	ipv4TOS      = 1
	ipv4TotalLen = 2
	ipv4ID       = 4
	ipv4FlagsFO  = 6
	ipv4TTL      = 8
	ipv4Protocol = 9
	ipv4Checksum = 10
	ipv4SrcAddr  = 12
	ipv4DstAddr  = 16
)

const (
	// IPv4MinimumSize is the size of a header without options (IHL 5).
	IPv4MinimumSize = 20
	// IPv4MaximumHeaderSize is the largest header IHL can express (15 words).
	IPv4MaximumHeaderSize = 60
	// IPv4Version is the value of the Version field.
	IPv4Version = 4
	// IPv4AddressSize is the size of an IPv4 address.
	IPv4AddressSize = 4
	// IPv4ChecksumOffset is the offset of the header checksum.
	IPv4ChecksumOffset = ipv4Checksum
)

// IP protocol numbers (IANA "Assigned Internet Protocol Numbers"), used both
// in the IPv4 Protocol field and the IPv6 Next Header field.
const (
	ProtocolICMP   = 1
	ProtocolIPIP   = 4 // IPv4 in IPv4 (RFC 2003).
	ProtocolTCP    = 6
	ProtocolUDP    = 17
	ProtocolIPv6   = 41 // IPv6 in IPv4 or IPv6 (RFC 4213, RFC 2473).
	ProtocolICMPv6 = 58
)

// Bits of the 3-bit Flags field as returned by IPv4.Flags (RFC 791 section
// 3.1: bit 0 reserved, bit 1 DF, bit 2 MF).
const (
	IPv4FlagMoreFragments = 1 << 0
	IPv4FlagDontFragment  = 1 << 1
)

// IPv4Error is the result of ValidateIPv4. Its String form is meant for
// drop counters.
type IPv4Error uint8

// IPv4Error values.
const (
	IPv4OK IPv4Error = iota
	// IPv4ErrTooShort: fewer than IPv4MinimumSize bytes.
	IPv4ErrTooShort
	// IPv4ErrBadVersion: Version is not 4.
	IPv4ErrBadVersion
	// IPv4ErrBadHeaderLength: IHL < 5, or the header runs past the buffer.
	IPv4ErrBadHeaderLength
	// IPv4ErrBadTotalLength: Total Length is smaller than the header or
	// larger than the buffer.
	IPv4ErrBadTotalLength
)

var ipv4ErrorNames = [...]string{
	IPv4OK:                 "ok",
	IPv4ErrTooShort:        "too_short",
	IPv4ErrBadVersion:      "bad_version",
	IPv4ErrBadHeaderLength: "bad_header_length",
	IPv4ErrBadTotalLength:  "bad_total_length",
}

func (e IPv4Error) String() string {
	if int(e) < len(ipv4ErrorNames) {
		return ipv4ErrorNames[e]
	}
	return "unknown"
}

// ValidateIPv4 checks that b holds a structurally sound IPv4 header and that
// every accessor of IPv4(b) is safe. It follows the receive checks of
// RFC 1812 section 5.2.2, except that the header checksum is verified
// separately with IPv4.IsChecksumValid so that packets whose checksum a NIC
// has already verified can skip it. A buffer longer than Total Length is
// accepted; the caller should trim it to TotalLength.
func ValidateIPv4(b []byte) IPv4Error {
	if len(b) < IPv4MinimumSize {
		return IPv4ErrTooShort
	}
	if b[ipv4VersIHL]>>4 != IPv4Version {
		return IPv4ErrBadVersion
	}
	hl := int(b[ipv4VersIHL]&0xf) * 4
	if hl < IPv4MinimumSize || hl > len(b) {
		return IPv4ErrBadHeaderLength
	}
	tl := int(binary.BigEndian.Uint16(b[ipv4TotalLen:]))
	if tl < hl || tl > len(b) {
		return IPv4ErrBadTotalLength
	}
	return IPv4OK
}

// Version returns the Version field.
func (b IPv4) Version() uint8 { return b[ipv4VersIHL] >> 4 }

// HeaderLength returns the header length in bytes (IHL * 4).
func (b IPv4) HeaderLength() int { return int(b[ipv4VersIHL]&0xf) * 4 }

// TOS returns the Type of Service byte (DSCP and ECN, RFC 2474/3168).
func (b IPv4) TOS() uint8 { return b[ipv4TOS] }

// TotalLength returns the Total Length field: header plus payload in bytes.
func (b IPv4) TotalLength() uint16 { return binary.BigEndian.Uint16(b[ipv4TotalLen:]) }

// ID returns the Identification field.
func (b IPv4) ID() uint16 { return binary.BigEndian.Uint16(b[ipv4ID:]) }

// Flags returns the 3-bit Flags field; see IPv4FlagDontFragment and
// IPv4FlagMoreFragments.
func (b IPv4) Flags() uint8 { return b[ipv4FlagsFO] >> 5 }

// FragmentOffset returns the fragment offset in bytes (the field counts
// 8-byte units).
func (b IPv4) FragmentOffset() uint16 {
	return binary.BigEndian.Uint16(b[ipv4FlagsFO:]) << 3
}

// IsFragment reports whether the packet is part of a fragmented datagram:
// MF is set or the offset is non-zero.
func (b IPv4) IsFragment() bool {
	return binary.BigEndian.Uint16(b[ipv4FlagsFO:])&0x3fff != 0
}

// TTL returns the Time to Live.
func (b IPv4) TTL() uint8 { return b[ipv4TTL] }

// Protocol returns the Protocol field (ProtocolTCP etc.).
func (b IPv4) Protocol() uint8 { return b[ipv4Protocol] }

// Checksum returns the stored header checksum.
func (b IPv4) Checksum() uint16 { return binary.BigEndian.Uint16(b[ipv4Checksum:]) }

// SourceAddress returns the source address.
func (b IPv4) SourceAddress() [4]byte { return [4]byte(b[ipv4SrcAddr:ipv4DstAddr]) }

// DestinationAddress returns the destination address.
func (b IPv4) DestinationAddress() [4]byte {
	return [4]byte(b[ipv4DstAddr : ipv4DstAddr+IPv4AddressSize])
}

// Src32 returns the source address as a big-endian integer, convenient as a
// hash or FIB key and for UpdateChecksum32.
func (b IPv4) Src32() uint32 { return binary.BigEndian.Uint32(b[ipv4SrcAddr:]) }

// Dst32 returns the destination address as a big-endian integer.
func (b IPv4) Dst32() uint32 { return binary.BigEndian.Uint32(b[ipv4DstAddr:]) }

// Options returns the options area (possibly empty).
func (b IPv4) Options() []byte { return b[IPv4MinimumSize:b.HeaderLength()] }

// Payload returns the bytes between the header and Total Length.
func (b IPv4) Payload() []byte { return b[b.HeaderLength():b.TotalLength()] }

// SetHeaderLength sets IHL from a length in bytes (a multiple of 4 between
// 20 and 60), leaving Version alone.
func (b IPv4) SetHeaderLength(n int) {
	b[ipv4VersIHL] = b[ipv4VersIHL]&0xf0 | uint8(n/4)&0xf
}

// SetTOS sets the Type of Service byte.
func (b IPv4) SetTOS(v uint8) { b[ipv4TOS] = v }

// SetTotalLength sets Total Length.
func (b IPv4) SetTotalLength(v uint16) { binary.BigEndian.PutUint16(b[ipv4TotalLen:], v) }

// SetID sets the Identification field.
func (b IPv4) SetID(v uint16) { binary.BigEndian.PutUint16(b[ipv4ID:], v) }

// SetFlagsFragmentOffset sets the 3-bit flags and the fragment offset, the
// latter in bytes (it must be a multiple of 8).
func (b IPv4) SetFlagsFragmentOffset(flags uint8, offset uint16) {
	binary.BigEndian.PutUint16(b[ipv4FlagsFO:], uint16(flags)<<13|offset>>3)
}

// SetTTL sets the Time to Live without touching the checksum; see
// DecrementTTL for the forwarding case.
func (b IPv4) SetTTL(v uint8) { b[ipv4TTL] = v }

// SetProtocol sets the Protocol field.
func (b IPv4) SetProtocol(v uint8) { b[ipv4Protocol] = v }

// SetChecksum stores a header checksum.
func (b IPv4) SetChecksum(v uint16) { binary.BigEndian.PutUint16(b[ipv4Checksum:], v) }

// SetSourceAddress sets the source address without touching the checksum.
func (b IPv4) SetSourceAddress(a [4]byte) { copy(b[ipv4SrcAddr:ipv4DstAddr], a[:]) }

// SetDestinationAddress sets the destination address without touching the
// checksum.
func (b IPv4) SetDestinationAddress(a [4]byte) {
	copy(b[ipv4DstAddr:ipv4DstAddr+IPv4AddressSize], a[:])
}

// CalculateChecksum returns the header checksum computed over the header
// with the checksum field taken as zero (RFC 791 section 3.1), ready for
// SetChecksum.
func (b IPv4) CalculateChecksum() uint16 {
	s := Checksum(b[:ipv4Checksum], 0)
	return Fold(Checksum(b[ipv4Checksum+2:b.HeaderLength()], s))
}

// IsChecksumValid reports whether the stored header checksum is correct:
// the one's complement sum over the whole header, checksum included, is
// all ones.
func (b IPv4) IsChecksumValid() bool {
	return Fold(Checksum(b[:b.HeaderLength()], 0)) == 0
}

// DecrementTTL decrements the TTL and patches the checksum incrementally
// (RFC 1624 equation 3, the corrected form of RFC 1141), as a router does on
// every forwarded packet (RFC 1812 section 5.3.1). It returns the new TTL.
// A TTL of zero is left alone rather than wrapping to 255; callers are
// expected to have checked TTL() > 1 before forwarding.
func (b IPv4) DecrementTTL() uint8 {
	ttl := b[ipv4TTL]
	if ttl == 0 {
		return 0
	}
	// TTL is the high byte of the 16-bit word it shares with Protocol.
	old := uint16(ttl)<<8 | uint16(b[ipv4Protocol])
	b[ipv4TTL] = ttl - 1
	b.SetChecksum(UpdateChecksum16(b.Checksum(), old, old-0x100))
	return ttl - 1
}

// IPv4Fields holds the values Encode writes. Version and IHL are derived.
type IPv4Fields struct {
	TOS            uint8
	TotalLength    uint16
	ID             uint16
	Flags          uint8
	FragmentOffset uint16 // In bytes; a multiple of 8.
	TTL            uint8
	Protocol       uint8
	Checksum       uint16 // Written as is; see CalculateChecksum.
	Src, Dst       [4]byte
	Options        []byte // Length a multiple of 4, at most 40.
}

// Encode writes a header with the given fields into b, which must hold
// IPv4MinimumSize+len(f.Options) bytes. It is meant for building packets
// outside the fast path and in tests.
func (b IPv4) Encode(f *IPv4Fields) {
	hl := IPv4MinimumSize + len(f.Options)
	b[ipv4VersIHL] = IPv4Version<<4 | uint8(hl/4)&0xf
	b.SetTOS(f.TOS)
	b.SetTotalLength(f.TotalLength)
	b.SetID(f.ID)
	b.SetFlagsFragmentOffset(f.Flags, f.FragmentOffset)
	b.SetTTL(f.TTL)
	b.SetProtocol(f.Protocol)
	b.SetChecksum(f.Checksum)
	b.SetSourceAddress(f.Src)
	b.SetDestinationAddress(f.Dst)
	copy(b[IPv4MinimumSize:hl], f.Options)
}
