// Package graph is the dataplane's packet-processing engine, built like FD.io
// VPP's vlib: packets move through a directed graph of nodes in frames
// (vectors) of up to FrameSize buffer indices. A node processes its whole
// frame in one call, so its instructions and tables stay in the CPU caches
// for 256 packets instead of being reloaded for each one; that amortisation,
// not any single trick, is where a vector dataplane's speed comes from.
//
// The graph is built once at start-up (Register, then Finalize). Each worker
// goroutine has its own Context holding its pending frames, counters and
// trace buffer, so nodes never share mutable state across workers.
package graph

import (
	"fmt"
	"sort"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
)

// FrameSize is the maximum number of packets handed to a node in one call.
const FrameSize = 256

// Frame is a vector of buffer indices.
type Frame struct {
	N int
	B [FrameSize]buffer.Index
}

// Node processes frames. Implementations hold the indices of their next
// nodes (resolved in Init) and never block.
type Node interface {
	// Init resolves next-node names to indices once the graph is complete.
	Init(g *Graph) error
	// Process consumes every packet of f: each one is enqueued to a next
	// node (Context.Enqueue) or dropped (Context.Drop).
	Process(c *Context, f *Frame)
}

// Tracer is implemented by nodes that add a per-packet detail line to
// traces (vecnetctl trace show). It is only called for traced packets.
type Tracer interface {
	TraceDetail(c *Context, b buffer.Index) string
}

// Spec describes a node at registration.
type Spec struct {
	Name string
	// Errors names the node's drop reasons; Context.Drop takes an index
	// into this slice. Names are snake_case and appear in `show errors`.
	Errors []string
	Node   Node
}

type registered struct {
	Spec
	tracer Tracer
}

// Graph is the set of nodes. It is immutable after Finalize.
type Graph struct {
	nodes  []registered
	byName map[string]int
	final  bool
}

// New returns an empty graph.
func New() *Graph { return &Graph{byName: map[string]int{}} }

// Register adds a node and returns its index. Nodes are dispatched in
// registration order within a round, so register them in the order packets
// flow (input first, output last): most packets then cross the whole graph
// in one round.
func (g *Graph) Register(s Spec) int {
	if g.final {
		panic("graph: Register after Finalize")
	}
	if _, dup := g.byName[s.Name]; dup {
		panic("graph: duplicate node " + s.Name)
	}
	r := registered{Spec: s}
	r.tracer, _ = s.Node.(Tracer)
	g.nodes = append(g.nodes, r)
	g.byName[s.Name] = len(g.nodes) - 1
	return len(g.nodes) - 1
}

// Index returns the index of the named node.
func (g *Graph) Index(name string) (int, error) {
	i, ok := g.byName[name]
	if !ok {
		return 0, fmt.Errorf("graph: no node %q", name)
	}
	return i, nil
}

// MustIndex is Index for Init methods, where a missing node is a build bug.
func (g *Graph) MustIndex(name string) int {
	i, err := g.Index(name)
	if err != nil {
		panic(err)
	}
	return i
}

// Finalize calls every node's Init.
func (g *Graph) Finalize() error {
	for _, n := range g.nodes {
		if err := n.Node.Init(g); err != nil {
			return fmt.Errorf("graph: init %s: %w", n.Name, err)
		}
	}
	g.final = true
	return nil
}

// Len returns the number of nodes.
func (g *Graph) Len() int { return len(g.nodes) }

// Name returns the name of node i.
func (g *Graph) Name(i int) string { return g.nodes[i].Name }

// Errors returns the drop reasons of node i.
func (g *Graph) Errors(i int) []string { return g.nodes[i].Errors }

// Names returns all node names, sorted.
func (g *Graph) Names() []string {
	var s []string
	for _, n := range g.nodes {
		s = append(s, n.Name)
	}
	sort.Strings(s)
	return s
}
