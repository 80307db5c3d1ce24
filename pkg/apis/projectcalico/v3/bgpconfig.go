package v3

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Kinds of this file.
const (
	KindBGPConfiguration     = "BGPConfiguration"
	KindBGPConfigurationList = "BGPConfigurationList"
)

// BGPConfiguration holds BGP settings: the cluster's defaults in the object
// named "default", per-node overrides in objects named "node.<nodename>".
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster
type BGPConfiguration struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec BGPConfigurationSpec `json:"spec,omitempty"`
}

// BGPConfigurationSpec is the specification of a BGPConfiguration.
type BGPConfigurationSpec struct {
	// Log level of the BGP daemon. [Default: Info]
	// +kubebuilder:validation:Enum=Debug;Info;Warning;Error;Fatal
	// +optional
	LogSeverityScreen string `json:"logSeverityScreen,omitempty"`

	// Whether every node peers with every other node. [Default: true]
	// +optional
	NodeToNodeMeshEnabled *bool `json:"nodeToNodeMeshEnabled,omitempty"`

	// The default AS number of the nodes. [Default: 64512]
	// +optional
	ASNumber *ASNumber `json:"asNumber,omitempty"`

	// CIDRs of Service LoadBalancer addresses to advertise.
	// +optional
	ServiceLoadBalancerIPs []ServiceLoadBalancerIPBlock `json:"serviceLoadBalancerIPs,omitempty"`

	// CIDRs of Service external IPs to advertise.
	// +optional
	ServiceExternalIPs []ServiceExternalIPBlock `json:"serviceExternalIPs,omitempty"`

	// CIDRs from which Service cluster IPs are allocated, to advertise.
	// +optional
	ServiceClusterIPs []ServiceClusterIPBlock `json:"serviceClusterIPs,omitempty"`

	// Named BGP community values, for use in prefixAdvertisements.
	// +optional
	Communities []Community `json:"communities,omitempty"`

	// Per-prefix advertisement settings (communities to attach).
	// +optional
	PrefixAdvertisements []PrefixAdvertisement `json:"prefixAdvertisements,omitempty"`

	// The TCP port the BGP daemon listens on. [Default: 179]
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	ListenPort uint16 `json:"listenPort,omitempty"`

	// Password of the node-to-node mesh sessions (default object only).
	// +optional
	NodeMeshPassword *BGPPassword `json:"nodeMeshPassword,omitempty"`

	// Graceful restart time of the node-to-node mesh sessions (default
	// object only). [Default: 120s]
	// +optional
	NodeMeshMaxRestartTime *metav1.Duration `json:"nodeMeshMaxRestartTime,omitempty"`

	// Which addresses the BGP daemon listens on: None (all addresses) or
	// NodeIP (the node's address only).
	// +optional
	BindMode *BindMode `json:"bindMode,omitempty"`

	// Interfaces whose routes are never exported (globs allowed).
	// +optional
	IgnoredInterfaces []string `json:"ignoredInterfaces,omitempty"`

	// The IPv4 address workloads peer with on their node (when workloads
	// run BGP themselves).
	// +optional
	LocalWorkloadPeeringIPV4 string `json:"localWorkloadPeeringIPV4,omitempty"`

	// The IPv6 address workloads peer with on their node.
	// +optional
	LocalWorkloadPeeringIPV6 string `json:"localWorkloadPeeringIPV6,omitempty"`

	// Whether the BGP daemon programs routes to other nodes' blocks:
	// Enabled or Disabled.
	// +kubebuilder:validation:Enum=Enabled;Disabled
	// +optional
	ProgramClusterRoutes *string `json:"programClusterRoutes,omitempty"`
}

// BindMode is which addresses the BGP daemon listens on.
//
// +kubebuilder:validation:Enum=None;NodeIP
type BindMode string

// Bind modes.
const (
	BindModeNone   BindMode = "None"
	BindModeNodeIP BindMode = "NodeIP"
)

// ServiceLoadBalancerIPBlock is a CIDR of Service LoadBalancer addresses.
type ServiceLoadBalancerIPBlock struct {
	// +kubebuilder:validation:Format=cidr
	// +optional
	CIDR string `json:"cidr,omitempty"`
}

// ServiceExternalIPBlock is a CIDR of Service external IPs.
type ServiceExternalIPBlock struct {
	// +kubebuilder:validation:Format=cidr
	// +optional
	CIDR string `json:"cidr,omitempty"`
}

// ServiceClusterIPBlock is a CIDR of Service cluster IPs.
type ServiceClusterIPBlock struct {
	// +kubebuilder:validation:Format=cidr
	// +optional
	CIDR string `json:"cidr,omitempty"`
}

// Community is a named BGP community value.
type Community struct {
	// The name prefixAdvertisements refer to.
	// +optional
	Name string `json:"name,omitempty"`

	// A standard community aa:nn (16-bit parts) or a large community
	// aa:nn:mm (32-bit parts).
	// +kubebuilder:validation:Pattern=`^(\d+):(\d+)$|^(\d+):(\d+):(\d+)$`
	// +optional
	Value string `json:"value,omitempty"`
}

// PrefixAdvertisement is how one CIDR is advertised.
type PrefixAdvertisement struct {
	// +kubebuilder:validation:Format=cidr
	// +optional
	CIDR string `json:"cidr,omitempty"`

	// Names of communities in spec.communities, or literal values aa:nn or
	// aa:nn:mm.
	// +optional
	Communities []string `json:"communities,omitempty"`
}

// BGPPassword is where a BGP session's password comes from.
type BGPPassword struct {
	// A key of a Secret in the node agent's namespace.
	// +optional
	SecretKeyRef *corev1.SecretKeySelector `json:"secretKeyRef,omitempty"`
}

// BGPConfigurationList is a list of BGPConfigurations.
//
// +kubebuilder:object:root=true
type BGPConfigurationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []BGPConfiguration `json:"items"`
}
