package header

import "encoding/binary"

// UDP is a UDP header followed by its payload (RFC 768):
//
//	 0      7 8     15 16    23 24    31
//	+--------+--------+--------+--------+
//	|     Source      |   Destination   |
//	|      Port       |      Port       |
//	+--------+--------+--------+--------+
//	|     Length      |    Checksum     |
//	+--------+--------+--------+--------+
//
// Accessors assume ValidateUDP returned UDPOK.
type UDP []byte

const (
	udpSrcPort  = 0
	udpDstPort  = 2
	udpLength   = 4
	udpChecksum = 6
)

const (
	// UDPMinimumSize is the size of the header.
	UDPMinimumSize = 8
	// UDPChecksumOffset is the offset of the checksum from the start of the
	// UDP header, as used by checksum offload (virtio csum_offset).
	UDPChecksumOffset = udpChecksum
)

// UDPError is the result of ValidateUDP.
type UDPError uint8

// UDPError values.
const (
	UDPOK UDPError = iota
	// UDPErrTooShort: fewer than UDPMinimumSize bytes.
	UDPErrTooShort
	// UDPErrBadLength: Length is below 8 or runs past the buffer.
	UDPErrBadLength
)

func (e UDPError) String() string {
	switch e {
	case UDPOK:
		return "ok"
	case UDPErrTooShort:
		return "too_short"
	case UDPErrBadLength:
		return "bad_length"
	}
	return "unknown"
}

// ValidateUDP checks that every accessor of UDP(b) is safe. b is the IP
// payload; bytes beyond Length are tolerated.
func ValidateUDP(b []byte) UDPError {
	if len(b) < UDPMinimumSize {
		return UDPErrTooShort
	}
	if l := int(binary.BigEndian.Uint16(b[udpLength:])); l < UDPMinimumSize || l > len(b) {
		return UDPErrBadLength
	}
	return UDPOK
}

// SourcePort returns the source port.
func (u UDP) SourcePort() uint16 { return binary.BigEndian.Uint16(u[udpSrcPort:]) }

// DestinationPort returns the destination port.
func (u UDP) DestinationPort() uint16 { return binary.BigEndian.Uint16(u[udpDstPort:]) }

// Length returns the Length field: header plus data.
func (u UDP) Length() uint16 { return binary.BigEndian.Uint16(u[udpLength:]) }

// Checksum returns the stored checksum. Zero means "not computed", which is
// allowed over IPv4 only (RFC 768; RFC 8200 section 8.1).
func (u UDP) Checksum() uint16 { return binary.BigEndian.Uint16(u[udpChecksum:]) }

// Payload returns the data up to Length.
func (u UDP) Payload() []byte { return u[UDPMinimumSize:u.Length()] }

// SetSourcePort sets the source port.
func (u UDP) SetSourcePort(v uint16) { binary.BigEndian.PutUint16(u[udpSrcPort:], v) }

// SetDestinationPort sets the destination port.
func (u UDP) SetDestinationPort(v uint16) { binary.BigEndian.PutUint16(u[udpDstPort:], v) }

// SetLength sets the Length field.
func (u UDP) SetLength(v uint16) { binary.BigEndian.PutUint16(u[udpLength:], v) }

// SetChecksum stores a checksum.
func (u UDP) SetChecksum(v uint16) { binary.BigEndian.PutUint16(u[udpChecksum:], v) }

// CalculateChecksum returns the checksum over the whole of u (which must be
// exactly the datagram, len(u) == Length()) with the checksum field taken as
// zero, starting from the pseudo-header partial sum from
// PseudoHeaderChecksumV4/V6 with length len(u). A computed zero is returned
// as 0xFFFF because zero on the wire means "no checksum" (RFC 768).
func (u UDP) CalculateChecksum(pseudo uint32) uint16 {
	c := Fold(Checksum(u[udpChecksum+2:], Checksum(u[:udpChecksum], pseudo)))
	if c == 0 {
		return 0xffff
	}
	return c
}

// IsChecksumValid reports whether the stored checksum is correct given the
// pseudo-header partial sum. It does not special-case a zero (absent)
// checksum; callers on IPv4 should check Checksum() == 0 first.
func (u UDP) IsChecksumValid(pseudo uint32) bool { return Fold(Checksum(u, pseudo)) == 0 }
