package header

import (
	"testing"
)

func TestEncodeAndParseNeighborSolicit(t *testing.T) {
	var buf [64]byte
	dst := SolicitedNodeAddress(ip6G)
	n := EncodeNeighborSolicit(buf[:], ip6H, dst, ip6G, macA)
	if n != 32 {
		t.Fatalf("EncodeNeighborSolicit returned %d, want 32", n)
	}
	m := buf[:n]
	if err := ValidateNeighborSolicit(m); err != NDPOK {
		t.Fatalf("ValidateNeighborSolicit = %v", err)
	}
	if !ICMPv6(m).IsChecksumValid(ip6H, dst) {
		t.Errorf("checksum does not verify")
	}
	ns := NDPNeighborSolicit(m)
	if ns.TargetAddress() != ip6G {
		t.Errorf("TargetAddress() = %x, want %x", ns.TargetAddress(), ip6G)
	}
	if mac, ok := ns.SourceLinkLayerAddress(); !ok || mac != macA {
		t.Errorf("SourceLinkLayerAddress() = %x, %v; want %x, true", mac, ok, macA)
	}
	ns.SetTargetAddress(ip6H)
	if ns.TargetAddress() != ip6H {
		t.Errorf("SetTargetAddress did not stick: %x", ns.TargetAddress())
	}
	if ValidateNeighborAdvert(m) != NDPErrBadType {
		t.Errorf("an NS validated as an NA")
	}

	// Duplicate Address Detection: unspecified source, no SLLA option.
	n = EncodeNeighborSolicit(buf[:], [16]byte{}, dst, ip6G, macA)
	if n != 24 || ValidateNeighborSolicit(buf[:n]) != NDPOK {
		t.Fatalf("DAD NS: length %d, validation %v; want 24, ok", n, ValidateNeighborSolicit(buf[:n]))
	}
	if _, ok := NDPNeighborSolicit(buf[:n]).SourceLinkLayerAddress(); ok {
		t.Errorf("DAD NS carries a source link-layer address")
	}
	if EncodeNeighborSolicit(buf[:31], ip6H, dst, ip6G, macA) != 0 {
		t.Errorf("EncodeNeighborSolicit into 31 bytes did not return 0")
	}
}

func TestEncodeAndParseNeighborAdvert(t *testing.T) {
	var buf [32]byte
	n := EncodeNeighborAdvert(buf[:], ip6G, ip6H, ip6G, NDPNASolicitedFlag|NDPNAOverrideFlag|0x1f, macB)
	if n != 32 {
		t.Fatalf("EncodeNeighborAdvert returned %d, want 32", n)
	}
	m := buf[:n]
	if err := ValidateNeighborAdvert(m); err != NDPOK {
		t.Fatalf("ValidateNeighborAdvert = %v", err)
	}
	if !ICMPv6(m).IsChecksumValid(ip6G, ip6H) {
		t.Errorf("checksum does not verify")
	}
	na := NDPNeighborAdvert(m)
	type flags struct{ Router, Solicited, Override bool }
	if d := diff(flags{false, true, true}, flags{na.Router(), na.Solicited(), na.Override()}); d != "" {
		t.Errorf("flags (-want +got):\n%s", d)
	}
	if m[4] != 0x60 || m[5]|m[6]|m[7] != 0 {
		t.Errorf("reserved bits not clear: %x", m[4:8])
	}
	if mac, ok := na.TargetLinkLayerAddress(); !ok || mac != macB {
		t.Errorf("TargetLinkLayerAddress() = %x, %v; want %x, true", mac, ok, macB)
	}
	if na.TargetAddress() != ip6G {
		t.Errorf("TargetAddress() = %x", na.TargetAddress())
	}
	na.SetFlags(NDPNARouterFlag)
	na.SetTargetAddress(ip6H)
	if na.Flags() != NDPNARouterFlag || !na.Router() || na.Solicited() || na.TargetAddress() != ip6H {
		t.Errorf("after SetFlags/SetTargetAddress: flags %#x target %x", na.Flags(), na.TargetAddress())
	}
	if EncodeNeighborAdvert(buf[:31], ip6G, ip6H, ip6G, 0, macB) != 0 {
		t.Errorf("EncodeNeighborAdvert into 31 bytes did not return 0")
	}
}

func TestValidateNeighborMessages(t *testing.T) {
	var buf [32]byte
	EncodeNeighborSolicit(buf[:], ip6H, SolicitedNodeAddress(ip6G), ip6G, macA)
	ns := buf[:]
	mod := func(f func(b []byte)) []byte {
		b := append([]byte(nil), ns...)
		f(b)
		return b
	}
	tests := []struct {
		name string
		b    []byte
		want NDPError
	}{
		{"valid", ns, NDPOK},
		{"no options", ns[:24], NDPOK},
		{"23 bytes", ns[:23], NDPErrTooShort},
		{"echo request", mod(func(b []byte) { b[0] = 128 }), NDPErrBadType},
		{"code 1", mod(func(b []byte) { b[1] = 1 }), NDPErrBadCode},
		{"multicast target", mod(func(b []byte) { b[8] = 0xff }), NDPErrMulticastTarget},
		{"zero length option", mod(func(b []byte) { b[25] = 0 }), NDPErrZeroLengthOption},
		{"option past end", mod(func(b []byte) { b[25] = 2 }), NDPErrTruncatedOption},
		{"one stray byte", append(append([]byte(nil), ns...), 1), NDPErrTruncatedOption},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ValidateNeighborSolicit(tt.b); got != tt.want {
				t.Errorf("ValidateNeighborSolicit(%x) = %v, want %v", tt.b, got, tt.want)
			}
		})
	}
	for e, s := range map[NDPError]string{NDPOK: "ok", NDPErrZeroLengthOption: "zero_length_option", NDPErrMulticastTarget: "multicast_target", 77: "unknown"} {
		if e.String() != s {
			t.Errorf("NDPError(%d).String() = %q, want %q", e, e.String(), s)
		}
	}
}

func TestNDPOptionIterator(t *testing.T) {
	mtu := []byte{NDPOptionMTU, 1, 0, 0, 0, 0, 0x05, 0xdc}
	slla := []byte{NDPOptionSourceLinkLayerAddress, 1, 0x52, 0x54, 0, 0x12, 0x34, 0x56}
	tlla := []byte{NDPOptionTargetLinkLayerAddress, 1, 2, 0x42, 0xac, 0x11, 0, 2}
	long := []byte{NDPOptionSourceLinkLayerAddress, 2, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14} // not Ethernet
	type result struct {
		Types []uint8
		Err   NDPError
		SLLA  [6]byte
		Found bool
	}
	tests := []struct {
		name string
		opts []byte
		want result
	}{
		{"empty", nil, result{}},
		{"mtu, slla", cat(mtu, slla), result{[]uint8{5, 1}, NDPOK, macA, true}},
		{"non-ethernet slla skipped", cat(long, slla), result{[]uint8{1, 1}, NDPOK, macA, true}},
		{"only tlla", tlla, result{[]uint8{2}, NDPOK, [6]byte{}, false}},
		{"zero length stops", cat(mtu, []byte{1, 0, 0, 0, 0, 0, 0, 0}, slla), result{[]uint8{5}, NDPErrZeroLengthOption, [6]byte{}, false}},
		{"found before malformed", cat(slla, []byte{1, 0}), result{[]uint8{1}, NDPErrZeroLengthOption, macA, true}},
		{"truncated", cat(mtu, slla[:7]), result{[]uint8{5}, NDPErrTruncatedOption, [6]byte{}, false}},
		{"single byte", []byte{1}, result{nil, NDPErrTruncatedOption, [6]byte{}, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got result
			it := NDPOptions(tt.opts).Iter()
			for opt, ok := it.Next(); ok; opt, ok = it.Next() {
				got.Types = append(got.Types, opt.Type())
				if len(opt.Body()) != len(opt)-2 {
					t.Errorf("Body() length %d for option of %d", len(opt.Body()), len(opt))
				}
			}
			if _, ok := it.Next(); ok {
				t.Errorf("Next() returned an option after finishing")
			}
			got.Err = it.Err()
			if v := NDPOptions(tt.opts).Validate(); v != got.Err {
				t.Errorf("Validate() = %v, iterator stopped with %v", v, got.Err)
			}
			var err NDPError
			got.SLLA, got.Found, err = NDPOptions(tt.opts).LinkLayerAddress(NDPOptionSourceLinkLayerAddress)
			if got.Found && err != NDPOK {
				t.Errorf("LinkLayerAddress found an address and returned %v", err)
			}
			if d := diff(tt.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestSolicitedNode(t *testing.T) {
	// RFC 4291 section 2.7.1 and RFC 2464 section 7 worked through for
	// fe80::2aa:ff:fe28:9c5a.
	wantAddr := [16]byte{0xff, 0x02, 11: 0x01, 12: 0xff, 13: 0x28, 14: 0x9c, 15: 0x5a}
	if got := SolicitedNodeAddress(ip6LL); got != wantAddr {
		t.Errorf("SolicitedNodeAddress = %x, want %x", got, wantAddr)
	}
	if got, want := IPv6MulticastMAC(wantAddr), [6]byte{0x33, 0x33, 0xff, 0x28, 0x9c, 0x5a}; got != want {
		t.Errorf("IPv6MulticastMAC = %x, want %x", got, want)
	}
	if got, want := IPv6MulticastMAC([16]byte{0xff, 0x02, 15: 1}), [6]byte{0x33, 0x33, 0, 0, 0, 1}; got != want {
		t.Errorf("IPv6MulticastMAC(ff02::1) = %x, want %x", got, want)
	}
}
