package gso

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
)

// One pool serves every fuzz call: allocating 300 KiB of buffers per input
// would dominate the run. That is safe because the fuzzing engine calls a
// target sequentially within a process (parallel workers are separate
// processes), and every call checks that the pool is full on entry.
var fuzzPool = buffer.NewPool(fuzzSmall, 3)

const fuzzSmall = 64

func addSegmentSeeds(f *testing.F) {
	add := func(s spec, mss int, edit func(*buffer.Meta)) {
		pkt, l4, hdr := build(s)
		m := gsoMeta(s, l4, hdr, mss)
		if edit != nil {
			edit(&m)
		}
		f.Add(pkt, m.GSOType, m.GSOSize, m.HdrLen, m.CsumStart, m.CsumOffset, uint8(m.Flags), int8(0), int8(0), uint8(255), uint8(fuzzSmall))
	}
	pl := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*7 + 3)
		}
		return b
	}
	// Small seeds: the engine minimizes every new input byte by byte, and
	// a 64 KiB one would eat the whole fuzzing time. Small MSS values
	// still give several segments; only the jumbo seed (large buffers)
	// needs to be big.
	add(spec{proto: 6, flags: ack | psh | fin | cwr, payload: pl(500)}, 144, func(m *buffer.Meta) { m.GSOType |= typeECN })
	add(spec{proto: 6, ipOpts: []byte{1, 1, 1, 0}, tcpOpts: tsOpts, flags: ack | urg, urg: 90, payload: pl(301)}, 70, nil)
	add(spec{v6: true, proto: 6, flags: ack, payload: pl(400)}, 100, nil)
	add(spec{proto: 17, payload: pl(300)}, 147, nil)
	add(spec{v6: true, proto: 17, payload: pl(299)}, 50, func(m *buffer.Meta) { m.Flags &^= buffer.FlagCsumPart })
	add(spec{proto: 6, flags: ack, payload: pl(100)}, 9, func(m *buffer.Meta) { m.HdrLen = 1000 })
	add(spec{proto: 6, flags: ack, payload: pl(4500)}, 2100, nil)
}

// snapshot copies the part of b's buffer that a packet of n bytes at
// Headroom can reach once the fuzzer has moved Start by up to 127 bytes
// and grown Len by up to 127 more: copying the whole 68 KiB buffer on
// every call would slow fuzzing down for nothing.
func snapshot(p *buffer.Pool, b buffer.Index, n int) []byte {
	d := p.Data(b)
	return append([]byte(nil), d[:min(len(d), buffer.Headroom+n+2*128)]...)
}

// FuzzSegment feeds arbitrary bytes and Meta to Segment. It must never
// panic or leak a buffer, must leave its input untouched when it fails,
// and when it succeeds the segments must pass checkSegments: payloads that
// concatenate to the input's, valid IP and transport checksums, correct
// lengths, sequence numbers, IDs and flags.
func FuzzSegment(f *testing.F) {
	addSegmentSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte, gsoType uint8, gsoSize, hdrLen, csumStart, csumOffset uint16,
		flags uint8, startAdj, lenAdj int8, outCap, smallFree uint8) {
		p := fuzzPool
		s0, l0 := p.FreeCount()
		if s0 != fuzzSmall || l0 != 3 {
			t.Fatalf("pool not full at start: %d/%d", s0, l0)
		}
		// Make only smallFree small buffers available.
		var held [fuzzSmall]buffer.Index
		nHeld := fuzzSmall - min(int(smallFree), fuzzSmall)
		for i := range nHeld {
			held[i], _ = p.Alloc()
		}
		defer func() {
			for _, x := range held[:nHeld] {
				p.Free(x)
			}
		}()

		if len(data) > buffer.LargeDataSize {
			data = data[:buffer.LargeDataSize]
		}
		b, _ := p.AllocLarge()
		copy(p.Data(b)[buffer.Headroom:], data)
		m := buffer.Meta{
			Start: buffer.Headroom + int32(startAdj), Len: int32(len(data)) + int32(lenAdj),
			RxIf: 1, TxIf: 2, Adj: 3, VRF: 4, FlowHash: 5, Trace: 6,
			Flags:   uint16(flags) | buffer.FlagGSO,
			GSOType: gsoType, GSOSize: gsoSize, HdrLen: hdrLen, CsumStart: csumStart, CsumOffset: csumOffset,
		}
		*p.Meta(b) = m
		before := snapshot(p, b, len(data))

		var outBuf [256]buffer.Index
		out := outBuf[:outCap]
		cnt, cerr := Count(p, b)
		n, err := Segment(p, b, out)
		if err != nil {
			if _, ok := err.(Error); !ok {
				t.Fatalf("error %v is not an Error", err)
			}
			if n != 0 {
				t.Fatalf("n = %d with error %v", n, err)
			}
			if err != ErrOutTooSmall && err != ErrNoBuffers && err != cerr {
				t.Fatalf("Segment: %v, Count: %v", err, cerr)
			}
			if *p.Meta(b) != m || !bytes.Equal(p.Data(b)[:len(before)], before) {
				t.Fatalf("failed Segment (%v) modified its input", err)
			}
			p.Free(b)
		} else {
			if cerr != nil || cnt != n {
				t.Fatalf("Segment made %d, Count said %d, %v", n, cnt, cerr)
			}
			orig := before[m.Start : m.Start+m.Len]
			if msg := checkSegments(p, orig, int(gsoSize), m, out[:n]); msg != "" {
				t.Fatal(msg)
			}
			freeAll(p, out[:n])
		}
		if s, l := p.FreeCount(); s != s0-nHeld || l != l0 {
			t.Fatalf("leak: %d/%d free, want %d/%d (err %v)", s, l, s0-nHeld, l0, err)
		}
	})
}

// FuzzFinishChecksum: never panic, never modify the input on error, and on
// success the stored checksum verifies given the pseudo-header sum that
// was in the field.
func FuzzFinishChecksum(f *testing.F) {
	for _, s := range []spec{
		{proto: 6, flags: ack, payload: []byte("hello, world")},
		{v6: true, proto: 17, payload: []byte("odd")},
	} {
		pkt, l4, _ := build(s)
		off := uint16(16)
		if s.proto == 17 {
			off = 6
		}
		f.Add(pkt, uint16(l4), off, int8(0), int8(0))
	}
	p := buffer.NewPool(1, 1)
	f.Fuzz(func(t *testing.T, data []byte, csumStart, csumOffset uint16, startAdj, lenAdj int8) {
		if len(data) > buffer.LargeDataSize {
			data = data[:buffer.LargeDataSize]
		}
		b, _ := p.AllocLarge()
		defer p.Free(b)
		copy(p.Data(b)[buffer.Headroom:], data)
		m := buffer.Meta{
			Start: buffer.Headroom + int32(startAdj), Len: int32(len(data)) + int32(lenAdj),
			Flags: buffer.FlagCsumPart, CsumStart: csumStart, CsumOffset: csumOffset,
		}
		*p.Meta(b) = m
		before := snapshot(p, b, len(data))
		if err := FinishChecksum(p, b); err != nil {
			if *p.Meta(b) != m || !bytes.Equal(p.Data(b)[:len(before)], before) {
				t.Fatalf("failed FinishChecksum (%v) modified its input", err)
			}
			return
		}
		if p.Meta(b).Flags != 0 {
			t.Fatalf("flags %#x after", p.Meta(b).Flags)
		}
		pkt := p.Data(b)[m.Start : m.Start+m.Len]
		cs, co := int(csumStart), int(csumOffset)
		field := before[int(m.Start)+cs+co : int(m.Start)+cs+co+2]
		if !refValid(field, pkt[cs:]) {
			t.Fatalf("checksum %#x does not verify", binary.BigEndian.Uint16(pkt[cs+co:]))
		}
		if !bytes.Equal(pkt[:cs+co], before[m.Start:int(m.Start)+cs+co]) || !bytes.Equal(pkt[cs+co+2:], before[int(m.Start)+cs+co+2:m.Start+m.Len]) {
			t.Fatal("bytes other than the checksum changed")
		}
	})
}
