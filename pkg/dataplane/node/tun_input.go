package node

import (
	"fmt"
	"syscall"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/pkg/dataplane/driver/tun"
	"github.com/vecnet/vecnet/pkg/dataplane/graph"
	"github.com/vecnet/vecnet/pkg/dataplane/tables"
)

// RxQueue is one tun/tap queue polled by a worker.
type RxQueue struct {
	FD      int
	IfIndex uint32
	L2      bool
}

const (
	tunInputErrNoBuffers = iota
	tunInputErrRead
	tunInputErrShort
	tunInputErrBadVersion
	tunInputErrNoInterface
)

var tunInputErrors = []string{"no_buffers", "read_error", "short_packet", "unknown_ip_version", "interface_gone"}

// TunInputNode reads pod tun/tap queues. Each worker polls its own set of
// queues, published by the control plane with an atomic pointer.
type TunInputNode struct {
	queues  workerQueues[RxQueue]
	readers []*tun.Reader
	ip4     int
	ip6     int
	eth     int
	budget  int
}

// perQueueBudget bounds how many packets one queue may deliver per poll so
// that a busy pod cannot starve the others on the same worker.
const perQueueBudget = 64

func newTunInput(workers int) *TunInputNode {
	return &TunInputNode{
		queues:  make(workerQueues[RxQueue], workers),
		readers: make([]*tun.Reader, workers),
		budget:  perQueueBudget,
	}
}

func (n *TunInputNode) Init(g *graph.Graph) error {
	n.ip4 = g.MustIndex(IP4Input)
	n.ip6 = g.MustIndex(IP6Input)
	n.eth = g.MustIndex(EthernetInput)
	return nil
}

// SetQueues publishes worker w's queue list.
func (n *TunInputNode) SetQueues(w int, q []RxQueue) { n.queues.set(w, q) }

// Queues returns worker w's queue list.
func (n *TunInputNode) Queues(w int) []RxQueue { return n.queues.get(w) }

// Release frees per-worker reader state (at worker exit).
func (n *TunInputNode) Release(w int) {
	if r := n.readers[w]; r != nil {
		r.Release()
	}
}

// Process is unused: input nodes are polled (Poll), not fed frames.
func (n *TunInputNode) Process(c *graph.Context, f *graph.Frame) {
	for _, b := range f.B[:f.N] {
		c.Drop(b, tunInputErrBadVersion)
	}
}

// Poll reads up to budget packets from each of the worker's queues and
// enqueues them to ip4-input, ip6-input or ethernet-input.
func (n *TunInputNode) Poll(c *graph.Context) int {
	qs := n.Queues(c.Worker)
	if len(qs) == 0 {
		return 0
	}
	r := n.readers[c.Worker]
	if r == nil {
		r = tun.NewReader(c.Pool)
		n.readers[c.Worker] = r
	}
	trace := c.TraceWanted()
	total := 0
	for _, q := range qs {
		ifc := c.Tables.Interface(q.IfIndex)
		var cp *tables.Capture // once per queue, not per packet
		if ifc != nil {
			cp = ifc.Capture.Load()
		}
		var pkts, bytes uint64
		for i := 0; i < n.budget && total < graph.FrameSize; i++ {
			b, ok, errno := r.Read(q.FD, q.L2)
			if !ok {
				if errno == syscall.EINVAL {
					c.Count(tunInputErrShort, 1)
					continue
				}
				if errno == syscall.ENOBUFS {
					c.Count(tunInputErrNoBuffers, 1)
				} else if errno != syscall.EAGAIN {
					c.Count(tunInputErrRead, 1)
				}
				break
			}
			m := c.Pool.Meta(b)
			if ifc == nil {
				c.Drop(b, tunInputErrNoInterface)
				continue
			}
			m.RxIf = q.IfIndex
			m.VRF = uint32(ifc.VRFSlot)
			pkts++
			bytes += uint64(m.Len)
			total++
			if trace {
				c.StartTrace(b)
				trace = c.TraceWanted()
			}
			if cp != nil {
				capture(cp, c.Pool.Packet(b), false)
			}
			if q.L2 {
				c.Enqueue(n.eth, b)
				continue
			}
			switch c.Pool.Packet(b)[0] >> 4 {
			case 4:
				c.Enqueue(n.ip4, b)
			case 6:
				c.Enqueue(n.ip6, b)
			default:
				c.Drop(b, tunInputErrBadVersion)
			}
		}
		if pkts > 0 {
			ifc.Counters.RxPackets.Add(pkts)
			ifc.Counters.RxBytes.Add(bytes)
		}
	}
	return total
}

// TraceDetail describes the packet as received.
func (n *TunInputNode) TraceDetail(c *graph.Context, b buffer.Index) string {
	m := c.Pool.Meta(b)
	name := "?"
	if ifc := c.Tables.Interface(m.RxIf); ifc != nil {
		name = ifc.Name
	}
	return fmt.Sprintf("rx %s len %d gso type %d size %d csum-partial %v", name, m.Len, m.GSOType, m.GSOSize, m.Flags&buffer.FlagCsumPart != 0)
}

// capture copies a packet for vecnetctl pcap without blocking.
func capture(cp *tables.Capture, pkt []byte, tx bool) {
	const snaplen = 65535
	d := pkt
	if len(d) > snaplen {
		d = d[:snaplen]
	}
	select {
	case cp.C <- tables.CapturedPacket{UnixNano: nowUnixNano(), Data: append([]byte(nil), d...), OrigLen: len(pkt), Tx: tx}:
	default:
	}
}
