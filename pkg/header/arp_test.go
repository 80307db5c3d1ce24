package header

import "testing"

// arpRequest is a real-world who-has 192.168.1.1 tell 192.168.1.10.
var arpRequest = mustHex("0001 0800 06 04 0001 525400123456 c0a8010a 000000000000 c0a80101")

func TestARPIsValidEthernetIPv4(t *testing.T) {
	mod := func(i int, v byte) []byte {
		b := append([]byte(nil), arpRequest...)
		b[i] = v
		return b
	}
	tests := []struct {
		name string
		b    []byte
		want bool
	}{
		{"request", arpRequest, true},
		{"with ethernet padding", append(append([]byte(nil), arpRequest...), make([]byte, 18)...), true},
		{"reply op", mod(7, 2), true},
		{"unknown op still structurally valid", mod(7, 9), true},
		{"empty", nil, false},
		{"27 bytes", arpRequest[:27], false},
		{"hardware type 6 (IEEE 802)", mod(1, 6), false},
		{"protocol IPv6", mod(2, 0x86), false},
		{"hlen 8", mod(4, 8), false},
		{"plen 16", mod(5, 16), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ARP(tt.b).IsValidEthernetIPv4(); got != tt.want {
				t.Errorf("IsValidEthernetIPv4(%x) = %v, want %v", tt.b, got, tt.want)
			}
		})
	}
}

type arpFields struct {
	HardwareType, ProtocolType uint16
	HLen, PLen                 uint8
	Op                         uint16
	SenderHW                   [6]byte
	SenderIP                   [4]byte
	TargetHW                   [6]byte
	TargetIP                   [4]byte
}

func readARP(a ARP) arpFields {
	return arpFields{a.HardwareType(), a.ProtocolType(), a.HLen(), a.PLen(), a.Op(), a.SenderHW(), a.SenderIP(), a.TargetHW(), a.TargetIP()}
}

func TestARPFields(t *testing.T) {
	want := arpFields{1, 0x0800, 6, 4, ARPRequest, macA, ip4A, [6]byte{}, [4]byte{192, 168, 1, 1}}
	if d := diff(want, readARP(arpRequest)); d != "" {
		t.Errorf("getters on captured request (-want +got):\n%s", d)
	}
	// Build the reply a responder would send and compare.
	reply := make(ARP, ARPSize)
	reply.Encode(ARPReply, macB, [4]byte{192, 168, 1, 1}, macA, ip4A)
	want = arpFields{1, 0x0800, 6, 4, ARPReply, macB, [4]byte{192, 168, 1, 1}, macA, ip4A}
	if d := diff(want, readARP(reply)); d != "" || !reply.IsValidEthernetIPv4() {
		t.Errorf("encoded reply, valid %v (-want +got):\n%s", reply.IsValidEthernetIPv4(), d)
	}
}
