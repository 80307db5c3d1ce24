package v3

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/vecnet/vecnet/pkg/ipam/selector"
)

// The Validate methods check a resource fully (the CRD schemas check only
// what OpenAPI and CEL can express). They return nil or an error listing
// every problem, each naming its field: "spec.blockSize: Invalid value: 19:
// must be 20..32 for an IPv4 pool".

var (
	linkLocalV4 = netip.MustParsePrefix("169.254.0.0/16")
	linkLocalV6 = netip.MustParsePrefix("fe80::/10")
)

// Validate checks an IPPool.
func (p *IPPool) Validate() error {
	errs := validateName(p.Name)
	errs = append(errs, p.Spec.validate(field.NewPath("spec"))...)
	return errs.ToAggregate()
}

// ParseCIDR parses the pool's CIDR, masked: like Calico, a CIDR written with
// host bits (10.0.0.1/16) means its network (10.0.0.0/16).
func (s *IPPoolSpec) ParseCIDR() (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s.CIDR)
	return p.Masked(), err
}

// EffectiveBlockSize is the block size, defaulted for the pool's family
// (26 for IPv4, 122 for IPv6). The CIDR must be valid.
func (s *IPPoolSpec) EffectiveBlockSize() int {
	if s.BlockSize != 0 {
		return s.BlockSize
	}
	if strings.Contains(s.CIDR, ":") {
		return DefaultBlockSizeV6
	}
	return DefaultBlockSizeV4
}

// EffectiveAllowedUses is allowedUses, defaulted to [Workload, Tunnel].
func (s *IPPoolSpec) EffectiveAllowedUses() []IPPoolAllowedUse {
	if len(s.AllowedUses) == 0 {
		return []IPPoolAllowedUse{IPPoolAllowedUseWorkload, IPPoolAllowedUseTunnel}
	}
	return s.AllowedUses
}

// Allows reports whether the pool may be used for use.
func (s *IPPoolSpec) Allows(use IPPoolAllowedUse) bool {
	for _, u := range s.EffectiveAllowedUses() {
		if u == use {
			return true
		}
	}
	return false
}

// IsManual reports whether the pool's assignmentMode is Manual.
func (s *IPPoolSpec) IsManual() bool {
	return s.AssignmentMode != nil && *s.AssignmentMode == Manual
}

func (s *IPPoolSpec) validate(path *field.Path) field.ErrorList {
	var errs field.ErrorList
	cidrPath := path.Child("cidr")
	cidr, err := netip.ParsePrefix(s.CIDR)
	if err != nil {
		errs = append(errs, field.Invalid(cidrPath, s.CIDR, "must be a CIDR such as 10.244.0.0/16"))
	} else {
		if cidr.Addr().Is4In6() {
			errs = append(errs, field.Invalid(cidrPath, s.CIDR, "must be an IPv4 or IPv6 CIDR, not IPv4-mapped IPv6"))
		}
		link := linkLocalV4
		if cidr.Addr().Is6() {
			link = linkLocalV6
		}
		if cidr.Overlaps(link) {
			errs = append(errs, field.Invalid(cidrPath, s.CIDR, fmt.Sprintf("overlaps the link-local range %s", link)))
		}
		bsPath := path.Child("blockSize")
		bs := s.EffectiveBlockSize()
		lo, hi, fam := MinBlockSizeV4, MaxBlockSizeV4, "IPv4"
		if cidr.Addr().Is6() {
			lo, hi, fam = MinBlockSizeV6, MaxBlockSizeV6, "IPv6"
		}
		switch {
		case bs < lo || bs > hi:
			errs = append(errs, field.Invalid(bsPath, s.BlockSize, fmt.Sprintf("must be %d..%d for an %s pool", lo, hi, fam)))
		case bs < cidr.Bits():
			errs = append(errs, field.Invalid(bsPath, s.BlockSize, fmt.Sprintf("blocks of /%d do not fit in the pool %s: must be at least %d", bs, s.CIDR, cidr.Bits())))
		}
		if cidr.Addr().Is6() && s.IPIPMode != "" && s.IPIPMode != IPIPModeNever {
			errs = append(errs, field.Invalid(path.Child("ipipMode"), s.IPIPMode, "IPIP is not supported on an IPv6 pool"))
		}
	}
	switch s.IPIPMode {
	case "", IPIPModeNever, IPIPModeAlways, IPIPModeCrossSubnet:
	default:
		errs = append(errs, field.NotSupported(path.Child("ipipMode"), s.IPIPMode, []string{"Never", "Always", "CrossSubnet"}))
	}
	switch s.VXLANMode {
	case "", VXLANModeNever, VXLANModeAlways, VXLANModeCrossSubnet:
	default:
		errs = append(errs, field.NotSupported(path.Child("vxlanMode"), s.VXLANMode, []string{"Never", "Always", "CrossSubnet"}))
	}
	if s.IPIPMode != "" && s.IPIPMode != IPIPModeNever && s.VXLANMode != "" && s.VXLANMode != VXLANModeNever {
		errs = append(errs, field.Invalid(path.Child("vxlanMode"), s.VXLANMode, "ipipMode and vxlanMode cannot both be enabled"))
	}
	errs = append(errs, validateSelector(path.Child("nodeSelector"), s.NodeSelector)...)
	errs = append(errs, validateSelector(path.Child("namespaceSelector"), s.NamespaceSelector)...)
	usesPath := path.Child("allowedUses")
	seen := map[IPPoolAllowedUse]bool{}
	for i, u := range s.AllowedUses {
		switch u {
		case IPPoolAllowedUseWorkload, IPPoolAllowedUseTunnel, IPPoolAllowedUseLoadBalancer:
		default:
			errs = append(errs, field.NotSupported(usesPath.Index(i), u, []string{"Workload", "Tunnel", "LoadBalancer"}))
		}
		if seen[u] {
			errs = append(errs, field.Duplicate(usesPath.Index(i), u))
		}
		seen[u] = true
	}
	if seen[IPPoolAllowedUseLoadBalancer] && len(seen) > 1 {
		errs = append(errs, field.Invalid(usesPath, s.AllowedUses, "LoadBalancer cannot be combined with other uses"))
	}
	if s.AssignmentMode != nil && *s.AssignmentMode != Automatic && *s.AssignmentMode != Manual {
		errs = append(errs, field.NotSupported(path.Child("assignmentMode"), *s.AssignmentMode, []string{"Automatic", "Manual"}))
	}
	return errs
}

// Validate checks an IPAMConfiguration.
func (c *IPAMConfiguration) Validate() error {
	errs := validateName(c.Name)
	if c.Name != IPAMConfigurationName {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), c.Name, "must be "+IPAMConfigurationName))
	}
	if c.Spec.MaxBlocksPerHost < 0 {
		errs = append(errs, field.Invalid(field.NewPath("spec", "maxBlocksPerHost"), c.Spec.MaxBlocksPerHost, "must not be negative"))
	}
	return errs.ToAggregate()
}

var communityRE = regexp.MustCompile(`^(\d+):(\d+)$|^(\d+):(\d+):(\d+)$`)

// validCommunity checks aa:nn (16-bit parts) or aa:nn:mm (32-bit parts).
func validCommunity(v string) bool {
	if !communityRE.MatchString(v) {
		return false
	}
	parts := strings.Split(v, ":")
	bits := 16
	if len(parts) == 3 {
		bits = 32
	}
	for _, p := range parts {
		if _, err := strconv.ParseUint(p, 10, bits); err != nil {
			return false
		}
	}
	return true
}

// Validate checks a BGPConfiguration.
func (c *BGPConfiguration) Validate() error {
	errs := validateName(c.Name)
	path := field.NewPath("spec")
	s := &c.Spec
	switch s.LogSeverityScreen {
	case "", "Debug", "Info", "Warning", "Error", "Fatal":
	default:
		errs = append(errs, field.NotSupported(path.Child("logSeverityScreen"), s.LogSeverityScreen, []string{"Debug", "Info", "Warning", "Error", "Fatal"}))
	}
	for i, b := range s.ServiceClusterIPs {
		errs = append(errs, validateCIDR(path.Child("serviceClusterIPs").Index(i).Child("cidr"), b.CIDR, true)...)
	}
	for i, b := range s.ServiceExternalIPs {
		errs = append(errs, validateCIDR(path.Child("serviceExternalIPs").Index(i).Child("cidr"), b.CIDR, true)...)
	}
	for i, b := range s.ServiceLoadBalancerIPs {
		errs = append(errs, validateCIDR(path.Child("serviceLoadBalancerIPs").Index(i).Child("cidr"), b.CIDR, true)...)
	}
	names := map[string]bool{}
	for i, cm := range s.Communities {
		p := path.Child("communities").Index(i)
		if cm.Name == "" {
			errs = append(errs, field.Required(p.Child("name"), ""))
		} else if names[cm.Name] {
			errs = append(errs, field.Duplicate(p.Child("name"), cm.Name))
		}
		names[cm.Name] = true
		if !validCommunity(cm.Value) {
			errs = append(errs, field.Invalid(p.Child("value"), cm.Value, "must be aa:nn (16-bit numbers) or aa:nn:mm (32-bit numbers)"))
		}
	}
	for i, pa := range s.PrefixAdvertisements {
		p := path.Child("prefixAdvertisements").Index(i)
		errs = append(errs, validateCIDR(p.Child("cidr"), pa.CIDR, true)...)
		for j, cm := range pa.Communities {
			if !names[cm] && !validCommunity(cm) {
				errs = append(errs, field.Invalid(p.Child("communities").Index(j), cm, "must name an entry of spec.communities or be aa:nn or aa:nn:mm"))
			}
		}
	}
	errs = append(errs, validatePassword(path.Child("nodeMeshPassword"), s.NodeMeshPassword)...)
	if s.NodeMeshMaxRestartTime != nil && s.NodeMeshMaxRestartTime.Duration < 0 {
		errs = append(errs, field.Invalid(path.Child("nodeMeshMaxRestartTime"), s.NodeMeshMaxRestartTime.Duration.String(), "must not be negative"))
	}
	if s.BindMode != nil && *s.BindMode != BindModeNone && *s.BindMode != BindModeNodeIP {
		errs = append(errs, field.NotSupported(path.Child("bindMode"), *s.BindMode, []string{"None", "NodeIP"}))
	}
	if v := s.LocalWorkloadPeeringIPV4; v != "" {
		if a, err := netip.ParseAddr(v); err != nil || !a.Is4() {
			errs = append(errs, field.Invalid(path.Child("localWorkloadPeeringIPV4"), v, "must be an IPv4 address"))
		}
	}
	if v := s.LocalWorkloadPeeringIPV6; v != "" {
		if a, err := netip.ParseAddr(v); err != nil || !a.Is6() || a.Is4In6() {
			errs = append(errs, field.Invalid(path.Child("localWorkloadPeeringIPV6"), v, "must be an IPv6 address"))
		}
	}
	if v := s.ProgramClusterRoutes; v != nil && *v != "Enabled" && *v != "Disabled" {
		errs = append(errs, field.NotSupported(path.Child("programClusterRoutes"), *v, []string{"Enabled", "Disabled"}))
	}
	for i, ifc := range s.IgnoredInterfaces {
		if ifc == "" {
			errs = append(errs, field.Required(path.Child("ignoredInterfaces").Index(i), "must not be empty"))
		}
	}
	return errs.ToAggregate()
}

// ParsePeerIP splits spec.peerIP into address and port (0 when absent):
// 192.0.2.1, 192.0.2.1:1179, 2001:db8::1, [2001:db8::1]:1179.
func (s *BGPPeerSpec) ParsePeerIP() (netip.Addr, uint16, error) {
	if a, err := netip.ParseAddr(s.PeerIP); err == nil {
		return a, 0, nil
	}
	ap, err := netip.ParseAddrPort(s.PeerIP)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("invalid peerIP %q: must be IP, IPv4:port or [IPv6]:port", s.PeerIP)
	}
	return ap.Addr(), ap.Port(), nil
}

// Validate checks a BGPPeer.
func (p *BGPPeer) Validate() error {
	errs := validateName(p.Name)
	path := field.NewPath("spec")
	s := &p.Spec
	if s.Node != "" && s.NodeSelector != "" {
		errs = append(errs, field.Invalid(path.Child("nodeSelector"), s.NodeSelector, "cannot be set together with spec.node"))
	}
	if s.Node != "" {
		for _, msg := range validation.IsDNS1123Subdomain(s.Node) {
			errs = append(errs, field.Invalid(path.Child("node"), s.Node, msg))
		}
	}
	errs = append(errs, validateSelector(path.Child("nodeSelector"), s.NodeSelector)...)
	errs = append(errs, validateSelector(path.Child("peerSelector"), s.PeerSelector)...)
	errs = append(errs, validateSelector(path.Child("localWorkloadSelector"), s.LocalWorkloadSelector)...)
	if s.PeerSelector != "" {
		if s.PeerIP != "" {
			errs = append(errs, field.Invalid(path.Child("peerIP"), s.PeerIP, "cannot be set together with spec.peerSelector"))
		}
		if s.ASNumber != 0 {
			errs = append(errs, field.Invalid(path.Child("asNumber"), s.ASNumber, "cannot be set together with spec.peerSelector"))
		}
	}
	if s.PeerIP != "" {
		if _, _, err := s.ParsePeerIP(); err != nil {
			errs = append(errs, field.Invalid(path.Child("peerIP"), s.PeerIP, "must be IP, IPv4:port or [IPv6]:port"))
		}
	}
	errs = append(errs, validatePassword(path.Child("password"), s.Password)...)
	if s.SourceAddress != "" && s.SourceAddress != SourceAddressUseNodeIP && s.SourceAddress != SourceAddressNone {
		errs = append(errs, field.NotSupported(path.Child("sourceAddress"), s.SourceAddress, []string{"UseNodeIP", "None"}))
	}
	if v := s.FailureDetectionMode; v != "" && v != FailureDetectionModeNone && v != FailureDetectionModeBFDIfDirectlyConnected {
		errs = append(errs, field.NotSupported(path.Child("failureDetectionMode"), v, []string{"None", "BFDIfDirectlyConnected"}))
	}
	if v := s.RestartMode; v != "" && v != RestartModeGracefulRestart && v != RestartModeLongLivedGracefulRestart {
		errs = append(errs, field.NotSupported(path.Child("restartMode"), v, []string{"GracefulRestart", "LongLivedGracefulRestart"}))
	}
	if v := s.BIRDGatewayMode; v != "" && v != BIRDGatewayModeRecursive && v != BIRDGatewayModeDirectIfDirectlyConnected {
		errs = append(errs, field.NotSupported(path.Child("birdGatewayMode"), v, []string{"Recursive", "DirectIfDirectlyConnected"}))
	}
	if v := s.NextHopMode; v != nil && *v != NextHopModeAuto && *v != NextHopModeSelf && *v != NextHopModeKeep {
		errs = append(errs, field.NotSupported(path.Child("nextHopMode"), *v, []string{"Auto", "Self", "Keep"}))
	}
	if s.MaxRestartTime != nil && s.MaxRestartTime.Duration < 0 {
		errs = append(errs, field.Invalid(path.Child("maxRestartTime"), s.MaxRestartTime.Duration.String(), "must not be negative"))
	}
	if s.NumAllowedLocalASNumbers != nil && *s.NumAllowedLocalASNumbers < 0 {
		errs = append(errs, field.Invalid(path.Child("numAllowedLocalASNumbers"), *s.NumAllowedLocalASNumbers, "must not be negative"))
	}
	for i, f := range s.Filters {
		for _, msg := range validation.IsDNS1123Subdomain(f) {
			errs = append(errs, field.Invalid(path.Child("filters").Index(i), f, msg))
		}
	}
	if s.ReachableBy != "" {
		if _, err := netip.ParseAddr(s.ReachableBy); err != nil {
			errs = append(errs, field.Invalid(path.Child("reachableBy"), s.ReachableBy, "must be an IP address"))
		}
	}
	return errs.ToAggregate()
}

var ifaceRE = regexp.MustCompile(`^[a-zA-Z0-9_.*+-]{1,15}$`)

// Validate checks a BGPFilter.
func (f *BGPFilter) Validate() error {
	errs := validateName(f.Name)
	path := field.NewPath("spec")
	for i, r := range f.Spec.ExportV4 {
		errs = append(errs, validateRule(path.Child("exportV4").Index(i), r.CIDR, r.MatchOperator, r.Action, r.Source, r.Interface, false, r.PrefixLength != nil)...)
		errs = append(errs, r.PrefixLength.bounds().validate(path.Child("exportV4").Index(i).Child("prefixLength"), r.CIDR, 32)...)
	}
	for i, r := range f.Spec.ImportV4 {
		errs = append(errs, validateRule(path.Child("importV4").Index(i), r.CIDR, r.MatchOperator, r.Action, r.Source, r.Interface, false, r.PrefixLength != nil)...)
		errs = append(errs, r.PrefixLength.bounds().validate(path.Child("importV4").Index(i).Child("prefixLength"), r.CIDR, 32)...)
	}
	for i, r := range f.Spec.ExportV6 {
		errs = append(errs, validateRule(path.Child("exportV6").Index(i), r.CIDR, r.MatchOperator, r.Action, r.Source, r.Interface, true, r.PrefixLength != nil)...)
		errs = append(errs, r.PrefixLength.bounds().validate(path.Child("exportV6").Index(i).Child("prefixLength"), r.CIDR, 128)...)
	}
	for i, r := range f.Spec.ImportV6 {
		errs = append(errs, validateRule(path.Child("importV6").Index(i), r.CIDR, r.MatchOperator, r.Action, r.Source, r.Interface, true, r.PrefixLength != nil)...)
		errs = append(errs, r.PrefixLength.bounds().validate(path.Child("importV6").Index(i).Child("prefixLength"), r.CIDR, 128)...)
	}
	return errs.ToAggregate()
}

type prefixBounds struct{ min, max *int32 }

func (p *BGPFilterPrefixLengthV4) bounds() prefixBounds {
	if p == nil {
		return prefixBounds{}
	}
	return prefixBounds{p.Min, p.Max}
}

func (p *BGPFilterPrefixLengthV6) bounds() prefixBounds {
	if p == nil {
		return prefixBounds{}
	}
	return prefixBounds{p.Min, p.Max}
}

func (b prefixBounds) validate(path *field.Path, cidr string, bits int32) field.ErrorList {
	var errs field.ErrorList
	min, max := b.min, b.max
	for _, b := range []struct {
		name string
		v    *int32
	}{{"min", min}, {"max", max}} {
		if b.v != nil && (*b.v < 0 || *b.v > bits) {
			errs = append(errs, field.Invalid(path.Child(b.name), *b.v, fmt.Sprintf("must be 0..%d", bits)))
		}
	}
	if min != nil && max != nil && *min > *max {
		errs = append(errs, field.Invalid(path.Child("min"), *min, "must not exceed max"))
	}
	if p, err := netip.ParsePrefix(cidr); err == nil && min != nil && int(*min) < p.Bits() {
		errs = append(errs, field.Invalid(path.Child("min"), *min, fmt.Sprintf("must be at least the CIDR's prefix length %d", p.Bits())))
	}
	return errs
}

func validateRule(path *field.Path, cidr string, op BGPFilterMatchOperator, action BGPFilterAction, src BGPFilterMatchSource, ifc string, v6, hasPrefixLength bool) field.ErrorList {
	var errs field.ErrorList
	switch action {
	case Accept, Reject:
	case "":
		errs = append(errs, field.Required(path.Child("action"), "must be Accept or Reject"))
	default:
		errs = append(errs, field.NotSupported(path.Child("action"), action, []string{"Accept", "Reject"}))
	}
	switch op {
	case "", MatchOperatorEqual, MatchOperatorNotEqual, MatchOperatorIn, MatchOperatorNotIn:
	default:
		errs = append(errs, field.NotSupported(path.Child("matchOperator"), op, []string{"Equal", "NotEqual", "In", "NotIn"}))
	}
	if (cidr == "") != (op == "") {
		errs = append(errs, field.Invalid(path.Child("matchOperator"), op, "cidr and matchOperator must both be set or both be empty"))
	}
	if hasPrefixLength && cidr == "" {
		errs = append(errs, field.Required(path.Child("cidr"), "cidr is required when prefixLength is set"))
	}
	if cidr != "" {
		p, err := netip.ParsePrefix(cidr)
		switch {
		case err != nil:
			errs = append(errs, field.Invalid(path.Child("cidr"), cidr, "must be a CIDR"))
		case p.Addr().Is6() != v6:
			fam := "an IPv4"
			if v6 {
				fam = "an IPv6"
			}
			errs = append(errs, field.Invalid(path.Child("cidr"), cidr, "must be "+fam+" CIDR"))
		}
	}
	if src != "" && src != BGPFilterSourceRemotePeers {
		errs = append(errs, field.NotSupported(path.Child("source"), src, []string{"RemotePeers"}))
	}
	if ifc != "" && !ifaceRE.MatchString(ifc) {
		errs = append(errs, field.Invalid(path.Child("interface"), ifc, "must be an interface name or glob of at most 15 characters"))
	}
	return errs
}

// Validate checks an IPAMBlock's internal consistency.
func (b *IPAMBlock) Validate() error {
	errs := validateName(b.Name)
	path := field.NewPath("spec")
	s := &b.Spec
	cidr, err := netip.ParsePrefix(s.CIDR)
	if err != nil || cidr.Masked() != cidr {
		errs = append(errs, field.Invalid(path.Child("cidr"), s.CIDR, "must be a CIDR without host bits"))
		return errs.ToAggregate()
	}
	if b.Name != "" && b.Name != BlockName(cidr) {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), b.Name, "must be "+BlockName(cidr)))
	}
	hostBits := cidr.Addr().BitLen() - cidr.Bits()
	if hostBits > 12 {
		errs = append(errs, field.Invalid(path.Child("cidr"), s.CIDR, "a block holds at most 4096 addresses"))
		return errs.ToAggregate()
	}
	size := 1 << hostBits
	if len(s.Allocations) != size {
		errs = append(errs, field.Invalid(path.Child("allocations"), len(s.Allocations), fmt.Sprintf("must have one entry per address (%d)", size)))
	}
	free := 0
	for i, a := range s.Allocations {
		if a == nil {
			free++
		} else if *a < 0 || *a >= len(s.Attributes) {
			errs = append(errs, field.Invalid(path.Child("allocations").Index(i), *a, "must index spec.attributes"))
		}
	}
	seen := map[int]bool{}
	for i, o := range s.Unallocated {
		switch {
		case o < 0 || o >= len(s.Allocations):
			errs = append(errs, field.Invalid(path.Child("unallocated").Index(i), o, "is not an ordinal of the block"))
		case s.Allocations[o] != nil:
			errs = append(errs, field.Invalid(path.Child("unallocated").Index(i), o, "is allocated"))
		case seen[o]:
			errs = append(errs, field.Duplicate(path.Child("unallocated").Index(i), o))
		}
		seen[o] = true
	}
	if len(s.Unallocated) != free && len(errs) == 0 {
		errs = append(errs, field.Invalid(path.Child("unallocated"), len(s.Unallocated), fmt.Sprintf("must list every free ordinal (%d)", free)))
	}
	if s.Affinity != nil && !strings.HasPrefix(*s.Affinity, AffinityPrefixHost) && !strings.HasPrefix(*s.Affinity, "virtual:") {
		errs = append(errs, field.Invalid(path.Child("affinity"), *s.Affinity, "must be host:<node> or virtual:<node>"))
	}
	return errs.ToAggregate()
}

// Validate checks a BlockAffinity.
func (a *BlockAffinity) Validate() error {
	errs := validateName(a.Name)
	path := field.NewPath("spec")
	switch a.Spec.State {
	case StatePending, StateConfirmed, StatePendingDeletion:
	default:
		errs = append(errs, field.NotSupported(path.Child("state"), a.Spec.State, []string{"pending", "confirmed", "pendingDeletion"}))
	}
	if a.Spec.Node == "" {
		errs = append(errs, field.Required(path.Child("node"), ""))
	}
	cidr, err := netip.ParsePrefix(a.Spec.CIDR)
	if err != nil || cidr.Masked() != cidr {
		errs = append(errs, field.Invalid(path.Child("cidr"), a.Spec.CIDR, "must be a CIDR without host bits"))
	} else if a.Name != "" && a.Spec.Node != "" && a.Name != BlockAffinityName(a.Spec.Node, cidr) {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), a.Name, "must be "+BlockAffinityName(a.Spec.Node, cidr)))
	}
	return errs.ToAggregate()
}

// Validate checks an IPAMHandle.
func (h *IPAMHandle) Validate() error {
	errs := validateName(h.Name)
	path := field.NewPath("spec")
	if h.Spec.HandleID == "" {
		errs = append(errs, field.Required(path.Child("handleID"), ""))
	} else if h.Name != "" && h.Name != HandleName(h.Spec.HandleID) {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), h.Name, "must be "+HandleName(h.Spec.HandleID)))
	}
	for k, n := range h.Spec.Block {
		if _, err := netip.ParsePrefix(k); err != nil {
			errs = append(errs, field.Invalid(path.Child("block").Key(k), k, "must be a CIDR"))
		}
		if n < 0 {
			errs = append(errs, field.Invalid(path.Child("block").Key(k), n, "must not be negative"))
		}
	}
	return errs.ToAggregate()
}

func validateName(name string) field.ErrorList {
	var errs field.ErrorList
	p := field.NewPath("metadata", "name")
	if name == "" {
		return append(errs, field.Required(p, ""))
	}
	for _, msg := range validation.IsDNS1123Subdomain(name) {
		errs = append(errs, field.Invalid(p, name, msg))
	}
	return errs
}

func validateSelector(path *field.Path, s string) field.ErrorList {
	if s == "" {
		return nil
	}
	if _, err := selector.Parse(s); err != nil {
		return field.ErrorList{field.Invalid(path, s, err.Error())}
	}
	return nil
}

func validateCIDR(path *field.Path, s string, required bool) field.ErrorList {
	if s == "" {
		if required {
			return field.ErrorList{field.Required(path, "")}
		}
		return nil
	}
	if _, err := netip.ParsePrefix(s); err != nil {
		return field.ErrorList{field.Invalid(path, s, "must be a CIDR")}
	}
	return nil
}

func validatePassword(path *field.Path, p *BGPPassword) field.ErrorList {
	if p == nil || p.SecretKeyRef == nil {
		return nil
	}
	var errs field.ErrorList
	if p.SecretKeyRef.Name == "" {
		errs = append(errs, field.Required(path.Child("secretKeyRef", "name"), ""))
	}
	if p.SecretKeyRef.Key == "" {
		errs = append(errs, field.Required(path.Child("secretKeyRef", "key"), ""))
	}
	return errs
}
