package header

import "testing"

// Package-level sinks keep the compiler from discarding results.
var (
	sinkU32   uint32
	sinkU16   uint16
	sinkU8    uint8
	sinkInt   int
	sinkBool  bool
	sinkBytes []byte
	sinkMAC   [6]byte
	sinkV4    [4]byte
	sinkV6    [16]byte
	sinkU64   uint64
)

func TestNoAllocations(t *testing.T) {
	v4 := IPv4(ipv4Packet(ProtocolTCP, tcpSYN()))
	v6 := IPv6(ipv6Packet(IPv6HopByHopOptions, cat(ext(IPv6FragmentHeader, 1), fragHdr(ProtocolUDP, 0, true)), ProtocolUDP, udpDNS()))
	icmp4 := ICMPv4(icmpv4Echo(ICMPv4EchoRequest, 1, 2))
	icmp6 := ICMPv6(icmpv6Echo())
	arp := ARP(append([]byte(nil), arpRequest...))
	eth := make(Ethernet, 64)
	vnet := make(VirtioNetHdr, VirtioNetHdrMrgRxbufSize)
	big := make([]byte, 1500)
	var ndp [32]byte

	checks := map[string]func(){
		"checksum": func() {
			sinkU32 = Checksum(big, 0)
			sinkU16 = Fold(ChecksumCombine(sinkU32, PseudoHeaderChecksumV4(6, ip4A, ip4B, 40)))
			sinkU32 = PseudoHeaderChecksumV6(17, ip6G, ip6H, 1000)
			sinkU16 = UpdateChecksum16(sinkU16, 1, 2)
			sinkU16 = UpdateChecksum32(sinkU16, 1, 2)
		},
		"ethernet": func() {
			eth.Encode(macA, macB, EtherTypeIPv4)
			eth.SetDst(eth.Src())
			sinkMAC = eth.Dst()
			sinkU16 = eth.Type()
			sinkBool = IsBroadcast(sinkMAC) || IsMulticast(sinkMAC)
			sinkBytes = eth.Payload()
		},
		"ipv4": func() {
			sinkBool = ValidateIPv4(v4) == IPv4OK && v4.IsChecksumValid() && v4.IsFragment()
			sinkU8 = v4.Version() + v4.TOS() + v4.Flags() + v4.TTL() + v4.Protocol()
			sinkInt = v4.HeaderLength()
			sinkU16 = v4.TotalLength() + v4.ID() + v4.FragmentOffset() + v4.Checksum() + v4.CalculateChecksum()
			sinkV4 = v4.SourceAddress()
			sinkV4 = v4.DestinationAddress()
			sinkU32 = v4.Src32() + v4.Dst32()
			sinkBytes = v4.Payload()
			sinkBytes = v4.Options()
			v4.SetSourceAddress(v4.DestinationAddress())
			v4.SetTTL(64)
			sinkU8 = v4.DecrementTTL()
			sinkString = ValidateIPv4(v4[:3]).String()
		},
		"ipv6": func() {
			sinkBool = ValidateIPv6(v6) == IPv6OK
			sinkU8 = v6.Version() + v6.TrafficClass() + v6.NextHeader() + v6.HopLimit()
			sinkU32 = v6.FlowLabel()
			sinkU16 = v6.PayloadLength()
			sinkV6 = v6.SourceAddress()
			v6.SetDestinationAddress(sinkV6)
			hi, lo := v6.SrcHiLo()
			hi2, lo2 := v6.DstHiLo()
			sinkU64 = hi ^ lo ^ hi2 ^ lo2
			sinkBytes = v6.Payload()
			v6.SetFlowLabel(7)
			v6.SetTrafficClass(3)
			sinkU8, sinkInt, sinkBool = TransportProtocol(v6)
			sinkString = ValidateIPv6(nil).String()
		},
		"icmp": func() {
			sinkBool = ValidateICMPv4(icmp4) == ICMPOK && icmp4.IsChecksumValid() && icmp6.IsChecksumValid(ip6G, ip6H)
			icmp4.SetChecksum(icmp4.CalculateChecksum())
			icmp6.SetChecksum(icmp6.CalculateChecksum(ip6G, ip6H))
			sinkU16 = icmp4.Ident() + icmp4.Sequence() + icmp4.MTU() + icmp6.Ident() + icmp6.Sequence()
			sinkU32 = icmp6.MTU()
			sinkBool = icmp4.Type().IsErrorMessage() || icmp6.Type().IsErrorMessage()
		},
		"arp": func() {
			sinkBool = arp.IsValidEthernetIPv4()
			sinkMAC = arp.SenderHW()
			sinkV4 = arp.TargetIP()
			arp.Encode(ARPReply, arp.TargetHW(), arp.TargetIP(), arp.SenderHW(), arp.SenderIP())
		},
		"ndp": func() {
			n := EncodeNeighborSolicit(ndp[:], ip6G, SolicitedNodeAddress(ip6H), ip6H, macA)
			sinkBool = ValidateNeighborSolicit(ndp[:n]) == NDPOK
			sinkMAC, sinkBool = NDPNeighborSolicit(ndp[:n]).SourceLinkLayerAddress()
			n = EncodeNeighborAdvert(ndp[:], ip6H, ip6G, ip6H, NDPNASolicitedFlag, macB)
			sinkBool = ValidateNeighborAdvert(ndp[:n]) == NDPOK
			sinkMAC, sinkBool = NDPNeighborAdvert(ndp[:n]).TargetLinkLayerAddress()
			sinkMAC = IPv6MulticastMAC(SolicitedNodeAddress(ip6G))
			it := NDPNeighborAdvert(ndp[:n]).Options().Iter()
			for _, ok := it.Next(); ok; _, ok = it.Next() {
			}
			sinkString = it.Err().String()
		},
		"transport": func() {
			tcp := TCP(v4.Payload())
			sinkBool = ValidateTCP(tcp) == TCPOK && ValidateUDP(v6.Payload()[16:]) == UDPOK
			sinkU16 = tcp.CalculateChecksum(0) + UDP(v6.Payload()[16:]).CalculateChecksum(0)
			sinkBool = tcp.IsChecksumValid(0)
			sinkBytes = tcp.Options()
		},
		"virtio": func() {
			vnet.SetFlags(VirtioNetHdrFNeedsCsum)
			vnet.SetCsumStart(20)
			vnet.SetCsumOffset(16)
			sinkBool = ValidateVirtioNetHdr(vnet, 40) == VirtioOK
			sinkString = ValidateVirtioNetHdr(vnet, 1).String()
			sinkU16 = vnet.HdrLen() + vnet.GSOSize() + vnet.NumBuffers()
			vnet.Reset()
		},
	}
	for name, f := range checks {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", name, n)
		}
	}
}

var sinkString string
