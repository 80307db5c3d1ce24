// Package netlab builds throwaway network labs for end-to-end tests: network
// namespaces, veth links, a vecnetd process, and commands run inside
// namespaces. Everything a test creates is registered with t.Cleanup, so a
// failing or panicking test leaves no namespace, link or process behind.
//
// Tests using it need root; Require skips them otherwise.
package netlab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Require skips t unless it runs as root with the tools it needs.
func Require(t testing.TB, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	for _, tool := range append([]string{"ip"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (run hack/deps.sh)", tool)
		}
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skip("needs /dev/net/tun")
	}
}

// Unique returns a short random suffix so parallel tests and leftovers of a
// killed run never collide on names.
func Unique() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Netns creates a namespace named prefix-<unique> with lo up and returns its
// name. It is deleted when the test ends.
func Netns(t testing.TB, prefix string) string {
	t.Helper()
	name := prefix + "-" + Unique()
	MustRun(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		// Processes still inside keep the namespace alive; kill them.
		if out, err := exec.Command("ip", "netns", "pids", name).Output(); err == nil {
			for _, pid := range strings.Fields(string(out)) {
				_ = exec.Command("kill", "-9", pid).Run()
			}
		}
		_ = exec.Command("ip", "netns", "del", name).Run()
	})
	MustRun(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// Run runs a command and returns its combined output.
func Run(name string, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// MustRun runs a command and fails the test if it fails.
func MustRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := Run(name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// InNetns runs a command inside namespace ns.
func InNetns(ns string, name string, args ...string) (string, error) {
	return Run("ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// Background starts a command in ns and kills it when the test ends.
func Background(t testing.TB, ns string, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s in %s: %v", name, ns, err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	return cmd
}

var buildOnce sync.Map // dir -> *buildResult

type buildResult struct {
	once sync.Once
	dir  string
	err  error
}

// Binaries builds vecnet's commands (vecnetd, vecnetctl, vecnet-agent and
// the vecnet CNI plugin) once per test binary and returns their directory.
func Binaries(t testing.TB) string {
	t.Helper()
	if dir := os.Getenv("VECNET_BIN"); dir != "" {
		return dir // prebuilt (make build), e.g. to benchmark a given build
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	v, _ := buildOnce.LoadOrStore(root, &buildResult{})
	br := v.(*buildResult)
	br.once.Do(func() {
		br.dir, br.err = os.MkdirTemp("", "vecnet-bin-")
		if br.err != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", br.dir+"/", "./cmd/...")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			br.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if br.err != nil {
		t.Fatal(br.err)
	}
	return br.dir
}

// Vecnetd is a vecnetd process started for a test.
type Vecnetd struct {
	Socket string
	Bin    string
	cmd    *exec.Cmd
	log    SyncBuffer
	exited chan struct{}
}

// StartVecnetd starts vecnetd with extra flags and waits for its socket. It
// is stopped (SIGTERM, then SIGKILL) when the test ends.
func StartVecnetd(t testing.TB, flags ...string) *Vecnetd {
	t.Helper()
	return StartVecnetdAt(t, filepath.Join(t.TempDir(), "vecnetd.sock"), flags...)
}

// StartVecnetdAt is StartVecnetd on a given socket path, e.g. to restart
// vecnetd where its clients expect it.
func StartVecnetdAt(t testing.TB, socket string, flags ...string) *Vecnetd {
	t.Helper()
	return startVecnetd(t, "", socket, flags...)
}

// StartVecnetdIn starts vecnetd inside network namespace ns, as on a node
// whose host network is ns.
func StartVecnetdIn(t testing.TB, ns string, flags ...string) *Vecnetd {
	t.Helper()
	return startVecnetd(t, ns, filepath.Join(t.TempDir(), "vecnetd.sock"), flags...)
}

func startVecnetd(t testing.TB, ns, socket string, flags ...string) *Vecnetd {
	t.Helper()
	bin := Binaries(t)
	v := &Vecnetd{Socket: socket, Bin: bin, exited: make(chan struct{})}
	args := append([]string{"--socket", v.Socket}, flags...)
	if ns == "" {
		// Tests never make devices in the machine's own namespace: no
		// host tun there (and no clash between parallel vecnetds).
		args = append([]string{"--host-interface="}, args...)
		v.cmd = exec.Command(filepath.Join(bin, "vecnetd"), args...)
	} else {
		// ip netns exec execs vecnetd in place: the pid is vecnetd's.
		v.cmd = exec.Command("ip", append([]string{"netns", "exec", ns, filepath.Join(bin, "vecnetd")}, args...)...)
	}
	v.cmd.Stdout, v.cmd.Stderr = &v.log, &v.log
	if err := v.cmd.Start(); err != nil {
		t.Fatalf("start vecnetd: %v", err)
	}
	go func() { _ = v.cmd.Wait(); close(v.exited) }()
	t.Cleanup(func() {
		v.Stop(5 * time.Second)
		if t.Failed() {
			t.Logf("vecnetd log:\n%s", v.Log())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(v.Socket); err == nil {
			return v
		}
		select {
		case <-v.exited:
			t.Fatalf("vecnetd exited at start:\n%s", v.Log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("vecnetd socket did not appear:\n%s", v.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SyncBuffer is a buffer that a process can write to (its Stdout and
// Stderr) while the test reads it: Write and String are safe for
// concurrent use. The zero value is empty and ready.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Log returns what vecnetd printed so far.
func (v *Vecnetd) Log() string { return v.log.String() }

// Stop sends SIGTERM and waits up to grace before SIGKILL. It reports
// whether the process exited by itself.
func (v *Vecnetd) Stop(grace time.Duration) bool {
	select {
	case <-v.exited:
		return true
	default:
	}
	_ = v.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-v.exited:
		return true
	case <-time.After(grace):
		_ = v.cmd.Process.Kill()
		<-v.exited
		return false
	}
}

// ExitCode returns the exit code after Stop.
func (v *Vecnetd) ExitCode() int { return v.cmd.ProcessState.ExitCode() }

// Ctl runs vecnetctl against this vecnetd.
func (v *Vecnetd) Ctl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(v.Bin, "vecnetctl"), append([]string{"--socket", v.Socket}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// MustCtl runs vecnetctl and fails the test on error.
func (v *Vecnetd) MustCtl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := v.Ctl(args...)
	if err != nil {
		t.Fatalf("vecnetctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}
