package main

// show interfaces|routes|neighbors|errors|runtime|vrfs: aligned tables in
// the manner of vppctl. Empty cells print as "-" so that every row has the
// same number of whitespace-separated fields.

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	vecnetv1 "github.com/vecnet/vecnet/api/vecnet/v1"
)

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// row writes one table row.
func row(tw io.Writer, cells ...string) {
	for i, c := range cells {
		if c == "" {
			cells[i] = "-"
		}
	}
	fmt.Fprintln(tw, strings.Join(cells, "\t"))
}

func u64(n uint64) string { return strconv.FormatUint(n, 10) }
func u32(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

func kindName(k vecnetv1.InterfaceKind) string {
	switch k {
	case vecnetv1.InterfaceKind_INTERFACE_KIND_TUN:
		return "tun"
	case vecnetv1.InterfaceKind_INTERFACE_KIND_TAP:
		return "tap"
	case vecnetv1.InterfaceKind_INTERFACE_KIND_UNSPECIFIED:
		return "-"
	}
	return strings.ToLower(strings.TrimPrefix(k.String(), "INTERFACE_KIND_"))
}

// showCmd builds a show command without arguments.
func showCmd(what, help string, run func(ctx context.Context, c vecnetv1.DataplaneClient, w io.Writer) error) *command {
	return &command{
		path:     "show " + what,
		synopsis: []string{"show " + what},
		help:     help,
		parse: func(args []string) (action, error) {
			pos, err := parseArgs(newFlagSet("show "+what), args)
			if err != nil {
				return nil, err
			}
			if err := wantArgs(pos); err != nil {
				return nil, err
			}
			return func(ctx context.Context, e *env) error {
				ctx, cancel := e.rpcContext(ctx)
				defer cancel()
				return run(ctx, e.client, e.stdout)
			}, nil
		},
	}
}

var showInterfacesCmd = showCmd("interfaces",
	"Lists the interfaces with their configuration and packet counters.\n",
	runShowInterfaces)

func runShowInterfaces(ctx context.Context, c vecnetv1.DataplaneClient, w io.Writer) error {
	resp, err := c.ListInterfaces(ctx, &vecnetv1.ListInterfacesRequest{})
	if err != nil {
		return fromRPC(err)
	}
	ifs := slices.Clone(resp.GetInterfaces())
	slices.SortStableFunc(ifs, func(a, b *vecnetv1.Interface) int {
		return cmp.Or(cmp.Compare(a.GetIndex(), b.GetIndex()), strings.Compare(a.GetName(), b.GetName()))
	})
	tw := newTable(w)
	row(tw, "Name", "Index", "Kind", "Netns", "HostIf", "MTU", "Queues", "VRF", "Addresses", "RxPkts", "TxPkts", "Drops", "Offloads")
	for _, i := range ifs {
		cnt := i.GetCounters()
		addrs, offloads := i.GetAddresses(), i.GetOffloads()
		if i.GetKind() == vecnetv1.InterfaceKind_INTERFACE_KIND_UPLINK {
			// An uplink's addresses are the host's; its "offloads" are
			// how the driver attached (native/generic XDP, copy/zerocopy).
			addrs, offloads = i.GetHostAddrs(), i.GetDriver()
			if i.GetDown() {
				offloads += " DOWN"
			}
		}
		row(tw, i.GetName(), u32(i.GetIndex()), kindName(i.GetKind()), i.GetNetns(), i.GetHostIf(),
			u32(i.GetMtu()), u32(i.GetQueues()), u32(i.GetVrf()), strings.Join(addrs, ","),
			u64(cnt.GetRxPackets()), u64(cnt.GetTxPackets()), u64(cnt.GetDrops()), offloads)
	}
	return tw.Flush()
}

var showRoutesCmd = &command{
	path:     "show routes",
	synopsis: []string{"show routes [--vrf N|--all] [--source static|bgp]"},
	help: `Lists the routes of VRF 0, of VRF N, or of all VRFs; an ECMP route prints one
row per next hop. Sorted by VRF and prefix.

flags:
  --vrf N                VRF to list (default 0)
  --all                  list every VRF
  --source static|bgp    list every route of that source, also those that do not
                         forward because another source's route of the prefix wins
                         (a recursive one then shows no resolved: rows); without it,
                         the route that forwards for each prefix
`,
	parse: func(args []string) (action, error) {
		req, err := parseShowRoutes(args)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, e *env) error {
			ctx, cancel := e.rpcContext(ctx)
			defer cancel()
			return runShowRoutes(ctx, e.client, e.stdout, req)
		}, nil
	},
}

func parseShowRoutes(args []string) (*vecnetv1.ListRoutesRequest, error) {
	fs := newFlagSet("show routes")
	vrf := uint32Flag(fs, "vrf", "")
	all := fs.Bool("all", false, "")
	source := fs.String("source", "", "")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return nil, err
	}
	if err := wantArgs(pos); err != nil {
		return nil, err
	}
	vrfSet := false
	fs.Visit(func(f *flag.Flag) { vrfSet = vrfSet || f.Name == "vrf" })
	if vrfSet && *all {
		return nil, usagef("--vrf and --all are mutually exclusive")
	}
	if err := checkRouteSource(*source); err != nil {
		return nil, err
	}
	return &vecnetv1.ListRoutesRequest{Vrf: *vrf, AllVrfs: *all, Source: *source}, nil
}

// comparePrefixes orders IPv4 before IPv6, then by address and length;
// unparsable prefixes sort last, as text.
func comparePrefixes(a, b string) int {
	pa, ea := netip.ParsePrefix(a)
	pb, eb := netip.ParsePrefix(b)
	switch {
	case ea != nil && eb != nil:
		return strings.Compare(a, b)
	case ea != nil:
		return 1
	case eb != nil:
		return -1
	}
	return cmp.Or(pa.Addr().Compare(pb.Addr()), cmp.Compare(pa.Bits(), pb.Bits()))
}

// compareAddrs orders addresses like comparePrefixes.
func compareAddrs(a, b string) int {
	pa, ea := netip.ParseAddr(a)
	pb, eb := netip.ParseAddr(b)
	switch {
	case ea != nil && eb != nil:
		return strings.Compare(a, b)
	case ea != nil:
		return 1
	case eb != nil:
		return -1
	}
	return pa.Compare(pb)
}

func runShowRoutes(ctx context.Context, c vecnetv1.DataplaneClient, w io.Writer, req *vecnetv1.ListRoutesRequest) error {
	stream, err := c.ListRoutes(ctx, req)
	if err != nil {
		return fromRPC(err)
	}
	var routes []*vecnetv1.Route
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fromRPC(err)
		}
		routes = append(routes, r)
	}
	slices.SortStableFunc(routes, func(a, b *vecnetv1.Route) int {
		return cmp.Or(cmp.Compare(a.GetVrf(), b.GetVrf()), comparePrefixes(a.GetPrefix(), b.GetPrefix()))
	})
	tw := newTable(w)
	row(tw, "VRF", "Prefix", "Via", "Dev", "Weight", "Encap", "Source")
	for _, r := range routes {
		if len(r.GetNextHops()) == 0 {
			row(tw, u32(r.GetVrf()), r.GetPrefix(), "", "", "", "", r.GetSource())
		}
		for _, nh := range r.GetNextHops() {
			encap := nh.GetEncap()
			if encap == "vxlan" {
				encap += " vni " + u32(nh.GetVni())
			}
			row(tw, u32(r.GetVrf()), r.GetPrefix(), nh.GetIp(), nh.GetInterface(), u32(max(nh.GetWeight(), 1)), encap, r.GetSource())
		}
	}
	return tw.Flush()
}

var showNeighborsCmd = showCmd("neighbors",
	"Lists the neighbor (ARP/ND) entries of tap interfaces.\n",
	runShowNeighbors)

func runShowNeighbors(ctx context.Context, c vecnetv1.DataplaneClient, w io.Writer) error {
	resp, err := c.ListNeighbors(ctx, &vecnetv1.ListNeighborsRequest{})
	if err != nil {
		return fromRPC(err)
	}
	ns := slices.Clone(resp.GetNeighbors())
	slices.SortStableFunc(ns, func(a, b *vecnetv1.Neighbor) int {
		return cmp.Or(strings.Compare(a.GetInterface(), b.GetInterface()), compareAddrs(a.GetIp(), b.GetIp()))
	})
	tw := newTable(w)
	row(tw, "Interface", "IP", "MAC", "State")
	for _, n := range ns {
		row(tw, n.GetInterface(), n.GetIp(), n.GetMac(), n.GetState())
	}
	return tw.Flush()
}

var showErrorsCmd = showCmd("errors",
	"Lists the non-zero error counters of the graph nodes (dropped packets and why).\n",
	runShowErrors)

func runShowErrors(ctx context.Context, c vecnetv1.DataplaneClient, w io.Writer) error {
	resp, err := c.GetErrors(ctx, &vecnetv1.GetErrorsRequest{})
	if err != nil {
		return fromRPC(err)
	}
	var errs []*vecnetv1.ErrorCounter
	for _, e := range resp.GetErrors() {
		if e.GetCount() != 0 {
			errs = append(errs, e)
		}
	}
	slices.SortStableFunc(errs, func(a, b *vecnetv1.ErrorCounter) int {
		return cmp.Or(strings.Compare(a.GetNode(), b.GetNode()), strings.Compare(a.GetReason(), b.GetReason()))
	})
	tw := newTable(w)
	row(tw, "Count", "Node", "Reason")
	for _, e := range errs {
		row(tw, u64(e.GetCount()), e.GetNode(), e.GetReason())
	}
	return tw.Flush()
}

var showRuntimeCmd = &command{
	path:     "show runtime",
	synopsis: []string{"show runtime [--all]"},
	help: `Shows the graph node statistics per worker: dispatch calls, vectors, packets,
packets per vector and nanoseconds per packet, sorted by worker then node.

flags:
  --all   include nodes that were never called
`,
	parse: func(args []string) (action, error) {
		all, err := parseShowRuntime(args)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, e *env) error {
			ctx, cancel := e.rpcContext(ctx)
			defer cancel()
			return runShowRuntime(ctx, e.client, e.stdout, all)
		}, nil
	},
}

func parseShowRuntime(args []string) (all bool, err error) {
	fs := newFlagSet("show runtime")
	allFlag := fs.Bool("all", false, "")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return false, err
	}
	if err := wantArgs(pos); err != nil {
		return false, err
	}
	return *allFlag, nil
}

func ratio(num, den uint64) string {
	if den == 0 {
		return "-"
	}
	return strconv.FormatFloat(float64(num)/float64(den), 'f', 2, 64)
}

func runShowRuntime(ctx context.Context, c vecnetv1.DataplaneClient, w io.Writer, all bool) error {
	resp, err := c.GetRuntime(ctx, &vecnetv1.GetRuntimeRequest{})
	if err != nil {
		return fromRPC(err)
	}
	var nodes []*vecnetv1.NodeRuntime
	for _, n := range resp.GetNodes() {
		if all || n.GetCalls() != 0 {
			nodes = append(nodes, n)
		}
	}
	slices.SortStableFunc(nodes, func(a, b *vecnetv1.NodeRuntime) int {
		return cmp.Or(cmp.Compare(a.GetWorker(), b.GetWorker()), strings.Compare(a.GetName(), b.GetName()))
	})
	fmt.Fprintf(w, "Time %v, %d workers\n", time.Duration(resp.GetUptimeNs()).Round(time.Millisecond), resp.GetWorkers())
	for i := 0; i < len(nodes); {
		worker := nodes[i].GetWorker()
		fmt.Fprintf(w, "\nWorker %d\n", worker)
		tw := newTable(w)
		row(tw, "Name", "Calls", "Vectors", "Packets", "Packets/Vector", "ns/packet")
		for ; i < len(nodes) && nodes[i].GetWorker() == worker; i++ {
			n := nodes[i]
			row(tw, n.GetName(), u64(n.GetCalls()), u64(n.GetVectors()), u64(n.GetPackets()),
				ratio(n.GetPackets(), n.GetVectors()), ratio(n.GetNanoseconds(), n.GetPackets()))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

var showVrfsCmd = showCmd("vrfs", "Lists the VRFs (routing tables).\n", runShowVrfs)

func runShowVrfs(ctx context.Context, c vecnetv1.DataplaneClient, w io.Writer) error {
	resp, err := c.ListVrfs(ctx, &vecnetv1.ListVrfsRequest{})
	if err != nil {
		return fromRPC(err)
	}
	vrfs := slices.Clone(resp.GetVrfs())
	slices.Sort(vrfs)
	tw := newTable(w)
	row(tw, "VRF")
	for _, v := range vrfs {
		row(tw, u32(v))
	}
	return tw.Flush()
}
