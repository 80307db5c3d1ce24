package ipam

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v3 "github.com/vecnet/vecnet/pkg/apis/projectcalico/v3"
)

// LabelNode is the label on BlockAffinity objects that holds their node (or,
// when the node name is not a valid label value, "h-" and a hash of it), so
// that a node's affinities are listed without reading everyone's.
const LabelNode = "ipam.vecnet.io/node"

// AssignArgs is a request for addresses.
type AssignArgs struct {
	// HandleID owns the addresses (Calico's CNI plugin uses
	// "k8s-pod-network.<containerID>"). Required.
	HandleID string
	// Node the addresses are for (blocks are claimed for it). Required.
	Node string
	// NodeLabels are matched against the pools' nodeSelectors.
	NodeLabels map[string]string
	// How many IPv4 and IPv6 addresses.
	Num4, Num6 int
	// Pools to assign from, by name or CIDR. Empty: every enabled pool of
	// the family, not Manual, that allows the use and selects the node.
	IPv4Pools, IPv6Pools []string
	// Attrs are stored with the allocation (namespace, pod, node...) and
	// handed to GC's alive function.
	Attrs map[string]string
	// IntendedUse is checked against the pools' allowedUses. Default
	// Workload.
	IntendedUse v3.IPPoolAllowedUse
}

// Assigned holds assigned addresses as host prefixes (/32, /128).
type Assigned struct {
	IPv4, IPv6 []netip.Prefix
}

// AutoAssign assigns Num4 IPv4 and Num6 IPv6 addresses to a handle: from the
// node's blocks, else from a newly claimed block, else (unless
// StrictAffinity) borrowed from another node's block. It assigns all or
// nothing: on error, addresses taken by this call are released again.
//
// Concurrent calls are served in batches (see batch.go), each with its own
// result. If ctx ends while the call waits, it returns ctx's error, and
// whatever the batch assigns for it is released.
func (c *Client) AutoAssign(ctx context.Context, args AssignArgs) (Assigned, error) {
	var out Assigned
	if args.HandleID == "" || args.Node == "" {
		return out, errors.New("ipam: AutoAssign needs a HandleID and a Node")
	}
	if args.Num4 < 0 || args.Num6 < 0 || args.Num4+args.Num6 == 0 {
		return out, errors.New("ipam: AutoAssign needs Num4 and/or Num6 > 0")
	}
	if args.IntendedUse == "" {
		args.IntendedUse = v3.IPPoolAllowedUseWorkload
	}
	if c.opts.NoLocalLock {
		// Without the local lock nothing is serialised, batches included:
		// each call is a batch of its own.
		r := c.serveBatch(ctx, []*assignReq{{ctx: ctx, args: args}})[0]
		return r.out, r.err
	}
	return c.enqueue(ctx, args)
}

// rollback releases addresses taken by a call that then failed.
func (c *Client) rollback(ctx context.Context, handleID string, addrs []netip.Addr) {
	opts := make([]ReleaseOptions, len(addrs))
	for i, a := range addrs {
		opts[i] = ReleaseOptions{Address: a, HandleID: handleID}
	}
	_, _ = c.releaseIPs(context.WithoutCancel(ctx), opts)
}

// usableAffinity returns the block of one of node's BlockAffinities if the
// node may assign from it (the zero Prefix if not). A pending claim that
// was interrupted after creating the block is finished. (A pending claim
// whose block is not ours is left to ReleaseAffinity.)
func (c *Client) usableAffinity(ctx context.Context, node string, a v3.BlockAffinity) (netip.Prefix, error) {
	cidr, err := netip.ParsePrefix(a.Spec.CIDR)
	if err != nil {
		return netip.Prefix{}, nil
	}
	switch a.Spec.State {
	case v3.StateConfirmed:
	case v3.StatePending:
		b, err := c.getBlock(ctx, cidr)
		if err != nil {
			return netip.Prefix{}, err
		}
		if b == nil || b.spec().AffineNode() != node {
			return netip.Prefix{}, nil
		}
		if err := c.setAffinityState(ctx, a.Name, a.Spec, v3.StateConfirmed); err != nil {
			return netip.Prefix{}, err
		}
	default:
		return netip.Prefix{}, nil
	}
	return cidr, nil
}

// nodeLabelValue is the LabelNode value of a node.
func nodeLabelValue(node string) string {
	if len(validation.IsValidLabelValue(node)) == 0 {
		return node
	}
	h := fnv.New64a()
	h.Write([]byte(node))
	return fmt.Sprintf("h-%016x", h.Sum64())
}

// nodeAffinities lists a node's BlockAffinities, sorted by CIDR.
//
// The list comes from the watch cache (listFromCache). Staleness is safe: assignFromBlock re-reads each block and uses it
// only if the block itself says it is affine to the node, and a block the
// stale list misses is at worst claimed again, which the block's creation
// conflict settles.
func (c *Client) nodeAffinities(ctx context.Context, node string) ([]v3.BlockAffinity, error) {
	var list v3.BlockAffinityList
	if err := c.c.List(ctx, &list, client.MatchingLabels{LabelNode: nodeLabelValue(node)}, listFromCache()); err != nil {
		return nil, err
	}
	out := list.Items[:0]
	for _, a := range list.Items {
		if a.Spec.Node == node {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b v3.BlockAffinity) int {
		pa, _ := netip.ParsePrefix(a.Spec.CIDR)
		pb, _ := netip.ParsePrefix(b.Spec.CIDR)
		return comparePrefix(pa, pb)
	})
	return out, nil
}

// claimFreeBlock claims, for node, a block of p that no IPAMBlock exists for.
// It returns the zero Prefix when p has no such block left. Candidates are
// tried from a starting point that depends on the node, so that nodes
// claiming at the same time rarely go for the same block.
func (c *Client) claimFreeBlock(ctx context.Context, node string, p *pool) (netip.Prefix, error) {
	blocks, err := c.listBlocksCached(ctx)
	if err != nil {
		return netip.Prefix{}, err
	}
	taken := map[netip.Prefix]bool{}
	for _, b := range blocks {
		if p.cidr.Contains(b.cidr.Addr()) {
			taken[b.cidr] = true
		}
	}
	n := poolBlocks(p.cidr, p.blockBits)
	h := fnv.New64a()
	h.Write([]byte(node))
	start := h.Sum64() % n
	// At most len(taken) candidates are taken, so len(taken)+1 consecutive
	// candidates hold a free one if the pool has one.
	tries := min(n, uint64(len(taken))+1)
	for i := uint64(0); i < tries; i++ {
		cidr := nthBlock(p.cidr, p.blockBits, (start+i)%n)
		if taken[cidr] {
			continue
		}
		ok, err := c.claimBlock(ctx, node, cidr)
		if err != nil {
			return netip.Prefix{}, err
		}
		if ok {
			return cidr, nil
		}
		taken[cidr] = true
		tries = min(n, tries+1) // lost that one to another node: look further
	}
	return netip.Prefix{}, nil
}

// claimBlock makes cidr a block affine to node: a pending BlockAffinity,
// then the IPAMBlock (whose creation decides between nodes claiming the
// same block at once), then the affinity confirmed. It reports false when
// the block exists and is not affine to node.
func (c *Client) claimBlock(ctx context.Context, node string, cidr netip.Prefix) (bool, error) {
	aff := &v3.BlockAffinity{}
	aff.Name = v3.BlockAffinityName(node, cidr)
	aff.Labels = map[string]string{LabelNode: nodeLabelValue(node)}
	aff.Spec = v3.BlockAffinitySpec{State: v3.StatePending, Node: node, CIDR: cidr.String()}
	if err := c.c.Create(ctx, aff); err != nil && !apierrors.IsAlreadyExists(err) {
		return false, err
	}

	b := newBlock(cidr, node, c.opts.Now())
	err := c.c.Create(ctx, b)
	if apierrors.IsAlreadyExists(err) {
		existing, gerr := c.getBlock(ctx, cidr)
		if gerr != nil {
			return false, gerr
		}
		if existing == nil || existing.spec().AffineNode() != node {
			// Another node won (or the block is in transit): drop our claim.
			if derr := c.deleteAffinity(ctx, aff.Name); derr != nil {
				return false, derr
			}
			return false, nil
		}
		err = nil // ours already (a claim of ours that was interrupted)
	}
	if err != nil {
		return false, err
	}
	return true, c.setAffinityState(ctx, aff.Name, aff.Spec, v3.StateConfirmed)
}

// setAffinityState sets the state of a BlockAffinity, creating it (from
// spec) if it vanished.
func (c *Client) setAffinityState(ctx context.Context, name string, spec v3.BlockAffinitySpec, state v3.BlockAffinityState) error {
	return c.retry(ctx, "update block affinity "+name, func() error {
		var a v3.BlockAffinity
		err := c.c.Get(ctx, client.ObjectKey{Name: name}, &a)
		if apierrors.IsNotFound(err) {
			a = v3.BlockAffinity{}
			a.Name = name
			a.Labels = map[string]string{LabelNode: nodeLabelValue(spec.Node)}
			a.Spec = spec
			a.Spec.State = state
			if err := c.c.Create(ctx, &a); apierrors.IsAlreadyExists(err) {
				return errRetry
			} else {
				return err
			}
		}
		if err != nil {
			return err
		}
		if a.Spec.State == state {
			return nil
		}
		a.Spec.State = state
		return c.c.Update(ctx, &a)
	})
}

func (c *Client) deleteAffinity(ctx context.Context, name string) error {
	a := &v3.BlockAffinity{}
	a.Name = name
	if err := c.c.Delete(ctx, a); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	return nil
}

// AssignIPArgs is a request for one given address.
type AssignIPArgs struct {
	IP       netip.Addr
	HandleID string
	// Node the address is for: if the address's block does not exist yet,
	// it is claimed for this node ("" creates it affine to no node).
	Node  string
	Attrs map[string]string
}

// AssignIP assigns a given address (a pod's cni.projectcalico.org/ipAddrs
// annotation) to a handle. The address must be in an enabled pool. If its
// block does not exist, the block is claimed for the node; if it exists and
// belongs to another node, the address is borrowed. It fails with an
// InUseError if the address is taken, ErrNotInPool if no enabled pool holds
// it.
func (c *Client) AssignIP(ctx context.Context, args AssignIPArgs) error {
	if args.HandleID == "" || !args.IP.IsValid() {
		return errors.New("ipam: AssignIP needs an IP and a HandleID")
	}
	ip := args.IP.Unmap()
	defer c.lock()()

	// Fixed addresses are rare and must not fail on a stale pool list.
	pools, err := c.listPoolsFresh(ctx)
	if err != nil {
		return err
	}
	var p *pool
	for _, q := range pools {
		if !q.spec.Disabled && q.cidr.Contains(ip) {
			p = q
			break
		}
	}
	if p == nil {
		return fmt.Errorf("%w: %s", ErrNotInPool, ip)
	}
	cidr := blockOf(ip, p.blockBits)

	incremented := false
	done := false
	err = c.retry(ctx, "assign "+ip.String(), func() error {
		b, err := c.getBlock(ctx, cidr)
		if err != nil {
			return err
		}
		if b == nil {
			if args.Node == "" {
				err := c.c.Create(ctx, newBlock(cidr, "", c.opts.Now()))
				if err != nil && !apierrors.IsAlreadyExists(err) {
					return err
				}
			} else if _, err := c.claimBlock(ctx, args.Node, cidr); err != nil {
				return err
			}
			return errRetry // read it again
		}
		if b.spec().Deleted {
			return errRetry
		}
		if attr, used := b.owner(addrOrdinal(cidr, ip)); used {
			return &InUseError{IP: ip, HandleID: handleOf(attr)}
		}
		if !incremented {
			if err := c.incrementHandle(ctx, args.HandleID, cidr, 1); err != nil {
				return err
			}
			incremented = true
		}
		if !b.allocateAddr(ip, args.HandleID, args.Attrs) {
			return &InUseError{IP: ip}
		}
		if err := c.c.Update(ctx, b.obj); err != nil {
			if apierrors.IsNotFound(err) {
				return errRetry
			}
			return err
		}
		done = true
		return nil
	})
	if !done && incremented {
		_ = c.decrementHandle(context.WithoutCancel(ctx), args.HandleID, cidr, 1)
	}
	return err
}
