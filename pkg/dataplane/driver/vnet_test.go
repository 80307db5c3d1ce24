package driver

import (
	"bytes"
	"testing"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
)

func TestVnetHdrRoundTrip(t *testing.T) {
	for _, l2 := range []int{0, 14, 18} {
		for _, m := range []buffer.Meta{
			{},
			{Flags: buffer.FlagCsumOK},
			{Flags: buffer.FlagCsumPart, CsumStart: 20, CsumOffset: 16},
			{Flags: buffer.FlagCsumPart | buffer.FlagGSO, CsumStart: 40, CsumOffset: 6, GSOType: VnetGSOUDPL4, GSOSize: 1400, HdrLen: 48},
			{Flags: buffer.FlagCsumPart | buffer.FlagGSO, CsumStart: 20, CsumOffset: 16, GSOType: VnetGSOTCPv4 | VnetGSOECN, GSOSize: 1448, HdrLen: 52},
		} {
			var h [VnetHdrLen]byte
			EncodeVnetHdr(h[:], &m, l2)
			var got buffer.Meta
			if !DecodeVnetHdr(h[:], &got, l2) {
				t.Fatalf("l2 %d: decode of %+v failed", l2, m)
			}
			if got != m {
				t.Errorf("l2 %d: round trip of %+v gave %+v (header %x)", l2, m, got, h)
			}
		}
	}
}

// TestVnetHdrLayout holds the bytes to the kernel's layout (virtio 1.x
// section 5.1.6, little-endian), which the round trip above cannot: a field
// written and read at the same wrong offset survives it.
func TestVnetHdrLayout(t *testing.T) {
	for _, c := range []struct {
		m    buffer.Meta
		want []byte
	}{
		// A TCPv4 super-packet on Ethernet: hdr_len 66, gso_size 1448,
		// csum_start 34, csum_offset 16.
		{buffer.Meta{Flags: buffer.FlagCsumPart | buffer.FlagGSO, CsumStart: 20, CsumOffset: 16, GSOType: VnetGSOTCPv4, GSOSize: 1448, HdrLen: 52},
			[]byte{1, 1, 66, 0, 168, 5, 34, 0, 16, 0}},
		{buffer.Meta{Flags: buffer.FlagCsumOK}, []byte{2, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
	} {
		h := bytes.Repeat([]byte{0xff}, VnetHdrLen)
		EncodeVnetHdr(h, &c.m, 14)
		if !bytes.Equal(h, c.want) {
			t.Errorf("EncodeVnetHdr(%+v) = %v, want %v", c.m, h, c.want)
		}
		var got buffer.Meta
		if !DecodeVnetHdr(c.want, &got, 14) || got != c.m {
			t.Errorf("DecodeVnetHdr(%v) = %+v, want %+v", c.want, got, c.m)
		}
	}
}

func TestDecodeVnetHdrRejectsCsumInLinkHeader(t *testing.T) {
	h := []byte{VnetFlagNeedsCsum, 0, 0, 0, 0, 0, 10, 0, 16, 0}
	var m buffer.Meta
	if DecodeVnetHdr(h, &m, 14) {
		t.Fatalf("csum_start 10 inside a 14-byte Ethernet header accepted: %+v", m)
	}
}

// FuzzVnetHdr: any header decodes without panic, and what decodes encodes
// back to a header that decodes to the same metadata.
func FuzzVnetHdr(f *testing.F) {
	f.Add([]byte{1, 1, 66, 0, 168, 5, 34, 0, 16, 0}, uint8(14))
	f.Add([]byte{2, 0, 0, 0, 0, 0, 0, 0, 0, 0}, uint8(0))
	f.Fuzz(func(t *testing.T, h []byte, l2 uint8) {
		if len(h) < VnetHdrLen {
			return
		}
		var m buffer.Meta
		if !DecodeVnetHdr(h, &m, int(l2)) {
			return
		}
		var h2 [VnetHdrLen]byte
		EncodeVnetHdr(h2[:], &m, int(l2))
		var m2 buffer.Meta
		if !DecodeVnetHdr(h2[:], &m2, int(l2)) || m2 != m {
			t.Fatalf("header %x -> %+v -> %x -> %+v", h[:VnetHdrLen], m, h2, m2)
		}
	})
}
