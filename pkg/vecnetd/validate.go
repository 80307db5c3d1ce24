package vecnetd

import (
	"fmt"
	"net/netip"
	"strings"

	vecnetv1 "github.com/vecnet/vecnet/api/vecnet/v1"
	"github.com/vecnet/vecnet/pkg/dataplane/driver/tun"
	"github.com/vecnet/vecnet/pkg/dataplane/tables"
	"github.com/vecnet/vecnet/pkg/header"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Every API request is parsed into internal types here, before any state is
// touched, so that a bad request is rejected whole with InvalidArgument and a
// message naming the field ("routes[3].next_hops[0].ip: ..."), and the
// handlers only ever see well-formed values.

// Limits on request values.
const (
	MinMTU       = 576 // IPv4 minimum datagram every host must accept
	MaxMTU       = 65535
	MaxQueues    = 64
	maxIfNameLen = 15 // IFNAMSIZ - 1
)

func invalid(field, format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, "%s: %s", field, fmt.Sprintf(format, args...))
}

// validIfName applies the kernel's rules for interface names (dev_valid_name
// in net/core/dev.c) so that errors surface here, not as EINVAL from an
// ioctl.
func validIfName(field, s string) error {
	switch {
	case s == "":
		return invalid(field, "required")
	case len(s) > maxIfNameLen:
		return invalid(field, "%q is longer than %d bytes", s, maxIfNameLen)
	case s == "." || s == "..":
		return invalid(field, "%q is not a valid interface name", s)
	case badIfNameByte(s):
		return invalid(field, "%q contains '/', ':' or whitespace", s)
	}
	return nil
}

// badIfNameByte reports a byte the kernel refuses in a name: '/', ':' or
// one for which its isspace() is true (\t \n \v \f \r, space and 0xa0),
// or NUL, which would silently truncate the name.
func badIfNameByte(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '/', c == ':', c == ' ', c == 0, c == 0xa0, '\t' <= c && c <= '\r':
			return true
		}
	}
	return false
}

// createInterface is a validated CreateInterfaceRequest.
type createInterface struct {
	dev  tun.Config
	vrf  uint32
	name string
}

func parseCreateInterface(r *vecnetv1.CreateInterfaceRequest) (*createInterface, error) {
	c := &createInterface{vrf: r.GetVrf(), name: r.GetName()}
	switch r.GetKind() {
	case vecnetv1.InterfaceKind_INTERFACE_KIND_TUN, vecnetv1.InterfaceKind_INTERFACE_KIND_UNSPECIFIED:
		c.dev.Kind = tun.Tun
	case vecnetv1.InterfaceKind_INTERFACE_KIND_TAP:
		c.dev.Kind = tun.Tap
	default:
		return nil, invalid("kind", "unknown interface kind %d", r.GetKind())
	}
	ns := r.GetNetns()
	switch {
	case ns == "":
		return nil, invalid("netns", "required (a name under /var/run/netns or an absolute path)")
	case strings.ContainsRune(ns, '/') && !strings.HasPrefix(ns, "/"):
		return nil, invalid("netns", "%q: a path must be absolute", ns)
	case !strings.ContainsRune(ns, '/') && (ns == "." || ns == ".."):
		return nil, invalid("netns", "%q is not a namespace name", ns)
	case strings.ContainsRune(ns, 0):
		return nil, invalid("netns", "contains a NUL byte")
	}
	c.dev.Netns = ns
	if err := validIfName("host_if", r.GetHostIf()); err != nil {
		return nil, err
	}
	c.dev.Name = r.GetHostIf()
	if c.name != "" {
		if err := validIfName("name", c.name); err != nil {
			return nil, err
		}
	}
	if len(r.GetHostAddrs()) == 0 {
		return nil, invalid("host_addrs", "at least one address is required")
	}
	seen := map[netip.Addr]bool{}
	fams := map[bool]bool{}
	for i, s := range r.GetHostAddrs() {
		f := fmt.Sprintf("host_addrs[%d]", i)
		p, err := parsePrefix(f, s, false)
		if err != nil {
			return nil, err
		}
		if seen[p.Addr()] {
			return nil, invalid(f, "%s given twice", p.Addr())
		}
		seen[p.Addr()] = true
		if fams[p.Addr().Is4()] {
			// One address per family keeps the pod's routing unambiguous
			// (Calico gives a pod one IPv4 and one IPv6 address).
			return nil, invalid(f, "only one IPv4 and one IPv6 address per interface")
		}
		fams[p.Addr().Is4()] = true
		if p.Addr().IsUnspecified() || p.Addr().IsMulticast() || p.Addr().IsLoopback() || p.Addr().IsLinkLocalUnicast() {
			return nil, invalid(f, "%s is not a usable unicast address", p.Addr())
		}
		c.dev.Addrs = append(c.dev.Addrs, p)
	}
	switch mtu := r.GetMtu(); {
	case mtu == 0:
		c.dev.MTU = 1500
	case mtu < MinMTU || mtu > MaxMTU:
		return nil, invalid("mtu", "%d is outside [%d, %d]", mtu, MinMTU, MaxMTU)
	default:
		c.dev.MTU = int(mtu)
	}
	if fams[false] && c.dev.MTU < 1280 {
		return nil, invalid("mtu", "%d is below IPv6's minimum of 1280 and the interface has an IPv6 address", c.dev.MTU)
	}
	switch q := r.GetQueues(); {
	case q == 0:
		c.dev.Queues = 1
	case q > MaxQueues:
		return nil, invalid("queues", "%d is more than %d", q, MaxQueues)
	default:
		c.dev.Queues = int(q)
	}
	c.dev.DefaultRoute = !r.GetNoDefaultRoute()
	return c, nil
}

// parsePrefix parses CIDR text. With host false the address may have host
// bits (an interface address "10.0.0.2/24"); routes require none.
func parsePrefix(field, s string, masked bool) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, invalid(field, "required")
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, invalid(field, "%q is not CIDR notation (e.g. 10.0.0.0/24 or fd00::/64)", s)
	}
	if p.Addr().Zone() != "" {
		return netip.Prefix{}, invalid(field, "%q: zones are not allowed", s)
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, invalid(field, "%q: use the plain IPv4 form", s)
	}
	if masked && p.Masked() != p {
		return netip.Prefix{}, invalid(field, "%q has host bits set; did you mean %s?", s, p.Masked())
	}
	return p, nil
}

func parseAddr(field, s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, invalid(field, "%q is not an IP address", s)
	}
	if a.Zone() != "" || a.Is4In6() {
		return netip.Addr{}, invalid(field, "%q: use a plain address without zone", s)
	}
	return a, nil
}

func parseAddress(r *vecnetv1.AddressRequest) (string, netip.Prefix, error) {
	if err := validIfName("interface", r.GetInterface()); err != nil {
		return "", netip.Prefix{}, err
	}
	p, err := parsePrefix("address", r.GetAddress(), false)
	if err != nil {
		return "", netip.Prefix{}, err
	}
	if !p.Addr().IsGlobalUnicast() && !p.Addr().IsPrivate() && !p.Addr().IsLinkLocalUnicast() {
		return "", netip.Prefix{}, invalid("address", "%s is not a unicast address", p.Addr())
	}
	return r.GetInterface(), p, nil
}

// ifResolver maps interface names to indices for route parsing.
type ifResolver func(name string) (uint32, bool)

// parseRoutes validates a batch. Interface names are resolved here so that
// an unknown name is an InvalidArgument on the right field.
func parseRoutes(rs []*vecnetv1.Route, forDelete bool, ifIndex ifResolver) ([]tables.Route, error) {
	out := make([]tables.Route, 0, len(rs))
	for i, r := range rs {
		f := fmt.Sprintf("routes[%d]", i)
		if r == nil {
			return nil, invalid(f, "null route")
		}
		p, err := parsePrefix(f+".prefix", r.GetPrefix(), true)
		if err != nil {
			return nil, err
		}
		src, err := parseRouteSource(f+".source", r.GetSource(), true)
		if err != nil {
			return nil, err
		}
		tr := tables.Route{Prefix: p, VRF: r.GetVrf(), Source: src}
		if !forDelete && len(r.GetNextHops()) == 0 {
			return nil, invalid(f+".next_hops", "at least one next hop (via IP or dev NAME) is required")
		}
		for j, nh := range r.GetNextHops() {
			nf := fmt.Sprintf("%s.next_hops[%d]", f, j)
			if nh == nil {
				return nil, invalid(nf, "null next hop")
			}
			var path tables.Path
			switch e := nh.GetEncap(); e {
			case "", "none":
			case "ipip", "vxlan":
				path.Encap.Type, _ = tables.ParseEncap(e)
				if nh.GetInterface() != "" {
					return nil, invalid(nf+".interface", "a tunnel leaves by the uplink its node address resolves through; no interface")
				}
				if a, err := netip.ParseAddr(nh.GetIp()); err != nil || !a.Is4() {
					return nil, invalid(nf+".ip", "a tunnel needs the remote node's IPv4 address, not %q", nh.GetIp())
				}
			default:
				return nil, invalid(nf+".encap", "unknown encapsulation %q (want ipip, vxlan or none)", e)
			}
			if v := nh.GetVni(); v != 0 && path.Encap.Type != tables.EncapVXLAN {
				return nil, invalid(nf+".vni", "a vni needs encap vxlan")
			} else if v > header.VXLANMaxVNI {
				return nil, invalid(nf+".vni", "%d does not fit in 24 bits", v)
			} else if path.Encap.Type == tables.EncapVXLAN {
				path.Encap.VNI = v
				if v == 0 {
					path.Encap.VNI = DefaultVNI
				}
			}
			if nh.GetIp() != "" {
				a, err := parseAddr(nf+".ip", nh.GetIp())
				if err != nil {
					return nil, err
				}
				if a.Is4() != p.Addr().Is4() && path.Encap.Type == tables.EncapNone {
					return nil, invalid(nf+".ip", "%s is not of the prefix's address family", a)
				}
				if a.IsUnspecified() || a.IsMulticast() {
					return nil, invalid(nf+".ip", "%s is not a unicast address", a)
				}
				path.NextHop = a
			}
			if name := nh.GetInterface(); name != "" {
				idx, ok := ifIndex(name)
				if !ok {
					return nil, invalid(nf+".interface", "no interface %q", name)
				}
				path.Interface = idx
			}
			if !path.NextHop.IsValid() && path.Interface == 0 {
				return nil, invalid(nf, "needs an ip, an interface or both")
			}
			if w := nh.GetWeight(); w > 1000 {
				return nil, invalid(nf+".weight", "%d is more than 1000", w)
			} else {
				path.Weight = max(w, 1)
			}
			tr.Paths = append(tr.Paths, path)
		}
		if len(tr.Paths) > 64 {
			return nil, invalid(f+".next_hops", "%d next hops; at most 64", len(tr.Paths))
		}
		out = append(out, tr)
	}
	return out, nil
}

// parseRouteSource maps the sources API callers own to the tables': "static"
// and "bgp", and with empty true also "" (static); the dataplane's own
// sources ("connected", "uplink", ...) are not theirs to write.
func parseRouteSource(field, s string, empty bool) (tables.Source, error) {
	switch s {
	case "static":
		return tables.SourceStatic, nil
	case "bgp":
		return tables.SourceBGP, nil
	case "":
		if empty {
			return tables.SourceStatic, nil
		}
	}
	return 0, invalid(field, "%q: want static or bgp", s)
}

// DefaultVNI is the VXLAN network identifier used when a route names
// none: Calico's default, so captures look familiar to its users.
const DefaultVNI = 4096

// parsePodPrefixes checks a pod prefix list. A default route would steer
// the host's own traffic to the dataplane, so prefixes must be at least
// /8 (IPv4) or /16 (IPv6) long.
func parsePodPrefixes(in []string) ([]netip.Prefix, error) {
	if len(in) > 512 {
		return nil, invalid("prefixes", "%d prefixes; at most 512", len(in))
	}
	out := make([]netip.Prefix, 0, len(in))
	for i, s := range in {
		f := fmt.Sprintf("prefixes[%d]", i)
		p, err := parsePrefix(f, s, true)
		if err != nil {
			return nil, err
		}
		if (p.Addr().Is4() && p.Bits() < 8) || (p.Addr().Is6() && p.Bits() < 16) {
			return nil, invalid(f, "%s is too wide to be a pod prefix (it would take the host's own traffic)", p)
		}
		out = append(out, p)
	}
	return out, nil
}
