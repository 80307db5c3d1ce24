package lab

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// BGPPeer is one session of a node's BGP speaker, a row of the Peers
// table of `vecnetctl show bgp`.
type BGPPeer struct {
	Addr, AS, Type, State, Since string
}

// NodeBGP asks the BGP speaker of the agent in network namespace ns
// (GoBGP's API on 127.0.0.1:50051 there) for its sessions, with
// `ip netns exec NS vecnetctl show bgp`. summary is the speaker's line (AS,
// router ID, listen port); out is vecnetctl's whole output.
func NodeBGP(ctx context.Context, binDir, ns string) (summary string, peers []BGPPeer, out string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	b, err := exec.CommandContext(ctx, "ip", "netns", "exec", ns, filepath.Join(binDir, "vecnetctl"), "show", "bgp").CombinedOutput()
	out = string(b)
	if err != nil {
		return "", nil, out, fmt.Errorf("vecnetctl show bgp in %s: %v: %s", ns, err, strings.TrimSpace(out))
	}
	summary, peers = parseShowBGP(out)
	return summary, peers, out, nil
}

// parseShowBGP reads the first line and the Peers table of `vecnetctl
// show bgp`. Columns are cut at the header's offsets: Since may be empty.
func parseShowBGP(out string) (summary string, peers []BGPPeer) {
	lines := strings.Split(out, "\n")
	summary = strings.TrimSpace(lines[0])
	i := 0
	for i < len(lines) && strings.TrimSpace(lines[i]) != "Peers" {
		i++
	}
	if i+1 >= len(lines) {
		return summary, nil
	}
	head := lines[i+1]
	cols := []string{"Peer", "AS", "Type", "State", "Since"}
	offs := make([]int, len(cols))
	for k, c := range cols {
		j := strings.Index(head, c)
		if j < 0 || (k > 0 && j <= offs[k-1]) {
			return summary, nil
		}
		offs[k] = j
	}
	for _, line := range lines[i+2:] {
		if strings.TrimSpace(line) == "" {
			break
		}
		f := make([]string, len(cols))
		for k := range cols {
			end := len(line)
			if k+1 < len(cols) {
				end = min(offs[k+1], len(line))
			}
			if offs[k] < end {
				f[k] = strings.TrimSpace(line[offs[k]:end])
			}
		}
		peers = append(peers, BGPPeer{Addr: f[0], AS: f[1], Type: f[2], State: f[3], Since: f[4]})
	}
	return summary, peers
}

// waitBGPMesh waits until every node's speaker has an established session
// with every other node's IPv4 and IPv6 address (the Node objects carry
// both), so that the lab is ready when pods start: their blocks are then
// advertised at once.
func (s *supervisor) waitBGPMesh(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		var missing []string
		for _, n := range s.nodes {
			_, peers, _, err := NodeBGP(ctx, s.cfg.BinDir, n.AgentNetns)
			if err != nil {
				missing = append(missing, fmt.Sprintf("%s: %s", n.Name, firstLine(err.Error())))
				continue
			}
			state := map[string]string{}
			for _, p := range peers {
				state[p.Addr] = p.State
			}
			for _, o := range s.nodes {
				if o.Name == n.Name {
					continue
				}
				for _, a := range []string{o.Addr4, o.Addr6} {
					if st := state[a]; st != "Established" {
						missing = append(missing, fmt.Sprintf("%s -> %s (%s): %s", n.Name, o.Name, a, orDash(st)))
					}
				}
			}
		}
		if len(missing) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.New("BGP sessions not established: " + strings.Join(missing, "; ") + " (the agents' logs say why)")
		case <-time.After(250 * time.Millisecond):
		}
	}
}
