package ipam

import (
	"context"
	"errors"
	"maps"
	"net/netip"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v3 "github.com/vecnet/vecnet/pkg/apis/projectcalico/v3"
)

// ReleaseOptions names an address to release, optionally only if it is
// still held by HandleID and/or still the allocation made at SequenceNumber
// (the block's sequence number recorded for it, as GC uses), so that a
// stale release cannot free an address that was reassigned meanwhile.
type ReleaseOptions struct {
	Address        netip.Addr
	HandleID       string
	SequenceNumber *int64
}

// ReleaseIPs releases addresses and returns those that were allocated and
// are now free. Addresses not allocated (or not matching HandleID /
// SequenceNumber) are skipped without error.
func (c *Client) ReleaseIPs(ctx context.Context, opts ...ReleaseOptions) ([]netip.Addr, error) {
	defer c.lock()()
	return c.releaseIPs(ctx, opts)
}

func (c *Client) releaseIPs(ctx context.Context, opts []ReleaseOptions) ([]netip.Addr, error) {
	if len(opts) == 0 {
		return nil, nil
	}
	pools, err := c.listPools(ctx)
	if err != nil {
		return nil, err
	}
	var blocks []*blockState // listed lazily, for addresses of no pool
	byBlock := map[netip.Prefix][]ReleaseOptions{}
	for _, o := range opts {
		a := o.Address.Unmap()
		if !a.IsValid() {
			continue
		}
		o.Address = a
		var cidr netip.Prefix
		for _, p := range pools {
			if p.cidr.Contains(a) {
				cidr = blockOf(a, p.blockBits)
				break
			}
		}
		if !cidr.IsValid() { // the pool is gone: find the block itself
			if blocks == nil {
				if blocks, err = c.listBlocks(ctx); err != nil {
					return nil, err
				}
			}
			for _, b := range blocks {
				if b.cidr.Contains(a) {
					cidr = b.cidr
					break
				}
			}
		}
		if cidr.IsValid() {
			byBlock[cidr] = append(byBlock[cidr], o)
		}
	}
	var released []netip.Addr
	var errs []error
	for _, cidr := range slices.SortedFunc(maps.Keys(byBlock), comparePrefix) {
		want := byBlock[cidr]
		freed, err := c.releaseFromBlock(ctx, cidr, true, func(b *blockState) []int {
			var ords []int
			for _, o := range want {
				ord := addrOrdinal(cidr, o.Address)
				attr, ok := b.owner(ord)
				if !ok || (o.HandleID != "" && handleOf(attr) != o.HandleID) ||
					(o.SequenceNumber != nil && b.seqOf(ord) != *o.SequenceNumber) {
					continue
				}
				ords = append(ords, ord)
			}
			return ords
		})
		released = append(released, freed...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	slices.SortFunc(released, netip.Addr.Compare)
	return released, errors.Join(errs...)
}

// releaseFromBlock frees the ordinals pick chooses in a block (re-chosen on
// each attempt), writes the block (deleting it when it is left empty and
// affine to no node), then (with decrement) decrements the handles.
func (c *Client) releaseFromBlock(ctx context.Context, cidr netip.Prefix, decrement bool, pick func(*blockState) []int) ([]netip.Addr, error) {
	var freed map[string][]netip.Addr
	err := c.retry(ctx, "release from block "+cidr.String(), func() error {
		freed = nil
		b, err := c.getBlock(ctx, cidr)
		if err != nil || b == nil {
			return err
		}
		ords := pick(b)
		if len(ords) == 0 {
			return nil
		}
		f := b.release(ords)
		if err := c.writeBlock(ctx, b); err != nil {
			return err
		}
		freed = f
		return nil
	})
	var out []netip.Addr
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	for _, h := range slices.Sorted(maps.Keys(freed)) {
		out = append(out, freed[h]...)
		if h == "" || !decrement {
			continue
		}
		if err := c.decrementHandle(context.WithoutCancel(ctx), h, cidr, len(freed[h])); err != nil {
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}

// ReleaseByHandle releases every address of a handle and deletes the
// handle. A handle that does not exist has nothing to release: the call is
// idempotent.
func (c *Client) ReleaseByHandle(ctx context.Context, handleID string) ([]netip.Addr, error) {
	defer c.lock()()
	name := v3.HandleName(handleID)
	var released []netip.Addr
	err := c.retry(ctx, "release handle "+handleID, func() error {
		var h v3.IPAMHandle
		err := c.c.Get(ctx, client.ObjectKey{Name: name}, &h)
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if h.Spec.HandleID != handleID {
			return nil
		}
		for _, key := range slices.Sorted(maps.Keys(h.Spec.Block)) {
			cidr, err := netip.ParsePrefix(key)
			if err != nil {
				continue
			}
			// The handle is deleted below rather than decremented.
			freed, err := c.releaseFromBlock(ctx, cidr, false, func(b *blockState) []int { return b.ordinalsOf(handleID) })
			released = append(released, freed...)
			if err != nil {
				return err
			}
		}
		// Delete the handle as read: a conflict means it took addresses
		// meanwhile, and the whole release runs again.
		if err := c.deleteIfUnchanged(ctx, &h); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		return nil
	})
	slices.SortFunc(released, netip.Addr.Compare)
	return released, err
}

// IPsByHandle lists the addresses a handle holds (none if the handle does
// not exist).
func (c *Client) IPsByHandle(ctx context.Context, handleID string) ([]netip.Addr, error) {
	var h v3.IPAMHandle
	err := c.c.Get(ctx, client.ObjectKey{Name: v3.HandleName(handleID)}, &h)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if h.Spec.HandleID != handleID {
		return nil, nil
	}
	var out []netip.Addr
	for _, key := range slices.Sorted(maps.Keys(h.Spec.Block)) {
		cidr, err := netip.ParsePrefix(key)
		if err != nil {
			continue
		}
		b, err := c.getBlock(ctx, cidr)
		if err != nil {
			return nil, err
		}
		if b == nil {
			continue
		}
		for _, ord := range b.ordinalsOf(handleID) {
			out = append(out, ordinalAddr(cidr, ord))
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out, nil
}

// ReleaseAffinity gives up all blocks of a node (when the node is deleted):
// each empty block is deleted, each block still holding addresses loses its
// affinity (it is deleted when its last address is released, and other
// nodes may borrow from it meanwhile), and the node's BlockAffinities are
// deleted.
func (c *Client) ReleaseAffinity(ctx context.Context, node string) error {
	defer c.lock()()
	affs, err := c.nodeAffinities(ctx, node)
	if err != nil {
		return err
	}
	var errs []error
	for _, a := range affs {
		if err := c.releaseBlockAffinity(ctx, node, a); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (c *Client) releaseBlockAffinity(ctx context.Context, node string, a v3.BlockAffinity) error {
	cidr, err := netip.ParsePrefix(a.Spec.CIDR)
	if err != nil {
		return c.deleteAffinity(ctx, a.Name)
	}
	if err := c.setAffinityState(ctx, a.Name, a.Spec, v3.StatePendingDeletion); err != nil {
		return err
	}
	err = c.retry(ctx, "release affinity of block "+cidr.String(), func() error {
		b, err := c.getBlock(ctx, cidr)
		if err != nil || b == nil || b.spec().AffineNode() != node {
			return err
		}
		b.spec().Affinity = nil
		b.spec().AffinityClaimTime = nil
		b.bump()
		return c.writeBlock(ctx, b) // deletes it if empty
	})
	if err != nil {
		return err
	}
	return c.deleteAffinity(ctx, a.Name)
}
