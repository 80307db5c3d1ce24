package v3

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Kinds of this file.
const (
	KindBGPPeer     = "BGPPeer"
	KindBGPPeerList = "BGPPeerList"
)

// BGPPeer is a BGP peering of one or more nodes: with an external router
// (peerIP, asNumber) or with other nodes (peerSelector).
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster
// +kubebuilder:printcolumn:name="PeerIP",type=string,JSONPath=".spec.peerIP"
// +kubebuilder:printcolumn:name="AS",type=string,JSONPath=".spec.asNumber"
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=".spec.node"
type BGPPeer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec BGPPeerSpec `json:"spec,omitempty"`
}

// BGPPeerSpec is the specification of a BGPPeer.
//
// +kubebuilder:validation:XValidation:rule="!(has(self.node) && size(self.node) > 0 && has(self.nodeSelector) && size(self.nodeSelector) > 0)",message="node and nodeSelector cannot both be set"
// +kubebuilder:validation:XValidation:rule="!(has(self.peerSelector) && size(self.peerSelector) > 0 && ((has(self.peerIP) && size(self.peerIP) > 0) || has(self.asNumber)))",message="peerSelector cannot be set with peerIP or asNumber"
type BGPPeerSpec struct {
	// The node that has this peering. Neither node nor nodeSelector: all
	// nodes.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Node string `json:"node,omitempty"`

	// Selects the nodes that have this peering (Calico selector syntax).
	// +optional
	NodeSelector string `json:"nodeSelector,omitempty"`

	// The peer's address with an optional port: 192.0.2.1, 192.0.2.1:1179,
	// 2001:db8::1 or [2001:db8::1]:1179.
	// +kubebuilder:validation:MaxLength=53
	// +optional
	PeerIP string `json:"peerIP,omitempty"`

	// The peer's AS number.
	// +optional
	ASNumber ASNumber `json:"asNumber,omitempty"`

	// Selects the nodes to peer with (instead of peerIP and asNumber).
	// +optional
	PeerSelector string `json:"peerSelector,omitempty"`

	// When true, routes sent to this peer keep their original next hop.
	// +optional
	KeepOriginalNextHop bool `json:"keepOriginalNextHop,omitempty"`

	// The next hop of routes sent to this peer: Auto, Self or Keep.
	// +optional
	NextHopMode *NextHopMode `json:"nextHopMode,omitempty"`

	// Password of the sessions of this peering.
	// +optional
	Password *BGPPassword `json:"password,omitempty"`

	// Source address of the sessions: UseNodeIP (default) or None.
	// +optional
	SourceAddress SourceAddress `json:"sourceAddress,omitempty"`

	// Failure detection: None (default) or BFDIfDirectlyConnected.
	// +optional
	FailureDetectionMode FailureDetectionMode `json:"failureDetectionMode,omitempty"`

	// Restart behaviour: GracefulRestart (default) or
	// LongLivedGracefulRestart.
	// +optional
	RestartMode RestartMode `json:"restartMode,omitempty"`

	// Graceful restart time announced to the peer. [Default: 120s]
	// +optional
	MaxRestartTime *metav1.Duration `json:"maxRestartTime,omitempty"`

	// How next hops of routes learned from this peer are resolved:
	// Recursive (default) or DirectIfDirectlyConnected.
	// +optional
	BIRDGatewayMode BIRDGatewayMode `json:"birdGatewayMode,omitempty"`

	// How many times the local AS may appear in received AS paths
	// (disables loop prevention; use with care).
	// +kubebuilder:validation:Minimum=0
	// +optional
	NumAllowedLocalASNumbers *int32 `json:"numAllowedLocalASNumbers,omitempty"`

	// When set, GTSM: packets from the peer must have a TTL of at least
	// 255 minus this many hops.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=255
	// +optional
	TTLSecurity *uint8 `json:"ttlSecurity,omitempty"`

	// Names of BGPFilters applied to this peering, in order.
	// +optional
	Filters []string `json:"filters,omitempty"`

	// An address through which the peer is reachable (a next hop), when it
	// is not on a directly connected network.
	// +optional
	ReachableBy string `json:"reachableBy,omitempty"`

	// Selects local workloads to peer with (Calico selector syntax).
	// +optional
	LocalWorkloadSelector string `json:"localWorkloadSelector,omitempty"`
}

// SourceAddress is the source address of a peering's sessions.
//
// +kubebuilder:validation:Enum=UseNodeIP;None
type SourceAddress string

// Source addresses.
const (
	SourceAddressUseNodeIP SourceAddress = "UseNodeIP"
	SourceAddressNone      SourceAddress = "None"
)

// FailureDetectionMode is how a peering detects a dead peer.
//
// +kubebuilder:validation:Enum=None;BFDIfDirectlyConnected
type FailureDetectionMode string

// Failure detection modes.
const (
	FailureDetectionModeNone                   FailureDetectionMode = "None"
	FailureDetectionModeBFDIfDirectlyConnected FailureDetectionMode = "BFDIfDirectlyConnected"
)

// RestartMode is a peering's restart behaviour.
//
// +kubebuilder:validation:Enum=GracefulRestart;LongLivedGracefulRestart
type RestartMode string

// Restart modes.
const (
	RestartModeGracefulRestart          RestartMode = "GracefulRestart"
	RestartModeLongLivedGracefulRestart RestartMode = "LongLivedGracefulRestart"
)

// BIRDGatewayMode is how next hops of learned routes are resolved.
//
// +kubebuilder:validation:Enum=Recursive;DirectIfDirectlyConnected
type BIRDGatewayMode string

// Gateway modes.
const (
	BIRDGatewayModeRecursive                 BIRDGatewayMode = "Recursive"
	BIRDGatewayModeDirectIfDirectlyConnected BIRDGatewayMode = "DirectIfDirectlyConnected"
)

// NextHopMode is the next hop of routes sent to a peer.
//
// +kubebuilder:validation:Enum=Auto;Self;Keep
type NextHopMode string

// Next hop modes.
const (
	NextHopModeAuto NextHopMode = "Auto"
	NextHopModeSelf NextHopMode = "Self"
	NextHopModeKeep NextHopMode = "Keep"
)

// BGPPeerList is a list of BGPPeers.
//
// +kubebuilder:object:root=true
type BGPPeerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []BGPPeer `json:"items"`
}
