package main

// uplink add|del, prefixes set, show uplinks|prefixes.

import (
	"context"
	"io"
	"strings"

	vecnetv1 "github.com/vecnet/vecnet/api/vecnet/v1"
)

var uplinkAddCmd = &command{
	path:     "uplink add",
	synopsis: []string{"uplink add NAME [--driver af_xdp|af_packet|tap|auto] [--queues N]"},
	help: `Attaches vecnetd to the host interface NAME (the node's NIC). The host keeps
the interface and its addresses; an eBPF filter hands vecnetd only the
traffic of pods and tunnels. The first uplink also creates the host
interface (vecnetd --host-interface, default vecnet0).

flags:
  --driver D   af_xdp, af_packet, tap or auto (default auto: AF_XDP, else AF_PACKET);
               tap keeps TCP super-packets whole through VXLAN (fastest for TCP)
  --queues N   receive queues (default: 1 for AF_XDP, one per worker for AF_PACKET)
`,
	parse: func(args []string) (action, error) {
		fs := newFlagSet("uplink add")
		drv := fs.String("driver", "auto", "")
		queues := uint32Flag(fs, "queues", "")
		pos, err := parseArgs(fs, args)
		if err != nil {
			return nil, err
		}
		if err := wantArgs(pos, "interface name"); err != nil {
			return nil, err
		}
		if err := checkName("uplink", pos[0]); err != nil {
			return nil, usagef("%v", err)
		}
		switch *drv {
		case "af_xdp", "af_packet", "tap", "auto":
		default:
			return nil, usagef("--driver %q: want af_xdp, af_packet, tap or auto", *drv)
		}
		req := &vecnetv1.AddUplinkRequest{Name: pos[0], Driver: *drv, Queues: *queues}
		return func(ctx context.Context, e *env) error {
			ctx, cancel := e.rpcContext(ctx)
			defer cancel()
			u, err := e.client.AddUplink(ctx, req)
			if err != nil {
				return fromRPC(err)
			}
			tw := newTable(e.stdout)
			writeUplinks(tw, []*vecnetv1.Uplink{u})
			return tw.Flush()
		}, nil
	},
}

var uplinkDelCmd = &command{
	path:     "uplink del",
	synopsis: []string{"uplink del NAME"},
	help:     "Detaches vecnetd from an uplink; the host's networking on it is untouched.\n",
	parse: func(args []string) (action, error) {
		pos, err := parseArgs(newFlagSet("uplink del"), args)
		if err != nil {
			return nil, err
		}
		if err := wantArgs(pos, "interface name"); err != nil {
			return nil, err
		}
		req := &vecnetv1.DeleteUplinkRequest{Name: pos[0]}
		return func(ctx context.Context, e *env) error {
			ctx, cancel := e.rpcContext(ctx)
			defer cancel()
			_, err := e.client.DeleteUplink(ctx, req)
			return fromRPC(err)
		}, nil
	},
}

var prefixesSetCmd = &command{
	path:     "prefixes set",
	synopsis: []string{"prefixes set [CIDR...]"},
	help: `Sets the pod (and service) prefixes, replacing the previous list: uplinks
steer traffic to them to vecnetd, the host routes them to the host
interface, and vecnetd drops what no more specific route claims. No CIDR
clears the list.
`,
	parse: func(args []string) (action, error) {
		pos, err := parseArgs(newFlagSet("prefixes set"), args)
		if err != nil {
			return nil, err
		}
		req := &vecnetv1.PodPrefixes{}
		for _, s := range pos {
			p, err := parseRoutePrefix(s)
			if err != nil {
				return nil, usagef("%v", err)
			}
			req.Prefixes = append(req.Prefixes, p.String())
		}
		return func(ctx context.Context, e *env) error {
			ctx, cancel := e.rpcContext(ctx)
			defer cancel()
			_, err := e.client.SetPodPrefixes(ctx, req)
			return fromRPC(err)
		}, nil
	},
}

var showUplinksCmd = showCmd("uplinks",
	"Lists the uplinks: driver, how it attached, queues, the host's addresses and gateways.\n",
	func(ctx context.Context, c vecnetv1.DataplaneClient, w io.Writer) error {
		resp, err := c.ListUplinks(ctx, &vecnetv1.ListUplinksRequest{})
		if err != nil {
			return fromRPC(err)
		}
		tw := newTable(w)
		writeUplinks(tw, resp.GetUplinks())
		return tw.Flush()
	})

func writeUplinks(tw io.Writer, us []*vecnetv1.Uplink) {
	row(tw, "Name", "Driver", "Mode", "Queues", "Addresses", "Gateways")
	for _, u := range us {
		row(tw, u.GetName(), u.GetDriver(), u.GetMode(), u32(u.GetQueues()), strings.Join(u.GetAddresses(), ","), strings.Join(u.GetGateways(), ","))
	}
}

var showPrefixesCmd = showCmd("prefixes",
	"Lists the pod (and service) prefixes.\n",
	func(ctx context.Context, c vecnetv1.DataplaneClient, w io.Writer) error {
		resp, err := c.GetPodPrefixes(ctx, &vecnetv1.GetPodPrefixesRequest{})
		if err != nil {
			return fromRPC(err)
		}
		for _, p := range resp.GetPrefixes() {
			if _, err := io.WriteString(w, p+"\n"); err != nil {
				return err
			}
		}
		return nil
	})
