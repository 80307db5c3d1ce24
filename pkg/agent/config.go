// Package agent is vecnet-agent, the node agent (calico-vpp-agent's role):
// it serves the vecnet CNI plugin, allocates pod addresses from Calico-style
// IP pools kept in the Kubernetes API, and programs vecnetd. It holds no
// forwarding state of its own: vecnetd keeps forwarding while the agent
// restarts, and the agent rebuilds its view from the API and vecnetd.
package agent

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Config is every setting of vecnet-agent. Each one is a flag and an
// environment variable (the flag wins), so a DaemonSet can set them either
// way:
//
//	flag                 env                         default
//	--node-name          NODE_NAME                   (required) this node's Kubernetes name
//	--kubeconfig         KUBECONFIG                  in-cluster config when empty
//	--vecnetd-socket     VECNET_VECNETD_SOCKET       /run/vecnet/vecnetd.sock
//	--cni-socket         VECNET_CNI_SOCKET           /run/vecnet/cni.sock
//	--health-addr        VECNET_HEALTH_ADDR          127.0.0.1:9099 (/livez, /readyz)
//	--metrics-addr       VECNET_METRICS_ADDR         127.0.0.1:9091 (/metrics); empty disables
//	--mtu                VECNET_MTU                  0    pod interface MTU (0: uplink MTU - 50, or 1500)
//	--strict-affinity    VECNET_STRICT_AFFINITY      false: borrow from other nodes' blocks when pools are full
//	--gc-interval        VECNET_GC_INTERVAL          5m: release addresses of pods that no longer exist
//	--routes             VECNET_ROUTES               true: set vecnetd's pod prefixes and route other nodes' blocks (routes.go)
//	--vxlan-vni          VECNET_VXLAN_VNI            4096 VNI of the routes to VXLAN pools' blocks (Calico's default)
//	--extra-pod-prefixes VECNET_EXTRA_POD_PREFIXES   ""   comma-separated prefixes added to the pools' CIDRs in vecnetd's pod prefixes (e.g. service CIDRs)
//	--bgp                VECNET_BGP                  false: route with BGP (embedded GoBGP, Calico's BGP resources; bgp.go)
//	--bgp-api-address    VECNET_BGP_API_ADDRESS      127.0.0.1:50051 GoBGP's gRPC API (for the gobgp CLI and vecnetctl show bgp); empty disables
//	--bgp-hold-time      VECNET_BGP_HOLD_TIME        90s BGP hold time (RFC 4271 section 4.2); keepalives every third of it
//	--bgp-secret-namespace VECNET_BGP_SECRET_NAMESPACE  kube-system (or POD_NAMESPACE) namespace of the Secrets BGP passwords name
//	--log-level          VECNET_LOG_LEVEL            info
type Config struct {
	NodeName       string
	Kubeconfig     string
	VecnetdSocket  string
	CNISocket      string
	HealthAddr     string
	MetricsAddr    string
	MTU            int
	StrictAffinity bool
	GCInterval     time.Duration
	LogLevel       string
	// Routes: the agent owns vecnetd's pod prefixes and its static routes
	// inside the pools (routes.go); false leaves both to the operator.
	Routes           bool
	VXLANVNI         uint32
	ExtraPodPrefixes []netip.Prefix
	// BGP: other nodes' routes come from BGP (bgp.go), not from the
	// IPAM blocks (routes.go keeps only the pod prefixes).
	BGP                bool
	BGPAPIAddress      string
	BGPHoldTime        time.Duration
	BGPSecretNamespace string
}

// ParseConfig reads flags (args without the program name) over environment
// variables over defaults.
func ParseConfig(args []string, getenv func(string) string) (Config, error) {
	env := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	var c Config
	fs := flag.NewFlagSet("vecnet-agent", flag.ContinueOnError)
	fs.StringVar(&c.NodeName, "node-name", env("NODE_NAME", ""), "this node's name in Kubernetes (env NODE_NAME)")
	fs.StringVar(&c.Kubeconfig, "kubeconfig", env("KUBECONFIG", ""), "kubeconfig path; in-cluster config when empty (env KUBECONFIG)")
	fs.StringVar(&c.VecnetdSocket, "vecnetd-socket", env("VECNET_VECNETD_SOCKET", "/run/vecnet/vecnetd.sock"), "vecnetd API socket")
	fs.StringVar(&c.CNISocket, "cni-socket", env("VECNET_CNI_SOCKET", "/run/vecnet/cni.sock"), "socket the vecnet CNI plugin connects to")
	fs.StringVar(&c.HealthAddr, "health-addr", env("VECNET_HEALTH_ADDR", "127.0.0.1:9099"), "address of /livez and /readyz")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", env("VECNET_METRICS_ADDR", "127.0.0.1:9091"), "address of /metrics (empty: off)")
	mtu, err := strconv.Atoi(env("VECNET_MTU", "0"))
	if err != nil {
		return c, fmt.Errorf("VECNET_MTU: %v", err)
	}
	fs.IntVar(&c.MTU, "mtu", mtu, "pod interface MTU; 0: the smallest uplink MTU less the VXLAN overhead (50), or 1500 without uplinks")
	strict, err := strconv.ParseBool(env("VECNET_STRICT_AFFINITY", "false"))
	if err != nil {
		return c, fmt.Errorf("VECNET_STRICT_AFFINITY: %v", err)
	}
	fs.BoolVar(&c.StrictAffinity, "strict-affinity", strict, "never borrow addresses from other nodes' blocks")
	gc, err := time.ParseDuration(env("VECNET_GC_INTERVAL", "5m"))
	if err != nil {
		return c, fmt.Errorf("VECNET_GC_INTERVAL: %v", err)
	}
	fs.DurationVar(&c.GCInterval, "gc-interval", gc, "how often allocations of deleted pods are released")
	fs.StringVar(&c.LogLevel, "log-level", env("VECNET_LOG_LEVEL", "info"), "debug, info, warn or error")
	routes, err := strconv.ParseBool(env("VECNET_ROUTES", "true"))
	if err != nil {
		return c, fmt.Errorf("VECNET_ROUTES: %v", err)
	}
	fs.BoolVar(&c.Routes, "routes", routes, "set vecnetd's pod prefixes to the IPPools and route other nodes' IPAM blocks to them")
	vni, err := strconv.ParseUint(env("VECNET_VXLAN_VNI", "4096"), 10, 32)
	if err != nil {
		return c, fmt.Errorf("VECNET_VXLAN_VNI: %v", err)
	}
	fs.Func("vxlan-vni", "VXLAN network identifier of routes to VXLAN pools' blocks (default 4096)", func(s string) error {
		vni, err = strconv.ParseUint(s, 10, 32)
		return err
	})
	useBGP, err := strconv.ParseBool(env("VECNET_BGP", "false"))
	if err != nil {
		return c, fmt.Errorf("VECNET_BGP: %v", err)
	}
	fs.BoolVar(&c.BGP, "bgp", useBGP, "route other nodes' pods with BGP: an embedded GoBGP speaker configured by Calico's BGPConfiguration, BGPPeer and BGPFilter")
	fs.StringVar(&c.BGPAPIAddress, "bgp-api-address", env("VECNET_BGP_API_ADDRESS", "127.0.0.1:50051"), "address of GoBGP's gRPC API (gobgp CLI, vecnetctl show bgp); empty: off")
	hold, err := time.ParseDuration(env("VECNET_BGP_HOLD_TIME", "90s"))
	if err != nil {
		return c, fmt.Errorf("VECNET_BGP_HOLD_TIME: %v", err)
	}
	fs.DurationVar(&c.BGPHoldTime, "bgp-hold-time", hold, "BGP hold time; a silent peer's routes are withdrawn after it")
	fs.StringVar(&c.BGPSecretNamespace, "bgp-secret-namespace", env("VECNET_BGP_SECRET_NAMESPACE", env("POD_NAMESPACE", "kube-system")), "namespace of the Secrets that BGP passwords (secretKeyRef) name")
	extra := env("VECNET_EXTRA_POD_PREFIXES", "")
	fs.StringVar(&extra, "extra-pod-prefixes", extra, "comma-separated prefixes that vecnetd's pod prefixes hold besides the IPPools' CIDRs (e.g. the service CIDRs)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if vni == 0 || vni >= 1<<24 {
		return c, fmt.Errorf("--vxlan-vni %d must be in [1, 16777215]", vni)
	}
	c.VXLANVNI = uint32(vni)
	for _, s := range strings.Split(extra, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return c, fmt.Errorf("--extra-pod-prefixes: %v", err)
		}
		c.ExtraPodPrefixes = append(c.ExtraPodPrefixes, p.Masked())
	}
	return c, c.Validate()
}

// Validate checks the settings, naming the one at fault.
func (c Config) Validate() error {
	var errs []error
	if c.NodeName == "" {
		errs = append(errs, errors.New("--node-name (or NODE_NAME) is required"))
	}
	for _, s := range []struct{ name, v string }{{"--vecnetd-socket", c.VecnetdSocket}, {"--cni-socket", c.CNISocket}} {
		if !strings.HasPrefix(s.v, "/") {
			errs = append(errs, fmt.Errorf("%s %q must be an absolute path", s.name, s.v))
		}
	}
	if c.MTU != 0 && (c.MTU < 1280 || c.MTU > 65535) {
		errs = append(errs, fmt.Errorf("--mtu %d must be in [1280, 65535] (IPv6 needs 1280)", c.MTU))
	}
	if c.BGP && (c.BGPHoldTime < 3*time.Second || c.BGPHoldTime > 65535*time.Second) {
		errs = append(errs, fmt.Errorf("--bgp-hold-time %s must be in [3s, 65535s] (RFC 4271 section 4.2)", c.BGPHoldTime))
	}
	if c.GCInterval < time.Second {
		errs = append(errs, fmt.Errorf("--gc-interval %s is shorter than 1s", c.GCInterval))
	}
	return errors.Join(errs...)
}
