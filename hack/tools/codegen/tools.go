//go:build tools

// Package codegen pins the code generators used by hack/gencrd.sh. It is a
// separate module so that the generators' dependencies never enter vecnet's
// own go.mod.
package codegen

import (
	_ "sigs.k8s.io/controller-tools/cmd/controller-gen"
)
