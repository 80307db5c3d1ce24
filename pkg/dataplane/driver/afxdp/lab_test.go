package afxdp

import (
	"encoding/binary"
	"errors"
	"net"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/test/netlab"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// testEtherType is IEEE 802 "local experimental": nothing in the kernel
// answers or generates it, so the tests can tell their frames apart.
const testEtherType = 0x88b5

// veth names inside the lab's private namespace.
const (
	vethA = "xa" // the AF_XDP side
	vethB = "xb" // the peer: AF_PACKET sender/receiver, or a second queue
)

// lab is a network namespace with a veth pair, entered by the test's
// goroutine (its OS thread) until the test ends.
type lab struct {
	ns         string
	macA, macB net.HardwareAddr
	idxA, idxB int
}

// newLab creates the namespace (netlab removes it at the end, even on
// failure), the veth pair with the given MTU (0: default), and moves the
// calling goroutine's thread into the namespace: AF_XDP, AF_PACKET and
// netlink sockets, and XDP attachments by ifindex, belong to the namespace
// of the thread that creates them.
func newLab(t testing.TB, mtu int) *lab {
	t.Helper()
	netlab.Require(t)
	l := &lab{ns: netlab.Netns(t, "vnxdp")}
	// No IPv6: router solicitations and MLD reports would show up among
	// the frames the tests count.
	for _, k := range []string{"all", "default"} {
		if out, err := netlab.InNetns(l.ns, "sysctl", "-qw", "net.ipv6.conf."+k+".disable_ipv6=1"); err != nil {
			t.Logf("disable ipv6 (%s): %v %s", k, err, out)
		}
	}
	netlab.MustRun(t, "ip", "-n", l.ns, "link", "add", vethA, "type", "veth", "peer", "name", vethB)
	for _, dev := range []string{vethA, vethB} {
		if mtu != 0 {
			netlab.MustRun(t, "ip", "-n", l.ns, "link", "set", dev, "mtu", strconv.Itoa(mtu))
		}
		netlab.MustRun(t, "ip", "-n", l.ns, "link", "set", dev, "up")
	}
	enterNetns(t, l.ns)
	for _, x := range []struct {
		name string
		mac  *net.HardwareAddr
		idx  *int
	}{{vethA, &l.macA, &l.idxA}, {vethB, &l.macB, &l.idxB}} {
		ifi, err := net.InterfaceByName(x.name)
		if err != nil {
			t.Fatal(err)
		}
		*x.mac, *x.idx = ifi.HardwareAddr, ifi.Index
	}
	return l
}

// enterNetns locks the calling goroutine to its thread and moves the thread
// into ns until the test ends.
func enterNetns(t testing.TB, ns string) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	target, err := netns.GetFromName(ns)
	if err != nil {
		orig.Close()
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		orig.Close()
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		defer orig.Close()
		if err := netns.Set(orig); err != nil {
			// Stay locked: the thread dies with the goroutine instead of
			// running other goroutines in the wrong namespace.
			t.Errorf("restore netns: %v", err)
			return
		}
		runtime.UnlockOSThread()
	})
}

// attachRedirect attaches to ifindex an XDP program that redirects every
// frame to the AF_XDP socket at index ctx->rx_queue_index of its XSKMAP
// (what package uplinkfilter does for the frames it selects), native mode
// if the driver has it, else generic. It returns the map and the mode.
func attachRedirect(t testing.TB, ifindex int) (*ebpf.Map, string) {
	return attachRedirectMode(t, ifindex, false)
}

// attachRedirectMode is attachRedirect, in generic mode only with generic.
func attachRedirectMode(t testing.TB, ifindex int, generic bool) (*ebpf.Map, string) {
	t.Helper()
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.XSKMap, KeySize: 4, ValueSize: 4, MaxEntries: 8})
	if err != nil {
		t.Fatalf("XSKMAP: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:    "xsk_redirect",
		Type:    ebpf.XDP,
		License: "GPL",
		Instructions: asm.Instructions{
			// r2 = ctx->rx_queue_index (struct xdp_md: data, data_end,
			// data_meta, ingress_ifindex, rx_queue_index)
			asm.LoadMem(asm.R2, asm.R1, 16, asm.Word),
			asm.LoadMapPtr(asm.R1, m.FD()),
			// The low bits of flags are the action when the map has no
			// socket at that index: pass to the kernel.
			asm.Mov.Imm(asm.R3, 2), // XDP_PASS
			asm.FnRedirectMap.Call(),
			asm.Return(),
		},
	})
	if err != nil {
		t.Fatalf("XDP program: %v", err)
	}
	t.Cleanup(func() { prog.Close() })
	var lk link.Link
	err = errors.New("not tried")
	mode := "native"
	if !generic {
		lk, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: link.XDPDriverMode})
	}
	if err != nil {
		mode = "generic"
		var err2 error
		lk, err2 = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: link.XDPGenericMode})
		if err2 != nil {
			t.Fatalf("attach XDP: native: %v; generic: %v", err, err2)
		}
	}
	t.Cleanup(func() { lk.Close() })
	return m, mode
}

// register puts q into xskmap at its queue index, as uplinkfilter does.
func register(t testing.TB, m *ebpf.Map, queueID int, q *Queue) {
	t.Helper()
	if err := m.Put(uint32(queueID), uint32(q.FD())); err != nil {
		t.Fatalf("XSKMAP put: %v", err)
	}
}

// openQueue opens queue 0 of ifname and closes it when the test ends.
func openQueue(t testing.TB, ifname string, opts Options) *Queue {
	t.Helper()
	q, err := Open(ifname, 0, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := q.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return q
}

// testFrame returns frame seq of a test: Ethernet to dst from src with
// testEtherType, a 4-byte sequence number and a pattern derived from it,
// size bytes long in all (at least 18).
func testFrame(dst, src net.HardwareAddr, seq uint32, size int) []byte {
	f := make([]byte, size)
	copy(f[0:6], dst)
	copy(f[6:12], src)
	binary.BigEndian.PutUint16(f[12:14], testEtherType)
	binary.BigEndian.PutUint32(f[14:18], seq)
	for i := 18; i < size; i++ {
		f[i] = byte(seq*7 + uint32(i))
	}
	return f
}

// frameSeq returns the sequence number of a test frame, or false for any
// other frame.
func frameSeq(f []byte) (uint32, bool) {
	if len(f) < 18 || binary.BigEndian.Uint16(f[12:14]) != testEtherType {
		return 0, false
	}
	return binary.BigEndian.Uint32(f[14:18]), true
}

// packetSocket opens an AF_PACKET socket bound to ifindex. With recv it
// receives every frame (ETH_P_ALL) into a 4 MiB buffer, and reads time out
// after a second.
func packetSocket(t testing.TB, ifindex int, recv bool) int {
	t.Helper()
	proto := 0
	if recv {
		proto = int(htons(unix.ETH_P_ALL))
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: ifindex}); err != nil {
		t.Fatal(err)
	}
	if recv {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20)
		tv := unix.NsecToTimeval(int64(time.Second))
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			t.Fatal(err)
		}
	}
	return fd
}

// sendFrames sends frames out of ifindex through AF_PACKET socket fd.
func sendFrames(t testing.TB, fd, ifindex int, frames [][]byte) {
	t.Helper()
	sa := &unix.SockaddrLinklayer{Ifindex: ifindex, Protocol: htons(testEtherType)}
	for i, f := range frames {
		for {
			err := unix.Sendto(fd, f, 0, sa)
			if errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.EAGAIN) {
				time.Sleep(time.Millisecond)
				continue
			}
			if err != nil {
				t.Fatalf("send frame %d (%d bytes): %v", i, len(f), err)
			}
			break
		}
	}
}

// recvTestFrames reads frames from AF_PACKET socket fd until it has n test
// frames (others, and our own outgoing ones, are skipped) or a read times
// out.
func recvTestFrames(t testing.TB, fd, n int) [][]byte {
	t.Helper()
	var got [][]byte
	buf := make([]byte, 1<<16)
	for len(got) < n {
		m, from, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			t.Fatalf("after %d of %d frames: recv: %v", len(got), n, err)
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		if _, ok := frameSeq(buf[:m]); ok {
			got = append(got, append([]byte(nil), buf[:m]...))
		}
	}
	return got
}

// receiveN receives from q into p until it has n frames or timeout passes
// without progress, sleeping in poll(2) on q.FD() when the ring is empty
// (which also proves FD() signals readability). It returns the packets'
// bytes (copies) in order and frees the buffers.
func receiveN(t testing.TB, q *Queue, p *buffer.Pool, n int, timeout time.Duration) [][]byte {
	t.Helper()
	var got [][]byte
	out := make([]buffer.Index, 64)
	for len(got) < n {
		k := q.Receive(p, out)
		for _, b := range out[:k] {
			got = append(got, append([]byte(nil), p.Packet(b)...))
			p.Free(b)
		}
		if k > 0 {
			continue
		}
		pfd := []unix.PollFd{{Fd: int32(q.FD()), Events: unix.POLLIN}}
		r, err := unix.Poll(pfd, int(timeout/time.Millisecond))
		if err != nil && !errors.Is(err, unix.EINTR) {
			t.Fatalf("poll: %v", err)
		}
		if r == 0 {
			break
		}
	}
	return got
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
