package afpacket

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/pkg/dataplane/driver"
	"github.com/vecnet/vecnet/test/netlab"
	"golang.org/x/sys/unix"
)

func TestReceive(t *testing.T) {
	l := newLab(t)
	q := openQueues(t, l.nsA, ifA, Options{})[0]
	peer := rawSocket(t, l.nsB, ifB, false)
	p := buffer.NewPool(256, 4)

	var sent [][]byte
	for i, n := range []int{1, 18, 100, 1000, 1472} {
		payload := bytes.Repeat([]byte{byte(i + 1)}, n)
		sent = append(sent, udpFrame(l.macA, l.macB, l.ipB, l.ipA, 40000+uint16(i), testPort, payload))
	}
	// A tagged frame: the kernel moves the tag into skb metadata before
	// packet sockets see it; Receive must put it back.
	sent = append(sent, vlanTag(udpFrame(l.macA, l.macB, l.ipB, l.ipA, 39999, testPort, []byte("tagged")), 0x2064))
	for _, f := range sent {
		send(t, peer, f)
	}
	got := collect(t, []*Queue{q}, p, isTestUDP, len(sent), 5*time.Second)
	if len(got) != len(sent) {
		t.Fatalf("received %d of %d frames", len(got), len(sent))
	}
	for i, f := range got {
		if !bytes.Equal(f.data, sent[i]) {
			t.Errorf("frame %d differs:\n got % x\nwant % x", i, f.data, sent[i])
		}
		if f.meta.Flags&buffer.FlagGSO != 0 || f.meta.Start != buffer.Headroom {
			t.Errorf("frame %d: meta %+v", i, f.meta)
		}
	}
	if s, _ := p.FreeCount(); s != 256 {
		t.Errorf("pool leaked: %d of 256 small buffers free", s)
	}
	if st := q.Stats(); st.RxFrames < uint64(len(sent)) || st.RxDropped != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestReceiveOffloadInjected sends super-packets with a virtio-net header from
// the peer and checks that they arrive whole with the header mapped to Meta.
func TestReceiveOffloadInjected(t *testing.T) {
	l := newLab(t)
	q := openQueues(t, l.nsA, ifA, Options{})[0]
	peer := rawSocket(t, l.nsB, ifB, true)
	p := buffer.NewPool(64, 4)

	tcp := tcpSuper(l.macA, l.macB, l.ipB, l.ipA, 30000)
	send(t, peer, append(vnetHdr(vnetFlagNeedsCsum, VnetGSOTCPv4, 54, 1448, 34, 16), tcp...))
	payload := bytes.Repeat([]byte("0123456789"), 1000)
	udp := udpSuper(l.macA, l.macB, l.ipB, l.ipA, testPort, payload)
	send(t, peer, append(vnetHdr(vnetFlagNeedsCsum, VnetGSOUDPL4, 42, 1200, 34, 6), udp...))
	// A small frame with a partial checksum and no GSO.
	small := udpSuper(l.macA, l.macB, l.ipB, l.ipA, testPort, []byte("partial"))
	send(t, peer, append(vnetHdr(vnetFlagNeedsCsum, VnetGSONone, 0, 0, 34, 6), small...))

	isL4 := func(f []byte) bool {
		return len(f) > 34 && binary.BigEndian.Uint16(f[12:]) == unix.ETH_P_IP && (f[23] == unix.IPPROTO_TCP || f[23] == unix.IPPROTO_UDP)
	}
	got := collect(t, []*Queue{q}, p, isL4, 3, 5*time.Second)
	if len(got) != 3 {
		t.Fatalf("received %d of 3 frames", len(got))
	}
	want := []struct {
		frame []byte
		meta  buffer.Meta
	}{
		{tcp, buffer.Meta{Flags: buffer.FlagGSO | buffer.FlagCsumPart, GSOType: VnetGSOTCPv4, GSOSize: 1448, HdrLen: 40, CsumStart: 20, CsumOffset: 16}},
		{udp, buffer.Meta{Flags: buffer.FlagGSO | buffer.FlagCsumPart, GSOType: VnetGSOUDPL4, GSOSize: 1200, HdrLen: 28, CsumStart: 20, CsumOffset: 6}},
		{small, buffer.Meta{Flags: buffer.FlagCsumPart, CsumStart: 20, CsumOffset: 6}},
	}
	for i, w := range want {
		g := got[i]
		if !bytes.Equal(g.data, w.frame) {
			t.Errorf("frame %d: %d bytes, want %d, or contents differ", i, len(g.data), len(w.frame))
		}
		w.meta.Start, w.meta.Len = buffer.Headroom, int32(len(w.frame))
		if g.meta != w.meta {
			t.Errorf("frame %d meta\n got %+v\nwant %+v", i, g.meta, w.meta)
		}
	}
}

// TestReceiveGSOFromTCP runs a real TCP transfer from the peer's kernel and
// checks that the queue sees its TSO super-packets whole.
func TestReceiveGSOFromTCP(t *testing.T) {
	l := newLab(t)
	netlab.MustRun(t, "ip", "netns", "exec", l.nsB, "ethtool", "-K", ifB, "tso", "on", "gso", "on")
	q := openQueues(t, l.nsA, ifA, Options{})[0]
	p := buffer.NewPool(1024, 64)

	addr := net.JoinHostPort(l.ipA.String(), "5201")
	var ln net.Listener
	if err := inNS(l.nsA, func() (err error) { ln, err = net.Listen("tcp4", addr); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(io.Discard, c)
	}()
	var conn net.Conn
	if err := inNS(l.nsB, func() (err error) { conn, err = net.Dial("tcp4", addr); return err }); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		defer conn.Close()
		buf := make([]byte, 256<<10)
		for i := 0; i < 64; i++ {
			if _, err := conn.Write(buf); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()

	isData := func(f []byte) bool {
		return len(f) > 14+20+20 && binary.BigEndian.Uint16(f[12:]) == unix.ETH_P_IP && f[23] == unix.IPPROTO_TCP &&
			binary.BigEndian.Uint16(f[36:]) == 5201
	}
	got := collect(t, []*Queue{q}, p, func(f []byte) bool { return isData(f) && len(f) > 1514 }, 3, 10*time.Second)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 {
		t.Fatal("no super-packet seen")
	}
	for i, g := range got {
		m := g.meta
		f := g.data
		ihl := int(f[14]&0x0f) * 4
		doff := int(f[14+ihl+12]>>4) * 4
		if i < 3 {
			t.Logf("frame %d bytes: %+v", len(f), m)
		}
		if m.Flags&buffer.FlagGSO == 0 || m.GSOType&^vnetGSOECN != VnetGSOTCPv4 {
			t.Errorf("not a TCPv4 GSO frame: %+v", m)
		}
		if m.GSOSize < 1000 || int(m.GSOSize) > 1500-ihl-doff {
			t.Errorf("gso size %d is not an MSS", m.GSOSize)
		}
		if int(m.HdrLen) != ihl+doff {
			t.Errorf("HdrLen %d, want IP+TCP header %d", m.HdrLen, ihl+doff)
		}
		if m.Flags&buffer.FlagCsumPart == 0 || m.CsumStart != 20 || m.CsumOffset != 16 {
			t.Errorf("checksum offload %+v, want partial at 20+16", m)
		}
		if int(binary.BigEndian.Uint16(f[16:])) != len(f)-14 {
			t.Errorf("IP total length %d for a %d-byte frame", binary.BigEndian.Uint16(f[16:]), len(f))
		}
	}
}

func TestTransmit(t *testing.T) {
	l := newLab(t)
	q := openQueues(t, l.nsA, ifA, Options{})[0]
	peer := rawSocket(t, l.nsB, ifB, false)
	p := buffer.NewPool(256, 4)

	for i, n := range []int{1, 100, 1472} {
		f := udpFrame(l.macB, l.macA, l.ipA, l.ipB, 40000+uint16(i), testPort, bytes.Repeat([]byte{byte(i)}, n))
		if err := q.Transmit(p, put(t, p, f)); err != nil {
			t.Fatal(err)
		}
		if err := q.Flush(p); err != nil {
			t.Fatal(err)
		}
		if got := recvMatching(t, peer, isTestUDP, 5*time.Second); !bytes.Equal(got, f) {
			t.Errorf("frame %d differs:\n got % x\nwant % x", i, got, f)
		}
	}

	// One byte over the MTU: refused unless GSO.
	big := udpFrame(l.macB, l.macA, l.ipA, l.ipB, 40000, testPort, make([]byte, 1473))
	b := put(t, p, big)
	if err := q.Transmit(p, b); !errors.Is(err, driver.ErrTooBig) {
		t.Errorf("Transmit of %d bytes: %v, want ErrTooBig", len(big), err)
	}
	p.Free(b)

	if s, _ := p.FreeCount(); s != 256 {
		t.Errorf("pool leaked: %d of 256 small buffers free", s)
	}
	if st := q.Stats(); st.TxFrames != 3 || st.TxDropped != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestTransmitReceiveVLAN sends a tagged frame from one queue to another:
// the tag crosses in skb metadata and comes back into the frame.
func TestTransmitReceiveVLAN(t *testing.T) {
	l := newLab(t)
	qa := openQueues(t, l.nsA, ifA, Options{})[0]
	qb := openQueues(t, l.nsB, ifB, Options{})[0]
	p := buffer.NewPool(64, 1)
	f := vlanTag(udpFrame(l.macB, l.macA, l.ipA, l.ipB, 40000, testPort, bytes.Repeat([]byte{7}, 1472)), 0x0123)
	b := put(t, p, f)
	if err := qa.Transmit(p, b); err != nil {
		t.Fatal(err)
	}
	if err := qa.Flush(p); err != nil {
		t.Fatal(err)
	}
	got := collect(t, []*Queue{qb}, p, isTestUDP, 1, 5*time.Second)
	if len(got) != 1 || !bytes.Equal(got[0].data, f) {
		t.Fatalf("got %d frames, want the tagged frame back", len(got))
	}
}

// TestTransmitGSO sends a TCP super-packet and checks that the peer's device
// receives it whole, with the same virtio-net header.
func TestTransmitGSO(t *testing.T) {
	l := newLab(t)
	q := openQueues(t, l.nsA, ifA, Options{})[0]
	if !q.GSO() {
		t.Fatal("GSO() false on a veth")
	}
	peer := rawSocket(t, l.nsB, ifB, true)
	p := buffer.NewPool(16, 2)

	f := tcpSuper(l.macB, l.macA, l.ipA, l.ipB, 60000)
	b := put(t, p, f)
	m := p.Meta(b)
	m.Flags = buffer.FlagGSO | buffer.FlagCsumPart
	m.GSOType, m.GSOSize, m.HdrLen = VnetGSOTCPv4, 1448, 40
	m.CsumStart, m.CsumOffset = 20, 16
	if err := q.Transmit(p, b); err != nil {
		t.Fatal(err)
	}
	if err := q.Flush(p); err != nil {
		t.Fatal(err)
	}
	got := recvMatching(t, peer, func(b []byte) bool { return len(b) > vnetHdrLen+34 && b[vnetHdrLen+23] == unix.IPPROTO_TCP }, 5*time.Second)
	h, frame := got[:vnetHdrLen], got[vnetHdrLen:]
	if !bytes.Equal(frame, f) {
		t.Fatalf("peer got %d bytes, want the %d-byte super-packet", len(frame), len(f))
	}
	if want := vnetHdr(vnetFlagNeedsCsum, VnetGSOTCPv4, 54, 1448, 34, 16); !bytes.Equal(h, want) {
		t.Errorf("peer's virtio-net header % x, want % x", h, want)
	}
	if _, large := p.FreeCount(); large != 2 {
		t.Errorf("large buffer not freed")
	}
}

// TestTransmitGSOAcceptedByKernel sends a UDP super-packet to a UDP socket
// of the peer's stack, which must segment it into the datagrams it stands
// for.
func TestTransmitGSOAcceptedByKernel(t *testing.T) {
	l := newLab(t)
	q := openQueues(t, l.nsA, ifA, Options{})[0]
	p := buffer.NewPool(16, 2)

	var pc net.PacketConn
	if err := inNS(l.nsB, func() (err error) {
		pc, err = net.ListenPacket("udp4", net.JoinHostPort(l.ipB.String(), strconv.Itoa(testPort)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer pc.Close()

	const seg, nseg = 1200, 20
	payload := make([]byte, seg*nseg)
	for i := range payload {
		payload[i] = byte(i / seg)
	}
	b := put(t, p, udpSuper(l.macB, l.macA, l.ipA, l.ipB, testPort, payload))
	m := p.Meta(b)
	m.Flags = buffer.FlagGSO | buffer.FlagCsumPart
	m.GSOType, m.GSOSize, m.HdrLen = VnetGSOUDPL4, seg, 28
	m.CsumStart, m.CsumOffset = 20, 6
	if err := q.Transmit(p, b); err != nil {
		t.Fatal(err)
	}
	if err := q.Flush(p); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65536)
	for i := 0; i < nseg; i++ {
		_ = pc.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		if n != seg || buf[0] != byte(i) || buf[seg-1] != byte(i) {
			t.Fatalf("datagram %d: %d bytes starting %d", i, n, buf[0])
		}
	}
}

func TestFanout(t *testing.T) {
	l := newLab(t)
	qs := openQueues(t, l.nsA, ifA, Options{Queues: 2})
	peer := rawSocket(t, l.nsB, ifB, false)
	p := buffer.NewPool(1024, 4)

	const flows, perFlow = 64, 4
	for i := 0; i < perFlow; i++ {
		for f := 0; f < flows; f++ {
			payload := []byte{byte(f), byte(i)}
			send(t, peer, udpFrame(l.macA, l.macB, l.ipB, l.ipA, 30000+uint16(f), testPort, payload))
		}
	}
	got := collect(t, qs, p, isTestUDP, flows*perFlow, 5*time.Second)
	if len(got) != flows*perFlow {
		t.Fatalf("received %d of %d frames", len(got), flows*perFlow)
	}
	perQueue := [2]int{}
	queueOf := map[int]int{}
	next := map[int]int{}
	for _, g := range got {
		flow, seq := int(g.data[42]), int(g.data[43])
		perQueue[g.queue]++
		if q, ok := queueOf[flow]; ok && q != g.queue {
			t.Errorf("flow %d on both queues", flow)
		}
		queueOf[flow] = g.queue
		if next[flow] != seq {
			t.Errorf("flow %d: frame %d, want %d (reordered or duplicated)", flow, seq, next[flow])
		}
		next[flow] = seq + 1
	}
	t.Logf("frames per queue: %v", perQueue)
	if perQueue[0] == 0 || perQueue[1] == 0 {
		t.Errorf("all flows on one queue: %v", perQueue)
	}
}

// loadFilter loads a socket filter program.
func loadFilter(t *testing.T, insns asm.Instructions) int {
	t.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SocketFilter, License: "GPL", Instructions: insns})
	if err != nil {
		t.Fatalf("load socket filter: %v", err)
	}
	t.Cleanup(func() { prog.Close() })
	return prog.FD()
}

func TestSocketFilter(t *testing.T) {
	l := newLab(t)
	// Accept IPv4/UDP whole, drop everything else.
	fd := loadFilter(t, asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1), // LD_ABS wants the context in R6
		asm.LoadAbs(12, asm.Half),
		asm.JNE.Imm(asm.R0, unix.ETH_P_IP, "drop"),
		asm.LoadAbs(23, asm.Byte),
		asm.JNE.Imm(asm.R0, unix.IPPROTO_UDP, "drop"),
		asm.LoadMem(asm.R0, asm.R6, 0, asm.Word), // skb->len: keep it all
		asm.Return(),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("drop"),
		asm.Return(),
	})
	q := openQueues(t, l.nsA, ifA, Options{SocketFilterFD: fd})[0]
	peer := rawSocket(t, l.nsB, ifB, false)
	p := buffer.NewPool(64, 1)

	udp := udpFrame(l.macA, l.macB, l.ipB, l.ipA, 40000, testPort, []byte("pass"))
	notUDP := append([]byte(nil), udp...)
	notUDP[23] = 253 // experimental protocol
	arp := make([]byte, 42)
	ethHeader(arp, net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, l.macB, unix.ETH_P_ARP)
	for i := 0; i < 3; i++ {
		send(t, peer, notUDP)
		send(t, peer, arp)
		send(t, peer, udp)
	}
	got := collect(t, []*Queue{q}, p, nil, 4, 500*time.Millisecond)
	if len(got) != 3 {
		t.Fatalf("received %d frames, want the 3 UDP ones", len(got))
	}
	for _, g := range got {
		if !bytes.Equal(g.data, udp) {
			t.Errorf("unexpected frame % x", g.data)
		}
	}
}

// TestTruncatedDropped uses a filter that keeps 60 bytes of every frame:
// longer frames arrive truncated and must be dropped and counted.
func TestTruncatedDropped(t *testing.T) {
	l := newLab(t)
	fd := loadFilter(t, asm.Instructions{asm.Mov.Imm(asm.R0, 60), asm.Return()})
	q := openQueues(t, l.nsA, ifA, Options{SocketFilterFD: fd})[0]
	peer := rawSocket(t, l.nsB, ifB, false)
	p := buffer.NewPool(64, 1)

	short := udpFrame(l.macA, l.macB, l.ipB, l.ipA, 40000, testPort, make([]byte, 18)) // 60 bytes
	long := udpFrame(l.macA, l.macB, l.ipB, l.ipA, 40000, testPort, make([]byte, 100))
	send(t, peer, long)
	send(t, peer, short)
	send(t, peer, long)
	got := collect(t, []*Queue{q}, p, isTestUDP, 2, 500*time.Millisecond)
	if len(got) != 1 || !bytes.Equal(got[0].data, short) {
		t.Fatalf("got %d frames, want only the short one", len(got))
	}
	if st := q.Stats(); st.RxDropped != 2 || st.RxFrames != 1 {
		t.Errorf("stats %+v, want 1 received and 2 dropped", st)
	}
}

// TestPoolExhaustion: with no buffer left, frames wait in the ring, in order.
func TestPoolExhaustion(t *testing.T) {
	l := newLab(t)
	q := openQueues(t, l.nsA, ifA, Options{})[0]
	peer := rawSocket(t, l.nsB, ifB, false)

	var sent [][]byte
	for i := 0; i < 5; i++ {
		f := udpFrame(l.macA, l.macB, l.ipB, l.ipA, 40000, testPort, []byte{byte(i)})
		sent = append(sent, f)
		send(t, peer, f)
	}
	sup := tcpSuper(l.macA, l.macB, l.ipB, l.ipA, 20000)
	vpeer := rawSocket(t, l.nsB, ifB, true)
	send(t, vpeer, append(vnetHdr(vnetFlagNeedsCsum, VnetGSOTCPv4, 54, 1448, 34, 16), sup...))

	// Let the kernel retire the block(s) holding the six frames.
	time.Sleep(50 * time.Millisecond)
	small := buffer.NewPool(2, 0)
	var out [8]buffer.Index
	var got [][]byte
	for round := 0; round < 3; round++ {
		n := q.Receive(small, out[:])
		if want := min(2, 5-len(got)); n != want {
			t.Fatalf("round %d: Receive returned %d, want %d", round, n, want)
		}
		if q.Receive(small, out[n:]) != 0 {
			t.Fatal("Receive with an empty pool returned frames")
		}
		for _, b := range out[:n] {
			got = append(got, append([]byte(nil), small.Packet(b)...))
			small.Free(b)
		}
	}
	// The super-packet needs a large buffer, which this pool lacks.
	if n := q.Receive(small, out[:]); n != 0 {
		t.Fatalf("super-packet went into a pool without large buffers (%d)", n)
	}
	large := buffer.NewPool(1, 1)
	if n := q.Receive(large, out[:]); n != 1 || !bytes.Equal(large.Packet(out[0]), sup) {
		t.Fatalf("super-packet not received after a large buffer became available (%d)", n)
	}
	for i := range sent {
		if !bytes.Equal(got[i], sent[i]) {
			t.Errorf("frame %d out of order or changed", i)
		}
	}
	if st := q.Stats(); st.RxDropped != 0 || st.RxFrames != 6 {
		t.Errorf("stats %+v", st)
	}
}

func TestCloseNoLeak(t *testing.T) {
	l := newLab(t)
	before := fdCount(t)
	var qs []*Queue
	if err := inNS(l.nsA, func() (err error) { qs, err = Open(ifA, Options{Queues: 2}); return err }); err != nil {
		t.Fatal(err)
	}
	p := buffer.NewPool(4, 0)
	// A queued frame is sent by Close, and its buffer freed.
	if err := qs[0].Transmit(p, put(t, p, udpFrame(l.macB, l.macA, l.ipA, l.ipB, 1, testPort, nil))); err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		for i := 0; i < 2; i++ {
			if err := q.Close(); err != nil {
				t.Fatalf("Close #%d: %v", i+1, err)
			}
		}
	}
	if s, _ := p.FreeCount(); s != 4 {
		t.Errorf("Close leaked the queued buffer")
	}
	if qs[0].Stats().TxFrames != 1 {
		t.Errorf("queued frame not sent by Close: %+v", qs[0].Stats())
	}
	if after := fdCount(t); after != before {
		t.Errorf("%d descriptors before Open, %d after Close", before, after)
	}
	var out [4]buffer.Index
	if qs[0].Receive(p, out[:]) != 0 {
		t.Error("Receive after Close")
	}
	b, _ := p.Alloc()
	if qs[0].Transmit(p, b) == nil {
		t.Error("Transmit after Close accepted a frame")
	}

	// Failures leave nothing behind either.
	if err := inNS(l.nsA, func() error { _, err := Open("nonexistent0", Options{Queues: 2}); return err }); err == nil {
		t.Error("Open of a missing interface succeeded")
	}
	if _, err := Open(ifA, Options{BlockSize: 4096}); err == nil {
		t.Error("Open with a block too small for a super-packet succeeded")
	}
	if after := fdCount(t); after != before {
		t.Errorf("%d descriptors before, %d after failed Opens", before, after)
	}
}

func TestLinkDown(t *testing.T) {
	l := newLab(t)
	q := openQueues(t, l.nsA, ifA, Options{})[0]
	p := buffer.NewPool(4, 0)
	netlab.MustRun(t, "ip", "-n", l.nsA, "link", "set", ifA, "down")
	if err := q.Transmit(p, put(t, p, udpFrame(l.macB, l.macA, l.ipA, l.ipB, 1, testPort, nil))); err != nil {
		t.Fatal(err)
	}
	if err := q.Flush(p); !errors.Is(err, driver.ErrDown) {
		t.Errorf("Flush on a down link: %v, want ErrDown", err)
	}
	if st := q.Stats(); st.TxDropped != 1 {
		t.Errorf("stats %+v", st)
	}
	if s, _ := p.FreeCount(); s != 4 {
		t.Error("dropped buffer not freed")
	}
}

func TestGSOOnlyOnVeth(t *testing.T) {
	l := newLab(t)
	netlab.MustRun(t, "ip", "-n", l.nsA, "tuntap", "add", "dev", "tap0", "mode", "tap")
	netlab.MustRun(t, "ip", "-n", l.nsA, "link", "set", "tap0", "up")
	for _, ifname := range []string{"tap0", "lo"} {
		if q := openQueues(t, l.nsA, ifname, Options{})[0]; q.GSO() {
			t.Errorf("GSO() true on %s", ifname)
		}
	}
	if q := openQueues(t, l.nsA, ifA, Options{})[0]; !q.GSO() || q.MTU() != 1500 {
		t.Errorf("veth: GSO() %v, MTU %d", q.GSO(), q.MTU())
	}
}

// TestNoAllocs holds the packet path to zero allocations.
func TestNoAllocs(t *testing.T) {
	l := newLab(t)
	q := openQueues(t, l.nsA, ifA, Options{})[0]
	peer := rawSocket(t, l.nsB, ifB, false)
	p := buffer.NewPool(256, 2)
	f := udpFrame(l.macB, l.macA, l.ipA, l.ipB, 40000, testPort, make([]byte, 64))
	var out [64]buffer.Index

	tx := testing.AllocsPerRun(100, func() {
		for i := 0; i < 80; i++ { // crosses a batch boundary
			b, _ := p.Alloc()
			m := p.Meta(b)
			m.Len = int32(copy(p.Data(b)[m.Start:], f))
			if err := q.Transmit(p, b); err != nil {
				panic(err)
			}
		}
		if err := q.Flush(p); err != nil {
			panic(err)
		}
	})
	if tx != 0 {
		t.Errorf("Transmit+Flush: %v allocs per run", tx)
	}

	for i := 0; i < 200; i++ {
		send(t, peer, udpFrame(l.macA, l.macB, l.ipB, l.ipA, 40000, testPort, make([]byte, 64)))
	}
	time.Sleep(50 * time.Millisecond) // until the blocks are retired
	total := 0
	rx := testing.AllocsPerRun(10, func() {
		n := q.Receive(p, out[:])
		total += n
		for _, b := range out[:n] {
			p.Free(b)
		}
	})
	if rx != 0 {
		t.Errorf("Receive: %v allocs per run", rx)
	}
	if total == 0 {
		t.Error("Receive returned nothing")
	}
}

// TestIgnoresOutgoing: neither our own transmissions nor the host's show up
// as received, with one queue (PACKET_IGNORE_OUTGOING) and with a fanout
// group (PACKET_FANOUT_FLAG_IGNORE_OUTGOING, since the group's hook ignores
// the socket option).
func TestIgnoresOutgoing(t *testing.T) {
	for _, queues := range []int{1, 2} {
		t.Run(strconv.Itoa(queues), func(t *testing.T) {
			l := newLab(t)
			qs := openQueues(t, l.nsA, ifA, Options{Queues: queues})
			peer := rawSocket(t, l.nsB, ifB, false)
			p := buffer.NewPool(64, 1)
			for i, q := range qs {
				f := udpFrame(l.macB, l.macA, l.ipA, l.ipB, 40000+uint16(i), testPort, []byte("ours"))
				if err := q.Transmit(p, put(t, p, f)); err != nil {
					t.Fatal(err)
				}
				if err := q.Flush(p); err != nil {
					t.Fatal(err)
				}
				recvMatching(t, peer, isTestUDP, 5*time.Second)
			}
			// The host's own datagram to the peer.
			if err := inNS(l.nsA, func() error {
				c, err := net.Dial("udp4", net.JoinHostPort(l.ipB.String(), strconv.Itoa(testPort)))
				if err != nil {
					return err
				}
				defer c.Close()
				_, err = c.Write([]byte("host"))
				return err
			}); err != nil {
				t.Fatal(err)
			}
			recvMatching(t, peer, isTestUDP, 5*time.Second)
			if got := collect(t, qs, p, isTestUDP, 1, 200*time.Millisecond); len(got) != 0 {
				t.Errorf("received %d outgoing frames", len(got))
			}
		})
	}
}

// TestFanoutFilter: every member of a fanout group ends up with the filter.
func TestFanoutFilter(t *testing.T) {
	l := newLab(t)
	// Accept only frames whose UDP source port is even.
	fd := loadFilter(t, asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadAbs(35, asm.Byte), // low byte of the UDP source port
		asm.And.Imm(asm.R0, 1),
		asm.JNE.Imm(asm.R0, 0, "drop"),
		asm.LoadMem(asm.R0, asm.R6, 0, asm.Word),
		asm.Return(),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("drop"),
		asm.Return(),
	})
	qs := openQueues(t, l.nsA, ifA, Options{Queues: 3, SocketFilterFD: fd})
	peer := rawSocket(t, l.nsB, ifB, false)
	p := buffer.NewPool(256, 1)
	for f := 0; f < 128; f++ {
		send(t, peer, udpFrame(l.macA, l.macB, l.ipB, l.ipA, 30000+uint16(f), testPort, nil))
	}
	got := collect(t, qs, p, isTestUDP, 65, 500*time.Millisecond)
	var perQueue [3]int
	for _, g := range got {
		perQueue[g.queue]++
		if g.data[35]&1 != 0 {
			t.Errorf("queue %d received odd port %d", g.queue, binary.BigEndian.Uint16(g.data[34:]))
		}
	}
	if len(got) != 64 {
		t.Errorf("received %d frames, want the 64 with even ports", len(got))
	}
	t.Logf("frames per queue: %v", perQueue)
}

// TestRingOverflowCounted: frames the kernel could not put into a full ring
// are counted as RxDropped.
func TestRingOverflowCounted(t *testing.T) {
	l := newLab(t)
	q := openQueues(t, l.nsA, ifA, Options{BlockSize: 68 << 10, Blocks: 2})[0]
	peer := rawSocket(t, l.nsB, ifB, false)
	p := buffer.NewPool(4096, 1)
	const sent = 3000
	f := udpFrame(l.macA, l.macB, l.ipB, l.ipA, 40000, testPort, make([]byte, 100))
	for i := 0; i < sent; i++ {
		send(t, peer, f)
	}
	got := collect(t, []*Queue{q}, p, isTestUDP, sent, 300*time.Millisecond)
	st := q.Stats()
	t.Logf("%d received, stats %+v", len(got), st)
	// Nearly all of the rest must be counted as dropped; the kernel may
	// also lose a few before they reach the socket (backlog overflow on a
	// busy machine), which is not ours to count.
	if st.RxDropped == 0 || st.RxFrames+st.RxDropped > sent || st.RxFrames+st.RxDropped < sent/2 {
		t.Errorf("%d frames sent, stats %+v", sent, st)
	}
}

// TestTransmitEncapsulatedGSO: the kernel drops AF_PACKET super-packets whose
// outer header is not the one their GSO type segments (see Queue.GSO), so
// Transmit refuses them instead of losing them silently.
func TestTransmitEncapsulatedGSO(t *testing.T) {
	l := newLab(t)
	q := openQueues(t, l.nsA, ifA, Options{})[0]
	p := buffer.NewPool(4, 4)
	inner := tcpSuper(l.macB, l.macA, testIP(9), testIP(10), 30000)

	vxlan := make([]byte, 14+20+8+8+len(inner))
	ethHeader(vxlan, l.macB, l.macA, unix.ETH_P_IP)
	ipv4Header(vxlan[14:], l.ipA, l.ipB, unix.IPPROTO_UDP, 8+8+len(inner))
	binary.BigEndian.PutUint16(vxlan[34:], 40000)
	binary.BigEndian.PutUint16(vxlan[36:], 4789)
	binary.BigEndian.PutUint16(vxlan[38:], uint16(8+8+len(inner)))
	vxlan[42] = 0x08
	copy(vxlan[50:], inner)

	ipip := make([]byte, 14+20+len(inner)-14)
	ethHeader(ipip, l.macB, l.macA, unix.ETH_P_IP)
	ipv4Header(ipip[14:], l.ipA, l.ipB, unix.IPPROTO_IPIP, len(inner)-14)
	copy(ipip[34:], inner[14:])

	// VXLAN around a UDP super-packet (USO): the outer protocol matches
	// the GSO type, but the kernel would cut along the outer UDP header.
	innerUDP := udpSuper(l.macB, l.macA, testIP(9), testIP(10), 443, make([]byte, 20000))
	vxlanUDP := make([]byte, 14+20+8+8+len(innerUDP))
	copy(vxlanUDP, vxlan[:50])
	ipv4Header(vxlanUDP[14:], l.ipA, l.ipB, unix.IPPROTO_UDP, 8+8+len(innerUDP))
	binary.BigEndian.PutUint16(vxlanUDP[38:], uint16(8+8+len(innerUDP)))
	copy(vxlanUDP[50:], innerUDP)

	for _, c := range []struct {
		name    string
		frame   []byte
		inner   int // offset of the inner IP header from the outer one
		gsoType uint8
		csumOff uint16
	}{
		{"vxlan", vxlan, 20 + 8 + 8 + 14, VnetGSOTCPv4, 16},
		{"ipip", ipip, 20, VnetGSOTCPv4, 16},
		{"vxlan-uso", vxlanUDP, 20 + 8 + 8 + 14, VnetGSOUDPL4, 6},
	} {
		b := put(t, p, c.frame)
		m := p.Meta(b)
		m.Flags = buffer.FlagGSO | buffer.FlagCsumPart
		m.GSOType, m.GSOSize = c.gsoType, 1448
		m.CsumStart, m.CsumOffset = uint16(c.inner+20), c.csumOff
		m.HdrLen = m.CsumStart + 20
		if err := q.Transmit(p, b); !errors.Is(err, driver.ErrTooBig) {
			t.Errorf("%s: Transmit: %v, want ErrTooBig", c.name, err)
		}
		p.Free(b)

		// What the kernel does with it, for the record: a future kernel
		// that carries it would let Transmit accept it.
		raw := rawSocket(t, l.nsA, ifA, true)
		h := vnetHdr(vnetFlagNeedsCsum, c.gsoType, m.HdrLen+14, 1448, m.CsumStart+14, c.csumOff)
		_, err := unix.Write(raw, append(h, c.frame...))
		t.Logf("%s: kernel on sending it through AF_PACKET: %v", c.name, err)
	}
}
