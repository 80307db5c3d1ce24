package node

import (
	"fmt"
	"net/netip"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/pkg/dataplane/graph"
	"github.com/vecnet/vecnet/pkg/dataplane/tables"
)

// lookupNexts are the next nodes of ip4-lookup and ip6-lookup by adjacency
// kind; steer is the tail both share once the family-specific part (FIB
// and flow hash) has chosen the adjacency, as VPP's ip_lookup_inline.
type lookupNexts struct {
	rewrite, local, resolve, icmp int
	// host takes packets for a node address: ip4-node-local (tunnels end
	// there) or, for IPv6, straight to ip6-rewrite towards the host tun.
	host int
}

// noRoute answers a packet whose destination matched no route.
func (n *lookupNexts) noRoute(c *graph.Context, b buffer.Index, m *buffer.Meta) {
	m.Aux = auxICMP(icmpNoRoute, 0)
	c.Enqueue(n.icmp, b)
}

// steer sends b on by the kind of the adjacency its route chose.
func (n *lookupNexts) steer(c *graph.Context, b buffer.Index, m *buffer.Meta, kind tables.AdjKind, nullRoute int) {
	switch kind {
	case tables.AdjRewrite, tables.AdjEncap:
		c.Enqueue(n.rewrite, b)
	case tables.AdjHost:
		c.Enqueue(n.host, b)
	case tables.AdjLocal:
		c.Enqueue(n.local, b)
	case tables.AdjIncomplete, tables.AdjGlean:
		c.Enqueue(n.resolve, b)
	case tables.AdjUnreachable:
		n.noRoute(c, b, m)
	default:
		c.Drop(b, nullRoute)
	}
}

// describeRoute is the trace line of a lookup: traces are taken as a frame
// enters a node, before Process has chosen the adjacency, so the trace
// repeats the (pure) lookup.
func describeRoute(t *tables.Snapshot, vrf uint32, dst netip.Addr, v, hash uint32) string {
	if v == 0 {
		return fmt.Sprintf("vrf %d: no route to %s", t.VRFs[vrf].ID, dst)
	}
	lb := &t.LBs[v]
	adj := lb.Buckets[hash&lb.Mask]
	a := t.Adjs[adj]
	return fmt.Sprintf("vrf %d: %s lb %d (%d buckets) adj %d %s tx-if %d nh %s", t.VRFs[vrf].ID, dst, v, len(lb.Buckets), adj, a.Kind, a.TxIf, nhString(a.NextHop))
}

func nhString(a netip.Addr) string {
	if !a.IsValid() {
		return "attached"
	}
	return a.String()
}
