package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v3 "github.com/vecnet/vecnet/pkg/apis/projectcalico/v3"
	"github.com/vecnet/vecnet/test/kubeenv"
)

// countingClient counts IPAMBlock writes and slows them down, so that
// concurrent callers pile up behind the one being served (as they do
// behind a real API server's round trips).
type countingClient struct {
	client.Client
	delay        time.Duration
	blockUpdates atomic.Int64
}

func (c *countingClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	if _, ok := obj.(*v3.IPAMBlock); ok {
		c.blockUpdates.Add(1)
		time.Sleep(c.delay)
	}
	return c.Client.Update(ctx, obj, opts...)
}

// TestBatchAutoAssign: concurrent AutoAssign calls of one Client are served
// in batches, with far fewer block writes than calls, distinct addresses,
// and handles and blocks that agree.
func TestBatchAutoAssign(t *testing.T) {
	k := &countingClient{Client: fake.NewClientBuilder().WithScheme(testScheme).Build(), delay: 20 * time.Millisecond}
	mkPool(t, k, "p4", "10.30.0.0/24")
	mkPool(t, k, "p6", "fd00:30::/120")
	c := New(k, Options{})
	ctx := context.Background()
	// Claim the node's blocks first, so that the concurrent calls only
	// allocate.
	if _, err := c.AutoAssign(ctx, AssignArgs{HandleID: "first", Node: "node1", Num4: 1, Num6: 1}); err != nil {
		t.Fatal(err)
	}
	k.blockUpdates.Store(0)

	const n = 20
	var wg sync.WaitGroup
	got := make([]Assigned, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = c.AutoAssign(ctx, AssignArgs{HandleID: fmt.Sprintf("h%d", i), Node: "node1", Num4: 1, Num6: 1,
				Attrs: map[string]string{"pod": fmt.Sprint(i)}})
		}()
	}
	wg.Wait()
	seen := map[netip.Addr]string{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("h%d: %v", i, errs[i])
		}
		if len(got[i].IPv4) != 1 || len(got[i].IPv6) != 1 {
			t.Fatalf("h%d: got %+v, want one IPv4 and one IPv6 address", i, got[i])
		}
		for _, p := range append(got[i].IPv4, got[i].IPv6...) {
			if prev, dup := seen[p.Addr()]; dup {
				t.Fatalf("%s handed to %s and h%d", p.Addr(), prev, i)
			}
			seen[p.Addr()] = fmt.Sprintf("h%d", i)
		}
	}
	// 20 calls, one IPv4 and one IPv6 block: unbatched, 40 block writes.
	if u := k.blockUpdates.Load(); u > 12 {
		t.Errorf("%d block updates for %d dual-stack calls, want batches", u, n)
	} else {
		t.Logf("%d block updates for %d dual-stack calls", u, n)
	}
	for i := range n {
		h := fmt.Sprintf("h%d", i)
		ips, err := c.IPsByHandle(ctx, h)
		if err != nil || len(ips) != 2 {
			t.Fatalf("IPsByHandle(%s) = %v, %v", h, ips, err)
		}
		for _, a := range ips {
			if seen[a] != h {
				t.Fatalf("handle %s holds %s, handed to %q", h, a, seen[a])
			}
		}
	}
	for i := range n {
		if rel, err := c.ReleaseByHandle(ctx, fmt.Sprintf("h%d", i)); err != nil || len(rel) != 2 {
			t.Fatalf("ReleaseByHandle(h%d) = %v, %v", i, rel, err)
		}
	}
}

// TestBatchErrorsPerRequest: in one batch, a request that cannot be served
// fails alone, and a failed request keeps none of its addresses.
func TestBatchErrorsPerRequest(t *testing.T) {
	k := &countingClient{Client: fake.NewClientBuilder().WithScheme(testScheme).Build(), delay: 20 * time.Millisecond}
	// 8 IPv4 addresses in all (one /29 block), plenty of IPv6.
	mkPool(t, k, "p4", "10.31.0.0/29", blockSize(29))
	mkPool(t, k, "p6", "fd00:31::/120")
	c := New(k, Options{})
	ctx := context.Background()
	if _, err := c.AutoAssign(ctx, AssignArgs{HandleID: "first", Node: "node1", Num4: 1}); err != nil {
		t.Fatal(err)
	}
	// 7 IPv4 addresses left; 10 calls: some want 1, one wants 100 (fails),
	// one names a pool that does not exist (fails).
	type call struct {
		args AssignArgs
		out  Assigned
		err  error
	}
	calls := make([]*call, 10)
	for i := range calls {
		a := AssignArgs{HandleID: fmt.Sprintf("h%d", i), Node: "node1", Num4: 1, Num6: 1}
		switch i {
		case 3:
			a.Num4 = 100
		case 5:
			a.IPv6Pools = []string{"nope"}
		}
		calls[i] = &call{args: a}
	}
	var wg sync.WaitGroup
	for _, cl := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl.out, cl.err = c.AutoAssign(ctx, cl.args)
		}()
	}
	wg.Wait()
	ok, exhausted := 0, 0
	for i, cl := range calls {
		switch {
		case i == 3:
			if !errors.Is(cl.err, ErrPoolExhausted) {
				t.Errorf("h3 (100 addresses): %v, want ErrPoolExhausted", cl.err)
			}
		case i == 5:
			if !errors.Is(cl.err, ErrNoPool) {
				t.Errorf("h5 (unknown pool): %v, want ErrNoPool", cl.err)
			}
		case cl.err == nil:
			ok++
		case errors.Is(cl.err, ErrPoolExhausted):
			exhausted++
		default:
			t.Errorf("h%d: %v", i, cl.err)
		}
		if cl.err != nil {
			if ips, err := c.IPsByHandle(ctx, cl.args.HandleID); err != nil || len(ips) != 0 {
				t.Errorf("failed h%d holds %v (%v)", i, ips, err)
			}
		}
	}
	// 8 requests that each want one IPv4 address, 7 left.
	if ok != 7 || exhausted != 1 {
		t.Errorf("%d served, %d exhausted; want 7 and 1", ok, exhausted)
	}
}

// TestBatchCallerGivesUp: a caller whose context ends while its request is
// queued gets the context's error, and whatever was assigned for it is
// released.
func TestBatchCallerGivesUp(t *testing.T) {
	k := &countingClient{Client: fake.NewClientBuilder().WithScheme(testScheme).Build(), delay: 50 * time.Millisecond}
	mkPool(t, k, "p4", "10.32.0.0/24")
	c := New(k, Options{})
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
			defer cancel()
			_, err := c.AutoAssign(ctx, AssignArgs{HandleID: fmt.Sprintf("h%d", i), Node: "node1", Num4: 1})
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("h%d: %v", i, err)
			}
			if err != nil {
				return
			}
			if _, err := c.ReleaseByHandle(context.Background(), fmt.Sprintf("h%d", i)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	// Let the server finish the batch in flight.
	if _, err := c.AutoAssign(context.Background(), AssignArgs{HandleID: "last", Node: "node1", Num4: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReleaseByHandle(context.Background(), "last"); err != nil {
		t.Fatal(err)
	}
	blocks, _, hs := listAll(t, k)
	for _, b := range blocks {
		if n := blockAllocated(&b); n != 0 {
			t.Errorf("block %s holds %d addresses after every caller gave up or released", b.Spec.CIDR, n)
		}
	}
	if len(hs) != 0 {
		t.Errorf("%d handles left: %+v", len(hs), hs)
	}
}

// BenchmarkAutoAssignConcurrent: AutoAssign through one Client against the
// real API server, 20 callers at once (a node starting 20 pods), dual
// stack. Skipped without kubeenv's binaries.
func BenchmarkAutoAssignConcurrent(b *testing.B) {
	env := kubeenv.Get(b)
	crdsOnce.Do(func() { env.InstallCRDs(b, crdDir()) })
	k, err := client.New(env.Config, client.Options{Scheme: testScheme})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for _, p := range []*v3.IPPool{
		{Spec: v3.IPPoolSpec{CIDR: "10.40.0.0/16"}},
		{Spec: v3.IPPoolSpec{CIDR: "fd00:40::/112"}},
	} {
		p.Name = "bench" + fmt.Sprint(p.Spec.CIDR[0:2])
		if err := k.Create(ctx, p); err != nil {
			b.Fatal(err)
		}
		defer k.Delete(ctx, p)
	}
	c := New(k, Options{})
	var seq atomic.Int64
	var mu sync.Mutex
	var handles []string
	var lat []time.Duration
	b.SetParallelism(max(1, 20/runtime.GOMAXPROCS(0))) // about 20 callers
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			h := fmt.Sprintf("bench-%d", seq.Add(1))
			t0 := time.Now()
			_, err := c.AutoAssign(ctx, AssignArgs{HandleID: h, Node: "bench-node", Num4: 1, Num6: 1})
			d := time.Since(t0)
			if err != nil {
				b.Error(err)
				return
			}
			mu.Lock()
			handles = append(handles, h)
			lat = append(lat, d)
			mu.Unlock()
		}
	})
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	for _, h := range handles {
		if _, err := c.ReleaseByHandle(ctx, h); err != nil {
			b.Fatal(err)
		}
	}
	if err := c.ReleaseAffinity(ctx, "bench-node"); err != nil {
		b.Fatal(err)
	}
}
