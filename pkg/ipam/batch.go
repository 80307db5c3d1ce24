package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	v3 "github.com/vecnet/vecnet/pkg/apis/projectcalico/v3"
)

// Batching. AutoAssign calls of one Client do not each run on their own:
// they are queued, and a single goroutine of the Client serves the queue a
// batch at a time, taking everything queued at once (what accumulated while
// the previous batch was being served). A batch is served like one request
// for many handles:
//
//   - the pools are read once;
//   - the requests are grouped by node, address family and pools, and the
//     IPv4 and IPv6 groups are served concurrently (they touch different
//     blocks);
//   - first the fast path (see fastPath): what the nodes' blocks can serve
//     as their cached copies show, with one increment of each request's
//     handle (for both families at once), then one write of each block (all
//     blocks concurrently), then one decrement of each handle by what it did
//     not get;
//   - then, for what is left, the steps of a single request, per group: the
//     node's blocks, new blocks, borrowing; each block is filled for all the
//     requests that still need addresses with one read-modify-write: the
//     requests' handles are incremented first (concurrently: different
//     objects), then the block is written once, then each handle is
//     decremented by what it did not get;
//   - each request then completes on its own: all or nothing (a request
//     short of addresses in one family releases those it got in the other),
//     with its own error.
//
// ReleaseByHandle and ReleaseIPs calls are queued the same way; a batch
// serves its AutoAssign calls first, then its releases (serveReleases in
// release.go: one write of each block frees the addresses of every release
// in it, then each handle is decremented or deleted).
//
// Nothing here is needed for correctness between Clients, which rests, as
// before, on the optimistic concurrency of each object; the batch is only
// a way to write a block once for many callers instead of once per caller.

// assignReq is one queued AutoAssign call.
type assignReq struct {
	ctx  context.Context
	args AssignArgs
	done chan struct{}

	mu        sync.Mutex
	finished  bool // out and err are set
	abandoned bool // the caller returned (its context ended) before
	out       Assigned
	err       error
}

// batchQueue holds the AutoAssign and release calls waiting to be served.
type batchQueue struct {
	mu       sync.Mutex
	queue    []*assignReq
	releases []*releaseReq
	running  bool // a goroutine is serving the queue
}

// push queues a request (add appends it under the queue's mutex) and
// starts the serving goroutine if none runs.
func (c *Client) push(add func(q *batchQueue)) {
	q := &c.batch
	q.mu.Lock()
	add(q)
	start := !q.running
	q.running = true
	q.mu.Unlock()
	if start {
		go c.serveQueue()
	}
}

// enqueue queues a request and waits for its result.
func (c *Client) enqueue(ctx context.Context, args AssignArgs) (Assigned, error) {
	r := &assignReq{ctx: ctx, args: args, done: make(chan struct{})}
	c.push(func(q *batchQueue) { q.queue = append(q.queue, r) })
	select {
	case <-r.done:
		return r.out, r.err
	case <-ctx.Done():
		r.mu.Lock()
		if r.finished {
			r.mu.Unlock()
			return r.out, r.err
		}
		// The server releases what it assigns for us from now on.
		r.abandoned = true
		r.mu.Unlock()
		return Assigned{}, ctx.Err()
	}
}

// serveQueue serves batches until the queue is empty. A batch takes every
// queued call: first its AutoAssign calls are served (and complete), then
// its releases (see serveReleases), always in that order.
func (c *Client) serveQueue() {
	q := &c.batch
	for {
		q.mu.Lock()
		reqs, rels := q.queue, q.releases
		q.queue, q.releases = nil, nil
		if len(reqs) == 0 && len(rels) == 0 {
			q.running = false
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()

		// Requests whose caller is already gone are not served.
		var ctxs []context.Context
		live := reqs[:0]
		for _, r := range reqs {
			if err := r.ctx.Err(); err != nil {
				r.complete(Assigned{}, err)
				continue
			}
			live = append(live, r)
			ctxs = append(ctxs, r.ctx)
		}
		liveRels := rels[:0]
		for _, r := range rels {
			if err := r.ctx.Err(); err != nil {
				r.complete(nil, err)
				continue
			}
			liveRels = append(liveRels, r)
			ctxs = append(ctxs, r.ctx)
		}
		if len(ctxs) == 0 {
			continue
		}
		ctx, cancel := batchContext(ctxs)
		unlock := c.lock()
		if len(live) > 0 {
			res := c.serveBatch(ctx, live)
			for i, r := range live {
				if !r.complete(res[i].out, res[i].err) && res[i].err == nil {
					// Its caller gave up waiting: nobody will use the addresses.
					c.rollback(ctx, r.args.HandleID, res[i].addrs())
				}
			}
		}
		if len(liveRels) > 0 {
			// A release whose caller gave up waiting is done all the same:
			// it is what the caller asked for.
			for i, res := range c.serveReleases(ctx, liveRels) {
				liveRels[i].complete(res.out, res.err)
			}
		}
		unlock()
		cancel()
	}
}

// complete hands a request its result; false if the caller is gone.
func (r *assignReq) complete(out Assigned, err error) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.out, r.err, r.finished = out, err, true
	close(r.done)
	return !r.abandoned
}

// batchContext is the context a batch is served with: the values of the
// first request's, not cancelled with any one caller's, with the latest of
// the requests' deadlines (none if one of them has none).
func batchContext(ctxs []context.Context) (context.Context, context.CancelFunc) {
	base := context.WithoutCancel(ctxs[0])
	var latest time.Time
	for _, ctx := range ctxs {
		d, ok := ctx.Deadline()
		if !ok {
			return context.WithCancel(base)
		}
		if d.After(latest) {
			latest = d
		}
	}
	return context.WithDeadline(base, latest)
}

// assignResult is the outcome of one request of a batch.
type assignResult struct {
	out Assigned
	err error
}

func (r assignResult) addrs() []netip.Addr {
	var out []netip.Addr
	for _, p := range append(slices.Clone(r.out.IPv4), r.out.IPv6...) {
		out = append(out, p.Addr())
	}
	return out
}

// demand is what one request wants of one address family.
type demand struct {
	req      int // index of the request in its batch
	handleID string
	attrs    map[string]string
	num      int
	got      []netip.Addr
	err      error
}

func (d *demand) pending() bool { return d.err == nil && len(d.got) < d.num }

// assignGroup is the demands of a batch on the same node, family and pools.
type assignGroup struct {
	node    string
	family  int
	pools   []*pool
	demands []*demand
}

// serveBatch serves a batch of AutoAssign requests (validated already) and
// returns their results, in order.
func (c *Client) serveBatch(ctx context.Context, reqs []*assignReq) []assignResult {
	res := make([]assignResult, len(reqs))
	all, err := c.listPools(ctx)
	if err != nil {
		for i := range res {
			res[i].err = err
		}
		return res
	}
	type fam struct {
		family int
		num    int
		pools  []string
	}
	fams := func(a AssignArgs) []fam {
		return []fam{{4, a.Num4, a.IPv4Pools}, {6, a.Num6, a.IPv6Pools}}
	}
	// The cached pool list may predate a pool created a moment ago (the
	// usual order when setting up: pool, then pods). If it cannot serve a
	// request, ask again with a consistent read before failing.
fresh:
	for _, r := range reqs {
		for _, f := range fams(r.args) {
			if f.num == 0 {
				continue
			}
			if _, serr := selectPools(all, f.pools, f.family, r.args.Node, r.args.NodeLabels, r.args.IntendedUse); serr != nil {
				if all, err = c.listPoolsFresh(ctx); err != nil {
					for i := range res {
						res[i].err = err
					}
					return res
				}
				break fresh
			}
		}
	}

	// demands[i][0] and [1]: request i's IPv4 and IPv6 demands (or nil).
	demands := make([][2]*demand, len(reqs))
	groups := map[string]*assignGroup{}
	var order [2][]*assignGroup // per family, in order of appearance
	for i, r := range reqs {
		var pools [2][]*pool
		for k, f := range fams(r.args) {
			if f.num == 0 {
				continue
			}
			if pools[k], err = selectPools(all, f.pools, f.family, r.args.Node, r.args.NodeLabels, r.args.IntendedUse); err != nil {
				res[i].err = err
				break
			}
		}
		if res[i].err != nil {
			continue
		}
		for k, f := range fams(r.args) {
			if f.num == 0 {
				continue
			}
			d := &demand{req: i, handleID: r.args.HandleID, attrs: r.args.Attrs, num: f.num}
			demands[i][k] = d
			key := fmt.Sprintf("%d\x00%s\x00%s", f.family, r.args.Node, strings.Join(poolNames(pools[k]), "\x00"))
			g := groups[key]
			if g == nil {
				g = &assignGroup{node: r.args.Node, family: f.family, pools: pools[k]}
				groups[key] = g
				order[k] = append(order[k], g)
			}
			g.demands = append(g.demands, d)
		}
	}

	var all4and6 []*assignGroup
	for k := range order {
		all4and6 = append(all4and6, order[k]...)
	}
	c.fastPath(ctx, all4and6, len(reqs))

	// What the fast path did not serve, as one request at a time would be
	// served, only for many at once. The families touch different blocks:
	// serve them concurrently. Groups of one family may share blocks
	// (overlapping pool lists): one after the other.
	var wg sync.WaitGroup
	for k := range order {
		if len(order[k]) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, g := range order[k] {
				c.assignGroup(ctx, g)
			}
		}()
	}
	wg.Wait()

	// Complete each request, all or nothing.
	exhausted, rolledBack := 0, false
	for i, r := range reqs {
		var got []netip.Addr
		for _, d := range demands[i] {
			if d == nil {
				continue
			}
			slices.SortFunc(d.got, netip.Addr.Compare)
			got = append(got, d.got...)
			if d.err != nil && res[i].err == nil {
				res[i].err = d.err // the IPv4 error first, as before
			}
		}
		if res[i].err != nil {
			if len(got) > 0 {
				c.rollback(ctx, r.args.HandleID, got)
				rolledBack = true
			}
			if errors.Is(res[i].err, ErrPoolExhausted) {
				exhausted++
			}
			continue
		}
		for _, a := range got {
			if a.Is4() {
				res[i].out.IPv4 = append(res[i].out.IPv4, hostPrefix(a))
			} else {
				res[i].out.IPv6 = append(res[i].out.IPv6, hostPrefix(a))
			}
		}
	}
	// Requests that ran out may have done so only because others of the
	// batch, which failed too, held addresses that are now released: try
	// those again one at a time, as if they had come one after another.
	if len(reqs) > 1 && exhausted > 0 && rolledBack {
		for i, r := range reqs {
			if errors.Is(res[i].err, ErrPoolExhausted) {
				res[i] = c.serveBatch(ctx, []*assignReq{r})[0]
			}
		}
	}
	return res
}

// assignGroup assigns the demands of a group: from the node's blocks, else
// from newly claimed blocks, else (unless StrictAffinity) borrowed from
// other nodes' blocks. Each demand ends with its addresses or its error.
func (c *Client) assignGroup(ctx context.Context, g *assignGroup) {
	pending := func() []*demand {
		var out []*demand
		for _, d := range g.demands {
			if d.pending() {
				out = append(out, d)
			}
		}
		return out
	}
	fail := func(err error) {
		for _, d := range pending() {
			d.err = err
		}
	}
	if len(pending()) == 0 {
		return // all served by the fast path
	}

	// 1. The node's own blocks.
	affs, err := c.nodeAffinities(ctx, g.node)
	if err != nil {
		fail(err)
		return
	}
	held := 0
	for _, a := range affs {
		cidr, err := c.usableAffinity(ctx, g.node, a)
		if err != nil {
			fail(err)
			return
		}
		if !cidr.IsValid() {
			continue
		}
		held++
		if poolOf(g.pools, cidr) == nil {
			continue
		}
		ds := pending()
		if len(ds) == 0 {
			continue // keep counting held blocks
		}
		if err := c.assignFromBlockBatch(ctx, cidr, g.node, ds, true); err != nil {
			fail(err)
			return
		}
	}

	// 2. New blocks.
	for len(pending()) > 0 && !c.opts.NoAutoAllocateBlocks &&
		(c.opts.MaxBlocksPerHost == 0 || held < c.opts.MaxBlocksPerHost) {
		var claimed netip.Prefix
		for _, p := range g.pools {
			cidr, err := c.claimFreeBlock(ctx, g.node, p)
			if err != nil {
				fail(err)
				return
			}
			if cidr.IsValid() {
				claimed = cidr
				break
			}
		}
		if !claimed.IsValid() {
			break // every block of every pool is claimed
		}
		held++
		if err := c.assignFromBlockBatch(ctx, claimed, g.node, pending(), true); err != nil {
			fail(err)
			return
		}
	}

	// 3. Borrow from any block of the pools.
	if len(pending()) > 0 && !c.opts.StrictAffinity {
		blocks, err := c.listBlocksCached(ctx)
		if err != nil {
			fail(err)
			return
		}
		for _, b := range blocks {
			ds := pending()
			if len(ds) == 0 {
				break
			}
			if b.free() == 0 || b.spec().Deleted || poolOf(g.pools, b.cidr) == nil {
				continue
			}
			if err := c.assignFromBlockBatch(ctx, b.cidr, g.node, ds, false); err != nil {
				fail(err)
				return
			}
		}
	}
	for _, d := range pending() {
		d.err = &PoolExhaustedError{Family: g.family, Node: g.node, Pools: poolNames(g.pools),
			Wanted: d.num, Got: len(d.got), Strict: c.opts.StrictAffinity}
	}
}

// assignFromBlockBatch takes free addresses of a block for the demands, in
// order, with one write of the block. With affine, only if the block is
// (still) affine to node. Each handle is incremented first (a demand whose
// increment fails gets that error and nothing of the block), and
// decremented by what it was not given. The error returned is the block's
// (it concerns every demand); the addresses taken are in the demands.
func (c *Client) assignFromBlockBatch(ctx context.Context, cidr netip.Prefix, node string, ds []*demand, affine bool) error {
	// The cached copy skips full blocks without a consistent read (a node
	// with many full blocks would otherwise read each on every ADD); the
	// update below is checked against the block's current version anyway.
	b, err := c.getBlockCached(ctx, cidr)
	var corrupt *corruptBlockError
	if errors.As(err, &corrupt) {
		return nil // never allocate from a block we cannot read
	}
	if err != nil || b == nil {
		return err
	}
	usable := func(b *blockState) bool {
		return b != nil && !b.spec().Deleted && (!affine || b.spec().AffineNode() == node)
	}
	if !usable(b) || b.free() == 0 {
		return nil
	}
	wants := make([]int, len(ds))
	free, total := b.free(), 0
	for i, d := range ds {
		wants[i] = min(d.num-len(d.got), free)
		free -= wants[i]
		total += wants[i]
	}
	if total == 0 {
		return nil
	}
	for i, err := range parallel(len(ds), func(i int) error {
		if wants[i] == 0 {
			return nil
		}
		return c.incrementHandle(ctx, ds[i].handleID, cidr, wants[i])
	}) {
		if err != nil {
			ds[i].err = err
			wants[i] = 0
		}
	}
	gots, err := c.fillBlock(ctx, cidr, node, affine, b, ds, wants)
	for i, derr := range parallel(len(ds), func(i int) error {
		return c.decrementHandle(ctx, ds[i].handleID, cidr, wants[i]-len(gots[i]))
	}) {
		ds[i].got = append(ds[i].got, gots[i]...)
		if derr != nil && err == nil && len(gots[i]) == 0 && ds[i].err == nil {
			// Only the handle decrement failed: with addresses, the handle
			// over-counts, which is allowed; without, the demand fails.
			ds[i].err = derr
		}
	}
	return err
}

// parallel runs f(0..n-1) concurrently (a bounded number at a time) and
// returns their errors.
func parallel(n int, f func(i int) error) []error {
	errs := make([]error, n)
	if n == 1 {
		errs[0] = f(0)
		return errs
	}
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = f(i)
		}()
	}
	wg.Wait()
	return errs
}

// fillBlock takes wants[i] addresses of a block for ds[i] (fewer if the
// block has fewer), with one write of the block, starting from b (re-read
// after a conflict). The handles must have been incremented. With affine,
// only if the block is (still) affine to node.
func (c *Client) fillBlock(ctx context.Context, cidr netip.Prefix, node string, affine bool, b *blockState, ds []*demand, wants []int) ([][]netip.Addr, error) {
	usable := func(b *blockState) bool {
		return b != nil && !b.spec().Deleted && (!affine || b.spec().AffineNode() == node)
	}
	gots := make([][]netip.Addr, len(ds))
	err := c.retry(ctx, "assign from block "+cidr.String(), func() error {
		clear(gots)
		if b == nil { // re-read after a conflict
			var err error
			if b, err = c.getBlock(ctx, cidr); err != nil {
				return err
			}
		}
		if !usable(b) {
			return nil
		}
		n := 0
		for i, d := range ds {
			if wants[i] > 0 {
				gots[i] = b.allocate(wants[i], d.handleID, d.attrs)
				n += len(gots[i])
			}
		}
		if n == 0 {
			return nil
		}
		if err := c.c.Update(ctx, b.obj); err != nil {
			clear(gots)
			b = nil
			if apierrors.IsNotFound(err) {
				return errRetry
			}
			return err
		}
		return nil
	})
	return gots, err
}

// fastPath serves, for a whole batch, what the nodes' own blocks can serve
// as their cached copies show: each request's handle is incremented once
// for all its blocks (both families), then each block is written once
// (all blocks concurrently), then each handle is decremented once by what
// it did not get. The rest (blocks fuller than their cached copies, claims,
// borrowing, pending affinities) is left to assignGroup.
func (c *Client) fastPath(ctx context.Context, groups []*assignGroup, nreqs int) {
	type fill struct {
		cidr  netip.Prefix
		node  string
		b     *blockState
		ds    []*demand
		wants []int
		gots  [][]netip.Addr
		err   error
	}
	// 1. Plan, from the cached affinities and blocks.
	affs := map[string][]v3.BlockAffinity{}
	for _, g := range groups {
		if _, ok := affs[g.node]; ok {
			continue
		}
		a, err := c.nodeAffinities(ctx, g.node)
		if err != nil {
			return // assignGroup will meet the error
		}
		affs[g.node] = a
	}
	plans := make([][]*fill, len(groups))
	parallel(len(groups), func(gi int) error {
		g := groups[gi]
		need := make([]int, len(g.demands))
		left := 0
		for i, d := range g.demands {
			need[i] = d.num - len(d.got)
			left += need[i]
		}
		for _, a := range affs[g.node] {
			if left == 0 {
				break
			}
			cidr, err := netip.ParsePrefix(a.Spec.CIDR)
			if err != nil || a.Spec.State != v3.StateConfirmed || poolOf(g.pools, cidr) == nil {
				continue
			}
			b, err := c.getBlockCached(ctx, cidr)
			if err != nil || b == nil || b.spec().Deleted || b.spec().AffineNode() != g.node || b.free() == 0 {
				continue
			}
			f := &fill{cidr: cidr, node: g.node, b: b}
			free := b.free()
			for i, d := range g.demands {
				if w := min(need[i], free); w > 0 {
					f.ds = append(f.ds, d)
					f.wants = append(f.wants, w)
					need[i] -= w
					free -= w
					left -= w
				}
			}
			plans[gi] = append(plans[gi], f)
		}
		return nil
	})
	var fills []*fill
	for _, p := range plans {
		fills = append(fills, p...)
	}
	if len(fills) == 0 {
		return
	}

	// 2. One handle increment per request.
	handles := make([]string, nreqs)
	incs := make([]map[netip.Prefix]int, nreqs)
	for _, f := range fills {
		for i, d := range f.ds {
			if incs[d.req] == nil {
				incs[d.req] = map[netip.Prefix]int{}
			}
			incs[d.req][f.cidr] += f.wants[i]
			handles[d.req] = d.handleID
		}
	}
	incErrs := parallel(nreqs, func(r int) error {
		if incs[r] == nil {
			return nil
		}
		return c.incrementHandleBlocks(ctx, handles[r], incs[r])
	})
	for _, f := range fills {
		for i, d := range f.ds {
			if err := incErrs[d.req]; err != nil {
				if d.err == nil {
					d.err = err
				}
				f.wants[i] = 0
			}
		}
	}

	// 3. One write per block.
	parallel(len(fills), func(i int) error {
		f := fills[i]
		f.gots, f.err = c.fillBlock(ctx, f.cidr, f.node, true, f.b, f.ds, f.wants)
		return nil
	})

	// 4. One handle decrement per request, by what it did not get.
	decs := make([]map[netip.Prefix]int, nreqs)
	gotAny := make([]bool, nreqs)
	for _, f := range fills {
		for i, d := range f.ds {
			if f.wants[i] == 0 {
				continue
			}
			if short := f.wants[i] - len(f.gots[i]); short > 0 {
				if decs[d.req] == nil {
					decs[d.req] = map[netip.Prefix]int{}
				}
				decs[d.req][f.cidr] += short
			}
			if len(f.gots[i]) > 0 {
				gotAny[d.req] = true
			}
			d.got = append(d.got, f.gots[i]...)
			if f.err != nil && d.err == nil {
				d.err = f.err // as when served one by one
			}
		}
	}
	decErrs := parallel(nreqs, func(r int) error {
		if decs[r] == nil {
			return nil
		}
		return c.decrementHandleBlocks(ctx, handles[r], decs[r])
	})
	for _, f := range fills {
		for _, d := range f.ds {
			if err := decErrs[d.req]; err != nil && !gotAny[d.req] && d.err == nil {
				// With addresses, the handle over-counts, which is
				// allowed; without, the request fails.
				d.err = err
			}
		}
	}
}
