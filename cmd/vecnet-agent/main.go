// Command vecnet-agent is vecnet's node agent: it serves the vecnet CNI
// plugin, allocates pod addresses from Calico-style IP pools in the
// Kubernetes API and programs vecnetd. See pkg/agent for its settings
// (flags and environment variables).
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/vecnet/vecnet/pkg/agent"
)

func main() {
	cfg, err := agent.ParseConfig(os.Args[1:], os.Getenv)
	if err != nil {
		fmt.Fprintf(os.Stderr, "vecnet-agent: %v\n", err)
		os.Exit(2)
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "vecnet-agent: --log-level: %v\n", err)
		os.Exit(2)
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv})).With("node", cfg.NodeName))
	rc, err := agent.RestConfig(cfg.Kubeconfig)
	if err != nil {
		slog.Error("kubernetes client configuration", "err", err)
		os.Exit(1)
	}
	a, err := agent.New(cfg, rc)
	if err != nil {
		slog.Error("start", "err", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := a.Run(ctx); err != nil {
		slog.Error("vecnet-agent failed", "err", err)
		os.Exit(1)
	}
	slog.Info("vecnet-agent stopped")
}
