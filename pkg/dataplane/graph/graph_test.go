package graph

import (
	"strings"
	"testing"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
)

// relay forwards every packet to next (or frees it when next < 0) and
// records the frame sizes it saw.
type relay struct {
	name   string
	next   string
	nextIx int
	sizes  []int
	drop   bool
}

func (r *relay) Init(g *Graph) error {
	r.nextIx = -1
	if r.next != "" {
		r.nextIx = g.MustIndex(r.next)
	}
	return nil
}

func (r *relay) Process(c *Context, f *Frame) {
	r.sizes = append(r.sizes, f.N)
	for _, b := range f.B[:f.N] {
		switch {
		case r.drop:
			c.Drop(b, 0)
		case r.nextIx >= 0:
			c.Enqueue(r.nextIx, b)
		default:
			c.Done(b)
		}
	}
}

func (r *relay) TraceDetail(c *Context, b buffer.Index) string { return "via " + r.name }

func build(t *testing.T, nodes ...*relay) (*Graph, *Context, []int) {
	g := New()
	var idx []int
	for _, n := range nodes {
		idx = append(idx, g.Register(Spec{Name: n.name, Errors: []string{"dropped"}, Node: n}))
	}
	if err := g.Finalize(); err != nil {
		t.Fatal(err)
	}
	return g, NewContext(g, 0, buffer.NewPool(2048, 2)), idx
}

func alloc(t *testing.T, c *Context) buffer.Index {
	b, ok := c.Pool.Alloc()
	if !ok {
		t.Fatal("pool empty")
	}
	return b
}

// More than FrameSize packets fanned in to one node arrive as several
// frames, all processed, none lost.
func TestFanInBeyondFrameSize(t *testing.T) {
	a := &relay{name: "a", next: "c"}
	b := &relay{name: "b", next: "c"}
	c := &relay{name: "c"}
	_, ctx, idx := build(t, a, b, c)
	for i := 0; i < 200; i++ {
		ctx.Enqueue(idx[0], alloc(t, ctx))
		ctx.Enqueue(idx[1], alloc(t, ctx))
	}
	ctx.Run()
	total := 0
	for _, n := range c.sizes {
		if n > FrameSize {
			t.Fatalf("frame of %d packets", n)
		}
		total += n
	}
	if total != 400 {
		t.Fatalf("c saw %d packets, want 400 (frames %v)", total, c.sizes)
	}
	if s, _ := ctx.Pool.FreeCount(); s != 2048 {
		t.Fatalf("leak: %d free", s)
	}
	k := ctx.Counters(idx[2])
	if k.Packets.Load() != 400 || k.Vectors.Load() != uint64(len(c.sizes)) {
		t.Fatalf("counters: packets %d vectors %d", k.Packets.Load(), k.Vectors.Load())
	}
}

// bounce sends each packet back to an earlier node until it has made laps
// round trips, as ip4-local sends an echo reply back to ip4-lookup.
type bounce struct {
	back, laps, seen int
}

func (b *bounce) Init(g *Graph) error { b.back = g.MustIndex("a"); return nil }
func (b *bounce) Process(c *Context, f *Frame) {
	for _, p := range f.B[:f.N] {
		b.seen++
		if b.seen < b.laps {
			c.Enqueue(b.back, p)
		} else {
			c.Done(p)
		}
	}
}

// A backward edge is handled by later passes of Run, not by recursion, and
// the frame being processed is never the one being filled.
func TestBackwardEdge(t *testing.T) {
	a := &relay{name: "a", next: "b"}
	g := New()
	ia := g.Register(Spec{Name: "a", Node: a})
	bn := &bounce{laps: 3}
	g.Register(Spec{Name: "b", Node: bn})
	if err := g.Finalize(); err != nil {
		t.Fatal(err)
	}
	ctx := NewContext(g, 0, buffer.NewPool(16, 1))
	p, _ := ctx.Pool.Alloc()
	ctx.Enqueue(ia, p)
	ctx.Run()
	if len(a.sizes) != 3 || bn.seen != 3 {
		t.Fatalf("a ran %d times, b saw %d packets; want 3 and 3", len(a.sizes), bn.seen)
	}
	if s, _ := ctx.Pool.FreeCount(); s != 16 {
		t.Fatal("leak")
	}
}

func TestDropCountsReason(t *testing.T) {
	d := &relay{name: "d", drop: true}
	g, ctx, idx := build(t, d)
	for i := 0; i < 3; i++ {
		ctx.Enqueue(idx[0], alloc(t, ctx))
	}
	ctx.Run()
	if n := ctx.ErrorCount(idx[0], 0); n != 3 {
		t.Fatalf("drops %d, want 3", n)
	}
	if g.Errors(idx[0])[0] != "dropped" {
		t.Fatal("reason name")
	}
}

func TestTraceRecordsPath(t *testing.T) {
	a := &relay{name: "a", next: "b"}
	b := &relay{name: "b"}
	_, ctx, idx := build(t, a, b)
	ctx.TraceAdd(1)
	if !ctx.TraceWanted() {
		t.Fatal("trace not wanted")
	}
	p := alloc(t, ctx)
	ctx.cur = idx[0]
	ctx.StartTrace(p)
	ctx.Enqueue(idx[0], p)
	q := alloc(t, ctx) // not traced
	ctx.Enqueue(idx[0], q)
	ctx.Run()
	tr := ctx.Traces()
	if len(tr) != 1 {
		t.Fatalf("%d traces, want 1", len(tr))
	}
	var path []string
	for _, s := range tr[0].Steps {
		path = append(path, s.Node+":"+s.Detail)
	}
	if got := strings.Join(path, " "); got != "a:via a a:via a b:via b" {
		t.Fatalf("path %q", got)
	}
	if ctx.TraceWanted() {
		t.Fatal("trace budget not consumed")
	}
	ctx.TraceClear()
	if len(ctx.Traces()) != 0 {
		t.Fatal("trace not cleared")
	}
}

func TestDispatchDoesNotAllocate(t *testing.T) {
	a := &relay{name: "a", next: "b"}
	b := &relay{name: "b"}
	_, ctx, idx := build(t, a, b)
	a.sizes, b.sizes = make([]int, 0, 1000), make([]int, 0, 1000)
	allocs := testing.AllocsPerRun(100, func() {
		for i := 0; i < FrameSize; i++ {
			p, _ := ctx.Pool.Alloc()
			ctx.Enqueue(idx[0], p)
		}
		ctx.Run()
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per frame", allocs)
	}
}
