// Command vecnetd is vecnet's dataplane: a userspace vector packet graph
// that forwards pod traffic. It runs in the foreground, serves its gRPC API
// on a unix socket and, on SIGTERM or SIGINT, removes every interface it
// made before exiting.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/vecnet/vecnet/pkg/dataplane/worker"
	"github.com/vecnet/vecnet/pkg/vecnetd"
)

// DefaultSocket is where vecnetctl and vecnet-agent look for the API.
const DefaultSocket = "/run/vecnet/vecnetd.sock"

func main() {
	socket := flag.String("socket", DefaultSocket, "unix socket of the gRPC API (created mode 0600)")
	workers := flag.Int("workers", 1, "number of packet worker threads")
	spin := flag.Duration("poll-spin", worker.DefaultConfig.SpinDuration, "how long an idle worker keeps polling before it sleeps in epoll (0: sleep at once)")
	small := flag.Int("buffers", worker.DefaultConfig.SmallBuffers, "2 KiB packet buffers per worker")
	large := flag.Int("gso-buffers", worker.DefaultConfig.LargeBuffers, "68 KiB GSO super-packet buffers per worker")
	level := flag.String("log-level", "info", "debug, info, warn or error")
	hostIf := flag.String("host-interface", "vecnet0", "host tun made with the first uplink: the node's path to its pods and theirs to it (\"\" for none)")
	hostMTU := flag.Int("host-mtu", 1500, "MTU of the host interface")
	podCIDRs := flag.String("pod-cidrs", "", "comma-separated pod and service prefixes (see vecnetctl prefixes set)")
	vxlanPort := flag.Uint("vxlan-port", 4789, "UDP port of VXLAN tunnels")
	uplinks := flag.String("uplinks", "", "comma-separated uplinks to attach at start, NAME[:DRIVER] (DRIVER af_xdp, af_packet or auto)")
	flag.Parse()

	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(os.Stderr, "vecnetd: --log-level: %v\n", err)
		os.Exit(2)
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv})))
	if *workers < 1 || *workers > 256 {
		fmt.Fprintf(os.Stderr, "vecnetd: --workers %d: must be in [1, 256]\n", *workers)
		os.Exit(2)
	}
	if *small < 1024 || *large < 4 {
		fmt.Fprintf(os.Stderr, "vecnetd: --buffers must be >= 1024 and --gso-buffers >= 4\n")
		os.Exit(2)
	}
	var prefixes []netip.Prefix
	for _, s := range strings.Split(*podCIDRs, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			fmt.Fprintf(os.Stderr, "vecnetd: --pod-cidrs: %v\n", err)
			os.Exit(2)
		}
		prefixes = append(prefixes, p)
	}
	if *vxlanPort == 0 || *vxlanPort > 65535 {
		fmt.Fprintf(os.Stderr, "vecnetd: --vxlan-port %d: must be in [1, 65535]\n", *vxlanPort)
		os.Exit(2)
	}
	if err := run(*socket, *uplinks, vecnetd.Config{
		Workers:       *workers,
		Worker:        worker.Config{SmallBuffers: *small, LargeBuffers: *large, SpinDuration: *spin},
		HostInterface: *hostIf,
		HostMTU:       *hostMTU,
		PodPrefixes:   prefixes,
		VXLANPort:     uint16(*vxlanPort),
	}); err != nil {
		slog.Error("vecnetd failed", "err", err)
		os.Exit(1)
	}
}

func run(socket, uplinks string, cfg vecnetd.Config) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("vecnetd must run as root (it creates tun/tap devices in other network namespaces)")
	}
	// Workers are locked to OS threads; leave a P for the API and GC.
	if runtime.GOMAXPROCS(0) < cfg.Workers+1 {
		runtime.GOMAXPROCS(cfg.Workers + 1)
	}
	l, err := vecnetd.Listen(socket)
	if err != nil {
		return err
	}
	d, err := vecnetd.New(cfg)
	if err != nil {
		l.Close()
		return err
	}
	for _, spec := range strings.Split(uplinks, ",") {
		if spec = strings.TrimSpace(spec); spec == "" {
			continue
		}
		name, drv, _ := strings.Cut(spec, ":")
		if _, err := d.AddUplink(name, drv, 0); err != nil {
			d.Close()
			l.Close()
			return err
		}
	}
	srv := vecnetd.NewGRPCServer(d)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	slog.Info("vecnetd ready", "socket", socket, "workers", cfg.Workers, "pid", os.Getpid())
	select {
	case <-ctx.Done():
		slog.Info("shutting down", "reason", "signal")
	case err = <-errc:
		slog.Error("api server stopped", "err", err)
	}
	done := make(chan struct{})
	go func() { srv.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		srv.Stop()
	}
	cerr := d.Close()
	os.Remove(socket)
	if cerr != nil {
		return fmt.Errorf("cleanup: %w", cerr)
	}
	slog.Info("vecnetd stopped cleanly")
	return err
}
