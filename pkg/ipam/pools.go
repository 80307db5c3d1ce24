package ipam

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	v3 "github.com/vecnet/vecnet/pkg/apis/projectcalico/v3"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// pool is an IPPool with its CIDR and block size parsed.
type pool struct {
	name      string
	cidr      netip.Prefix
	blockBits int
	spec      *v3.IPPoolSpec
}

func (p *pool) family() int {
	if p.cidr.Addr().Is4() {
		return 4
	}
	return 6
}

// listPools reads all IPPools from the watch cache (listFromCache); pools
// that do not validate are skipped. Pools are configuration: acting on a
// version a moment old is what any watcher does, and callers fall back to
// listPoolsFresh when the cached list cannot serve a request.
func (c *Client) listPools(ctx context.Context) ([]*pool, error) {
	return c.listPoolsOpts(ctx, listFromCache())
}

// listPoolsFresh is listPools with a consistent read.
func (c *Client) listPoolsFresh(ctx context.Context) ([]*pool, error) {
	return c.listPoolsOpts(ctx)
}

func (c *Client) listPoolsOpts(ctx context.Context, opts ...client.ListOption) ([]*pool, error) {
	var list v3.IPPoolList
	if err := c.c.List(ctx, &list, opts...); err != nil {
		return nil, err
	}
	out := make([]*pool, 0, len(list.Items))
	for i := range list.Items {
		p := &list.Items[i]
		if p.Validate() != nil {
			continue
		}
		cidr, _ := p.Spec.ParseCIDR()
		out = append(out, &pool{name: p.Name, cidr: cidr, blockBits: p.Spec.EffectiveBlockSize(), spec: &p.Spec})
	}
	slices.SortFunc(out, func(a, b *pool) int { return comparePrefix(a.cidr, b.cidr) })
	return out, nil
}

// findPool finds a pool by name or CIDR.
func findPool(all []*pool, ref string) *pool {
	for _, p := range all {
		if p.name == ref {
			return p
		}
	}
	if cidr, err := netip.ParsePrefix(ref); err == nil {
		for _, p := range all {
			if p.cidr == cidr.Masked() {
				return p
			}
		}
	}
	return nil
}

// selectPools picks the pools of a family to assign from, in order.
// Requested pools (names or CIDRs) must exist, be of the family, enabled and
// allow the use; of those, the ones whose nodeSelector selects the node are
// used. Without requested pools: every enabled pool of the family that
// allows the use, is not Manual, and selects the node.
func selectPools(all []*pool, requested []string, family int, node string, labels map[string]string, use v3.IPPoolAllowedUse) ([]*pool, error) {
	var out []*pool
	if len(requested) > 0 {
		for _, ref := range requested {
			p := findPool(all, ref)
			switch {
			case p == nil:
				return nil, fmt.Errorf("%w: pool %q does not exist", ErrNoPool, ref)
			case p.family() != family:
				return nil, fmt.Errorf("%w: pool %q is not an IPv%d pool", ErrNoPool, ref, family)
			case p.spec.Disabled:
				return nil, fmt.Errorf("%w: pool %q is disabled", ErrNoPool, ref)
			case !p.spec.Allows(use):
				return nil, fmt.Errorf("%w: pool %q does not allow %s use", ErrNoPool, ref, use)
			}
			if PoolSelectsNode(p.spec, labels) && !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("%w: none of the requested IPv%d pools %v selects node %s", ErrNoPool, family, requested, node)
		}
		return out, nil
	}
	for _, p := range all {
		if p.family() == family && !p.spec.Disabled && p.spec.Allows(use) && !p.spec.IsManual() && PoolSelectsNode(p.spec, labels) {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no enabled IPv%d pool for %s use selects node %s", ErrNoPool, family, use, node)
	}
	return out, nil
}

func poolNames(pools []*pool) []string {
	out := make([]string, len(pools))
	for i, p := range pools {
		out[i] = p.name
	}
	return out
}

// poolOf returns the pool that contains a block, if any.
func poolOf(pools []*pool, block netip.Prefix) *pool {
	for _, p := range pools {
		if p.cidr.Contains(block.Addr()) && p.blockBits == block.Bits() {
			return p
		}
	}
	return nil
}

// Families reports for which address families AutoAssign(args) has a pool
// to draw from (args.Num4 and Num6 are ignored): the families whose
// requested pools, or whose enabled pools selecting args.Node, exist. The
// caller asks for one address of each, which is how a pod gets dual stack
// exactly where the pools give it.
func (c *Client) Families(ctx context.Context, args AssignArgs) (v4, v6 bool, err error) {
	if args.IntendedUse == "" {
		args.IntendedUse = v3.IPPoolAllowedUseWorkload
	}
	check := func(all []*pool) (bool, bool) {
		_, e4 := selectPools(all, args.IPv4Pools, 4, args.Node, args.NodeLabels, args.IntendedUse)
		_, e6 := selectPools(all, args.IPv6Pools, 6, args.Node, args.NodeLabels, args.IntendedUse)
		return e4 == nil, e6 == nil
	}
	all, err := c.listPools(ctx)
	if err != nil {
		return false, false, err
	}
	if v4, v6 = check(all); v4 && v6 {
		return v4, v6, nil
	}
	// A pool created a moment ago may be missing from the cached list.
	if all, err = c.listPoolsFresh(ctx); err != nil {
		return false, false, err
	}
	v4, v6 = check(all)
	return v4, v6, nil
}
