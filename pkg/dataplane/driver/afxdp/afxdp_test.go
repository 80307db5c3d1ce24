package afxdp

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/pkg/dataplane/driver"
	"github.com/vecnet/vecnet/pkg/header"
)

// TestReceive receives frames sent into the veth peer, with the redirect
// program in native (veth's own XDP) and in generic (skb) mode, which take
// different paths into the socket (xsk_rcv and xsk_generic_rcv).
func TestReceive(t *testing.T) {
	for _, generic := range []bool{false, true} {
		name := "native"
		if generic {
			name = "generic"
		}
		t.Run(name, func(t *testing.T) { testReceive(t, generic) })
	}
}

func testReceive(t *testing.T, generic bool) {
	l := newLab(t, 0)
	q := openQueue(t, vethA, Options{})
	xsks, xdpMode := attachRedirectMode(t, l.idxA, generic)
	register(t, xsks, 0, q)
	t.Logf("veth: %s XDP, AF_XDP %s mode", xdpMode, q.Mode())

	const n = 300 // more than a Receive batch, fewer than the rx frames
	var frames [][]byte
	for i := range n {
		frames = append(frames, testFrame(l.macA, l.macB, uint32(i), 60+i*5%1455))
	}
	sendFrames(t, packetSocket(t, l.idxB, false), l.idxB, frames)

	p := buffer.NewPool(256, 0)
	got := receiveN(t, q, p, n, 2*time.Second)
	var test int
	for _, f := range got {
		seq, ok := frameSeq(f)
		if !ok {
			continue // not ours (the XDP program redirects everything)
		}
		if int(seq) != test {
			t.Fatalf("frame %d: got sequence %d", test, seq)
		}
		if !bytes.Equal(f, frames[seq]) {
			t.Fatalf("frame %d: content differs (%d bytes, want %d)", seq, len(f), len(frames[seq]))
		}
		test++
	}
	if test != n {
		t.Fatalf("received %d of %d frames", test, n)
	}
	if s, _ := p.FreeCount(); s != 256 {
		t.Errorf("pool: %d of 256 buffers free", s)
	}
	st := q.Stats()
	if st.RxFrames != uint64(len(got)) || st.RxDropped != 0 || st.TxFrames != 0 {
		t.Errorf("stats %+v, want RxFrames %d and no drops", st, len(got))
	}
}

// TestReceiveTooBig sends a frame that fits the UMEM frame but not a small
// pool buffer: Receive drops and counts it, and delivers the next one.
func TestReceiveTooBig(t *testing.T) {
	l := newLab(t, 3000)
	q := openQueue(t, vethA, Options{})
	xsks, _ := attachRedirect(t, l.idxA)
	register(t, xsks, 0, q)

	frames := [][]byte{
		testFrame(l.macA, l.macB, 0, 2500),
		testFrame(l.macA, l.macB, 1, buffer.SmallDataSize), // the largest that fits
		testFrame(l.macA, l.macB, 2, 100),
	}
	sendFrames(t, packetSocket(t, l.idxB, false), l.idxB, frames)
	p := buffer.NewPool(16, 0)
	got := receiveN(t, q, p, 2, 2*time.Second)
	if len(got) != 2 || !bytes.Equal(got[0], frames[1]) || !bytes.Equal(got[1], frames[2]) {
		t.Fatalf("got %d frames, want frames 1 and 2", len(got))
	}
	if st := q.Stats(); st.RxDropped != 1 || st.RxFrames != 2 {
		t.Errorf("stats %+v, want 2 received, 1 dropped", st)
	}
}

// TestReceivePoolExhausted: with no buffer free, Receive takes nothing and
// the frames wait in the rx ring; once buffers are back they all arrive, in
// order, none dropped.
func TestReceivePoolExhausted(t *testing.T) {
	l := newLab(t, 0)
	q := openQueue(t, vethA, Options{NumFrames: 64})
	xsks, _ := attachRedirect(t, l.idxA)
	register(t, xsks, 0, q)

	const n = 20
	p := buffer.NewPool(4, 0)
	var held []buffer.Index
	for {
		b, ok := p.Alloc()
		if !ok {
			break
		}
		held = append(held, b)
	}
	var frames [][]byte
	for i := range n {
		frames = append(frames, testFrame(l.macA, l.macB, uint32(i), 200))
	}
	sendFrames(t, packetSocket(t, l.idxB, false), l.idxB, frames)

	out := make([]buffer.Index, 16)
	deadline := time.Now().Add(2 * time.Second)
	for q.rx.avail(n) < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // wait until all are in the ring
	}
	if k := q.Receive(p, out); k != 0 {
		t.Fatalf("Receive with an empty pool returned %d", k)
	}
	if got := q.rx.avail(n); got != n {
		t.Fatalf("%d frames in the rx ring, want %d", got, n)
	}
	for _, b := range held {
		p.Free(b)
	}
	var seqs []uint32
	for len(seqs) < n {
		k := q.Receive(p, out)
		if k == 0 {
			t.Fatalf("Receive returned 0 after %d frames", len(seqs))
		}
		if k > 4 {
			t.Fatalf("Receive returned %d frames from a pool of 4", k)
		}
		for _, b := range out[:k] {
			if seq, ok := frameSeq(p.Packet(b)); ok {
				if !bytes.Equal(p.Packet(b), frames[seq]) {
					t.Errorf("frame %d: content differs", seq)
				}
				seqs = append(seqs, seq)
			}
			p.Free(b)
		}
	}
	for i, s := range seqs {
		if s != uint32(i) {
			t.Fatalf("order: %v", seqs)
		}
	}
	if st := q.Stats(); st.RxDropped != 0 {
		t.Errorf("stats %+v, want no drops", st)
	}
}

func TestTransmit(t *testing.T) {
	l := newLab(t, 0)
	q := openQueue(t, vethA, Options{})
	t.Logf("AF_XDP %s mode, XDP_MAX_TX_SKB_BUDGET set: %v", q.Mode(), q.bigBudget)
	rx := packetSocket(t, l.idxB, true)

	const n = 300
	p := buffer.NewPool(64, 0)
	var frames [][]byte
	for i := range n {
		f := testFrame(l.macB, l.macA, uint32(i), 60+i*5%1455)
		frames = append(frames, f)
		b, _ := p.Alloc()
		copy(p.Data(b)[buffer.Headroom:], f)
		p.Meta(b).Len = int32(len(f))
		if err := q.Transmit(p, b); err != nil {
			t.Fatalf("transmit %d: %v", i, err)
		}
		if i%32 == 31 || i == n-1 {
			if err := q.Flush(p); err != nil {
				t.Fatalf("flush: %v", err)
			}
		}
	}
	if s, _ := p.FreeCount(); s != 64 {
		t.Errorf("pool: %d of 64 buffers free after Transmit", s)
	}
	got := recvTestFrames(t, rx, n)
	for i, f := range got {
		if !bytes.Equal(f, frames[i]) {
			seq, _ := frameSeq(f)
			t.Fatalf("frame %d: got sequence %d / %d bytes, want %d bytes", i, seq, len(f), len(frames[i]))
		}
	}
	waitCompleted(t, q, p, n)
	if st := q.Stats(); st.TxFrames != n || st.TxDropped != 0 {
		t.Errorf("stats %+v, want TxFrames %d", st, n)
	}
}

// waitCompleted flushes until the kernel has completed n frames.
func waitCompleted(t testing.TB, q *Queue, p *buffer.Pool, n uint64) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for q.stats.txCompleted < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d frames completed", q.stats.txCompleted, n)
		}
		if err := q.Flush(p); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestTransmitFullAndTooBig: without Flush the tx frames run out and
// Transmit says ErrTxFull, leaving the buffer to the caller; Flush makes
// room again. Oversized and GSO frames are refused with ErrTooBig.
func TestTransmitFullAndTooBig(t *testing.T) {
	l := newLab(t, 0)
	q := openQueue(t, vethA, Options{NumFrames: 64, FrameSize: 2048})
	const txFrames = 32
	rx := packetSocket(t, l.idxB, true)
	p := buffer.NewPool(txFrames+8, 2)

	frame := func(seq uint32) buffer.Index {
		b, ok := p.Alloc()
		if !ok {
			t.Fatal("pool empty")
		}
		f := testFrame(l.macB, l.macA, seq, 100)
		copy(p.Data(b)[buffer.Headroom:], f)
		p.Meta(b).Len = int32(len(f))
		return b
	}
	for i := range txFrames {
		if err := q.Transmit(p, frame(uint32(i))); err != nil {
			t.Fatalf("transmit %d: %v", i, err)
		}
	}
	b := frame(txFrames)
	if err := q.Transmit(p, b); !errors.Is(err, driver.ErrTxFull) {
		t.Fatalf("transmit %d: %v, want ErrTxFull", txFrames, err)
	}
	if s, _ := p.FreeCount(); s != txFrames+8-1 {
		t.Fatalf("%d buffers free, want %d (the refused one is still ours)", s, txFrames+8-1)
	}
	if err := q.Flush(p); err != nil {
		t.Fatal(err)
	}
	waitCompleted(t, q, p, txFrames)
	if err := q.Transmit(p, b); err != nil {
		t.Fatalf("transmit after Flush: %v", err)
	}
	if err := q.Flush(p); err != nil {
		t.Fatal(err)
	}
	got := recvTestFrames(t, rx, txFrames+1)
	for i, f := range got {
		if seq, _ := frameSeq(f); seq != uint32(i) {
			t.Fatalf("frame %d has sequence %d", i, seq)
		}
	}

	big, _ := p.AllocLarge()
	p.Meta(big).Len = 2049
	if err := q.Transmit(p, big); !errors.Is(err, driver.ErrTooBig) {
		t.Errorf("2049 bytes on 2048-byte frames: %v, want ErrTooBig", err)
	}
	gso := frame(99)
	p.Meta(gso).Flags |= buffer.FlagGSO
	if err := q.Transmit(p, gso); !errors.Is(err, driver.ErrTooBig) {
		t.Errorf("GSO frame: %v, want ErrTooBig", err)
	}
	empty := frame(100)
	p.Meta(empty).Len = 0
	if err := q.Transmit(p, empty); err == nil {
		t.Errorf("empty frame accepted")
	}
	for _, b := range []buffer.Index{big, gso, empty} {
		p.Free(b) // still ours: a double free would panic
	}
}

// TestTransmitFinishesChecksum: a UDP frame with a partial checksum
// (FlagCsumPart, the pseudo-header sum in the field) leaves with a correct
// one.
func TestTransmitFinishesChecksum(t *testing.T) {
	l := newLab(t, 0)
	q := openQueue(t, vethA, Options{})
	rx := packetSocket(t, l.idxB, true)
	p := buffer.NewPool(4, 0)

	// Ethernet (test type, so the receiving kernel leaves it alone) + IPv4
	// + UDP with 100 bytes of payload.
	const l4Len = 8 + 100
	f := testFrame(l.macB, l.macA, 0, 14+20+l4Len)
	ip := f[14:34]
	src, dst := [4]byte{10, 0, 0, 1}, [4]byte{10, 0, 0, 2}
	copy(ip[12:16], src[:])
	copy(ip[16:20], dst[:])
	udp := f[34:]
	udp[4], udp[5] = 0, l4Len
	udp[6], udp[7] = 0, 0
	want := header.Fold(header.Checksum(udp, header.PseudoHeaderChecksumV4(17, src, dst, l4Len)))
	partial := ^header.Fold(header.PseudoHeaderChecksumV4(17, src, dst, l4Len)) // unfolded, uncomplemented
	udp[6], udp[7] = byte(partial>>8), byte(partial)

	b, _ := p.Alloc()
	copy(p.Data(b)[buffer.Headroom:], f)
	m := p.Meta(b)
	m.Len = int32(len(f))
	m.Flags |= buffer.FlagCsumPart
	m.CsumStart, m.CsumOffset = 20, 6
	if err := q.Transmit(p, b); err != nil {
		t.Fatal(err)
	}
	if err := q.Flush(p); err != nil {
		t.Fatal(err)
	}
	got := recvTestFrames(t, rx, 1)[0]
	if c := uint16(got[34+6])<<8 | uint16(got[34+7]); c != want {
		t.Errorf("checksum %#04x, want %#04x", c, want)
	}
}

// TestBindModes: the explicit copy mode works; forced zero-copy fails on
// veth (no AF_XDP zero-copy support) without leaking anything.
func TestBindModes(t *testing.T) {
	newLab(t, 0)
	q := openQueue(t, vethA, Options{Bind: BindCopy})
	if q.Mode() != "copy" {
		t.Errorf("BindCopy: mode %s", q.Mode())
	}
	before := countFDs(t)
	if q2, err := Open(vethB, 0, Options{Bind: BindZeroCopy}); err == nil {
		t.Logf("veth supports zero-copy: mode %s", q2.Mode())
		q2.Close()
	} else {
		t.Logf("BindZeroCopy on veth: %v", err)
	}
	if after := countFDs(t); after != before {
		t.Errorf("%d fds before, %d after a failed Open", before, after)
	}
}

func TestOpenErrors(t *testing.T) {
	newLab(t, 0)
	before := countFDs(t)
	for _, c := range []struct {
		name string
		opts Options
	}{
		{"nosuchdev", Options{}},
		{vethA, Options{NumFrames: 100}},
		{vethA, Options{NumFrames: 32}},
		{vethA, Options{FrameSize: 1000}},
	} {
		if q, err := Open(c.name, 0, c.opts); err == nil {
			q.Close()
			t.Errorf("Open(%s, %+v) succeeded", c.name, c.opts)
		}
	}
	if q, err := Open(vethA, 5, Options{}); err == nil {
		q.Close()
		t.Errorf("Open on queue 5 of a single-queue veth succeeded")
	}
	if after := countFDs(t); after != before {
		t.Errorf("%d fds before, %d after failed Opens", before, after)
	}
}

// TestCloseIdempotent: Close twice is fine, releases every fd, and the
// packet path on a closed queue is harmless.
func TestCloseIdempotent(t *testing.T) {
	newLab(t, 0)
	q, err := Open(vethA, 0, Options{}) // warm up whatever the runtime opens once
	if err != nil {
		t.Fatal(err)
	}
	q.Close()
	before := countFDs(t)
	for range 3 {
		q, err := Open(vethA, 0, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := q.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		if err := q.Close(); err != nil {
			t.Fatalf("second close: %v", err)
		}
		p := buffer.NewPool(2, 0)
		if n := q.Receive(p, make([]buffer.Index, 2)); n != 0 {
			t.Errorf("Receive on a closed queue: %d", n)
		}
		b, _ := p.Alloc()
		p.Meta(b).Len = 60
		if err := q.Transmit(p, b); err == nil {
			t.Errorf("Transmit on a closed queue succeeded")
		}
		if err := q.Flush(p); err == nil {
			t.Errorf("Flush on a closed queue succeeded")
		}
		_ = q.Stats()
	}
	if after := countFDs(t); after != before {
		t.Errorf("%d fds before, %d after", before, after)
	}
}

func countFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestZeroAllocs: Transmit, Flush and Receive allocate nothing.
func TestZeroAllocs(t *testing.T) {
	l := newLab(t, 0)
	qa := openQueue(t, vethA, Options{NumFrames: 256})
	qb := openQueue(t, vethB, Options{NumFrames: 256})
	xsks, _ := attachRedirect(t, l.idxA)
	register(t, xsks, 0, qa)
	p := buffer.NewPool(256, 0)
	f := testFrame(l.macA, l.macB, 1, 1000)
	out := make([]buffer.Index, 64)
	var received int
	allocs := testing.AllocsPerRun(200, func() {
		for range 16 {
			b, _ := p.Alloc()
			copy(p.Data(b)[buffer.Headroom:], f)
			p.Meta(b).Len = int32(len(f))
			if qb.Transmit(p, b) != nil {
				p.Free(b)
			}
		}
		_ = qb.Flush(p)
		k := qa.Receive(p, out)
		received += k
		for _, b := range out[:k] {
			p.Free(b)
		}
		_ = qa.Stats()
	})
	if allocs != 0 {
		t.Errorf("%v allocations per batch", allocs)
	}
	if received == 0 {
		t.Errorf("nothing received: the loop did not exercise Receive")
	}
}
