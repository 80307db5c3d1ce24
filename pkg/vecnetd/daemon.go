// Package vecnetd assembles the dataplane daemon: the graph and its nodes,
// the workers, the tables writer, the pod interface drivers and the gRPC API.
package vecnetd

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/vecnet/vecnet/pkg/dataplane/driver/tun"
	"github.com/vecnet/vecnet/pkg/dataplane/graph"
	"github.com/vecnet/vecnet/pkg/dataplane/node"
	"github.com/vecnet/vecnet/pkg/dataplane/tables"
	"github.com/vecnet/vecnet/pkg/dataplane/worker"
)

// Config configures a Daemon.
type Config struct {
	Workers int
	Worker  worker.Config
	// HostInterface is the name of the host tun made with the first
	// uplink ("" for none), HostMTU its MTU.
	HostInterface string
	HostMTU       int
	// PodPrefixes are the pod and service prefixes (see SetPodPrefixes).
	PodPrefixes []netip.Prefix
	// VXLANPort is the UDP port of VXLAN tunnels (0: 4789).
	VXLANPort uint16
}

// Daemon is a running dataplane.
type Daemon struct {
	cfg     Config
	Tables  *tables.Writer
	Graph   *graph.Graph
	nodes   *node.Nodes
	Workers []*worker.Worker
	learn   chan node.NeighborEvent
	resolve chan node.NeighborEvent
	started time.Time

	mu          sync.Mutex // serialises interface changes
	ifaces      map[string]*podInterface
	nextID      map[tun.Kind]int
	uplinks     map[string]*uplink
	hostTun     *podInterface
	podPrefixes []netip.Prefix
	wg          sync.WaitGroup
}

type podInterface struct {
	name  string
	index uint32
	dev   *tun.Device
	mac   [6]byte
}

// New builds the graph and workers and starts them.
func New(cfg Config) (*Daemon, error) {
	if cfg.Workers < 1 {
		cfg.Workers = 1
	}
	if cfg.Worker.SmallBuffers == 0 {
		cfg.Worker = worker.DefaultConfig
	}
	d := &Daemon{
		cfg:     cfg,
		Tables:  tables.NewWriter(),
		Graph:   graph.New(),
		learn:   make(chan node.NeighborEvent, 1024),
		resolve: make(chan node.NeighborEvent, 256),
		uplinks: map[string]*uplink{},
		ifaces:  map[string]*podInterface{},
		nextID:  map[tun.Kind]int{},
		started: time.Now(),
	}
	if cfg.VXLANPort != 0 {
		d.Tables.SetVXLANPort(cfg.VXLANPort)
	}
	d.podPrefixes = normalize(cfg.PodPrefixes)
	d.nodes = node.Register(d.Graph, node.Env{Workers: cfg.Workers, Learn: d.learn, Resolve: d.resolve})
	if err := d.Graph.Finalize(); err != nil {
		return nil, err
	}
	for i := 0; i < cfg.Workers; i++ {
		w, err := worker.New(i, d.Graph, d.nodes, d.Tables, cfg.Worker)
		if err != nil {
			d.stopWorkers()
			return nil, err
		}
		d.Workers = append(d.Workers, w)
	}
	for _, w := range d.Workers {
		d.wg.Add(1)
		go func() { defer d.wg.Done(); w.Run() }()
	}
	go d.learnLoop()
	go d.resolveLoop()
	if len(d.podPrefixes) > 0 {
		// A node: the host reaches its pods (kubelet probes) through the
		// host tun whether or not an uplink is attached yet.
		d.mu.Lock()
		err := errors.Join(d.ensureHostTun(), d.syncUplinkState())
		d.mu.Unlock()
		if err != nil {
			d.Close()
			return nil, err
		}
	}
	return d, nil
}

func (d *Daemon) learnLoop() {
	for ev := range d.learn {
		d.Tables.LearnNeighbor(ev.IfIndex, ev.IP, ev.MAC)
	}
}

func (d *Daemon) stopWorkers() {
	for _, w := range d.Workers {
		w.Stop()
	}
	d.wg.Wait()
}

// Close removes every interface vecnetd made and stops the workers.
func (d *Daemon) Close() error {
	var errs []error
	for _, u := range d.Uplinks() {
		if err := d.DeleteUplink(u.Name); err != nil {
			errs = append(errs, err)
		}
	}
	d.mu.Lock()
	d.hostTun = nil
	names := make([]string, 0, len(d.ifaces))
	for n := range d.ifaces {
		names = append(names, n)
	}
	d.mu.Unlock()
	for _, n := range names {
		if err := d.DeleteInterface(n); err != nil {
			errs = append(errs, err)
		}
	}
	d.stopWorkers()
	close(d.learn)
	close(d.resolve)
	return errors.Join(errs...)
}

// ErrNameTaken and friends are mapped to gRPC codes by the API.
var (
	ErrNameTaken   = errors.New("name already in use")
	ErrNoNetns     = errors.New("network namespace does not exist")
	ErrNoInterface = errors.New("no such interface")
	// ErrHostInterface refuses to delete the host tun through the API.
	ErrHostInterface = errors.New("cannot delete the host interface")
)

// CreateInterface makes a pod interface: the device in the pod's netns,
// its dataplane interface, a host route per pod address and rx queues on
// the workers. Any failure undoes every step taken.
func (d *Daemon) CreateInterface(c *createInterface) (*podInterface, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	name := c.name
	if name == "" {
		prefix := "tun"
		if c.dev.Kind == tun.Tap {
			prefix = "tap"
		}
		for {
			name = fmt.Sprintf("%s%d", prefix, d.nextID[c.dev.Kind])
			d.nextID[c.dev.Kind]++
			if _, taken := d.ifaces[name]; !taken {
				break
			}
		}
	}
	if _, taken := d.ifaces[name]; taken {
		return nil, fmt.Errorf("interface %q: %w", name, ErrNameTaken)
	}
	if !tun.Exists(c.dev.Netns) {
		return nil, fmt.Errorf("netns %q (%s): %w", c.dev.Netns, tun.NetnsPath(c.dev.Netns), ErrNoNetns)
	}
	dev, err := tun.Create(c.dev)
	if err != nil {
		return nil, err
	}
	pi := &podInterface{name: name, dev: dev}
	kind := tables.KindTun
	if c.dev.Kind == tun.Tap {
		kind = tables.KindTap
		pi.mac = newMAC()
	}
	var podAddrs []netip.Addr
	for _, p := range c.dev.Addrs {
		podAddrs = append(podAddrs, p.Addr())
	}
	idx, err := d.Tables.AddInterface(tables.Interface{
		Name: name, Kind: kind, MTU: uint32(c.dev.MTU), VRF: c.vrf, MAC: pi.mac,
		PodAddrs: podAddrs, TxFDs: dev.FDs,
	})
	if err != nil {
		dev.Close()
		return nil, err
	}
	pi.index = idx
	var routes []tables.Route
	for _, a := range podAddrs {
		routes = append(routes, tables.Route{
			Prefix: netip.PrefixFrom(a, a.BitLen()), VRF: c.vrf, Source: tables.SourceHost,
			Paths: []tables.Path{{Interface: idx}},
		})
	}
	if err := d.Tables.AddRoutes(routes); err != nil {
		_, _ = d.Tables.DeleteInterface(name)
		dev.Close()
		return nil, err
	}
	if kind == tables.KindTap {
		// vecnetd made the device, so it knows the pod's MAC: no need to
		// lose the first packet to each pod to ARP.
		for _, a := range podAddrs {
			d.Tables.LearnNeighbor(idx, a, dev.PodMAC)
		}
	}
	d.ifaces[name] = pi
	if err := d.assignQueues(); err != nil {
		delete(d.ifaces, name)
		_, _ = d.Tables.DeleteInterface(name)
		_ = d.assignQueues()
		d.quiesce()
		dev.Close()
		return nil, err
	}
	slog.Info("interface created", "name", name, "index", idx, "kind", kind, "netns", c.dev.Netns,
		"host_if", c.dev.Name, "addrs", c.dev.Addrs, "mtu", c.dev.MTU, "queues", c.dev.Queues, "vrf", c.vrf, "offloads", dev.Offloads)
	return pi, nil
}

// DeleteInterface removes an interface. Workers stop using its descriptors
// (new table version, new queue lists, one quiescent point each) before
// they are closed, so a recycled descriptor number can never receive
// another interface's packets.
func (d *Daemon) DeleteInterface(name string) error {
	d.mu.Lock()
	pi, ok := d.ifaces[name]
	if !ok {
		d.mu.Unlock()
		return fmt.Errorf("interface %q: %w", name, ErrNoInterface)
	}
	if pi == d.hostTun {
		d.mu.Unlock()
		return fmt.Errorf("interface %q is the host interface; it goes with the last uplink's vecnetd: %w", name, ErrHostInterface)
	}
	if _, err := d.Tables.DeleteInterface(name); err != nil {
		d.mu.Unlock()
		return err
	}
	delete(d.ifaces, name)
	err := d.assignQueues()
	d.quiesce()
	d.mu.Unlock()
	// Closing the descriptors unregisters the kernel device, which waits
	// for an RCU grace period (~15 ms here). No worker can reach them any
	// more, so other interface changes need not wait behind it, and
	// concurrent deletions (a node draining) overlap their grace periods.
	if cerr := pi.dev.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	slog.Info("interface deleted", "name", name, "netns", pi.dev.Netns, "host_if", pi.dev.Name)
	return err
}

// assignQueues spreads every queue over the workers: queue q of interface i
// goes to worker (i+q) mod workers, so a multiqueue pod uses all workers and
// single-queue pods are balanced.
func (d *Daemon) assignQueues() error {
	per := make([][]node.RxQueue, len(d.Workers))
	names := make([]string, 0, len(d.ifaces))
	for n := range d.ifaces {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		pi := d.ifaces[n]
		for q, fd := range pi.dev.FDs {
			w := (int(pi.index) + q) % len(d.Workers)
			per[w] = append(per[w], node.RxQueue{FD: fd, IfIndex: pi.index, L2: pi.dev.Kind == tun.Tap})
		}
	}
	var errs []error
	for i, w := range d.Workers {
		if err := w.SetQueues(per[i]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (d *Daemon) quiesce() {
	for _, w := range d.Workers {
		w.Quiesce()
	}
}

// newMAC returns a random locally administered unicast MAC for the
// dataplane side of a tap.
func newMAC() [6]byte {
	var m [6]byte
	_, _ = rand.Read(m[:])
	m[0] = m[0]&0xfc | 0x02
	return m
}

// Interface returns a pod interface by name.
func (d *Daemon) podInterface(name string) (*podInterface, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	pi, ok := d.ifaces[name]
	return pi, ok
}

// Uptime is how long the daemon has run.
func (d *Daemon) Uptime() time.Duration { return time.Since(d.started) }
