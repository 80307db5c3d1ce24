package graph

import (
	"sync"
	"time"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
)

// Tracing follows VPP's `trace add`: the operator asks for the next N packets
// received by each worker; input nodes mark them, and every node that sees a
// marked packet appends a step. Untraced packets pay one flag test per frame
// (Context.tracing is zero), so tracing costs nothing when off.

const (
	maxTracedPackets = 1024
	maxStepsPerTrace = 64
)

// TraceStep is one node a traced packet went through.
type TraceStep struct {
	Node   string
	Detail string
	At     time.Duration // since the packet was received
}

// PacketTrace is the recorded path of one packet.
type PacketTrace struct {
	Worker int
	Seq    uint64
	Start  time.Time
	Steps  []TraceStep
}

// TraceBuffer holds a worker's traces. Its mutex is taken only for traced
// packets and by the API, never for ordinary traffic.
type TraceBuffer struct {
	mu      sync.Mutex
	worker  int
	seq     uint64
	packets []PacketTrace
}

func newTraceBuffer(w int) *TraceBuffer { return &TraceBuffer{worker: w} }

func (t *TraceBuffer) start(now time.Time) (uint32, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.packets) >= maxTracedPackets {
		return 0, false
	}
	t.seq++
	t.packets = append(t.packets, PacketTrace{Worker: t.worker, Seq: t.seq, Start: now})
	return uint32(len(t.packets) - 1), true
}

func (t *TraceBuffer) add(idx uint32, node, detail string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if int(idx) >= len(t.packets) {
		return // cleared while the packet was in flight
	}
	p := &t.packets[idx]
	if len(p.Steps) < maxStepsPerTrace {
		p.Steps = append(p.Steps, TraceStep{Node: node, Detail: detail, At: time.Since(p.Start)})
	}
}

// TraceAdd asks the worker to trace its next n received packets. Safe from
// any goroutine.
func (c *Context) TraceAdd(n int) { c.traceLeft.Add(int64(n)) }

// TraceWanted reports whether input nodes should mark packets. Input nodes
// call it once per poll.
func (c *Context) TraceWanted() bool { return c.traceLeft.Load() > 0 }

// StartTrace marks buffer b as traced and records the input node's step.
// Input nodes call it for each packet while TraceWanted.
func (c *Context) StartTrace(b buffer.Index) {
	if c.traceLeft.Add(-1) < 0 {
		c.traceLeft.Store(0)
		return
	}
	idx, ok := c.trace.start(time.Now())
	if !ok {
		return
	}
	m := c.Pool.Meta(b)
	m.Flags |= buffer.FlagTraced
	m.Trace = idx
	c.tracing++
	c.traceStep(c.cur, b)
}

// TraceNote adds a free-form line to a traced packet's path.
func (c *Context) TraceNote(b buffer.Index, detail string) {
	m := c.Pool.Meta(b)
	if m.Flags&buffer.FlagTraced != 0 {
		c.trace.add(m.Trace, c.g.nodes[c.cur].Name, detail)
	}
}

func (c *Context) traceStep(node int, b buffer.Index) {
	m := c.Pool.Meta(b)
	detail := ""
	if t := c.g.nodes[node].tracer; t != nil {
		detail = t.TraceDetail(c, b)
	}
	c.trace.add(m.Trace, c.g.nodes[node].Name, detail)
}

func (c *Context) traceFrame(node int, f *Frame) {
	for _, b := range f.B[:f.N] {
		if c.Pool.Meta(b).Flags&buffer.FlagTraced != 0 {
			c.traceStep(node, b)
		}
	}
}

// Traces returns a copy of the recorded traces. Safe from any goroutine.
func (c *Context) Traces() []PacketTrace {
	t := c.trace
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]PacketTrace, len(t.packets))
	for i, p := range t.packets {
		p.Steps = append([]TraceStep(nil), p.Steps...)
		out[i] = p
	}
	return out
}

// TraceClear forgets recorded traces and cancels pending trace requests.
// Safe from any goroutine.
func (c *Context) TraceClear() {
	c.traceLeft.Store(0)
	t := c.trace
	t.mu.Lock()
	t.packets = nil
	t.mu.Unlock()
}
