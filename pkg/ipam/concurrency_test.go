package ipam

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestConcurrentClients: several Clients (nodes) assign and release at once
// through the same API server; the only coordination between them is the
// server's optimistic concurrency. No address may be handed out twice, and
// once everything is released no allocation or handle may remain.
func TestConcurrentClients(t *testing.T) {
	runBackends(t, func(t *testing.T, k client.Client) {
		// 3 nodes x 300 addresses, 8 goroutines per node; each Client
		// serialises its own calls (the efficiency mutex), the three
		// Clients race.
		concurrencyRun(t, k, 3, 300, 8, Options{})
	})
}

// TestConcurrentNoLocalLock: the same without the per-Client mutex, so
// goroutines of one node race too: correctness must not depend on it.
func TestConcurrentNoLocalLock(t *testing.T) {
	runBackends(t, func(t *testing.T, k client.Client) {
		concurrencyRun(t, k, 3, 40, 4, Options{NoLocalLock: true, MaxRetries: 1000})
	})
}

func concurrencyRun(t *testing.T, k client.Client, nodes, perNode, workers int, opts Options) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// A /22 of /26 blocks: 16 blocks, enough for 900 addresses with some
	// blocks claimed by each node, and borrowing once they run out.
	mkPool(t, k, "conc", "10.20.0.0/22")
	mkPool(t, k, "conc6", "fd00:20::/112")

	type result struct {
		handle string
		addrs  []netip.Addr
	}
	results := make(chan result, nodes*perNode)
	errs := make(chan error, nodes*workers)
	var wg sync.WaitGroup
	t0 := time.Now()
	for n := range nodes {
		c := New(k, opts)
		node := fmt.Sprintf("node%d", n)
		jobs := make(chan int)
		go func() {
			defer close(jobs)
			for i := range perNode {
				jobs <- i
			}
		}()
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range jobs {
					h := fmt.Sprintf("%s-%d", node, i)
					args := AssignArgs{HandleID: h, Node: node, Num4: 1, Attrs: map[string]string{"node": node}}
					if i%10 == 0 {
						args.Num6 = 1 // some dual-stack pods
					}
					got, err := c.AutoAssign(ctx, args)
					if err != nil {
						errs <- fmt.Errorf("%s: %w", h, err)
						return
					}
					r := result{handle: h}
					for _, p := range append(got.IPv4, got.IPv6...) {
						r.addrs = append(r.addrs, p.Addr())
					}
					results <- r
				}
			}()
		}
	}
	wg.Wait()
	close(results)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	owner := map[netip.Addr]string{}
	var handles []string
	n4, n6 := 0, 0
	for r := range results {
		handles = append(handles, r.handle)
		for _, a := range r.addrs {
			if prev, dup := owner[a]; dup {
				t.Fatalf("address %s handed to %s and %s", a, prev, r.handle)
			}
			owner[a] = r.handle
			if a.Is4() {
				n4++
			} else {
				n6++
			}
		}
	}
	if len(handles) != nodes*perNode {
		t.Fatalf("%d assignments, want %d", len(handles), nodes*perNode)
	}
	t.Logf("%d IPv4 + %d IPv6 addresses for %d handles in %v", n4, n6, len(handles), time.Since(t0).Round(time.Millisecond))

	// The blocks agree with what the callers were told.
	blocks, _, hs := listAll(t, k)
	inBlocks := 0
	for i := range blocks {
		b, err := loadBlock(&blocks[i])
		if err != nil {
			t.Fatal(err)
		}
		for ord := range b.spec().Allocations {
			attr, ok := b.owner(ord)
			if !ok {
				continue
			}
			inBlocks++
			a := ordinalAddr(b.cidr, ord)
			if owner[a] != handleOf(attr) {
				t.Fatalf("block says %s belongs to %q, AutoAssign said %q", a, handleOf(attr), owner[a])
			}
		}
	}
	if inBlocks != len(owner) {
		t.Fatalf("%d allocations in blocks, %d handed out", inBlocks, len(owner))
	}
	if len(hs) != len(handles) {
		t.Fatalf("%d IPAMHandles, want %d", len(hs), len(handles))
	}

	// Release everything, concurrently, through other Clients.
	t1 := time.Now()
	jobs := make(chan string)
	relErrs := make(chan error, nodes*workers)
	released := make(chan int, len(handles))
	var rwg sync.WaitGroup
	for range nodes {
		c := New(k, opts)
		for range workers {
			rwg.Add(1)
			go func() {
				defer rwg.Done()
				for h := range jobs {
					rel, err := c.ReleaseByHandle(ctx, h)
					if err != nil {
						relErrs <- fmt.Errorf("release %s: %w", h, err)
						return
					}
					released <- len(rel)
				}
			}()
		}
	}
	for _, h := range handles {
		jobs <- h
	}
	close(jobs)
	rwg.Wait()
	close(relErrs)
	close(released)
	for err := range relErrs {
		t.Fatal(err)
	}
	total := 0
	for n := range released {
		total += n
	}
	if total != len(owner) {
		t.Fatalf("released %d addresses, want %d", total, len(owner))
	}
	t.Logf("released in %v", time.Since(t1).Round(time.Millisecond))

	blocks, affs, hs := listAll(t, k)
	for _, b := range blocks {
		if n := blockAllocated(&b); n != 0 || len(b.Spec.Unallocated) != len(b.Spec.Allocations) || len(b.Spec.Attributes) != 0 {
			t.Fatalf("block %s still has %d allocations (%d free, %d attributes)", b.Spec.CIDR, n, len(b.Spec.Unallocated), len(b.Spec.Attributes))
		}
		if b.Spec.AffineNode() == "" {
			t.Errorf("block %s has no affinity", b.Spec.CIDR)
		}
	}
	if len(hs) != 0 {
		t.Fatalf("%d handles left, e.g. %+v", len(hs), hs[0])
	}
	// Every block is claimed by exactly one node.
	seen := map[string]string{}
	for _, a := range affs {
		if prev, dup := seen[a.Spec.CIDR]; dup {
			t.Fatalf("block %s affine to %s and %s", a.Spec.CIDR, prev, a.Spec.Node)
		}
		seen[a.Spec.CIDR] = a.Spec.Node
	}
	for _, b := range blocks {
		if seen[b.Spec.CIDR] != b.Spec.AffineNode() {
			t.Errorf("block %s: affinity %s, BlockAffinity %q", b.Spec.CIDR, b.Spec.AffineNode(), seen[b.Spec.CIDR])
		}
	}
}
