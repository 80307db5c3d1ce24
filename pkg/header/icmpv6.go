package header

import "encoding/binary"

// ICMPv6 is an ICMPv6 message (RFC 4443 section 2.1), starting at the Type
// field:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     Type      |     Code      |          Checksum             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|           Identifier          |        Sequence Number        |  echo (4.1, 4.2)
//	|                              MTU                              |  packet too big (3.2)
//	|                             unused                            |  other errors
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Message body ...
//	+-+-+-+-+-+-+-+-+-
//
// Accessors assume ValidateICMPv6 returned ICMPOK. The checksum covers the
// IPv6 pseudo-header (RFC 4443 section 2.3), so the checksum methods need
// the addresses from the IPv6 header.
type ICMPv6 []byte

const (
	// ICMPv6MinimumSize is the 8-byte fixed part that every message defined
	// by RFC 4443 and RFC 4861 has.
	ICMPv6MinimumSize = 8
	// ICMPv6ChecksumOffset is the offset of the checksum field.
	ICMPv6ChecksumOffset = icmpChecksum
)

// ICMPv6Type is the ICMPv6 Type field.
type ICMPv6Type uint8

// ICMPv6 types (RFC 4443, RFC 4861).
const (
	ICMPv6DstUnreachable  ICMPv6Type = 1
	ICMPv6PacketTooBig    ICMPv6Type = 2
	ICMPv6TimeExceeded    ICMPv6Type = 3
	ICMPv6ParamProblem    ICMPv6Type = 4
	ICMPv6EchoRequest     ICMPv6Type = 128
	ICMPv6EchoReply       ICMPv6Type = 129
	ICMPv6RouterSolicit   ICMPv6Type = 133
	ICMPv6RouterAdvert    ICMPv6Type = 134
	ICMPv6NeighborSolicit ICMPv6Type = 135
	ICMPv6NeighborAdvert  ICMPv6Type = 136
	ICMPv6Redirect        ICMPv6Type = 137
)

// IsErrorMessage reports whether t is an error message: RFC 4443 section 2.1
// reserves types 0-127 for errors. Section 2.4(e) forbids answering an
// error with an error.
func (t ICMPv6Type) IsErrorMessage() bool { return t < 128 }

// ICMPv6Code is the ICMPv6 Code field; its meaning depends on the type.
type ICMPv6Code uint8

// Codes for ICMPv6DstUnreachable (RFC 4443 section 3.1).
const (
	ICMPv6NoRoute            ICMPv6Code = 0
	ICMPv6AdminProhibited    ICMPv6Code = 1
	ICMPv6BeyondScope        ICMPv6Code = 2
	ICMPv6AddressUnreachable ICMPv6Code = 3
	ICMPv6PortUnreachable    ICMPv6Code = 4
)

// Codes for ICMPv6TimeExceeded (RFC 4443 section 3.3).
const (
	ICMPv6HopLimitExceeded  ICMPv6Code = 0
	ICMPv6ReassemblyTimeout ICMPv6Code = 1
)

// ValidateICMPv6 checks that every accessor of ICMPv6(b) is safe. b must be
// the whole ICMPv6 message (the upper-layer payload after any extension
// headers). The checksum is verified separately with IsChecksumValid.
func ValidateICMPv6(b []byte) ICMPError {
	if len(b) < ICMPv6MinimumSize {
		return ICMPErrTooShort
	}
	return ICMPOK
}

// Type returns the message type.
func (b ICMPv6) Type() ICMPv6Type { return ICMPv6Type(b[icmpType]) }

// Code returns the message code.
func (b ICMPv6) Code() ICMPv6Code { return ICMPv6Code(b[icmpCode]) }

// Checksum returns the stored checksum.
func (b ICMPv6) Checksum() uint16 { return binary.BigEndian.Uint16(b[icmpChecksum:]) }

// Ident returns the echo Identifier.
func (b ICMPv6) Ident() uint16 { return binary.BigEndian.Uint16(b[icmpIdent:]) }

// Sequence returns the echo Sequence Number.
func (b ICMPv6) Sequence() uint16 { return binary.BigEndian.Uint16(b[icmpSequence:]) }

// MTU returns the MTU of a Packet Too Big message.
func (b ICMPv6) MTU() uint32 { return binary.BigEndian.Uint32(b[icmpv6MTU:]) }

// Payload returns the message body after the 8-byte fixed part.
func (b ICMPv6) Payload() []byte { return b[ICMPv6MinimumSize:] }

// SetType sets the message type.
func (b ICMPv6) SetType(t ICMPv6Type) { b[icmpType] = uint8(t) }

// SetCode sets the message code.
func (b ICMPv6) SetCode(c ICMPv6Code) { b[icmpCode] = uint8(c) }

// SetChecksum stores a checksum.
func (b ICMPv6) SetChecksum(v uint16) { binary.BigEndian.PutUint16(b[icmpChecksum:], v) }

// SetIdent sets the echo Identifier.
func (b ICMPv6) SetIdent(v uint16) { binary.BigEndian.PutUint16(b[icmpIdent:], v) }

// SetSequence sets the echo Sequence Number.
func (b ICMPv6) SetSequence(v uint16) { binary.BigEndian.PutUint16(b[icmpSequence:], v) }

// SetMTU sets the MTU of a Packet Too Big message.
func (b ICMPv6) SetMTU(mtu uint32) { binary.BigEndian.PutUint32(b[icmpv6MTU:], mtu) }

// CalculateChecksum returns the checksum over the pseudo-header built from
// src, dst and len(b), and the whole message with the checksum field taken
// as zero, ready for SetChecksum. b must be exactly the ICMPv6 message.
func (b ICMPv6) CalculateChecksum(src, dst [16]byte) uint16 {
	s := PseudoHeaderChecksumV6(ProtocolICMPv6, src, dst, uint32(len(b)))
	s = Checksum(b[:icmpChecksum], s)
	return Fold(Checksum(b[icmpChecksum+2:], s))
}

// IsChecksumValid reports whether the stored checksum is correct for a
// message sent from src to dst.
func (b ICMPv6) IsChecksumValid(src, dst [16]byte) bool {
	s := PseudoHeaderChecksumV6(ProtocolICMPv6, src, dst, uint32(len(b)))
	return Fold(Checksum(b, s)) == 0
}
