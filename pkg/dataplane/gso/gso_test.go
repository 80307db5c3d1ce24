package gso

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/pkg/header"
)

const (
	ack = header.TCPFlagAck
	psh = header.TCPFlagPsh
	fin = header.TCPFlagFin
	cwr = header.TCPFlagCwr
	ece = header.TCPFlagEce
	urg = header.TCPFlagUrg
)

func TestSegment(t *testing.T) {
	ipOpts := []byte{0x94, 4, 0, 0} // Router Alert (RFC 2113), copied flag set
	cases := []struct {
		name    string
		s       spec
		n       int // payload bytes
		mss     int
		segs    int
		ecn     bool
		hdrLen  int // overrides Meta.HdrLen if non-zero (a hint only)
		noCsum  bool
		wantBig bool // some segments need large buffers
	}{
		{name: "v4 tcp", s: spec{proto: 6, flags: ack | psh, seq: 1000, id: 7, df: true}, n: 10000, mss: 1460, segs: 7},
		{name: "v4 tcp timestamps 64K", s: spec{proto: 6, tcpOpts: tsOpts, flags: ack | psh, seq: 1 << 31}, n: 65535 - 52, mss: 1448, segs: 46},
		{name: "v4 tcp ip options", s: spec{proto: 6, ipOpts: ipOpts, tcpOpts: tsOpts, flags: ack, id: 0xfffe}, n: 5000, mss: 1000, segs: 5},
		{name: "v4 tcp fin psh cwr ece", s: spec{proto: 6, flags: ack | psh | fin | cwr | ece}, n: 4000, mss: 1448, segs: 3, ecn: true},
		{name: "v4 tcp cwr without ecn bit", s: spec{proto: 6, flags: ack | cwr}, n: 3000, mss: 1448, segs: 3},
		{name: "v4 tcp seq wraps", s: spec{proto: 6, flags: ack, seq: 0xffffff00}, n: 3000, mss: 1000, segs: 3},
		{name: "v4 tcp urgent in second segment", s: spec{proto: 6, flags: ack | urg, urg: 1500}, n: 4000, mss: 1000, segs: 4},
		{name: "v4 tcp exact multiple", s: spec{proto: 6, flags: ack | fin}, n: 4 * 1448, mss: 1448, segs: 4},
		{name: "v4 tcp one segment", s: spec{proto: 6, flags: ack | psh}, n: 100, mss: 1448, segs: 1},
		{name: "v4 tcp payload equals mss", s: spec{proto: 6, flags: ack}, n: 1448, mss: 1448, segs: 1},
		{name: "v4 tcp mss 1", s: spec{proto: 6, flags: ack | fin}, n: 37, mss: 1, segs: 37},
		{name: "v4 tcp odd mss", s: spec{proto: 6, flags: ack}, n: 3001, mss: 999, segs: 4},
		{name: "v4 tcp hdr_len hint larger", s: spec{proto: 6, flags: ack}, n: 3000, mss: 1448, segs: 3, hdrLen: 300},
		{name: "v4 tcp hdr_len hint smaller", s: spec{proto: 6, tcpOpts: tsOpts, flags: ack}, n: 3000, mss: 1448, segs: 3, hdrLen: 20},
		{name: "v4 tcp without needs_csum", s: spec{proto: 6, flags: ack}, n: 3000, mss: 1448, segs: 3, noCsum: true},
		{name: "v4 tcp jumbo mss", s: spec{proto: 6, flags: ack | psh}, n: 20000, mss: 8948, segs: 3, wantBig: true},
		{name: "v4 tcp segment fills small buffer", s: spec{proto: 6, flags: ack}, n: 5000, mss: buffer.SmallDataSize - 40, segs: 3},
		{name: "v4 tcp segment one byte over small", s: spec{proto: 6, flags: ack}, n: 5000, mss: buffer.SmallDataSize - 39, segs: 3, wantBig: true},
		{name: "v4 tcp syn single segment", s: spec{proto: 6, flags: header.TCPFlagSyn}, n: 100, mss: 1448, segs: 1},
		{name: "v6 tcp", s: spec{v6: true, proto: 6, tcpOpts: tsOpts, flags: ack | psh | fin | cwr, seq: 42}, n: 65535 - 32, mss: 1428, segs: 46, ecn: true},
		{name: "v6 tcp short tail", s: spec{v6: true, proto: 6, flags: ack}, n: 1441, mss: 1440, segs: 2},
		{name: "v4 udp", s: spec{proto: 17, id: 0xffff}, n: 20000, mss: 1472, segs: 14},
		{name: "v4 udp one segment", s: spec{proto: 17}, n: 10, mss: 1472, segs: 1},
		{name: "v4 udp no needs_csum", s: spec{proto: 17}, n: 3000, mss: 1200, segs: 3, noCsum: true},
		{name: "v6 udp", s: spec{v6: true, proto: 17}, n: 65535 - 8, mss: 1452, segs: 46},
		{name: "v6 udp odd sizes", s: spec{v6: true, proto: 17}, n: 4001, mss: 1001, segs: 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRand(t)
			c.s.payload = payloadOf(r, c.n)
			pkt, l4, hdr := build(c.s)
			m := gsoMeta(c.s, l4, hdr, c.mss)
			if c.ecn {
				m.GSOType |= typeECN
			}
			if c.hdrLen != 0 {
				m.HdrLen = uint16(c.hdrLen)
			}
			if c.noCsum {
				m.Flags &^= buffer.FlagCsumPart
				m.CsumStart, m.CsumOffset = 0, 0
			}
			p := buffer.NewPool(128, 4)
			s0, l0 := p.FreeCount()
			b := load(t, p, pkt, m)
			if n, err := Count(p, b); err != nil || n != c.segs {
				t.Fatalf("Count = %d, %v; want %d", n, err, c.segs)
			}
			out := make([]buffer.Index, c.segs)
			n, err := Segment(p, b, out)
			if err != nil || n != c.segs {
				t.Fatalf("Segment = %d, %v; want %d segments", n, err, c.segs)
			}
			if msg := checkSegments(p, pkt, c.mss, m, out[:n]); msg != "" {
				t.Fatal(msg)
			}
			big := false
			for _, sb := range out[:n] {
				big = big || p.IsLarge(sb)
			}
			if big != c.wantBig {
				t.Errorf("large buffers used: %v, want %v", big, c.wantBig)
			}
			freeAll(p, out[:n])
			if s, l := p.FreeCount(); s != s0 || l != l0 {
				t.Fatalf("free buffers %d/%d after, %d/%d before", s, l, s0, l0)
			}
		})
	}
}

// TestSegmentFlags spells out the flag rules on one packet rather than
// through checkSegments' general formula.
func TestSegmentFlags(t *testing.T) {
	s := spec{proto: 6, flags: ack | psh | fin | cwr | ece | urg, urg: 1200, payload: make([]byte, 3500)}
	pkt, l4, hdr := build(s)
	m := gsoMeta(s, l4, hdr, 1000)
	m.GSOType |= typeECN
	p := buffer.NewPool(8, 1)
	b := load(t, p, pkt, m)
	var out [4]buffer.Index
	n, err := Segment(p, b, out[:])
	if err != nil || n != 4 {
		t.Fatalf("Segment = %d, %v", n, err)
	}
	want := []struct {
		flags uint8
		urg   uint16
	}{
		{ack | cwr | ece | urg, 1200},
		{ack | ece | urg, 200},
		{ack | ece, 0},
		{ack | ece | psh | fin, 0},
	}
	for i, w := range want {
		tcp := header.TCP(p.Packet(out[i])[l4:])
		if tcp.Flags() != w.flags || tcp.UrgentPointer() != w.urg {
			t.Errorf("segment %d: flags %#x urg %d, want %#x %d", i, tcp.Flags(), tcp.UrgentPointer(), w.flags, w.urg)
		}
	}
	freeAll(p, out[:n])
}

// TestSegmentUDPZeroChecksum builds a datagram whose single segment sums
// to zero and checks that 0xFFFF goes on the wire (RFC 768).
func TestSegmentUDPZeroChecksum(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		s := spec{v6: v6, proto: 17, payload: make([]byte, 64)}
		pkt, l4, hdr := build(s)
		// Pick the last payload word so that the checksum comes out 0:
		// the sum over pseudo-header and datagram must be 0xFFFF.
		binary.BigEndian.PutUint16(pkt[l4+6:], 0)
		c := ^refSum(pseudo(pkt, 17, len(pkt)-l4), pkt[l4:])
		binary.BigEndian.PutUint16(pkt[len(pkt)-2:], c)
		if ^refSum(pseudo(pkt, 17, len(pkt)-l4), pkt[l4:]) != 0 {
			t.Fatal("test setup: checksum not zero")
		}
		p := buffer.NewPool(4, 1)
		b := load(t, p, pkt, gsoMeta(s, l4, hdr, 1000))
		var out [1]buffer.Index
		if n, err := Segment(p, b, out[:]); err != nil || n != 1 {
			t.Fatalf("Segment = %d, %v", n, err)
		}
		if got := header.UDP(p.Packet(out[0])[l4:]).Checksum(); got != 0xffff {
			t.Errorf("v6 %v: UDP checksum %#x, want 0xffff", v6, got)
		}
	}
}

// TestSegmentTrimsPadding: bytes past the IP length are link-layer padding
// and must not turn into payload.
func TestSegmentTrimsPadding(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		s := spec{v6: v6, proto: 6, flags: ack, payload: payloadOf(newRand(t), 3000)}
		pkt, l4, hdr := build(s)
		padded := append(append([]byte(nil), pkt...), 0xee, 0xee, 0xee, 0xee)
		p := buffer.NewPool(8, 1)
		m := gsoMeta(s, l4, hdr, 1448)
		b := load(t, p, padded, m)
		var out [3]buffer.Index
		n, err := Segment(p, b, out[:])
		if err != nil || n != 3 {
			t.Fatalf("Segment = %d, %v", n, err)
		}
		if msg := checkSegments(p, pkt, 1448, m, out[:n]); msg != "" {
			t.Fatal(msg)
		}
	}
}

func TestSegmentErrors(t *testing.T) {
	tcp4 := spec{proto: 6, flags: ack, payload: make([]byte, 3000)}
	tcp6 := spec{v6: true, proto: 6, flags: ack, payload: make([]byte, 3000)}
	udp4 := spec{proto: 17, payload: make([]byte, 3000)}
	cases := []struct {
		name string
		s    spec
		edit func(pkt []byte, m *buffer.Meta) []byte
		err  Error
	}{
		{"not gso", tcp4, func(p []byte, m *buffer.Meta) []byte { m.Flags &^= buffer.FlagGSO; return p }, ErrNotGSO},
		{"start negative", tcp4, func(p []byte, m *buffer.Meta) []byte { m.Start = -1; return p }, ErrBadMeta},
		{"len past buffer", tcp4, func(p []byte, m *buffer.Meta) []byte { m.Len = buffer.LargeSize; return p }, ErrBadMeta},
		{"len negative", tcp4, func(p []byte, m *buffer.Meta) []byte { m.Len = -5; return p }, ErrBadMeta},
		{"ufo", udp4, func(p []byte, m *buffer.Meta) []byte { m.GSOType = typeUDP; return p }, ErrUnsupportedType},
		{"udp ecn", udp4, func(p []byte, m *buffer.Meta) []byte { m.GSOType |= typeECN; return p }, ErrUnsupportedType},
		{"gso none", tcp4, func(p []byte, m *buffer.Meta) []byte { m.GSOType = 0; return p }, ErrUnsupportedType},
		{"gso unknown", tcp4, func(p []byte, m *buffer.Meta) []byte { m.GSOType = 0x41; return p }, ErrUnsupportedType},
		{"gso size 0", tcp4, func(p []byte, m *buffer.Meta) []byte { m.GSOSize = 0; return p }, ErrBadGSOSize},
		{"empty", tcp4, func(p []byte, m *buffer.Meta) []byte { m.Len = 0; return p }, ErrBadIPHeader},
		{"version 5", tcp4, func(p []byte, m *buffer.Meta) []byte { p[0] = 0x55; return p }, ErrBadIPHeader},
		{"ihl 4", tcp4, func(p []byte, m *buffer.Meta) []byte { p[0] = 0x44; return p }, ErrBadIPHeader},
		{"v4 total length long", tcp4, func(p []byte, m *buffer.Meta) []byte { m.Len -= 1; return p }, ErrBadIPHeader},
		{"v4 truncated", tcp4, func(p []byte, m *buffer.Meta) []byte { m.Len = 19; return p }, ErrBadIPHeader},
		{"v6 payload length long", tcp6, func(p []byte, m *buffer.Meta) []byte { m.Len -= 1; return p }, ErrBadIPHeader},
		{"tcpv4 over v6", tcp6, func(p []byte, m *buffer.Meta) []byte { m.GSOType = typeTCPv4; return p }, ErrTypeMismatch},
		{"tcpv6 over v4", tcp4, func(p []byte, m *buffer.Meta) []byte { m.GSOType = typeTCPv6; return p }, ErrTypeMismatch},
		{"udp type on tcp", tcp4, func(p []byte, m *buffer.Meta) []byte { m.GSOType = typeUDPL4; return p }, ErrTypeMismatch},
		{"tcp type on udp", udp4, func(p []byte, m *buffer.Meta) []byte { m.GSOType = typeTCPv4; return p }, ErrTypeMismatch},
		{"v6 other next header", tcp6, func(p []byte, m *buffer.Meta) []byte { p[6] = 58; return p }, ErrTypeMismatch},
		{"v6 hop-by-hop", tcp6, func(p []byte, m *buffer.Meta) []byte { p[6] = 0; return p }, ErrIPv6ExtHeader},
		{"v6 fragment header", tcp6, func(p []byte, m *buffer.Meta) []byte { p[6] = 44; return p }, ErrIPv6ExtHeader},
		{"v4 MF", tcp4, func(p []byte, m *buffer.Meta) []byte { p[6] |= 0x20; return p }, ErrFragment},
		{"v4 offset", tcp4, func(p []byte, m *buffer.Meta) []byte { p[7] = 1; return p }, ErrFragment},
		{"tcp data offset 4", tcp4, func(p []byte, m *buffer.Meta) []byte { p[32] = 0x40; return p }, ErrBadL4Header},
		{"tcp data offset past end", tcp4, func(p []byte, m *buffer.Meta) []byte {
			header.IPv4(p).SetTotalLength(40)
			p[32] = 0xf0
			m.Len = 40
			return p
		}, ErrBadL4Header},
		{"udp truncated", udp4, func(p []byte, m *buffer.Meta) []byte {
			header.IPv4(p).SetTotalLength(27)
			m.Len = 27
			return p
		}, ErrBadL4Header},
		{"csum start wrong", tcp4, func(p []byte, m *buffer.Meta) []byte { m.CsumStart = 0; return p }, ErrBadCsumOffset},
		{"csum offset wrong", tcp4, func(p []byte, m *buffer.Meta) []byte { m.CsumOffset = 6; return p }, ErrBadCsumOffset},
		{"udp csum offset wrong", udp4, func(p []byte, m *buffer.Meta) []byte { m.CsumOffset = 16; return p }, ErrBadCsumOffset},
		{"no payload", tcp4, func(p []byte, m *buffer.Meta) []byte {
			header.IPv4(p).SetTotalLength(40)
			m.Len = 40
			return p
		}, ErrNoPayload},
		{"syn", tcp4, func(p []byte, m *buffer.Meta) []byte { p[33] |= header.TCPFlagSyn; return p }, ErrTCPFlags},
		{"rst", tcp4, func(p []byte, m *buffer.Meta) []byte { p[33] |= header.TCPFlagRst; return p }, ErrTCPFlags},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pkt, l4, hdr := build(c.s)
			m := gsoMeta(c.s, l4, hdr, 1000)
			m.Start, m.Len = buffer.Headroom, int32(len(pkt))
			pkt = c.edit(pkt, &m)
			p := buffer.NewPool(16, 1)
			s0, l0 := p.FreeCount()
			b := load(t, p, pkt, buffer.Meta{})
			*p.Meta(b) = m
			before := append([]byte(nil), p.Data(b)...)
			if _, err := Count(p, b); err != c.err {
				t.Errorf("Count: %v, want %v", err, c.err)
			}
			var out [8]buffer.Index
			n, err := Segment(p, b, out[:])
			if n != 0 || err != c.err {
				t.Fatalf("Segment = %d, %v; want %v", n, err, c.err)
			}
			var e Error
			if !errors.As(err, &e) || !errors.Is(err, c.err) {
				t.Errorf("%v is not an Error", err)
			}
			if *p.Meta(b) != m || !bytes.Equal(p.Data(b), before) {
				t.Error("failed Segment modified its input")
			}
			p.Free(b)
			if s, l := p.FreeCount(); s != s0 || l != l0 {
				t.Fatalf("free buffers %d/%d after, %d/%d before", s, l, s0, l0)
			}
		})
	}
}

// TestSegmentResourceErrors covers the errors that depend on the caller's
// resources, not the packet: each must leave the pool as it was.
func TestSegmentResourceErrors(t *testing.T) {
	s := spec{proto: 6, flags: ack, payload: make([]byte, 10000)}
	pkt, l4, hdr := build(s)
	m := gsoMeta(s, l4, hdr, 1000) // 10 segments

	t.Run("out too small", func(t *testing.T) {
		p := buffer.NewPool(32, 1)
		b := load(t, p, pkt, m)
		s0, l0 := p.FreeCount()
		var out [9]buffer.Index
		if n, err := Segment(p, b, out[:]); n != 0 || err != ErrOutTooSmall {
			t.Fatalf("Segment = %d, %v", n, err)
		}
		if s, l := p.FreeCount(); s != s0 || l != l0 {
			t.Fatalf("leak: %d/%d free, want %d/%d", s, l, s0, l0)
		}
	})
	for _, avail := range []int{0, 1, 5, 9} {
		// Pools cannot be empty: take away what should not be available.
		p := buffer.NewPool(10, 1)
		for range 10 - avail {
			p.Alloc()
		}
		b := load(t, p, pkt, m)
		before := append([]byte(nil), p.Packet(b)...)
		s0, l0 := p.FreeCount()
		var out [16]buffer.Index
		if n, err := Segment(p, b, out[:]); n != 0 || err != ErrNoBuffers {
			t.Fatalf("%d small buffers: Segment = %d, %v", avail, n, err)
		}
		if s, l := p.FreeCount(); s != s0 || l != l0 {
			t.Fatalf("%d small buffers: leak: %d/%d free, want %d/%d", avail, s, l, s0, l0)
		}
		if !bytes.Equal(p.Packet(b), before) || *p.Meta(b) != func() buffer.Meta { x := m; x.Start, x.Len = buffer.Headroom, int32(len(pkt)); return x }() {
			t.Fatalf("%d small buffers: input modified", avail)
		}
	}
	// Jumbo segments need large buffers; the pool has none left.
	t.Run("no large buffers", func(t *testing.T) {
		p := buffer.NewPool(32, 1)
		mj := m
		mj.GSOSize = 4000
		b := load(t, p, pkt, mj)
		s0, l0 := p.FreeCount()
		var out [4]buffer.Index
		if n, err := Segment(p, b, out[:]); n != 0 || err != ErrNoBuffers {
			t.Fatalf("Segment = %d, %v", n, err)
		}
		if s, l := p.FreeCount(); s != s0 || l != l0 {
			t.Fatalf("leak: %d/%d free, want %d/%d", s, l, s0, l0)
		}
	})
}

func TestFinishChecksum(t *testing.T) {
	for _, c := range []struct {
		name string
		s    spec
		n    int
	}{
		{"tcp4", spec{proto: 6, tcpOpts: tsOpts, flags: ack | psh}, 1448},
		{"tcp4 odd", spec{proto: 6, flags: ack}, 1},
		{"tcp4 empty", spec{proto: 6, flags: ack}, 0},
		{"tcp6", spec{v6: true, proto: 6, flags: ack}, 1427},
		{"udp4", spec{proto: 17}, 1472},
		{"udp4 odd", spec{proto: 17}, 3},
		{"udp6", spec{v6: true, proto: 17}, 1452},
		{"udp6 empty", spec{v6: true, proto: 17}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.s.payload = payloadOf(newRand(t), c.n)
			pkt, l4, _ := build(c.s) // field holds the pseudo-header sum
			off := header.TCPChecksumOffset
			if c.s.proto == header.ProtocolUDP {
				off = header.UDPChecksumOffset
			}
			// The full computation, independently.
			full := append([]byte(nil), pkt...)
			full[l4+off], full[l4+off+1] = 0, 0
			want := ^refSum(pseudo(full, c.s.proto, len(full)-l4), full[l4:])
			if want == 0 {
				want = 0xffff
			}
			m := buffer.Meta{Flags: buffer.FlagCsumPart | buffer.FlagTraced, CsumStart: uint16(l4), CsumOffset: uint16(off), RxIf: 4}
			p := buffer.NewPool(2, 0)
			b := load(t, p, pkt, m)
			if err := FinishChecksum(p, b); err != nil {
				t.Fatal(err)
			}
			got := p.Packet(b)
			if c := binary.BigEndian.Uint16(got[l4+off:]); c != want {
				t.Errorf("checksum %#x, want %#x", c, want)
			}
			if !refValid(pseudo(got, c.s.proto, len(got)-l4), got[l4:]) {
				t.Error("checksum does not verify")
			}
			gm := p.Meta(b)
			if gm.Flags != buffer.FlagTraced || gm.CsumStart != 0 || gm.CsumOffset != 0 || gm.RxIf != 4 {
				t.Errorf("meta after: %+v", *gm)
			}
			// Nothing left to do: a second call changes nothing.
			again := append([]byte(nil), got...)
			if err := FinishChecksum(p, b); err != nil || !bytes.Equal(p.Packet(b), again) {
				t.Errorf("second call: %v, changed %v", err, !bytes.Equal(p.Packet(b), again))
			}
		})
	}
}

// TestFinishChecksumZero: a UDP checksum that computes to zero is sent as
// 0xFFFF (RFC 768), like the kernel's CSUM_MANGLED_0.
func TestFinishChecksumZero(t *testing.T) {
	s := spec{proto: 17, payload: make([]byte, 32)}
	pkt, l4, _ := build(s)
	// The field holds the pseudo-header sum, as the kernel leaves it;
	// choose the last payload word so that the sum from CsumStart to the
	// end is all ones, whose complement, the checksum, is zero.
	ps := refSum(pseudo(pkt, 17, len(pkt)-l4))
	binary.BigEndian.PutUint16(pkt[l4+6:], ps)
	binary.BigEndian.PutUint16(pkt[len(pkt)-2:], 0)
	rest := refSum(pkt[l4:])
	binary.BigEndian.PutUint16(pkt[len(pkt)-2:], ^rest)
	if refSum(pkt[l4:]) != 0xffff {
		t.Fatal("test setup")
	}
	p := buffer.NewPool(1, 0)
	b := load(t, p, pkt, buffer.Meta{Flags: buffer.FlagCsumPart, CsumStart: uint16(l4), CsumOffset: 6})
	if err := FinishChecksum(p, b); err != nil {
		t.Fatal(err)
	}
	if got := binary.BigEndian.Uint16(p.Packet(b)[l4+6:]); got != 0xffff {
		t.Errorf("checksum %#x, want 0xffff", got)
	}
}

func TestFinishChecksumErrors(t *testing.T) {
	pkt, l4, _ := build(spec{proto: 6, flags: ack, payload: make([]byte, 100)})
	cases := []struct {
		name string
		m    buffer.Meta
		err  error
	}{
		{"not partial", buffer.Meta{CsumStart: 60000}, nil},
		{"start past end", buffer.Meta{Flags: buffer.FlagCsumPart, CsumStart: uint16(len(pkt)), CsumOffset: 0}, ErrBadCsumOffset},
		{"field past end", buffer.Meta{Flags: buffer.FlagCsumPart, CsumStart: uint16(len(pkt) - 2), CsumOffset: 2}, ErrBadCsumOffset},
		{"huge", buffer.Meta{Flags: buffer.FlagCsumPart, CsumStart: 0xffff, CsumOffset: 0xfffe}, ErrBadCsumOffset},
		{"odd offset", buffer.Meta{Flags: buffer.FlagCsumPart, CsumStart: uint16(l4), CsumOffset: 15}, ErrBadCsumOffset},
		{"bad start", buffer.Meta{Flags: buffer.FlagCsumPart, Start: -4}, ErrBadMeta},
		{"bad len", buffer.Meta{Flags: buffer.FlagCsumPart, Start: buffer.Headroom, Len: buffer.SmallSize}, ErrBadMeta},
	}
	for _, c := range cases {
		p := buffer.NewPool(1, 0)
		b := load(t, p, pkt, buffer.Meta{})
		m := c.m
		if m.Start == 0 {
			m.Start = buffer.Headroom
		}
		if m.Len == 0 {
			m.Len = int32(len(pkt))
		}
		*p.Meta(b) = m
		before := append([]byte(nil), p.Data(b)...)
		if err := FinishChecksum(p, b); err != c.err {
			t.Errorf("%s: %v, want %v", c.name, err, c.err)
		}
		if !bytes.Equal(p.Data(b), before) || *p.Meta(b) != m {
			t.Errorf("%s: packet or meta modified", c.name)
		}
	}
}

// TestSegmentMatchesFinishChecksum ties both halves together: the checksums Segment
// writes are what FinishChecksum would have written for the same segment
// left partial.
func TestSegmentMatchesFinishChecksum(t *testing.T) {
	s := spec{v6: true, proto: 6, flags: ack | psh, tcpOpts: tsOpts, payload: payloadOf(newRand(t), 5000)}
	pkt, l4, hdr := build(s)
	p := buffer.NewPool(16, 1)
	b := load(t, p, pkt, gsoMeta(s, l4, hdr, 1400))
	var out [4]buffer.Index
	n, err := Segment(p, b, out[:])
	if err != nil {
		t.Fatal(err)
	}
	for _, sb := range out[:n] {
		seg := p.Packet(sb)
		want := binary.BigEndian.Uint16(seg[l4+16:])
		// Make it partial the way the kernel would and finish it.
		binary.BigEndian.PutUint16(seg[l4+16:], refSum(pseudo(seg, 6, len(seg)-l4)))
		m := p.Meta(sb)
		m.Flags |= buffer.FlagCsumPart
		m.CsumStart, m.CsumOffset = uint16(l4), 16
		if err := FinishChecksum(p, sb); err != nil {
			t.Fatal(err)
		}
		if got := binary.BigEndian.Uint16(seg[l4+16:]); got != want {
			t.Errorf("FinishChecksum %#x, Segment %#x", got, want)
		}
	}
	freeAll(p, out[:n])
}

func TestErrorStrings(t *testing.T) {
	seen := map[string]bool{}
	for e := Error(1); e < NumErrors; e++ {
		s := e.String()
		if s == "" || s == "unknown" || seen[s] {
			t.Errorf("Error(%d).String() = %q", e, s)
		}
		seen[s] = true
		if e.Error() != "gso: "+s {
			t.Errorf("Error(%d).Error() = %q", e, e.Error())
		}
	}
	if Error(NumErrors).String() != "unknown" {
		t.Error("out-of-range Error has a name")
	}
}

func TestNoAllocations(t *testing.T) {
	s := spec{proto: 6, flags: ack, tcpOpts: tsOpts, payload: make([]byte, 30000)}
	pkt, l4, hdr := build(s)
	m := gsoMeta(s, l4, hdr, 1448)
	p := buffer.NewPool(64, 2)
	var out [32]buffer.Index
	allocs := testing.AllocsPerRun(50, func() {
		b, _ := p.AllocLarge()
		copy(p.Data(b)[buffer.Headroom:], pkt)
		mm := m
		mm.Start, mm.Len = buffer.Headroom, int32(len(pkt))
		*p.Meta(b) = mm
		n, err := Segment(p, b, out[:])
		if err != nil {
			panic(err)
		}
		if err := FinishChecksum(p, out[0]); err != nil {
			panic(err)
		}
		freeAll(p, out[:n])
		// An error path too: the error value must not allocate.
		b, _ = p.AllocLarge()
		*p.Meta(b) = buffer.Meta{Flags: buffer.FlagGSO, GSOType: typeUDP}
		if _, err := Segment(p, b, out[:]); err != ErrUnsupportedType {
			panic(err)
		}
		p.Free(b)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per run", allocs)
	}
}
