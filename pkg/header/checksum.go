package header

import (
	"encoding/binary"
	"math/bits"
)

// The Internet checksum (RFC 1071) is the 16-bit one's complement of the one's
// complement sum of the data taken as big-endian 16-bit words. Because
// 2^16 ≡ 1 (mod 2^16-1), the sum can be accumulated in wider words and folded
// down at the end (RFC 1071 section 2(C), "parallel summation"); Checksum does
// that 8 bytes at a time with the carries folded back in.
//
// Partial sums are carried around as uint32 values that have not been folded
// or complemented, so that pieces (pseudo-header, header, payload) can be
// summed separately and combined; Fold turns the final partial sum into the
// value that goes on the wire.

// Checksum adds the bytes of b to the partial sum initial and returns the new
// partial sum. An odd trailing byte is treated as the high byte of a
// zero-padded 16-bit word, as RFC 1071 requires.
//
// Summing a buffer in pieces with Checksum(b2, Checksum(b1, 0)) is only
// equivalent to summing the concatenation if len(b1) is even; with an odd
// split the second piece would be summed with its bytes swapped.
//
// A non-zero input never produces a zero partial sum (one's complement "+0"),
// so Fold of the result of non-zero data is never 0xFFFF.
func Checksum(b []byte, initial uint32) uint32 {
	acc := uint64(initial)
	var carry uint64
	for len(b) >= 32 {
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[0:8]), carry)
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[8:16]), carry)
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[16:24]), carry)
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[24:32]), carry)
		b = b[32:]
	}
	for len(b) >= 8 {
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b), carry)
		b = b[8:]
	}
	// Any 16-bit-aligned position inside the 64-bit accumulator has weight
	// 2^(16k) ≡ 1, so the tail words can be added at the bottom.
	if len(b) >= 4 {
		acc, carry = bits.Add64(acc, uint64(binary.BigEndian.Uint32(b)), carry)
		b = b[4:]
	}
	if len(b) >= 2 {
		acc, carry = bits.Add64(acc, uint64(binary.BigEndian.Uint16(b)), carry)
		b = b[2:]
	}
	if len(b) == 1 {
		acc, carry = bits.Add64(acc, uint64(b[0])<<8, carry)
	}
	// End-around carry. If acc was all ones the first add wraps it to zero
	// and carries again; the second add cannot carry.
	acc, carry = bits.Add64(acc, 0, carry)
	acc += carry
	return fold64(acc)
}

// fold64 folds a 64-bit one's complement sum to 32 bits without losing the
// distinction between zero and non-zero input.
func fold64(acc uint64) uint32 {
	s := acc>>32 + acc&0xffffffff // at most 33 bits
	s = s>>32 + s&0xffffffff      // s>>32 is 1 only if the low half is <= 0xfffffffe
	return uint32(s)
}

// Fold folds a partial sum to 16 bits and complements it, giving the value to
// store in a checksum field. A packet whose stored checksum is correct has
// Fold(Checksum(whole header/message, pseudo-header sum)) == 0.
func Fold(sum uint32) uint16 {
	sum = sum>>16 + sum&0xffff // at most 0x1fffe
	sum += sum >> 16           // cannot carry again
	return ^uint16(sum)
}

// ChecksumCombine adds two partial sums in one's complement arithmetic. The
// sum of the bytes of a concatenation is ChecksumCombine of the sums of the
// pieces provided every piece but the last has even length.
func ChecksumCombine(a, b uint32) uint32 {
	return fold64(uint64(a) + uint64(b))
}

// PseudoHeaderChecksumV4 returns the partial sum of the IPv4 pseudo-header
// used by TCP (RFC 9293 section 3.1), UDP (RFC 768) and other transports:
//
//	+--------+--------+--------+--------+
//	|           Source Address          |
//	+--------+--------+--------+--------+
//	|         Destination Address       |
//	+--------+--------+--------+--------+
//	|  zero  |  PTCL  |    Length       |
//	+--------+--------+--------+--------+
//
// length is the transport header plus payload length.
func PseudoHeaderChecksumV4(proto uint8, src, dst [4]byte, length uint16) uint32 {
	// Six 16-bit terms cannot overflow 32 bits, so no carry handling needed.
	return uint32(binary.BigEndian.Uint16(src[0:2])) +
		uint32(binary.BigEndian.Uint16(src[2:4])) +
		uint32(binary.BigEndian.Uint16(dst[0:2])) +
		uint32(binary.BigEndian.Uint16(dst[2:4])) +
		uint32(proto) + uint32(length)
}

// PseudoHeaderChecksumV6 returns the partial sum of the IPv6 pseudo-header
// (RFC 8200 section 8.1):
//
//	+-------------------------------------------+
//	|        Source Address (128 bits)          |
//	+-------------------------------------------+
//	|      Destination Address (128 bits)       |
//	+-------------------------------------------+
//	|       Upper-Layer Packet Length (32)      |
//	+--------------------------+----------------+
//	|        zero (24)         |  Next Header   |
//	+--------------------------+----------------+
//
// length is the upper-layer length, i.e. excluding any extension headers
// between the IPv6 header and the upper-layer header. proto is the
// upper-layer protocol, not necessarily the IPv6 Next Header field.
func PseudoHeaderChecksumV6(proto uint8, src, dst [16]byte, length uint32) uint32 {
	var s uint32
	// Nineteen 16-bit terms: at most 19*0xffff, well inside 32 bits.
	for i := 0; i < 16; i += 2 {
		s += uint32(binary.BigEndian.Uint16(src[i:]))
		s += uint32(binary.BigEndian.Uint16(dst[i:]))
	}
	return s + length>>16 + length&0xffff + uint32(proto)
}

// UpdateChecksum16 returns the checksum field value hc updated for a 16-bit
// word of the covered data changing from old to new, using RFC 1624
// equation 3:
//
//	HC' = ~(~HC + ~m + m')
//
// Unlike RFC 1141's HC' = HC + m + ~m' (equation 2 in RFC 1624's terms), this
// never turns a correct 0x0000 checksum into 0xFFFF, so the result equals a
// full recomputation for any data that is not entirely zero.
func UpdateChecksum16(hc, old, new uint16) uint16 {
	s := uint32(^hc) + uint32(^old) + uint32(new)
	return Fold(s)
}

// UpdateChecksum32 is UpdateChecksum16 for a 32-bit field, such as an IPv4
// address rewritten by NAT, given as big-endian uint32 values (see
// IPv4.Src32). The field must start at an even offset of the covered data,
// which all IPv4/TCP/UDP address and port fields do.
func UpdateChecksum32(hc uint16, old, new uint32) uint16 {
	s := uint32(^hc) +
		(^old)>>16 + (^old)&0xffff +
		new>>16 + new&0xffff
	return Fold(s)
}
