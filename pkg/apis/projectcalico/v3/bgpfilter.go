package v3

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Kinds of this file.
const (
	KindBGPFilter     = "BGPFilter"
	KindBGPFilterList = "BGPFilterList"
)

// BGPFilter is an ordered set of import and export rules that BGPPeers
// refer to by name (spec.filters).
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster
type BGPFilter struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec BGPFilterSpec `json:"spec,omitempty"`
}

// BGPFilterSpec holds the rules of a BGPFilter; the first rule that matches
// a route decides.
type BGPFilterSpec struct {
	// Rules for IPv4 routes exported to peers.
	// +optional
	ExportV4 []BGPFilterRuleV4 `json:"exportV4,omitempty"`
	// Rules for IPv4 routes imported from peers.
	// +optional
	ImportV4 []BGPFilterRuleV4 `json:"importV4,omitempty"`
	// Rules for IPv6 routes exported to peers.
	// +optional
	ExportV6 []BGPFilterRuleV6 `json:"exportV6,omitempty"`
	// Rules for IPv6 routes imported from peers.
	// +optional
	ImportV6 []BGPFilterRuleV6 `json:"importV6,omitempty"`
}

// BGPFilterRuleV4 is one IPv4 rule: a match (all given criteria) and an
// action.
//
// +kubebuilder:validation:XValidation:rule="(has(self.cidr) && size(self.cidr) > 0) == (has(self.matchOperator) && size(self.matchOperator) > 0)",message="cidr and matchOperator must both be set or both be empty"
// +kubebuilder:validation:XValidation:rule="!has(self.prefixLength) || (has(self.cidr) && size(self.cidr) > 0)",message="cidr is required when prefixLength is set"
type BGPFilterRuleV4 struct {
	// The CIDR routes are compared with (see matchOperator).
	// +kubebuilder:validation:Format=cidr
	// +kubebuilder:validation:MaxLength=18
	// +optional
	CIDR string `json:"cidr,omitempty"`

	// Limits the prefix lengths matched within cidr.
	// +optional
	PrefixLength *BGPFilterPrefixLengthV4 `json:"prefixLength,omitempty"`

	// RemotePeers: only routes learned from BGP peers.
	// +optional
	Source BGPFilterMatchSource `json:"source,omitempty"`

	// Only routes out of this interface (globs allowed).
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9_.*+-]{1,15}$`
	// +optional
	Interface string `json:"interface,omitempty"`

	// How a route's prefix is compared with cidr: Equal, NotEqual, In
	// (contained in or equal), NotIn.
	// +optional
	MatchOperator BGPFilterMatchOperator `json:"matchOperator,omitempty"`

	// Accept or Reject.
	Action BGPFilterAction `json:"action"`
}

// BGPFilterRuleV6 is one IPv6 rule.
//
// +kubebuilder:validation:XValidation:rule="(has(self.cidr) && size(self.cidr) > 0) == (has(self.matchOperator) && size(self.matchOperator) > 0)",message="cidr and matchOperator must both be set or both be empty"
// +kubebuilder:validation:XValidation:rule="!has(self.prefixLength) || (has(self.cidr) && size(self.cidr) > 0)",message="cidr is required when prefixLength is set"
type BGPFilterRuleV6 struct {
	// The CIDR routes are compared with (see matchOperator).
	// +kubebuilder:validation:Format=cidr
	// +kubebuilder:validation:MaxLength=43
	// +optional
	CIDR string `json:"cidr,omitempty"`

	// Limits the prefix lengths matched within cidr.
	// +optional
	PrefixLength *BGPFilterPrefixLengthV6 `json:"prefixLength,omitempty"`

	// RemotePeers: only routes learned from BGP peers.
	// +optional
	Source BGPFilterMatchSource `json:"source,omitempty"`

	// Only routes out of this interface (globs allowed).
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9_.*+-]{1,15}$`
	// +optional
	Interface string `json:"interface,omitempty"`

	// How a route's prefix is compared with cidr.
	// +optional
	MatchOperator BGPFilterMatchOperator `json:"matchOperator,omitempty"`

	// Accept or Reject.
	Action BGPFilterAction `json:"action"`
}

// BGPFilterPrefixLengthV4 bounds IPv4 prefix lengths.
type BGPFilterPrefixLengthV4 struct {
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=32
	// +optional
	Min *int32 `json:"min,omitempty"`
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=32
	// +optional
	Max *int32 `json:"max,omitempty"`
}

// BGPFilterPrefixLengthV6 bounds IPv6 prefix lengths.
type BGPFilterPrefixLengthV6 struct {
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=128
	// +optional
	Min *int32 `json:"min,omitempty"`
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=128
	// +optional
	Max *int32 `json:"max,omitempty"`
}

// BGPFilterMatchSource restricts a rule to routes of one origin.
//
// +kubebuilder:validation:Enum=RemotePeers
type BGPFilterMatchSource string

// Sources.
const (
	BGPFilterSourceRemotePeers BGPFilterMatchSource = "RemotePeers"
)

// BGPFilterMatchOperator compares a route's prefix with a rule's CIDR.
//
// +kubebuilder:validation:Enum=Equal;NotEqual;In;NotIn
type BGPFilterMatchOperator string

// Match operators.
const (
	MatchOperatorEqual    BGPFilterMatchOperator = "Equal"
	MatchOperatorNotEqual BGPFilterMatchOperator = "NotEqual"
	MatchOperatorIn       BGPFilterMatchOperator = "In"
	MatchOperatorNotIn    BGPFilterMatchOperator = "NotIn"
)

// BGPFilterAction is what a matching rule does with a route.
//
// +kubebuilder:validation:Enum=Accept;Reject
type BGPFilterAction string

// Actions.
const (
	Accept BGPFilterAction = "Accept"
	Reject BGPFilterAction = "Reject"
)

// BGPFilterList is a list of BGPFilters.
//
// +kubebuilder:object:root=true
type BGPFilterList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []BGPFilter `json:"items"`
}
