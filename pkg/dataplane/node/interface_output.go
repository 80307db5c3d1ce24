package node

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/pkg/dataplane/driver"
	"github.com/vecnet/vecnet/pkg/dataplane/driver/tun"
	"github.com/vecnet/vecnet/pkg/dataplane/graph"
	"github.com/vecnet/vecnet/pkg/dataplane/tables"
)

// interface-output writes packets to their tx interface: tun/tap with one
// write(2) each, uplinks through their driver queue, flushed once per frame
// (one syscall for the whole batch). Interface counters are added once per
// run of consecutive packets to the same interface (the usual shape of a
// frame), not once per packet.
type interfaceOutput struct {
	gso int
	// flush lists, per worker, the uplink queues this frame wrote to.
	flush [][]*tables.TxQueue
}

const (
	ifOutErrGone = iota
	ifOutErrWrite
	ifOutErrDown
	ifOutErrNoHeadroom
	ifOutErrTxFull
	ifOutErrTooBig
)

var interfaceOutputErrors = []string{"interface_gone", "write_error", "interface_down", "no_headroom", "tx_ring_full", "frame_too_big"}

func newInterfaceOutput(workers int) *interfaceOutput {
	return &interfaceOutput{flush: make([][]*tables.TxQueue, workers)}
}

func (n *interfaceOutput) Init(g *graph.Graph) error {
	n.gso = g.MustIndex(InterfaceGSO)
	return nil
}

func (n *interfaceOutput) Process(c *graph.Context, f *graph.Frame) {
	p := c.Pool
	t := c.Tables
	var cur *tables.Interface
	var pkts, bytes uint64
	// held is the shared uplink queue whose lock this frame holds: taken
	// once per run of packets to it, not once per packet.
	var held *tables.TxQueue
	flush := func() {
		if cur != nil && pkts > 0 {
			cur.Counters.TxPackets.Add(pkts)
			cur.Counters.TxBytes.Add(bytes)
		}
		pkts, bytes = 0, 0
	}
	for _, b := range f.B[:f.N] {
		m := p.Meta(b)
		ifc := t.Interface(m.TxIf)
		if ifc != cur {
			flush()
			cur = ifc
		}
		if ifc == nil {
			c.Drop(b, ifOutErrGone)
			continue
		}
		if ifc.Kind == tables.KindUplink {
			if n.uplink(c, ifc, b, m, &held) {
				pkts++
				bytes += uint64(m.Len)
			}
			continue
		}
		if len(ifc.TxFDs) == 0 {
			c.Drop(b, ifOutErrGone)
			continue
		}
		if m.Start < tun.VnetHdrLen {
			c.Drop(b, ifOutErrNoHeadroom)
			continue
		}
		if cp := ifc.Capture.Load(); cp != nil {
			capture(cp, p.Packet(b), true)
		}
		l2 := 0
		if ifc.Kind == tables.KindTap {
			l2 = 14
		}
		n := uint64(m.Len)
		if errno := tun.Write(p, b, ifc.TxFDs[c.Worker%len(ifc.TxFDs)], l2); errno != 0 {
			ifc.Counters.TxErrors.Add(1)
			if errno == syscall.EIO {
				c.Drop(b, ifOutErrDown)
			} else {
				c.Drop(b, ifOutErrWrite)
			}
			continue
		}
		pkts++
		bytes += n
		c.Done(b)
	}
	flush()
	if held != nil {
		held.Mu.Unlock()
	}
	n.flushUplinks(c)
}

// uplink hands b to the uplink's driver queue of this worker and reports
// whether the driver took it. A queue shared with other workers is locked
// until the frame ends or another shared queue is needed (*held).
func (n *interfaceOutput) uplink(c *graph.Context, ifc *tables.Interface, b buffer.Index, m *buffer.Meta, held **tables.TxQueue) bool {
	p := c.Pool
	if ifc.Down || len(ifc.Tx) == 0 {
		c.Drop(b, ifOutErrDown)
		return false
	}
	if (m.Flags&buffer.FlagGSO != 0 && !ifc.TxGSO) || (m.Flags&buffer.FlagCsumPart != 0 && !ifc.TxCsum) {
		c.Enqueue(n.gso, b)
		return false
	}
	if cp := ifc.Capture.Load(); cp != nil {
		capture(cp, p.Packet(b), true)
	}
	q := ifc.Tx[c.Worker%len(ifc.Tx)]
	if q.Shared && *held != q {
		if *held != nil {
			(*held).Mu.Unlock()
		}
		q.Mu.Lock()
		*held = q
	}
	err := q.Q.Transmit(p, b)
	if err == nil {
		// The driver may have freed b already, but nothing was allocated
		// since: its metadata is intact for the trace bookkeeping.
		c.Sent(b)
	} else {
		ifc.Counters.TxErrors.Add(1)
		switch {
		case errors.Is(err, driver.ErrTxFull):
			c.Drop(b, ifOutErrTxFull)
		case errors.Is(err, driver.ErrDown):
			c.Drop(b, ifOutErrDown)
		case errors.Is(err, driver.ErrTooBig):
			c.Drop(b, ifOutErrTooBig)
		default:
			c.Drop(b, ifOutErrWrite)
		}
		return false
	}
	fl := n.flush[c.Worker]
	if len(fl) == 0 || fl[len(fl)-1] != q {
		for _, x := range fl {
			if x == q {
				return true
			}
		}
		n.flush[c.Worker] = append(fl, q)
	}
	return true
}

// flushUplinks sends what the frame queued on uplinks: one syscall per
// queue per frame.
func (n *interfaceOutput) flushUplinks(c *graph.Context) {
	fl := n.flush[c.Worker]
	for i, q := range fl {
		if q.Shared {
			q.Mu.Lock()
		}
		_ = q.Q.Flush(c.Pool) // losses show in the queue's TxDropped
		if q.Shared {
			q.Mu.Unlock()
		}
		fl[i] = nil
	}
	n.flush[c.Worker] = fl[:0]
}

func (n *interfaceOutput) TraceDetail(c *graph.Context, b buffer.Index) string {
	m := c.Pool.Meta(b)
	name := "?"
	if ifc := c.Tables.Interface(m.TxIf); ifc != nil {
		name = ifc.Name
	}
	return fmt.Sprintf("tx %s len %d gso %d/%d", name, m.Len, m.GSOType, m.GSOSize)
}
