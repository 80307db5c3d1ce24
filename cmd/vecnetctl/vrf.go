package main

// vrf add|del. (show vrfs is in show.go.)

import (
	"context"
	"strconv"

	vecnetv1 "github.com/vecnet/vecnet/api/vecnet/v1"
)

func vrfCmd(verb string) *command {
	return &command{
		path:     "vrf " + verb,
		synopsis: []string{"vrf add|del N"},
		help:     "Creates or deletes VRF (routing table) N. VRF 0 always exists.\n",
		parse: func(args []string) (action, error) {
			req, err := parseVrf(args)
			if err != nil {
				return nil, err
			}
			return func(ctx context.Context, e *env) error {
				ctx, cancel := e.rpcContext(ctx)
				defer cancel()
				var err error
				if verb == "add" {
					_, err = e.client.AddVrf(ctx, req)
				} else {
					_, err = e.client.DeleteVrf(ctx, req)
				}
				return fromRPC(err)
			}, nil
		},
	}
}

func parseVrf(args []string) (*vecnetv1.VrfRequest, error) {
	pos, err := parseArgs(newFlagSet("vrf"), args)
	if err != nil {
		return nil, err
	}
	if err := wantArgs(pos, "VRF number"); err != nil {
		return nil, err
	}
	n, err := strconv.ParseUint(pos[0], 10, 32)
	if err != nil {
		return nil, usagef("invalid VRF %q: want an integer from 0 to 4294967295", pos[0])
	}
	return &vecnetv1.VrfRequest{Vrf: uint32(n)}, nil
}
