package header

import "encoding/binary"

// TCP is a TCP header followed by its payload (RFC 9293 section 3.1):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|          Source Port          |       Destination Port        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                        Sequence Number                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Acknowledgment Number                      |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Data |       |C|E|U|A|P|R|S|F|                               |
//	| Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
//	|       |       |R|E|G|K|H|T|N|N|                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|           Checksum            |         Urgent Pointer        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Options                    |    Padding    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Accessors assume ValidateTCP returned TCPOK.
type TCP []byte

const (
	tcpSrcPort    = 0
	tcpDstPort    = 2
	tcpSeqNum     = 4
	tcpAckNum     = 8
	tcpDataOffset = 12
	tcpFlags      = 13
	tcpWindow     = 14
	tcpChecksum   = 16
	tcpUrgentPtr  = 18
)

const (
	// TCPMinimumSize is the size of a header without options.
	TCPMinimumSize = 20
	// TCPMaximumHeaderSize is the largest header Data Offset can express.
	TCPMaximumHeaderSize = 60
	// TCPChecksumOffset is the offset of the checksum from the start of the
	// TCP header, as used by checksum offload (virtio csum_offset).
	TCPChecksumOffset = tcpChecksum
)

// TCP flag bits as returned by TCP.Flags.
const (
	TCPFlagFin = 1 << 0
	TCPFlagSyn = 1 << 1
	TCPFlagRst = 1 << 2
	TCPFlagPsh = 1 << 3
	TCPFlagAck = 1 << 4
	TCPFlagUrg = 1 << 5
	TCPFlagEce = 1 << 6
	TCPFlagCwr = 1 << 7
)

// TCPError is the result of ValidateTCP.
type TCPError uint8

// TCPError values.
const (
	TCPOK TCPError = iota
	// TCPErrTooShort: fewer than TCPMinimumSize bytes.
	TCPErrTooShort
	// TCPErrBadDataOffset: Data Offset below 5 words or past the buffer.
	TCPErrBadDataOffset
)

func (e TCPError) String() string {
	switch e {
	case TCPOK:
		return "ok"
	case TCPErrTooShort:
		return "too_short"
	case TCPErrBadDataOffset:
		return "bad_data_offset"
	}
	return "unknown"
}

// ValidateTCP checks that every accessor of TCP(b) is safe. b is the
// segment (the IP payload).
func ValidateTCP(b []byte) TCPError {
	if len(b) < TCPMinimumSize {
		return TCPErrTooShort
	}
	if off := int(b[tcpDataOffset]>>4) * 4; off < TCPMinimumSize || off > len(b) {
		return TCPErrBadDataOffset
	}
	return TCPOK
}

// SourcePort returns the source port.
func (t TCP) SourcePort() uint16 { return binary.BigEndian.Uint16(t[tcpSrcPort:]) }

// DestinationPort returns the destination port.
func (t TCP) DestinationPort() uint16 { return binary.BigEndian.Uint16(t[tcpDstPort:]) }

// SequenceNumber returns the sequence number.
func (t TCP) SequenceNumber() uint32 { return binary.BigEndian.Uint32(t[tcpSeqNum:]) }

// AckNumber returns the acknowledgment number.
func (t TCP) AckNumber() uint32 { return binary.BigEndian.Uint32(t[tcpAckNum:]) }

// DataOffset returns the header length in bytes (Data Offset * 4).
func (t TCP) DataOffset() int { return int(t[tcpDataOffset]>>4) * 4 }

// Flags returns the eight flag bits (TCPFlagFin etc.).
func (t TCP) Flags() uint8 { return t[tcpFlags] }

// WindowSize returns the unscaled window.
func (t TCP) WindowSize() uint16 { return binary.BigEndian.Uint16(t[tcpWindow:]) }

// Checksum returns the stored checksum.
func (t TCP) Checksum() uint16 { return binary.BigEndian.Uint16(t[tcpChecksum:]) }

// UrgentPointer returns the urgent pointer.
func (t TCP) UrgentPointer() uint16 { return binary.BigEndian.Uint16(t[tcpUrgentPtr:]) }

// Options returns the options area (possibly empty).
func (t TCP) Options() []byte { return t[TCPMinimumSize:t.DataOffset()] }

// Payload returns the bytes after the header.
func (t TCP) Payload() []byte { return t[t.DataOffset():] }

// SetSourcePort sets the source port.
func (t TCP) SetSourcePort(v uint16) { binary.BigEndian.PutUint16(t[tcpSrcPort:], v) }

// SetDestinationPort sets the destination port.
func (t TCP) SetDestinationPort(v uint16) { binary.BigEndian.PutUint16(t[tcpDstPort:], v) }

// SetSequenceNumber sets the sequence number.
func (t TCP) SetSequenceNumber(v uint32) { binary.BigEndian.PutUint32(t[tcpSeqNum:], v) }

// SetAckNumber sets the acknowledgment number.
func (t TCP) SetAckNumber(v uint32) { binary.BigEndian.PutUint32(t[tcpAckNum:], v) }

// SetDataOffset sets Data Offset from a header length in bytes (a multiple
// of 4 between 20 and 60), clearing the reserved bits.
func (t TCP) SetDataOffset(n int) { t[tcpDataOffset] = uint8(n/4) << 4 }

// SetFlags sets the eight flag bits.
func (t TCP) SetFlags(v uint8) { t[tcpFlags] = v }

// SetWindowSize sets the window.
func (t TCP) SetWindowSize(v uint16) { binary.BigEndian.PutUint16(t[tcpWindow:], v) }

// SetChecksum stores a checksum.
func (t TCP) SetChecksum(v uint16) { binary.BigEndian.PutUint16(t[tcpChecksum:], v) }

// SetUrgentPointer sets the urgent pointer.
func (t TCP) SetUrgentPointer(v uint16) { binary.BigEndian.PutUint16(t[tcpUrgentPtr:], v) }

// CalculateChecksum returns the checksum over the whole of t (exactly the
// segment) with the checksum field taken as zero, starting from the
// pseudo-header partial sum (PseudoHeaderChecksumV4/V6 with length len(t)).
func (t TCP) CalculateChecksum(pseudo uint32) uint16 {
	return Fold(Checksum(t[tcpChecksum+2:], Checksum(t[:tcpChecksum], pseudo)))
}

// IsChecksumValid reports whether the stored checksum is correct given the
// pseudo-header partial sum.
func (t TCP) IsChecksumValid(pseudo uint32) bool { return Fold(Checksum(t, pseudo)) == 0 }
