package header

import (
	"encoding/binary"
	"fmt"
	"testing"
)

func TestChecksumKnownVectors(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want uint16 // Fold(Checksum(data, 0))
	}{
		{"empty", nil, 0xffff},
		// RFC 1071 section 3: the sum of these bytes is 0xddf2.
		{"rfc1071", mustHex("0001 f203 f4f5 f6f7"), ^uint16(0xddf2)},
		{"odd", []byte{0xab}, ^uint16(0xab00)},
		{"wikipedia ipv4 header", wikiIPv4, 0},
		{"all ones", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 0x00ff},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Fold(Checksum(tt.data, 0)); got != tt.want {
				t.Errorf("Fold(Checksum(%x)) = %#04x, want %#04x", tt.data, got, tt.want)
			}
		})
	}
}

func TestChecksumMatchesReference(t *testing.T) {
	r := newRand(t)
	initials := []uint32{0, 1, 0xffff, 0x10000, 0xfffffffe, 0xffffffff}
	for n := 0; n <= 300; n++ {
		b := randBytes(r, n)
		for _, init := range append(initials, r.Uint32()) {
			if got, want := Fold(Checksum(b, init)), refChecksum(b, init); got != want {
				t.Fatalf("len %d initial %#x: Fold(Checksum) = %#04x, want %#04x", n, init, got, want)
			}
		}
	}
	// Saturated inputs exercise every carry path.
	for _, n := range []int{7, 8, 31, 32, 33, 1500, 9000, 65535} {
		b := make([]byte, n)
		for i := range b {
			b[i] = 0xff
		}
		if got, want := Fold(Checksum(b, 0xffffffff)), refChecksum(b, 0xffffffff); got != want {
			t.Errorf("all-ones len %d: got %#04x, want %#04x", n, got, want)
		}
		if Checksum(b, 0) == 0 {
			t.Errorf("all-ones len %d: partial sum is +0", n)
		}
	}
}

func TestChecksumSplitAndCombine(t *testing.T) {
	r := newRand(t)
	for i := 0; i < 500; i++ {
		b := randBytes(r, 1+r.IntN(1600))
		split := r.IntN(len(b)+1) &^ 1 // first piece must be even
		want := Fold(Checksum(b, 0))
		if got := Fold(Checksum(b[split:], Checksum(b[:split], 0))); got != want {
			t.Fatalf("chained split at %d of %d: %#04x, want %#04x", split, len(b), got, want)
		}
		if got := Fold(ChecksumCombine(Checksum(b[:split], 0), Checksum(b[split:], 0))); got != want {
			t.Fatalf("combined split at %d of %d: %#04x, want %#04x", split, len(b), got, want)
		}
	}
	if got := ChecksumCombine(0xffffffff, 0xffffffff); Fold(got) != 0 {
		t.Errorf("ChecksumCombine(max, max) = %#x, folds to %#04x, want 0", got, Fold(got))
	}
}

func TestPseudoHeaderChecksums(t *testing.T) {
	r := newRand(t)
	for i := 0; i < 200; i++ {
		var s4, d4 [4]byte
		var s6, d6 [16]byte
		copy(s4[:], randBytes(r, 4))
		copy(d4[:], randBytes(r, 4))
		copy(s6[:], randBytes(r, 16))
		copy(d6[:], randBytes(r, 16))
		proto := uint8(r.Uint32())
		l16 := uint16(r.Uint32())
		l32 := r.Uint32()

		ph4 := append(append(append([]byte{}, s4[:]...), d4[:]...), 0, proto, byte(l16>>8), byte(l16))
		if got, want := Fold(PseudoHeaderChecksumV4(proto, s4, d4, l16)), refChecksum(ph4, 0); got != want {
			t.Fatalf("v4 %x: %#04x, want %#04x", ph4, got, want)
		}
		ph6 := append(append([]byte{}, s6[:]...), d6[:]...)
		ph6 = binary.BigEndian.AppendUint32(ph6, l32)
		ph6 = append(ph6, 0, 0, 0, proto)
		if got, want := Fold(PseudoHeaderChecksumV6(proto, s6, d6, l32)), refChecksum(ph6, 0); got != want {
			t.Fatalf("v6 %x: %#04x, want %#04x", ph6, got, want)
		}
	}
}

func TestUpdateChecksum16Table(t *testing.T) {
	tests := []struct {
		name          string
		hc, old, new  uint16
		want          uint16
		wantFullRecal uint16 // the other data's sum, to cross-check; 0 to skip
	}{
		// RFC 1624 section 4: other octets sum to 0xCD7A, m 0x5555 -> 0x3285.
		// Equation 3 gives the correct 0x0000 where RFC 1141's gives 0xFFFF.
		{name: "rfc1624 example", hc: 0xdd2f, old: 0x5555, new: 0x3285, want: 0x0000, wantFullRecal: 0xcd7a},
		{name: "no change", hc: 0x1234, old: 0xbeef, new: 0xbeef, want: 0x1234},
		{name: "0xffff to 0", hc: 0x1234, old: 0xffff, new: 0x0000, want: 0x1234},
		{name: "0 to 0xffff", hc: 0x1234, old: 0x0000, new: 0xffff, want: 0x1234},
		{name: "ttl 64 to 63", hc: 0xb861, old: 0x4011, new: 0x3f11, want: 0xb961},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := UpdateChecksum16(tt.hc, tt.old, tt.new); got != tt.want {
				t.Errorf("UpdateChecksum16(%#04x, %#04x, %#04x) = %#04x, want %#04x", tt.hc, tt.old, tt.new, got, tt.want)
			}
			if tt.wantFullRecal != 0 {
				data := []byte{byte(tt.wantFullRecal >> 8), byte(tt.wantFullRecal), byte(tt.new >> 8), byte(tt.new)}
				if full := Fold(Checksum(data, 0)); full != tt.want {
					t.Errorf("full recomputation = %#04x, want %#04x", full, tt.want)
				}
			}
		})
	}
}

// pickWord returns a random 16-bit value biased towards the 0x0000/0xFFFF
// values at which RFC 1624's corner cases live.
func pickWord(r interface{ IntN(int) int }) uint16 {
	switch r.IntN(4) {
	case 0:
		return 0
	case 1:
		return 0xffff
	default:
		return uint16(r.IntN(0x10000))
	}
}

// TestIncrementalUpdateMatchesRecomputation changes a random 16- or 32-bit
// field of random headers (checksum at offset 10 as in IPv4) and checks that
// the incrementally updated checksum equals a full recomputation.
func TestIncrementalUpdateMatchesRecomputation(t *testing.T) {
	r := newRand(t)
	const csumOff = 10
	for i := 0; i < 20000; i++ {
		hdr := randBytes(r, 20+4*r.IntN(11))
		// Sparse headers make the sum hit 0x0000/0xFFFF far more often.
		if r.IntN(3) == 0 {
			for j := range hdr {
				if r.IntN(4) != 0 {
					hdr[j] = 0
				}
			}
			hdr[0] = 0x45 // all-zero data is the one case with two answers
		}
		hdr[csumOff], hdr[csumOff+1] = 0, 0
		binary.BigEndian.PutUint16(hdr[csumOff:], Fold(Checksum(hdr, 0)))

		if r.IntN(2) == 0 {
			off := 2 * r.IntN(len(hdr)/2)
			if off == csumOff || off == 0 {
				continue
			}
			old := binary.BigEndian.Uint16(hdr[off:])
			nw := pickWord(r)
			binary.BigEndian.PutUint16(hdr[off:], nw)
			got := UpdateChecksum16(binary.BigEndian.Uint16(hdr[csumOff:]), old, nw)
			binary.BigEndian.PutUint16(hdr[csumOff:], 0)
			if want := Fold(Checksum(hdr, 0)); got != want {
				t.Fatalf("%x: field@%d %#04x->%#04x: incremental %#04x, full %#04x", hdr, off, old, nw, got, want)
			}
			binary.BigEndian.PutUint16(hdr[csumOff:], got)
		} else {
			off := 12 + 2*r.IntN((len(hdr)-14)/2) // never overlaps offsets 0..11
			old := binary.BigEndian.Uint32(hdr[off:])
			nw := uint32(pickWord(r))<<16 | uint32(pickWord(r))
			binary.BigEndian.PutUint32(hdr[off:], nw)
			got := UpdateChecksum32(binary.BigEndian.Uint16(hdr[csumOff:]), old, nw)
			binary.BigEndian.PutUint16(hdr[csumOff:], 0)
			if want := Fold(Checksum(hdr, 0)); got != want {
				t.Fatalf("%x: field@%d %#08x->%#08x: incremental %#04x, full %#04x", hdr, off, old, nw, got, want)
			}
			binary.BigEndian.PutUint16(hdr[csumOff:], got)
		}
		if Fold(Checksum(hdr, 0)) != 0 {
			t.Fatalf("%x: updated header does not verify", hdr)
		}
	}
}

func BenchmarkChecksum(b *testing.B) {
	for _, n := range []int{20, 40, 1500, 9000} {
		buf := randBytes(newRand(b), n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			var s uint32
			for b.Loop() {
				s = Checksum(buf, s)
			}
			sinkU32 = s
		})
	}
}
