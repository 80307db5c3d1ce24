package netlab

import (
	"context"
	"net"
	"path/filepath"
	"testing"

	"github.com/vecnet/vecnet/pkg/kubecluster"
)

// ProxyAddr4 is the underlay address where a Cluster's nodes reach
// services of the test process (Proxy).
const ProxyAddr4 = "192.168.77.254"

// Proxy makes target (a TCP address in the test's own namespace, e.g.
// the kube-apiserver on loopback) reachable from the cluster's nodes at
// ProxyAddr4:port, as a real node reaches its control plane over the
// network. The listening socket and the address live in the underlay
// namespace, so nothing outside the test's namespaces is exposed. It
// returns the address nodes dial. The proxy is kubecluster.StartProxy's,
// closed when the test ends.
func (c *Cluster) Proxy(t testing.TB, target string) string {
	t.Helper()
	c.proxyOnce.Do(func() {
		MustRun(t, "ip", "-n", c.Underlay, "addr", "add", ProxyAddr4+"/24", "dev", "br0")
	})
	p, err := kubecluster.StartProxy(context.Background(), c.Underlay, net.JoinHostPort(ProxyAddr4, "0"), target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p.Addr()
}

// ProxiedKubeconfig writes a copy of kubeconfig whose server is the
// proxy of c to its API server, keeping the TLS server name the API
// server's certificate was made for. Node agents inside the cluster's
// namespaces use it.
func (c *Cluster) ProxiedKubeconfig(t testing.TB, kubeconfig string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := kubecluster.ProxyKubeconfig(kubeconfig, path, func(target string) (string, error) {
		return c.Proxy(t, target), nil
	}); err != nil {
		t.Fatal(err)
	}
	return path
}
