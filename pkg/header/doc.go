// Package header provides zero-copy, allocation-free views over the wire
// formats that the vecnet dataplane parses and rewrites: Ethernet, ARP, IPv4,
// IPv6 (including extension-header walking), ICMPv4, ICMPv6 and NDP, UDP, TCP,
// and the virtio-net header that Linux tun/tap prepends with IFF_VNET_HDR.
//
// Every view is a named byte slice (type IPv4 []byte, ...) whose methods read
// and write fields at fixed offsets, in the style of gVisor's
// pkg/tcpip/header. The accessors deliberately do no bounds checking of their
// own: they assume the slice has already been accepted by the matching
// Validate function (or was built by this process). The Validate functions
// themselves never panic, whatever bytes they are given, and return small
// typed reason codes whose String methods are short snake_case names fit for
// drop counters.
//
// Nothing in this package allocates on the heap; the tests enforce that with
// testing.AllocsPerRun, because all of it runs once per packet.
package header
