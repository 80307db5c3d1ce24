package uplinkfilter

import (
	"encoding/binary"
	"net/netip"

	"github.com/vecnet/vecnet/pkg/dataplane/driver"
)

// Header layout the decision reads. Offsets are from the start of the
// Ethernet frame unless named otherwise; the BPF emitter (emit.go) and Decide
// use the same constants so the two cannot drift apart.
const (
	// Ethernet II (RFC 894): destination MAC 6, source MAC 6, EtherType 2.
	// No 802.1Q tag is parsed: a tagged frame has EtherType 0x8100 here and
	// is left to the kernel.
	ethHdrLen     = 14
	ethTypeOff    = 12
	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86DD

	// IPv4 header (RFC 791 section 3.1), offsets from the IP header:
	// Version (4 bits) and IHL (4 bits, in 32-bit words) at 0, Flags (3
	// bits) and Fragment Offset (13 bits) at 6, Protocol at 9, Destination
	// Address at 16. IHL < 5 is not a valid header; options extend the
	// header to at most 15 words (60 bytes).
	ipv4MinHdrLen   = 20
	ipv4MaxHdrLen   = 60
	ipv4VerIHLOff   = 0
	ipv4FragOff     = 6
	ipv4FragOffMask = 0x1fff
	ipv4ProtoOff    = 9
	ipv4DstOff      = 16

	// IPv6 fixed header (RFC 8200 section 3): Version (4 bits) at 0,
	// Destination Address (16 bytes) at 24, 40 bytes in all.
	ipv6HdrLen = 40
	ipv6DstOff = 24

	// UDP header (RFC 768): source port 0, destination port 2, length 4,
	// checksum 6. VXLAN (RFC 7348 section 5) is UDP to port 4789.
	udpHdrLen     = 8
	udpDstPortOff = 2

	// IP protocol numbers of the outer headers the dataplane terminates.
	protoIPIP = 4  // IPv4 in IPv4 (RFC 2003)
	protoIPv6 = 41 // IPv6 in IPv4 (RFC 4213 section 3.5)
	protoUDP  = 17

	// maxHeaderBytes is the furthest into a frame the decision ever reads:
	// Ethernet, IPv4 with the largest options, and a UDP header.
	maxHeaderBytes = ethHdrLen + ipv4MaxHdrLen + udpHdrLen
)

// Decide is the reference, in Go, of the decision the BPF programs make: it
// reports whether frame (an Ethernet frame) belongs to the dataplane under
// f. The tests hold the programs to it, so read this to know what they do:
//
//   - frames shorter than an Ethernet header, and any EtherType other than
//     IPv4 and IPv6, are not ours;
//   - IPv4 needs version 4, IHL >= 5 and the whole header (options
//     included) inside the frame; then it is ours if the destination is in
//     an IPv4 prefix of f, or is an IPv4 node address of f and the protocol
//     is 4 or 41, or it is UDP, not a non-first fragment, with its whole
//     8-byte UDP header inside the frame and a destination port of f;
//   - IPv6 needs version 6 and the 40-byte header inside the frame; then it
//     is ours if the destination is in an IPv6 prefix of f.
//
// The total length, checksum and padding of the IP header are not looked
// at: the kernel or the dataplane drops such packets later either way.
//
// Entries of f are read the way Update stores them: prefixes masked,
// IPv4-mapped IPv6 prefixes and node addresses taken as IPv4, IPv6 node
// addresses ignored, and the entries Update rejects (invalid prefixes and
// addresses, port 0) never match. Decide does not allocate.
func Decide(frame []byte, f *driver.Filter) bool {
	if len(frame) < ethHdrLen {
		return false
	}
	switch binary.BigEndian.Uint16(frame[ethTypeOff:]) {
	case etherTypeIPv4:
		return decide4(frame, f)
	case etherTypeIPv6:
		return decide6(frame, f)
	}
	return false
}

func decide4(frame []byte, f *driver.Filter) bool {
	if len(frame) < ethHdrLen+ipv4MinHdrLen {
		return false
	}
	ip := frame[ethHdrLen:]
	if ip[ipv4VerIHLOff]>>4 != 4 {
		return false
	}
	hlen := int(ip[ipv4VerIHLOff]&0x0f) * 4
	if hlen < ipv4MinHdrLen || len(ip) < hlen {
		return false
	}
	dst := netip.AddrFrom4([4]byte(ip[ipv4DstOff : ipv4DstOff+4]))
	for _, p := range f.Prefixes {
		if p, ok := normPrefix(p); ok && p.Contains(dst) {
			return true
		}
	}
	node := false
	for _, a := range f.NodeAddrs {
		if a, ok := nodeAddr4(a); ok && a == dst {
			node = true
			break
		}
	}
	if !node {
		return false
	}
	switch ip[ipv4ProtoOff] {
	case protoIPIP, protoIPv6:
		return true
	case protoUDP:
	default:
		return false
	}
	if binary.BigEndian.Uint16(ip[ipv4FragOff:])&ipv4FragOffMask != 0 {
		return false // no UDP header in a non-first fragment
	}
	if len(ip) < hlen+udpHdrLen {
		return false
	}
	port := binary.BigEndian.Uint16(ip[hlen+udpDstPortOff:])
	for _, p := range f.UDPPorts {
		if p != 0 && p == port {
			return true
		}
	}
	return false
}

func decide6(frame []byte, f *driver.Filter) bool {
	if len(frame) < ethHdrLen+ipv6HdrLen {
		return false
	}
	ip := frame[ethHdrLen:]
	if ip[0]>>4 != 6 {
		return false
	}
	dst := netip.AddrFrom16([16]byte(ip[ipv6DstOff : ipv6DstOff+16]))
	for _, p := range f.Prefixes {
		if p, ok := normPrefix(p); ok && p.Contains(dst) {
			return true
		}
	}
	return false
}

// normPrefix returns p as the maps hold it: masked, and an IPv4-mapped IPv6
// prefix of at least 96 bits (::ffff:10.0.0.0/104) as the IPv4 prefix it
// stands for (10.0.0.0/8), because the IPv4 packets it is meant to match
// carry 4-byte addresses. ok is false for an invalid prefix.
func normPrefix(p netip.Prefix) (_ netip.Prefix, ok bool) {
	if !p.IsValid() {
		return netip.Prefix{}, false
	}
	p = p.Masked()
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p, true
}

// nodeAddr4 returns a as the node address map holds it: an IPv4 address,
// unmapped from ::ffff:a.b.c.d. ok is false for anything else (IPv6 node
// addresses are not an error: no IPv6 outer tunnel is terminated, so they
// simply never match).
func nodeAddr4(a netip.Addr) (_ netip.Addr, ok bool) {
	a = a.Unmap()
	return a, a.Is4()
}
