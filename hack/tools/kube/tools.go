//go:build tools

// Package kube pins the commands that hack/kube-build.sh builds (go build
// k8s.io/kubernetes/cmd/<name>, and etcd's server main package), so that
// `go mod tidy` in this module records every module they need in go.sum.
// Never compiled.
package kube

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
