package header

import "testing"

func TestValidateVirtioNetHdr(t *testing.T) {
	type hdr struct {
		flags, gso          uint8
		gsoSize, start, off uint16
	}
	mk := func(h hdr) VirtioNetHdr {
		v := make(VirtioNetHdr, VirtioNetHdrSize)
		v.SetFlags(h.flags)
		v.SetGSOType(h.gso)
		v.SetGSOSize(h.gsoSize)
		v.SetCsumStart(h.start)
		v.SetCsumOffset(h.off)
		return v
	}
	const tcp4 = 14 + 20 // Ethernet-less tun: csum_start is the IP header length
	tests := []struct {
		name   string
		h      []byte
		pktLen int
		want   VirtioError
	}{
		{"no offload", mk(hdr{}), 60, VirtioOK},
		{"no offload, empty packet", mk(hdr{}), 0, VirtioOK},
		{"tcp partial csum", mk(hdr{flags: VirtioNetHdrFNeedsCsum, start: 20, off: TCPChecksumOffset}), 40, VirtioOK},
		{"csum field ends at packet end", mk(hdr{flags: VirtioNetHdrFNeedsCsum, start: 20, off: UDPChecksumOffset}), 28, VirtioOK},
		{"tcp tso", mk(hdr{flags: VirtioNetHdrFNeedsCsum, gso: VirtioNetHdrGSOTCPv4, gsoSize: 1448, start: 20, off: 16}), 65000, VirtioOK},
		{"tcp6 tso with ecn", mk(hdr{flags: VirtioNetHdrFNeedsCsum, gso: VirtioNetHdrGSOTCPv6 | VirtioNetHdrGSOECN, gsoSize: 1440, start: 40, off: 16}), 9000, VirtioOK},
		{"uso", mk(hdr{flags: VirtioNetHdrFNeedsCsum, gso: VirtioNetHdrGSOUDPL4, gsoSize: 1200, start: 40, off: 6}), 9000, VirtioOK},
		{"ufo", mk(hdr{gso: VirtioNetHdrGSOUDP, gsoSize: 1472}), 9000, VirtioOK},
		{"data valid", mk(hdr{flags: VirtioNetHdrFDataValid}), tcp4, VirtioOK},
		{"12-byte header", make([]byte, VirtioNetHdrMrgRxbufSize), 60, VirtioOK},
		{"9 bytes", make([]byte, 9), 60, VirtioErrTooShort},
		{"negative packet length", mk(hdr{}), -1, VirtioErrTooShort},
		{"csum one byte past end", mk(hdr{flags: VirtioNetHdrFNeedsCsum, start: 20, off: 16}), 37, VirtioErrBadCsumOffset},
		{"csum start past end", mk(hdr{flags: VirtioNetHdrFNeedsCsum, start: 0xffff, off: 0xffff}), 65535, VirtioErrBadCsumOffset},
		{"offsets ignored without needs_csum", mk(hdr{start: 0xffff, off: 0xffff}), 10, VirtioOK},
		{"gso type 2", mk(hdr{gso: 2, gsoSize: 1000}), 9000, VirtioErrBadGSOType},
		{"gso type 6", mk(hdr{gso: 6, gsoSize: 1000}), 9000, VirtioErrBadGSOType},
		{"ecn without gso", mk(hdr{gso: VirtioNetHdrGSOECN, gsoSize: 1000}), 9000, VirtioErrBadGSOType},
		{"tso without gso_size", mk(hdr{flags: VirtioNetHdrFNeedsCsum, gso: VirtioNetHdrGSOTCPv4, start: 20, off: 16}), 9000, VirtioErrBadGSOSize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ValidateVirtioNetHdr(tt.h, tt.pktLen); got != tt.want {
				t.Errorf("ValidateVirtioNetHdr(%x, %d) = %v, want %v", tt.h, tt.pktLen, got, tt.want)
			}
		})
	}
	for e, s := range map[VirtioError]string{VirtioOK: "ok", VirtioErrTooShort: "too_short", VirtioErrBadCsumOffset: "bad_csum_offset", VirtioErrBadGSOType: "bad_gso_type", VirtioErrBadGSOSize: "bad_gso_size", 50: "unknown"} {
		if e.String() != s {
			t.Errorf("VirtioError(%d).String() = %q, want %q", e, e.String(), s)
		}
	}
}

func TestVirtioNetHdrLayout(t *testing.T) {
	// The bytes a kernel writes for a 64 KB TSO TCPv4 packet:
	// NEEDS_CSUM, GSO_TCPV4, hdr_len 66, gso_size 1448, csum_start 34,
	// csum_offset 16, num_buffers 1, all little-endian.
	raw := mustHex("01 01 4200 a805 2200 1000 0100")
	h := VirtioNetHdr(raw)
	type fields struct {
		Flags, GSOType                                  uint8
		HdrLen, GSOSize, CsumStart, CsumOffset, NumBufs uint16
	}
	want := fields{VirtioNetHdrFNeedsCsum, VirtioNetHdrGSOTCPv4, 66, 1448, 34, 16, 1}
	if d := diff(want, fields{h.Flags(), h.GSOType(), h.HdrLen(), h.GSOSize(), h.CsumStart(), h.CsumOffset(), h.NumBuffers()}); d != "" {
		t.Errorf("getters (-want +got):\n%s", d)
	}
	b := make(VirtioNetHdr, VirtioNetHdrMrgRxbufSize)
	b.SetFlags(want.Flags)
	b.SetGSOType(want.GSOType)
	b.SetHdrLen(want.HdrLen)
	b.SetGSOSize(want.GSOSize)
	b.SetCsumStart(want.CsumStart)
	b.SetCsumOffset(want.CsumOffset)
	b.SetNumBuffers(want.NumBufs)
	if string(b) != string(raw) {
		t.Errorf("setters wrote %x, want %x", []byte(b), raw)
	}
	b.Reset()
	if string(b) != string(make([]byte, 12)) {
		t.Errorf("Reset left %x", []byte(b))
	}
}
