package header

import (
	"testing"
)

func TestValidateIPv4(t *testing.T) {
	valid := ipv4Packet(ProtocolICMP, icmpv4Echo(ICMPv4EchoRequest, 1, 1))
	mod := func(f func(b IPv4)) []byte {
		b := append([]byte(nil), valid...)
		f(b)
		return b
	}
	withOpts := make([]byte, 24+8)
	IPv4(withOpts).Encode(&IPv4Fields{TotalLength: 32, TTL: 1, Protocol: ProtocolUDP, Options: []byte{0x94, 0x04, 0, 0}}) // Router Alert

	tests := []struct {
		name string
		b    []byte
		want IPv4Error
	}{
		{"valid icmp echo", valid, IPv4OK},
		{"valid tcp syn", ipv4Packet(ProtocolTCP, tcpSYN()), IPv4OK},
		{"valid with options", withOpts, IPv4OK},
		{"truncated after header", valid[:20], IPv4ErrBadTotalLength},
		{"trailing padding ok", append(ipv4Packet(ProtocolTCP, tcpSYN()[:20]), make([]byte, 6)...), IPv4OK},
		{"total length equals header", mod(func(b IPv4) { b.SetTotalLength(20) }), IPv4OK},
		{"empty", nil, IPv4ErrTooShort},
		{"19 bytes", valid[:19], IPv4ErrTooShort},
		{"version 6", mod(func(b IPv4) { b[0] = 0x65 }), IPv4ErrBadVersion},
		{"version 0", mod(func(b IPv4) { b[0] = 0x05 }), IPv4ErrBadVersion},
		{"ihl 4", mod(func(b IPv4) { b[0] = 0x44 }), IPv4ErrBadHeaderLength},
		{"ihl 0", mod(func(b IPv4) { b[0] = 0x40 }), IPv4ErrBadHeaderLength},
		{"ihl past buffer", mod(func(b IPv4) { b[0] = 0x46 })[:20], IPv4ErrBadHeaderLength},
		{"ihl 15 in 40 bytes", mod(func(b IPv4) { b[0] = 0x4f })[:40], IPv4ErrBadHeaderLength},
		{"total length below header", mod(func(b IPv4) { b.SetTotalLength(19) }), IPv4ErrBadTotalLength},
		{"total length zero", mod(func(b IPv4) { b.SetTotalLength(0) }), IPv4ErrBadTotalLength},
		{"total length past buffer", mod(func(b IPv4) { b.SetTotalLength(uint16(len(valid) + 1)) }), IPv4ErrBadTotalLength},
		{"total length below options", mod(func(b IPv4) { b[0] = 0x46; b.SetTotalLength(22) }), IPv4ErrBadTotalLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ValidateIPv4(tt.b); got != tt.want {
				t.Errorf("ValidateIPv4(%x) = %v, want %v", tt.b, got, tt.want)
			}
		})
	}
}

func TestIPv4ErrorString(t *testing.T) {
	want := map[IPv4Error]string{
		IPv4OK:                 "ok",
		IPv4ErrTooShort:        "too_short",
		IPv4ErrBadVersion:      "bad_version",
		IPv4ErrBadHeaderLength: "bad_header_length",
		IPv4ErrBadTotalLength:  "bad_total_length",
		IPv4Error(200):         "unknown",
	}
	for e, s := range want {
		if e.String() != s {
			t.Errorf("IPv4Error(%d).String() = %q, want %q", e, e.String(), s)
		}
	}
}

// readIPv4 reads every field back through the getters.
func readIPv4(b IPv4) IPv4Fields {
	f := IPv4Fields{
		TOS:            b.TOS(),
		TotalLength:    b.TotalLength(),
		ID:             b.ID(),
		Flags:          b.Flags(),
		FragmentOffset: b.FragmentOffset(),
		TTL:            b.TTL(),
		Protocol:       b.Protocol(),
		Checksum:       b.Checksum(),
		Src:            b.SourceAddress(),
		Dst:            b.DestinationAddress(),
	}
	if o := b.Options(); len(o) > 0 {
		f.Options = o
	}
	return f
}

func TestIPv4EncodeRoundTrip(t *testing.T) {
	tests := []IPv4Fields{
		{TOS: 0xb8, TotalLength: 1500, ID: 0xbeef, Flags: IPv4FlagDontFragment, TTL: 255, Protocol: ProtocolTCP, Checksum: 0x1234, Src: ip4A, Dst: ip4B},
		{TotalLength: 576, ID: 1, Flags: IPv4FlagMoreFragments, FragmentOffset: 8 * 0x1fff, TTL: 1, Protocol: ProtocolUDP, Src: [4]byte{10, 0, 0, 1}, Dst: [4]byte{255, 255, 255, 255}},
		{TotalLength: 60, Protocol: ProtocolIPIP, Options: []byte{1, 1, 1, 0, 0x44, 4, 5, 0}},
	}
	for _, want := range tests {
		b := make(IPv4, IPv4MinimumSize+len(want.Options))
		b.Encode(&want)
		if b.Version() != 4 || b.HeaderLength() != len(b) {
			t.Errorf("Version, HeaderLength = %d, %d; want 4, %d", b.Version(), b.HeaderLength(), len(b))
		}
		if d := diff(want, readIPv4(b)); d != "" {
			t.Errorf("Encode then getters (-want +got):\n%s", d)
		}
		wantFrag := want.Flags&IPv4FlagMoreFragments != 0 || want.FragmentOffset != 0
		if b.IsFragment() != wantFrag {
			t.Errorf("IsFragment() = %v, want %v", b.IsFragment(), wantFrag)
		}
	}
}

func TestIPv4Accessors(t *testing.T) {
	b := IPv4(append([]byte(nil), wikiIPv4...))
	if b.Src32() != 0xc0a80001 || b.Dst32() != 0xc0a800c7 {
		t.Errorf("Src32, Dst32 = %#x, %#x; want 0xc0a80001, 0xc0a800c7", b.Src32(), b.Dst32())
	}
	if !b.IsChecksumValid() || b.CalculateChecksum() != 0xb861 {
		t.Errorf("wikipedia header: IsChecksumValid %v, CalculateChecksum %#04x; want true, 0xb861", b.IsChecksumValid(), b.CalculateChecksum())
	}
	b.SetHeaderLength(24)
	if b[0] != 0x46 {
		t.Errorf("SetHeaderLength(24): first byte %#02x, want 0x46", b[0])
	}
	p := IPv4(ipv4Packet(ProtocolUDP, udpDNS()))
	if got, want := p.Payload(), []byte(udpDNS()); len(got) != len(want) || UDP(got).DestinationPort() != 53 {
		t.Errorf("Payload() = %x, want a %d-byte DNS datagram", got, len(want))
	}
}

func TestDecrementTTL(t *testing.T) {
	r := newRand(t)
	for i := 0; i < 5000; i++ {
		b := IPv4(randBytes(r, 20+4*r.IntN(11)))
		b[0] = 0x40 | uint8(len(b)/4)
		if r.IntN(4) == 0 {
			b[8] = uint8(1 + r.IntN(2)) // TTLs 1 and 2 stress the low byte
		}
		if b.TTL() == 0 {
			b.SetTTL(1)
		}
		b.SetChecksum(b.CalculateChecksum())
		ttl := b.TTL()
		if got := b.DecrementTTL(); got != ttl-1 || b.TTL() != ttl-1 {
			t.Fatalf("DecrementTTL() = %d, TTL() = %d; want %d", got, b.TTL(), ttl-1)
		}
		if got, want := b.Checksum(), b.CalculateChecksum(); got != want {
			t.Fatalf("%x: incremental checksum %#04x, recomputed %#04x", []byte(b), got, want)
		}
		if !b.IsChecksumValid() {
			t.Fatalf("%x: checksum invalid after DecrementTTL", []byte(b))
		}
	}

	b := IPv4(append([]byte(nil), wikiIPv4...))
	b.SetTTL(0)
	b.SetChecksum(b.CalculateChecksum())
	before := string(b)
	if got := b.DecrementTTL(); got != 0 || string(b) != before {
		t.Errorf("DecrementTTL at TTL 0 = %d and changed the header; want 0, unchanged", got)
	}
}

func BenchmarkValidateIPv4(b *testing.B) {
	pkt := ipv4Packet(ProtocolTCP, tcpSYN())
	b.ReportAllocs()
	for b.Loop() {
		if ValidateIPv4(pkt) != IPv4OK {
			b.Fatal("invalid")
		}
	}
}

func BenchmarkIPv4Checksum(b *testing.B) {
	pkt := IPv4(ipv4Packet(ProtocolTCP, tcpSYN()))
	b.ReportAllocs()
	for b.Loop() {
		if !pkt.IsChecksumValid() {
			b.Fatal("invalid")
		}
	}
}

func BenchmarkDecrementTTL(b *testing.B) {
	pkt := IPv4(ipv4Packet(ProtocolTCP, tcpSYN()))
	b.ReportAllocs()
	for b.Loop() {
		if pkt.DecrementTTL() == 0 {
			pkt.SetTTL(255)
		}
	}
}
