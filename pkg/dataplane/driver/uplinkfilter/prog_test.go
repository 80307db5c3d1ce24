package uplinkfilter

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/cilium/ebpf"
)

func requireBPF(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (loads BPF programs)")
	}
}

// testSet is a Set with, next to its production programs, an XDP variant
// whose "ours" tail returns XDP_TX: the production XDP program returns
// XDP_PASS for every frame when no AF_XDP socket is in the map, so a
// test-run could not tell ours from not ours. The variant comes out of the
// same emitter on the same maps; only the tail differs.
type testSet struct {
	*Set
	xdpTest *ebpf.Program
}

func newTestSet(t testing.TB, queues int) *testSet {
	t.Helper()
	requireBPF(t)
	s, err := New(queues)
	if err != nil {
		t.Fatalf("New: %+v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	ts := &testSet{Set: s}
	ts.xdpTest, err = s.program(kindXDP, retTail(xdpTX), retTail(xdpPass))
	if err != nil {
		t.Fatalf("load XDP test variant: %+v", err)
	}
	t.Cleanup(func() { ts.xdpTest.Close() })
	return ts
}

// runXDP test-runs an XDP program on frame. ok is false when the kernel
// cannot run it: it refuses packet data shorter than an Ethernet header
// (even behind XDP metadata, on Linux 6.18).
func runXDP(p *ebpf.Program, frame []byte) (ret uint32, ok bool, err error) {
	if len(frame) < ethHdrLen {
		return 0, false, nil
	}
	ret, err = p.Run(&ebpf.RunOptions{Data: frame})
	return ret, true, err
}

// runTC test-runs a tc program on frame, which the kernel hands the
// program from the Ethernet header on. ok is false when the kernel cannot
// run it: it refuses data shorter than an Ethernet header, and (Linux 6.18)
// an IPv4 or IPv6 EtherType followed by less than the fixed IP header.
func runTC(p *ebpf.Program, frame []byte) (ret uint32, ok bool, err error) {
	if len(frame) < ethHdrLen {
		return 0, false, nil
	}
	switch binary.BigEndian.Uint16(frame[ethTypeOff:]) {
	case etherTypeIPv4:
		if len(frame) < ethHdrLen+ipv4MinHdrLen {
			return 0, false, nil
		}
	case etherTypeIPv6:
		if len(frame) < ethHdrLen+ipv6HdrLen {
			return 0, false, nil
		}
	}
	ret, err = p.Run(&ebpf.RunOptions{Data: frame})
	return ret, true, err
}

// runSocket test-runs a socket filter on frame. The test-run of a socket
// filter calls eth_type_trans on the data and leaves skb->data at the
// network header, while AF_PACKET runs the filter of a SOCK_RAW socket with
// skb->data at the Ethernet header. So the frame is preceded by a dummy
// Ethernet header for eth_type_trans to pull: the program then sees the
// frame exactly as on a packet socket, from its Ethernet header, with
// skb->len its length. The dummy EtherType is a local experimental one
// (IEEE 802 0x88B5), so the kernel does not parse the frame as IP.
func runSocket(p *ebpf.Program, frame []byte) (uint32, error) {
	data := append(eth(0x88B5, nil), frame...)
	return p.Run(&ebpf.RunOptions{Data: data})
}

// verdict is what the programs decided on a frame; xdpRan and tcRan are
// false when the kernel cannot test-run that program on the frame (the
// socket filter always runs, see runSocket).
type verdict struct {
	xdp, xdpRan, tc, tcRan, sock bool
}

// verdicts runs the three programs (the XDP test variant) on frame, or
// returns an error if a return code is not one of the two of its program.
func (ts *testSet) verdicts(frame []byte) (v verdict, err error) {
	r, ran, err := runXDP(ts.xdpTest, frame)
	if err != nil {
		return v, fmt.Errorf("xdp: %w", err)
	}
	if v.xdpRan = ran; ran {
		switch r {
		case xdpTX:
			v.xdp = true
		case xdpPass:
		default:
			return v, fmt.Errorf("xdp returned %d", r)
		}
	}
	r, ran, err = runTC(ts.tc, frame)
	if err != nil {
		return v, fmt.Errorf("tc: %w", err)
	}
	if v.tcRan = ran; ran {
		switch int32(r) {
		case tcxDrop:
			v.tc = true
		case tcxNext:
		default:
			return v, fmt.Errorf("tc returned %d", int32(r))
		}
	}
	r, err = runSocket(ts.sock, frame)
	if err != nil {
		return v, fmt.Errorf("socket filter: %w", err)
	}
	switch r {
	case 0xFFFFFFFF:
		v.sock = true
	case sockDrop:
	default:
		return v, fmt.Errorf("socket filter returned %#x", r)
	}
	return v, nil
}

// check compares the programs' verdicts on frame with want.
func (ts *testSet) check(frame []byte, want bool) error {
	v, err := ts.verdicts(frame)
	if err != nil {
		return err
	}
	var errs []error
	if v.xdpRan && v.xdp != want {
		errs = append(errs, fmt.Errorf("xdp says %v", v.xdp))
	}
	if v.tcRan && v.tc != want {
		errs = append(errs, fmt.Errorf("tc says %v", v.tc))
	}
	if v.sock != want {
		errs = append(errs, fmt.Errorf("socket filter says %v", v.sock))
	}
	return errors.Join(errs...)
}

func TestProgramsMatchDecide(t *testing.T) {
	ts := newTestSet(t, 1)
	if err := ts.Update(tableFilter); err != nil {
		t.Fatal(err)
	}
	var xdpRuns, tcRuns, ours int
	cases := decisionCases()
	for _, c := range cases {
		if err := ts.check(c.frame, c.want); err != nil {
			t.Errorf("%s (want ours=%v): %v\nframe % x", c.name, c.want, err, c.frame)
		}
		v, _ := ts.verdicts(c.frame)
		if v.xdpRan {
			xdpRuns++
		}
		if v.tcRan {
			tcRuns++
		}
		if c.want {
			ours++
		}
	}
	// Only the short frames may be skipped.
	t.Logf("%d cases (%d ours): xdp ran %d, tc %d, socket filter %d", len(cases), ours, xdpRuns, tcRuns, len(cases))
	if xdpRuns < len(cases)-4 || tcRuns < len(cases)-8 {
		t.Errorf("too few test-runs: xdp %d, tc %d of %d", xdpRuns, tcRuns, len(cases))
	}
}

// With nothing in the maps nothing is ours, whatever the frame.
func TestProgramsEmptyFilter(t *testing.T) {
	ts := newTestSet(t, 1)
	for _, c := range decisionCases() {
		if err := ts.check(c.frame, false); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

// The production XDP program, with no AF_XDP socket in the map, passes
// everything: bpf_redirect_map falls back to its flags argument.
func TestXDPWithoutSocketPasses(t *testing.T) {
	ts := newTestSet(t, 1)
	if err := ts.Update(tableFilter); err != nil {
		t.Fatal(err)
	}
	for _, c := range decisionCases() {
		r, ran, err := runXDP(ts.xdp, c.frame)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if ran && r != xdpPass {
			t.Errorf("%s: XDP returned %d, want XDP_PASS", c.name, r)
		}
	}
}

func BenchmarkXDPProgram(b *testing.B) {
	ts := newTestSet(b, 1)
	if err := ts.Update(tableFilter); err != nil {
		b.Fatal(err)
	}
	frames := map[string][]byte{
		"vxlan": v4(ipv4Opts{dst: "192.168.1.10", proto: 17}, udp(4789, vxlanPayload)),
		"host":  v4(ipv4Opts{dst: "192.168.1.10", proto: 6}, make([]byte, 20)),
		"ipv6":  eth(0x86DD, ipv6("fd00:10:244::5", 6, nil)),
	}
	for name, fr := range frames {
		b.Run(name, func(b *testing.B) {
			// One test-run syscall runs the program b.N times in the
			// kernel, which measures the time per run: that is the
			// ns/op reported, not the syscall's set-up and copies.
			_, d, err := ts.xdp.Benchmark(fr, b.N, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(d.Nanoseconds()), "ns/op")
		})
	}
}
