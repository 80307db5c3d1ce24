package v3

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Kinds of this file.
const (
	KindIPAMBlock         = "IPAMBlock"
	KindIPAMBlockList     = "IPAMBlockList"
	KindBlockAffinity     = "BlockAffinity"
	KindBlockAffinityList = "BlockAffinityList"
	KindIPAMHandle        = "IPAMHandle"
	KindIPAMHandleList    = "IPAMHandleList"
)

// IPAMBlock is a block of a pool (a CIDR of the pool's blockSize) and the
// record of which of its addresses are allocated, to whom. It is written
// only by IPAM, always with the resourceVersion it read
// (optimistic concurrency); its name is BlockName(cidr).
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster
// +kubebuilder:printcolumn:name="CIDR",type=string,JSONPath=".spec.cidr"
// +kubebuilder:printcolumn:name="Affinity",type=string,JSONPath=".spec.affinity"
type IPAMBlock struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec IPAMBlockSpec `json:"spec,omitempty"`
}

// IPAMBlockSpec is the state of an IPAMBlock.
type IPAMBlockSpec struct {
	// The block's CIDR.
	// +kubebuilder:validation:Format=cidr
	CIDR string `json:"cidr"`

	// The node the block is affine to, "host:<node>"; unset when the block
	// belongs to no node (its node was removed).
	// +kubebuilder:validation:Pattern=`^(host|virtual):[a-zA-Z0-9\.\-_]+$`
	// +optional
	Affinity *string `json:"affinity,omitempty"`

	// When the affinity was claimed.
	// +optional
	AffinityClaimTime *metav1.Time `json:"affinityClaimTime,omitempty"`

	// One entry per address of the block, by ordinal (offset from the
	// block's first address): null when free, else the index in attributes
	// of the allocation's owner.
	Allocations []*int `json:"allocations"`

	// The free ordinals, in the order they are handed out (released
	// ordinals go to the back).
	// +optional
	Unallocated []int `json:"unallocated"`

	// Owners of allocations: handle and attributes (namespace, pod, node...).
	// +optional
	Attributes []AllocationAttribute `json:"attributes"`

	// Incremented on each write of the block.
	// +optional
	SequenceNumber int64 `json:"sequenceNumber"`

	// The block's sequenceNumber when each allocated ordinal (the key, in
	// decimal) was allocated; a release that names a sequence number frees
	// the address only if it was not released and reallocated since.
	// +optional
	SequenceNumberForAllocation map[string]int64 `json:"sequenceNumberForAllocation,omitempty"`

	// Set on a block about to be deleted; a block so marked is never
	// allocated from.
	// +optional
	Deleted bool `json:"deleted"`
}

// AllocationAttribute is the owner of one or more allocations of a block.
type AllocationAttribute struct {
	// The IPAM handle that holds the allocation.
	// +optional
	HandleID *string `json:"handle_id,omitempty"`

	// Free-form attributes of the owner (namespace, pod, node, timestamp).
	// +optional
	ActiveOwnerAttrs map[string]string `json:"secondary,omitempty"`
}

// IPAMBlockList is a list of IPAMBlocks.
//
// +kubebuilder:object:root=true
type IPAMBlockList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []IPAMBlock `json:"items"`
}

// Block affinity states.
const (
	StatePending         BlockAffinityState = "pending"
	StateConfirmed       BlockAffinityState = "confirmed"
	StatePendingDeletion BlockAffinityState = "pendingDeletion"
)

// BlockAffinityState is the life-cycle state of a BlockAffinity.
//
// +kubebuilder:validation:Enum=pending;confirmed;pendingDeletion
type BlockAffinityState string

// BlockAffinity records that a node claimed (pending) or holds (confirmed) a
// block; its name is BlockAffinityName(node, cidr).
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=".spec.node"
// +kubebuilder:printcolumn:name="CIDR",type=string,JSONPath=".spec.cidr"
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=".spec.state"
type BlockAffinity struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec BlockAffinitySpec `json:"spec,omitempty"`
}

// BlockAffinitySpec is the state of a BlockAffinity.
type BlockAffinitySpec struct {
	// pending, confirmed or pendingDeletion.
	State BlockAffinityState `json:"state"`

	// The node.
	// +kubebuilder:validation:MinLength=1
	Node string `json:"node"`

	// The block's CIDR.
	// +kubebuilder:validation:Format=cidr
	CIDR string `json:"cidr"`

	// Set on an affinity about to be deleted.
	// +optional
	Deleted bool `json:"deleted,omitempty"`
}

// BlockAffinityList is a list of BlockAffinities.
//
// +kubebuilder:object:root=true
type BlockAffinityList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []BlockAffinity `json:"items"`
}

// IPAMHandle is the index from an owner's handle ID (a pod's
// "k8s-pod-network.<containerID>", a node's tunnel address handle) to the
// blocks holding its addresses; its name is HandleName(handleID).
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster
// +kubebuilder:printcolumn:name="Handle",type=string,JSONPath=".spec.handleID"
type IPAMHandle struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec IPAMHandleSpec `json:"spec,omitempty"`
}

// IPAMHandleSpec is the state of an IPAMHandle.
type IPAMHandleSpec struct {
	// The handle ID (not always a valid object name, hence kept here).
	// +kubebuilder:validation:MinLength=1
	HandleID string `json:"handleID"`

	// How many addresses of the handle each block (by CIDR) holds. It may
	// count more than the blocks hold (never fewer).
	// +optional
	Block map[string]int `json:"block"`

	// Set on a handle about to be deleted.
	// +optional
	Deleted bool `json:"deleted,omitempty"`
}

// IPAMHandleList is a list of IPAMHandles.
//
// +kubebuilder:object:root=true
type IPAMHandleList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []IPAMHandle `json:"items"`
}
