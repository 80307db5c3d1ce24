package node_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"github.com/vecnet/vecnet/pkg/dataplane/driver"
	"github.com/vecnet/vecnet/pkg/dataplane/driver/uplinkfilter"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/pkg/dataplane/tables"
	"github.com/vecnet/vecnet/pkg/header"
)

// The fuzz targets feed arbitrary bytes to the real graph as a frame
// received on the uplink (uplink-input -> ethernet-input -> ip4-input ->
// ip4-lookup -> ip4-node-local -> vxlan-decap | ipip-decap -> ...), with
// offload metadata of the fuzzer's choosing, on the node of
// TestTunnelEncapDecap. After every frame:
//
//   - nothing panicked and the pool holds as many free buffers as before;
//   - the frame left through an interface (pod tun, host tun, uplink) or a
//     drop was counted for it: nothing vanishes silently;
//   - a tunnel packet for the node address whose outer source is not a
//     tunnel peer, at any depth of nesting, produced nothing at all;
//   - what reached a pod tun is a well-formed IP packet (valid header,
//     checksum, lengths) for that pod's address, no larger than the pod's
//     MTU unless it is a GSO super-packet;
//   - what reached the host tun is a well-formed IP packet;
//   - what left through the uplink (no offloads) is at most MTU-sized,
//     fully checksummed, from the uplink's MAC, with a valid IPv4 header
//     (unless the input's partial checksum pointed into it), and a VXLAN
//     frame we sent has the I flag and a peer as destination.
//
// Frames directly addressed to a pod (not tunnelled) may reach it: the
// uplink filter steers pod prefixes to the dataplane by design.
//
// The fuzzed bytes are the headers (at most 256 bytes: Go's minimizer is
// quadratic in the input length); pad appends that many payload bytes
// (at most 8192), so that frames reach MTU, fragmentation, GSO and large
// buffer sizes without long inputs.
//
// fix selects repairs the fuzzer cannot easily make itself (it would have
// to find checksums): bit 0 our MAC as Ethernet destination, bit 1 the outer
// IPv4 total length, bit 2 the outer header checksum, bit 3 the inner IPv4
// header checksum, bit 4 the inner total length, bit 5 the UDP length.
// offload: bit 0 FlagCsumPart (csumStart, csumOffset), bit 1 FlagGSO
// (gsoType, gsoSize, hdrLen; ignored for gso_type NONE, as the drivers
// do), bit 2 FlagCsumOK. Offsets are relative to the outer L3 header, as
// drivers set them.

func FuzzVXLANDecap(f *testing.F) {
	for _, s := range tnlVXLANSeeds() {
		s.add(f)
	}
	tnlFuzz(f)
}

func FuzzIPIPDecap(f *testing.F) {
	for _, s := range tnlIPIPSeeds() {
		s.add(f)
	}
	tnlFuzz(f)
}

type tnlSeed struct {
	frame                 []byte
	pad                   uint16
	fix, offload          uint8
	csumStart, csumOffset uint16
	gsoType               uint8
	gsoSize, hdrLen       uint16
}

func (s tnlSeed) add(f *testing.F) {
	if len(s.frame) > tnlMaxFuzzBytes {
		// Headers kept, payload given as padding, lengths repaired.
		s.pad += uint16(len(s.frame) - 128)
		s.frame = s.frame[:128]
		s.fix = tnlFixAll
	}
	f.Add(s.frame, s.pad, s.fix, s.offload, s.csumStart, s.csumOffset, s.gsoType, s.gsoSize, s.hdrLen)
	if s.fix == 0 {
		// The same with every repair on, so that mutations of it keep
		// their checksums right.
		f.Add(s.frame, s.pad, uint8(tnlFixAll), s.offload, s.csumStart, s.csumOffset, s.gsoType, s.gsoSize, s.hdrLen)
	}
}

const (
	tnlFixAll       = 0x3f
	tnlMaxFuzzBytes = 256
	tnlMaxPad       = 8192
)

// tnlUplinkFilter is what vecnetd's uplink filter would hold for the
// harness's node: its pod prefixes, its node address and the VXLAN port.
var tnlUplinkFilter = driver.Filter{
	Prefixes:  []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("fd00:244::/48")},
	NodeAddrs: []netip.Addr{netip.MustParseAddr("192.0.2.1")},
	UDPPorts:  []uint16{tables.DefaultVXLANPort},
}

func tnlFuzz(f *testing.F) {
	h := newTnlHarness(f)
	h.keepLearned = false // the tables stay those of the seeds
	h.uplinkOnly = true
	type dev struct {
		d    tnlDev
		ifc  *tables.Interface
		pod  int // -1 for the host tun
		last uint64
	}
	var devs []*dev
	for i, d := range []tnlDev{h.host, h.pods[0], h.pods[1]} {
		ifc, ok := h.w.InterfaceByName(d.ifc)
		if !ok {
			f.Fatalf("no interface %s", d.ifc)
		}
		devs = append(devs, &dev{d: d, ifc: ifc, pod: i - 1})
	}
	f.Fuzz(func(t *testing.T, frame []byte, pad uint16, fix, offload uint8, csumStart, csumOffset uint16, gsoType uint8, gsoSize, hdrLen uint16) {
		if len(frame) > tnlMaxFuzzBytes {
			frame = frame[:tnlMaxFuzzBytes]
		}
		frame = append(bytes.Clone(frame), tnlPayload(int(pad)%(tnlMaxPad+1), 0x33)...)
		frame = tnlRepair(frame, fix)
		var m buffer.Meta
		if offload&1 != 0 {
			m.Flags |= buffer.FlagCsumPart
			m.CsumStart, m.CsumOffset = csumStart, csumOffset
		}
		if offload&2 != 0 && gsoType&^0x80 != 0 {
			// As the drivers decode the virtio-net header: FlagGSO only
			// with a gso_type other than NONE (ECN alone is NONE).
			m.Flags |= buffer.FlagGSO
			m.GSOType, m.GSOSize, m.HdrLen = gsoType, gsoSize, hdrLen
		}
		if offload&4 != 0 {
			m.Flags |= buffer.FlagCsumOK
		}

		// Only what the uplink filter steers to the dataplane arrives on
		// a real uplink; other frames (a stranger's packet to another
		// host, say) are the kernel's and would be routed like any
		// router routes them, which the checks below do not expect.
		if !uplinkfilter.Decide(frame, &tnlUplinkFilter) {
			return
		}
		drops := h.drops()
		h.up.rx = append(h.up.rx, tnlFrame{data: frame, meta: m})
		if !h.poll() {
			t.Fatalf("the graph did not settle")
		}
		h.resolved = h.resolved[:0]
		if len(h.up.rx) != 0 {
			t.Fatalf("the uplink frame was never received")
		}
		if s, l := h.c.Pool.FreeCount(); s != h.freeSmall || l != h.freeLarge {
			t.Fatalf("buffer leak: %d small, %d large free, want %d, %d", s, l, h.freeSmall, h.freeLarge)
		}
		outputs := 0
		var problems []string
		report := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
		for _, d := range devs {
			n := d.ifc.Counters.TxPackets.Load()
			sent := n - d.last
			d.last = n
			for i := uint64(0); i < sent; i++ {
				pkt, vh, err := d.d.dev.Recv(0)
				if err != nil {
					t.Fatalf("%s counted a packet that is not there: %v", d.d.ifc, err)
				}
				outputs++
				if err := tnlWellFormed(pkt); err != nil {
					report("%s got a malformed packet (%v): %x", d.d.ifc, err, pkt)
					continue
				}
				if d.pod < 0 {
					continue
				}
				if dst := tnlDst(pkt); dst != netip.AddrFrom4(tnlPod4[d.pod]) && dst != netip.AddrFrom16(tnlPod6[d.pod]) {
					report("%s got a packet for %v", d.d.ifc, dst)
				}
				if vh.GSOType == 0 && len(pkt) > 1500 {
					report("%s got %d bytes without GSO, MTU 1500", d.d.ifc, len(pkt))
				}
			}
		}
		for _, o := range h.sent() {
			outputs++
			if err := tnlUplinkFrameOK(o, m.Flags&buffer.FlagCsumPart != 0, m.Flags&buffer.FlagGSO != 0); err != nil {
				report("uplink frame: %v: %x", err, o.data[:min(len(o.data), 96)])
			}
		}
		if outputs == 0 && h.drops() == drops {
			report("the frame vanished: no output and no drop counted")
		}
		if outputs > 0 && tnlFromStranger(frame) {
			report("a tunnel packet from a stranger produced %d packets", outputs)
		}
		if len(problems) > 0 {
			t.Fatalf("frame %x (offload %+v):\n%s", frame[:min(len(frame), 128)], m, strings.Join(problems, "\n"))
		}
	})
}

// tnlRepair applies the repairs selected by fix (see the file comment).
func tnlRepair(f []byte, fix uint8) []byte {
	const e = header.EthernetMinSize
	if fix&1 != 0 && len(f) >= 6 {
		copy(f, tnlUpMAC[:])
	}
	if len(f) < e+header.IPv4MinimumSize || header.Ethernet(f).Type() != header.EtherTypeIPv4 || f[e]>>4 != 4 {
		return f
	}
	hl := int(f[e]&0xf) * 4
	if hl < header.IPv4MinimumSize || e+hl > len(f) {
		return f
	}
	outer := header.IPv4(f[e:])
	inner := -1 // offset of the inner IPv4 header
	switch outer.Protocol() {
	case header.ProtocolIPIP:
		inner = e + hl
	case header.ProtocolUDP:
		if fix&32 != 0 && len(f) >= e+hl+header.UDPMinimumSize {
			header.UDP(f[e+hl:]).SetLength(uint16(len(f) - e - hl))
		}
		if len(f) >= e+hl+30 && binary.BigEndian.Uint16(f[e+hl+28:]) == header.EtherTypeIPv4 {
			inner = e + hl + 30
		}
	}
	if inner >= 0 && len(f) >= inner+header.IPv4MinimumSize && f[inner]>>4 == 4 {
		ihl := int(f[inner]&0xf) * 4
		ip := header.IPv4(f[inner:])
		if fix&16 != 0 {
			ip.SetTotalLength(uint16(len(f) - inner))
		}
		if fix&8 != 0 && ihl >= header.IPv4MinimumSize && inner+ihl <= len(f) {
			ip.SetChecksum(0)
			ip.SetChecksum(header.IPv4(f[inner : inner+ihl]).CalculateChecksum())
		}
	}
	if fix&2 != 0 {
		outer.SetTotalLength(uint16(len(f) - e))
	}
	if fix&4 != 0 {
		outer.SetChecksum(0)
		outer.SetChecksum(header.IPv4(f[e : e+hl]).CalculateChecksum())
	}
	return f
}

func tnlIsPeer(a [4]byte) bool { return slices.Contains(tnlPeers, a) }

// tnlFromStranger reports whether frame, followed through the layers the
// dataplane decapsulates (tunnel packets for the node address), holds a
// tunnel packet from a source that is not a tunnel peer: no part of such a
// frame may come out anywhere.
func tnlFromStranger(frame []byte) bool {
	const e = header.EthernetMinSize
	if len(frame) < e || header.Ethernet(frame).Type() != header.EtherTypeIPv4 {
		return false
	}
	layer := frame[e:]
	for depth := 0; depth < 64; depth++ {
		if header.ValidateIPv4(layer) != header.IPv4OK || !header.IPv4(layer).IsChecksumValid() {
			return false
		}
		ip := header.IPv4(layer)
		layer = layer[:ip.TotalLength()]
		if ip.DestinationAddress() != tnlNode {
			return false
		}
		hl := ip.HeaderLength()
		proto := ip.Protocol()
		switch proto {
		case header.ProtocolIPIP, header.ProtocolIPv6:
		case header.ProtocolUDP:
			if len(layer) < hl+header.UDPMinimumSize || header.UDP(layer[hl:]).DestinationPort() != tables.DefaultVXLANPort {
				return false
			}
		default:
			return false
		}
		if !tnlIsPeer(ip.SourceAddress()) {
			return true
		}
		if ip.IsFragment() {
			return false
		}
		switch proto {
		case header.ProtocolIPIP:
			layer = layer[hl:]
		case header.ProtocolUDP:
			if len(layer) < hl+30 || binary.BigEndian.Uint16(layer[hl+28:]) != header.EtherTypeIPv4 {
				return false
			}
			layer = layer[hl+30:]
		default:
			return false // IPv6 inside: not a tunnel to the node's IPv4 address
		}
	}
	return false
}

// tnlWellFormed checks an IP packet as a pod's or the host's kernel
// would: valid header, header checksum, lengths matching the packet.
func tnlWellFormed(pkt []byte) error {
	if len(pkt) == 0 {
		return fmt.Errorf("empty")
	}
	switch pkt[0] >> 4 {
	case 4:
		if e := header.ValidateIPv4(pkt); e != header.IPv4OK {
			return fmt.Errorf("ipv4: %v", e)
		}
		ip := header.IPv4(pkt)
		if !ip.IsChecksumValid() {
			return fmt.Errorf("ipv4 header checksum")
		}
		if int(ip.TotalLength()) != len(pkt) {
			return fmt.Errorf("total length %d, packet %d", ip.TotalLength(), len(pkt))
		}
	case 6:
		if e := header.ValidateIPv6(pkt); e != header.IPv6OK {
			return fmt.Errorf("ipv6: %v", e)
		}
		if n := header.IPv6MinimumSize + int(header.IPv6(pkt).PayloadLength()); n != len(pkt) {
			return fmt.Errorf("payload length says %d bytes, packet %d", n, len(pkt))
		}
	default:
		return fmt.Errorf("version %d", pkt[0]>>4)
	}
	return nil
}

func tnlDst(pkt []byte) netip.Addr {
	if pkt[0]>>4 == 4 {
		return netip.AddrFrom4(header.IPv4(pkt).DestinationAddress())
	}
	return netip.AddrFrom16(header.IPv6(pkt).DestinationAddress())
}

// tnlUplinkFrameOK checks a frame the dataplane gave the uplink driver.
// With partial set, the input carried a partial checksum whose offsets the
// fuzzer chose: finishing it in software (the uplink has no checksum
// offload) writes wherever they point, IP headers included, exactly as the
// kernel's skb_checksum_help would; the headers are then not checked.
//
// With gso, the input was a super-packet whose HdrLen the fuzzer chose:
// the rewrite nodes size segments by that hint, so an understated one
// gives segments over the MTU (TestTunnelKnownBugs/gso-hdrlen-understated);
// the size is then not checked.
func tnlUplinkFrameOK(o tnlFrame, partial, gso bool) error {
	d := o.data
	if len(d) < header.EthernetMinSize {
		return fmt.Errorf("%d bytes", len(d))
	}
	if len(d) > header.EthernetMinSize+tnlUpMTU && !gso {
		return fmt.Errorf("%d bytes exceed the MTU %d", len(d), tnlUpMTU)
	}
	if o.meta.Flags&(buffer.FlagGSO|buffer.FlagCsumPart) != 0 {
		return fmt.Errorf("offload flags %#x on an uplink without offloads", o.meta.Flags)
	}
	eth := header.Ethernet(d)
	if eth.Src() != tnlUpMAC {
		return fmt.Errorf("source MAC %x, not the uplink's", eth.Src())
	}
	if partial {
		return nil
	}
	switch eth.Type() {
	case header.EtherTypeIPv4:
		pkt := d[header.EthernetMinSize:]
		if err := tnlWellFormed(pkt); err != nil || pkt[0]>>4 != 4 {
			return fmt.Errorf("ipv4: %v", err)
		}
		ip := header.IPv4(pkt)
		if ip.SourceAddress() != tnlNode || ip.Protocol() != header.ProtocolUDP {
			return nil
		}
		u := header.UDP(ip.Payload())
		if len(u) < header.UDPMinimumSize || u.DestinationPort() != tables.DefaultVXLANPort {
			return nil
		}
		if !tnlIsPeer(ip.DestinationAddress()) {
			return fmt.Errorf("VXLAN to %v, not a peer", netip.AddrFrom4(ip.DestinationAddress()))
		}
		if len(u) < header.UDPMinimumSize+header.VXLANSize || int(u.Length()) != len(u) || u[header.UDPMinimumSize]&header.VXLANFlagVNI == 0 {
			return fmt.Errorf("bad VXLAN encapsulation")
		}
	case header.EtherTypeIPv6:
		if err := tnlWellFormed(d[header.EthernetMinSize:]); err != nil {
			return fmt.Errorf("ipv6: %v", err)
		}
	case header.EtherTypeARP:
		// arp-input answers on the uplink too (TestTunnelKnownBugs).
	default:
		return fmt.Errorf("ethertype %#04x", eth.Type())
	}
	return nil
}

// ---- seed corpora ----

// tnlMutations derives the classic malformations from a valid frame.
func tnlMutations(f []byte) []tnlSeed {
	const e = header.EthernetMinSize
	var out []tnlSeed
	for _, n := range []int{0, 1, 13, 14, 20, 33, 34, 41, 42, 49, 50, 63, 64, len(f) - 1} {
		if n >= 0 && n < len(f) {
			out = append(out, tnlSeed{frame: bytes.Clone(f[:n])})
			// Truncated, with the lengths made consistent.
			out = append(out, tnlSeed{frame: bytes.Clone(f[:n]), fix: 0x26})
		}
	}
	for _, ihl := range []byte{0, 4, 6, 15} {
		g := bytes.Clone(f)
		g[e] = 0x40 | ihl
		out = append(out, tnlSeed{frame: g}, tnlSeed{frame: bytes.Clone(g), fix: 0x04})
	}
	// Options: NOP NOP NOP EOL after the fixed header.
	g := append(append(bytes.Clone(f[:e+20]), 1, 1, 1, 0), f[e+20:]...)
	g[e] = 0x46
	out = append(out, tnlSeed{frame: g, fix: 0x06})
	// Fragments: first (MF), later (offset 8), last.
	for _, fo := range []uint16{0x2000, 0x0001, 0x2001} {
		g := bytes.Clone(f)
		binary.BigEndian.PutUint16(g[e+6:], fo)
		out = append(out, tnlSeed{frame: g, fix: 0x04})
	}
	// Ethernet padding, broadcast destination, TTL 0 outside.
	out = append(out, tnlSeed{frame: append(bytes.Clone(f), make([]byte, 17)...)})
	g = bytes.Clone(f)
	copy(g, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	out = append(out, tnlSeed{frame: g})
	g = bytes.Clone(f)
	g[e+8] = 0
	out = append(out, tnlSeed{frame: g, fix: 0x04})
	return out
}

// tnlOffloads are the frame with typical and broken offload metadata for
// an inner TCP packet starting l bytes after the outer L3 header.
func tnlOffloads(f []byte, l uint16) []tnlSeed {
	return []tnlSeed{
		{frame: f, offload: 1, csumStart: l + 20, csumOffset: 16},
		{frame: f, offload: 3, csumStart: l + 20, csumOffset: 16, gsoType: 1, gsoSize: 500, hdrLen: l + 40},
		{frame: f, offload: 3, csumStart: l + 20, csumOffset: 16, gsoType: 1, gsoSize: 1, hdrLen: l},
		{frame: f, offload: 2, gsoType: 4, gsoSize: 1400, hdrLen: l + 60},
		{frame: f, offload: 1, csumStart: 0, csumOffset: 16},
		{frame: f, offload: 1, csumStart: 0xffff, csumOffset: 0xffff},
		{frame: f, offload: 2, gsoType: 5, gsoSize: 0, hdrLen: 0xffff},
		{frame: f, offload: 4},
	}
}

func tnlInnerSeeds() [][]byte {
	return [][]byte{
		tnlUDP4(tnlVX4, tnlPod4[0], 64, true, 5678, 1234, []byte("to pod 0")),
		tnlUDP6(tnlVX6, tnlPod6[1], 64, 5678, 1234, []byte("to pod 1")),
		tnlUDP4(tnlVX4, tnlPod4[0], 1, true, 5678, 1234, []byte("ttl 1")),                    // time exceeded, back through the tunnel
		tnlUDP6(tnlVX6, tnlPod6[0], 1, 5678, 1234, []byte("hop limit 1")),                    // ICMPv6 back through the tunnel
		tnlUDP4(tnlVX4, tnlIPIP4, 64, true, 5678, 1234, []byte("hairpin")),                   // re-encapsulated
		tnlUDP4(tnlVX4, tnlA4("192.0.2.7"), 64, true, 5678, 1234, []byte("to the underlay")), // glean: kernel resolves
		tnlUDP4(tnlVX4, tnlPeer, 64, true, 5678, 1234, []byte("to the peer itself")),         // native out of the uplink
		tnlUDP4(tnlVX4, tnlA4("10.244.7.7"), 64, true, 5678, 1234, []byte("pod prefix, no pod")),
		tnlUDP4(tnlVX4, tnlPod4[0], 64, true, 5678, 1234, tnlPayload(1600, 1)),  // too big for the pod (DF)
		tnlUDP4(tnlVX4, tnlPod4[0], 64, false, 5678, 1234, tnlPayload(1600, 1)), // fragmented for the pod
		tnlIPv4(tnlVX4, tnlNode, 64, header.ProtocolICMP, false, tnlEcho4(3)),   // to the host
		tnlTCPSuper4(tnlVX4, tnlPod4[0], true, 3000),                            // in a large buffer
		tnlTCPSuper4(tnlVX4, tnlIPIP4, false, 3000),
		tnlTCPSuper6(tnlVX6, tnlPod6[0], 3000),
	}
}

func tnlVXLANSeeds() []tnlSeed {
	var out []tnlSeed
	const l = tnlVXLANInner - header.EthernetMinSize
	for _, in := range tnlInnerSeeds() {
		et := uint16(header.EtherTypeIPv4)
		if in[0]>>4 == 6 {
			et = header.EtherTypeIPv6
		}
		f := tnlVXLAN(tnlPeer, tnlVNI, et, in)
		out = append(out, tnlSeed{frame: f})
		if len(in) > 100 {
			out = append(out, tnlOffloads(f, l)...)
		}
	}
	base := tnlVXLAN(tnlPeer, tnlVNI, header.EtherTypeIPv4, tnlInnerSeeds()[0])
	out = append(out, tnlMutations(base)...)
	inner := tnlInnerSeeds()[0]
	out = append(out,
		tnlSeed{frame: tnlVXLAN(tnlStranger, tnlVNI, header.EtherTypeIPv4, inner)},
		tnlSeed{frame: tnlVXLAN(tnlPeer, 999, header.EtherTypeIPv4, inner)},
		tnlSeed{frame: tnlVXLAN(tnlPeer, tnlLateVNI, header.EtherTypeIPv4, inner)},
		tnlSeed{frame: tnlVXLAN(tnlPeer, tnlVNI, header.EtherTypeIPv6, inner)},
		tnlSeed{frame: tnlVXLAN(tnlPeer, tnlVNI, header.EtherTypeARP, inner)},
		// Nested: a peer wrapping a stranger's VXLAN, and its own.
		tnlSeed{frame: tnlVXLAN(tnlPeer, tnlVNI, header.EtherTypeIPv4, tnlVXLAN(tnlStranger, tnlVNI, header.EtherTypeIPv4, inner)[header.EthernetMinSize:])},
		tnlSeed{frame: tnlVXLAN(tnlPeer, tnlVNI, header.EtherTypeIPv4, tnlVXLAN(tnlPeer, tnlVNI, header.EtherTypeIPv4, inner)[header.EthernetMinSize:])},
		// IP-in-IP inside VXLAN.
		tnlSeed{frame: tnlVXLAN(tnlPeer, tnlVNI, header.EtherTypeIPv4, tnlIPIP(tnlPeer, header.ProtocolIPIP, inner)[header.EthernetMinSize:])},
		// Not a tunnel: straight to a pod, and to another UDP port.
		tnlSeed{frame: tnlEth(tnlUpMAC, tnlPeerMAC, header.EtherTypeIPv4, inner)},
	)
	g := bytes.Clone(base)
	g[header.EthernetMinSize+header.IPv4MinimumSize+header.UDPMinimumSize] = 0
	out = append(out, tnlSeed{frame: g})
	g = bytes.Clone(base)
	binary.BigEndian.PutUint16(g[header.EthernetMinSize+header.IPv4MinimumSize+2:], 4790)
	out = append(out, tnlSeed{frame: g})
	return out
}

func tnlIPIPSeeds() []tnlSeed {
	var out []tnlSeed
	for _, in := range tnlInnerSeeds() {
		proto := uint8(header.ProtocolIPIP)
		if in[0]>>4 == 6 {
			proto = header.ProtocolIPv6
		}
		f := tnlIPIP(tnlPeer, proto, in)
		out = append(out, tnlSeed{frame: f})
		if len(in) > 100 {
			out = append(out, tnlOffloads(f, header.IPv4MinimumSize)...)
		}
	}
	inner := tnlInnerSeeds()[0]
	base := tnlIPIP(tnlPeer, header.ProtocolIPIP, inner)
	out = append(out, tnlMutations(base)...)
	out = append(out,
		tnlSeed{frame: tnlIPIP(tnlStranger, header.ProtocolIPIP, inner)},
		tnlSeed{frame: tnlIPIP(tnlStranger, header.ProtocolIPv6, tnlInnerSeeds()[1])},
		tnlSeed{frame: tnlIPIP(tnlPeer, header.ProtocolIPIP, tnlInnerSeeds()[1])}, // version mismatch
		tnlSeed{frame: tnlIPIP(tnlPeer, header.ProtocolIPv6, inner)},
		tnlSeed{frame: tnlIPIP(tnlPeer, header.ProtocolIPIP, nil)},
		// Nested: peer around stranger, peer around peer, VXLAN inside.
		tnlSeed{frame: tnlIPIP(tnlPeer, header.ProtocolIPIP, tnlIPIP(tnlStranger, header.ProtocolIPIP, inner)[header.EthernetMinSize:])},
		tnlSeed{frame: tnlIPIP(tnlPeer, header.ProtocolIPIP, tnlIPIP(tnlPeer, header.ProtocolIPIP, inner)[header.EthernetMinSize:])},
		tnlSeed{frame: tnlIPIP(tnlPeer, header.ProtocolIPIP, tnlVXLAN(tnlStranger, tnlVNI, header.EtherTypeIPv4, inner)[header.EthernetMinSize:])},
	)
	// Inner header with options and a bad inner IHL.
	opt := append(append(bytes.Clone(inner[:20]), 1, 1, 1, 0), inner[20:]...)
	opt[0] = 0x46
	out = append(out, tnlSeed{frame: tnlIPIP(tnlPeer, header.ProtocolIPIP, opt), fix: 0x18})
	bad := bytes.Clone(inner)
	bad[0] = 0x4f
	out = append(out, tnlSeed{frame: tnlIPIP(tnlPeer, header.ProtocolIPIP, bad), fix: 0x08})
	return out
}
