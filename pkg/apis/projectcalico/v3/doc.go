// Package v3 holds vecnet's Go types for Calico's projectcalico.org/v3 API:
// the resources that configure IP pools and BGP (IPPool, BGPConfiguration,
// BGPPeer, BGPFilter, IPAMConfiguration) and the IPAM bookkeeping kept by
// pkg/ipam (IPAMBlock, BlockAffinity, IPAMHandle).
//
// They are served as native CustomResourceDefinitions (deploy/crds, generated
// from these types by hack/gencrd.sh), the direction Calico itself takes from
// 3.32 on: there is no aggregated API server. Spec field names and JSON tags
// follow Calico's v3 API so that YAML written for Calico
// (`apiVersion: projectcalico.org/v3`) applies unchanged.
//
// The IPAM bookkeeping kinds live in the same group on purpose: one group
// means one set of CRDs to install and one RBAC rule, the objects carry the
// names Calico users know from `kubectl get ipamblocks,blockaffinities`, and
// their layout (allocations indexed by ordinal, attributes, handles with
// per-block counts) is libcalico-go's, so tooling that reads Calico's IPAM
// state reads ours. Calico's own IPAM objects lived in crd.projectcalico.org/v1;
// the fields are the same, only the group differs.
//
// Object names: IPAMBlocks are named after their CIDR (BlockName), block
// affinities after node and CIDR (BlockAffinityName) and handles after the
// handle ID (HandleName); see names.go.
//
// Besides the OpenAPI validation in the CRDs (kubebuilder markers: enums,
// CIDR formats, block size ranges, CEL rules), every spec has a Validate
// method with the full semantic checks, for the agent and for tests; its
// errors name the offending field (spec.blockSize: ...).
//
// +kubebuilder:object:generate=true
// +groupName=projectcalico.org
package v3
