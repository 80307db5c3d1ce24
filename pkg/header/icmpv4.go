package header

import "encoding/binary"

// ICMPv4 is an ICMP message for IPv4 (RFC 792), starting at the Type field:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     Type      |     Code      |          Checksum             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|           Identifier          |        Sequence Number        |  echo
//	|             unused            |         Next-Hop MTU          |  frag. needed (RFC 1191)
//	|                             unused                            |  other errors
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Data (echo payload, or the offending IP header + 64 bits) ...
//	+-+-+-+-+-+-+-+-+-
//
// Accessors assume ValidateICMPv4 returned ICMPOK. The checksum covers the
// whole message and, unlike ICMPv6, no pseudo-header.
type ICMPv4 []byte

const (
	icmpType     = 0
	icmpCode     = 1
	icmpChecksum = 2
	icmpIdent    = 4
	icmpSequence = 6
	icmpv4MTU    = 6
	icmpv6MTU    = 4
)

const (
	// ICMPv4MinimumSize is the fixed part shared by all ICMPv4 messages.
	ICMPv4MinimumSize = 8
	// ICMPv4ChecksumOffset is the offset of the checksum field.
	ICMPv4ChecksumOffset = icmpChecksum
)

// ICMPv4Type is the ICMPv4 Type field.
type ICMPv4Type uint8

// ICMPv4 types (RFC 792).
const (
	ICMPv4EchoReply      ICMPv4Type = 0
	ICMPv4DstUnreachable ICMPv4Type = 3
	ICMPv4SourceQuench   ICMPv4Type = 4
	ICMPv4Redirect       ICMPv4Type = 5
	ICMPv4EchoRequest    ICMPv4Type = 8
	ICMPv4TimeExceeded   ICMPv4Type = 11
	ICMPv4ParamProblem   ICMPv4Type = 12
)

// IsErrorMessage reports whether t is an error type. RFC 1812 section
// 4.3.2.7 forbids sending an ICMP error about an ICMP error.
func (t ICMPv4Type) IsErrorMessage() bool {
	switch t {
	case ICMPv4DstUnreachable, ICMPv4SourceQuench, ICMPv4Redirect,
		ICMPv4TimeExceeded, ICMPv4ParamProblem:
		return true
	}
	return false
}

// ICMPv4Code is the ICMPv4 Code field; its meaning depends on the type.
type ICMPv4Code uint8

// Codes for ICMPv4DstUnreachable (RFC 792, RFC 1191, RFC 1812 section
// 5.2.7.1).
const (
	ICMPv4NetUnreachable      ICMPv4Code = 0
	ICMPv4HostUnreachable     ICMPv4Code = 1
	ICMPv4ProtoUnreachable    ICMPv4Code = 2
	ICMPv4PortUnreachable     ICMPv4Code = 3
	ICMPv4FragmentationNeeded ICMPv4Code = 4
	ICMPv4AdminProhibited     ICMPv4Code = 13
)

// Codes for ICMPv4TimeExceeded (RFC 792).
const (
	ICMPv4TTLExceeded       ICMPv4Code = 0
	ICMPv4ReassemblyTimeout ICMPv4Code = 1
)

// ICMPError is the result of ValidateICMPv4 and ValidateICMPv6.
type ICMPError uint8

// ICMPError values.
const (
	ICMPOK ICMPError = iota
	// ICMPErrTooShort: shorter than the 8-byte fixed part.
	ICMPErrTooShort
)

func (e ICMPError) String() string {
	switch e {
	case ICMPOK:
		return "ok"
	case ICMPErrTooShort:
		return "too_short"
	}
	return "unknown"
}

// ValidateICMPv4 checks that every accessor of ICMPv4(b) is safe. b must be
// the whole ICMP message (the IPv4 payload). The checksum is verified
// separately with IsChecksumValid.
func ValidateICMPv4(b []byte) ICMPError {
	if len(b) < ICMPv4MinimumSize {
		return ICMPErrTooShort
	}
	return ICMPOK
}

// Type returns the message type.
func (b ICMPv4) Type() ICMPv4Type { return ICMPv4Type(b[icmpType]) }

// Code returns the message code.
func (b ICMPv4) Code() ICMPv4Code { return ICMPv4Code(b[icmpCode]) }

// Checksum returns the stored checksum.
func (b ICMPv4) Checksum() uint16 { return binary.BigEndian.Uint16(b[icmpChecksum:]) }

// Ident returns the echo Identifier.
func (b ICMPv4) Ident() uint16 { return binary.BigEndian.Uint16(b[icmpIdent:]) }

// Sequence returns the echo Sequence Number.
func (b ICMPv4) Sequence() uint16 { return binary.BigEndian.Uint16(b[icmpSequence:]) }

// MTU returns the Next-Hop MTU of a Fragmentation Needed message (RFC 1191
// section 4); zero from a pre-RFC 1191 router.
func (b ICMPv4) MTU() uint16 { return binary.BigEndian.Uint16(b[icmpv4MTU:]) }

// Payload returns the data after the 8-byte fixed part.
func (b ICMPv4) Payload() []byte { return b[ICMPv4MinimumSize:] }

// SetType sets the message type.
func (b ICMPv4) SetType(t ICMPv4Type) { b[icmpType] = uint8(t) }

// SetCode sets the message code.
func (b ICMPv4) SetCode(c ICMPv4Code) { b[icmpCode] = uint8(c) }

// SetChecksum stores a checksum.
func (b ICMPv4) SetChecksum(v uint16) { binary.BigEndian.PutUint16(b[icmpChecksum:], v) }

// SetIdent sets the echo Identifier.
func (b ICMPv4) SetIdent(v uint16) { binary.BigEndian.PutUint16(b[icmpIdent:], v) }

// SetSequence sets the echo Sequence Number.
func (b ICMPv4) SetSequence(v uint16) { binary.BigEndian.PutUint16(b[icmpSequence:], v) }

// SetMTU sets the Next-Hop MTU and clears the unused word before it.
func (b ICMPv4) SetMTU(mtu uint16) {
	binary.BigEndian.PutUint16(b[icmpIdent:], 0)
	binary.BigEndian.PutUint16(b[icmpv4MTU:], mtu)
}

// CalculateChecksum returns the checksum over the whole message with the
// checksum field taken as zero, ready for SetChecksum.
func (b ICMPv4) CalculateChecksum() uint16 {
	return Fold(Checksum(b[icmpChecksum+2:], Checksum(b[:icmpChecksum], 0)))
}

// IsChecksumValid reports whether the stored checksum is correct.
func (b ICMPv4) IsChecksumValid() bool { return Fold(Checksum(b, 0)) == 0 }
