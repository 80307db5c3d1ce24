package netlab

import (
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
)

// ProxyAddr4 is the underlay address where a Cluster's nodes reach
// services of the test process (Proxy).
const ProxyAddr4 = "192.168.77.254"

// Proxy makes target (a TCP address in the test's own namespace, e.g.
// the kube-apiserver on loopback) reachable from the cluster's nodes at
// ProxyAddr4:port, as a real node reaches its control plane over the
// network. The listening socket and the address live in the underlay
// namespace, so nothing outside the test's namespaces is exposed. It
// returns the address nodes dial.
func (c *Cluster) Proxy(t testing.TB, target string) string {
	t.Helper()
	c.proxyOnce.Do(func() {
		MustRun(t, "ip", "-n", c.Underlay, "addr", "add", ProxyAddr4+"/24", "dev", "br0")
	})
	var l net.Listener
	if err := Do(c.Underlay, func() (err error) {
		l, err = net.Listen("tcp", net.JoinHostPort(ProxyAddr4, "0"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	track := func(cs ...net.Conn) bool {
		mu.Lock()
		defer mu.Unlock()
		if conns == nil {
			return false
		}
		for _, x := range cs {
			conns[x] = true
		}
		return true
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			if !track(in, out) {
				in.Close()
				out.Close()
				return
			}
			wg.Add(2)
			pipe := func(dst, src net.Conn) {
				defer wg.Done()
				_, _ = io.Copy(dst, src)
				dst.Close()
				src.Close()
			}
			go pipe(in, out)
			go pipe(out, in)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for x := range conns {
			x.Close()
		}
		conns = nil
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().String()
}

// ProxiedKubeconfig writes a copy of kubeconfig whose server is the
// proxy of c to its API server, keeping the TLS server name the API
// server's certificate was made for. Node agents inside the cluster's
// namespaces use it.
func (c *Cluster) ProxiedKubeconfig(t testing.TB, kubeconfig string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, cl := range cfg.Clusters {
		u := cl.Server
		host := u
		if i := len("https://"); len(u) > i && u[:i] == "https://" {
			host = u[i:]
		}
		ap, err := netip.ParseAddrPort(host)
		if err != nil {
			t.Fatalf("kubeconfig server %q: %v", u, err)
		}
		cl.Server = "https://" + c.Proxy(t, host)
		if cl.TLSServerName == "" {
			cl.TLSServerName = ap.Addr().String()
		}
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(path, 0o600)
	return path
}
