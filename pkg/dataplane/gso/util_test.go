package gso

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/pkg/header"
)

// The helpers here build packets and check results without going through
// the code under test: checksums use refSum, a deliberately naive RFC 1071
// sum, and headers are parsed with explicit offsets.

// refSum is the one's complement sum of the concatenation of parts, 16-bit
// big-endian words, an odd final byte padded with zero; folded, not
// complemented.
func refSum(parts ...[]byte) uint16 {
	var all []byte
	for _, p := range parts {
		all = append(all, p...)
	}
	var s uint64
	for i := 0; i+1 < len(all); i += 2 {
		s += uint64(all[i])<<8 | uint64(all[i+1])
	}
	if len(all)%2 == 1 {
		s += uint64(all[len(all)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// refValid reports whether data whose checksum field is included verifies:
// its sum is all ones (RFC 1071 section 1).
func refValid(parts ...[]byte) bool { return refSum(parts...) == 0xffff }

// pseudo returns the pseudo-header as bytes: RFC 9293 section 3.1 for
// IPv4, RFC 8200 section 8.1 for IPv6.
func pseudo(ip []byte, proto uint8, l4len int) []byte {
	if ip[0]>>4 == 4 {
		b := make([]byte, 12)
		copy(b, ip[12:20])
		b[9] = proto
		binary.BigEndian.PutUint16(b[10:], uint16(l4len))
		return b
	}
	b := make([]byte, 40)
	copy(b, ip[8:40])
	binary.BigEndian.PutUint32(b[32:], uint32(l4len))
	b[39] = proto
	return b
}

// spec describes a super-packet to build.
type spec struct {
	v6      bool
	proto   uint8
	ipOpts  []byte // IPv4 options, a multiple of 4 bytes
	tcpOpts []byte // TCP options, a multiple of 4 bytes
	flags   uint8  // TCP flags
	seq     uint32
	urg     uint16
	id      uint16
	df      bool
	payload []byte
}

var (
	srcV4 = [4]byte{10, 1, 2, 3}
	dstV4 = [4]byte{192, 168, 200, 9}
	srcV6 = [16]byte{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xab, 0xcd}
	dstV6 = [16]byte{0x20, 0x01, 0x0d, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
)

// tsOpts is the TCP timestamp option padded the usual way (NOP NOP TS),
// which makes a 32-byte header and an MSS of 1448 on a 1500 MTU.
var tsOpts = []byte{1, 1, 8, 10, 0, 0, 0x12, 0x34, 0, 0, 0x56, 0x78}

// build returns the packet, the offset of its transport header and the
// total header length. The transport checksum field holds the
// pseudo-header sum as the kernel leaves it for NEEDS_CSUM.
func build(s spec) (pkt []byte, l4, hdr int) {
	l4hl := header.UDPMinimumSize
	if s.proto == header.ProtocolTCP {
		l4hl = header.TCPMinimumSize + len(s.tcpOpts)
	}
	l4 = header.IPv4MinimumSize + len(s.ipOpts)
	if s.v6 {
		l4 = header.IPv6MinimumSize
	}
	hdr = l4 + l4hl
	pkt = make([]byte, hdr+len(s.payload))
	copy(pkt[hdr:], s.payload)
	l4len := len(pkt) - l4
	if s.v6 {
		header.IPv6(pkt).Encode(&header.IPv6Fields{
			TrafficClass: 0x02, FlowLabel: 0x12345, PayloadLength: uint16(l4len),
			NextHeader: s.proto, HopLimit: 64, Src: srcV6, Dst: dstV6,
		})
	} else {
		var fl uint8
		if s.df {
			fl = header.IPv4FlagDontFragment
		}
		ip := header.IPv4(pkt)
		ip.Encode(&header.IPv4Fields{
			TOS: 0x02, TotalLength: uint16(len(pkt)), ID: s.id, Flags: fl, TTL: 64,
			Protocol: s.proto, Src: srcV4, Dst: dstV4, Options: s.ipOpts,
		})
		ip.SetChecksum(^refSum(pkt[:l4]))
	}
	if s.proto == header.ProtocolTCP {
		t := pkt[l4:]
		binary.BigEndian.PutUint16(t[0:], 40000)
		binary.BigEndian.PutUint16(t[2:], 443)
		binary.BigEndian.PutUint32(t[4:], s.seq)
		binary.BigEndian.PutUint32(t[8:], 0xa0b0c0d0)
		t[12] = byte(l4hl/4) << 4
		t[13] = s.flags
		binary.BigEndian.PutUint16(t[14:], 501)
		binary.BigEndian.PutUint16(t[18:], s.urg)
		copy(t[20:], s.tcpOpts)
		binary.BigEndian.PutUint16(t[16:], refSum(pseudo(pkt, s.proto, l4len)))
	} else {
		u := pkt[l4:]
		binary.BigEndian.PutUint16(u[0:], 5353)
		binary.BigEndian.PutUint16(u[2:], 4789)
		binary.BigEndian.PutUint16(u[4:], uint16(l4len))
		binary.BigEndian.PutUint16(u[6:], refSum(pseudo(pkt, s.proto, l4len)))
	}
	return pkt, l4, hdr
}

// gsoMeta returns the Meta the tun driver would fill for pkt.
func gsoMeta(s spec, l4, hdr, mss int) buffer.Meta {
	m := buffer.Meta{
		RxIf: 7, TxIf: 9, Adj: 11, VRF: 3, FlowHash: 0xdeadbeef, Trace: 5, Aux: 77,
		Flags:     buffer.FlagGSO | buffer.FlagCsumPart | buffer.FlagCsumOK | buffer.FlagTraced | buffer.FlagLocal,
		GSOSize:   uint16(mss),
		HdrLen:    uint16(hdr),
		CsumStart: uint16(l4),
	}
	switch {
	case s.proto == header.ProtocolUDP:
		m.GSOType, m.CsumOffset = typeUDPL4, header.UDPChecksumOffset
	case s.v6:
		m.GSOType, m.CsumOffset = typeTCPv6, header.TCPChecksumOffset
	default:
		m.GSOType, m.CsumOffset = typeTCPv4, header.TCPChecksumOffset
	}
	return m
}

// load copies pkt into a fresh buffer of p (large if it does not fit a
// small one) at Headroom and sets its Meta from m.
func load(t testing.TB, p *buffer.Pool, pkt []byte, m buffer.Meta) buffer.Index {
	t.Helper()
	var b buffer.Index
	var ok bool
	if len(pkt) <= buffer.SmallDataSize {
		b, ok = p.Alloc()
	} else {
		b, ok = p.AllocLarge()
	}
	if !ok {
		t.Fatal("test pool exhausted")
	}
	copy(p.Data(b)[buffer.Headroom:], pkt)
	m.Start, m.Len = buffer.Headroom, int32(len(pkt))
	*p.Meta(b) = m
	return b
}

func payloadOf(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func newRand(t testing.TB) *rand.Rand {
	return rand.New(rand.NewPCG(0x67736f, uint64(len(t.Name()))))
}

// checkSegments verifies the segments of the super-packet orig against
// everything Segment promises, independently of the code under test, and
// returns a description of the first problem or "".
func checkSegments(p *buffer.Pool, orig []byte, mss int, origMeta buffer.Meta, segs []buffer.Index) string {
	v6 := orig[0]>>4 == 6
	var l4 int
	var proto uint8
	if v6 {
		l4, proto = 40, orig[6]
		orig = orig[:40+int(binary.BigEndian.Uint16(orig[4:]))]
	} else {
		l4, proto = int(orig[0]&0xf)*4, orig[9]
		orig = orig[:binary.BigEndian.Uint16(orig[2:])]
	}
	hdr := l4 + 8
	if proto == header.ProtocolTCP {
		hdr = l4 + int(orig[l4+12]>>4)*4
	}
	payload := orig[hdr:]
	want := (len(payload) + mss - 1) / mss
	if len(segs) != want {
		return fmt.Sprintf("%d segments, want %d", len(segs), want)
	}
	var cat []byte
	for i, sb := range segs {
		m := p.Meta(sb)
		wm := origMeta
		wm.Start, wm.Len = buffer.Headroom, m.Len
		wm.Flags &^= buffer.FlagGSO | buffer.FlagCsumPart | buffer.FlagCsumOK
		wm.GSOType, wm.GSOSize, wm.HdrLen, wm.CsumStart, wm.CsumOffset = 0, 0, 0, 0, 0
		if *m != wm {
			return fmt.Sprintf("segment %d meta %+v, want %+v", i, *m, wm)
		}
		s := p.Packet(sb)
		if len(s) > hdr+mss || len(s) <= hdr {
			return fmt.Sprintf("segment %d length %d, headers %d mss %d", i, len(s), hdr, mss)
		}
		if len(s) > buffer.SmallDataSize != p.IsLarge(sb) {
			return fmt.Sprintf("segment %d of %d bytes in large buffer: %v", i, len(s), p.IsLarge(sb))
		}
		off := i * mss
		cat = append(cat, s[hdr:]...)
		// IP header.
		if v6 {
			if !bytes.Equal(s[:4], orig[:4]) || !bytes.Equal(s[6:40], orig[6:40]) {
				return fmt.Sprintf("segment %d: IPv6 header changed", i)
			}
			if int(binary.BigEndian.Uint16(s[4:])) != len(s)-40 {
				return fmt.Sprintf("segment %d: payload length %d for %d bytes", i, binary.BigEndian.Uint16(s[4:]), len(s))
			}
		} else {
			if int(binary.BigEndian.Uint16(s[2:])) != len(s) {
				return fmt.Sprintf("segment %d: total length %d for %d bytes", i, binary.BigEndian.Uint16(s[2:]), len(s))
			}
			if got, w := binary.BigEndian.Uint16(s[4:]), binary.BigEndian.Uint16(orig[4:])+uint16(i); got != w {
				return fmt.Sprintf("segment %d: IP ID %#x, want %#x", i, got, w)
			}
			if !refValid(s[:l4]) {
				return fmt.Sprintf("segment %d: bad IPv4 header checksum", i)
			}
			if !bytes.Equal(s[:2], orig[:2]) || !bytes.Equal(s[6:10], orig[6:10]) || !bytes.Equal(s[12:l4], orig[12:l4]) {
				return fmt.Sprintf("segment %d: IPv4 header changed", i)
			}
		}
		l4len := len(s) - l4
		if !refValid(pseudo(s, proto, l4len), s[l4:]) {
			return fmt.Sprintf("segment %d: bad transport checksum", i)
		}
		if proto == header.ProtocolUDP {
			if int(binary.BigEndian.Uint16(s[l4+4:])) != l4len {
				return fmt.Sprintf("segment %d: UDP length %d, want %d", i, binary.BigEndian.Uint16(s[l4+4:]), l4len)
			}
			if binary.BigEndian.Uint16(s[l4+6:]) == 0 {
				return fmt.Sprintf("segment %d: UDP checksum 0", i)
			}
			if !bytes.Equal(s[l4:l4+4], orig[l4:l4+4]) {
				return fmt.Sprintf("segment %d: UDP ports changed", i)
			}
			continue
		}
		t, ot := s[l4:hdr], orig[l4:hdr]
		if got, w := binary.BigEndian.Uint32(t[4:]), binary.BigEndian.Uint32(ot[4:])+uint32(off); got != w {
			return fmt.Sprintf("segment %d: seq %d, want %d", i, got, w)
		}
		wf := ot[13]
		if i > 0 {
			wf &^= header.TCPFlagCwr
		}
		if i < len(segs)-1 {
			wf &^= header.TCPFlagFin | header.TCPFlagPsh
		}
		wurg := binary.BigEndian.Uint16(ot[18:])
		if wf&header.TCPFlagUrg != 0 {
			if int(wurg) > off {
				wurg -= uint16(off)
			} else {
				wf &^= header.TCPFlagUrg
				wurg = 0
			}
		}
		if t[13] != wf {
			return fmt.Sprintf("segment %d: TCP flags %#x, want %#x", i, t[13], wf)
		}
		if got := binary.BigEndian.Uint16(t[18:]); got != wurg {
			return fmt.Sprintf("segment %d: urgent pointer %d, want %d", i, got, wurg)
		}
		if !bytes.Equal(t[:4], ot[:4]) || !bytes.Equal(t[8:13], ot[8:13]) || !bytes.Equal(t[14:16], ot[14:16]) || !bytes.Equal(t[20:], ot[20:]) {
			return fmt.Sprintf("segment %d: TCP header changed", i)
		}
	}
	if !bytes.Equal(cat, payload) {
		return "concatenated payloads differ from the original"
	}
	return ""
}

// freeAll returns segs to p.
func freeAll(p *buffer.Pool, segs []buffer.Index) {
	for _, b := range segs {
		p.Free(b)
	}
}
