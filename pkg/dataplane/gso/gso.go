// Package gso does in software what a NIC's segmentation and checksum
// offload would do: it cuts TCP and UDP super-packets into wire-sized
// packets (Segment) and completes partial checksums (FinishChecksum).
//
// Why vecnetd needs it: pod tun devices are opened with IFF_VNET_HDR and
// TUNSETOFFLOAD, so the pod's kernel hands us up to 64 KiB TCP segments
// (TSO) and UDP datagram trains (USO) in one read, and leaves L4 checksums
// as "partial" (virtio NEEDS_CSUM: the pseudo-header sum in the field, the
// rest to be summed by whoever transmits). That is the cheap case as long
// as the packet leaves through another virtio device that accepts the same
// offloads. When it must leave through a path that cannot take it whole (an
// AF_XDP uplink, an encapsulation whose result would exceed 65535 bytes, an
// egress MTU smaller than the pod's), somebody has to do the NIC's work;
// this package is the equivalent of the kernel's skb_segment,
// tcp_gso_segment and __udp_gso_segment, and of skb_checksum_help.
//
// The input is described by buffer.Meta as the tun driver fills it from the
// virtio-net header (virtio 1.x section 5.1.6): FlagGSO with GSOType,
// GSOSize (the MSS) and HdrLen, and FlagCsumPart with CsumStart and
// CsumOffset relative to the L3 header at Meta.Start.
//
// Nothing here allocates on the heap; errors are values of the small
// integer type Error so that a caller can count drops by reason without
// string matching or allocation.
package gso

import (
	"encoding/binary"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/pkg/header"
)

// Error is why Segment, Count or FinishChecksum refused a packet. The
// values are small and dense so a caller can index a counter array with
// them (see NumErrors); String gives snake_case names for those counters.
type Error uint8

// Error values. Zero is not an error and is never returned.
const (
	_ Error = iota
	// ErrNotGSO: Segment was given a packet without FlagGSO.
	ErrNotGSO
	// ErrBadMeta: Meta.Start/Len do not describe bytes inside the buffer.
	ErrBadMeta
	// ErrUnsupportedType: a gso_type other than TCPv4, TCPv6 and UDP_L4
	// (with or without ECN for TCP). Legacy UFO (VIRTIO_NET_HDR_GSO_UDP)
	// lands here: see Segment.
	ErrUnsupportedType
	// ErrBadGSOSize: GSOSize is zero.
	ErrBadGSOSize
	// ErrBadIPHeader: the IP header is truncated or inconsistent (bad IHL,
	// Total/Payload Length past the packet, unknown version).
	ErrBadIPHeader
	// ErrTypeMismatch: the IP version or transport protocol is not the one
	// gso_type announces (TCPv4 over IPv6, UDP_L4 carrying TCP, ...).
	ErrTypeMismatch
	// ErrFragment: an IPv4 fragment (MF set or non-zero offset) cannot be
	// segmented: it has no complete transport payload.
	ErrFragment
	// ErrIPv6ExtHeader: IPv6 extension headers between the fixed header
	// and TCP/UDP are not supported.
	ErrIPv6ExtHeader
	// ErrBadL4Header: the TCP or UDP header is truncated or its Data
	// Offset is invalid.
	ErrBadL4Header
	// ErrBadCsumOffset: CsumStart/CsumOffset do not point at the
	// transport checksum (Segment), or point outside the packet or at an
	// odd offset (FinishChecksum).
	ErrBadCsumOffset
	// ErrNoPayload: the super-packet carries no payload after its headers.
	ErrNoPayload
	// ErrTCPFlags: SYN or RST on a packet that would need more than one
	// segment; neither can be replicated (see Segment).
	ErrTCPFlags
	// ErrOutTooSmall: out has fewer slots than the segment count.
	ErrOutTooSmall
	// ErrNoBuffers: the pool ran out of buffers for the segments.
	ErrNoBuffers

	// NumErrors is one more than the largest Error value.
	NumErrors = iota
)

var errorNames = [...]string{
	0:                  "ok",
	ErrNotGSO:          "not_gso",
	ErrBadMeta:         "bad_meta",
	ErrUnsupportedType: "unsupported_gso_type",
	ErrBadGSOSize:      "bad_gso_size",
	ErrBadIPHeader:     "bad_ip_header",
	ErrTypeMismatch:    "gso_type_mismatch",
	ErrFragment:        "ip_fragment",
	ErrIPv6ExtHeader:   "ipv6_extension_header",
	ErrBadL4Header:     "bad_l4_header",
	ErrBadCsumOffset:   "bad_csum_offset",
	ErrNoPayload:       "no_payload",
	ErrTCPFlags:        "tcp_flags",
	ErrOutTooSmall:     "out_too_small",
	ErrNoBuffers:       "no_buffers",
}

// String returns the counter name of e.
func (e Error) String() string {
	if int(e) < len(errorNames) {
		return errorNames[e]
	}
	return "unknown"
}

// Error implements the error interface. Converting an Error to error does
// not allocate: the runtime keeps single-byte values preboxed.
func (e Error) Error() string { return "gso: " + e.String() }

// Virtio-net gso_type values (virtio 1.x section 5.1.6; the same numbers
// as pkg/header's VirtioNetHdrGSO* and the tun driver's VnetGSO*).
const (
	typeTCPv4 = header.VirtioNetHdrGSOTCPv4
	typeUDP   = header.VirtioNetHdrGSOUDP // UFO: unsupported
	typeTCPv6 = header.VirtioNetHdrGSOTCPv6
	typeUDPL4 = header.VirtioNetHdrGSOUDPL4
	typeECN   = header.VirtioNetHdrGSOECN
)

// layout is what parse learns about a super-packet.
type layout struct {
	pkt   []byte // the IP datagram, trimmed to its IP length
	v6    bool
	proto uint8 // header.ProtocolTCP or header.ProtocolUDP
	l4    int   // offset of the transport header (the IP header length)
	hdr   int   // length of IP plus transport header: what every segment repeats
	mss   int
	n     int // number of segments
}

// packet returns the bytes Meta says are the packet, or ErrBadMeta if
// Start/Len point outside the buffer. Meta is trusted nowhere else: a
// corrupt Start or Len must not become a panic in the dataplane.
func packet(p *buffer.Pool, b buffer.Index) ([]byte, Error) {
	m := p.Meta(b)
	d := p.Data(b)
	if m.Start < 0 || m.Len < 0 || int64(m.Start)+int64(m.Len) > int64(len(d)) {
		return nil, ErrBadMeta
	}
	return d[m.Start : m.Start+m.Len], 0
}

// isIPv6ExtHeader reports whether nh is an IPv6 extension header (RFC 8200
// section 4, and the IANA "IPv6 Extension Header Types" registry: AH, ESP,
// Mobility, HIP, Shim6 and the two experimental values).
func isIPv6ExtHeader(nh uint8) bool {
	switch nh {
	case header.IPv6HopByHopOptions, header.IPv6RoutingHeader, header.IPv6FragmentHeader,
		header.IPv6DestinationOptions, 50, 51, 135, 139, 140, 253, 254:
		return true
	}
	return false
}

// parse validates a super-packet against its Meta and returns its layout.
//
// Meta.HdrLen is deliberately not used: the kernel treats virtio hdr_len
// as a hint (virtio_net_hdr_to_skb never reads it for segmentation), and
// the kernel's tun driver fills it on the way to us with skb_headlen(),
// the length of the skb's linear part, which may include payload. The
// headers we parse are the truth; HdrLen is only what the rewrite nodes
// use to guess a GSOSize that fits the MTU.
func parse(p *buffer.Pool, b buffer.Index) (layout, Error) {
	var l layout
	m := p.Meta(b)
	if m.Flags&buffer.FlagGSO == 0 {
		return l, ErrNotGSO
	}
	pkt, err := packet(p, b)
	if err != 0 {
		return l, err
	}
	want := 0 // IP version gso_type requires; 0 for either
	switch m.GSOType {
	case typeTCPv4, typeTCPv4 | typeECN:
		l.proto, want = header.ProtocolTCP, 4
	case typeTCPv6, typeTCPv6 | typeECN:
		l.proto, want = header.ProtocolTCP, 6
	case typeUDPL4:
		// ECN is a TCP notion; the kernel rejects UDP_L4|ECN too
		// (virtio_net_hdr_to_skb).
		l.proto = header.ProtocolUDP
	default:
		return l, ErrUnsupportedType
	}
	if m.GSOSize == 0 {
		return l, ErrBadGSOSize
	}
	l.mss = int(m.GSOSize)
	if len(pkt) == 0 {
		return l, ErrBadIPHeader
	}
	switch pkt[0] >> 4 {
	case 4:
		if want == 6 {
			return l, ErrTypeMismatch
		}
		if header.ValidateIPv4(pkt) != header.IPv4OK {
			return l, ErrBadIPHeader
		}
		ip := header.IPv4(pkt)
		if ip.IsFragment() {
			return l, ErrFragment
		}
		if ip.Protocol() != l.proto {
			return l, ErrTypeMismatch
		}
		// Bytes past Total Length are link padding, which ip_rcv trims
		// too (and ip4-input before us).
		l.pkt = pkt[:ip.TotalLength()]
		l.l4 = ip.HeaderLength()
	case 6:
		if want == 4 {
			return l, ErrTypeMismatch
		}
		if header.ValidateIPv6(pkt) != header.IPv6OK {
			return l, ErrBadIPHeader
		}
		ip := header.IPv6(pkt)
		if nh := ip.NextHeader(); nh != l.proto {
			if isIPv6ExtHeader(nh) {
				return l, ErrIPv6ExtHeader
			}
			return l, ErrTypeMismatch
		}
		l.v6 = true
		l.pkt = pkt[:header.IPv6MinimumSize+int(ip.PayloadLength())]
		l.l4 = header.IPv6MinimumSize
	default:
		return l, ErrBadIPHeader
	}
	seg := l.pkt[l.l4:]
	csumOff := header.UDPChecksumOffset
	if l.proto == header.ProtocolTCP {
		if header.ValidateTCP(seg) != header.TCPOK {
			return l, ErrBadL4Header
		}
		l.hdr = l.l4 + header.TCP(seg).DataOffset()
		csumOff = header.TCPChecksumOffset
	} else {
		// The UDP Length field of a super-packet is not checked: it is
		// rewritten in every segment, and the kernel's __udp_gso_segment
		// does not check it either.
		if len(seg) < header.UDPMinimumSize {
			return l, ErrBadL4Header
		}
		l.hdr = l.l4 + header.UDPMinimumSize
	}
	// The kernel insists on the same (virtio_net_hdr_to_skb and
	// tcp_gso_segment's "skb_checksum_start != transport header"): a
	// partial checksum that points elsewhere means we misparsed the
	// packet or the sender is confused. Without NEEDS_CSUM there is
	// nothing to check; we recompute every checksum from scratch, so,
	// unlike the kernel, UDP_L4 does not need the flag.
	if m.Flags&buffer.FlagCsumPart != 0 &&
		(int(m.CsumStart) != l.l4 || int(m.CsumOffset) != csumOff) {
		return l, ErrBadCsumOffset
	}
	payload := len(l.pkt) - l.hdr
	if payload <= 0 {
		return l, ErrNoPayload
	}
	l.n = (payload + l.mss - 1) / l.mss
	if l.proto == header.ProtocolTCP && l.n > 1 &&
		header.TCP(seg).Flags()&(header.TCPFlagSyn|header.TCPFlagRst) != 0 {
		return l, ErrTCPFlags
	}
	return l, 0
}

// Count returns the number of segments Segment would cut b into, or the
// error Segment would return for it other than ErrOutTooSmall and
// ErrNoBuffers. It parses the headers rather than trusting Meta.HdrLen
// (see parse), which is why it needs the packet and not just its Meta.
func Count(p *buffer.Pool, b buffer.Index) (int, error) {
	l, err := parse(p, b)
	if err != 0 {
		return 0, err
	}
	return l.n, nil
}

// Segment cuts the GSO super-packet b into packets of at most H+GSOSize
// bytes, where H is the length of the IP and transport headers as parsed
// from the packet (Meta.HdrLen is only a hint; see parse). Each segment is
// written to a new buffer from p, at buffer.Headroom so that later nodes
// can prepend headers: a small buffer when it fits, a large one otherwise
// (GSOSize above buffer.SmallDataSize, as with jumbo MTUs). The segment
// indices go to out[:n].
//
// Each segment is a complete packet: its IP header has the right length
// (and, for IPv4, a fresh header checksum), its transport checksum is
// computed in full, and its Meta is a copy of b's with FlagGSO,
// FlagCsumPart and FlagCsumOK cleared and the offload fields zeroed.
// Everything else in Meta (RxIf, TxIf, Adj, VRF, FlowHash, trace state)
// is kept because the node that runs next still needs it.
//
// TCP (gso_type TCPv4 or TCPv6, RFC 9293), as the kernel's
// tcp_gso_segment: all segments repeat the IP header (IPv4 options
// included) and the TCP header (options included); the sequence number
// advances by the payload before each segment; FIN and PSH appear only on
// the last segment, because they refer to the end of the data; CWR only on
// the first, because it announces one window reduction (RFC 3168 section
// 6.1.2), and this holds whether or not the ECN bit of gso_type is set:
// the kernel sets that bit precisely to say "CWR is set, clear it on the
// others" (SKB_GSO_TCP_ECN). Accurate ECN, which must keep CWR, never
// reaches us as GSO since virtio has no type for it. The urgent pointer is
// an offset from each segment's own sequence number (RFC 9293 section
// 3.1), so it is rebased per segment and URG dropped once the urgent data
// lies behind; the kernel copies it unchanged, which points later segments
// past the intended byte. SYN and RST on a packet that needs more than one
// segment are refused (ErrTCPFlags): a SYN occupies a sequence number and
// cannot repeat, and a reset ends the connection at its first copy.
//
// UDP (gso_type UDP_L4, USO, as __udp_gso_segment): every segment is a
// full datagram with its own Length and checksum; a computed checksum of
// zero is sent as 0xFFFF (RFC 768; RFC 8200 section 8.1 for IPv6, where
// the checksum is mandatory).
//
// IPv4 segments get consecutive Identification values starting from the
// super-packet's, as the kernel's inet_gso_segment does (virtio cannot
// express SKB_GSO_TCP_FIXEDID): segments without DF may still be
// fragmented on the way and then need distinct IDs (RFC 791, RFC 6864).
// IPv6 segments must have TCP or UDP directly after the fixed header.
//
// Legacy UFO (gso_type UDP, which asks for IP fragmentation of one large
// datagram) is refused with ErrUnsupportedType: Linux has not generated
// it since 4.14, and tun does not pass it to user space either
// (virtio_net_hdr_from_skb maps only TCPv4, TCPv6 and UDP_L4).
//
// On success b is freed and the segment count returned. On error b is left
// untouched (Segment never writes to it), every buffer allocated so far is
// freed, out's contents are unspecified and the error is an Error.
func Segment(p *buffer.Pool, b buffer.Index, out []buffer.Index) (int, error) {
	l, err := parse(p, b)
	if err != 0 {
		return 0, err
	}
	if len(out) < l.n {
		return 0, ErrOutTooSmall
	}
	tmpl := *p.Meta(b)
	tmpl.Start = buffer.Headroom
	tmpl.Flags &^= buffer.FlagGSO | buffer.FlagCsumPart | buffer.FlagCsumOK
	tmpl.GSOType, tmpl.GSOSize, tmpl.HdrLen, tmpl.CsumStart, tmpl.CsumOffset = 0, 0, 0, 0, 0

	hdr := l.pkt[:l.hdr]
	payload := l.pkt[l.hdr:]
	// The pseudo-header sum without its length term: the length is the
	// only part that differs between segments, and with the length below
	// 2^16 adding it afterwards gives the same partial sum.
	var pseudo uint32
	var id uint16
	if l.v6 {
		ip := header.IPv6(l.pkt)
		pseudo = header.PseudoHeaderChecksumV6(l.proto, ip.SourceAddress(), ip.DestinationAddress(), 0)
	} else {
		ip := header.IPv4(l.pkt)
		pseudo = header.PseudoHeaderChecksumV4(l.proto, ip.SourceAddress(), ip.DestinationAddress(), 0)
		id = ip.ID()
	}
	var (
		seq      uint32
		tcpFlags uint8
		urgPtr   int
	)
	if l.proto == header.ProtocolTCP {
		t := header.TCP(l.pkt[l.l4:])
		seq, tcpFlags, urgPtr = t.SequenceNumber(), t.Flags(), int(t.UrgentPointer())
	}

	for i := 0; i < l.n; i++ {
		off := i * l.mss
		size := min(l.mss, len(payload)-off)
		segLen := l.hdr + size
		var (
			sb buffer.Index
			ok bool
		)
		if segLen <= buffer.SmallDataSize {
			sb, ok = p.Alloc()
		} else if segLen <= buffer.LargeDataSize {
			sb, ok = p.AllocLarge()
		}
		if !ok {
			for _, x := range out[:i] {
				p.Free(x)
			}
			return 0, ErrNoBuffers
		}
		out[i] = sb
		sm := p.Meta(sb)
		*sm = tmpl
		sm.Len = int32(segLen)
		d := p.Data(sb)[buffer.Headroom : buffer.Headroom+segLen]
		copy(d, hdr)
		copy(d[l.hdr:], payload[off:off+size])

		if l.v6 {
			header.IPv6(d).SetPayloadLength(uint16(segLen - header.IPv6MinimumSize))
		} else {
			ip := header.IPv4(d)
			ip.SetTotalLength(uint16(segLen))
			ip.SetID(id + uint16(i))
			ip.SetChecksum(ip.CalculateChecksum())
		}
		l4len := segLen - l.l4
		if l.proto == header.ProtocolTCP {
			t := header.TCP(d[l.l4:])
			t.SetSequenceNumber(seq + uint32(off))
			f := tcpFlags
			if i > 0 {
				f &^= header.TCPFlagCwr
			}
			if i < l.n-1 {
				f &^= header.TCPFlagFin | header.TCPFlagPsh
			}
			if f&header.TCPFlagUrg != 0 {
				if urgPtr > off {
					t.SetUrgentPointer(uint16(urgPtr - off))
				} else {
					f &^= header.TCPFlagUrg
					t.SetUrgentPointer(0)
				}
			}
			t.SetFlags(f)
			t.SetChecksum(t.CalculateChecksum(pseudo + uint32(l4len)))
		} else {
			u := header.UDP(d[l.l4:])
			u.SetLength(uint16(l4len))
			u.SetChecksum(u.CalculateChecksum(pseudo + uint32(l4len)))
		}
	}
	p.Free(b)
	return l.n, nil
}

// FinishChecksum completes the partial transport checksum of b in place, as
// the kernel's skb_checksum_help: with FlagCsumPart the 16-bit field at
// CsumStart+CsumOffset holds the pseudo-header sum, so summing everything
// from CsumStart to the end of the packet, field included, and storing the
// complement gives the full checksum (RFC 1071; virtio 1.x section 5.1.6.2
// describes the split). A result of zero is stored as 0xFFFF, which is the
// same value for TCP (one's complement has two zeros) and the only legal
// one for UDP, where zero means "no checksum" (RFC 768); the kernel does
// the same (CSUM_MANGLED_0).
//
// The flag is then cleared, along with CsumStart and CsumOffset. Without
// FlagCsumPart there is nothing to finish and FinishChecksum returns nil.
// It needs no IP parsing, so it also serves protocols we do not otherwise
// know (e.g. a partial checksum over GRE or SCTP-in-UDP) and GSO packets
// that are sent whole. Errors: ErrBadMeta, and ErrBadCsumOffset when the
// field does not lie inside the packet or sits at an odd offset from
// CsumStart, where a one's complement sum cannot store a value that
// verifies (the pseudo-header sum would be added byte-swapped). On error
// the packet is not modified.
func FinishChecksum(p *buffer.Pool, b buffer.Index) error {
	m := p.Meta(b)
	if m.Flags&buffer.FlagCsumPart == 0 {
		return nil
	}
	pkt, err := packet(p, b)
	if err != 0 {
		return err
	}
	cs, co := int(m.CsumStart), int(m.CsumOffset)
	if co%2 != 0 || cs+co+2 > len(pkt) {
		return ErrBadCsumOffset
	}
	c := header.Fold(header.Checksum(pkt[cs:], 0))
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(pkt[cs+co:], c)
	m.Flags &^= buffer.FlagCsumPart
	m.CsumStart, m.CsumOffset = 0, 0
	return nil
}
