package uplinkfilter

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// The tap driver (driver/taptc) moves the dataplane's frames between the
// uplink and a tap that vecnetd reads and writes, with two tc programs:
//
//   - on the uplink's tcx ingress, the decision of this package with a
//     tail that redirects what is ours to the tap's egress, where the tap
//     queues it for vecnetd (everything else continues to the kernel);
//   - on the tap's tcx ingress (what vecnetd writes), a redirect of every
//     frame to the uplink's egress.
//
// The point is the skb: a tap carries GSO super-packets, UDP-tunnel ones
// included (virtio-net UDP tunnel GSO, Linux 6.17), so VXLAN traffic
// crosses between nodes 64 KiB at a time and is cut, if at all, by the
// NIC. AF_PACKET cannot express a tunnel's GSO, and AF_XDP has no GSO.

// tcActRedirect is what bpf_redirect returns on success (TC_ACT_REDIRECT).
const tcActRedirect = 7

// redirectTail sends the frame to ifindex's egress: bpf_redirect(ifindex,
// 0) returns TC_ACT_REDIRECT, which the program returns.
func redirectTail(ifindex int) asm.Instructions {
	return asm.Instructions{
		asm.Mov.Imm(asm.R1, int32(ifindex)),
		asm.Mov.Imm(asm.R2, 0),
		asm.FnRedirect.Call(),
		asm.Return(),
	}
}

// AttachTCRedirect attaches the two programs described above. Like
// AttachTC it attaches at the head of the uplink's tcx ingress chain.
func (s *Set) AttachTCRedirect(uplinkIfindex, tapIfindex int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	if s.tcSet {
		return errors.New("uplinkfilter: tc program already attached")
	}
	in, err := s.program(kindTC, redirectTail(tapIfindex), retTail(tcxNext))
	if err != nil {
		return err
	}
	out, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "vecnet_tap_out", Type: ebpf.SchedCLS, License: "Dual MIT/GPL",
		Instructions: redirectTail(uplinkIfindex),
	})
	if err != nil {
		in.Close()
		return fmt.Errorf("uplinkfilter: load vecnet_tap_out: %w", err)
	}
	// The links hold their own references to the programs.
	defer in.Close()
	defer out.Close()
	lOut, err := link.AttachTCX(link.TCXOptions{Interface: tapIfindex, Program: out, Attach: ebpf.AttachTCXIngress, Anchor: link.Head()})
	if err != nil {
		return fmt.Errorf("uplinkfilter: attach tcx ingress to tap ifindex %d: %w", tapIfindex, err)
	}
	lIn, err := link.AttachTCX(link.TCXOptions{Interface: uplinkIfindex, Program: in, Attach: ebpf.AttachTCXIngress, Anchor: link.Head()})
	if err != nil {
		lOut.Close()
		return fmt.Errorf("uplinkfilter: attach tcx ingress to ifindex %d: %w", uplinkIfindex, err)
	}
	s.links = append(s.links, lIn, lOut)
	s.tcSet = true
	return nil
}
