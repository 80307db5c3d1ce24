package uplinkfilter

import (
	"encoding/binary"
	"net/netip"

	"github.com/vecnet/vecnet/pkg/dataplane/driver"
)

// Frame builders for the tests. They build only what the decision reads
// (no checksums), and are deliberately written from the RFCs rather than
// with the constants of decide.go, so a wrong constant there shows up as a
// failing case here.

var (
	macDst = [6]byte{0x02, 0, 0, 0, 0, 0x01}
	macSrc = [6]byte{0x02, 0, 0, 0, 0, 0x02}
)

func eth(etherType uint16, payload []byte) []byte {
	f := make([]byte, 0, 14+len(payload))
	f = append(f, macDst[:]...)
	f = append(f, macSrc[:]...)
	f = binary.BigEndian.AppendUint16(f, etherType)
	return append(f, payload...)
}

// ipv4Opts describes an IPv4 header (RFC 791 section 3.1).
type ipv4Opts struct {
	dst     string
	proto   uint8
	options []byte // appended after the 20 fixed bytes; IHL counts them
	ihl     int    // overrides IHL when not 0
	version int    // overrides the version when not 0
	frag    uint16 // flags and fragment offset (MF = 0x2000)
}

func ipv4(o ipv4Opts, payload []byte) []byte {
	hlen := 20 + len(o.options)
	ihl := hlen / 4
	if o.ihl != 0 {
		ihl = o.ihl
	}
	version := 4
	if o.version != 0 {
		version = o.version
	}
	h := make([]byte, 20, hlen+len(payload))
	h[0] = byte(version<<4 | ihl&0x0f)
	binary.BigEndian.PutUint16(h[2:], uint16(hlen+len(payload)))
	binary.BigEndian.PutUint16(h[6:], o.frag)
	h[8] = 64
	h[9] = o.proto
	src := netip.MustParseAddr("192.0.2.1").As4()
	copy(h[12:], src[:])
	dst := netip.MustParseAddr(o.dst).As4()
	copy(h[16:], dst[:])
	h = append(h, o.options...)
	return append(h, payload...)
}

// udp is a UDP header (RFC 768) and payload.
func udp(dstPort uint16, payload []byte) []byte {
	h := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(h[0:], 40000)
	binary.BigEndian.PutUint16(h[2:], dstPort)
	binary.BigEndian.PutUint16(h[4:], uint16(8+len(payload)))
	return append(h, payload...)
}

// ipv6 is an IPv6 fixed header (RFC 8200 section 3) and payload.
func ipv6(dst string, version int, payload []byte) []byte {
	h := make([]byte, 40, 40+len(payload))
	h[0] = byte(version << 4)
	binary.BigEndian.PutUint16(h[4:], uint16(len(payload)))
	h[6] = 17
	h[7] = 64
	src := netip.MustParseAddr("2001:db8:ffff::1").As16()
	copy(h[8:], src[:])
	d := netip.MustParseAddr(dst).As16()
	copy(h[24:], d[:])
	return append(h, payload...)
}

func v4(o ipv4Opts, payload []byte) []byte { return eth(0x0800, ipv4(o, payload)) }

// vxlanPayload is a VXLAN header (RFC 7348 section 5) and a bit of inner
// frame: what a VXLAN packet to the node carries after its UDP header.
var vxlanPayload = append([]byte{0x08, 0, 0, 0, 0, 0, 0x01, 0}, make([]byte, 14)...)

func cut(f []byte, n int) []byte { return f[:n:n] }

// tableFilter is the filter of the decision table.
var tableFilter = driver.Filter{
	Prefixes: []netip.Prefix{
		netip.MustParsePrefix("10.244.0.0/16"),
		netip.MustParsePrefix("10.96.0.0/12"),
		netip.MustParsePrefix("fd00:10:244::/56"),
		netip.MustParsePrefix("::ffff:172.30.0.0/112"), // IPv4-mapped: 172.30.0.0/16
		netip.MustParsePrefix("203.0.113.77/24"),       // not masked: 203.0.113.0/24
	},
	NodeAddrs: []netip.Addr{
		netip.MustParseAddr("192.168.1.10"),
		netip.MustParseAddr("::ffff:192.168.1.11"), // IPv4-mapped: 192.168.1.11
		netip.MustParseAddr("2001:db8::1"),         // IPv6: ignored
	},
	UDPPorts: []uint16{4789, 8472},
}

type decisionCase struct {
	name  string
	frame []byte
	want  bool
}

// decisionCases is the table every implementation of the decision (Decide
// and the three programs) is held to, under tableFilter.
func decisionCases() []decisionCase {
	const node, node2, other = "192.168.1.10", "192.168.1.11", "192.168.1.99"
	vxlan := udp(4789, vxlanPayload)
	// Options whose bytes 2-3 read 4789 (0x12b5): a decision that ignored
	// IHL would take the options for the UDP header.
	trap := []byte{0x01, 0x01, 0x12, 0xb5}
	vxlan15 := v4(ipv4Opts{dst: node, proto: 17, options: make([]byte, 40)}, vxlan)
	return []decisionCase{
		{"ipv4 udp in prefix", v4(ipv4Opts{dst: "10.244.1.2", proto: 17}, udp(53, nil)), true},
		{"ipv4 tcp in prefix", v4(ipv4Opts{dst: "10.96.0.10", proto: 6}, make([]byte, 20)), true},
		{"ipv4 prefix network address", v4(ipv4Opts{dst: "10.244.0.0", proto: 1}, make([]byte, 8)), true},
		{"ipv4 prefix last address", v4(ipv4Opts{dst: "10.244.255.255", proto: 1}, make([]byte, 8)), true},
		{"ipv4 just outside prefix", v4(ipv4Opts{dst: "10.245.0.1", proto: 1}, make([]byte, 8)), false},
		{"ipv4 in IPv4-mapped prefix", v4(ipv4Opts{dst: "172.30.5.5", proto: 6}, make([]byte, 20)), true},
		{"ipv4 in unmasked prefix", v4(ipv4Opts{dst: "203.0.113.1", proto: 6}, make([]byte, 20)), true},
		{"ipv4 outside", v4(ipv4Opts{dst: "8.8.8.8", proto: 17}, vxlan), false},
		{"ipv4 tcp to node", v4(ipv4Opts{dst: node, proto: 6}, make([]byte, 20)), false},
		{"ipv4 icmp to node", v4(ipv4Opts{dst: node, proto: 1}, make([]byte, 8)), false},
		{"ipip to node", v4(ipv4Opts{dst: node, proto: 4}, ipv4(ipv4Opts{dst: "10.1.1.1", proto: 1}, nil)), true},
		{"ipip to IPv4-mapped node addr", v4(ipv4Opts{dst: node2, proto: 4}, ipv4(ipv4Opts{dst: "10.1.1.1", proto: 1}, nil)), true},
		{"ipip to non-node", v4(ipv4Opts{dst: other, proto: 4}, ipv4(ipv4Opts{dst: "10.1.1.1", proto: 1}, nil)), false},
		{"6in4 (proto 41) to node", v4(ipv4Opts{dst: node, proto: 41}, ipv6("fd00::1", 6, nil)), true},
		{"6in4 to non-node", v4(ipv4Opts{dst: other, proto: 41}, ipv6("fd00::1", 6, nil)), false},
		{"vxlan 4789 to node", v4(ipv4Opts{dst: node, proto: 17}, vxlan), true},
		{"vxlan 8472 to node", v4(ipv4Opts{dst: node, proto: 17}, udp(8472, vxlanPayload)), true},
		{"udp 53 to node", v4(ipv4Opts{dst: node, proto: 17}, udp(53, nil)), false},
		{"udp 4789 to non-node", v4(ipv4Opts{dst: other, proto: 17}, vxlan), false},
		{"tcp port 4789 to node", v4(ipv4Opts{dst: node, proto: 6}, udp(4789, make([]byte, 12))), false},
		{"vxlan with options (IHL 6)", v4(ipv4Opts{dst: node, proto: 17, options: []byte{1, 1, 1, 0}}, vxlan), true},
		{"vxlan with 40 bytes of options (IHL 15)", vxlan15, true},
		{"options look like port 4789, real port 53", v4(ipv4Opts{dst: node, proto: 17, options: trap}, udp(53, nil)), false},
		{"options look like port 53, real port 4789", v4(ipv4Opts{dst: node, proto: 17, options: []byte{1, 1, 0, 53}}, vxlan), true},
		{"IHL 4 (invalid)", v4(ipv4Opts{dst: "10.244.1.1", proto: 17, ihl: 4}, vxlan), false},
		{"IHL 0", v4(ipv4Opts{dst: "10.244.1.1", proto: 17, ihl: 0x10}, vxlan), false}, // 0x10&0x0f
		{"version 6 in IPv4 ethertype", v4(ipv4Opts{dst: "10.244.1.1", proto: 17, version: 6}, vxlan), false},
		{"version 5", v4(ipv4Opts{dst: "10.244.1.1", proto: 17, version: 5}, vxlan), false},
		{"IHL 15 beyond frame end", cut(v4(ipv4Opts{dst: "10.244.1.1", proto: 1, ihl: 15}, make([]byte, 39)), 14+59), false},
		{"IHL 15 header exactly in frame", cut(v4(ipv4Opts{dst: "10.244.1.1", proto: 1, ihl: 15}, make([]byte, 40)), 14+60), true},
		{"non-first fragment vxlan", v4(ipv4Opts{dst: node, proto: 17, frag: 0x2000 | 185}, vxlan), false},
		{"last fragment vxlan", v4(ipv4Opts{dst: node, proto: 17, frag: 185}, vxlan), false},
		{"first fragment vxlan (MF)", v4(ipv4Opts{dst: node, proto: 17, frag: 0x2000}, vxlan), true},
		{"DF vxlan", v4(ipv4Opts{dst: node, proto: 17, frag: 0x4000}, vxlan), true},
		{"non-first fragment ipip to node", v4(ipv4Opts{dst: node, proto: 4, frag: 0x2000 | 3}, make([]byte, 24)), true},
		{"non-first fragment in prefix", v4(ipv4Opts{dst: "10.244.1.1", proto: 17, frag: 7}, make([]byte, 24)), true},
		{"udp header truncated (4 bytes)", cut(v4(ipv4Opts{dst: node, proto: 17}, vxlan), 14+20+4), false},
		{"udp header truncated (7 bytes)", cut(v4(ipv4Opts{dst: node, proto: 17}, vxlan), 14+20+7), false},
		{"udp header exactly 8 bytes", cut(v4(ipv4Opts{dst: node, proto: 17}, vxlan), 14+20+8), true},
		{"udp header truncated after options", cut(vxlan15, 14+60+7), false},
		{"udp header exactly after options", cut(vxlan15, 14+60+8), true},
		{"ipv4 header truncated (19 bytes)", cut(v4(ipv4Opts{dst: "10.244.1.1", proto: 1}, nil), 14+19), false},
		{"ipv4 header only, in prefix", v4(ipv4Opts{dst: "10.244.1.1", proto: 1}, nil), true},
		{"ipv4 with ethernet padding", append(v4(ipv4Opts{dst: node, proto: 4}, make([]byte, 4)), make([]byte, 22)...), true},
		{"arp", eth(0x0806, make([]byte, 28)), false},
		{"arp with a prefix address at the IPv4 dst offset", eth(0x0806, ipv4(ipv4Opts{dst: "10.244.1.1", proto: 17}, vxlan)), false},
		{"vlan tagged ipv4 in prefix", eth(0x8100, append([]byte{0, 1, 0x08, 0x00}, ipv4(ipv4Opts{dst: "10.244.1.1", proto: 17}, vxlan)...)), false},
		{"ipv6 in prefix", eth(0x86DD, ipv6("fd00:10:244:0:1::5", 6, udp(80, nil))), true},
		{"ipv6 in prefix, last /56 address", eth(0x86DD, ipv6("fd00:10:244:ff:ffff:ffff:ffff:ffff", 6, nil)), true},
		{"ipv6 just outside prefix", eth(0x86DD, ipv6("fd00:10:244:100::1", 6, nil)), false},
		{"ipv6 outside", eth(0x86DD, ipv6("2001:db8::5", 6, udp(4789, vxlanPayload))), false},
		{"ipv6 to IPv6 node addr, vxlan port", eth(0x86DD, ipv6("2001:db8::1", 6, udp(4789, vxlanPayload))), false},
		{"ipv6 to IPv4-mapped address of an IPv4 prefix", eth(0x86DD, ipv6("::ffff:10.244.1.1", 6, nil)), false},
		{"ipv6 version 4", eth(0x86DD, ipv6("fd00:10:244::5", 4, nil)), false},
		{"ipv6 header exactly", eth(0x86DD, ipv6("fd00:10:244::5", 6, nil)), true},
		{"ipv6 header truncated", cut(eth(0x86DD, ipv6("fd00:10:244::5", 6, nil)), 14+39), false},
		{"ethertype ipv4, no header", eth(0x0800, nil), false},
		{"ethertype ipv6, no header", eth(0x86DD, nil), false},
		{"13 bytes", cut(v4(ipv4Opts{dst: "10.244.1.1", proto: 1}, nil), 13), false},
		{"12 bytes", cut(v4(ipv4Opts{dst: "10.244.1.1", proto: 1}, nil), 12), false},
		{"1 byte", []byte{0x08}, false},
		{"empty", []byte{}, false},
	}
}
