package ipam

import (
	v3 "github.com/vecnet/vecnet/pkg/apis/projectcalico/v3"
	"github.com/vecnet/vecnet/pkg/ipam/selector"
)

// Pool selection by node. The Calico selector syntax itself (all(), has(k),
// k == 'v', k in {...}, !, &&, ||, ...) is parsed by package selector, which
// the API types' Validate methods share; its fuzz target is FuzzSelector.

// ParseSelector parses a Calico selector ("" selects everything).
func ParseSelector(s string) (selector.Selector, error) { return selector.Parse(s) }

// PoolSelectsNode reports whether a pool's nodeSelector selects a node with
// the given labels (an empty selector selects every node; an invalid one,
// none).
func PoolSelectsNode(spec *v3.IPPoolSpec, nodeLabels map[string]string) bool {
	sel, err := selector.Parse(spec.NodeSelector)
	if err != nil {
		return false
	}
	return sel.Matches(nodeLabels)
}
