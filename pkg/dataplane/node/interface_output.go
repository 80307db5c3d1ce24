package node

import (
	"fmt"
	"syscall"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/pkg/dataplane/driver/tun"
	"github.com/vecnet/vecnet/pkg/dataplane/graph"
	"github.com/vecnet/vecnet/pkg/dataplane/tables"
)

// interface-output writes packets to their tx interface. Interface counters
// are added once per run of consecutive packets to the same interface (the
// usual shape of a frame), not once per packet.
type interfaceOutput struct{}

const (
	ifOutErrGone = iota
	ifOutErrWrite
	ifOutErrDown
	ifOutErrNoHeadroom
)

var interfaceOutputErrors = []string{"interface_gone", "write_error", "interface_down", "no_headroom"}

func (n *interfaceOutput) Init(g *graph.Graph) error { return nil }

func (n *interfaceOutput) Process(c *graph.Context, f *graph.Frame) {
	p := c.Pool
	t := c.Tables
	var cur *tables.Interface
	var pkts, bytes uint64
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
		if ifc == nil || len(ifc.TxFDs) == 0 {
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
}

func (n *interfaceOutput) TraceDetail(c *graph.Context, b buffer.Index) string {
	m := c.Pool.Meta(b)
	name := "?"
	if ifc := c.Tables.Interface(m.TxIf); ifc != nil {
		name = ifc.Name
	}
	return fmt.Sprintf("tx %s len %d gso %d/%d", name, m.Len, m.GSOType, m.GSOSize)
}
