// Package ipam is Calico's IP address management over the Kubernetes API,
// with the projectcalico.org/v3 types of pkg/apis/projectcalico/v3.
//
// The model is libcalico-go's. An IPPool is cut into blocks of the pool's
// blockSize (/26 by default). A node claims a block — a BlockAffinity
// object and an IPAMBlock object affine to it ("host:<node>") — and assigns
// its pods' addresses from its own blocks, so that each node routes whole
// blocks rather than single addresses. When its blocks are full it claims
// another; when the pools have no unclaimed block left it borrows a free
// address from another node's block (unless StrictAffinity). Each IPAMBlock
// records, per address (by ordinal), the owner: an IPAMHandle ID (one per
// pod interface, "k8s-pod-network.<containerID>" in Calico's CNI plugin)
// and attributes (namespace, pod, node). The IPAMHandle object counts the
// handle's addresses per block, so that ReleaseByHandle finds them without
// scanning every block.
//
// Concurrency. Any number of Clients, in any number of processes, may work on
// the same cluster at once. Correctness rests only on the API server's
// optimistic concurrency: every read-modify-write of an IPAMBlock,
// IPAMHandle or BlockAffinity is an Update (or a Delete with preconditions)
// carrying the resourceVersion that was read, and a Conflict means
// "re-read and redo", a bounded number of times with jittered backoff. A new
// block is claimed by creating its IPAMBlock: the creation that succeeds
// wins, the other nodes see AlreadyExists and try another block. A handle
// is incremented before addresses are taken for it and decremented after
// they are freed, so a handle's counts cover at least the addresses it
// holds, whatever the interleaving or crash. A Client also serialises its
// own mutating calls with a mutex, purely to avoid conflicts between its own
// goroutines (a node agent's pods all allocate from the same block); the
// mutex is not needed for correctness (Options.NoLocalLock turns it off).
// So that serialising does not make a node's concurrent pod ADDs wait for
// one another, AutoAssign calls that arrive while one is being served are
// queued and then served together, as one batch (batch.go): one write of a
// block allocates for all of them. Releases (a node's concurrent pod DELs)
// are batched the same way: one write of a block frees for all of them.
//
// The client.Client given to New must read from the API server, not from an
// informer cache: a stale read can only cause conflicts, never a double
// allocation, but a cache that lags could exhaust the retries.
package ipam

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v3 "github.com/vecnet/vecnet/pkg/apis/projectcalico/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Options tune a Client. The zero value is Calico's default behaviour.
type Options struct {
	// StrictAffinity: a node takes addresses only from its own blocks. When
	// false (the default), a node whose pools have no unclaimed block left
	// borrows free addresses from other nodes' blocks.
	StrictAffinity bool

	// MaxBlocksPerHost is the most blocks a node may hold; 0 means no
	// limit. When reached, the node borrows (or fails, with StrictAffinity).
	MaxBlocksPerHost int

	// NoAutoAllocateBlocks: never claim new blocks (IPAMConfiguration
	// autoAllocateBlocks: false).
	NoAutoAllocateBlocks bool

	// MaxRetries bounds the attempts of each read-modify-write that meets
	// conflicts. Default 30.
	MaxRetries int

	// RetryBackoff is the base of the jittered exponential backoff between
	// attempts. Default 2ms (capped at 64 times that).
	RetryBackoff time.Duration

	// NoLocalLock turns off the mutex that serialises this Client's own
	// mutating calls (tests use it to show that correctness does not depend
	// on it).
	NoLocalLock bool

	// Now is the clock (for affinityClaimTime); default time.Now.
	Now func() time.Time
}

// OptionsFromConfiguration sets the fields of base that an
// IPAMConfiguration holds.
func OptionsFromConfiguration(spec v3.IPAMConfigurationSpec, base Options) Options {
	base.StrictAffinity = spec.StrictAffinity
	base.MaxBlocksPerHost = int(spec.MaxBlocksPerHost)
	base.NoAutoAllocateBlocks = !spec.AutoAllocateBlocks
	return base
}

// Client assigns and releases addresses. It is safe for concurrent use.
type Client struct {
	c    client.Client
	opts Options
	mu   sync.Mutex
	// batch queues AutoAssign calls (see batch.go).
	batch batchQueue

	slotsMu sync.Mutex
	slots   map[string]*handleSlot
}

// New returns a Client over c, whose scheme must include
// projectcalico.org/v3 (v3.AddToScheme).
func New(c client.Client, opts Options) *Client {
	if opts.MaxRetries <= 0 {
		opts.MaxRetries = 30
	}
	if opts.RetryBackoff <= 0 {
		opts.RetryBackoff = 2 * time.Millisecond
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Client{c: c, opts: opts}
}

func (c *Client) lock() func() {
	if c.opts.NoLocalLock {
		return func() {}
	}
	c.mu.Lock()
	return c.mu.Unlock
}

// Errors. Use errors.Is with the sentinels and errors.As for the details.
var (
	// ErrPoolExhausted: the selected pools have no free address for the
	// node (see PoolExhaustedError).
	ErrPoolExhausted = errors.New("ipam: pools exhausted")
	// ErrNoPool: no pool is usable for the request (none exists for the
	// family, none selects the node, or a requested pool is disabled,
	// unknown or of the other family).
	ErrNoPool = errors.New("ipam: no usable IP pool")
	// ErrNotInPool: a fixed address is in no enabled pool.
	ErrNotInPool = errors.New("ipam: address not in an enabled IP pool")
	// ErrInUse: a fixed address is already assigned (see InUseError).
	ErrInUse = errors.New("ipam: address already in use")
	// ErrTooManyConflicts: a read-modify-write met conflicts MaxRetries
	// times in a row.
	ErrTooManyConflicts = errors.New("ipam: too many conflicts")
)

// PoolExhaustedError says which pools ran out, for which node and family.
type PoolExhaustedError struct {
	Family      int      // 4 or 6
	Node        string   // the node assigned for
	Pools       []string // names of the pools tried
	Wanted, Got int
	// Strict is set when borrowing was not allowed (StrictAffinity).
	Strict bool
}

func (e *PoolExhaustedError) Error() string {
	how := ""
	if e.Strict {
		how = ", strict affinity: no borrowing"
	}
	return fmt.Sprintf("ipam: IPv%d pools %s exhausted for node %s: wanted %d addresses, found %d%s",
		e.Family, strings.Join(e.Pools, ", "), e.Node, e.Wanted, e.Got, how)
}

// Is makes errors.Is(err, ErrPoolExhausted) true.
func (e *PoolExhaustedError) Is(target error) bool { return target == ErrPoolExhausted }

// InUseError says who holds an address that was asked for.
type InUseError struct {
	IP       netip.Addr
	HandleID string
}

func (e *InUseError) Error() string {
	return fmt.Sprintf("ipam: address %s is already in use by handle %q", e.IP, e.HandleID)
}

// Is makes errors.Is(err, ErrInUse) true.
func (e *InUseError) Is(target error) bool { return target == ErrInUse }

type corruptBlockError struct{ name, why string }

func (e *corruptBlockError) Error() string {
	return fmt.Sprintf("ipam: IPAMBlock %s is corrupt: %s", e.name, e.why)
}

func errCorruptBlock(name, why string) error { return &corruptBlockError{name, why} }

// errRetry asks retry for another attempt (a race was lost in a way that is
// not an API Conflict, e.g. an object vanished between two reads).
var errRetry = errors.New("ipam: lost a race")

func retryable(err error) bool {
	return apierrors.IsConflict(err) || errors.Is(err, errRetry) ||
		apierrors.IsServerTimeout(err) || apierrors.IsTooManyRequests(err) ||
		apierrors.IsTimeout(err)
}

// retry runs f until it succeeds, fails with an error that is not a
// conflict, or has run MaxRetries times.
func (c *Client) retry(ctx context.Context, what string, f func() error) error {
	for attempt := 0; ; attempt++ {
		err := f()
		if err == nil || !retryable(err) {
			return err
		}
		if attempt+1 >= c.opts.MaxRetries {
			return fmt.Errorf("%w: %s: gave up after %d attempts: %v", ErrTooManyConflicts, what, attempt+1, err)
		}
		if err := c.backoff(ctx, attempt); err != nil {
			return err
		}
	}
}

func (c *Client) backoff(ctx context.Context, attempt int) error {
	d := c.opts.RetryBackoff << min(attempt, 6)
	d = d/2 + rand.N(d) // jitter: [d/2, 3d/2)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// deleteIfUnchanged deletes obj only if it is still at the resourceVersion
// (and UID) it was read at.
func (c *Client) deleteIfUnchanged(ctx context.Context, obj client.Object) error {
	uid, rv := obj.GetUID(), obj.GetResourceVersion()
	pre := client.Preconditions{ResourceVersion: &rv}
	if uid != "" {
		pre.UID = &uid
	}
	return c.c.Delete(ctx, obj, pre)
}

// ---- handles

// handleSlot serialises this Client's writes of one handle (the IPv4 and
// IPv6 parts of a request, served concurrently, both write it) and keeps
// the object as last written, so that the next write starts from it
// instead of re-reading it. The copy is only a starting point: if it is
// stale, the Update conflicts and the handle is read again.
type handleSlot struct {
	mu   sync.Mutex
	refs int // guarded by Client.slotsMu
	obj  *v3.IPAMHandle
}

// handleSlot takes the slot of a handle; the returned func gives it back.
func (c *Client) handleSlot(handleID string) (*handleSlot, func()) {
	c.slotsMu.Lock()
	if c.slots == nil {
		c.slots = map[string]*handleSlot{}
	}
	s := c.slots[handleID]
	if s == nil {
		s = &handleSlot{}
		c.slots[handleID] = s
	}
	s.refs++
	c.slotsMu.Unlock()
	s.mu.Lock()
	return s, func() {
		s.mu.Unlock()
		c.slotsMu.Lock()
		if s.refs--; s.refs == 0 {
			delete(c.slots, handleID)
		}
		c.slotsMu.Unlock()
	}
}

// take returns the last written copy of the handle (once), or nil.
func (s *handleSlot) take() *v3.IPAMHandle {
	h := s.obj
	s.obj = nil
	return h
}

// incrementHandle adds n addresses in block to a handle, creating it.
func (c *Client) incrementHandle(ctx context.Context, handleID string, block netip.Prefix, n int) error {
	return c.incrementHandleBlocks(ctx, handleID, map[netip.Prefix]int{block: n})
}

// incrementHandleBlocks adds addresses in several blocks to a handle, with
// one write, creating it.
func (c *Client) incrementHandleBlocks(ctx context.Context, handleID string, blocks map[netip.Prefix]int) error {
	add := func(m map[string]int) {
		for b, n := range blocks {
			m[b.String()] += n
		}
	}
	name := v3.HandleName(handleID)
	slot, done := c.handleSlot(handleID)
	defer done()
	create := slot.obj == nil // a handle is usually new: try that first
	return c.retry(ctx, "increment handle "+handleID, func() error {
		var h v3.IPAMHandle
		if cached := slot.take(); cached != nil {
			h = *cached
		} else {
			if create {
				h.Name = name
				h.Spec = v3.IPAMHandleSpec{HandleID: handleID, Block: map[string]int{}}
				add(h.Spec.Block)
				err := c.c.Create(ctx, &h)
				if err == nil {
					slot.obj = h.DeepCopy()
				}
				if !apierrors.IsAlreadyExists(err) {
					return err
				}
				create = false
				h = v3.IPAMHandle{}
			}
			err := c.c.Get(ctx, client.ObjectKey{Name: name}, &h)
			if apierrors.IsNotFound(err) {
				create = true
				return errRetry
			}
			if err != nil {
				return err
			}
		}
		if h.Spec.HandleID != handleID {
			return fmt.Errorf("ipam: IPAMHandle %s belongs to handle %q, not %q", name, h.Spec.HandleID, handleID)
		}
		if h.Spec.Block == nil {
			h.Spec.Block = map[string]int{}
		}
		add(h.Spec.Block)
		err := c.c.Update(ctx, &h)
		if err == nil {
			slot.obj = h.DeepCopy()
		} else if apierrors.IsNotFound(err) {
			create = true
			return errRetry
		}
		return err
	})
}

// decrementHandle removes n addresses in block from a handle, deleting the
// handle when it counts none.
func (c *Client) decrementHandle(ctx context.Context, handleID string, block netip.Prefix, n int) error {
	return c.decrementHandleBlocks(ctx, handleID, map[netip.Prefix]int{block: n})
}

// decrementHandleBlocks removes addresses in several blocks from a handle,
// with one write, deleting the handle when it counts none.
func (c *Client) decrementHandleBlocks(ctx context.Context, handleID string, blocks map[netip.Prefix]int) error {
	maps.DeleteFunc(blocks, func(_ netip.Prefix, n int) bool { return n <= 0 })
	if len(blocks) == 0 {
		return nil
	}
	name := v3.HandleName(handleID)
	slot, done := c.handleSlot(handleID)
	defer done()
	return c.retry(ctx, "decrement handle "+handleID, func() error {
		var h v3.IPAMHandle
		if cached := slot.take(); cached != nil {
			h = *cached
		} else {
			err := c.c.Get(ctx, client.ObjectKey{Name: name}, &h)
			if apierrors.IsNotFound(err) {
				return nil
			}
			if err != nil {
				return err
			}
		}
		if h.Spec.HandleID != handleID {
			return nil
		}
		for b, n := range blocks {
			key := b.String()
			if left := h.Spec.Block[key] - n; left > 0 {
				h.Spec.Block[key] = left
			} else {
				delete(h.Spec.Block, key)
			}
		}
		if len(h.Spec.Block) == 0 {
			err := c.deleteIfUnchanged(ctx, &h)
			if apierrors.IsNotFound(err) {
				return nil
			}
			return err
		}
		err := c.c.Update(ctx, &h)
		if err == nil {
			slot.obj = h.DeepCopy()
		}
		return err
	})
}

// getBlock reads a block; (nil, nil) if it does not exist.
func (c *Client) getBlock(ctx context.Context, cidr netip.Prefix) (*blockState, error) {
	return c.getBlockOpts(ctx, cidr)
}

// getBlockCached reads a block from the API server's watch cache. Callers
// use it to skip full blocks cheaply and as the starting version of an
// update: a stale copy fails the update with a conflict, and the retry reads
// the block consistently. A block missing from the cache (created a moment
// ago by this very claim) is read consistently at once.
func (c *Client) getBlockCached(ctx context.Context, cidr netip.Prefix) (*blockState, error) {
	b, err := c.getBlockOpts(ctx, cidr, getFromCache())
	if err == nil && b == nil {
		return c.getBlock(ctx, cidr)
	}
	return b, err
}

func (c *Client) getBlockOpts(ctx context.Context, cidr netip.Prefix, opts ...client.GetOption) (*blockState, error) {
	var obj v3.IPAMBlock
	err := c.c.Get(ctx, client.ObjectKey{Name: v3.BlockName(cidr)}, &obj, opts...)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if obj.Spec.CIDR != cidr.String() {
		// Not the block we mean: a name collision (impossible with
		// BlockName, but be safe).
		return nil, errCorruptBlock(obj.Name, fmt.Sprintf("holds CIDR %s, expected %s", obj.Spec.CIDR, cidr))
	}
	return loadBlock(&obj)
}

// writeBlock stores a modified block: Update, or when it is empty and affine
// to no node, Delete (both conditional on the resourceVersion read).
func (c *Client) writeBlock(ctx context.Context, b *blockState) error {
	if b.empty() && b.spec().Affinity == nil {
		err := c.deleteIfUnchanged(ctx, b.obj)
		if apierrors.IsNotFound(err) {
			return errRetry
		}
		return err
	}
	err := c.c.Update(ctx, b.obj)
	if apierrors.IsNotFound(err) {
		return errRetry
	}
	return err
}

// listFromCache and getFromCache read from the API server's watch cache
// (resourceVersion "0") instead of etcd: a consistent read of a rarely
// written resource waits for etcd's next progress notification, about
// 100 ms, which would dominate every pod ADD. They serve only reads where a
// stale answer costs at most a retry or a fall-back consistent read, since
// every write is checked against the object's resourceVersion. The options
// are made afresh each call: controller-runtime writes label selectors
// into Raw.
func listFromCache() client.ListOption {
	return &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: "0"}}
}

func getFromCache() client.GetOption {
	return &client.GetOptions{Raw: &metav1.GetOptions{ResourceVersion: "0"}}
}

// listBlocks lists all IPAMBlocks, sorted by CIDR.
func (c *Client) listBlocks(ctx context.Context) ([]*blockState, error) {
	return c.listBlocksOpts(ctx)
}

// listBlocksCached is listBlocks from the watch cache, for the assignment
// paths that only look for candidates (a free block to claim, a block to
// borrow from): each candidate is then re-read or created with optimistic
// concurrency.
func (c *Client) listBlocksCached(ctx context.Context) ([]*blockState, error) {
	return c.listBlocksOpts(ctx, listFromCache())
}

func (c *Client) listBlocksOpts(ctx context.Context, opts ...client.ListOption) ([]*blockState, error) {
	var list v3.IPAMBlockList
	if err := c.c.List(ctx, &list, opts...); err != nil {
		return nil, err
	}
	out := make([]*blockState, 0, len(list.Items))
	for i := range list.Items {
		b, err := loadBlock(&list.Items[i])
		if err != nil {
			continue // a corrupt block is left alone
		}
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b *blockState) int { return comparePrefix(a.cidr, b.cidr) })
	return out, nil
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}
