// Command vecnet-lab runs a whole Kubernetes cluster with vecnet as its
// network on this machine: real etcd, kube-apiserver and
// kube-controller-manager, one vecnetd and vecnet-agent per node, nodes as
// network namespaces on an underlay bridge, and a lab kubelet that runs
// pod commands in the pods' network namespaces. See pkg/lab.
//
//	vecnet-lab up [--nodes 3] [--encap vxlan|ipip|none|bgp] [--driver tap|af_xdp|af_packet] [--ipv6]
//	vecnet-lab status | kubeconfig | down
//	vecnet-lab kubectl ARGS...
//	vecnet-lab exec [-n NAMESPACE] POD -- COMMAND [ARGS...]
//	vecnet-lab demo [--seconds 5] [--keep] [up's flags]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/vecnet/vecnet/pkg/kubecluster"
	"github.com/vecnet/vecnet/pkg/lab"
)

const usage = `vecnet-lab: a Kubernetes cluster with vecnet as its network, on this machine (run as root)

usage:
  vecnet-lab up [--nodes 3] [--encap vxlan|ipip|none|bgp] [--driver tap|af_xdp|af_packet] [--ipv6]
                                    start a lab and return once it is ready
  vecnet-lab status                 nodes, pods and their IPs, processes, uplinks
  vecnet-lab kubectl ARGS...        kubectl with the lab's kubeconfig
  vecnet-lab exec [-n NS] POD -- COMMAND [ARGS...]
                                    run COMMAND in the pod's network namespace
  vecnet-lab kubeconfig             print the path of the lab's kubeconfig
  vecnet-lab down                   stop the lab and remove everything it made (also after a crash)
  vecnet-lab demo [--seconds 5] [--keep] [up's flags]
                                    up, pods on every node, all-pairs ping, iperf3 next to the kernel's, down

--encap bgp: routed pools and no static routes; each node's vecnet-agent runs with --bgp in the node's
network namespace and peers with the others (AS 64512, node-to-node mesh), as Calico with BIRD.
"ip netns exec NODE-NETNS vecnetctl show bgp" shows a node's sessions; status lists them all.

flags every command takes (before or after the command name):
  --state-dir DIR   where the lab keeps its state (default $VECNET_LAB_STATE_DIR or /var/lib/vecnet-lab)
  --kube-bin DIR    etcd, kube-apiserver, kube-controller-manager, kubectl (default $VECNET_KUBE_BIN or
                    the cache of hack/kube-build.sh: /var/tmp/vecnet-kube/<version>/bin)
  --bin-dir DIR     vecnetd, vecnetctl, vecnet-agent and the vecnet CNI plugin (default: this binary's directory)
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// common are the flags of every command.
type common struct {
	stateDir, kubeBin, binDir string
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.stateDir, "state-dir", c.stateDir, "state directory of the lab")
	fs.StringVar(&c.kubeBin, "kube-bin", c.kubeBin, "directory of the Kubernetes binaries")
	fs.StringVar(&c.binDir, "bin-dir", c.binDir, "directory of vecnet's binaries")
}

func defaults() common {
	c := common{stateDir: os.Getenv(lab.EnvStateDir), kubeBin: kubecluster.BinDir()}
	if c.stateDir == "" {
		c.stateDir = lab.DefaultStateDir
	}
	if exe, err := os.Executable(); err == nil {
		c.binDir = filepath.Dir(exe)
	}
	return c
}

func (c *common) abs() error {
	for _, p := range []*string{&c.stateDir, &c.kubeBin, &c.binDir} {
		a, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		*p = a
	}
	return nil
}

// usageError is a bad command line: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func run(args []string, stdout, stderr io.Writer) int {
	c := defaults()
	global := flag.NewFlagSet("vecnet-lab", flag.ContinueOnError)
	global.SetOutput(io.Discard)
	c.register(global)
	if err := global.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return 0
		}
		fmt.Fprintf(stderr, "vecnet-lab: %v\n\n%s", err, usage)
		return 2
	}
	args = global.Args()
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	err := dispatch(&c, args[0], args[1:], stdout, stderr)
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "vecnet-lab: %v\n(vecnet-lab help lists the commands)\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "vecnet-lab: %v\n", err)
		return 1
	}
}

// parse parses a command's flags, also those after its positional
// arguments (`down --state-dir X`, `exec POD -n NS -- ...`), and returns
// the positional arguments and what follows "--". After maxPos positional
// arguments (-1: no limit) the rest is the command's (`exec POD ping -c 2
// ...`): flags there are parsed only up to a "--".
func parse(fs *flag.FlagSet, args []string, maxPos int) (pos, rest []string, err error) {
	fs.SetOutput(io.Discard)
	bad := func(err error) error {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{fmt.Sprintf("%s: %v", fs.Name(), err)}
	}
	for {
		if len(pos) == maxPos {
			i := slices.Index(args, "--")
			if i < 0 {
				return pos, args, nil
			}
			if err := fs.Parse(args[:i]); err != nil {
				return nil, nil, bad(err)
			}
			if fs.NArg() > 0 {
				return nil, nil, usageError{fmt.Sprintf("%s: unexpected %q before --", fs.Name(), strings.Join(fs.Args(), " "))}
			}
			return pos, args[i+1:], nil
		}
		if err := fs.Parse(args); err != nil {
			return nil, nil, bad(err)
		}
		left := fs.Args()
		// fs.Parse consumes a "--" it stops at.
		if consumed := len(args) - len(left); consumed > 0 && args[consumed-1] == "--" {
			return pos, left, nil
		}
		if len(left) == 0 {
			return pos, nil, nil
		}
		pos = append(pos, left[0])
		args = left[1:]
	}
}

func dispatch(c *common, cmd string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	c.register(fs)
	// flagsOnly parses the flags of a command that takes no arguments and
	// makes the common paths absolute. Callers return helpOr(err): -h is
	// not an error.
	flagsOnly := func() error {
		pos, rest, err := parse(fs, args, -1)
		if err != nil {
			return err
		}
		if len(pos) > 0 || len(rest) > 0 {
			return usageError{fmt.Sprintf("%s takes no arguments (got %q)", cmd, strings.Join(append(pos, rest...), " "))}
		}
		return c.abs()
	}
	switch cmd {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil

	case "up", "demo":
		cfg := lab.Config{Nodes: 3, Encap: "vxlan", Driver: "tap", Timeout: 5 * time.Minute}
		fs.IntVar(&cfg.Nodes, "nodes", cfg.Nodes, "number of nodes")
		fs.StringVar(&cfg.Encap, "encap", cfg.Encap, "how pods reach other nodes: vxlan, ipip, none (routed) or bgp (routed, routes from a BGP mesh of the agents)")
		fs.StringVar(&cfg.Driver, "driver", cfg.Driver, "vecnetd's uplink driver: tap, af_xdp or af_packet")
		fs.BoolVar(&cfg.IPv6, "ipv6", false, "add an IPv6 pool (dual stack)")
		fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "give up starting the lab after this long")
		seconds := fs.Int("seconds", 5, "demo: length of each iperf3 run")
		keep := fs.Bool("keep", false, "demo: leave the lab up at the end")
		if err := flagsOnly(); err != nil {
			return helpOr(err, stdout)
		}
		cfg.StateDir, cfg.KubeBin, cfg.BinDir = c.stateDir, c.kubeBin, c.binDir
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		if cmd == "demo" {
			return lab.Demo(ctx, cfg, lab.DemoOptions{Seconds: *seconds, Keep: *keep}, stdout)
		}
		return lab.Up(ctx, cfg, stdout)

	case "serve":
		if err := flagsOnly(); err != nil {
			return helpOr(err, stdout)
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE)
		return lab.Serve(ctx, c.stateDir)

	case "down", "status", "kubeconfig":
		if err := flagsOnly(); err != nil {
			return helpOr(err, stdout)
		}
		switch cmd {
		case "down":
			if os.Geteuid() != 0 {
				return errors.New("vecnet-lab down must run as root (it deletes network namespaces and stops root's processes)")
			}
			return lab.Down(c.stateDir, stdout)
		case "status":
			return lab.Status(c.stateDir, stdout)
		default:
			p, err := lab.Kubeconfig(c.stateDir)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, p)
			return nil
		}

	case "kubectl":
		// Everything after "kubectl" is kubectl's (its flags too): the
		// lab's flags go before the command name.
		if err := c.abs(); err != nil {
			return err
		}
		return lab.Kubectl(c.stateDir, args, stderr)

	case "exec":
		namespace := fs.String("n", "default", "namespace of the pod")
		fs.StringVar(namespace, "namespace", "default", "namespace of the pod")
		pos, rest, err := parse(fs, args, 1)
		if err != nil {
			return helpOr(err, stdout)
		}
		if len(pos) == 0 {
			return usageError{"exec: which pod? vecnet-lab exec [-n NAMESPACE] POD -- COMMAND [ARGS...]"}
		}
		if len(rest) == 0 {
			return usageError{"exec: no command: vecnet-lab exec [-n NAMESPACE] POD -- COMMAND [ARGS...]"}
		}
		if err := c.abs(); err != nil {
			return err
		}
		return lab.Exec(c.stateDir, *namespace, pos[0], rest)
	}
	return usageError{fmt.Sprintf("unknown command %q", cmd)}
}

func helpOr(err error, stdout io.Writer) error {
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage)
		return nil
	}
	return err
}
