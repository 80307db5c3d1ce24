package node

import (
	"fmt"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/pkg/dataplane/driver"
	"github.com/vecnet/vecnet/pkg/dataplane/graph"
)

// UplinkRxQueue is one uplink driver queue polled by a worker.
type UplinkRxQueue struct {
	Q       driver.Queue
	IfIndex uint32
}

const (
	uplinkInputErrNoInterface = iota
)

var uplinkInputErrors = []string{"interface_gone"}

// UplinkInputNode receives Ethernet frames from the uplink drivers'
// queues (AF_XDP, AF_PACKET): only what the uplink filter steered to the
// dataplane arrives here, everything else stayed with the kernel.
type UplinkInputNode struct {
	queues workerQueues[UplinkRxQueue]
	eth    int
	out    [][graph.FrameSize]buffer.Index // per worker
}

func newUplinkInput(workers int) *UplinkInputNode {
	return &UplinkInputNode{
		queues: make(workerQueues[UplinkRxQueue], workers),
		out:    make([][graph.FrameSize]buffer.Index, workers),
	}
}

func (n *UplinkInputNode) Init(g *graph.Graph) error {
	n.eth = g.MustIndex(EthernetInput)
	return nil
}

// SetQueues publishes worker w's uplink queues.
func (n *UplinkInputNode) SetQueues(w int, q []UplinkRxQueue) { n.queues.set(w, q) }

// Queues returns worker w's uplink queues.
func (n *UplinkInputNode) Queues(w int) []UplinkRxQueue { return n.queues.get(w) }

// Process is unused: input nodes are polled.
func (n *UplinkInputNode) Process(c *graph.Context, f *graph.Frame) {
	for _, b := range f.B[:f.N] {
		c.Drop(b, uplinkInputErrNoInterface)
	}
}

// Poll receives up to a frame's worth of packets from each queue of the
// worker, bounded per queue so one busy uplink cannot starve the others.
func (n *UplinkInputNode) Poll(c *graph.Context) int {
	qs := n.Queues(c.Worker)
	if len(qs) == 0 {
		return 0
	}
	out := &n.out[c.Worker]
	trace := c.TraceWanted()
	total := 0
	for _, q := range qs {
		room := min(graph.FrameSize-total, perQueueBudget*4)
		if room <= 0 {
			break
		}
		got := q.Q.Receive(c.Pool, out[:room])
		if got == 0 {
			continue
		}
		ifc := c.Tables.Interface(q.IfIndex)
		if ifc == nil {
			for _, b := range out[:got] {
				c.Drop(b, uplinkInputErrNoInterface)
			}
			continue
		}
		cp := ifc.Capture.Load()
		var bytes uint64
		for _, b := range out[:got] {
			m := c.Pool.Meta(b)
			m.RxIf = q.IfIndex
			m.VRF = uint32(ifc.VRFSlot)
			bytes += uint64(m.Len)
			if trace {
				c.StartTrace(b)
				trace = c.TraceWanted()
			}
			if cp != nil {
				capture(cp, c.Pool.Packet(b), false)
			}
			c.Enqueue(n.eth, b)
		}
		total += got
		ifc.Counters.RxPackets.Add(uint64(got))
		ifc.Counters.RxBytes.Add(bytes)
	}
	return total
}

// TraceDetail describes the frame as received.
func (n *UplinkInputNode) TraceDetail(c *graph.Context, b buffer.Index) string {
	m := c.Pool.Meta(b)
	name := "?"
	if ifc := c.Tables.Interface(m.RxIf); ifc != nil {
		name = ifc.Name
	}
	return fmt.Sprintf("rx %s len %d gso type %d size %d csum-partial %v", name, m.Len, m.GSOType, m.GSOSize, m.Flags&buffer.FlagCsumPart != 0)
}
