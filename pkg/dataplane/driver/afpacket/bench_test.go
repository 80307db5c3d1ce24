package afpacket

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
)

// The benchmarks run on a veth pair, so the kernel's side of the link (veth
// transmit, the peer's receive) is part of what they measure. Keep them
// short on a shared machine, e.g.
//
//	go test -run '^$' -bench . -benchtime 300ms ./pkg/dataplane/driver/afpacket/

// otherHost is a destination MAC nobody has: the peer's stack drops such
// frames right away (PACKET_OTHERHOST), so transmit benchmarks measure our
// path and the veth, not the peer's UDP or TCP stack.
var otherHost = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x99}

// benchReceive alternates between filling the ring from the peer and
// draining it with Receive, in the benchmark's goroutine, so ns/op is the
// cost of a frame from the peer's write(2) to our buffer. The drain alone,
// the driver's cost (ring walk, copy into the pool, virtio-net header
// decode), is reported as rx-ns/frame. perFill must fit the ring even though
// the kernel retires a block every RetireTimeout while we fill.
func benchReceive(b *testing.B, frame, vnetHdr []byte, perFill int) {
	l := newLab(b)
	q := openQueues(b, l.nsA, ifA, Options{})[0]
	peer := rawSocket(b, l.nsB, ifB, vnetHdr != nil)
	msg := append(vnetHdr, frame...)
	p := buffer.NewPool(1024, 64)
	var out [64]buffer.Index
	var rx time.Duration
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	b.ResetTimer()
	for got := 0; got < b.N; {
		for i := min(perFill, b.N-got); i > 0; i-- {
			send(b, peer, msg)
		}
		time.Sleep(3 * time.Millisecond) // until the last block retires
		start := time.Now()
		for n := q.Receive(p, out[:]); n > 0; n = q.Receive(p, out[:]) {
			for _, x := range out[:n] {
				p.Free(x)
			}
			got += n
		}
		rx += time.Since(start)
	}
	b.StopTimer()
	b.ReportMetric(float64(rx.Nanoseconds())/float64(b.N), "rx-ns/frame")
	b.ReportMetric(float64(b.N)/rx.Seconds(), "rx-frames/s")
	if st := q.Stats(); st.RxDropped != 0 {
		b.Errorf("ring overflowed: %+v", st)
	}
}

func BenchmarkReceiveSmall(b *testing.B) {
	f := udpFrame(otherHost, otherHost, testIP(1), testIP(2), 40000, testPort, make([]byte, 18)) // 60 bytes
	benchReceive(b, f, nil, 4000)
}

func BenchmarkReceiveGSO(b *testing.B) {
	f := tcpSuper(otherHost, otherHost, testIP(1), testIP(2), 65000)
	hdr := vnetHdr(vnetFlagNeedsCsum, VnetGSOTCPv4, 54, 1448, 34, 16)
	benchReceive(b, f, hdr, 64)
}

// benchTransmit times Transmit of b.N copies of frame, flushed 64 at a time.
func benchTransmit(b *testing.B, frame []byte, setup func(*buffer.Meta)) {
	l := newLab(b)
	q := openQueues(b, l.nsA, ifA, Options{})[0]
	p := buffer.NewPool(256, 128)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		var x buffer.Index
		if len(frame) > buffer.SmallDataSize {
			x, _ = p.AllocLarge()
		} else {
			x, _ = p.Alloc()
		}
		m := p.Meta(x)
		// The copy stands in for the dataplane writing the frame.
		m.Len = int32(copy(p.Data(x)[m.Start:], frame))
		setup(m)
		if err := q.Transmit(p, x); err != nil {
			b.Fatal(err)
		}
	}
	if err := q.Flush(p); err != nil {
		b.Fatal(err)
	}
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "frames/s")
	if st := q.Stats(); st.TxDropped != 0 {
		b.Errorf("dropped: %+v", st)
	}
}

func BenchmarkTransmitSmall(b *testing.B) {
	f := udpFrame(otherHost, otherHost, testIP(1), testIP(2), 40000, testPort, make([]byte, 18))
	benchTransmit(b, f, func(*buffer.Meta) {})
}

func BenchmarkTransmitGSO(b *testing.B) {
	f := tcpSuper(otherHost, otherHost, testIP(1), testIP(2), 65000)
	benchTransmit(b, f, func(m *buffer.Meta) {
		m.Flags = buffer.FlagGSO | buffer.FlagCsumPart
		m.GSOType, m.GSOSize, m.HdrLen = VnetGSOTCPv4, 1448, 40
		m.CsumStart, m.CsumOffset = 20, 16
	})
}

func testIP(i byte) netip.Addr { return netip.AddrFrom4([4]byte{10, 77, 0, i}) }
