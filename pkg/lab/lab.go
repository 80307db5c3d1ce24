// Package lab is vecnet-lab: a whole Kubernetes cluster with vecnet as its
// network on one Linux machine, for trying vecnet out and for end-to-end
// tests. It runs the real pieces (etcd, kube-apiserver and
// kube-controller-manager built by hack/kube-build.sh; vecnetd,
// vecnet-agent and the vecnet CNI plugin) and fakes only what has nothing
// to do with networking: nodes are network namespaces on an underlay
// bridge, and each node's kubelet (pkg/lab/kubelet) runs pod commands as
// host processes inside the pod's network namespace.
//
// `vecnet-lab up` returns to the shell: it starts a supervisor,
// `vecnet-lab serve`, in a session of its own, which owns every process
// and network namespace of the lab and tears them down on SIGTERM. `up`
// follows the supervisor's progress file and waits for its state file.
// `down` stops the supervisor and then removes whatever is left, found by
// pid files, by the state directory in process command lines and by the
// lab's network namespace prefix, so it also cleans up after a crash.
//
// Layout of the state directory (Config.StateDir):
//
//	.vecnet-lab            marker: down removes only directories that have it
//	config.json            the Config up started the lab with
//	progress               what the supervisor is doing, for up to print
//	serve.log, serve.pid   the supervisor's log and pid
//	lab.json               State, written once the lab is ready
//	pids/<name>.pid        one per process (etcd, kube-apiserver, vecnetd-node1 ...)
//	kube/                  kubeconfig, keys, etcd data, etcd.log, kube-apiserver.log ...
//	nodes/nodeN/           vecnetd.sock, cni.sock, vecnetd.log, agent.log,
//	                       kubelet.log, net.d/10-vecnet.conflist, kubelet/ (pod records, container logs)
//
// Network namespaces are named Prefix(StateDir) + "underlay", "node1" ...,
// "pod-<uid>" and "base-..." (the kernel baselines of the demo).
//
// With --encap bgp the pools are routed (vxlanMode and ipipMode Never) and
// other nodes' routes come from BGP only, as in a Calico cluster with
// calico_backend bird: a default BGPConfiguration (AS 64512, node-to-node
// mesh) and each vecnet-agent run with --bgp inside its node's namespace,
// where its GoBGP speaker peers over the underlay. Those agents reach the
// kube-apiserver (on the supervisor's loopback) through a TCP proxy that
// the supervisor serves on the underlay bridge at APIProxyAddr4 (see
// kubecluster.StartProxy), with kube/kubeconfig-nodes.
package lab

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// DefaultStateDir is where the lab lives without --state-dir.
const DefaultStateDir = "/var/lib/vecnet-lab"

// EnvStateDir overrides DefaultStateDir, so that every command of a shell
// session reaches the same lab without repeating --state-dir.
const EnvStateDir = "VECNET_LAB_STATE_DIR"

// Encapsulations and drivers accepted by Config.
var (
	Encaps  = []string{"vxlan", "ipip", "none", "bgp"}
	Drivers = []string{"tap", "af_xdp", "af_packet"}
)

// Pools of the lab: Calico's defaults for kubeadm-style clusters.
const (
	PoolV4      = "10.244.0.0/16"
	PoolV4Block = 26
	PoolV6      = "fd00:10:244::/56"
	PoolV6Block = 122
	PoolV4Name  = "default-ipv4-ippool"
	PoolV6Name  = "default-ipv6-ippool"
)

// BGP of --encap bgp: the AS of the default BGPConfiguration (Calico's
// default), and where the nodes' agents reach the API server: an address
// of the underlay subnet that no node has (nodes are .1 to .MaxNodes) on
// the underlay bridge, and the apiserver's usual port (the underlay
// namespace is the lab's own: nothing else listens there).
const (
	BGPASNumber   = 64512
	APIProxyAddr4 = "192.168.77.254"
	APIProxyPort  = 6443
)

// MaxNodes bounds --nodes: each node is a vecnetd and a vecnet-agent, and
// more than this many on one machine only measures the machine.
const MaxNodes = 16

// Config is how a lab is started (the flags of `vecnet-lab up`).
type Config struct {
	Nodes    int    `json:"nodes"`
	Encap    string `json:"encap"`  // vxlan, ipip, none (routes from the agents) or bgp (routes from BGP)
	Driver   string `json:"driver"` // vecnetd's uplink driver: tap, af_xdp or af_packet
	IPv6     bool   `json:"ipv6"`   // an IPv6 pool besides the IPv4 one
	StateDir string `json:"stateDir"`
	KubeBin  string `json:"kubeBin"` // etcd, kube-apiserver, kube-controller-manager, kubectl
	BinDir   string `json:"binDir"`  // vecnetd, vecnetctl, vecnet-agent, vecnet (the CNI plugin)
	// Timeout bounds the start-up of the whole lab.
	Timeout time.Duration `json:"timeout"`
}

// Validate checks the settings, naming the flag at fault.
func (c *Config) Validate() error {
	var errs []error
	if c.Nodes < 1 || c.Nodes > MaxNodes {
		errs = append(errs, fmt.Errorf("--nodes %d: want 1 to %d", c.Nodes, MaxNodes))
	}
	if !contains(Encaps, c.Encap) {
		errs = append(errs, fmt.Errorf("--encap %q: want one of %s", c.Encap, strings.Join(Encaps, ", ")))
	}
	if !contains(Drivers, c.Driver) {
		errs = append(errs, fmt.Errorf("--driver %q: want one of %s", c.Driver, strings.Join(Drivers, ", ")))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("--timeout %s: want a positive duration", c.Timeout))
	}
	if !filepath.IsAbs(c.StateDir) {
		errs = append(errs, fmt.Errorf("--state-dir %q: not an absolute path", c.StateDir))
	} else if n := len(c.layout().cniSock(MaxNodes)); n > maxSocketPath {
		// The kernel limits unix socket paths to 107 bytes.
		errs = append(errs, fmt.Errorf("--state-dir %q is too long: the sockets under it would have %d-byte paths (unix sockets allow %d); choose a shorter one", c.StateDir, n, maxSocketPath))
	}
	return errors.Join(errs...)
}

const maxSocketPath = 107

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Prefix is the start of the name of every network namespace of the lab
// whose state is in stateDir: "vnlab-" and a hash of the directory, so
// that two labs (a user's and a test's) never take each other's
// namespaces for leftovers.
func Prefix(stateDir string) string {
	sum := sha256.Sum256([]byte(filepath.Clean(stateDir)))
	return "vnlab-" + hex.EncodeToString(sum[:2]) + "-"
}

// layout names the files of a state directory.
type layout struct{ dir string }

func (c *Config) layout() layout { return layout{c.StateDir} }

func (l layout) path(elem ...string) string {
	return filepath.Join(append([]string{l.dir}, elem...)...)
}
func (l layout) marker() string             { return l.path(".vecnet-lab") }
func (l layout) config() string             { return l.path("config.json") }
func (l layout) progress() string           { return l.path("progress") }
func (l layout) serveLog() string           { return l.path("serve.log") }
func (l layout) servePid() string           { return l.path("serve.pid") }
func (l layout) state() string              { return l.path("lab.json") }
func (l layout) pids() string               { return l.path("pids") }
func (l layout) pidFile(name string) string { return l.path("pids", name+".pid") }
func (l layout) kube() string               { return l.path("kube") }
func (l layout) kubeconfig() string         { return l.path("kube", "kubeconfig") }
func (l layout) nodeKubeconfig() string     { return l.path("kube", "kubeconfig-nodes") }
func (l layout) node(i int) string          { return l.path("nodes", NodeName(i)) }
func (l layout) vecnetdSock(i int) string   { return filepath.Join(l.node(i), "vecnetd.sock") }
func (l layout) cniSock(i int) string       { return filepath.Join(l.node(i), "cni.sock") }
func (l layout) confList(i int) string {
	return filepath.Join(l.node(i), "net.d", "10-vecnet.conflist")
}

// NodeName is the Kubernetes name of node i (from 1).
func NodeName(i int) string { return "node" + strconv.Itoa(i) }

// NodeAddrs are node i's uplink addresses: the underlay is 192.168.77.0/24
// and fd00:77::/64, as in test/netlab.
func NodeAddrs(i int) (v4, v6 string) {
	return fmt.Sprintf("192.168.77.%d", i), fmt.Sprintf("fd00:77::%d", i)
}

// State is lab.json: what status, exec and kubectl need to find the lab's
// pieces. It is written by the supervisor once everything is ready.
type State struct {
	Config     Config `json:"config"`
	Prefix     string `json:"prefix"`
	Kubeconfig string `json:"kubeconfig"`
	APIServer  string `json:"apiServer"`
	// With --encap bgp: the kubeconfig of the agents in the nodes'
	// namespaces, whose server is the proxy APIProxy (an address on the
	// underlay).
	NodeKubeconfig string      `json:"nodeKubeconfig,omitempty"`
	APIProxy       string      `json:"apiProxy,omitempty"`
	Supervisor     int         `json:"supervisorPid"`
	Started        time.Time   `json:"started"`
	Pools          []string    `json:"pools"`
	Nodes          []NodeState `json:"nodes"`
	// Notes are things the user should know (e.g. a missing optional
	// binary), printed by up.
	Notes []string `json:"notes,omitempty"`
}

// NodeState is one node of State.
type NodeState struct {
	Name          string `json:"name"`
	Netns         string `json:"netns"`
	Addr4         string `json:"addr4"`
	Addr6         string `json:"addr6"`
	VecnetdSocket string `json:"vecnetdSocket"`
	CNISocket     string `json:"cniSocket"`
	ConfList      string `json:"confList"`
	HealthAddr    string `json:"healthAddr"`
	MetricsAddr   string `json:"metricsAddr"`
	// AgentNetns is the network namespace vecnet-agent runs in, where
	// HealthAddr and MetricsAddr are (and, with BGP, GoBGP's API on
	// 127.0.0.1:50051); empty: the host's.
	AgentNetns string `json:"agentNetns,omitempty"`
	Dir        string `json:"dir"`
}

// BGP reports whether the lab routes with BGP (--encap bgp).
func (c *Config) BGP() bool { return c.Encap == "bgp" }

// ReadState reads lab.json of stateDir. An error wrapping os.ErrNotExist
// means no lab is up there (or it is still starting).
func ReadState(stateDir string) (*State, error) {
	b, err := os.ReadFile(layout{stateDir}.state())
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", layout{stateDir}.state(), err)
	}
	return &s, nil
}

// writeJSON writes v to path atomically (rename), so that a reader never
// sees half a file.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func readConfig(stateDir string) (*Config, error) {
	b, err := os.ReadFile(layout{stateDir}.config())
	if err != nil {
		return nil, err
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", layout{stateDir}.config(), err)
	}
	return &c, nil
}
