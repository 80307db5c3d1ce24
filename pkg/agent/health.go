package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the agent's Prometheus series.
type metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	poolSize  *prometheus.GaugeVec
	poolInUse *prometheus.GaugeVec
	released  prometheus.Counter
	// remoteBlocks: IPAM blocks held by other nodes, by state (routed,
	// unroutable); routes: the agent's routes in vecnetd, by encap;
	// routeErrors: routes vecnetd refused (routes.go).
	remoteBlocks *prometheus.GaugeVec
	routes       *prometheus.GaugeVec
	routeErrors  prometheus.Counter
	// bgpSessions: BGP sessions by state (bgp.go).
	bgpSessions *prometheus.GaugeVec
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vecnet_cni_requests_total", Help: "CNI requests served, by operation and result code.",
	}, []string{"op", "code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "vecnet_cni_request_duration_seconds", Help: "Time to serve a CNI request.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"op"})
	m.poolSize = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "vecnet_ipam_pool_size", Help: "Addresses in an IP pool.",
	}, []string{"pool", "cidr"})
	m.poolInUse = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "vecnet_ipam_pool_allocated", Help: "Addresses of an IP pool allocated to pods.",
	}, []string{"pool", "cidr"})
	m.released = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "vecnet_ipam_gc_released_total", Help: "Addresses released by garbage collection because their pod was gone.",
	})
	m.remoteBlocks = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "vecnet_ipam_remote_blocks", Help: "IPAM blocks of other nodes (or of none), by state: routed, or unroutable (no affinity, no pool, no node address).",
	}, []string{"state"})
	m.routes = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "vecnet_routes", Help: "Routes the agent programmed in vecnetd to other nodes' blocks and borrowed addresses, by encapsulation.",
	}, []string{"encap"})
	m.routeErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "vecnet_route_errors_total", Help: "Route additions or deletions vecnetd refused (retried with backoff).",
	})
	m.bgpSessions = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "vecnet_bgp_sessions", Help: "BGP sessions of the node's speaker, by state (Established, Active, Idle, ...).",
	}, []string{"state"})
	m.reg.MustRegister(m.bgpSessions, m.remoteBlocks, m.routes, m.routeErrors, m.requests, m.latency, m.poolSize, m.poolInUse, m.released,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// readiness collects the conditions of /readyz.
type readiness struct {
	mu    sync.Mutex
	conds map[string]error
}

func (r *readiness) set(name string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conds == nil {
		r.conds = map[string]error{}
	}
	r.conds[name] = err
}

func (r *readiness) get(name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.conds[name]
}

func (r *readiness) check() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for n, err := range r.conds {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n, err))
		}
	}
	return errors.Join(errs...)
}

// serveHTTP runs an HTTP server until ctx ends.
func serveHTTP(ctx context.Context, addr string, h http.Handler, what string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s listener on %s: %w", what, addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	slog.Info("serving "+what, "addr", l.Addr().String())
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Error(what+" server failed", "err", err)
		}
	}()
	return nil
}

func healthHandler(r *readiness) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/livez", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := r.check(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

func metricsHandler(m *metrics) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	return mux
}
