package v3

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Kinds of this file.
const (
	KindIPAMConfiguration     = "IPAMConfiguration"
	KindIPAMConfigurationList = "IPAMConfigurationList"

	// IPAMConfigurationName is the name of the one IPAMConfiguration read.
	IPAMConfigurationName = "default"
)

// IPAMConfiguration holds cluster-wide IPAM settings. Only the object named
// "default" is read.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster
// +kubebuilder:validation:XValidation:rule="self.metadata.name == 'default'",message="the IPAMConfiguration must be named default"
type IPAMConfiguration struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec IPAMConfigurationSpec `json:"spec,omitempty"`
}

// IPAMConfigurationSpec is the specification of the IPAMConfiguration.
type IPAMConfigurationSpec struct {
	// When true, a node takes addresses only from blocks affine to it and
	// never borrows from other nodes' blocks.
	// +optional
	StrictAffinity bool `json:"strictAffinity"`

	// The most blocks a node may claim; 0 means no limit.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MaxBlocksPerHost int32 `json:"maxBlocksPerHost,omitempty"`

	// When false, nodes never claim new blocks; addresses come only from
	// blocks they already have (or, without strictAffinity, are borrowed).
	// +kubebuilder:default=true
	// +optional
	AutoAllocateBlocks bool `json:"autoAllocateBlocks"`
}

// IPAMConfigurationList is a list of IPAMConfigurations.
//
// +kubebuilder:object:root=true
type IPAMConfigurationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []IPAMConfiguration `json:"items"`
}
