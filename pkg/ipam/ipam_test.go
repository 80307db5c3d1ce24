package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v3 "github.com/vecnet/vecnet/pkg/apis/projectcalico/v3"
)

// ---- helpers

type poolOpt func(*v3.IPPool)

func blockSize(n int) poolOpt       { return func(p *v3.IPPool) { p.Spec.BlockSize = n } }
func nodeSelector(s string) poolOpt { return func(p *v3.IPPool) { p.Spec.NodeSelector = s } }
func disabled() poolOpt             { return func(p *v3.IPPool) { p.Spec.Disabled = true } }
func manual() poolOpt {
	return func(p *v3.IPPool) { m := v3.Manual; p.Spec.AssignmentMode = &m }
}
func uses(u ...v3.IPPoolAllowedUse) poolOpt { return func(p *v3.IPPool) { p.Spec.AllowedUses = u } }

func mkPool(t *testing.T, k client.Client, name, cidr string, opts ...poolOpt) {
	t.Helper()
	p := &v3.IPPool{}
	p.Name = name
	p.Spec.CIDR = cidr
	for _, o := range opts {
		o(p)
	}
	if err := p.Validate(); err != nil {
		t.Fatalf("pool %s: %v", name, err)
	}
	if err := k.Create(context.Background(), p); err != nil {
		t.Fatalf("create pool %s: %v", name, err)
	}
}

func assign4(t *testing.T, c *Client, node, handle string) netip.Addr {
	t.Helper()
	got, err := c.AutoAssign(context.Background(), AssignArgs{HandleID: handle, Node: node, Num4: 1})
	if err != nil {
		t.Fatalf("AutoAssign(%s, %s): %v", node, handle, err)
	}
	if len(got.IPv4) != 1 || len(got.IPv6) != 0 || got.IPv4[0].Bits() != 32 {
		t.Fatalf("AutoAssign(%s, %s) = %+v, want one /32", node, handle, got)
	}
	return got.IPv4[0].Addr()
}

func getBlockObj(t *testing.T, k client.Client, cidr string) *v3.IPAMBlock {
	t.Helper()
	var b v3.IPAMBlock
	if err := k.Get(context.Background(), client.ObjectKey{Name: v3.BlockName(netip.MustParsePrefix(cidr))}, &b); err != nil {
		t.Fatalf("get block %s: %v", cidr, err)
	}
	if err := b.Validate(); err != nil {
		t.Fatalf("block %s invalid: %v", cidr, err)
	}
	return &b
}

func blockAllocated(b *v3.IPAMBlock) int {
	n := 0
	for _, a := range b.Spec.Allocations {
		if a != nil {
			n++
		}
	}
	return n
}

func listAll(t *testing.T, k client.Client) (blocks []v3.IPAMBlock, affs []v3.BlockAffinity, handles []v3.IPAMHandle) {
	t.Helper()
	ctx := context.Background()
	var bl v3.IPAMBlockList
	var al v3.BlockAffinityList
	var hl v3.IPAMHandleList
	for _, l := range []client.ObjectList{&bl, &al, &hl} {
		if err := k.List(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	for i := range bl.Items {
		if err := bl.Items[i].Validate(); err != nil {
			t.Errorf("block %s: %v", bl.Items[i].Name, err)
		}
	}
	for i := range al.Items {
		if err := al.Items[i].Validate(); err != nil {
			t.Errorf("affinity %s: %v", al.Items[i].Name, err)
		}
	}
	for i := range hl.Items {
		if err := hl.Items[i].Validate(); err != nil {
			t.Errorf("handle %s: %v", hl.Items[i].Name, err)
		}
	}
	return bl.Items, al.Items, hl.Items
}

func inPrefix(t *testing.T, a netip.Addr, p string) {
	t.Helper()
	if !netip.MustParsePrefix(p).Contains(a) {
		t.Fatalf("%s is not in %s", a, p)
	}
}

// ---- tests

func TestBlockClaiming(t *testing.T) {
	runBackends(t, func(t *testing.T, k client.Client) {
		ctx := context.Background()
		mkPool(t, k, "p1", "10.0.0.0/24")
		c := New(k, Options{})

		a1 := assign4(t, c, "node1", "h1")
		inPrefix(t, a1, "10.0.0.0/24")
		block := netip.PrefixFrom(a1, 26).Masked()

		blocks, affs, handles := listAll(t, k)
		if len(blocks) != 1 || blocks[0].Spec.CIDR != block.String() || blocks[0].Spec.AffineNode() != "node1" {
			t.Fatalf("blocks = %+v, want %s affine to node1", blocks, block)
		}
		if blocks[0].Name != v3.BlockName(block) || blocks[0].Spec.AffinityClaimTime == nil {
			t.Errorf("block name %s (want %s), claim time %v", blocks[0].Name, v3.BlockName(block), blocks[0].Spec.AffinityClaimTime)
		}
		if len(affs) != 1 || affs[0].Spec.Node != "node1" || affs[0].Spec.State != v3.StateConfirmed ||
			affs[0].Spec.CIDR != block.String() || affs[0].Name != v3.BlockAffinityName("node1", block) {
			t.Fatalf("affinities = %+v", affs)
		}
		if len(handles) != 1 || handles[0].Spec.HandleID != "h1" || handles[0].Spec.Block[block.String()] != 1 {
			t.Fatalf("handles = %+v", handles)
		}

		// A second allocation on the node comes from the same block.
		a2 := assign4(t, c, "node1", "h2")
		if !block.Contains(a2) || a2 == a1 {
			t.Fatalf("second address %s: want another address of %s", a2, block)
		}
		b := getBlockObj(t, k, block.String())
		if blockAllocated(b) != 2 || len(b.Spec.Attributes) != 2 || b.Spec.SequenceNumber != 2 {
			t.Errorf("block after 2 allocations: %d allocated, %d attributes, seq %d", blockAllocated(b), len(b.Spec.Attributes), b.Spec.SequenceNumber)
		}

		// Another node gets its own block.
		a3 := assign4(t, c, "node2", "h3")
		if block.Contains(a3) {
			t.Fatalf("node2 got %s from node1's block", a3)
		}
		nb, err := c.NodeBlocks(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(nb) != 2 || len(nb["node1"]) != 1 || nb["node1"][0] != block || len(nb["node2"]) != 1 || !nb["node2"][0].Contains(a3) {
			t.Fatalf("NodeBlocks = %v", nb)
		}

		ips, err := c.IPsByHandle(ctx, "h2")
		if err != nil || len(ips) != 1 || ips[0] != a2 {
			t.Fatalf("IPsByHandle(h2) = %v, %v; want [%s]", ips, err, a2)
		}
		// Attributes are stored.
		got, err := c.AutoAssign(ctx, AssignArgs{HandleID: "h4", Node: "node1", Num4: 2,
			Attrs: map[string]string{"namespace": "default", "pod": "p4"}})
		if err != nil || len(got.IPv4) != 2 {
			t.Fatalf("AutoAssign 2: %v, %v", got, err)
		}
		b = getBlockObj(t, k, block.String())
		ord := addrOrdinal(block, got.IPv4[1].Addr())
		attr := b.Spec.Attributes[*b.Spec.Allocations[ord]]
		if *attr.HandleID != "h4" || attr.ActiveOwnerAttrs["pod"] != "p4" {
			t.Errorf("attribute of %s = %+v", got.IPv4[1], attr)
		}
	})
}

func TestBorrowingAndExhaustion(t *testing.T) {
	runBackends(t, func(t *testing.T, k client.Client) {
		ctx := context.Background()
		// Two blocks of four addresses.
		mkPool(t, k, "small", "10.1.0.0/29", blockSize(30))
		c := New(k, Options{})
		strict := New(k, Options{StrictAffinity: true})

		var n1 []netip.Addr
		for i := range 3 {
			n1 = append(n1, assign4(t, c, "node1", fmt.Sprintf("n1-%d", i)))
		}
		blockA := netip.PrefixFrom(n1[0], 30).Masked()
		for i := range 4 {
			assign4(t, c, "node2", fmt.Sprintf("n2-%d", i))
		}
		// node2's block is full and there is no block left: strict fails...
		_, err := strict.AutoAssign(ctx, AssignArgs{HandleID: "n2-strict", Node: "node2", Num4: 1})
		var pe *PoolExhaustedError
		if !errors.Is(err, ErrPoolExhausted) || !errors.As(err, &pe) || !pe.Strict || pe.Family != 4 ||
			!strings.Contains(err.Error(), "small") || !strings.Contains(err.Error(), "node2") {
			t.Fatalf("strict AutoAssign: %v, want a PoolExhaustedError naming pool small and node2", err)
		}
		if ips, _ := c.IPsByHandle(ctx, "n2-strict"); len(ips) != 0 {
			t.Fatalf("failed assignment left %v", ips)
		}
		// ... and non-strict borrows node1's last free address.
		b := assign4(t, c, "node2", "n2-borrow")
		if !blockA.Contains(b) {
			t.Fatalf("borrowed %s, want an address of node1's block %s", b, blockA)
		}
		if blk := getBlockObj(t, k, blockA.String()); blk.Spec.AffineNode() != "node1" {
			t.Fatalf("borrowing changed the block's affinity to %v", blk.Spec.Affinity)
		}
		// Now everything is taken.
		_, err = c.AutoAssign(ctx, AssignArgs{HandleID: "none", Node: "node3", Num4: 1})
		if !errors.As(err, &pe) || pe.Strict || pe.Got != 0 || pe.Wanted != 1 {
			t.Fatalf("AutoAssign on a full pool: %v", err)
		}
		// Asking for more than is left assigns nothing.
		if _, err := c.ReleaseByHandle(ctx, "n1-0"); err != nil {
			t.Fatal(err)
		}
		_, err = c.AutoAssign(ctx, AssignArgs{HandleID: "two", Node: "node1", Num4: 2})
		if !errors.As(err, &pe) || pe.Wanted != 2 || pe.Got != 1 {
			t.Fatalf("AutoAssign 2 with 1 free: %v", err)
		}
		if ips, _ := c.IPsByHandle(ctx, "two"); len(ips) != 0 {
			t.Fatalf("partial assignment was not rolled back: %v", ips)
		}
		assign4(t, c, "node1", "one")
	})
}

func TestMaxBlocksPerHost(t *testing.T) {
	runBackends(t, func(t *testing.T, k client.Client) {
		ctx := context.Background()
		mkPool(t, k, "p", "10.2.0.0/28", blockSize(30))
		c := New(k, Options{MaxBlocksPerHost: 1, StrictAffinity: true})
		for i := range 4 {
			assign4(t, c, "node1", fmt.Sprintf("h%d", i))
		}
		if _, err := c.AutoAssign(ctx, AssignArgs{HandleID: "h5", Node: "node1", Num4: 1}); !errors.Is(err, ErrPoolExhausted) {
			t.Fatalf("fifth address with one block per host: %v", err)
		}
		nb, _ := c.NodeBlocks(ctx)
		if len(nb["node1"]) != 1 {
			t.Fatalf("node1 blocks = %v", nb["node1"])
		}
		// NoAutoAllocateBlocks: a node without blocks gets nothing (strict).
		c2 := New(k, Options{NoAutoAllocateBlocks: true, StrictAffinity: true})
		if _, err := c2.AutoAssign(ctx, AssignArgs{HandleID: "x", Node: "node2", Num4: 1}); !errors.Is(err, ErrPoolExhausted) {
			t.Fatalf("no auto-allocation: %v", err)
		}
	})
}

func TestReleaseAndReuse(t *testing.T) {
	runBackends(t, func(t *testing.T, k client.Client) {
		ctx := context.Background()
		mkPool(t, k, "tiny", "10.3.0.0/30", blockSize(30))
		c := New(k, Options{})
		var addrs []netip.Addr
		for i := range 4 {
			addrs = append(addrs, assign4(t, c, "node1", fmt.Sprintf("h%d", i)))
		}
		if _, err := c.AutoAssign(ctx, AssignArgs{HandleID: "h4", Node: "node1", Num4: 1}); !errors.Is(err, ErrPoolExhausted) {
			t.Fatalf("fifth address of a /30: %v", err)
		}
		rel, err := c.ReleaseByHandle(ctx, "h2")
		if err != nil || len(rel) != 1 || rel[0] != addrs[2] {
			t.Fatalf("ReleaseByHandle(h2) = %v, %v; want [%s]", rel, err, addrs[2])
		}
		// Idempotent: the handle is gone.
		if rel, err := c.ReleaseByHandle(ctx, "h2"); err != nil || len(rel) != 0 {
			t.Fatalf("second ReleaseByHandle(h2) = %v, %v", rel, err)
		}
		if rel, err := c.ReleaseByHandle(ctx, "never-existed"); err != nil || len(rel) != 0 {
			t.Fatalf("ReleaseByHandle(never-existed) = %v, %v", rel, err)
		}
		// The freed address is the only one: it is reused.
		if a := assign4(t, c, "node1", "h5"); a != addrs[2] {
			t.Fatalf("reassigned %s, want the released %s", a, addrs[2])
		}
		// ReleaseIPs: with the wrong handle nothing happens; with the right
		// one (or none) the address is freed.
		if rel, err := c.ReleaseIPs(ctx, ReleaseOptions{Address: addrs[0], HandleID: "h1"}); err != nil || len(rel) != 0 {
			t.Fatalf("ReleaseIPs with the wrong handle = %v, %v", rel, err)
		}
		if rel, err := c.ReleaseIPs(ctx, ReleaseOptions{Address: addrs[0], HandleID: "h0"}, ReleaseOptions{Address: addrs[1]},
			ReleaseOptions{Address: netip.MustParseAddr("192.0.2.1")}); err != nil || len(rel) != 2 {
			t.Fatalf("ReleaseIPs = %v, %v", rel, err)
		}
		if ips, _ := c.IPsByHandle(ctx, "h0"); len(ips) != 0 {
			t.Fatalf("h0 still holds %v", ips)
		}
		// Release everything: the block stays (affine to node1), empty;
		// no handle is left.
		for _, h := range []string{"h3", "h5"} {
			if rel, err := c.ReleaseByHandle(ctx, h); err != nil || len(rel) != 1 {
				t.Fatalf("ReleaseByHandle(%s) = %v, %v", h, rel, err)
			}
		}
		blocks, affs, handles := listAll(t, k)
		if len(blocks) != 1 || blockAllocated(&blocks[0]) != 0 || len(blocks[0].Spec.Unallocated) != 4 ||
			blocks[0].Spec.AffineNode() != "node1" || len(blocks[0].Spec.Attributes) != 0 {
			t.Fatalf("blocks after releasing all: %+v", blocks)
		}
		if len(affs) != 1 || len(handles) != 0 {
			t.Fatalf("affinities %d (want 1), handles %+v (want none)", len(affs), handles)
		}
		// Released addresses go to the back of the free list.
		if u := blocks[0].Spec.Unallocated; u[len(u)-1] != addrOrdinal(netip.MustParsePrefix("10.3.0.0/30"), addrs[2]) {
			t.Errorf("free list %v: the last released (%s) should be last", u, addrs[2])
		}
	})
}

func TestDualStack(t *testing.T) {
	runBackends(t, func(t *testing.T, k client.Client) {
		ctx := context.Background()
		mkPool(t, k, "v4", "10.4.0.0/24")
		mkPool(t, k, "v6", "fd00:4::/120")
		c := New(k, Options{})
		got, err := c.AutoAssign(ctx, AssignArgs{HandleID: "pod1", Node: "node1", Num4: 1, Num6: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(got.IPv4) != 1 || len(got.IPv6) != 1 || got.IPv6[0].Bits() != 128 {
			t.Fatalf("got %+v", got)
		}
		inPrefix(t, got.IPv4[0].Addr(), "10.4.0.0/24")
		inPrefix(t, got.IPv6[0].Addr(), "fd00:4::/120")
		blk6 := netip.PrefixFrom(got.IPv6[0].Addr(), 122).Masked()
		b := getBlockObj(t, k, blk6.String())
		if b.Name != v3.BlockName(blk6) || strings.ContainsAny(b.Name, ":/") || len(b.Spec.Allocations) != 64 {
			t.Fatalf("IPv6 block %s: %d allocations", b.Name, len(b.Spec.Allocations))
		}
		ips, err := c.IPsByHandle(ctx, "pod1")
		if err != nil || len(ips) != 2 {
			t.Fatalf("IPsByHandle = %v, %v", ips, err)
		}
		var h v3.IPAMHandle
		if err := k.Get(ctx, client.ObjectKey{Name: "pod1"}, &h); err != nil || len(h.Spec.Block) != 2 {
			t.Fatalf("handle %+v, %v", h.Spec, err)
		}
		rel, err := c.ReleaseByHandle(ctx, "pod1")
		if err != nil || len(rel) != 2 {
			t.Fatalf("ReleaseByHandle = %v, %v", rel, err)
		}

		// No IPv6 pool for the node: nothing is assigned, IPv4 included.
		mkPool(t, k, "v4only", "10.5.0.0/24", nodeSelector("v6 == 'no'"))
		_, err = c.AutoAssign(ctx, AssignArgs{HandleID: "pod2", Node: "node2", Num4: 1, Num6: 1,
			IPv4Pools: []string{"v4only"}, IPv6Pools: []string{"10.5.0.0/24"}, NodeLabels: map[string]string{"v6": "no"}})
		if !errors.Is(err, ErrNoPool) {
			t.Fatalf("IPv4 pool as IPv6 pool: %v", err)
		}
		if ips, _ := c.IPsByHandle(ctx, "pod2"); len(ips) != 0 {
			t.Fatalf("failed dual-stack assignment left %v", ips)
		}
	})
}

func TestAssignIP(t *testing.T) {
	runBackends(t, func(t *testing.T, k client.Client) {
		ctx := context.Background()
		mkPool(t, k, "p", "10.6.0.0/24")
		mkPool(t, k, "off", "10.7.0.0/24", disabled())
		mkPool(t, k, "p6", "fd00:6::/120")
		c := New(k, Options{})

		ip := netip.MustParseAddr("10.6.0.77")
		if err := c.AssignIP(ctx, AssignIPArgs{IP: ip, HandleID: "fixed", Node: "node1", Attrs: map[string]string{"pod": "a"}}); err != nil {
			t.Fatal(err)
		}
		blk := netip.MustParsePrefix("10.6.0.64/26")
		if b := getBlockObj(t, k, blk.String()); b.Spec.AffineNode() != "node1" || blockAllocated(b) != 1 {
			t.Fatalf("fixed IP's block: affinity %v, %d allocated", b.Spec.Affinity, blockAllocated(b))
		}
		if ips, _ := c.IPsByHandle(ctx, "fixed"); len(ips) != 1 || ips[0] != ip {
			t.Fatalf("IPsByHandle(fixed) = %v", ips)
		}
		// Taken.
		err := c.AssignIP(ctx, AssignIPArgs{IP: ip, HandleID: "other", Node: "node2"})
		var iu *InUseError
		if !errors.Is(err, ErrInUse) || !errors.As(err, &iu) || iu.HandleID != "fixed" {
			t.Fatalf("assigning a taken address: %v", err)
		}
		if ips, _ := c.IPsByHandle(ctx, "other"); len(ips) != 0 {
			t.Fatalf("failed AssignIP left %v", ips)
		}
		// Outside the pools, and in a disabled pool.
		for _, bad := range []string{"192.0.2.1", "10.7.0.5", "fd00:7::1"} {
			if err := c.AssignIP(ctx, AssignIPArgs{IP: netip.MustParseAddr(bad), HandleID: "bad", Node: "node1"}); !errors.Is(err, ErrNotInPool) {
				t.Errorf("AssignIP(%s): %v, want ErrNotInPool", bad, err)
			}
		}
		// In another node's block: borrowed, the block stays node1's.
		ip2 := netip.MustParseAddr("10.6.0.65")
		if err := c.AssignIP(ctx, AssignIPArgs{IP: ip2, HandleID: "fixed2", Node: "node2"}); err != nil {
			t.Fatal(err)
		}
		if b := getBlockObj(t, k, blk.String()); b.Spec.AffineNode() != "node1" || blockAllocated(b) != 2 {
			t.Fatalf("after borrowing: affinity %v, %d allocated", b.Spec.Affinity, blockAllocated(b))
		}
		// AutoAssign on node1 skips the fixed addresses.
		for i := range 62 {
			if a := assign4(t, c, "node1", fmt.Sprintf("auto%d", i)); a == ip || a == ip2 {
				t.Fatalf("AutoAssign handed out the fixed address %s", a)
			}
		}
		// IPv6.
		ip6 := netip.MustParseAddr("fd00:6::42")
		if err := c.AssignIP(ctx, AssignIPArgs{IP: ip6, HandleID: "fixed6", Node: "node1"}); err != nil {
			t.Fatal(err)
		}
		if rel, err := c.ReleaseByHandle(ctx, "fixed6"); err != nil || len(rel) != 1 || rel[0] != ip6 {
			t.Fatalf("release fixed6 = %v, %v", rel, err)
		}
		// No node: the block is created affine to none, and deleted when
		// its last address is released.
		ip3 := netip.MustParseAddr("10.6.0.200")
		if err := c.AssignIP(ctx, AssignIPArgs{IP: ip3, HandleID: "nonode"}); err != nil {
			t.Fatal(err)
		}
		if b := getBlockObj(t, k, "10.6.0.192/26"); b.Spec.Affinity != nil {
			t.Fatalf("block of a node-less fixed IP has affinity %v", *b.Spec.Affinity)
		}
		if _, err := c.ReleaseByHandle(ctx, "nonode"); err != nil {
			t.Fatal(err)
		}
		var b v3.IPAMBlock
		if err := k.Get(ctx, client.ObjectKey{Name: "10-6-0-192-26"}, &b); !apierrors.IsNotFound(err) {
			t.Fatalf("empty unaffine block still there: %v", err)
		}
	})
}

func TestPoolSelection(t *testing.T) {
	runBackends(t, func(t *testing.T, k client.Client) {
		ctx := context.Background()
		mkPool(t, k, "zone-a", "10.10.0.0/24", nodeSelector("zone == 'a'"))
		mkPool(t, k, "zone-b", "10.10.1.0/24", nodeSelector("zone in {'b', 'bb'} && !has(edge)"))
		mkPool(t, k, "manual", "10.10.2.0/24", manual())
		mkPool(t, k, "off", "10.10.3.0/24", disabled())
		mkPool(t, k, "tunnel", "10.10.4.0/24", uses(v3.IPPoolAllowedUseTunnel))
		mkPool(t, k, "lb", "10.10.5.0/24", uses(v3.IPPoolAllowedUseLoadBalancer))
		c := New(k, Options{})
		n := 0
		assign := func(node string, labels map[string]string, pools []string, use v3.IPPoolAllowedUse) (netip.Addr, error) {
			n++
			got, err := c.AutoAssign(ctx, AssignArgs{HandleID: fmt.Sprintf("h%d", n), Node: node, NodeLabels: labels,
				Num4: 1, IPv4Pools: pools, IntendedUse: use})
			if err != nil {
				return netip.Addr{}, err
			}
			return got.IPv4[0].Addr(), nil
		}
		cases := []struct {
			node   string
			labels map[string]string
			pools  []string
			use    v3.IPPoolAllowedUse
			want   string // a CIDR, or "error"
		}{
			{"na", map[string]string{"zone": "a"}, nil, "", "10.10.0.0/24"},
			{"nb", map[string]string{"zone": "bb"}, nil, "", "10.10.1.0/24"},
			{"nbe", map[string]string{"zone": "b", "edge": ""}, nil, "", "error"},
			{"nc", map[string]string{"zone": "c"}, nil, "", "error"},
			{"nc", map[string]string{"zone": "c"}, []string{"manual"}, "", "10.10.2.0/24"},
			{"nb", map[string]string{"zone": "b"}, []string{"10.10.1.0/24"}, "", "10.10.1.0/24"},
			{"nb", map[string]string{"zone": "b"}, []string{"zone-a"}, "", "error"}, // selector excludes
			{"nc", nil, []string{"off"}, "", "error"},
			{"nc", nil, []string{"nope"}, "", "error"},
			{"nc", nil, []string{"lb"}, "", "error"}, // not for workloads
			{"nc", nil, []string{"lb"}, v3.IPPoolAllowedUseLoadBalancer, "10.10.5.0/24"},
			{"nc", nil, nil, v3.IPPoolAllowedUseTunnel, "10.10.4.0/24"},
		}
		for i, tc := range cases {
			a, err := assign(tc.node, tc.labels, tc.pools, tc.use)
			if tc.want == "error" {
				if !errors.Is(err, ErrNoPool) {
					t.Errorf("case %d %+v: %v, %v; want ErrNoPool", i, tc, a, err)
				}
				continue
			}
			if err != nil || !netip.MustParsePrefix(tc.want).Contains(a) {
				t.Errorf("case %d %+v: %v, %v; want an address of %s", i, tc, a, err, tc.want)
			}
		}
	})
}

func TestGC(t *testing.T) {
	runBackends(t, func(t *testing.T, k client.Client) {
		ctx := context.Background()
		mkPool(t, k, "p", "10.8.0.0/24")
		c := New(k, Options{})
		addrs := map[string]netip.Addr{}
		for _, h := range []string{"dead1", "alive", "dead2"} {
			got, err := c.AutoAssign(ctx, AssignArgs{HandleID: h, Node: "node1", Num4: 1, Attrs: map[string]string{"pod": h}})
			if err != nil {
				t.Fatal(err)
			}
			addrs[h] = got.IPv4[0].Addr()
		}
		// A handle left behind by an interrupted assignment (counts, no
		// address).
		leak := &v3.IPAMHandle{}
		leak.Name = "leaked"
		leak.Spec = v3.IPAMHandleSpec{HandleID: "leaked", Block: map[string]int{"10.8.0.0/26": 1}}
		if err := k.Create(ctx, leak); err != nil {
			t.Fatal(err)
		}
		asked := map[string]string{}
		n, err := c.GC(ctx, func(h string, attrs map[string]string) bool {
			if attrs != nil {
				asked[h] = attrs["pod"]
			}
			return h == "alive"
		})
		if err != nil || n != 2 {
			t.Fatalf("GC = %d, %v; want 2 released", n, err)
		}
		if asked["dead1"] != "dead1" || asked["alive"] != "alive" {
			t.Errorf("alive was asked %v", asked)
		}
		_, _, handles := listAll(t, k)
		if len(handles) != 1 || handles[0].Spec.HandleID != "alive" {
			t.Fatalf("handles after GC: %+v", handles)
		}
		if ips, _ := c.IPsByHandle(ctx, "alive"); len(ips) != 1 || ips[0] != addrs["alive"] {
			t.Fatalf("alive lost its address: %v", ips)
		}
		// Nothing more to collect.
		if n, err := c.GC(ctx, func(h string, _ map[string]string) bool { return h == "alive" }); err != nil || n != 0 {
			t.Fatalf("second GC = %d, %v", n, err)
		}
	})
}

func TestReleaseAffinity(t *testing.T) {
	runBackends(t, func(t *testing.T, k client.Client) {
		ctx := context.Background()
		mkPool(t, k, "p", "10.9.0.0/28", blockSize(30))
		c := New(k, Options{})
		// node1 fills one block and starts a second, then frees the second.
		for i := range 5 {
			assign4(t, c, "node1", fmt.Sprintf("h%d", i))
		}
		if _, err := c.ReleaseByHandle(ctx, "h4"); err != nil {
			t.Fatal(err)
		}
		assign4(t, c, "node2", "other")
		nb, _ := c.NodeBlocks(ctx)
		if len(nb["node1"]) != 2 {
			t.Fatalf("node1 blocks %v", nb["node1"])
		}
		if err := c.ReleaseAffinity(ctx, "node1"); err != nil {
			t.Fatal(err)
		}
		blocks, affs, _ := listAll(t, k)
		if len(blocks) != 2 { // node1's full block (now unaffine) and node2's
			t.Fatalf("blocks after ReleaseAffinity: %+v", blocks)
		}
		for _, a := range affs {
			if a.Spec.Node == "node1" {
				t.Fatalf("node1 affinity left: %+v", a)
			}
		}
		nb, _ = c.NodeBlocks(ctx)
		if len(nb["node1"]) != 0 || len(nb["node2"]) != 1 {
			t.Fatalf("NodeBlocks after release: %v", nb)
		}
		// The orphaned block's addresses are still assigned; another node
		// can borrow the ones freed; the block goes with its last address.
		if ips, _ := c.IPsByHandle(ctx, "h0"); len(ips) != 1 {
			t.Fatalf("h0 lost its address: %v", ips)
		}
		for i := range 4 {
			if _, err := c.ReleaseByHandle(ctx, fmt.Sprintf("h%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		blocks, _, _ = listAll(t, k)
		if len(blocks) != 1 || blocks[0].Spec.AffineNode() != "node2" {
			t.Fatalf("blocks after freeing the orphan: %+v", blocks)
		}
		// node1 may come back and claim blocks again.
		assign4(t, c, "node1", "back")
	})
}

func TestUsage(t *testing.T) {
	runBackends(t, func(t *testing.T, k client.Client) {
		ctx := context.Background()
		mkPool(t, k, "v4", "10.11.0.0/24")
		mkPool(t, k, "v6", "fd00:11::/64", blockSize(122))
		c := New(k, Options{})
		for i := range 3 {
			assign4(t, c, fmt.Sprintf("node%d", i%2), fmt.Sprintf("h%d", i))
		}
		if _, err := c.AutoAssign(ctx, AssignArgs{HandleID: "v6", Node: "node0", Num6: 2}); err != nil {
			t.Fatal(err)
		}
		u, err := c.Usage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(u) != 2 {
			t.Fatalf("Usage = %+v", u)
		}
		if u[0].Name != "v4" || u[0].Size != 256 || u[0].Allocated != 3 || u[0].Blocks != 2 || u[0].AffineBlocks != 2 || u[0].BlockSize != 26 {
			t.Errorf("v4 usage %+v", u[0])
		}
		if u[1].Name != "v6" || u[1].Size != 1<<64 || u[1].Allocated != 2 || u[1].Blocks != 1 {
			t.Errorf("v6 usage %+v", u[1])
		}
	})
}

func TestOddHandleIDs(t *testing.T) {
	runBackends(t, func(t *testing.T, k client.Client) {
		ctx := context.Background()
		mkPool(t, k, "p", "10.12.0.0/24")
		c := New(k, Options{})
		ids := []string{"K8s-Pod-Network.ABC", "k8s-pod-network.abc", "a_b/c:d", strings.Repeat("x", 300), "-.-"}
		got := map[netip.Addr]bool{}
		for _, id := range ids {
			a := assign4(t, c, "node1", id)
			got[a] = true
			if ips, err := c.IPsByHandle(ctx, id); err != nil || len(ips) != 1 || ips[0] != a {
				t.Fatalf("IPsByHandle(%q) = %v, %v", id, ips, err)
			}
		}
		if len(got) != len(ids) {
			t.Fatalf("addresses %v", got)
		}
		for _, id := range ids {
			if rel, err := c.ReleaseByHandle(ctx, id); err != nil || len(rel) != 1 {
				t.Fatalf("ReleaseByHandle(%q) = %v, %v", id, rel, err)
			}
		}

		// A node name too long for a label value (its affinities carry a
		// hash in the node label) still finds its block again.
		long := strings.Repeat("rack.", 24) + "node1"
		a1 := assign4(t, c, long, "long1")
		a2 := assign4(t, c, long, "long2")
		nb, _ := c.NodeBlocks(ctx)
		if len(nb[long]) != 1 || !nb[long][0].Contains(a1) || !nb[long][0].Contains(a2) {
			t.Fatalf("NodeBlocks[long] = %v (addresses %s %s)", nb[long], a1, a2)
		}
		if err := c.ReleaseAffinity(ctx, long); err != nil {
			t.Fatal(err)
		}
		if _, affs, _ := listAll(t, k); len(affs) != 1 { // node1's
			t.Fatalf("affinities left: %+v", affs)
		}
	})
}

func TestArgs(t *testing.T) {
	c := New(newStore(t, backendFake), Options{})
	ctx := context.Background()
	for _, a := range []AssignArgs{{Node: "n", Num4: 1}, {HandleID: "h", Num4: 1}, {HandleID: "h", Node: "n"}, {HandleID: "h", Node: "n", Num4: -1, Num6: 2}} {
		if _, err := c.AutoAssign(ctx, a); err == nil {
			t.Errorf("AutoAssign(%+v) succeeded", a)
		}
	}
	if err := c.AssignIP(ctx, AssignIPArgs{HandleID: "h"}); err == nil {
		t.Error("AssignIP without IP succeeded")
	}
	if _, err := c.AutoAssign(ctx, AssignArgs{HandleID: "h", Node: "n", Num4: 1}); !errors.Is(err, ErrNoPool) {
		t.Errorf("AutoAssign without pools: %v", err)
	}
}
