package graph

import (
	"sync/atomic"
	"time"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/pkg/dataplane/tables"
)

// NodeCounters are one node's counters on one worker. They are written by
// the worker once per frame (not per packet) and read by the API.
type NodeCounters struct {
	Calls   atomic.Uint64 // times the node ran (for input nodes: polls)
	Vectors atomic.Uint64 // non-empty frames processed
	Packets atomic.Uint64
	Nanos   atomic.Uint64 // time spent in non-empty calls
}

// Context is one worker's view of the graph: its pending frames, buffer
// pool, table snapshot and counters. Only the owning worker goroutine calls
// its methods, except the read-only accessors documented as safe.
type Context struct {
	Worker int
	Pool   *buffer.Pool
	// Tables is the snapshot used for the current dispatch round. The
	// worker refreshes it between rounds, never in the middle of one, so a
	// packet sees one consistent set of tables from input to output.
	Tables *tables.Snapshot
	// Now is the time at the start of the round, for nodes that need a
	// clock (rate limiters, neighbour ageing) without a call per packet.
	Now time.Time

	g *Graph
	// open[i] is the frame node i's predecessors are filling; queue[i]
	// holds it and any full frames before it. Frames never fill up in the
	// common case (each node emits at most one packet per input packet), but
	// fan-in from several nodes can exceed FrameSize, and then a node gets
	// two frames rather than a nested dispatch or a drop.
	open       []*Frame
	queue      [][]*Frame
	spareQueue [][]*Frame
	freeFrames []*Frame
	counters   []NodeCounters
	errors     [][]atomic.Uint64
	cur        int // node being dispatched

	traceLeft atomic.Int64 // packets still to mark for tracing
	tracing   int          // traced packets in flight in this round
	trace     *TraceBuffer
}

// NewContext returns worker w's context over g.
func NewContext(g *Graph, w int, pool *buffer.Pool) *Context {
	c := &Context{
		Worker:     w,
		Pool:       pool,
		g:          g,
		open:       make([]*Frame, g.Len()),
		queue:      make([][]*Frame, g.Len()),
		spareQueue: make([][]*Frame, g.Len()),
		counters:   make([]NodeCounters, g.Len()),
		errors:     make([][]atomic.Uint64, g.Len()),
		trace:      newTraceBuffer(w),
	}
	for i := range c.open {
		c.open[i] = new(Frame)
		c.queue[i] = append(make([]*Frame, 0, 4), c.open[i])
		c.spareQueue[i] = make([]*Frame, 0, 4)
		c.errors[i] = make([]atomic.Uint64, len(g.nodes[i].Errors))
	}
	return c
}

func (c *Context) allocFrame() *Frame {
	if n := len(c.freeFrames); n > 0 {
		f := c.freeFrames[n-1]
		c.freeFrames = c.freeFrames[:n-1]
		return f
	}
	return new(Frame)
}

// Graph returns the graph the context runs.
func (c *Context) Graph() *Graph { return c.g }

// Enqueue appends buffer b to the pending frame of node next.
func (c *Context) Enqueue(next int, b buffer.Index) {
	f := c.open[next]
	if f.N == FrameSize {
		f = c.allocFrame()
		c.queue[next] = append(c.queue[next], f)
		c.open[next] = f
	}
	f.B[f.N] = b
	f.N++
}

// Drop frees buffer b and counts it under the current node's reason.
func (c *Context) Drop(b buffer.Index, reason int) {
	c.errors[c.cur][reason].Add(1)
	if c.tracing > 0 {
		m := c.Pool.Meta(b)
		if m.Flags&buffer.FlagTraced != 0 {
			c.trace.add(m.Trace, "error-drop", c.g.nodes[c.cur].Name+": "+c.g.nodes[c.cur].Errors[reason])
			c.tracing--
		}
	}
	c.Pool.Free(b)
}

// Count adds n to one of the current node's error counters without dropping
// anything (e.g. a packet answered with an ICMP error).
func (c *Context) Count(reason int, n uint64) { c.errors[c.cur][reason].Add(n) }

// Done frees a buffer that left the dataplane (written to a device).
func (c *Context) Done(b buffer.Index) {
	c.Sent(b)
	c.Pool.Free(b)
}

// Sent records that buffer b left the graph without freeing it: a driver
// queue took it over and frees it once the frame is on the wire. It reads
// b's metadata, so it must come before anything is allocated from the pool
// after the handover (Free leaves the metadata alone; the next Alloc of b
// does not): interface-output and the gso nodes call it right after a
// driver or gso.Segment may have freed b.
func (c *Context) Sent(b buffer.Index) {
	if c.tracing > 0 {
		m := c.Pool.Meta(b)
		if m.Flags&buffer.FlagTraced != 0 {
			c.tracing--
		}
	}
}

// Run dispatches pending frames until none is left. Nodes are visited in
// registration order; packets sent "backwards" (e.g. an ICMP reply going
// from ip4-local back to ip4-lookup) are handled by the next pass.
func (c *Context) Run() {
	for {
		any := false
		for i := range c.open {
			if c.open[i].N > 0 || len(c.queue[i]) > 1 {
				c.dispatch(i)
				any = true
			}
		}
		if !any {
			// Every packet of the round has left or been dropped.
			c.tracing = 0
			return
		}
	}
}

// dispatch hands node i every frame queued for it. A fresh open frame is put
// in place first, so packets the node (or a cycle through it) enqueues to
// itself wait for the next pass instead of mutating the frame being read.
func (c *Context) dispatch(i int) {
	q := c.queue[i]
	nf := c.allocFrame()
	c.queue[i] = append(c.spareQueue[i][:0], nf)
	c.open[i] = nf
	c.cur = i
	k := &c.counters[i]
	node := c.g.nodes[i].Node
	for _, f := range q {
		if n := f.N; n > 0 {
			if c.tracing > 0 {
				c.traceFrame(i, f)
			}
			t0 := time.Now()
			node.Process(c, f)
			ns := time.Since(t0)
			k.Calls.Add(1)
			k.Vectors.Add(1)
			k.Packets.Add(uint64(n))
			k.Nanos.Add(uint64(ns))
		}
		f.N = 0
		c.freeFrames = append(c.freeFrames, f)
	}
	c.spareQueue[i] = q[:0]
}

// Poll runs input node i, which enqueues what it received, then dispatches
// everything. It returns the number of packets the input produced.
func (c *Context) Poll(i int, input func(c *Context) int) int {
	c.cur = i
	t0 := time.Now()
	n := input(c)
	k := &c.counters[i]
	k.Calls.Add(1)
	if n == 0 {
		return 0
	}
	k.Vectors.Add(1)
	k.Packets.Add(uint64(n))
	k.Nanos.Add(uint64(time.Since(t0)))
	c.Run()
	return n
}

// Counters returns node i's counters; safe from any goroutine.
func (c *Context) Counters(i int) *NodeCounters { return &c.counters[i] }

// ErrorCount returns the count of node i's reason r; safe from any goroutine.
func (c *Context) ErrorCount(i, r int) uint64 { return c.errors[i][r].Load() }

// Node returns the index of the node being dispatched.
func (c *Context) Node() int { return c.cur }
