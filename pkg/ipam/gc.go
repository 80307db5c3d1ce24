package ipam

import (
	"context"
	"errors"
	"math"
	"net/netip"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	v3 "github.com/vecnet/vecnet/pkg/apis/projectcalico/v3"
)

// GC releases the allocations whose owner is gone: for every allocated
// address, alive is asked about its handle and attributes, and the address
// is released when it answers false (only if it is still the same
// allocation, so an address reassigned meanwhile is kept). Handles that hold
// no address any more and whose owner is not alive (asked with nil attrs)
// are deleted. It returns the number of addresses released.
//
// alive must answer true for owners still being set up (a CNI ADD in
// progress), or GC may release an address between its assignment and the
// pod's start.
func (c *Client) GC(ctx context.Context, alive func(handleID string, attrs map[string]string) bool) (int, error) {
	// No c.lock(): GC may take long, and the lock is only for efficiency.
	blocks, err := c.listBlocks(ctx)
	if err != nil {
		return 0, err
	}
	var dead []ReleaseOptions
	inUse := map[string]bool{}
	for _, b := range blocks {
		for ord := range b.spec().Allocations {
			attr, ok := b.owner(ord)
			if !ok {
				continue
			}
			h := handleOf(attr)
			if alive(h, attr.ActiveOwnerAttrs) {
				inUse[h] = true
				continue
			}
			seq := b.seqOf(ord)
			dead = append(dead, ReleaseOptions{Address: ordinalAddr(b.cidr, ord), HandleID: h, SequenceNumber: &seq})
		}
	}
	released, err := c.releaseIPs(ctx, dead)
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}

	// Handles left behind (by interrupted assignments): the list is read
	// after the blocks, so a handle that a block listed above refers to is
	// in inUse.
	var handles v3.IPAMHandleList
	if err := c.c.List(ctx, &handles); err != nil {
		return len(released), errors.Join(append(errs, err)...)
	}
	for i := range handles.Items {
		h := &handles.Items[i]
		if inUse[h.Spec.HandleID] || alive(h.Spec.HandleID, nil) {
			continue
		}
		if still, err := c.IPsByHandle(ctx, h.Spec.HandleID); err != nil || len(still) > 0 {
			continue
		}
		if err := c.deleteIfUnchanged(ctx, h); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			errs = append(errs, err)
		}
	}
	return len(released), errors.Join(errs...)
}

// PoolUsage is the occupancy of one IPPool.
type PoolUsage struct {
	Name      string
	CIDR      netip.Prefix
	BlockSize int
	Disabled  bool
	// Size is the number of addresses of the pool (a float: an IPv6 pool
	// may hold more than 2^64).
	Size float64
	// Allocated addresses, in blocks of the pool.
	Allocated int
	// Blocks that exist in the pool, and how many of them are affine to a
	// node.
	Blocks, AffineBlocks int
}

// Usage reports, per pool, its size, allocated addresses and blocks (for
// metrics). Pools are in CIDR order.
func (c *Client) Usage(ctx context.Context) ([]PoolUsage, error) {
	pools, err := c.listPoolsFresh(ctx)
	if err != nil {
		return nil, err
	}
	blocks, err := c.listBlocks(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]PoolUsage, len(pools))
	for i, p := range pools {
		out[i] = PoolUsage{Name: p.name, CIDR: p.cidr, BlockSize: p.blockBits, Disabled: p.spec.Disabled,
			Size: math.Pow(2, float64(hostBits(p.cidr)))}
	}
	for _, b := range blocks {
		for i, p := range pools {
			if p.cidr.Contains(b.cidr.Addr()) {
				out[i].Blocks++
				out[i].Allocated += b.allocatedCount()
				if b.spec().Affinity != nil {
					out[i].AffineBlocks++
				}
				break
			}
		}
	}
	return out, nil
}

// NodeBlocks maps each node to the CIDRs of the blocks affine to it (from the
// IPAMBlocks themselves), sorted: what each node routes.
func (c *Client) NodeBlocks(ctx context.Context) (map[string][]netip.Prefix, error) {
	blocks, err := c.listBlocks(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string][]netip.Prefix{}
	for _, b := range blocks {
		if n := b.spec().AffineNode(); n != "" {
			out[n] = append(out[n], b.cidr)
		}
	}
	for _, v := range out {
		slices.SortFunc(v, comparePrefix)
	}
	return out, nil
}
