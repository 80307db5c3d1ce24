package v3

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Kinds of this file.
const (
	KindIPPool     = "IPPool"
	KindIPPoolList = "IPPoolList"
)

// Default block sizes (prefix lengths) of the IPAM blocks carved from a pool.
const (
	DefaultBlockSizeV4 = 26
	DefaultBlockSizeV6 = 122
	MinBlockSizeV4     = 20
	MaxBlockSizeV4     = 32
	MinBlockSizeV6     = 116
	MaxBlockSizeV6     = 128
)

// IPPool is a range of addresses from which Calico IPAM assigns pod (and
// tunnel, and load-balancer) addresses, together with how traffic to it is
// routed: encapsulation, NAT for outgoing traffic, BGP export.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster
// +kubebuilder:printcolumn:name="CIDR",type=string,JSONPath=".spec.cidr"
// +kubebuilder:printcolumn:name="Block",type=integer,JSONPath=".spec.blockSize"
// +kubebuilder:printcolumn:name="Disabled",type=boolean,JSONPath=".spec.disabled"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
type IPPool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec IPPoolSpec `json:"spec,omitempty"`
}

// IPPoolSpec is the specification of an IPPool.
//
// +kubebuilder:validation:XValidation:rule="!has(self.blockSize) || (self.cidr.contains(':') ? (self.blockSize >= 116 && self.blockSize <= 128) : (self.blockSize >= 20 && self.blockSize <= 32))",message="blockSize must be 20..32 for an IPv4 pool and 116..128 for an IPv6 pool"
// +kubebuilder:validation:XValidation:rule="!(self.cidr.contains(':') && has(self.ipipMode) && self.ipipMode != 'Never')",message="IPIP is not supported on an IPv6 pool"
// +kubebuilder:validation:XValidation:rule="!(has(self.ipipMode) && self.ipipMode != 'Never' && has(self.vxlanMode) && self.vxlanMode != 'Never')",message="ipipMode and vxlanMode cannot both be enabled"
// +kubebuilder:validation:XValidation:rule="self.cidr == oldSelf.cidr",message="cidr is immutable: create a new pool and disable this one"
// +kubebuilder:validation:XValidation:rule="(has(self.blockSize) ? self.blockSize : 0) == (has(oldSelf.blockSize) ? oldSelf.blockSize : 0)",message="blockSize is immutable"
type IPPoolSpec struct {
	// The pool's CIDR, e.g. 192.168.0.0/16 or fd00:10::/48.
	// +kubebuilder:validation:Format=cidr
	// +kubebuilder:validation:MaxLength=43
	CIDR string `json:"cidr"`

	// VXLAN encapsulation for traffic to this pool's addresses: Never
	// (default), Always, or CrossSubnet (only between nodes of different
	// subnets).
	// +optional
	VXLANMode VXLANMode `json:"vxlanMode,omitempty"`

	// IPIP encapsulation for traffic to this pool's addresses (IPv4 only):
	// Never (default), Always, or CrossSubnet.
	// +optional
	IPIPMode IPIPMode `json:"ipipMode,omitempty"`

	// When true, traffic from this pool's addresses to destinations outside
	// all pools is masqueraded to the node's address.
	// +optional
	NATOutgoing bool `json:"natOutgoing,omitempty"`

	// When true, IPAM assigns no new addresses from this pool; addresses
	// already assigned stay.
	// +optional
	Disabled bool `json:"disabled,omitempty"`

	// When true, routes to this pool are not exported over BGP.
	// +optional
	DisableBGPExport bool `json:"disableBGPExport,omitempty"`

	// The prefix length of the blocks IPAM hands to nodes from this pool.
	// Defaults to 26 for IPv4 and 122 for IPv6; 20..32 for IPv4 and
	// 116..128 for IPv6.
	// +kubebuilder:validation:Minimum=20
	// +kubebuilder:validation:Maximum=128
	// +optional
	BlockSize int `json:"blockSize,omitempty"`

	// Selects the nodes that may take addresses from this pool, in Calico
	// selector syntax (e.g. `all()`, `zone == 'a' && !has(edge)`).
	// Empty means all nodes.
	// +optional
	NodeSelector string `json:"nodeSelector,omitempty"`

	// Selects the namespaces whose pods may take addresses from this pool,
	// in Calico selector syntax. Empty means all namespaces.
	// +optional
	NamespaceSelector string `json:"namespaceSelector,omitempty"`

	// What the pool's addresses may be used for. Empty means
	// [Workload, Tunnel]. LoadBalancer cannot be combined with the others.
	// +listType=set
	// +optional
	AllowedUses []IPPoolAllowedUse `json:"allowedUses,omitempty"`

	// Automatic (default): IPAM picks addresses from the pool on its own.
	// Manual: addresses are given only when the pool is asked for by name
	// or an address in it is asked for explicitly.
	// +optional
	AssignmentMode *AssignmentMode `json:"assignmentMode,omitempty"`

	// Reserved for Calico's AWS integration; accepted and ignored.
	// +optional
	AWSSubnetID string `json:"awsSubnetID,omitempty"`
}

// IPPoolList is a list of IPPools.
//
// +kubebuilder:object:root=true
type IPPoolList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []IPPool `json:"items"`
}

// IPPoolAllowedUse is what an IPPool's addresses may be used for.
//
// +kubebuilder:validation:Enum=Workload;Tunnel;LoadBalancer
type IPPoolAllowedUse string

// Allowed uses of a pool.
const (
	IPPoolAllowedUseWorkload     IPPoolAllowedUse = "Workload"
	IPPoolAllowedUseTunnel       IPPoolAllowedUse = "Tunnel"
	IPPoolAllowedUseLoadBalancer IPPoolAllowedUse = "LoadBalancer"
)

// VXLANMode is when traffic to a pool is VXLAN-encapsulated.
//
// +kubebuilder:validation:Enum=Never;Always;CrossSubnet
type VXLANMode string

// VXLAN modes.
const (
	VXLANModeNever       VXLANMode = "Never"
	VXLANModeAlways      VXLANMode = "Always"
	VXLANModeCrossSubnet VXLANMode = "CrossSubnet"
)

// IPIPMode is when traffic to a pool is IP-in-IP encapsulated.
//
// +kubebuilder:validation:Enum=Never;Always;CrossSubnet
type IPIPMode string

// IPIP modes.
const (
	IPIPModeNever       IPIPMode = "Never"
	IPIPModeAlways      IPIPMode = "Always"
	IPIPModeCrossSubnet IPIPMode = "CrossSubnet"
)

// AssignmentMode is how addresses are taken from a pool.
//
// +kubebuilder:validation:Enum=Automatic;Manual
type AssignmentMode string

// Assignment modes.
const (
	Automatic AssignmentMode = "Automatic"
	Manual    AssignmentMode = "Manual"
)
