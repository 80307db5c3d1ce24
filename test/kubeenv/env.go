package kubeenv

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
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
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

// AdminUser is the user of Env.Config: a static token in group system:masters.
const AdminUser = "admin"

// DefaultServiceCIDRs are the service cluster IP ranges (--service-cluster-ip-range).
var DefaultServiceCIDRs = []string{"10.96.0.0/16", "fd00:10:96::/112"}

// Environment variables read by this package.
const (
	EnvBin     = "VECNET_KUBE_BIN"     // directory with kube-apiserver and etcd
	EnvDir     = "VECNET_KUBE_DIR"     // cache root of hack/kube-build.sh (default /var/tmp/vecnet-kube)
	EnvRequire = "VECNET_REQUIRE_KUBE" // "1": missing binaries fail tests instead of skipping them
	EnvKeep    = "VECNET_KUBEENV_KEEP" // "1": keep the env directory (logs, keys, kubeconfig)
)

const defaultCacheRoot = "/var/tmp/vecnet-kube"

// Env is a running etcd + kube-apiserver.
type Env struct {
	// Config reaches the apiserver as AdminUser (system:masters).
	Config *rest.Config
	// Client and Dynamic are built from Config.
	Client  kubernetes.Interface
	Dynamic dynamic.Interface
	// Kubeconfig is the path of a kubeconfig file equivalent to Config (for
	// kubectl, or for code under test that takes a kubeconfig path).
	Kubeconfig string
	// Dir holds logs (etcd.log, kube-apiserver.log), keys, the kubeconfig and
	// etcd's data. Removed by Stop unless VECNET_KUBEENV_KEEP=1.
	Dir string
	// EtcdURL is etcd's client URL (http://127.0.0.1:<port>).
	EtcdURL string
	// APIServerArgs are the flags kube-apiserver was started with.
	APIServerArgs []string

	pki      *pkiFiles
	procs    []*process
	stopOnce sync.Once
	stopped  atomic.Bool
}

// Option changes how an Env is started.
type Option func(*options)

type options struct {
	apiserverArgs []string
	serviceCIDRs  []string
	startTimeout  time.Duration
}

// WithAPIServerArgs appends kube-apiserver flags (a flag given twice: the
// last one wins, so this also overrides the defaults).
func WithAPIServerArgs(args ...string) Option {
	return func(o *options) { o.apiserverArgs = append(o.apiserverArgs, args...) }
}

// WithServiceCIDRs replaces DefaultServiceCIDRs (one range, or an IPv4 and
// an IPv6 one for dual stack).
func WithServiceCIDRs(cidrs ...string) Option {
	return func(o *options) { o.serviceCIDRs = cidrs }
}

// WithStartTimeout bounds the start-up (default 2 minutes: a 2-core machine
// running several test binaries at once can be slow).
func WithStartTimeout(d time.Duration) Option {
	return func(o *options) { o.startTimeout = d }
}

// BinDir returns the directory searched for kube-apiserver and etcd:
// $VECNET_KUBE_BIN, else ${VECNET_KUBE_DIR:-/var/tmp/vecnet-kube}/KubeVersion/bin.
func BinDir() string {
	if d := os.Getenv(EnvBin); d != "" {
		return d
	}
	root := os.Getenv(EnvDir)
	if root == "" {
		root = defaultCacheRoot
	}
	return filepath.Join(root, KubeVersion, "bin")
}

// errMissing reports binaries that are not there: tests skip (or fail with
// VECNET_REQUIRE_KUBE=1) instead of erroring.
type errMissing struct{ what string }

func (e *errMissing) Error() string {
	return fmt.Sprintf("kubeenv: %s; build it with `bash hack/kube-build.sh` "+
		"(first time ~5 min on 2 cores) or set %s to a directory holding kube-apiserver and etcd", e.what, EnvBin)
}

type binaries struct{ apiserver, etcd string }

func findBinaries() (binaries, error) {
	dir := BinDir()
	b := binaries{apiserver: filepath.Join(dir, "kube-apiserver"), etcd: filepath.Join(dir, "etcd")}
	var missing []string
	for _, p := range []string{b.apiserver, b.etcd} {
		if st, err := os.Stat(p); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			missing = append(missing, filepath.Base(p))
		}
	}
	if len(missing) > 0 {
		return b, &errMissing{fmt.Sprintf("%s not found in %s", strings.Join(missing, " and "), dir)}
	}
	return b, nil
}

// skipOrFail ends t for a start-up error: skip for missing binaries (fail
// when VECNET_REQUIRE_KUBE=1), fail otherwise.
func skipOrFail(t testing.TB, err error) {
	t.Helper()
	var m *errMissing
	if errors.As(err, &m) {
		if os.Getenv(EnvRequire) != "1" {
			t.Skip(err.Error())
		}
		t.Fatal(err.Error() + " (failing, not skipping: " + EnvRequire + "=1)")
	}
	t.Fatal(err.Error())
}

// Start starts a private etcd + kube-apiserver for t, stopped (and its
// directory removed) when t ends; their logs are printed if t failed.
// Prefer Get, which shares one env among all tests of the binary.
func Start(t testing.TB, opts ...Option) *Env {
	t.Helper()
	t0 := time.Now()
	e, err := start(opts...)
	if err != nil {
		skipOrFail(t, err)
	}
	t.Logf("kubeenv: kube-apiserver %s at %s ready in %.1fs (dir %s)", KubeVersion, e.Config.Host,
		time.Since(t0).Seconds(), e.Dir)
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(e.logsSince(nil, 80))
		}
		e.Stop()
	})
	return e
}

func start(opts ...Option) (_ *Env, err error) {
	o := options{serviceCIDRs: DefaultServiceCIDRs, startTimeout: 2 * time.Minute}
	for _, f := range opts {
		f(&o)
	}
	bins, err := findBinaries()
	if err != nil {
		return nil, err
	}
	removeStaleDirs()
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	e := &Env{Dir: dir}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w\n%s", err, e.logsSince(nil, 40))
			e.Stop()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), o.startTimeout)
	defer cancel()

	if e.pki, err = genPKI(dir); err != nil {
		return nil, fmt.Errorf("kubeenv: generating keys: %w", err)
	}
	if err := e.startEtcd(ctx, bins.etcd); err != nil {
		return nil, err
	}
	if err := e.startAPIServer(ctx, bins.apiserver, &o); err != nil {
		return nil, err
	}
	if err := e.makeClients(); err != nil {
		return nil, err
	}
	return e, e.waitBootstrap(ctx)
}

// waitBootstrap waits for what the apiserver creates right after /readyz
// turns ok, so that tests start from a cluster as kubeadm would hand it over:
// the system namespaces and the "kubernetes" Service.
func (e *Env) waitBootstrap(ctx context.Context) error {
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		for _, ns := range []string{"default", "kube-system", "kube-public", "kube-node-lease"} {
			if _, err := e.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
				return false, nil
			}
		}
		_, err := e.Client.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		return fmt.Errorf("kubeenv: waiting for system namespaces and the kubernetes Service: %w", err)
	}
	return nil
}

// attempts at a process whose randomly picked port was taken in between.
const portAttempts = 3

func (e *Env) startEtcd(ctx context.Context, bin string) error {
	for attempt := 1; ; attempt++ {
		cport, err := freePort()
		if err != nil {
			return err
		}
		pport, err := freePort()
		if err != nil {
			return err
		}
		client := fmt.Sprintf("http://127.0.0.1:%d", cport)
		peer := fmt.Sprintf("http://127.0.0.1:%d", pport)
		data := filepath.Join(e.Dir, "etcd-data")
		os.RemoveAll(data)
		p, err := e.run("etcd", bin,
			"--name=kubeenv", "--data-dir="+data,
			"--listen-client-urls="+client, "--advertise-client-urls="+client,
			"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer,
			"--initial-cluster=kubeenv="+peer, "--initial-cluster-state=new",
			// throwaway data: skip fsync (faster writes; nothing to recover after a crash)
			"--unsafe-no-fsync",
			"--log-level=warn",
		)
		if err != nil {
			return err
		}
		hc := &http.Client{Timeout: 2 * time.Second}
		err = p.waitReady(ctx, func() bool {
			resp, err := hc.Get(client + "/health")
			if err != nil {
				return false
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK && bytes.Contains(body, []byte(`"health":"true"`))
		})
		if err == nil {
			e.EtcdURL = client
			return nil
		}
		if !errors.Is(err, errPortInUse) || attempt == portAttempts {
			return err
		}
		e.procs = e.procs[:len(e.procs)-1]
	}
}

func (e *Env) startAPIServer(ctx context.Context, bin string, o *options) error {
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		args := []string{
			"--etcd-servers=" + e.EtcdURL,
			"--bind-address=127.0.0.1",
			"--advertise-address=127.0.0.1",
			"--secure-port=" + strconv.Itoa(port),
			"--tls-cert-file=" + e.pki.servingCert,
			"--tls-private-key-file=" + e.pki.servKey,
			"--client-ca-file=" + e.pki.caCert,
			"--token-auth-file=" + e.pki.tokenFile,
			"--authorization-mode=Node,RBAC",
			"--enable-admission-plugins=NodeRestriction",
			// No token controller runs: the ServiceAccount plugin would refuse
			// every Pod of a namespace without a "default" ServiceAccount.
			"--disable-admission-plugins=ServiceAccount",
			"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
			"--service-account-key-file=" + e.pki.saPub,
			"--service-account-signing-key-file=" + e.pki.saKey,
			"--service-cluster-ip-range=" + strings.Join(o.serviceCIDRs, ","),
			// The "kubernetes" Service keeps no endpoints: a loopback address
			// is not a valid endpoint, and nothing here could reach it anyway.
			"--endpoint-reconciler-type=none",
			"--allow-privileged=true",
			"--profiling=false",
			"--v=1",
		}
		args = append(args, o.apiserverArgs...)
		p, err := e.run("kube-apiserver", bin, args...)
		if err != nil {
			return err
		}
		host := fmt.Sprintf("https://127.0.0.1:%d", port)
		hc, err := e.httpClient()
		if err != nil {
			return err
		}
		err = p.waitReady(ctx, func() bool {
			req, _ := http.NewRequest(http.MethodGet, host+"/readyz", nil)
			req.Header.Set("Authorization", "Bearer "+e.pki.adminToken)
			resp, err := hc.Do(req)
			if err != nil {
				return false
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
		if err == nil {
			e.APIServerArgs = args
			e.Config = &rest.Config{
				Host:            host,
				BearerToken:     e.pki.adminToken,
				TLSClientConfig: rest.TLSClientConfig{CAData: e.pki.caPEM},
				QPS:             200,
				Burst:           400,
			}
			return nil
		}
		if !errors.Is(err, errPortInUse) || attempt == portAttempts {
			return err
		}
		e.procs = e.procs[:len(e.procs)-1]
	}
}

func (e *Env) httpClient() (*http.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(e.pki.caPEM) {
		return nil, errors.New("kubeenv: bad CA PEM")
	}
	return &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}, nil
}

func (e *Env) makeClients() error {
	var err error
	if e.Client, err = kubernetes.NewForConfig(e.Config); err != nil {
		return err
	}
	if e.Dynamic, err = dynamic.NewForConfig(e.Config); err != nil {
		return err
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["kubeenv"] = &clientcmdapi.Cluster{Server: e.Config.Host, CertificateAuthorityData: e.pki.caPEM}
	kc.AuthInfos[AdminUser] = &clientcmdapi.AuthInfo{Token: e.pki.adminToken}
	kc.Contexts["kubeenv"] = &clientcmdapi.Context{Cluster: "kubeenv", AuthInfo: AdminUser, Namespace: "default"}
	kc.CurrentContext = "kubeenv"
	e.Kubeconfig = filepath.Join(e.Dir, "kubeconfig")
	return clientcmd.WriteToFile(*kc, e.Kubeconfig)
}

// Stop kills kube-apiserver and etcd (SIGTERM, SIGKILL after 10s) and
// removes Dir unless VECNET_KUBEENV_KEEP=1. Safe to call more than once.
func (e *Env) Stop() {
	e.stopOnce.Do(func() {
		e.stopped.Store(true)
		for i := len(e.procs) - 1; i >= 0; i-- { // apiserver before etcd
			e.procs[i].stop(10 * time.Second)
		}
		if os.Getenv(EnvKeep) == "1" {
			os.Remove(filepath.Join(e.Dir, ownerFile)) // not stale: removeStaleDirs leaves it alone
			fmt.Fprintf(os.Stderr, "kubeenv: %s=1: keeping %s\n", EnvKeep, e.Dir)
			return
		}
		os.RemoveAll(e.Dir)
	})
}

// ---- processes ----

type process struct {
	name, log string
	cmd       *exec.Cmd
	done      chan struct{} // closed when the process has exited and been reaped
	exitErr   error
}

var errPortInUse = errors.New("port in use")

// run starts bin with its output in Dir/<name>.log.
func (e *Env) run(name, bin string, args ...string) (*process, error) {
	logPath := filepath.Join(e.Dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fmt.Fprintf(f, "=== %s %s\n", bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Dir = e.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true,            // a terminal's ^C goes to the test binary only...
		Pdeathsig: syscall.SIGKILL, // ...and its death (however it happens) kills this process
	}
	if err := spawn(cmd); err != nil {
		return nil, fmt.Errorf("kubeenv: starting %s: %w", name, err)
	}
	p := &process{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() { p.exitErr = cmd.Wait(); close(p.done) }()
	e.procs = append(e.procs, p)
	return p, nil
}

// waitReady polls ready every 100ms until it is true, the process exits or
// ctx ends.
func (p *process) waitReady(ctx context.Context, ready func() bool) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if ready() {
			return nil
		}
		select {
		case <-p.done:
			log, _ := os.ReadFile(p.log)
			if bytes.Contains(log, []byte("address already in use")) {
				return fmt.Errorf("kubeenv: %s: %w", p.name, errPortInUse)
			}
			return fmt.Errorf("kubeenv: %s exited during start-up: %v", p.name, p.exitErr)
		case <-ctx.Done():
			p.stop(5 * time.Second)
			return fmt.Errorf("kubeenv: %s not ready: %w", p.name, ctx.Err())
		case <-tick.C:
		}
	}
}

// stop signals the process by its PID: SIGTERM, then SIGKILL after grace.
func (p *process) stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// Pdeathsig fires when the *thread* that forked the child exits, not the
// process; Go may retire threads. All children are therefore forked from one
// goroutine locked to its thread for the life of the test binary.
var (
	spawnOnce sync.Once
	spawnReqs = make(chan spawnReq)
)

type spawnReq struct {
	cmd *exec.Cmd
	res chan error
}

func spawn(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as the process
			for r := range spawnReqs {
				r.res <- r.cmd.Start()
			}
		}()
	})
	res := make(chan error, 1)
	spawnReqs <- spawnReq{cmd, res}
	return <-res
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ---- logs ----

// logOffsets returns the current size of each log file.
func (e *Env) logOffsets() map[string]int64 {
	m := map[string]int64{}
	for _, p := range e.procs {
		if st, err := os.Stat(p.log); err == nil {
			m[p.log] = st.Size()
		}
	}
	return m
}

// logsSince returns, for each log, at most the last n lines written after
// the offsets (from the start when offsets is nil).
func (e *Env) logsSince(offsets map[string]int64, n int) string {
	var b strings.Builder
	seen := map[string]bool{}
	for _, p := range e.procs {
		if seen[p.log] {
			continue
		}
		seen[p.log] = true
		data, err := os.ReadFile(p.log)
		if err != nil {
			continue
		}
		if off := offsets[p.log]; off > 0 && off <= int64(len(data)) {
			data = data[off:]
		}
		if len(bytes.TrimSpace(data)) == 0 {
			fmt.Fprintf(&b, "----- %s: nothing new -----\n", p.log)
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		fmt.Fprintf(&b, "----- last %d lines of %s -----\n%s\n", len(lines), p.log, strings.Join(lines, "\n"))
	}
	return b.String()
}

// ---- leftovers of killed test binaries ----

const (
	dirPrefix = "vecnet-kubeenv-"
	ownerFile = "owner.pid"
)

// removeStaleDirs removes env directories whose test binary is gone (killed
// before it could clean up; its etcd and apiserver died with it).
func removeStaleDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, d := range dirs {
		st, err := os.Stat(d)
		if err != nil || !st.IsDir() || time.Since(st.ModTime()) < time.Minute {
			continue
		}
		b, err := os.ReadFile(filepath.Join(d, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(d)
		}
	}
}
