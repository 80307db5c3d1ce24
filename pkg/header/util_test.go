package header

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// diff returns "" if want and got are deeply equal, and otherwise a
// "-want +got" listing: field by field for structs of the same type, whole
// values otherwise.
func diff(want, got any) string {
	if reflect.DeepEqual(want, got) {
		return ""
	}
	wv, gv := reflect.ValueOf(want), reflect.ValueOf(got)
	var sb strings.Builder
	if wv.IsValid() && gv.IsValid() && wv.Kind() == reflect.Struct && wv.Type() == gv.Type() {
		for i := 0; i < wv.NumField(); i++ {
			name := wv.Type().Field(i).Name
			w, g := wv.Field(i).Interface(), gv.Field(i).Interface()
			if !reflect.DeepEqual(w, g) {
				fmt.Fprintf(&sb, "-%s: %#v\n+%s: %#v\n", name, w, name, g)
			}
		}
		return sb.String()
	}
	return fmt.Sprintf("-%#v\n+%#v\n", want, got)
}

// refSum is a deliberately naive RFC 1071 one's complement sum, folded to 16
// bits but not complemented, used as the oracle for the fast code.
func refSum(b []byte, initial uint32) uint16 {
	s := uint64(initial)
	for i := 0; i+1 < len(b); i += 2 {
		s += uint64(b[i])<<8 | uint64(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint64(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// refChecksum is the value a checksum field should hold for data b (with the
// field itself zeroed) plus initial.
func refChecksum(b []byte, initial uint32) uint16 { return ^refSum(b, initial) }

func newRand(t testing.TB) *rand.Rand {
	t.Helper()
	return rand.New(rand.NewPCG(0x7665636e6574, uint64(len(t.Name()))))
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func mustHex(s string) []byte {
	s = strings.Join(strings.Fields(s), "")
	b := make([]byte, len(s)/2)
	for i := range b {
		var v byte
		if _, err := fmt.Sscanf(s[2*i:2*i+2], "%02x", &v); err != nil {
			panic(err)
		}
		b[i] = v
	}
	return b
}

// Addresses used by the sample packets.
var (
	macA  = [6]byte{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	macB  = [6]byte{0x02, 0x42, 0xac, 0x11, 0x00, 0x02}
	ip4A  = [4]byte{192, 168, 1, 10}
	ip4B  = [4]byte{8, 8, 8, 8}
	ip6A  = [16]byte{0xfe, 0x80, 14: 0x00, 15: 0x01}
	ip6LL = [16]byte{0xfe, 0x80, 8: 0x02, 9: 0xaa, 10: 0x00, 11: 0xff, 12: 0xfe, 13: 0x28, 14: 0x9c, 15: 0x5a}
	ip6G  = [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 0x01}
	ip6H  = [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 0x02}
)

// icmpEchoPayload is what Linux ping sends: a 16-byte timestamp followed by
// bytes 0x10..0x37.
func icmpEchoPayload() []byte {
	p := mustHex("6a b1 3f 66 00 00 00 00 3c 0a 0e 00 00 00 00 00")
	for i := 0x10; i < 0x38; i++ {
		p = append(p, byte(i))
	}
	return p
}

func icmpv4Echo(typ ICMPv4Type, id, seq uint16) []byte {
	m := ICMPv4(append(make([]byte, ICMPv4MinimumSize), icmpEchoPayload()...))
	m.SetType(typ)
	m.SetIdent(id)
	m.SetSequence(seq)
	m.SetChecksum(m.CalculateChecksum())
	return m
}

// tcpSYN is a Linux-style SYN: MSS 1460, SACK permitted, timestamps, NOP,
// window scale 7. The checksum is left zero.
func tcpSYN() []byte {
	t := TCP(make([]byte, 40))
	t.SetSourcePort(54321)
	t.SetDestinationPort(443)
	t.SetSequenceNumber(0x7a3b9c01)
	t.SetDataOffset(40)
	t.SetFlags(TCPFlagSyn)
	t.SetWindowSize(64240)
	copy(t[20:], mustHex("020405b4 0402 080a 9a3c1e25 00000000 01 030307"))
	return t
}

func udpDNS() []byte {
	q := mustHex("1234 0100 0001 0000 0000 0000 07 6578616d706c65 03 636f6d 00 0001 0001")
	u := UDP(make([]byte, UDPMinimumSize+len(q)))
	u.SetSourcePort(40000)
	u.SetDestinationPort(53)
	u.SetLength(uint16(len(u)))
	copy(u[UDPMinimumSize:], q)
	return u
}

// ipv4Packet wraps l4 in an IPv4 header and fills in both checksums.
func ipv4Packet(proto uint8, l4 []byte) []byte {
	b := make([]byte, IPv4MinimumSize+len(l4))
	ip := IPv4(b)
	ip.Encode(&IPv4Fields{
		TotalLength: uint16(len(b)),
		ID:          0x1c46,
		Flags:       IPv4FlagDontFragment,
		TTL:         64,
		Protocol:    proto,
		Src:         ip4A,
		Dst:         ip4B,
	})
	copy(b[IPv4MinimumSize:], l4)
	ip.SetChecksum(ip.CalculateChecksum())
	p := ip.Payload()
	pseudo := PseudoHeaderChecksumV4(proto, ip4A, ip4B, uint16(len(p)))
	switch proto {
	case ProtocolTCP:
		TCP(p).SetChecksum(TCP(p).CalculateChecksum(pseudo))
	case ProtocolUDP:
		UDP(p).SetChecksum(UDP(p).CalculateChecksum(pseudo))
	}
	return b
}

// ipv6Packet wraps ext (extension headers) and l4 in an IPv6 header, with
// nh the fixed header's Next Header, and fills in the upper-layer checksum.
func ipv6Packet(nh uint8, ext []byte, proto uint8, l4 []byte) []byte {
	b := make([]byte, IPv6MinimumSize+len(ext)+len(l4))
	ip := IPv6(b)
	ip.Encode(&IPv6Fields{
		FlowLabel:     0x12345,
		PayloadLength: uint16(len(ext) + len(l4)),
		NextHeader:    nh,
		HopLimit:      64,
		Src:           ip6G,
		Dst:           ip6H,
	})
	copy(b[IPv6MinimumSize:], ext)
	p := b[IPv6MinimumSize+len(ext):]
	copy(p, l4)
	pseudo := PseudoHeaderChecksumV6(proto, ip6G, ip6H, uint32(len(p)))
	switch proto {
	case ProtocolTCP:
		TCP(p).SetChecksum(TCP(p).CalculateChecksum(pseudo))
	case ProtocolUDP:
		UDP(p).SetChecksum(UDP(p).CalculateChecksum(pseudo))
	case ProtocolICMPv6:
		ICMPv6(p).SetChecksum(ICMPv6(p).CalculateChecksum(ip6G, ip6H))
	}
	return b
}

func icmpv6Echo() []byte {
	m := ICMPv6(append(make([]byte, ICMPv6MinimumSize), icmpEchoPayload()...))
	m.SetType(ICMPv6EchoRequest)
	m.SetIdent(0x0b0e)
	m.SetSequence(3)
	return m
}

// wikiIPv4 is the header used as the worked example in Wikipedia's "IPv4
// header checksum" article: 192.168.0.1 -> 192.168.0.199, UDP, checksum
// 0xb861.
var wikiIPv4 = mustHex("4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7")
