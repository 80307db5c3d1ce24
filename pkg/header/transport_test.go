package header

import "testing"

func TestValidateUDP(t *testing.T) {
	dns := udpDNS()
	mod := func(l uint16) []byte {
		b := append([]byte(nil), dns...)
		UDP(b).SetLength(l)
		return b
	}
	tests := []struct {
		name string
		b    []byte
		want UDPError
	}{
		{"dns query", dns, UDPOK},
		{"header only", mod(8)[:8], UDPOK},
		{"length shorter than buffer", mod(8), UDPOK},
		{"7 bytes", dns[:7], UDPErrTooShort},
		{"length 7", mod(7), UDPErrBadLength},
		{"length past buffer", mod(uint16(len(dns) + 1)), UDPErrBadLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ValidateUDP(tt.b); got != tt.want {
				t.Errorf("ValidateUDP(%x) = %v, want %v", tt.b, got, tt.want)
			}
		})
	}
	if UDPErrBadLength.String() != "bad_length" || UDPOK.String() != "ok" || UDPErrTooShort.String() != "too_short" || UDPError(9).String() != "unknown" {
		t.Errorf("UDPError strings wrong")
	}
}

func TestUDP(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		var u UDP
		var pseudo uint32
		var ph []byte
		if v6 {
			u = UDP(IPv6(ipv6Packet(ProtocolUDP, nil, ProtocolUDP, udpDNS())).Payload())
			pseudo = PseudoHeaderChecksumV6(ProtocolUDP, ip6G, ip6H, uint32(len(u)))
			ph = cat(ip6G[:], ip6H[:], []byte{0, 0, byte(len(u) >> 8), byte(len(u)), 0, 0, 0, ProtocolUDP})
		} else {
			u = UDP(IPv4(ipv4Packet(ProtocolUDP, udpDNS())).Payload())
			pseudo = PseudoHeaderChecksumV4(ProtocolUDP, ip4A, ip4B, uint16(len(u)))
			ph = cat(ip4A[:], ip4B[:], []byte{0, ProtocolUDP, byte(len(u) >> 8), byte(len(u))})
		}
		if !u.IsChecksumValid(pseudo) {
			t.Errorf("v6=%v: checksum does not verify", v6)
		}
		if got, want := u.Checksum(), refChecksum(cat(ph, u[:6], []byte{0, 0}, u[8:]), 0); got != want {
			t.Errorf("v6=%v: Checksum() = %#04x, reference %#04x", v6, got, want)
		}
		if u.SourcePort() != 40000 || u.DestinationPort() != 53 || int(u.Length()) != len(u) || len(u.Payload()) != len(u)-8 {
			t.Errorf("v6=%v: ports %d->%d length %d", v6, u.SourcePort(), u.DestinationPort(), u.Length())
		}
	}

	// A datagram whose checksum computes to zero must carry 0xFFFF. With an
	// all-zero pseudo-header sum, data summing to 0xFFFF does it.
	u := UDP(make([]byte, 10))
	u.SetLength(10)
	u[8], u[9] = 0xff, 0xff-10
	if got := u.CalculateChecksum(0); got != 0xffff {
		t.Errorf("CalculateChecksum for zero result = %#04x, want 0xffff", got)
	}
	u.SetChecksum(0xffff)
	if !u.IsChecksumValid(0) {
		t.Errorf("0xffff checksum does not verify")
	}
}

func TestValidateTCP(t *testing.T) {
	syn := tcpSYN()
	mod := func(off int) []byte {
		b := append([]byte(nil), syn...)
		TCP(b).SetDataOffset(off)
		return b
	}
	tests := []struct {
		name string
		b    []byte
		want TCPError
	}{
		{"syn with options", syn, TCPOK},
		{"no options", mod(20)[:20], TCPOK},
		{"19 bytes", syn[:19], TCPErrTooShort},
		{"data offset 16", mod(16), TCPErrBadDataOffset},
		{"data offset 0", mod(0), TCPErrBadDataOffset},
		{"options past buffer", syn[:39], TCPErrBadDataOffset},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ValidateTCP(tt.b); got != tt.want {
				t.Errorf("ValidateTCP(%x) = %v, want %v", tt.b, got, tt.want)
			}
		})
	}
	if TCPErrBadDataOffset.String() != "bad_data_offset" || TCPOK.String() != "ok" || TCPErrTooShort.String() != "too_short" || TCPError(9).String() != "unknown" {
		t.Errorf("TCPError strings wrong")
	}
}

type tcpFields struct {
	SrcPort, DstPort uint16
	Seq, Ack         uint32
	DataOffset       int
	Flags            uint8
	Window           uint16
	Urgent           uint16
	OptionsLen       int
	PayloadLen       int
}

func readTCP(t TCP) tcpFields {
	return tcpFields{t.SourcePort(), t.DestinationPort(), t.SequenceNumber(), t.AckNumber(), t.DataOffset(), t.Flags(), t.WindowSize(), t.UrgentPointer(), len(t.Options()), len(t.Payload())}
}

func TestTCP(t *testing.T) {
	seg := TCP(IPv4(ipv4Packet(ProtocolTCP, tcpSYN())).Payload())
	want := tcpFields{54321, 443, 0x7a3b9c01, 0, 40, TCPFlagSyn, 64240, 0, 20, 0}
	if d := diff(want, readTCP(seg)); d != "" {
		t.Errorf("SYN (-want +got):\n%s", d)
	}
	pseudo := PseudoHeaderChecksumV4(ProtocolTCP, ip4A, ip4B, uint16(len(seg)))
	if !seg.IsChecksumValid(pseudo) {
		t.Errorf("checksum does not verify")
	}
	ph := cat(ip4A[:], ip4B[:], []byte{0, ProtocolTCP, 0, byte(len(seg))})
	if got, want := seg.Checksum(), refChecksum(cat(ph, seg[:16], []byte{0, 0}, seg[18:]), 0); got != want {
		t.Errorf("Checksum() = %#04x, reference %#04x", got, want)
	}

	// A SYN-ACK built by setters, then a NAT-style port rewrite patched
	// incrementally.
	seg.SetFlags(TCPFlagSyn | TCPFlagAck)
	seg.SetAckNumber(0x01020304)
	seg.SetUrgentPointer(7)
	seg.SetChecksum(seg.CalculateChecksum(pseudo))
	oldPort := seg.SourcePort()
	seg.SetSourcePort(61000)
	seg.SetChecksum(UpdateChecksum16(seg.Checksum(), oldPort, 61000))
	if !seg.IsChecksumValid(pseudo) || seg.Checksum() != seg.CalculateChecksum(pseudo) {
		t.Errorf("incremental port rewrite: checksum %#04x, want %#04x", seg.Checksum(), seg.CalculateChecksum(pseudo))
	}
	if seg.AckNumber() != 0x01020304 || seg.UrgentPointer() != 7 || seg.Flags() != TCPFlagSyn|TCPFlagAck {
		t.Errorf("setters did not stick: %+v", readTCP(seg))
	}
}
