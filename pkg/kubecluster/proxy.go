package kubecluster

// A TCP proxy from a network namespace to the API server: the apiserver
// listens on the loopback of the namespace that started it, which a
// process inside a node's network namespace (a BGP speaker must run on
// the node's own stack) cannot reach. The proxy's listening socket lives
// in another namespace (an underlay that the nodes are plugged into);
// connections it accepts are forwarded from this process's namespace, as
// a real node reaches its control plane over the network.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"runtime"
	"sync"

	"github.com/vishvananda/netns"
	"k8s.io/client-go/tools/clientcmd"
)

// InNetns runs fn on an OS thread switched into the named network
// namespace (ns as `ip netns` names it, in /run/netns); sockets fn opens
// stay in ns and may be used from any goroutine afterwards. ns "" runs fn
// in the caller's namespace. Every descriptor InNetns itself opens is
// closed before it returns.
func InNetns(ns string, fn func() error) error {
	if ns == "" {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is unlocked only once its namespace is restored: if
		// that failed it must not run other goroutines, and Go discards a
		// locked thread when its goroutine exits.
		restored, err := inNetns(ns, fn)
		if restored {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// inNetns switches the locked calling thread into ns, runs fn and
// switches back; its deferred closes run before InNetns reports.
func inNetns(ns string, fn func() error) (restored bool, err error) {
	orig, err := netns.Get()
	if err != nil {
		return true, err
	}
	defer orig.Close()
	h, err := netns.GetFromName(ns)
	if err != nil {
		return true, fmt.Errorf("network namespace %s: %w", ns, err)
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		return true, fmt.Errorf("entering network namespace %s: %w", ns, err)
	}
	err = fn()
	return netns.Set(orig) == nil, err
}

// Proxy forwards the TCP connections accepted on an address inside a
// network namespace to a target dialled from the namespace of the process
// (see StartProxy).
type Proxy struct {
	l      net.Listener
	target string
	wg     sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]bool // nil once closed
	closed chan struct{}
	once   sync.Once
}

// StartProxy listens on listen (HOST:PORT; port 0 picks one) inside the
// network namespace ns ("" = this process's) and forwards every
// connection to target (HOST:PORT), dialled from this process's own
// namespace. It serves until ctx ends or Close is called; then every
// connection is closed too.
func StartProxy(ctx context.Context, ns, listen, target string) (*Proxy, error) {
	var l net.Listener
	if err := InNetns(ns, func() (err error) {
		l, err = net.Listen("tcp", listen)
		return err
	}); err != nil {
		where := ""
		if ns != "" {
			where = " in network namespace " + ns
		}
		return nil, fmt.Errorf("proxy to %s: listening on %s%s: %w", target, listen, where, err)
	}
	p := &Proxy{l: l, target: target, conns: map[net.Conn]bool{}, closed: make(chan struct{})}
	p.wg.Add(1)
	go p.serve()
	go func() {
		select {
		case <-ctx.Done():
			p.Close()
		case <-p.closed:
		}
	}()
	return p, nil
}

// Addr is the address the proxy listens on (in its namespace).
func (p *Proxy) Addr() string { return p.l.Addr().String() }

// Target is the address connections are forwarded to.
func (p *Proxy) Target() string { return p.target }

// Close stops the proxy: the listener and every connection are closed,
// and Close returns once the proxy's goroutines are gone. It may be
// called more than once.
func (p *Proxy) Close() error {
	var err error
	p.once.Do(func() {
		close(p.closed)
		err = p.l.Close()
		p.mu.Lock()
		for c := range p.conns {
			c.Close()
		}
		p.conns = nil
		p.mu.Unlock()
	})
	p.wg.Wait()
	return err
}

// track records connections so that Close can close them; false if the
// proxy is closed already.
func (p *Proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		return false
	}
	for _, c := range cs {
		p.conns[c] = true
	}
	return true
}

func (p *Proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
	}
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		in, err := p.l.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			select {
			case <-p.closed:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // e.g. EMFILE: keep serving
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		if !p.track(in, out) {
			in.Close()
			out.Close()
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			pipe(in, out)
			p.untrack(in, out)
		}()
	}
}

// pipe copies both ways until either side is done, then closes both.
func pipe(a, b net.Conn) {
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, err := io.Copy(dst, src)
		// At EOF, pass the half-close on, so that an exchange that ends
		// with one side's FIN still gets its answer through; on an error
		// the connection is over both ways.
		if tc, ok := dst.(*net.TCPConn); ok && err == nil {
			_ = tc.CloseWrite()
		} else {
			dst.Close()
			src.Close()
		}
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	<-done
	a.Close()
	b.Close()
}

// ProxyKubeconfig writes to dst a copy of the kubeconfig src whose
// clusters' servers are reached through proxies: for each cluster,
// proxy(target) gets the server's HOST:PORT and returns the HOST:PORT to
// use instead (typically after starting a Proxy to target). The TLS
// server name stays the one the server's certificate was made for (the
// original host, unless the kubeconfig names one already). dst is
// written with mode 0600: it holds the credentials of src.
func ProxyKubeconfig(src, dst string, proxy func(target string) (string, error)) error {
	cfg, err := clientcmd.LoadFromFile(src)
	if err != nil {
		return err
	}
	for name, cl := range cfg.Clusters {
		u, err := url.Parse(cl.Server)
		if err != nil || u.Host == "" {
			return fmt.Errorf("kubeconfig %s: cluster %s: server %q is not a URL with a host", src, name, cl.Server)
		}
		target := u.Host
		if u.Port() == "" {
			port := "443"
			if u.Scheme == "http" {
				port = "80"
			}
			target = net.JoinHostPort(u.Hostname(), port)
		}
		addr, err := proxy(target)
		if err != nil {
			return fmt.Errorf("kubeconfig %s: cluster %s: %w", src, name, err)
		}
		if cl.TLSServerName == "" && u.Scheme == "https" {
			cl.TLSServerName = u.Hostname()
		}
		u.Host = addr
		cl.Server = u.String()
	}
	if err := clientcmd.WriteToFile(*cfg, dst); err != nil {
		return err
	}
	return os.Chmod(dst, 0o600)
}
