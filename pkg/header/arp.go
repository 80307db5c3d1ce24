package header

import "encoding/binary"

// ARP is an ARP packet for IPv4 over Ethernet (RFC 826), the only
// combination the dataplane speaks:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Hardware Type         |         Protocol Type         |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     HLen      |     PLen      |           Operation           |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                  Sender Hardware Address                      |
//	+                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                               |    Sender Protocol Address    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|    Sender Protocol Address    |                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
//	|                  Target Hardware Address                      |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Target Protocol Address                    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// The fixed offsets below are only right when HLen is 6 and PLen is 4, which
// is why IsValidEthernetIPv4 checks them; accessors assume it returned true.
type ARP []byte

const (
	arpHType = 0
	arpPType = 2
	arpHLen  = 4
	arpPLen  = 5
	arpOp    = 6
	arpSHA   = 8
	arpSPA   = 14
	arpTHA   = 18
	arpTPA   = 24
)

const (
	// ARPSize is the size of an Ethernet/IPv4 ARP packet.
	ARPSize = 28
	// ARPHardwareEthernet is the Hardware Type for Ethernet (IANA ARP
	// parameters).
	ARPHardwareEthernet = 1
)

// ARP operation codes (RFC 826).
const (
	ARPRequest = 1
	ARPReply   = 2
)

// IsValidEthernetIPv4 reports whether a is at least ARPSize bytes and
// describes IPv4 addresses over Ethernet. It does not check the operation,
// which callers dispatch on. Safe on any input.
func (a ARP) IsValidEthernetIPv4() bool {
	return len(a) >= ARPSize &&
		binary.BigEndian.Uint16(a[arpHType:]) == ARPHardwareEthernet &&
		binary.BigEndian.Uint16(a[arpPType:]) == EtherTypeIPv4 &&
		a[arpHLen] == EthernetAddressSize &&
		a[arpPLen] == IPv4AddressSize
}

// HardwareType returns the Hardware Type field.
func (a ARP) HardwareType() uint16 { return binary.BigEndian.Uint16(a[arpHType:]) }

// ProtocolType returns the Protocol Type field (an EtherType).
func (a ARP) ProtocolType() uint16 { return binary.BigEndian.Uint16(a[arpPType:]) }

// HLen returns the hardware address length.
func (a ARP) HLen() uint8 { return a[arpHLen] }

// PLen returns the protocol address length.
func (a ARP) PLen() uint8 { return a[arpPLen] }

// Op returns the operation (ARPRequest, ARPReply).
func (a ARP) Op() uint16 { return binary.BigEndian.Uint16(a[arpOp:]) }

// SenderHW returns the sender hardware address.
func (a ARP) SenderHW() [6]byte { return [6]byte(a[arpSHA:arpSPA]) }

// SenderIP returns the sender protocol address.
func (a ARP) SenderIP() [4]byte { return [4]byte(a[arpSPA:arpTHA]) }

// TargetHW returns the target hardware address.
func (a ARP) TargetHW() [6]byte { return [6]byte(a[arpTHA:arpTPA]) }

// TargetIP returns the target protocol address.
func (a ARP) TargetIP() [4]byte { return [4]byte(a[arpTPA:ARPSize]) }

// SetIPv4OverEthernet writes the four fields that IsValidEthernetIPv4 checks.
func (a ARP) SetIPv4OverEthernet() {
	binary.BigEndian.PutUint16(a[arpHType:], ARPHardwareEthernet)
	binary.BigEndian.PutUint16(a[arpPType:], EtherTypeIPv4)
	a[arpHLen] = EthernetAddressSize
	a[arpPLen] = IPv4AddressSize
}

// SetOp sets the operation.
func (a ARP) SetOp(op uint16) { binary.BigEndian.PutUint16(a[arpOp:], op) }

// SetSenderHW sets the sender hardware address.
func (a ARP) SetSenderHW(v [6]byte) { copy(a[arpSHA:arpSPA], v[:]) }

// SetSenderIP sets the sender protocol address.
func (a ARP) SetSenderIP(v [4]byte) { copy(a[arpSPA:arpTHA], v[:]) }

// SetTargetHW sets the target hardware address.
func (a ARP) SetTargetHW(v [6]byte) { copy(a[arpTHA:arpTPA], v[:]) }

// SetTargetIP sets the target protocol address.
func (a ARP) SetTargetIP(v [4]byte) { copy(a[arpTPA:ARPSize], v[:]) }

// Encode writes a complete Ethernet/IPv4 ARP packet into a (ARPSize bytes).
func (a ARP) Encode(op uint16, senderHW [6]byte, senderIP [4]byte, targetHW [6]byte, targetIP [4]byte) {
	a.SetIPv4OverEthernet()
	a.SetOp(op)
	a.SetSenderHW(senderHW)
	a.SetSenderIP(senderIP)
	a.SetTargetHW(targetHW)
	a.SetTargetIP(targetIP)
}
