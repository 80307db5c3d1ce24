package kubeenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vecnet/vecnet/pkg/kubecluster"
)

// KubeVersion is the Kubernetes release that hack/kube-build.sh builds (the
// k8s.io/kubernetes version in hack/tools/kube/go.mod). It names the default
// binary directory.
const KubeVersion = kubecluster.KubeVersion

// AdminUser is the user of Env.Config: a static token in group system:masters.
const AdminUser = kubecluster.AdminUser

// DefaultServiceCIDRs are the service cluster IP ranges (--service-cluster-ip-range).
var DefaultServiceCIDRs = kubecluster.DefaultServiceCIDRs

// Environment variables read by this package.
const (
	EnvBin     = kubecluster.EnvBin    // directory with kube-apiserver and etcd
	EnvDir     = kubecluster.EnvDir    // cache root of hack/kube-build.sh (default /var/tmp/vecnet-kube)
	EnvRequire = "VECNET_REQUIRE_KUBE" // "1": missing binaries fail tests instead of skipping them
	EnvKeep    = "VECNET_KUBEENV_KEEP" // "1": keep the env directory (logs, keys, kubeconfig)
)

// Env is a running etcd + kube-apiserver: a kubecluster.Cluster (Config,
// Client, Dynamic, Kubeconfig, Dir, EtcdURL, APIServerArgs) owned by a
// test binary. Dir holds logs, keys, the kubeconfig and etcd's data; Stop
// removes it unless VECNET_KUBEENV_KEEP=1.
type Env struct {
	*kubecluster.Cluster

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
func BinDir() string { return kubecluster.BinDir() }

// errMissing reports binaries that are not there: tests skip (or fail with
// VECNET_REQUIRE_KUBE=1) instead of erroring.
type errMissing = kubecluster.MissingError

// skipOrFail ends t for a start-up error: skip for missing binaries (fail
// when VECNET_REQUIRE_KUBE=1), fail otherwise.
func skipOrFail(t testing.TB, err error) {
	t.Helper()
	var m *errMissing
	if errors.As(err, &m) {
		if os.Getenv(EnvRequire) != "1" {
			t.Skip("kubeenv: " + err.Error())
		}
		t.Fatal("kubeenv: " + err.Error() + " (failing, not skipping: " + EnvRequire + "=1)")
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

func start(opts ...Option) (*Env, error) {
	o := options{serviceCIDRs: DefaultServiceCIDRs, startTimeout: 2 * time.Minute}
	for _, f := range opts {
		f(&o)
	}
	// Before making a directory: missing binaries skip the test, and
	// leave nothing behind.
	if _, err := kubecluster.FindBinaries(BinDir(), kubecluster.APIServer, kubecluster.Etcd); err != nil {
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
	c, err := kubecluster.Start(context.Background(), kubecluster.Options{
		Dir:           dir,
		BinDir:        BinDir(),
		Name:          "kubeenv",
		ServiceCIDRs:  o.serviceCIDRs,
		APIServerArgs: o.apiserverArgs,
		StartTimeout:  o.startTimeout,
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("kubeenv: %w", err)
	}
	return &Env{Cluster: c}, nil
}

// Stop kills kube-apiserver and etcd (SIGTERM, SIGKILL after 10s) and
// removes Dir unless VECNET_KUBEENV_KEEP=1. Safe to call more than once.
func (e *Env) Stop() {
	e.stopOnce.Do(func() {
		e.stopped.Store(true)
		e.Cluster.Stop()
		if os.Getenv(EnvKeep) == "1" {
			os.Remove(filepath.Join(e.Dir, ownerFile)) // not stale: removeStaleDirs leaves it alone
			fmt.Fprintf(os.Stderr, "kubeenv: %s=1: keeping %s\n", EnvKeep, e.Dir)
			return
		}
		os.RemoveAll(e.Dir)
	})
}

// pids returns the process IDs of etcd and kube-apiserver.
func (e *Env) pids() []int { return e.Cluster.PIDs() }

func (e *Env) logOffsets() map[string]int64 { return e.Cluster.LogOffsets() }

func (e *Env) logsSince(offsets map[string]int64, n int) string {
	return e.Cluster.LogsSince(offsets, n)
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
