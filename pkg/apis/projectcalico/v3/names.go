package v3

import (
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// AffinityPrefixHost is the prefix of IPAMBlockSpec.Affinity for a node.
const AffinityPrefixHost = "host:"

// BlockName is the object name of the IPAMBlock of a block CIDR, as Calico
// names it: the masked CIDR with '.', ':' and '/' replaced by '-'
// (10.0.0.0/26 -> 10-0-0-0-26, fd00:10::/122 -> fd00-10---122). An IPv6
// block whose text starts with "::" would give a name starting with '-',
// which is not a valid object name: such names get a leading "0"
// (::100/122 -> 0--100-122).
func BlockName(cidr netip.Prefix) string {
	s := cidr.Masked().String()
	s = strings.NewReplacer(".", "-", ":", "-", "/", "-").Replace(s)
	if strings.HasPrefix(s, "-") {
		s = "0" + s
	}
	return s
}

// BlockAffinityName is the object name of the BlockAffinity of a node and a
// block: "<node>-<BlockName(cidr)>" (node1-10-0-0-0-26), as Calico names it.
// When that would exceed the 253 characters of an object name, the node part
// is cut and a hash of the whole node name appended, so names stay unique.
func BlockAffinityName(node string, cidr netip.Prefix) string {
	block := BlockName(cidr)
	name := node + "-" + block
	if len(name) <= validation.DNS1123SubdomainMaxLength {
		return name
	}
	h := shortHash(node)
	keep := validation.DNS1123SubdomainMaxLength - len(block) - len(h) - 2
	cut := strings.TrimRight(node[:keep], ".-")
	return cut + "-" + h + "-" + block
}

// HandleName is the object name of the IPAMHandle of a handle ID: the ID
// itself when it is a valid object name (k8s-pod-network.<containerID> is),
// else the ID lower-cased with invalid characters replaced by '-', cut to
// fit, and followed by '-' and a hash of the exact ID (so IDs that differ
// only in case or punctuation get different names). The handle ID itself is
// kept in IPAMHandleSpec.HandleID.
func HandleName(handleID string) string {
	if len(validation.IsDNS1123Subdomain(handleID)) == 0 {
		return handleID
	}
	var b strings.Builder
	for _, r := range strings.ToLower(handleID) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	s := b.String()
	h := shortHash(handleID)
	if max := validation.DNS1123SubdomainMaxLength - len(h) - 1; len(s) > max {
		s = s[:max]
	}
	// Each dot-separated label must start and end with an alphanumeric.
	labels := strings.Split(s, ".")
	kept := labels[:0]
	for _, l := range labels {
		if l = strings.Trim(l, "-"); l != "" {
			kept = append(kept, l)
		}
	}
	s = strings.Join(kept, ".")
	if s == "" {
		return "h-" + h
	}
	return s + "-" + h
}

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:5])
}

// AffinityForNode is the IPAMBlockSpec.Affinity value of a node.
func AffinityForNode(node string) string { return AffinityPrefixHost + node }

// AffineNode returns the node a block is affine to ("" if none or if the
// affinity is not a host affinity).
func (s *IPAMBlockSpec) AffineNode() string {
	if s.Affinity == nil {
		return ""
	}
	if n, ok := strings.CutPrefix(*s.Affinity, AffinityPrefixHost); ok {
		return n
	}
	return ""
}

// Prefix parses the block's CIDR.
func (s *IPAMBlockSpec) Prefix() (netip.Prefix, error) { return netip.ParsePrefix(s.CIDR) }
