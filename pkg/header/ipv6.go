package header

import "encoding/binary"

// IPv6 is an IPv6 header followed by its payload (RFC 8200 section 3):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version| Traffic Class |           Flow Label                  |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Payload Length        |  Next Header  |   Hop Limit   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                                                               |
//	+                                                               +
//	|                                                               |
//	+                         Source Address                        +
//	|                                                               |
//	+                                                               +
//	|                                                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                                                               |
//	+                                                               +
//	|                                                               |
//	+                      Destination Address                      +
//	|                                                               |
//	+                                                               +
//	|                                                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Accessors assume ValidateIPv6 returned IPv6OK. Jumbograms (RFC 2675,
// Payload Length 0 plus a Hop-by-Hop Jumbo Payload option) are not
// supported: a zero Payload Length is taken literally.
type IPv6 []byte

const (
	ipv6VersTCFL   = 0
	ipv6PayloadLen = 4
	ipv6NextHeader = 6
	ipv6HopLimit   = 7
	ipv6SrcAddr    = 8
	ipv6DstAddr    = 24
)

const (
	// IPv6MinimumSize is the size of the fixed header.
	IPv6MinimumSize = 40
	// IPv6Version is the value of the Version field.
	IPv6Version = 6
	// IPv6AddressSize is the size of an IPv6 address.
	IPv6AddressSize = 16
)

// IPv6 extension header types (RFC 8200 section 4) that TransportProtocol
// knows how to skip, plus No Next Header.
const (
	IPv6HopByHopOptions    = 0
	IPv6RoutingHeader      = 43
	IPv6FragmentHeader     = 44
	IPv6NoNextHeader       = 59
	IPv6DestinationOptions = 60
)

// IPv6Error is the result of ValidateIPv6.
type IPv6Error uint8

// IPv6Error values.
const (
	IPv6OK IPv6Error = iota
	// IPv6ErrTooShort: fewer than IPv6MinimumSize bytes.
	IPv6ErrTooShort
	// IPv6ErrBadVersion: Version is not 6.
	IPv6ErrBadVersion
	// IPv6ErrBadPayloadLength: Payload Length runs past the buffer.
	IPv6ErrBadPayloadLength
)

var ipv6ErrorNames = [...]string{
	IPv6OK:                  "ok",
	IPv6ErrTooShort:         "too_short",
	IPv6ErrBadVersion:       "bad_version",
	IPv6ErrBadPayloadLength: "bad_payload_length",
}

func (e IPv6Error) String() string {
	if int(e) < len(ipv6ErrorNames) {
		return ipv6ErrorNames[e]
	}
	return "unknown"
}

// ValidateIPv6 checks that b holds an IPv6 header whose payload fits in b, so
// that every accessor of IPv6(b) is safe. A buffer longer than the header
// plus Payload Length is accepted (link-layer padding); the caller should
// trim it. Extension headers are not examined here; see TransportProtocol.
func ValidateIPv6(b []byte) IPv6Error {
	if len(b) < IPv6MinimumSize {
		return IPv6ErrTooShort
	}
	if b[ipv6VersTCFL]>>4 != IPv6Version {
		return IPv6ErrBadVersion
	}
	if IPv6MinimumSize+int(binary.BigEndian.Uint16(b[ipv6PayloadLen:])) > len(b) {
		return IPv6ErrBadPayloadLength
	}
	return IPv6OK
}

// Version returns the Version field.
func (b IPv6) Version() uint8 { return b[ipv6VersTCFL] >> 4 }

// TrafficClass returns the Traffic Class (DSCP and ECN).
func (b IPv6) TrafficClass() uint8 {
	return uint8(binary.BigEndian.Uint16(b[ipv6VersTCFL:]) >> 4)
}

// FlowLabel returns the 20-bit Flow Label.
func (b IPv6) FlowLabel() uint32 {
	return binary.BigEndian.Uint32(b[ipv6VersTCFL:]) & 0xfffff
}

// PayloadLength returns the Payload Length: everything after the fixed
// header, extension headers included.
func (b IPv6) PayloadLength() uint16 { return binary.BigEndian.Uint16(b[ipv6PayloadLen:]) }

// NextHeader returns the Next Header field of the fixed header.
func (b IPv6) NextHeader() uint8 { return b[ipv6NextHeader] }

// HopLimit returns the Hop Limit.
func (b IPv6) HopLimit() uint8 { return b[ipv6HopLimit] }

// SourceAddress returns the source address.
func (b IPv6) SourceAddress() [16]byte { return [16]byte(b[ipv6SrcAddr:ipv6DstAddr]) }

// DestinationAddress returns the destination address.
func (b IPv6) DestinationAddress() [16]byte {
	return [16]byte(b[ipv6DstAddr:IPv6MinimumSize])
}

// SrcHiLo returns the source address as two big-endian halves, convenient
// as hash or FIB keys.
func (b IPv6) SrcHiLo() (hi, lo uint64) {
	return binary.BigEndian.Uint64(b[ipv6SrcAddr:]), binary.BigEndian.Uint64(b[ipv6SrcAddr+8:])
}

// DstHiLo returns the destination address as two big-endian halves.
func (b IPv6) DstHiLo() (hi, lo uint64) {
	return binary.BigEndian.Uint64(b[ipv6DstAddr:]), binary.BigEndian.Uint64(b[ipv6DstAddr+8:])
}

// Payload returns the Payload Length bytes after the fixed header.
func (b IPv6) Payload() []byte {
	return b[IPv6MinimumSize : IPv6MinimumSize+int(b.PayloadLength())]
}

// SetTrafficClass sets the Traffic Class.
func (b IPv6) SetTrafficClass(tc uint8) {
	v := binary.BigEndian.Uint16(b[ipv6VersTCFL:])
	binary.BigEndian.PutUint16(b[ipv6VersTCFL:], v&0xf00f|uint16(tc)<<4)
}

// SetFlowLabel sets the low 20 bits of fl as the Flow Label.
func (b IPv6) SetFlowLabel(fl uint32) {
	v := binary.BigEndian.Uint32(b[ipv6VersTCFL:])
	binary.BigEndian.PutUint32(b[ipv6VersTCFL:], v&^0xfffff|fl&0xfffff)
}

// SetPayloadLength sets Payload Length.
func (b IPv6) SetPayloadLength(v uint16) { binary.BigEndian.PutUint16(b[ipv6PayloadLen:], v) }

// SetNextHeader sets the Next Header field of the fixed header.
func (b IPv6) SetNextHeader(v uint8) { b[ipv6NextHeader] = v }

// SetHopLimit sets the Hop Limit.
func (b IPv6) SetHopLimit(v uint8) { b[ipv6HopLimit] = v }

// DecrementHopLimit decrements the Hop Limit, which IPv6 does not protect
// with a header checksum, and returns the new value. Zero is left alone.
func (b IPv6) DecrementHopLimit() uint8 {
	if b[ipv6HopLimit] != 0 {
		b[ipv6HopLimit]--
	}
	return b[ipv6HopLimit]
}

// SetSourceAddress sets the source address.
func (b IPv6) SetSourceAddress(a [16]byte) { copy(b[ipv6SrcAddr:ipv6DstAddr], a[:]) }

// SetDestinationAddress sets the destination address.
func (b IPv6) SetDestinationAddress(a [16]byte) { copy(b[ipv6DstAddr:IPv6MinimumSize], a[:]) }

// IPv6Fields holds the values Encode writes.
type IPv6Fields struct {
	TrafficClass  uint8
	FlowLabel     uint32
	PayloadLength uint16
	NextHeader    uint8
	HopLimit      uint8
	Src, Dst      [16]byte
}

// Encode writes a fixed header into b, which must hold IPv6MinimumSize bytes.
func (b IPv6) Encode(f *IPv6Fields) {
	binary.BigEndian.PutUint32(b[ipv6VersTCFL:],
		IPv6Version<<28|uint32(f.TrafficClass)<<20|f.FlowLabel&0xfffff)
	b.SetPayloadLength(f.PayloadLength)
	b.SetNextHeader(f.NextHeader)
	b.SetHopLimit(f.HopLimit)
	b.SetSourceAddress(f.Src)
	b.SetDestinationAddress(f.Dst)
}

// TransportProtocol walks the extension header chain of b (RFC 8200 section
// 4) and returns the upper-layer protocol and the offset of its header from
// the start of b.
//
// It skips Hop-by-Hop Options (only as the first header, as section 4.3
// requires), Routing, Destination Options and Fragment headers. For a
// non-first fragment (Fragment Offset != 0) there is no upper-layer header to
// find, so it returns IPv6FragmentHeader and the offset of the Fragment
// header. A first fragment is walked through like an unfragmented packet, so
// its upper-layer header may be truncated. Any other Next Header value (AH,
// ESP, No Next Header, unknown) is returned as is.
//
// The walk is bounded by the Payload Length and by len(b); ok is false if an
// extension header is truncated or Hop-by-Hop appears out of place. It is safe
// on any input, validated or not. The upper-layer header itself is not
// checked: offset may equal the end of the payload.
func TransportProtocol(b IPv6) (proto uint8, offset int, ok bool) {
	if len(b) < IPv6MinimumSize {
		return 0, 0, false
	}
	end := IPv6MinimumSize + int(binary.BigEndian.Uint16(b[ipv6PayloadLen:]))
	if end > len(b) {
		end = len(b)
	}
	next := b[ipv6NextHeader]
	off := IPv6MinimumSize
	for {
		switch next {
		case IPv6HopByHopOptions, IPv6RoutingHeader, IPv6DestinationOptions:
			if next == IPv6HopByHopOptions && off != IPv6MinimumSize {
				return 0, 0, false
			}
			// Next Header, Hdr Ext Len in 8-octet units not counting the
			// first 8 octets (sections 4.3, 4.4, 4.6).
			if end-off < 8 {
				return 0, 0, false
			}
			n := (int(b[off+1]) + 1) * 8
			if end-off < n {
				return 0, 0, false
			}
			next = b[off]
			off += n
		case IPv6FragmentHeader:
			// Fixed 8 octets; Fragment Offset is the top 13 bits of octets
			// 2-3 (section 4.5).
			if end-off < 8 {
				return 0, 0, false
			}
			if binary.BigEndian.Uint16(b[off+2:])&^7 != 0 {
				return IPv6FragmentHeader, off, true
			}
			next = b[off]
			off += 8
		default:
			return next, off, true
		}
	}
}

// IsIPv6Multicast reports whether a is in ff00::/8 (RFC 4291 section 2.7).
func IsIPv6Multicast(a [16]byte) bool { return a[0] == 0xff }

// IsIPv6Unspecified reports whether a is ::.
func IsIPv6Unspecified(a [16]byte) bool { return a == [16]byte{} }

// IsIPv6LinkLocalUnicast reports whether a is in fe80::/10.
func IsIPv6LinkLocalUnicast(a [16]byte) bool { return a[0] == 0xfe && a[1]&0xc0 == 0x80 }
