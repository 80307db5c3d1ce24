package ipam

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

// TestBatchRelease: concurrent ReleaseByHandle calls of one Client are
// served in batches, with far fewer block writes than calls; every address
// is freed and every handle deleted. Releases of a missing handle succeed
// with nothing, ReleaseIPs in the same batches keep their own results
// (sequence numbers included), and a call whose context has ended before
// it is served releases nothing.
func TestBatchRelease(t *testing.T) {
	k := &countingClient{Client: fake.NewClientBuilder().WithScheme(testScheme).Build(), delay: 20 * time.Millisecond}
	mkPool(t, k, "p4", "10.33.0.0/24")
	mkPool(t, k, "p6", "fd00:33::/120")
	c := New(k, Options{})
	ctx := context.Background()
	const n = 20
	assigned := map[string][]netip.Addr{}
	for _, h := range []string{"keep", "keep2", "cancelled"} {
		got, err := c.AutoAssign(ctx, AssignArgs{HandleID: h, Node: "node1", Num4: 1})
		if err != nil {
			t.Fatal(err)
		}
		assigned[h] = []netip.Addr{got.IPv4[0].Addr()}
	}
	for i := range n {
		h := fmt.Sprintf("h%d", i)
		got, err := c.AutoAssign(ctx, AssignArgs{HandleID: h, Node: "node1", Num4: 1, Num6: 1})
		if err != nil {
			t.Fatal(err)
		}
		assigned[h] = []netip.Addr{got.IPv4[0].Addr(), got.IPv6[0].Addr()}
	}
	k.blockUpdates.Store(0)

	var wg sync.WaitGroup
	rel := make([][]netip.Addr, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rel[i], errs[i] = c.ReleaseByHandle(ctx, fmt.Sprintf("h%d", i))
		}()
	}
	var missing, stale, byIP []netip.Addr
	var missingErr, staleErr, byIPErr, cancelErr error
	wg.Add(4)
	go func() {
		defer wg.Done()
		missing, missingErr = c.ReleaseByHandle(ctx, "no-such-handle")
	}()
	go func() {
		defer wg.Done()
		seq := int64(-1) // not the allocation's
		stale, staleErr = c.ReleaseIPs(ctx, ReleaseOptions{Address: assigned["keep"][0], SequenceNumber: &seq})
	}()
	go func() {
		defer wg.Done()
		byIP, byIPErr = c.ReleaseIPs(ctx, ReleaseOptions{Address: assigned["keep2"][0], HandleID: "keep2"})
	}()
	go func() {
		defer wg.Done()
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, cancelErr = c.ReleaseByHandle(cctx, "cancelled")
	}()
	wg.Wait()

	for i := range n {
		h := fmt.Sprintf("h%d", i)
		if errs[i] != nil {
			t.Fatalf("ReleaseByHandle(%s): %v", h, errs[i])
		}
		want := assigned[h]
		if len(rel[i]) != 2 || !((rel[i][0] == want[0] && rel[i][1] == want[1]) || (rel[i][0] == want[1] && rel[i][1] == want[0])) {
			t.Errorf("ReleaseByHandle(%s) = %v, want %v", h, rel[i], want)
		}
	}
	if missingErr != nil || len(missing) != 0 {
		t.Errorf("ReleaseByHandle(missing) = %v, %v; want nothing, no error", missing, missingErr)
	}
	if staleErr != nil || len(stale) != 0 {
		t.Errorf("ReleaseIPs(stale sequence number) = %v, %v; want nothing, no error", stale, staleErr)
	}
	if byIPErr != nil || len(byIP) != 1 || byIP[0] != assigned["keep2"][0] {
		t.Errorf("ReleaseIPs(keep2) = %v, %v; want %v", byIP, byIPErr, assigned["keep2"])
	}
	if !errors.Is(cancelErr, context.Canceled) {
		t.Errorf("ReleaseByHandle(cancelled context) = %v, want context.Canceled", cancelErr)
	}
	// 20 calls, one IPv4 and one IPv6 block: unbatched, 40 block writes.
	if u := k.blockUpdates.Load(); u > 10 {
		t.Errorf("%d block updates for %d dual-stack releases, want batches", u, n)
	} else {
		t.Logf("%d block updates for %d dual-stack releases", u, n)
	}

	// Only "keep" and "cancelled" hold addresses and handles.
	blocks, _, hs := listAll(t, k)
	held := map[netip.Addr]string{}
	for i := range blocks {
		b, err := loadBlock(&blocks[i])
		if err != nil {
			t.Fatal(err)
		}
		for ord := range b.spec().Allocations {
			if attr, ok := b.owner(ord); ok {
				held[ordinalAddr(b.cidr, ord)] = handleOf(attr)
			}
		}
	}
	if len(held) != 2 || held[assigned["keep"][0]] != "keep" || held[assigned["cancelled"][0]] != "cancelled" {
		t.Errorf("blocks hold %v, want only keep's and cancelled's addresses", held)
	}
	var names []string
	for _, h := range hs {
		names = append(names, h.Spec.HandleID)
	}
	if len(names) != 2 {
		t.Errorf("handles left: %v, want keep and cancelled", names)
	}
	for _, h := range []string{"keep", "cancelled"} {
		if r, err := c.ReleaseByHandle(ctx, h); err != nil || len(r) != 1 {
			t.Errorf("ReleaseByHandle(%s) = %v, %v", h, r, err)
		}
	}
	if _, _, hs := listAll(t, k); len(hs) != 0 {
		t.Errorf("%d handles left", len(hs))
	}
}

// TestBatchAssignReleaseInterleaved: AutoAssign, ReleaseByHandle and
// ReleaseIPs calls of one Client, interleaved from many goroutines (so
// that batches mix them): no address is ever held by two callers, and once
// everything is released no allocation or handle remains. With and
// without the local lock.
func TestBatchAssignReleaseInterleaved(t *testing.T) {
	for _, opts := range []Options{{}, {NoLocalLock: true, MaxRetries: 1000}} {
		t.Run(fmt.Sprintf("NoLocalLock=%v", opts.NoLocalLock), func(t *testing.T) {
			k := &countingClient{Client: fake.NewClientBuilder().WithScheme(testScheme).Build(), delay: 2 * time.Millisecond}
			// Small blocks, so that calls meet at block boundaries and
			// blocks are claimed while others are released.
			mkPool(t, k, "p4", "10.34.0.0/24", blockSize(29))
			mkPool(t, k, "p6", "fd00:34::/120", blockSize(125))
			interleave(t, k, opts)
		})
	}
}

func interleave(t *testing.T, k client.Client, opts Options) {
	c := New(k, opts)
	ctx := context.Background()
	var mu sync.Mutex
	owner := map[netip.Addr]string{}
	take := func(h string, addrs []netip.Addr) {
		mu.Lock()
		defer mu.Unlock()
		for _, a := range addrs {
			if prev, dup := owner[a]; dup {
				t.Errorf("%s handed to %s and %s", a, prev, h)
			}
			owner[a] = h
		}
	}
	drop := func(addrs []netip.Addr) {
		mu.Lock()
		defer mu.Unlock()
		for _, a := range addrs {
			delete(owner, a)
		}
	}
	var wg sync.WaitGroup
	for w := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			type held struct {
				h     string
				addrs []netip.Addr
			}
			var mine []held
			for i := range 25 {
				h := fmt.Sprintf("w%d-%d", w, i)
				got, err := c.AutoAssign(ctx, AssignArgs{HandleID: h, Node: "node1", Num4: 1, Num6: rng.IntN(2)})
				if err != nil {
					t.Errorf("AutoAssign(%s): %v", h, err)
					return
				}
				var addrs []netip.Addr
				for _, p := range append(got.IPv4, got.IPv6...) {
					addrs = append(addrs, p.Addr())
				}
				take(h, addrs)
				mine = append(mine, held{h, addrs})
				for len(mine) > 0 && (len(mine) > 3 || rng.IntN(2) == 0) {
					j := rng.IntN(len(mine))
					x := mine[j]
					mine = append(mine[:j], mine[j+1:]...)
					drop(x.addrs)
					var rel []netip.Addr
					if rng.IntN(3) == 0 {
						var ro []ReleaseOptions
						for _, a := range x.addrs {
							ro = append(ro, ReleaseOptions{Address: a, HandleID: x.h})
						}
						rel, err = c.ReleaseIPs(ctx, ro...)
					} else {
						rel, err = c.ReleaseByHandle(ctx, x.h)
					}
					if err != nil {
						t.Errorf("release %s: %v", x.h, err)
						return
					}
					if len(rel) != len(x.addrs) {
						t.Errorf("release %s freed %v, want %v", x.h, rel, x.addrs)
					}
				}
			}
			for _, x := range mine {
				drop(x.addrs)
				if rel, err := c.ReleaseByHandle(ctx, x.h); err != nil || len(rel) != len(x.addrs) {
					t.Errorf("ReleaseByHandle(%s) = %v, %v; want %v", x.h, rel, err, x.addrs)
				}
			}
		}()
	}
	wg.Wait()
	blocks, _, hs := listAll(t, k)
	for _, b := range blocks {
		if n := blockAllocated(&b); n != 0 {
			t.Errorf("block %s holds %d addresses after everything was released", b.Spec.CIDR, n)
		}
	}
	if len(hs) != 0 {
		t.Errorf("%d handles left, e.g. %+v", len(hs), hs[0])
	}
}
