package kubecluster

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// echoServer answers each connection with "echo: " and everything it
// reads up to EOF, then closes: a proxy that does not pass half-closes on
// loses the answer.
func echoServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b, _ := io.ReadAll(c)
				fmt.Fprintf(c, "echo: %s", b)
			}()
		}
	}()
	return l.Addr().String()
}

// exchange sends msg over a connection made by dial, half-closes and
// returns the answer.
func exchange(t *testing.T, dial func() (net.Conn, error), msg string) string {
	t.Helper()
	c, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	_ = c.(*net.TCPConn).CloseWrite()
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestProxy(t *testing.T) {
	target := echoServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, err := StartProxy(ctx, "", "127.0.0.1:0", target)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	dial := func() (net.Conn, error) { return net.Dial("tcp", p.Addr()) }
	for i := range 3 {
		msg := fmt.Sprintf("hello %d", i)
		if got := exchange(t, dial, msg); got != "echo: "+msg {
			t.Fatalf("through the proxy: %q, want %q", got, "echo: "+msg)
		}
	}

	// A connection still open when the proxy closes is closed with it.
	open, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	if _, err := io.WriteString(open, "pending"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // accepted and dialled
	closed := make(chan struct{})
	go func() { p.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return with a connection open")
	}
	_ = open.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := bufio.NewReader(open).ReadByte(); err == nil {
		t.Error("the open connection still answers after Close")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Error("the open connection was not closed by Close")
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		t.Error("the proxy still accepts connections after Close")
	}
	if err := p.Close(); err != nil && !strings.Contains(err.Error(), "closed") {
		t.Errorf("second Close: %v", err)
	}
}

func TestProxyContext(t *testing.T) {
	target := echoServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	p, err := StartProxy(ctx, "", "127.0.0.1:0", target)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", p.Addr(), time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the proxy still accepts connections 5s after its context ended")
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.Close()
}

func TestProxyBadListen(t *testing.T) {
	if _, err := StartProxy(context.Background(), "", "192.0.2.1:0", "127.0.0.1:1"); err == nil {
		t.Fatal("listening on an address this machine does not have succeeded")
	}
	if _, err := StartProxy(context.Background(), "no-such-netns-vecnet", "127.0.0.1:0", "127.0.0.1:1"); err == nil ||
		!strings.Contains(err.Error(), "no-such-netns-vecnet") {
		t.Fatalf("a missing namespace: %v, want an error naming it", err)
	}
}

// TestProxyNetns: the listening socket is inside a network namespace (its
// loopback), the target on this process's loopback, which the namespace
// cannot reach by itself.
func TestProxyNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip (iproute2)")
	}
	ns := fmt.Sprintf("vnproxy-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	if out, err := exec.Command("ip", "-n", ns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v: %s", err, out)
	}
	target := echoServer(t)
	inNS := func() (c net.Conn, err error) {
		err = InNetns(ns, func() (err error) {
			c, err = net.DialTimeout("tcp", target, time.Second)
			return err
		})
		return c, err
	}
	if c, err := inNS(); err == nil {
		c.Close()
		t.Fatal("the namespace reaches the target without the proxy: the test proves nothing")
	}

	p, err := StartProxy(context.Background(), ns, "127.0.0.1:0", target)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	dial := func() (c net.Conn, err error) {
		err = InNetns(ns, func() (err error) {
			c, err = net.DialTimeout("tcp", p.Addr(), time.Second)
			return err
		})
		return c, err
	}
	if got := exchange(t, dial, "from the namespace"); got != "echo: from the namespace" {
		t.Fatalf("through the proxy: %q", got)
	}
	// The listening socket is the namespace's: this process's loopback
	// has nothing on that port (unless by chance something else is).
	if c, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		c.Close()
		t.Logf("note: %s answers in the host namespace too (another listener on that port?)", p.Addr())
	}
}

func TestProxyKubeconfig(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "kubeconfig"), filepath.Join(dir, "proxied")
	kc := clientcmdapi.NewConfig()
	kc.Clusters["a"] = &clientcmdapi.Cluster{Server: "https://127.0.0.1:6443", CertificateAuthorityData: []byte("ca")}
	kc.Clusters["b"] = &clientcmdapi.Cluster{Server: "https://[::1]:7443", TLSServerName: "kubernetes"}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: "secret"}
	kc.Contexts["a"] = &clientcmdapi.Context{Cluster: "a", AuthInfo: "admin"}
	kc.CurrentContext = "a"
	if err := clientcmd.WriteToFile(*kc, src); err != nil {
		t.Fatal(err)
	}
	targets := map[string]bool{}
	if err := ProxyKubeconfig(src, dst, func(target string) (string, error) {
		targets[target] = true
		return "192.168.77.254:6443", nil
	}); err != nil {
		t.Fatal(err)
	}
	if !targets["127.0.0.1:6443"] || !targets["[::1]:7443"] || len(targets) != 2 {
		t.Errorf("proxied targets %v, want 127.0.0.1:6443 and [::1]:7443", targets)
	}
	got, err := clientcmd.LoadFromFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][2]string{
		"a": {"https://192.168.77.254:6443", "127.0.0.1"},
		"b": {"https://192.168.77.254:6443", "kubernetes"},
	} {
		cl := got.Clusters[name]
		if cl == nil || cl.Server != want[0] || cl.TLSServerName != want[1] {
			t.Errorf("cluster %s: %+v, want server %s and TLS server name %s", name, cl, want[0], want[1])
		}
	}
	if string(got.Clusters["a"].CertificateAuthorityData) != "ca" || got.AuthInfos["admin"].Token != "secret" || got.CurrentContext != "a" {
		t.Error("the copy lost the CA, the credentials or the current context")
	}
	if st, err := os.Stat(dst); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("proxied kubeconfig mode: %v %v, want 0600 (it holds credentials)", st.Mode(), err)
	}
	if err := ProxyKubeconfig(src, dst, func(string) (string, error) { return "", fmt.Errorf("no proxy") }); err == nil || !strings.Contains(err.Error(), "no proxy") {
		t.Errorf("a failing proxy: %v, want its error", err)
	}
}
