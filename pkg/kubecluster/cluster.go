// Package kubecluster runs a real Kubernetes control plane from binaries:
// etcd, kube-apiserver and, on request, kube-controller-manager with a
// chosen set of controllers. No kubelet, no scheduler, no node-lifecycle
// controller: whoever uses it brings its own nodes.
//
// It is the engine under test/kubeenv (Go tests) and vecnet-lab (a local
// multi-node cluster). The binaries are the ones hack/kube-build.sh builds
// from the Go module proxy, looked up by BinDir.
//
// What the apiserver looks like:
//   - listens on 127.0.0.1 on a free port, TLS with a CA generated per
//     cluster (in Cluster.Config.CAData and the kubeconfig file);
//   - authentication: a static token for user "admin" in group
//     system:masters, client certificates signed by the CA, and
//     ServiceAccount tokens;
//   - authorization Node,RBAC; admission as in a real cluster plus
//     NodeRestriction, but without the ServiceAccount plugin: it would reject
//     every Pod of a namespace whose "default" ServiceAccount does not exist
//     yet, and nothing here mounts the tokens it adds anyway;
//   - service cluster IP ranges DefaultServiceCIDRs (dual stack) unless
//     Options.ServiceCIDRs says otherwise.
//
// Every process is started with a parent-death signal (see StartProcess):
// when the program that started the cluster dies, however it dies, the
// cluster dies with it instead of holding ports and etcd data forever.
package kubecluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// KubeVersion is the Kubernetes release that hack/kube-build.sh builds (the
// k8s.io/kubernetes version in hack/tools/kube/go.mod). It names the default
// binary directory.
const KubeVersion = "v1.37.1"

// AdminUser is the user of Cluster.Config: a static token in group
// system:masters.
const AdminUser = "admin"

// DefaultServiceCIDRs are the service cluster IP ranges (--service-cluster-ip-range).
var DefaultServiceCIDRs = []string{"10.96.0.0/16", "fd00:10:96::/112"}

// Environment variables that locate the binaries.
const (
	EnvBin = "VECNET_KUBE_BIN" // directory with kube-apiserver and etcd (and kubectl, kube-controller-manager)
	EnvDir = "VECNET_KUBE_DIR" // cache root of hack/kube-build.sh (default /var/tmp/vecnet-kube)
)

// DefaultCacheRoot is hack/kube-build.sh's cache root without VECNET_KUBE_DIR.
const DefaultCacheRoot = "/var/tmp/vecnet-kube"

// Binary names.
const (
	APIServer         = "kube-apiserver"
	Etcd              = "etcd"
	ControllerManager = "kube-controller-manager"
	Kubectl           = "kubectl"
)

// BinDir returns the directory searched for the binaries:
// $VECNET_KUBE_BIN, else ${VECNET_KUBE_DIR:-/var/tmp/vecnet-kube}/KubeVersion/bin.
func BinDir() string {
	if d := os.Getenv(EnvBin); d != "" {
		return d
	}
	root := os.Getenv(EnvDir)
	if root == "" {
		root = DefaultCacheRoot
	}
	return filepath.Join(root, KubeVersion, "bin")
}

// MissingError reports binaries that are not in Dir. Callers tell it apart
// from other failures (tests skip instead of failing; vecnet-lab prints how
// to build them).
type MissingError struct {
	Names []string // base names, e.g. "kube-apiserver"
	Dir   string
}

func (e *MissingError) Error() string {
	names := strings.Join(e.Names, " and ")
	if n := len(e.Names); n > 2 {
		names = strings.Join(e.Names[:n-1], ", ") + " and " + e.Names[n-1]
	}
	return fmt.Sprintf("%s not found in %s; build with `%s` "+
		"(first time ~5 min on 2 cores, then cached) or set %s to a directory holding them",
		names, e.Dir, e.BuildCommand(), EnvBin)
}

// BuildCommand is the command that builds the missing binaries.
func (e *MissingError) BuildCommand() string {
	return "bash hack/kube-build.sh " + strings.Join(e.Names, " ")
}

// FindBinaries returns the paths of names in dir, or a *MissingError naming
// those that are not executable files there.
func FindBinaries(dir string, names ...string) (map[string]string, error) {
	paths := map[string]string{}
	var missing []string
	for _, n := range names {
		p := filepath.Join(dir, n)
		if st, err := os.Stat(p); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			missing = append(missing, n)
			continue
		}
		paths[n] = p
	}
	if len(missing) > 0 {
		return paths, &MissingError{Names: missing, Dir: dir}
	}
	return paths, nil
}

// Options choose how a Cluster is started.
type Options struct {
	// Dir receives keys, the kubeconfig, etcd's data and the logs
	// (<component>.log). It must exist; Stop leaves it for the caller to
	// remove (or keep, to read the logs).
	Dir string
	// BinDir holds the binaries; empty: BinDir().
	BinDir string
	// Name names the etcd member, the CA and the kubeconfig's cluster and
	// context (default "kubecluster").
	Name string
	// ServiceCIDRs replaces DefaultServiceCIDRs (one range, or an IPv4 and
	// an IPv6 one for dual stack).
	ServiceCIDRs []string
	// APIServerArgs are appended to kube-apiserver's flags (a flag given
	// twice: the last one wins, so this also overrides the defaults).
	APIServerArgs []string
	// Controllers, when not empty, starts kube-controller-manager with only
	// these controllers (its --controllers names, e.g.
	// "namespace-controller"). Leader election and its HTTPS port are off.
	Controllers []string
	// StartTimeout bounds the start-up (default 2 minutes: a 2-core machine
	// running several test binaries at once can be slow).
	StartTimeout time.Duration
	// Progress, if set, is called when each component starts (done false)
	// and when it is ready or failed (done true, with err): how a CLI shows
	// that something is happening.
	Progress func(component string, done bool, err error)
}

// Cluster is a running etcd + kube-apiserver (+ kube-controller-manager).
type Cluster struct {
	// Config reaches the apiserver as AdminUser (system:masters).
	Config *rest.Config
	// Client and Dynamic are built from Config.
	Client  kubernetes.Interface
	Dynamic dynamic.Interface
	// Kubeconfig is the path of a kubeconfig file equivalent to Config.
	Kubeconfig string
	// Dir is Options.Dir.
	Dir string
	// EtcdURL is etcd's client URL (http://127.0.0.1:<port>).
	EtcdURL string
	// APIServerArgs are the flags kube-apiserver was started with.
	APIServerArgs []string

	name     string
	pki      *pkiFiles
	mu       sync.Mutex
	procs    []*Process
	stopOnce sync.Once
}

// Start starts etcd, kube-apiserver and, with Options.Controllers,
// kube-controller-manager, and waits until the apiserver has created the
// system namespaces and the "kubernetes" Service. On error everything
// started is stopped and the error carries the tail of the logs; a
// *MissingError (errors.As) means binaries are missing.
func Start(ctx context.Context, o Options) (_ *Cluster, err error) {
	if o.Dir == "" {
		return nil, errors.New("kubecluster: Options.Dir is empty")
	}
	if o.BinDir == "" {
		o.BinDir = BinDir()
	}
	if o.Name == "" {
		o.Name = "kubecluster"
	}
	if len(o.ServiceCIDRs) == 0 {
		o.ServiceCIDRs = DefaultServiceCIDRs
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 2 * time.Minute
	}
	if o.Progress == nil {
		o.Progress = func(string, bool, error) {}
	}
	names := []string{APIServer, Etcd}
	if len(o.Controllers) > 0 {
		names = append(names, ControllerManager)
	}
	bins, err := FindBinaries(o.BinDir, names...)
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: o.Dir, name: o.Name}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w\n%s", err, c.LogsSince(nil, 40))
			c.Stop()
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, o.StartTimeout)
	defer cancel()

	if c.pki, err = genPKI(o.Dir, o.Name); err != nil {
		return nil, fmt.Errorf("kubecluster: generating keys: %w", err)
	}
	step := func(name string, f func() error) error {
		o.Progress(name, false, nil)
		err := f()
		o.Progress(name, true, err)
		return err
	}
	if err := step(Etcd, func() error { return c.startEtcd(ctx, bins[Etcd]) }); err != nil {
		return nil, err
	}
	if err := step(APIServer, func() error {
		if err := c.startAPIServer(ctx, bins[APIServer], &o); err != nil {
			return err
		}
		if err := c.makeClients(); err != nil {
			return err
		}
		return c.waitBootstrap(ctx)
	}); err != nil {
		return nil, err
	}
	if len(o.Controllers) > 0 {
		if err := step(ControllerManager, func() error {
			return c.startControllerManager(bins[ControllerManager], o.Controllers)
		}); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// waitBootstrap waits for what the apiserver creates right after /readyz
// turns ok, so that users start from a cluster as kubeadm would hand it
// over: the system namespaces and the "kubernetes" Service.
func (c *Cluster) waitBootstrap(ctx context.Context) error {
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		for _, ns := range []string{"default", "kube-system", "kube-public", "kube-node-lease"} {
			if _, err := c.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
				return false, nil
			}
		}
		_, err := c.Client.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		return fmt.Errorf("kubecluster: waiting for system namespaces and the kubernetes Service: %w", err)
	}
	return nil
}

// attempts at a process whose randomly picked port was taken in between.
const portAttempts = 3

func (c *Cluster) startEtcd(ctx context.Context, bin string) error {
	for attempt := 1; ; attempt++ {
		cport, err := FreePort()
		if err != nil {
			return err
		}
		pport, err := FreePort()
		if err != nil {
			return err
		}
		client := fmt.Sprintf("http://127.0.0.1:%d", cport)
		peer := fmt.Sprintf("http://127.0.0.1:%d", pport)
		data := filepath.Join(c.Dir, "etcd-data")
		os.RemoveAll(data)
		p, err := c.run(Etcd, bin,
			"--name="+c.name, "--data-dir="+data,
			"--listen-client-urls="+client, "--advertise-client-urls="+client,
			"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer,
			"--initial-cluster="+c.name+"="+peer, "--initial-cluster-state=new",
			// throwaway data: skip fsync (faster writes; nothing to recover after a crash)
			"--unsafe-no-fsync",
			"--log-level=warn",
		)
		if err != nil {
			return err
		}
		hc := &http.Client{Timeout: 2 * time.Second}
		err = p.WaitReady(ctx, func() bool {
			resp, err := hc.Get(client + "/health")
			if err != nil {
				return false
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK && bytes.Contains(body, []byte(`"health":"true"`))
		})
		if err == nil {
			c.EtcdURL = client
			return nil
		}
		if !errors.Is(err, ErrPortInUse) || attempt == portAttempts {
			return err
		}
		c.forget(p)
	}
}

func (c *Cluster) startAPIServer(ctx context.Context, bin string, o *Options) error {
	for attempt := 1; ; attempt++ {
		port, err := FreePort()
		if err != nil {
			return err
		}
		args := []string{
			"--etcd-servers=" + c.EtcdURL,
			"--bind-address=127.0.0.1",
			"--advertise-address=127.0.0.1",
			"--secure-port=" + strconv.Itoa(port),
			"--tls-cert-file=" + c.pki.servingCert,
			"--tls-private-key-file=" + c.pki.servKey,
			"--client-ca-file=" + c.pki.caCert,
			"--token-auth-file=" + c.pki.tokenFile,
			"--authorization-mode=Node,RBAC",
			"--enable-admission-plugins=NodeRestriction",
			// Nothing mounts ServiceAccount tokens into pods, and the plugin
			// would refuse every Pod of a namespace whose "default"
			// ServiceAccount does not exist (yet).
			"--disable-admission-plugins=ServiceAccount",
			"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
			"--service-account-key-file=" + c.pki.saPub,
			"--service-account-signing-key-file=" + c.pki.saKey,
			"--service-cluster-ip-range=" + strings.Join(o.ServiceCIDRs, ","),
			// The "kubernetes" Service keeps no endpoints: a loopback address
			// is not a valid endpoint, and nothing here could reach it anyway.
			"--endpoint-reconciler-type=none",
			"--allow-privileged=true",
			"--profiling=false",
			"--v=1",
		}
		args = append(args, o.APIServerArgs...)
		p, err := c.run(APIServer, bin, args...)
		if err != nil {
			return err
		}
		host := fmt.Sprintf("https://127.0.0.1:%d", port)
		hc, err := c.httpClient()
		if err != nil {
			return err
		}
		err = p.WaitReady(ctx, func() bool {
			req, _ := http.NewRequest(http.MethodGet, host+"/readyz", nil)
			req.Header.Set("Authorization", "Bearer "+c.pki.adminToken)
			resp, err := hc.Do(req)
			if err != nil {
				return false
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
		if err == nil {
			c.APIServerArgs = args
			c.Config = &rest.Config{
				Host:            host,
				BearerToken:     c.pki.adminToken,
				TLSClientConfig: rest.TLSClientConfig{CAData: c.pki.caPEM},
				QPS:             200,
				Burst:           400,
			}
			return nil
		}
		if !errors.Is(err, ErrPortInUse) || attempt == portAttempts {
			return err
		}
		c.forget(p)
	}
}

// startControllerManager starts kube-controller-manager with only the
// given controllers. It does not wait: the controllers work in the
// background, and a broken one shows in its log, not in the start-up of
// the cluster. Its HTTPS port is off (nothing scrapes it), so there is no
// port to collide on either.
func (c *Cluster) startControllerManager(bin string, controllers []string) error {
	p, err := c.run(ControllerManager, bin,
		"--kubeconfig="+c.Kubeconfig,
		"--controllers="+strings.Join(controllers, ","),
		"--leader-elect=false",
		"--secure-port=0",
		"--use-service-account-credentials=false",
		"--service-account-private-key-file="+c.pki.saKey,
		"--root-ca-file="+c.pki.caCert,
		"--v=1",
	)
	if err != nil {
		return err
	}
	// Catch flags it refuses, which make it exit at once.
	select {
	case <-p.Done():
		return fmt.Errorf("kubecluster: %s exited at start-up: %v", ControllerManager, p.Err())
	case <-time.After(500 * time.Millisecond):
		return nil
	}
}

func (c *Cluster) httpClient() (*http.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(c.pki.caPEM) {
		return nil, errors.New("kubecluster: bad CA PEM")
	}
	return &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}, nil
}

func (c *Cluster) makeClients() error {
	var err error
	if c.Client, err = kubernetes.NewForConfig(c.Config); err != nil {
		return err
	}
	if c.Dynamic, err = dynamic.NewForConfig(c.Config); err != nil {
		return err
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters[c.name] = &clientcmdapi.Cluster{Server: c.Config.Host, CertificateAuthorityData: c.pki.caPEM}
	kc.AuthInfos[AdminUser] = &clientcmdapi.AuthInfo{Token: c.pki.adminToken}
	kc.Contexts[c.name] = &clientcmdapi.Context{Cluster: c.name, AuthInfo: AdminUser, Namespace: "default"}
	kc.CurrentContext = c.name
	c.Kubeconfig = filepath.Join(c.Dir, "kubeconfig")
	return clientcmd.WriteToFile(*kc, c.Kubeconfig)
}

// Stop kills the processes, newest first (kube-controller-manager, then
// kube-apiserver, then etcd): SIGTERM, SIGKILL after 10s. It leaves Dir.
// Safe to call more than once.
func (c *Cluster) Stop() {
	c.stopOnce.Do(func() {
		c.mu.Lock()
		procs := append([]*Process(nil), c.procs...)
		c.mu.Unlock()
		for i := len(procs) - 1; i >= 0; i-- {
			procs[i].Stop(10 * time.Second)
		}
	})
}

// Processes returns the cluster's processes, in start order.
func (c *Cluster) Processes() []*Process {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Process(nil), c.procs...)
}

// PIDs returns the process IDs of the cluster's processes.
func (c *Cluster) PIDs() []int {
	var pids []int
	for _, p := range c.Processes() {
		pids = append(pids, p.Pid())
	}
	return pids
}

// run starts bin with its output in Dir/<name>.log.
func (c *Cluster) run(name, bin string, args ...string) (*Process, error) {
	p, err := StartProcess(name, append([]string{bin}, args...), filepath.Join(c.Dir, name+".log"), c.Dir)
	if err != nil {
		return nil, fmt.Errorf("kubecluster: %w", err)
	}
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	return p, nil
}

// forget drops a process that failed to start (it has exited).
func (c *Cluster) forget(p *Process) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, q := range c.procs {
		if q == p {
			c.procs = append(c.procs[:i], c.procs[i+1:]...)
			return
		}
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
// Another program may take it before the caller binds it: callers retry
// on ErrPortInUse.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ---- logs ----

// LogOffsets returns the current size of each process's log file, for
// LogsSince.
func (c *Cluster) LogOffsets() map[string]int64 {
	m := map[string]int64{}
	for _, p := range c.Processes() {
		if st, err := os.Stat(p.Log); err == nil {
			m[p.Log] = st.Size()
		}
	}
	return m
}

// LogsSince returns, for each log, at most the last n lines written after
// offsets (from the start when offsets is nil).
func (c *Cluster) LogsSince(offsets map[string]int64, n int) string {
	var b strings.Builder
	seen := map[string]bool{}
	for _, p := range c.Processes() {
		if seen[p.Log] {
			continue
		}
		seen[p.Log] = true
		b.WriteString(LogTail(p.Log, offsets[p.Log], n))
	}
	return b.String()
}

// LogTail returns at most the last n lines of the file at path written
// after offset, with a header naming the file.
func LogTail(path string, offset int64, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if offset > 0 && offset <= int64(len(data)) {
		data = data[offset:]
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return fmt.Sprintf("----- %s: nothing new -----\n", path)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return fmt.Sprintf("----- last %d lines of %s -----\n%s\n", len(lines), path, strings.Join(lines, "\n"))
}
