package uplinkfilter

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vecnet/vecnet/pkg/dataplane/driver"
	"github.com/vecnet/vecnet/test/netlab"
)

// The attach tests build a two-namespace lab:
//
//	peer ns                          uplink ns
//	pe0 10.77.0.2/24  <-- veth -->   up0 10.77.0.1/24   (the uplink)
//	route 10.88.0.0/24 via .1        lo  10.88.0.1/32   (kernel-owned, in the
//	                                                     filter's prefix)
//
// The programs go on up0. Pings from the peer tell whether the uplink's
// kernel still gets a frame: 10.77.0.1 is host traffic (never ours), and
// 10.88.0.1 is in the filter's prefix (ours once a program takes it).
type lab struct {
	uplinkNS, peerNS string
	ifindex          int // of up0, in uplinkNS
}

const (
	hostAddr   = "10.77.0.1"
	podAddr    = "10.88.0.1"
	podPrefix  = "10.88.0.0/24"
	uplinkName = "up0"
)

var podFilter = driver.Filter{Prefixes: []netip.Prefix{netip.MustParsePrefix(podPrefix)}}

func newLab(t *testing.T) *lab {
	t.Helper()
	requireBPF(t)
	netlab.Require(t, "ping")
	l := &lab{uplinkNS: netlab.Netns(t, "vnflt"), peerNS: netlab.Netns(t, "vnflt")}
	u, p := l.uplinkNS, l.peerNS
	for _, args := range [][]string{
		{"-n", u, "link", "add", uplinkName, "type", "veth", "peer", "name", "pe0", "netns", p},
		{"-n", u, "addr", "add", hostAddr + "/24", "dev", uplinkName},
		{"-n", u, "addr", "add", podAddr + "/32", "dev", "lo"},
		{"-n", u, "link", "set", uplinkName, "up"},
		{"-n", p, "addr", "add", "10.77.0.2/24", "dev", "pe0"},
		{"-n", p, "link", "set", "pe0", "up"},
		{"-n", p, "route", "add", podPrefix, "via", hostAddr},
	} {
		netlab.MustRun(t, "ip", args...)
	}
	inNetns(t, u, func() {
		ifi, err := net.InterfaceByName(uplinkName)
		if err != nil {
			t.Fatal(err)
		}
		l.ifindex = ifi.Index
	})
	return l
}

// inNetns runs fn on an OS thread switched into namespace ns; attaching
// takes the ifindex in the calling thread's namespace.
func inNetns(t *testing.T, ns string, fn func()) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer orig.Close()
	target, err := os.Open("/var/run/netns/" + ns)
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("setns %s: %v", ns, err)
	}
	defer func() {
		// A thread that cannot go back stays locked, so the runtime
		// ends it with this goroutine instead of reusing it.
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err == nil {
			runtime.UnlockOSThread()
		} else {
			t.Errorf("setns back: %v", err)
		}
	}()
	fn()
}

// ping reports whether addr answers a ping from the peer namespace.
func (l *lab) ping(addr string) bool {
	_, err := netlab.InNetns(l.peerNS, "ping", "-c", "1", "-W", "1", "-q", addr)
	return err == nil
}

func (l *lab) mustPing(t *testing.T, addr, why string) {
	t.Helper()
	// The first ping after a change may wait for ARP: allow a retry.
	if !l.ping(addr) && !l.ping(addr) {
		t.Errorf("ping %s failed: %s", addr, why)
	}
}

func (l *lab) mustNotPing(t *testing.T, addr, why string) {
	t.Helper()
	if l.ping(addr) {
		t.Errorf("ping %s answered: %s", addr, why)
	}
}

func TestAttachXDP(t *testing.T) {
	l := newLab(t)
	s, err := New(1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	lo, err := New(1)
	if err != nil {
		t.Fatal(err)
	}
	defer lo.Close()

	inNetns(t, l.uplinkNS, func() {
		mode, err := s.AttachXDP(l.ifindex)
		if err != nil {
			t.Fatal(err)
		}
		if mode != ModeNative {
			t.Errorf("veth: mode %q, want %q", mode, ModeNative)
		}
		if _, err := s.AttachXDP(l.ifindex); err == nil {
			t.Error("second AttachXDP accepted")
		}
		// lo has no driver XDP: the fallback.
		if mode, err := lo.AttachXDP(1); err != nil || mode != ModeGeneric {
			t.Errorf("lo: mode %q, %v; want %q", mode, err, ModeGeneric)
		}
	})
	if out := netlab.MustRun(t, "ip", "-n", l.uplinkNS, "link", "show", uplinkName); !strings.Contains(out, "xdp") {
		t.Errorf("no XDP program on %s:\n%s", uplinkName, out)
	}

	l.mustPing(t, hostAddr, "host traffic with XDP attached and an empty filter")
	l.mustPing(t, podAddr, "empty filter")
	if err := s.Update(podFilter); err != nil {
		t.Fatal(err)
	}
	l.mustPing(t, podAddr, "ours, but no AF_XDP socket in the map: XDP_PASS")

	// An AF_XDP socket on the queue: frames that are ours go to it (and,
	// as it never offers buffers, are dropped there); host traffic is
	// still the kernel's.
	var xsk int
	inNetns(t, l.uplinkNS, func() { xsk = newXSK(t, l.ifindex, 0) })
	if err := s.SetSocket(0, xsk); err != nil {
		t.Fatal(err)
	}
	l.mustNotPing(t, podAddr, "ours, with an AF_XDP socket on the queue")
	l.mustPing(t, hostAddr, "host traffic with an AF_XDP socket on the queue")
	st := xskStats(t, xsk)
	if st.Rx_dropped+st.Rx_fill_ring_empty_descs == 0 {
		t.Errorf("the AF_XDP socket saw nothing: %+v", st)
	}
	t.Logf("AF_XDP socket statistics: %+v", st)
	// The production program, test-run with the socket in queue 0's
	// entry, redirects what is ours and passes the rest.
	for _, c := range []struct {
		frame []byte
		want  uint32
	}{
		{v4(ipv4Opts{dst: "10.88.0.5", proto: 6}, make([]byte, 20)), xdpRedirect},
		{v4(ipv4Opts{dst: hostAddr, proto: 6}, make([]byte, 20)), xdpPass},
	} {
		if r, _, err := runXDP(s.xdp, c.frame); err != nil || r != c.want {
			t.Errorf("test-run with a socket in the map: %d, %v; want %d", r, err, c.want)
		}
	}

	if err := s.DeleteSocket(0); err != nil {
		t.Fatal(err)
	}
	l.mustPing(t, podAddr, "socket deleted: XDP_PASS again")

	// Close detaches.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if out := netlab.MustRun(t, "ip", "-n", l.uplinkNS, "link", "show", uplinkName); strings.Contains(out, "xdp") {
		t.Errorf("XDP program left on %s after Close:\n%s", uplinkName, out)
	}
}

func TestAttachTCAndSocketFilter(t *testing.T) {
	l := newLab(t)
	s, err := New(1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	var pkt int
	inNetns(t, l.uplinkNS, func() {
		if err := s.AttachTC(l.ifindex); err != nil {
			t.Fatal(err)
		}
		if err := s.AttachTC(l.ifindex); err == nil {
			t.Error("second AttachTC accepted")
		}
		pkt = newPacketSocket(t, l.ifindex, s.SocketFilterFD())
	})

	// Empty filter: the host's traffic (ARP, ICMP) is untouched, and
	// none of it reaches the packet socket.
	l.mustPing(t, hostAddr, "host traffic with tc attached and an empty filter")
	l.mustPing(t, podAddr, "empty filter")
	if got := drain(t, pkt); len(got) != 0 {
		t.Errorf("packet socket got %d frames under an empty filter, first % x", len(got), got[0])
	}

	if err := s.Update(podFilter); err != nil {
		t.Fatal(err)
	}
	l.mustNotPing(t, podAddr, "ours: tc keeps it from the kernel")
	l.mustPing(t, hostAddr, "host traffic under the pod filter")
	frames := drain(t, pkt)
	var echoes int
	for _, f := range frames {
		if !Decide(f, &podFilter) {
			t.Errorf("packet socket got a frame that is not ours: % x", f)
			continue
		}
		if len(f) >= 34 && f[14+9] == 1 && netip.AddrFrom4([4]byte(f[30:34])).String() == podAddr {
			echoes++
		}
	}
	if echoes == 0 {
		t.Errorf("packet socket got no echo request to %s (got %d frames)", podAddr, len(frames))
	}
	t.Logf("packet socket: %d frames, %d echo requests to %s", len(frames), echoes, podAddr)

	// Close detaches: the kernel gets the prefix's traffic again.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	l.mustPing(t, podAddr, "tc program closed")
}

// newPacketSocket opens an AF_PACKET socket on ifindex with the socket
// filter attached. The filter goes on before the socket is bound to a
// protocol, so no frame is queued unfiltered.
func newPacketSocket(t *testing.T, ifindex, prog int) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ATTACH_BPF, prog); err != nil {
		t.Fatalf("SO_ATTACH_BPF: %v", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
		t.Fatal(err)
	}
	const ethPAll = unix.ETH_P_ALL<<8&0xff00 | unix.ETH_P_ALL>>8 // htons
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: ethPAll, Ifindex: ifindex}); err != nil {
		t.Fatal(err)
	}
	return fd
}

// drain returns the frames queued on a packet socket.
func drain(t *testing.T, fd int) [][]byte {
	t.Helper()
	var out [][]byte
	buf := make([]byte, 65536)
	for {
		n, _, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EAGAIN) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, append([]byte(nil), buf[:n]...))
	}
}

// newXSK opens an AF_XDP socket bound (copy mode) to queue of ifindex,
// with a UMEM and rings but no buffer ever offered on the fill ring: the
// frames redirected to it are counted and dropped, which is all the test
// needs to see.
func newXSK(t *testing.T, ifindex, queue int) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("AF_XDP socket: %v", err)
	}
	umem, err := unix.Mmap(-1, 0, 16*4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		unix.Close(fd)
		unix.Munmap(umem)
	})
	reg := unix.XDPUmemReg{Addr: uint64(uintptr(unsafe.Pointer(&umem[0]))), Len: uint64(len(umem)), Size: 4096}
	if _, _, errno := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, unix.XDP_UMEM_REG,
		uintptr(unsafe.Pointer(&reg)), unsafe.Sizeof(reg), 0); errno != 0 {
		t.Fatalf("XDP_UMEM_REG: %v", errno)
	}
	for _, opt := range []int{unix.XDP_UMEM_FILL_RING, unix.XDP_UMEM_COMPLETION_RING, unix.XDP_RX_RING} {
		if err := unix.SetsockoptInt(fd, unix.SOL_XDP, opt, 16); err != nil {
			t.Fatalf("ring %d: %v", opt, err)
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrXDP{Flags: unix.XDP_COPY, Ifindex: uint32(ifindex), QueueID: uint32(queue)}); err != nil {
		t.Fatalf("bind AF_XDP: %v", err)
	}
	return fd
}

func xskStats(t *testing.T, fd int) unix.XDPStatistics {
	t.Helper()
	var st unix.XDPStatistics
	size := uint32(unsafe.Sizeof(st))
	if _, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, unix.XDP_STATISTICS,
		uintptr(unsafe.Pointer(&st)), uintptr(unsafe.Pointer(&size)), 0); errno != 0 {
		t.Fatalf("XDP_STATISTICS: %v", errno)
	}
	return st
}
