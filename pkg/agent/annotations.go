package agent

import (
	"encoding/json"
	"fmt"
	"net/netip"
)

// Calico's pod and namespace annotations that choose addresses (the pod's
// take precedence over its namespace's).
const (
	AnnotationIPv4Pools = "cni.projectcalico.org/ipv4pools"
	AnnotationIPv6Pools = "cni.projectcalico.org/ipv6pools"
	AnnotationIPAddrs   = "cni.projectcalico.org/ipAddrs"
)

// addressRequest is what a pod's annotations ask of IPAM.
type addressRequest struct {
	IPv4Pools, IPv6Pools []string
	Fixed                []netip.Addr
}

// parseAnnotations reads the pool and fixed-address annotations of a pod,
// falling back to its namespace's for pools. Errors name the annotation and
// say what was expected, since users write these by hand.
func parseAnnotations(pod, ns map[string]string) (addressRequest, error) {
	var r addressRequest
	list := func(key string) ([]string, error) {
		v, ok := pod[key]
		if !ok {
			v, ok = ns[key]
		}
		if !ok {
			return nil, nil
		}
		var out []string
		if err := json.Unmarshal([]byte(v), &out); err != nil {
			return nil, fmt.Errorf("annotation %s=%q: want a JSON list of pool names or CIDRs, e.g. [\"default-ipv4-ippool\"]", key, v)
		}
		return out, nil
	}
	var err error
	if r.IPv4Pools, err = list(AnnotationIPv4Pools); err != nil {
		return r, err
	}
	if r.IPv6Pools, err = list(AnnotationIPv6Pools); err != nil {
		return r, err
	}
	if v, ok := pod[AnnotationIPAddrs]; ok {
		var ips []string
		if err := json.Unmarshal([]byte(v), &ips); err != nil {
			return r, fmt.Errorf("annotation %s=%q: want a JSON list of IP addresses, e.g. [\"10.0.0.5\"]", AnnotationIPAddrs, v)
		}
		fams := map[bool]bool{}
		for _, s := range ips {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return r, fmt.Errorf("annotation %s: %q is not an IP address", AnnotationIPAddrs, s)
			}
			if fams[a.Is4()] {
				return r, fmt.Errorf("annotation %s: at most one IPv4 and one IPv6 address", AnnotationIPAddrs)
			}
			fams[a.Is4()] = true
			r.Fixed = append(r.Fixed, a)
		}
	}
	return r, nil
}
