package ipam

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"

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
//
// Concurrent calls (and ReleaseByHandle calls) are served in batches (see
// serveReleases), each with its own result. If ctx ends while the call
// waits, it returns ctx's error; the release may still take place.
func (c *Client) ReleaseIPs(ctx context.Context, opts ...ReleaseOptions) ([]netip.Addr, error) {
	if len(opts) == 0 {
		return nil, nil
	}
	return c.release(ctx, &releaseReq{opts: opts})
}

// releaseIPs is ReleaseIPs served at once, outside the queue (for GC, and
// for rollbacks, which run inside a batch).
func (c *Client) releaseIPs(ctx context.Context, opts []ReleaseOptions) ([]netip.Addr, error) {
	if len(opts) == 0 {
		return nil, nil
	}
	r := c.serveReleases(ctx, []*releaseReq{{ctx: ctx, opts: opts}})[0]
	return r.out, r.err
}

// ReleaseByHandle releases every address of a handle and deletes the
// handle. A handle that does not exist has nothing to release: the call is
// idempotent.
//
// Concurrent calls (and ReleaseIPs calls) are served in batches (see
// serveReleases), each with its own result. If ctx ends while the call
// waits, it returns ctx's error; the release may still take place.
func (c *Client) ReleaseByHandle(ctx context.Context, handleID string) ([]netip.Addr, error) {
	return c.release(ctx, &releaseReq{byHandle: true, handleID: handleID})
}

// releaseReq is one queued ReleaseByHandle (byHandle) or ReleaseIPs call.
type releaseReq struct {
	ctx      context.Context
	byHandle bool
	handleID string           // ReleaseByHandle
	opts     []ReleaseOptions // ReleaseIPs
	done     chan struct{}

	mu        sync.Mutex
	finished  bool // out and err are set
	abandoned bool // the caller returned (its context ended) before
	out       []netip.Addr
	err       error
}

// release queues a release and waits for its result (or, without the
// local lock, serves it at once).
func (c *Client) release(ctx context.Context, r *releaseReq) ([]netip.Addr, error) {
	r.ctx = ctx
	if c.opts.NoLocalLock {
		// Without the local lock nothing is serialised, batches included:
		// each call is a batch of its own.
		res := c.serveReleases(ctx, []*releaseReq{r})[0]
		return res.out, res.err
	}
	r.done = make(chan struct{})
	c.push(func(q *batchQueue) { q.releases = append(q.releases, r) })
	select {
	case <-r.done:
		return r.out, r.err
	case <-ctx.Done():
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.finished {
			return r.out, r.err
		}
		r.abandoned = true
		return nil, ctx.Err()
	}
}

// complete hands a request its result; false if the caller is gone.
func (r *releaseReq) complete(out []netip.Addr, err error) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.out, r.err, r.finished = out, err, true
	close(r.done)
	return !r.abandoned
}

// releaseResult is the outcome of one release request of a batch.
type releaseResult struct {
	out []netip.Addr
	err error
}

// blockPick is what one request of a batch frees in a block: the ordinals
// pick chooses in the block as read (chosen again on each attempt).
type blockPick struct {
	req  int
	pick func(*blockState) []int
}

// serveReleases serves a batch of releases and returns their results, in
// order. Each step is done once for the whole batch, each object written
// once per step:
//
//   - the ReleaseIPs requests' addresses are mapped to their blocks (the
//     pools are read once);
//   - the ReleaseByHandle requests' handles are read (concurrently);
//   - each block concerned is read, the addresses of every request in it
//     freed, and the block written once (all blocks concurrently);
//   - then, and only then (so that a handle never counts fewer addresses
//     than it holds), the handles: for ReleaseIPs, each handle whose
//     addresses were freed is decremented once; for ReleaseByHandle, each
//     handle is deleted as it was read (all concurrently). A deletion that
//     conflicts (the handle took addresses meanwhile) makes that request
//     run again, with the others in the same situation, as the unbatched
//     call would.
//
// A block's error is the error of every request with addresses in it.
func (c *Client) serveReleases(ctx context.Context, reqs []*releaseReq) []releaseResult {
	res := make([]releaseResult, len(reqs))
	errs := make([][]error, len(reqs))
	work := map[netip.Prefix][]blockPick{}

	// ReleaseIPs: map the addresses to blocks.
	var pools []*pool
	var blocks []*blockState // listed lazily, for addresses of no pool
	var poolErr error
	for i, r := range reqs {
		if r.byHandle {
			continue
		}
		if pools == nil && poolErr == nil {
			if pools, poolErr = c.listPools(ctx); poolErr == nil && pools == nil {
				pools = []*pool{}
			}
		}
		if poolErr != nil {
			errs[i] = append(errs[i], poolErr)
			continue
		}
		byBlock := map[netip.Prefix][]ReleaseOptions{}
		var err error
		for _, o := range r.opts {
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
						break
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
		if err != nil {
			errs[i] = append(errs[i], err)
			continue
		}
		for cidr, want := range byBlock {
			work[cidr] = append(work[cidr], blockPick{req: i, pick: func(b *blockState) []int {
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
			}})
		}
	}

	var pending []int // ReleaseByHandle requests not done yet
	for i, r := range reqs {
		if r.byHandle {
			pending = append(pending, i)
		}
	}
	handles := make([]*v3.IPAMHandle, len(reqs))
	for round := 0; ; round++ {
		// 1. Read the handles.
		getErrs := parallel(len(pending), func(k int) error {
			i := pending[k]
			handles[i] = nil
			var h v3.IPAMHandle
			err := c.c.Get(ctx, client.ObjectKey{Name: v3.HandleName(reqs[i].handleID)}, &h)
			if apierrors.IsNotFound(err) {
				return nil // nothing (left) to release
			}
			if err != nil {
				return err
			}
			if h.Spec.HandleID == reqs[i].handleID {
				handles[i] = &h
			}
			return nil
		})
		var again []int     // requests to run again
		var lastErr []error // why, by position in again
		var deletes []int   // requests whose handle is to be deleted
		for k, i := range pending {
			if err := getErrs[k]; err != nil {
				if retryable(err) {
					again, lastErr = append(again, i), append(lastErr, err)
				} else {
					errs[i] = append(errs[i], err)
				}
				continue
			}
			h := handles[i]
			if h == nil {
				continue
			}
			deletes = append(deletes, i)
			handleID := reqs[i].handleID
			for _, key := range slices.Sorted(maps.Keys(h.Spec.Block)) {
				cidr, err := netip.ParsePrefix(key)
				if err != nil {
					continue
				}
				work[cidr] = append(work[cidr], blockPick{req: i, pick: func(b *blockState) []int { return b.ordinalsOf(handleID) }})
			}
		}

		// 2. One read-modify-write per block.
		cidrs := slices.SortedFunc(maps.Keys(work), comparePrefix)
		freed := make([][]map[string][]netip.Addr, len(cidrs))
		blockErrs := parallel(len(cidrs), func(k int) error {
			picks := make([]func(*blockState) []int, len(work[cidrs[k]]))
			for j, p := range work[cidrs[k]] {
				picks[j] = p.pick
			}
			var err error
			freed[k], err = c.releaseFromBlock(ctx, cidrs[k], picks)
			return err
		})
		failed := map[int]bool{}
		decs := map[string]map[netip.Prefix]int{} // ReleaseIPs: per handle
		decReqs := map[string][]int{}
		for k, cidr := range cidrs {
			for j, p := range work[cidr] {
				for _, h := range slices.Sorted(maps.Keys(freed[k][j])) {
					res[p.req].out = append(res[p.req].out, freed[k][j][h]...)
					if h == "" || reqs[p.req].byHandle {
						continue // a deleted handle is not decremented
					}
					if decs[h] == nil {
						decs[h] = map[netip.Prefix]int{}
					}
					decs[h][cidr] += len(freed[k][j][h])
					if !slices.Contains(decReqs[h], p.req) {
						decReqs[h] = append(decReqs[h], p.req)
					}
				}
				if err := blockErrs[k]; err != nil {
					errs[p.req] = append(errs[p.req], err)
					failed[p.req] = true
				}
			}
		}
		clear(work) // what follows concerns only the handles read again

		// 3. The handles: decrements (ReleaseIPs) and deletions
		// (ReleaseByHandle), all concurrently.
		decHandles := slices.Sorted(maps.Keys(decs))
		deletes = slices.DeleteFunc(deletes, func(i int) bool { return failed[i] })
		handleErrs := parallel(len(decHandles)+len(deletes), func(k int) error {
			if k < len(decHandles) {
				h := decHandles[k]
				return c.decrementHandleBlocks(context.WithoutCancel(ctx), h, decs[h])
			}
			// Delete the handle as read: a conflict means it took
			// addresses meanwhile, and the whole release runs again.
			err := c.deleteIfUnchanged(ctx, handles[deletes[k-len(decHandles)]])
			if apierrors.IsNotFound(err) {
				return nil
			}
			return err
		})
		for k, h := range decHandles {
			if err := handleErrs[k]; err != nil {
				for _, i := range decReqs[h] {
					errs[i] = append(errs[i], err)
				}
			}
		}
		for k, i := range deletes {
			if err := handleErrs[len(decHandles)+k]; err != nil {
				if retryable(err) {
					again, lastErr = append(again, i), append(lastErr, err)
				} else {
					errs[i] = append(errs[i], err)
				}
			}
		}

		if len(again) == 0 {
			break
		}
		if round+1 >= c.opts.MaxRetries {
			for k, i := range again {
				errs[i] = append(errs[i], fmt.Errorf("%w: release handle %s: gave up after %d attempts: %v",
					ErrTooManyConflicts, reqs[i].handleID, round+1, lastErr[k]))
			}
			break
		}
		if err := c.backoff(ctx, round); err != nil {
			for _, i := range again {
				errs[i] = append(errs[i], err)
			}
			break
		}
		pending = again
	}
	for i := range res {
		slices.SortFunc(res[i].out, netip.Addr.Compare)
		res[i].err = errors.Join(errs[i]...)
	}
	return res
}

// releaseFromBlock frees, with one write of a block, the ordinals each
// pick chooses in it (chosen again on each attempt, each pick seeing what
// the picks before it freed), deleting the block when it is left empty
// and affine to no node. It returns what each pick freed, per handle. The
// handles are not decremented.
func (c *Client) releaseFromBlock(ctx context.Context, cidr netip.Prefix, picks []func(*blockState) []int) ([]map[string][]netip.Addr, error) {
	freed := make([]map[string][]netip.Addr, len(picks))
	err := c.retry(ctx, "release from block "+cidr.String(), func() error {
		clear(freed)
		b, err := c.getBlock(ctx, cidr)
		if err != nil || b == nil {
			return err
		}
		fs := make([]map[string][]netip.Addr, len(picks))
		n := 0
		for j, pick := range picks {
			if ords := pick(b); len(ords) > 0 {
				fs[j] = b.release(ords)
				n += len(fs[j])
			}
		}
		if n == 0 {
			return nil
		}
		if err := c.writeBlock(ctx, b); err != nil {
			return err
		}
		copy(freed, fs)
		return nil
	})
	return freed, err
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
