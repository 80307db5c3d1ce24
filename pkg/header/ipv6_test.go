package header

import (
	"testing"
)

func TestValidateIPv6(t *testing.T) {
	valid := ipv6Packet(ProtocolICMPv6, nil, ProtocolICMPv6, icmpv6Echo())
	mod := func(f func(b IPv6)) []byte {
		b := append([]byte(nil), valid...)
		f(b)
		return b
	}
	tests := []struct {
		name string
		b    []byte
		want IPv6Error
	}{
		{"valid icmpv6 echo", valid, IPv6OK},
		{"valid tcp syn", ipv6Packet(ProtocolTCP, nil, ProtocolTCP, tcpSYN()), IPv6OK},
		{"header only", mod(func(b IPv6) { b.SetPayloadLength(0) })[:40], IPv6OK},
		{"trailing padding ok", append(append([]byte(nil), valid...), 0, 0, 0), IPv6OK},
		{"empty", nil, IPv6ErrTooShort},
		{"39 bytes", valid[:39], IPv6ErrTooShort},
		{"version 4", mod(func(b IPv6) { b[0] = 0x45 }), IPv6ErrBadVersion},
		{"payload past buffer", valid[:len(valid)-1], IPv6ErrBadPayloadLength},
		{"payload length max", mod(func(b IPv6) { b.SetPayloadLength(0xffff) }), IPv6ErrBadPayloadLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ValidateIPv6(tt.b); got != tt.want {
				t.Errorf("ValidateIPv6(%x) = %v, want %v", tt.b, got, tt.want)
			}
		})
	}
	for e, s := range map[IPv6Error]string{IPv6OK: "ok", IPv6ErrTooShort: "too_short", IPv6ErrBadVersion: "bad_version", IPv6ErrBadPayloadLength: "bad_payload_length", 99: "unknown"} {
		if e.String() != s {
			t.Errorf("IPv6Error(%d).String() = %q, want %q", e, e.String(), s)
		}
	}
}

func readIPv6(b IPv6) IPv6Fields {
	return IPv6Fields{
		TrafficClass:  b.TrafficClass(),
		FlowLabel:     b.FlowLabel(),
		PayloadLength: b.PayloadLength(),
		NextHeader:    b.NextHeader(),
		HopLimit:      b.HopLimit(),
		Src:           b.SourceAddress(),
		Dst:           b.DestinationAddress(),
	}
}

func TestIPv6EncodeRoundTrip(t *testing.T) {
	tests := []IPv6Fields{
		{TrafficClass: 0xb9, FlowLabel: 0xfffff, PayloadLength: 1460, NextHeader: ProtocolTCP, HopLimit: 255, Src: ip6G, Dst: ip6H},
		{TrafficClass: 0xff, FlowLabel: 0, NextHeader: IPv6NoNextHeader, HopLimit: 1, Src: ip6LL},
		{},
	}
	for _, want := range tests {
		b := make(IPv6, IPv6MinimumSize)
		b.Encode(&want)
		if b.Version() != 6 {
			t.Errorf("Version() = %d, want 6", b.Version())
		}
		if d := diff(want, readIPv6(b)); d != "" {
			t.Errorf("Encode then getters (-want +got):\n%s", d)
		}
		// The bit-packed setters must not disturb their neighbours.
		b.SetTrafficClass(^want.TrafficClass)
		b.SetFlowLabel(^want.FlowLabel)
		want.TrafficClass, want.FlowLabel = ^want.TrafficClass, ^want.FlowLabel&0xfffff
		if d := diff(want, readIPv6(b)); d != "" || b.Version() != 6 {
			t.Errorf("after SetTrafficClass/SetFlowLabel, version %d (-want +got):\n%s", b.Version(), d)
		}
	}
}

func TestIPv6Accessors(t *testing.T) {
	b := IPv6(ipv6Packet(ProtocolUDP, nil, ProtocolUDP, udpDNS()))
	if hi, lo := b.SrcHiLo(); hi != 0x20010db800000000 || lo != 1 {
		t.Errorf("SrcHiLo() = %#x, %#x; want 0x20010db800000000, 1", hi, lo)
	}
	if hi, lo := b.DstHiLo(); hi != 0x20010db800000000 || lo != 2 {
		t.Errorf("DstHiLo() = %#x, %#x; want 0x20010db800000000, 2", hi, lo)
	}
	if got := b.Payload(); len(got) != len(udpDNS()) {
		t.Errorf("len(Payload()) = %d, want %d", len(got), len(udpDNS()))
	}
	b.SetHopLimit(2)
	if b.DecrementHopLimit() != 1 || b.DecrementHopLimit() != 0 || b.DecrementHopLimit() != 0 {
		t.Errorf("DecrementHopLimit from 2 did not go 1, 0, 0")
	}
	if !IsIPv6Multicast(SolicitedNodeAddress(ip6G)) || IsIPv6Multicast(ip6G) {
		t.Errorf("IsIPv6Multicast wrong")
	}
	if !IsIPv6LinkLocalUnicast(ip6LL) || IsIPv6LinkLocalUnicast(ip6G) || !IsIPv6Unspecified([16]byte{}) || IsIPv6Unspecified(ip6G) {
		t.Errorf("IsIPv6LinkLocalUnicast/IsIPv6Unspecified wrong")
	}
}

// ext builds an options-style extension header (Hop-by-Hop, Routing,
// Destination Options) of n 8-octet units with the given next header.
func ext(next uint8, units int) []byte {
	h := make([]byte, 8*units)
	h[0] = next
	h[1] = uint8(units - 1)
	if len(h) > 2 {
		h[2] = 1 // PadN covering the rest
		h[3] = uint8(len(h) - 4)
	}
	return h
}

func fragHdr(next uint8, offset uint16, more bool) []byte {
	h := []byte{next, 0, byte(offset >> 8), byte(offset), 0xde, 0xad, 0xbe, 0xef}
	if more {
		h[3] |= 1
	}
	return h
}

func cat(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

func TestTransportProtocol(t *testing.T) {
	syn := tcpSYN()
	type result struct {
		Proto  uint8
		Offset int
		OK     bool
	}
	tests := []struct {
		name string
		b    []byte
		want result
	}{
		{"no extension headers", ipv6Packet(ProtocolTCP, nil, ProtocolTCP, syn), result{ProtocolTCP, 40, true}},
		{"hop-by-hop", ipv6Packet(IPv6HopByHopOptions, ext(ProtocolUDP, 1), ProtocolUDP, udpDNS()), result{ProtocolUDP, 48, true}},
		{"hbh, routing, dstopts", ipv6Packet(IPv6HopByHopOptions,
			cat(ext(IPv6RoutingHeader, 1), ext(IPv6DestinationOptions, 3), ext(ProtocolTCP, 2)), ProtocolTCP, syn),
			result{ProtocolTCP, 40 + 8 + 24 + 16, true}},
		{"first fragment", ipv6Packet(IPv6FragmentHeader, fragHdr(ProtocolUDP, 0, true), ProtocolUDP, udpDNS()), result{ProtocolUDP, 48, true}},
		{"atomic fragment", ipv6Packet(IPv6FragmentHeader, fragHdr(ProtocolICMPv6, 0, false), ProtocolICMPv6, icmpv6Echo()), result{ProtocolICMPv6, 48, true}},
		{"non-first fragment", ipv6Packet(IPv6DestinationOptions, cat(ext(IPv6FragmentHeader, 1), fragHdr(ProtocolUDP, 1480, false)), 0, make([]byte, 64)),
			result{IPv6FragmentHeader, 48, true}},
		{"no next header", ipv6Packet(IPv6NoNextHeader, nil, 0, nil), result{IPv6NoNextHeader, 40, true}},
		{"AH is returned, not skipped", ipv6Packet(51, nil, 0, make([]byte, 24)), result{51, 40, true}},
		{"empty payload", ipv6Packet(ProtocolUDP, nil, 0, nil), result{ProtocolUDP, 40, true}},
		{"hop-by-hop not first", ipv6Packet(IPv6DestinationOptions, cat(ext(IPv6HopByHopOptions, 1), ext(ProtocolTCP, 1)), ProtocolTCP, syn), result{}},
		{"extension header truncated by buffer", ipv6Packet(IPv6RoutingHeader, ext(ProtocolTCP, 4), 0, nil)[:60], result{}},
		{"extension header past payload length", func() []byte {
			b := ipv6Packet(IPv6RoutingHeader, ext(ProtocolTCP, 2), ProtocolTCP, syn)
			IPv6(b).SetPayloadLength(8)
			return b
		}(), result{}},
		{"fragment header truncated", ipv6Packet(IPv6FragmentHeader, fragHdr(ProtocolUDP, 0, true)[:7], 0, nil), result{}},
		{"header fragment of 2 bytes", ipv6Packet(IPv6DestinationOptions, []byte{6, 0}, 0, nil), result{}},
		{"too short", make([]byte, 39), result{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got result
			got.Proto, got.Offset, got.OK = TransportProtocol(tt.b)
			if d := diff(tt.want, got); d != "" {
				t.Errorf("TransportProtocol (-want +got):\n%s", d)
			}
		})
	}
}
