package afxdp

import (
	"testing"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"golang.org/x/sys/unix"
)

// The benchmarks run on a veth pair, where AF_XDP works in copy mode (and
// the XDP program in native mode): they measure this driver plus the
// kernel's copy path, not what a zero-copy NIC would do. One op is one
// frame; keep -benchtime short (e.g. 200000x or 1s), the machines that run
// them are small and shared.

const benchFrameLen = 64 // minimum-size frames: per-packet cost, not bandwidth
const benchBatch = 64    // frames per Flush, a typical worker vector

// BenchmarkTransmit measures Transmit+Flush out of one queue; the peer's
// kernel drops the frames (unknown EtherType).
func BenchmarkTransmit(b *testing.B) {
	l := newLab(b, 0)
	q := openQueue(b, vethA, Options{})
	p := buffer.NewPool(512, 0)
	f := testFrame(l.macB, l.macA, 0, benchFrameLen)
	var sent, full uint64
	b.ReportAllocs()
	for b.Loop() {
		buf, _ := p.Alloc()
		copy(p.Data(buf)[buffer.Headroom:], f)
		p.Meta(buf).Len = benchFrameLen
		if err := q.Transmit(p, buf); err != nil {
			p.Free(buf)
			full++
		} else {
			sent++
		}
		if sent%benchBatch == 0 {
			_ = q.Flush(p)
		}
	}
	_ = q.Flush(p)
	b.ReportMetric(float64(sent)/b.Elapsed().Seconds(), "tx-pps")
	b.ReportMetric(float64(full), "txfull")
	// Mostly refused transmits would time the ErrTxFull path, not a send.
	if full > sent {
		b.Errorf("%d of %d transmits found the ring full", full, sent+full)
	}
}

// BenchmarkReceiveTransmit sends frames from an AF_XDP queue on one end of
// the veth to an AF_XDP queue on the other (XDP redirect) and receives them
// there: both halves of the packet path, one direction. rx-pps is the rate
// frames arrive at; lost counts frames that never did. The redirect program
// runs in native (veth) or generic (skb) XDP mode.
func BenchmarkReceiveTransmit(b *testing.B) {
	b.Run("native", func(b *testing.B) { benchReceiveTransmit(b, false) })
	b.Run("generic", func(b *testing.B) { benchReceiveTransmit(b, true) })
}

func benchReceiveTransmit(b *testing.B, generic bool) {
	l := newLab(b, 0)
	qa := openQueue(b, vethA, Options{})
	qb := openQueue(b, vethB, Options{})
	xsks, _ := attachRedirectMode(b, l.idxA, generic)
	register(b, xsks, 0, qa)

	p := buffer.NewPool(1024, 0)
	f := testFrame(l.macA, l.macB, 0, benchFrameLen)
	out := make([]buffer.Index, benchBatch)
	pfd := make([]unix.PollFd, 1)
	pfd[0] = unix.PollFd{Fd: int32(qa.FD()), Events: unix.POLLIN}
	var sent, recv, lost uint64

	// drain receives until at most keep frames are outstanding, sleeping
	// in poll(2) when the ring is empty; frames that do not come within
	// 100ms are lost.
	drain := func(keep uint64) {
		for sent-recv-lost > keep {
			k := qa.Receive(p, out)
			for _, buf := range out[:k] {
				p.Free(buf)
			}
			recv += uint64(k)
			if k > 0 {
				continue
			}
			if n, _ := unix.Poll(pfd, 100); n == 0 {
				lost = sent - recv
			}
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		buf, _ := p.Alloc()
		copy(p.Data(buf)[buffer.Headroom:], f)
		p.Meta(buf).Len = benchFrameLen
		if err := qb.Transmit(p, buf); err != nil {
			p.Free(buf)
			lost++
		}
		sent++
		if sent%benchBatch == 0 {
			_ = qb.Flush(p)
			drain(benchBatch)
		}
	}
	// The timer stopped with the loop: the rate counts what arrived
	// within it; the rest is drained only to count losses.
	b.ReportMetric(float64(recv)/b.Elapsed().Seconds(), "rx-pps")
	_ = qb.Flush(p)
	drain(0)
	b.ReportMetric(float64(lost), "lost")
	if lost > sent/100 {
		b.Errorf("lost %d of %d frames", lost, sent)
	}
}
