package header

import "testing"

func TestEthernet(t *testing.T) {
	frame := make(Ethernet, EthernetMinSize+ARPSize)
	bcast := [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	frame.Encode(bcast, macA, EtherTypeARP)
	copy(frame.Payload(), arpRequest)
	want := mustHex("ffffffffffff 525400123456 0806")
	if string(frame[:EthernetMinSize]) != string(want) {
		t.Errorf("Encode wrote %x, want %x", []byte(frame[:EthernetMinSize]), want)
	}
	type fields struct {
		Dst, Src [6]byte
		Type     uint16
	}
	if d := diff(fields{bcast, macA, EtherTypeARP}, fields{frame.Dst(), frame.Src(), frame.Type()}); d != "" {
		t.Errorf("getters (-want +got):\n%s", d)
	}
	frame.SetDst(macB)
	frame.SetSrc(bcast)
	frame.SetType(EtherTypeIPv6)
	if d := diff(fields{macB, bcast, EtherTypeIPv6}, fields{frame.Dst(), frame.Src(), frame.Type()}); d != "" {
		t.Errorf("after setters (-want +got):\n%s", d)
	}
	if !ARP(frame.Payload()).IsValidEthernetIPv4() {
		t.Errorf("payload is not the ARP request")
	}

	tests := []struct {
		mac              [6]byte
		bcast, multicast bool
	}{
		{bcast, true, true},
		{macA, false, false},
		{[6]byte{0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb}, false, true}, // 224.0.0.251
		{[6]byte{0x33, 0x33, 0xff, 0x28, 0x9c, 0x5a}, false, true}, // solicited-node
		{[6]byte{0x02, 0, 0, 0, 0, 1}, false, false},               // locally administered unicast
		{[6]byte{}, false, false},
	}
	for _, tt := range tests {
		if IsBroadcast(tt.mac) != tt.bcast || IsMulticast(tt.mac) != tt.multicast {
			t.Errorf("%x: IsBroadcast %v IsMulticast %v; want %v %v", tt.mac, IsBroadcast(tt.mac), IsMulticast(tt.mac), tt.bcast, tt.multicast)
		}
	}
}
