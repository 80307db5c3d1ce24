package main

// interface create|delete, address add|del.

import (
	"context"
	"fmt"
	"io"
	"strings"

	vecnetv1 "github.com/vecnet/vecnet/api/vecnet/v1"
)

var interfaceCreateCmd = &command{
	path: "interface create",
	synopsis: []string{
		"interface create tun|tap --netns NS --host-if NAME --host-addr CIDR[,CIDR] [--mtu N] [--queues N] [--vrf N] [--name NAME] [--no-default-route]",
	},
	help: `Creates a tun (L3, IP packets) or tap (L2, Ethernet) interface whose host side
is NAME in network namespace NS, and prints the new interface's name.

flags:
  --netns NS           pod network namespace: a name under /var/run/netns or an
                       absolute path such as /proc/PID/ns/net (required)
  --host-if NAME       interface name inside NS, e.g. eth0 (required)
  --host-addr CIDR     address(es) of the host side, comma-separated or repeated
                       (required); each is also routed to the new interface
  --mtu N              MTU (default 1500)
  --queues N           number of queues (default 1; >1 is multi-queue)
  --vrf N              VRF of the interface (default 0)
  --name NAME          name in vecnetd (default: chosen by vecnetd, e.g. tun0)
  --no-default-route   do not install a default route in NS
`,
	parse: func(args []string) (action, error) {
		req, err := parseInterfaceCreate(args)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, e *env) error {
			ctx, cancel := e.rpcContext(ctx)
			defer cancel()
			return runInterfaceCreate(ctx, e.client, e.stdout, req)
		}, nil
	},
}

func parseInterfaceKind(s string) (vecnetv1.InterfaceKind, error) {
	switch s {
	case "tun":
		return vecnetv1.InterfaceKind_INTERFACE_KIND_TUN, nil
	case "tap":
		return vecnetv1.InterfaceKind_INTERFACE_KIND_TAP, nil
	}
	return 0, usagef("invalid interface kind %q: want tun or tap", s)
}

func parseInterfaceCreate(args []string) (*vecnetv1.CreateInterfaceRequest, error) {
	fs := newFlagSet("interface create")
	netns := fs.String("netns", "", "")
	hostIf := fs.String("host-if", "", "")
	var hostAddrs []string
	fs.Var(listValue{&hostAddrs}, "host-addr", "")
	mtu := uint32Flag(fs, "mtu", "")
	queues := uint32Flag(fs, "queues", "")
	vrf := uint32Flag(fs, "vrf", "")
	name := fs.String("name", "", "")
	noDefault := fs.Bool("no-default-route", false, "")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return nil, err
	}
	if err := wantArgs(pos, "interface kind (tun or tap)"); err != nil {
		return nil, err
	}
	kind, err := parseInterfaceKind(pos[0])
	if err != nil {
		return nil, err
	}
	req := &vecnetv1.CreateInterfaceRequest{
		Kind:           kind,
		Mtu:            *mtu,
		Queues:         *queues,
		Vrf:            *vrf,
		NoDefaultRoute: *noDefault,
	}
	switch {
	case *netns == "":
		return nil, usagef("missing --netns")
	case strings.Contains(*netns, "/") && !strings.HasPrefix(*netns, "/"):
		return nil, usagef("--netns %q: want a name under /var/run/netns or an absolute path", *netns)
	}
	req.Netns = *netns
	if *hostIf == "" {
		return nil, usagef("missing --host-if")
	}
	if err := checkName("--host-if", *hostIf); err != nil {
		return nil, usagef("%v", err)
	}
	if len(*hostIf) > 15 {
		return nil, usagef("--host-if: name %q longer than 15 bytes (the kernel's limit)", *hostIf)
	}
	req.HostIf = *hostIf
	if len(hostAddrs) == 0 {
		return nil, usagef("missing --host-addr")
	}
	for _, a := range hostAddrs {
		p, err := parseAddrPrefix(a)
		if err != nil {
			return nil, usagef("--host-addr: %v", err)
		}
		req.HostAddrs = append(req.HostAddrs, p.String())
	}
	if *name != "" {
		if err := checkName("--name", *name); err != nil {
			return nil, usagef("%v", err)
		}
		req.Name = *name
	}
	return req, nil
}

// runInterfaceCreate prints the new interface's name alone on a line, for
// scripts: IF=$(vecnetctl interface create ...).
func runInterfaceCreate(ctx context.Context, c vecnetv1.DataplaneClient, w io.Writer, req *vecnetv1.CreateInterfaceRequest) error {
	resp, err := c.CreateInterface(ctx, req)
	if err != nil {
		return fromRPC(err)
	}
	_, err = fmt.Fprintln(w, resp.GetName())
	return err
}

var interfaceDeleteCmd = &command{
	path:     "interface delete",
	synopsis: []string{"interface delete NAME"},
	help:     "Deletes interface NAME, its addresses and the routes through it.\n",
	parse: func(args []string) (action, error) {
		req, err := parseInterfaceDelete(args)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, e *env) error {
			ctx, cancel := e.rpcContext(ctx)
			defer cancel()
			_, err := e.client.DeleteInterface(ctx, req)
			return fromRPC(err)
		}, nil
	},
}

func parseInterfaceDelete(args []string) (*vecnetv1.DeleteInterfaceRequest, error) {
	pos, err := parseArgs(newFlagSet("interface delete"), args)
	if err != nil {
		return nil, err
	}
	if err := wantArgs(pos, "interface NAME"); err != nil {
		return nil, err
	}
	if err := checkName("interface", pos[0]); err != nil {
		return nil, usagef("%v", err)
	}
	return &vecnetv1.DeleteInterfaceRequest{Name: pos[0]}, nil
}

func addressCmd(verb string) *command {
	return &command{
		path:     "address " + verb,
		synopsis: []string{"address add|del NAME CIDR"},
		help: `Adds or deletes a dataplane-owned address on interface NAME, e.g.
10.0.0.1/24: vecnetd answers for the address and routes the prefix to NAME.
`,
		parse: func(args []string) (action, error) {
			req, err := parseAddress(args)
			if err != nil {
				return nil, err
			}
			return func(ctx context.Context, e *env) error {
				ctx, cancel := e.rpcContext(ctx)
				defer cancel()
				var err error
				if verb == "add" {
					_, err = e.client.AddAddress(ctx, req)
				} else {
					_, err = e.client.DeleteAddress(ctx, req)
				}
				return fromRPC(err)
			}, nil
		},
	}
}

func parseAddress(args []string) (*vecnetv1.AddressRequest, error) {
	pos, err := parseArgs(newFlagSet("address"), args)
	if err != nil {
		return nil, err
	}
	if err := wantArgs(pos, "interface NAME", "CIDR"); err != nil {
		return nil, err
	}
	if err := checkName("interface", pos[0]); err != nil {
		return nil, usagef("%v", err)
	}
	p, err := parseAddrPrefix(pos[1])
	if err != nil {
		return nil, usagef("%v", err)
	}
	return &vecnetv1.AddressRequest{Interface: pos[0], Address: p.String()}, nil
}
