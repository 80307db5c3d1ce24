package gso

import (
	"encoding/binary"
	"testing"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
)

// BenchmarkSegmentTCP64K cuts the super-packet a Linux sender typically
// hands a tun with TSO on a 1500-byte path: IPv4, TCP with timestamps
// (MSS 1448) and 45 full segments, the largest multiple of the MSS under
// 64 KiB. The bytes counted are the payload, so MB/s is goodput through
// segmentation; ns/segment is the per-packet cost a worker pays.
func BenchmarkSegmentTCP64K(b *testing.B) {
	benchSegment(b, spec{proto: 6, tcpOpts: tsOpts, flags: ack | psh}, 45*1448, 1448)
}

// BenchmarkSegmentUDP64K is the USO equivalent: 44 datagrams of 1472.
func BenchmarkSegmentUDP64K(b *testing.B) {
	benchSegment(b, spec{proto: 17}, 44*1472, 1472)
}

func benchSegment(b *testing.B, s spec, n, mss int) {
	s.payload = payloadOf(newRand(b), n)
	pkt, l4, hdr := build(s)
	m := gsoMeta(s, l4, hdr, mss)
	m.Start, m.Len = buffer.Headroom, int32(len(pkt))
	p := buffer.NewPool(128, 1)
	var out [64]buffer.Index
	in, _ := p.AllocLarge()
	copy(p.Data(in)[buffer.Headroom:], pkt)
	p.Free(in)
	segs := 0
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		// Segment frees its input without touching the data, and the
		// pool hands the same large buffer back, so only Meta needs
		// restoring; copy the packet again only if that ever changes.
		x, _ := p.AllocLarge()
		if x != in {
			copy(p.Data(x)[buffer.Headroom:], pkt)
			in = x
		}
		*p.Meta(x) = m
		k, err := Segment(p, x, out[:])
		if err != nil {
			b.Fatal(err)
		}
		for _, o := range out[:k] {
			p.Free(o)
		}
		segs += k
	}
	b.ReportMetric(b.Elapsed().Seconds()*1e9/float64(segs), "ns/segment")
}

// BenchmarkFinishChecksum1500 completes the checksum of a full-sized
// TCP/IPv4 packet, the per-packet cost of sending a NEEDS_CSUM packet
// somewhere that cannot take it partial.
func BenchmarkFinishChecksum1500(b *testing.B) {
	s := spec{proto: 6, tcpOpts: tsOpts, flags: ack, payload: payloadOf(newRand(b), 1448)}
	pkt, l4, _ := build(s)
	p := buffer.NewPool(1, 0)
	x := load(b, p, pkt, buffer.Meta{})
	field := p.Packet(x)[l4+16:]
	ps := binary.BigEndian.Uint16(pkt[l4+16:])
	m := buffer.Meta{Start: buffer.Headroom, Len: int32(len(pkt)), Flags: buffer.FlagCsumPart, CsumStart: uint16(l4), CsumOffset: 16}
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for b.Loop() {
		binary.BigEndian.PutUint16(field, ps)
		*p.Meta(x) = m
		if err := FinishChecksum(p, x); err != nil {
			b.Fatal(err)
		}
	}
}
