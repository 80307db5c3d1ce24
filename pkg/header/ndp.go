package header

// Neighbor Discovery (RFC 4861) messages are ICMPv6 messages; the views here
// start at the ICMPv6 Type field, so an NDP view and an ICMPv6 view of the
// same bytes can be used side by side (e.g. ICMPv6(m).IsChecksumValid).
//
// Neighbor Solicitation (section 4.3) and Neighbor Advertisement (section
// 4.4) share one layout; only the first reserved word differs:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     Type      |     Code      |          Checksum             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                           Reserved                            |  NS
//	|R|S|O|                     Reserved                            |  NA
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                                                               |
//	+                                                               +
//	|                                                               |
//	+                       Target Address                          +
//	|                                                               |
//	+                                                               +
//	|                                                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|   Options ...
//	+-+-+-+-+-+-+-+-+-+-+-+-
//
// Options (section 4.6) are type-length-value with the length in units of
// 8 octets, type and length bytes included:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     Type      |    Length     |              ...              |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// and the Source/Target Link-Layer Address options (section 4.6.1) for
// Ethernet are one unit long (RFC 2464 section 6):
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|   Type (1/2)  |  Length (1)   |    Link-Layer Address ...
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

const (
	ndpFlags        = 4
	ndpTarget       = 8
	ndpNSNAOptions  = 24
	ndpOptionLength = 1
)

const (
	// NDPNeighborSolicitMinimumSize is the size of an NS without options.
	NDPNeighborSolicitMinimumSize = 24
	// NDPNeighborAdvertMinimumSize is the size of an NA without options.
	NDPNeighborAdvertMinimumSize = 24
	// NDPLinkLayerAddressOptionSize is the size of an Ethernet Source or
	// Target Link-Layer Address option.
	NDPLinkLayerAddressOptionSize = 8
	// NDPHopLimit is the IPv6 Hop Limit every NDP message must be sent
	// with and received with (RFC 4861 sections 7.1.1, 7.1.2); it proves
	// the sender is on-link.
	NDPHopLimit = 255
)

// NDP option types (RFC 4861 section 4.6).
const (
	NDPOptionSourceLinkLayerAddress = 1
	NDPOptionTargetLinkLayerAddress = 2
	NDPOptionPrefixInformation      = 3
	NDPOptionRedirectedHeader       = 4
	NDPOptionMTU                    = 5
)

// Neighbor Advertisement flag bits as returned by NDPNeighborAdvert.Flags.
const (
	NDPNARouterFlag    = 0x80
	NDPNASolicitedFlag = 0x40
	NDPNAOverrideFlag  = 0x20
)

// NDPError is the result of the NDP validators and option walks.
type NDPError uint8

// NDPError values.
const (
	NDPOK NDPError = iota
	// NDPErrTooShort: shorter than the fixed part of the message.
	NDPErrTooShort
	// NDPErrBadType: the ICMPv6 type is not the one being validated.
	NDPErrBadType
	// NDPErrBadCode: ICMPv6 code is not 0.
	NDPErrBadCode
	// NDPErrMulticastTarget: the Target Address is a multicast address.
	NDPErrMulticastTarget
	// NDPErrZeroLengthOption: an option has Length 0, which section 4.6
	// makes grounds for discarding the whole packet (it would loop
	// forever).
	NDPErrZeroLengthOption
	// NDPErrTruncatedOption: an option runs past the end of the message.
	NDPErrTruncatedOption
)

var ndpErrorNames = [...]string{
	NDPOK:                  "ok",
	NDPErrTooShort:         "too_short",
	NDPErrBadType:          "bad_type",
	NDPErrBadCode:          "bad_code",
	NDPErrMulticastTarget:  "multicast_target",
	NDPErrZeroLengthOption: "zero_length_option",
	NDPErrTruncatedOption:  "truncated_option",
}

func (e NDPError) String() string {
	if int(e) < len(ndpErrorNames) {
		return ndpErrorNames[e]
	}
	return "unknown"
}

// NDPNeighborSolicit is a Neighbor Solicitation message (RFC 4861 section
// 4.3). Accessors assume ValidateNeighborSolicit returned NDPOK.
type NDPNeighborSolicit []byte

// NDPNeighborAdvert is a Neighbor Advertisement message (RFC 4861 section
// 4.4). Accessors assume ValidateNeighborAdvert returned NDPOK.
type NDPNeighborAdvert []byte

// ValidateNeighborSolicit applies the message-level checks of RFC 4861
// section 7.1.1 to the ICMPv6 message b: type 135, code 0, at least 24 bytes,
// a non-multicast target and well-formed options. The checks that need the
// IPv6 header are the caller's: Hop Limit == NDPHopLimit, a valid checksum
// (ICMPv6(b).IsChecksumValid), and, when the source is unspecified (DAD), a
// solicited-node destination and no Source Link-Layer Address option.
func ValidateNeighborSolicit(b []byte) NDPError {
	return validateNSNA(b, ICMPv6NeighborSolicit)
}

// ValidateNeighborAdvert applies the message-level checks of RFC 4861
// section 7.1.2 to the ICMPv6 message b: type 136, code 0, at least 24 bytes,
// a non-multicast target and well-formed options. The caller must check Hop
// Limit == NDPHopLimit, the checksum, and that the Solicited flag is clear
// when the IPv6 destination is multicast.
func ValidateNeighborAdvert(b []byte) NDPError {
	return validateNSNA(b, ICMPv6NeighborAdvert)
}

func validateNSNA(b []byte, t ICMPv6Type) NDPError {
	if len(b) < ndpNSNAOptions {
		return NDPErrTooShort
	}
	if ICMPv6Type(b[icmpType]) != t {
		return NDPErrBadType
	}
	if b[icmpCode] != 0 {
		return NDPErrBadCode
	}
	if b[ndpTarget] == 0xff {
		return NDPErrMulticastTarget
	}
	return NDPOptions(b[ndpNSNAOptions:]).Validate()
}

// TargetAddress returns the address being resolved.
func (m NDPNeighborSolicit) TargetAddress() [16]byte {
	return [16]byte(m[ndpTarget:ndpNSNAOptions])
}

// SetTargetAddress sets the target address.
func (m NDPNeighborSolicit) SetTargetAddress(a [16]byte) {
	copy(m[ndpTarget:ndpNSNAOptions], a[:])
}

// Options returns the options area.
func (m NDPNeighborSolicit) Options() NDPOptions { return NDPOptions(m[ndpNSNAOptions:]) }

// SourceLinkLayerAddress returns the MAC address in the first Ethernet-sized
// Source Link-Layer Address option, if any.
func (m NDPNeighborSolicit) SourceLinkLayerAddress() ([6]byte, bool) {
	mac, ok, _ := m.Options().LinkLayerAddress(NDPOptionSourceLinkLayerAddress)
	return mac, ok
}

// TargetAddress returns the address whose link-layer address is advertised.
func (m NDPNeighborAdvert) TargetAddress() [16]byte {
	return [16]byte(m[ndpTarget:ndpNSNAOptions])
}

// SetTargetAddress sets the target address.
func (m NDPNeighborAdvert) SetTargetAddress(a [16]byte) {
	copy(m[ndpTarget:ndpNSNAOptions], a[:])
}

// Flags returns the R, S and O bits (NDPNARouterFlag etc.); reserved bits
// are masked off.
func (m NDPNeighborAdvert) Flags() uint8 {
	return m[ndpFlags] & (NDPNARouterFlag | NDPNASolicitedFlag | NDPNAOverrideFlag)
}

// SetFlags sets the R, S and O bits and clears the rest of the reserved
// word, as section 4.4 requires of senders.
func (m NDPNeighborAdvert) SetFlags(f uint8) {
	m[ndpFlags] = f & (NDPNARouterFlag | NDPNASolicitedFlag | NDPNAOverrideFlag)
	m[ndpFlags+1], m[ndpFlags+2], m[ndpFlags+3] = 0, 0, 0
}

// Router reports the R flag: the sender is a router.
func (m NDPNeighborAdvert) Router() bool { return m[ndpFlags]&NDPNARouterFlag != 0 }

// Solicited reports the S flag: the advertisement answers a solicitation.
func (m NDPNeighborAdvert) Solicited() bool { return m[ndpFlags]&NDPNASolicitedFlag != 0 }

// Override reports the O flag: the advertisement should replace a cached
// link-layer address.
func (m NDPNeighborAdvert) Override() bool { return m[ndpFlags]&NDPNAOverrideFlag != 0 }

// Options returns the options area.
func (m NDPNeighborAdvert) Options() NDPOptions { return NDPOptions(m[ndpNSNAOptions:]) }

// TargetLinkLayerAddress returns the MAC address in the first
// Ethernet-sized Target Link-Layer Address option, if any.
func (m NDPNeighborAdvert) TargetLinkLayerAddress() ([6]byte, bool) {
	mac, ok, _ := m.Options().LinkLayerAddress(NDPOptionTargetLinkLayerAddress)
	return mac, ok
}

// NDPOptions is the options area of an NDP message, running to the end of
// the message.
type NDPOptions []byte

// Iter returns an iterator over o. Iterating is safe on any input.
func (o NDPOptions) Iter() NDPOptionIterator { return NDPOptionIterator{rest: o} }

// Validate walks all options and reports the first structural problem.
func (o NDPOptions) Validate() NDPError {
	it := o.Iter()
	for {
		if _, ok := it.Next(); !ok {
			return it.Err()
		}
	}
}

// LinkLayerAddress returns the MAC address from the first option of type typ
// (NDPOptionSourceLinkLayerAddress or NDPOptionTargetLinkLayerAddress) that
// is exactly NDPLinkLayerAddressOptionSize long; options of other sizes
// belong to other link types and are skipped. err reports a malformed
// option met before one was found.
func (o NDPOptions) LinkLayerAddress(typ uint8) (mac [6]byte, found bool, err NDPError) {
	it := o.Iter()
	for {
		opt, ok := it.Next()
		if !ok {
			return mac, false, it.Err()
		}
		if opt.Type() == typ {
			if mac, ok := opt.EthernetAddress(); ok {
				return mac, true, NDPOK
			}
		}
	}
}

// NDPOptionIterator walks NDP options. The zero value is an empty iterator.
//
//	it := opts.Iter()
//	for opt, ok := it.Next(); ok; opt, ok = it.Next() { ... }
//	if it.Err() != NDPOK { drop }
type NDPOptionIterator struct {
	rest []byte
	err  NDPError
}

// Next returns the next option. It returns false at the end of the options
// or at the first malformed option, after which Err says which; once it has
// returned false it keeps doing so.
func (it *NDPOptionIterator) Next() (NDPOption, bool) {
	if len(it.rest) == 0 || it.err != NDPOK {
		return nil, false
	}
	if len(it.rest) < 2 {
		it.err = NDPErrTruncatedOption
		return nil, false
	}
	n := int(it.rest[ndpOptionLength]) * 8
	if n == 0 {
		it.err = NDPErrZeroLengthOption
		return nil, false
	}
	if n > len(it.rest) {
		it.err = NDPErrTruncatedOption
		return nil, false
	}
	opt := NDPOption(it.rest[:n:n])
	it.rest = it.rest[n:]
	return opt, true
}

// Err returns NDPOK if iteration ended cleanly (or has not ended), or why it
// stopped early.
func (it *NDPOptionIterator) Err() NDPError { return it.err }

// NDPOption is one option, type and length bytes included, as returned by
// NDPOptionIterator.Next; its length is a non-zero multiple of 8.
type NDPOption []byte

// Type returns the option type.
func (o NDPOption) Type() uint8 { return o[0] }

// Body returns the option after the type and length bytes.
func (o NDPOption) Body() []byte { return o[2:] }

// EthernetAddress interprets a Source or Target Link-Layer Address option
// as an Ethernet address; ok is false unless the option is exactly
// NDPLinkLayerAddressOptionSize long.
func (o NDPOption) EthernetAddress() (mac [6]byte, ok bool) {
	if len(o) != NDPLinkLayerAddressOptionSize {
		return mac, false
	}
	return [6]byte(o[2:8]), true
}

// EncodeNeighborSolicit writes a Neighbor Solicitation for target, sent from
// src to dst, into b and returns its length, or 0 if b is too small (32 bytes
// always suffice). It carries a Source Link-Layer Address option with srcMAC
// unless src is unspecified: a Duplicate Address Detection probe must not
// have one (RFC 4861 section 4.3). The checksum is filled in for src and
// dst. The IPv6 header is the caller's, with Hop Limit NDPHopLimit; dst is
// normally SolicitedNodeAddress(target).
func EncodeNeighborSolicit(b []byte, src, dst, target [16]byte, srcMAC [6]byte) int {
	n := NDPNeighborSolicitMinimumSize
	withLLA := !IsIPv6Unspecified(src)
	if withLLA {
		n += NDPLinkLayerAddressOptionSize
	}
	if len(b) < n {
		return 0
	}
	m := b[:n]
	encodeNSNA(m, ICMPv6NeighborSolicit, 0, target)
	if withLLA {
		encodeLLA(m[ndpNSNAOptions:], NDPOptionSourceLinkLayerAddress, srcMAC)
	}
	ICMPv6(m).SetChecksum(ICMPv6(m).CalculateChecksum(src, dst))
	return n
}

// EncodeNeighborAdvert writes a Neighbor Advertisement for target with the
// given flags (NDPNARouterFlag etc.) and a Target Link-Layer Address option
// carrying targetMAC, sent from src to dst, into b and returns its length,
// or 0 if b is too small (32 bytes always suffice). The checksum is filled
// in. The caller must clear NDPNASolicitedFlag when dst is multicast (RFC
// 4861 section 7.2.4) and send with Hop Limit NDPHopLimit.
func EncodeNeighborAdvert(b []byte, src, dst, target [16]byte, flags uint8, targetMAC [6]byte) int {
	const n = NDPNeighborAdvertMinimumSize + NDPLinkLayerAddressOptionSize
	if len(b) < n {
		return 0
	}
	m := b[:n]
	encodeNSNA(m, ICMPv6NeighborAdvert, flags&(NDPNARouterFlag|NDPNASolicitedFlag|NDPNAOverrideFlag), target)
	encodeLLA(m[ndpNSNAOptions:], NDPOptionTargetLinkLayerAddress, targetMAC)
	ICMPv6(m).SetChecksum(ICMPv6(m).CalculateChecksum(src, dst))
	return n
}

func encodeNSNA(m []byte, t ICMPv6Type, flags uint8, target [16]byte) {
	m[icmpType] = uint8(t)
	m[icmpCode] = 0
	m[icmpChecksum], m[icmpChecksum+1] = 0, 0
	m[ndpFlags], m[ndpFlags+1], m[ndpFlags+2], m[ndpFlags+3] = flags, 0, 0, 0
	copy(m[ndpTarget:ndpNSNAOptions], target[:])
}

func encodeLLA(o []byte, typ uint8, mac [6]byte) {
	o[0] = typ
	o[1] = NDPLinkLayerAddressOptionSize / 8
	copy(o[2:8], mac[:])
}

// SolicitedNodeAddress returns the solicited-node multicast address of a,
// ff02::1:ff00:0/104 with the low 24 bits of a (RFC 4291 section 2.7.1), to
// which Neighbor Solicitations for a are sent.
func SolicitedNodeAddress(a [16]byte) [16]byte {
	return [16]byte{
		0xff, 0x02, 0, 0, 0, 0, 0, 0,
		0, 0, 0, 0x01, 0xff, a[13], a[14], a[15],
	}
}

// IPv6MulticastMAC returns the Ethernet destination for IPv6 multicast
// address a: 33:33 followed by the low 32 bits of a (RFC 2464 section 7).
// For a solicited-node address this is 33:33:ff:xx:xx:xx.
func IPv6MulticastMAC(a [16]byte) [6]byte {
	return [6]byte{0x33, 0x33, a[12], a[13], a[14], a[15]}
}
