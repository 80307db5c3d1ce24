package header

import (
	"testing"
)

// Every fuzz target feeds raw bytes to a validator and, when it accepts
// them, calls every accessor: a panic there means the validator let through
// something the accessors cannot handle.

func FuzzIPv4(f *testing.F) {
	f.Add(wikiIPv4)
	f.Add(ipv4Packet(ProtocolICMP, icmpv4Echo(ICMPv4EchoRequest, 0x1c46, 1)))
	f.Add(ipv4Packet(ProtocolTCP, tcpSYN()))
	f.Add(ipv4Packet(ProtocolUDP, udpDNS()))
	f.Add(append(ipv4Packet(ProtocolTCP, tcpSYN()[:20]), 0, 0, 0, 0, 0, 0))
	f.Add([]byte{0x4f, 0, 0, 60})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		err := ValidateIPv4(b)
		_ = err.String()
		if err != IPv4OK {
			return
		}
		ip := IPv4(b)
		hl, tl := ip.HeaderLength(), int(ip.TotalLength())
		if !(IPv4MinimumSize <= hl && hl <= tl && tl <= len(b)) {
			t.Fatalf("accepted with header %d, total %d, buffer %d", hl, tl, len(b))
		}
		if ip.Version() != 4 || hl > IPv4MaximumHeaderSize {
			t.Fatalf("accepted version %d header %d", ip.Version(), hl)
		}
		_, _, _, _, _, _ = ip.TOS(), ip.ID(), ip.Flags(), ip.FragmentOffset(), ip.IsFragment(), ip.Protocol()
		_, _, _, _ = ip.SourceAddress(), ip.DestinationAddress(), ip.Src32(), ip.Dst32()
		if len(ip.Payload()) != tl-hl || len(ip.Options()) != hl-IPv4MinimumSize {
			t.Fatalf("payload %d options %d for header %d total %d", len(ip.Payload()), len(ip.Options()), hl, tl)
		}

		// An incremental TTL decrement must agree with recomputation.
		canonical := ip.Checksum() == ip.CalculateChecksum()
		valid := ip.IsChecksumValid()
		if canonical && !valid {
			t.Fatalf("CalculateChecksum result does not verify")
		}
		ttl := ip.TTL()
		if got := ip.DecrementTTL(); ttl > 0 && got != ttl-1 || ttl == 0 && got != 0 {
			t.Fatalf("DecrementTTL from %d gave %d", ttl, got)
		}
		if ip.IsChecksumValid() != valid {
			t.Fatalf("DecrementTTL changed checksum validity from %v", valid)
		}
		if canonical && ip.Checksum() != ip.CalculateChecksum() {
			t.Fatalf("incremental %#04x, recomputed %#04x", ip.Checksum(), ip.CalculateChecksum())
		}
	})
}

func FuzzIPv6(f *testing.F) {
	f.Add(ipv6Packet(ProtocolICMPv6, nil, ProtocolICMPv6, icmpv6Echo()))
	f.Add(ipv6Packet(ProtocolTCP, nil, ProtocolTCP, tcpSYN()))
	f.Add(ipv6Packet(IPv6HopByHopOptions, ext(ProtocolUDP, 1), ProtocolUDP, udpDNS()))
	f.Add(make([]byte, 40))
	f.Fuzz(func(t *testing.T, b []byte) {
		err := ValidateIPv6(b)
		_ = err.String()
		if err != IPv6OK {
			return
		}
		ip := IPv6(b)
		if ip.Version() != 6 || IPv6MinimumSize+int(ip.PayloadLength()) > len(b) || len(ip.Payload()) != int(ip.PayloadLength()) {
			t.Fatalf("accepted version %d payload length %d buffer %d", ip.Version(), ip.PayloadLength(), len(b))
		}
		_, _, _, _ = ip.TrafficClass(), ip.FlowLabel(), ip.NextHeader(), ip.HopLimit()
		_, _ = ip.SourceAddress(), ip.DestinationAddress()
		_, _ = ip.SrcHiLo()
		_, _ = ip.DstHiLo()
		checkTransportProtocol(t, b)
		tc, fl := ip.TrafficClass(), ip.FlowLabel()
		ip.SetTrafficClass(tc)
		ip.SetFlowLabel(fl)
		if ip.TrafficClass() != tc || ip.FlowLabel() != fl || ip.Version() != 6 {
			t.Fatalf("traffic class / flow label setters not idempotent")
		}
	})
}

func checkTransportProtocol(t *testing.T, b []byte) {
	proto, off, ok := TransportProtocol(b)
	if !ok {
		if proto != 0 || off != 0 {
			t.Fatalf("not ok but returned %d, %d", proto, off)
		}
		return
	}
	end := len(b)
	if pl := IPv6MinimumSize + int(IPv6(b).PayloadLength()); pl < end {
		end = pl
	}
	if off < IPv6MinimumSize || off > end {
		t.Fatalf("offset %d outside [40, %d]", off, end)
	}
	switch proto {
	case IPv6HopByHopOptions, IPv6RoutingHeader, IPv6DestinationOptions:
		t.Fatalf("returned extension header %d as transport", proto)
	case IPv6FragmentHeader:
		if off+8 > end {
			t.Fatalf("fragment header at %d runs past %d", off, end)
		}
	}
}

func FuzzIPv6TransportProtocol(f *testing.F) {
	syn := tcpSYN()
	f.Add(ipv6Packet(ProtocolTCP, nil, ProtocolTCP, syn))
	f.Add(ipv6Packet(IPv6HopByHopOptions, cat(ext(IPv6RoutingHeader, 1), ext(IPv6DestinationOptions, 3), ext(ProtocolTCP, 2)), ProtocolTCP, syn))
	f.Add(ipv6Packet(IPv6FragmentHeader, fragHdr(ProtocolUDP, 0, true), ProtocolUDP, udpDNS()))
	f.Add(ipv6Packet(IPv6FragmentHeader, fragHdr(ProtocolUDP, 1480, false), 0, make([]byte, 32)))
	f.Add(ipv6Packet(IPv6DestinationOptions, cat(ext(IPv6HopByHopOptions, 1), ext(ProtocolTCP, 1)), ProtocolTCP, syn))
	f.Add(ipv6Packet(IPv6RoutingHeader, ext(ProtocolTCP, 4), 0, nil)[:60])
	f.Fuzz(func(t *testing.T, b []byte) {
		// Deliberately not validated first: the walk must be safe anyway.
		checkTransportProtocol(t, b)
	})
}

func FuzzARP(f *testing.F) {
	f.Add(arpRequest)
	reply := make(ARP, ARPSize)
	reply.Encode(ARPReply, macB, [4]byte{192, 168, 1, 1}, macA, ip4A)
	f.Add([]byte(reply))
	f.Add(arpRequest[:27])
	f.Fuzz(func(t *testing.T, b []byte) {
		a := ARP(b)
		if !a.IsValidEthernetIPv4() {
			return
		}
		if a.HardwareType() != ARPHardwareEthernet || a.ProtocolType() != EtherTypeIPv4 || a.HLen() != 6 || a.PLen() != 4 {
			t.Fatalf("accepted %x", b)
		}
		before := readARP(a)
		a.Encode(a.Op(), a.SenderHW(), a.SenderIP(), a.TargetHW(), a.TargetIP())
		if d := diff(before, readARP(a)); d != "" {
			t.Fatalf("Encode(getters) changed fields (-before +after):\n%s", d)
		}
	})
}

func FuzzNDPOptions(f *testing.F) {
	var ns, na [32]byte
	EncodeNeighborSolicit(ns[:], ip6H, SolicitedNodeAddress(ip6G), ip6G, macA)
	EncodeNeighborAdvert(na[:], ip6G, ip6H, ip6G, NDPNASolicitedFlag, macB)
	f.Add(ns[:])
	f.Add(na[:])
	f.Add(append(ns[:24:24], 5, 1, 0, 0, 0, 0, 5, 0xdc, 1, 0, 0, 0))
	f.Add(append(na[:24:24], 2, 2, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 1))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) >= 24 {
			opts := NDPOptions(b[24:])
			it := opts.Iter()
			total := 0
			for opt, ok := it.Next(); ok; opt, ok = it.Next() {
				if len(opt) == 0 || len(opt)%8 != 0 {
					t.Fatalf("option of length %d", len(opt))
				}
				total += len(opt)
				_, _ = opt.Type(), opt.Body()
				_, _ = opt.EthernetAddress()
			}
			if total > len(opts) || (it.Err() == NDPOK) != (total == len(opts)) {
				t.Fatalf("consumed %d of %d, err %v", total, len(opts), it.Err())
			}
			if opts.Validate() != it.Err() {
				t.Fatalf("Validate %v, iterator %v", opts.Validate(), it.Err())
			}
			_, _, _ = opts.LinkLayerAddress(NDPOptionSourceLinkLayerAddress)
		}
		if ValidateNeighborSolicit(b) == NDPOK {
			m := NDPNeighborSolicit(b)
			if IsIPv6Multicast(m.TargetAddress()) || m.Options().Validate() != NDPOK {
				t.Fatalf("accepted NS %x", b)
			}
			_, _ = m.SourceLinkLayerAddress()
			_ = ICMPv6(b).IsChecksumValid(ip6H, ip6G)
		}
		if ValidateNeighborAdvert(b) == NDPOK {
			m := NDPNeighborAdvert(b)
			_, _, _, _ = m.Flags(), m.Router(), m.Solicited(), m.Override()
			_ = m.TargetAddress()
			_, _ = m.TargetLinkLayerAddress()
		}
	})
}

func FuzzVirtioNetHdr(f *testing.F) {
	f.Add(mustHex("01 01 4200 a805 2200 1000 0100"), 65000)
	f.Add(make([]byte, 10), 60)
	f.Add(mustHex("01 00 0000 0000 1400 0600"), 28)
	f.Add(mustHex("00 80 0000 e803 0000 0000"), 1000)
	f.Fuzz(func(t *testing.T, b []byte, pktLen int) {
		err := ValidateVirtioNetHdr(b, pktLen)
		_ = err.String()
		if err != VirtioOK {
			return
		}
		h := VirtioNetHdr(b)
		if h.Flags()&VirtioNetHdrFNeedsCsum != 0 && int(h.CsumStart())+int(h.CsumOffset())+2 > pktLen {
			t.Fatalf("accepted checksum field at %d+%d in %d bytes", h.CsumStart(), h.CsumOffset(), pktLen)
		}
		if g := h.GSOType(); g != VirtioNetHdrGSONone && h.GSOSize() == 0 {
			t.Fatalf("accepted gso type %d with size 0", g)
		}
		_ = h.HdrLen()
		if len(b) >= VirtioNetHdrMrgRxbufSize {
			_ = h.NumBuffers()
		}
	})
}

func FuzzICMP(f *testing.F) {
	f.Add(icmpv4Echo(ICMPv4EchoRequest, 0x1c46, 1), false)
	f.Add(icmpv6Echo(), true)
	ptb := make([]byte, 8+48)
	ICMPv6(ptb).SetType(ICMPv6PacketTooBig)
	ICMPv6(ptb).SetMTU(1280)
	f.Add(ptb, true)
	fragNeeded := make([]byte, 8+28)
	ICMPv4(fragNeeded).SetType(ICMPv4DstUnreachable)
	ICMPv4(fragNeeded).SetCode(ICMPv4FragmentationNeeded)
	ICMPv4(fragNeeded).SetMTU(1400)
	f.Add(fragNeeded, false)
	f.Add([]byte{8, 0, 0}, false)
	f.Fuzz(func(t *testing.T, b []byte, v6 bool) {
		if v6 {
			if ValidateICMPv6(b) != ICMPOK {
				return
			}
			m := ICMPv6(b)
			_, _, _, _, _ = m.Type().IsErrorMessage(), m.Code(), m.Ident(), m.Sequence(), m.MTU()
			_ = m.Payload()
			m.SetChecksum(m.CalculateChecksum(ip6G, ip6H))
			if !m.IsChecksumValid(ip6G, ip6H) {
				t.Fatalf("computed checksum does not verify")
			}
			return
		}
		if ValidateICMPv4(b) != ICMPOK {
			return
		}
		m := ICMPv4(b)
		_, _, _, _, _ = m.Type().IsErrorMessage(), m.Code(), m.Ident(), m.Sequence(), m.MTU()
		_ = m.Payload()
		m.SetChecksum(m.CalculateChecksum())
		if !m.IsChecksumValid() {
			t.Fatalf("computed checksum does not verify")
		}
	})
}
