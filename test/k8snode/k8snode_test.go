// Package k8snode runs vecnet as the only CNI of a real single-node
// Kubernetes (containerd, kubelet, kube-proxy, kube-apiserver) on this
// machine: hack/k8s-node/test.sh, which brings the node up, runs the smoke
// checks and takes everything down again.
//
// It takes over the host's containerd socket, /etc/cni/net.d and
// /opt/cni/bin while it runs, so it runs only when asked:
//
//	VECNET_K8S_NODE=1 go test -v -timeout 40m ./test/k8snode/
//
// (cold: the Kubernetes binaries are built first, see hack/k8s-node/build.sh).
package k8snode

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// EnvRun enables the test.
const EnvRun = "VECNET_K8S_NODE"

func TestK8sNode(t *testing.T) {
	if os.Getenv(EnvRun) != "1" {
		t.Skipf("set %s=1 to run vecnet on a real Kubernetes node (root; takes over containerd and /etc/cni)", EnvRun)
	}
	if os.Geteuid() != 0 {
		t.Fatalf("%s=1 needs root", EnvRun)
	}
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "..", "hack", "k8s-node", "test.sh")

	// Stop a minute before go test's deadline: test.sh takes the node down
	// on SIGINT, which takes ~20 s.
	ctx := context.Background()
	if d, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-time.Minute))
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, "bash", script)
	// Like Ctrl-C in a terminal: SIGINT to the script's whole process group
	// (the step running now stops; the daemons run in sessions of their own).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGINT) }
	cmd.WaitDelay = 90 * time.Second
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); pw.Close() }()

	// Every line as it comes (go test -v streams t.Log); each failed
	// required check is a test error of its own.
	var required []string
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		t.Log(line)
		if strings.HasPrefix(line, "FAIL  ") && !strings.Contains(line, "[not required") {
			required = append(required, strings.TrimPrefix(line, "FAIL  "))
		}
	}
	err := <-done
	for _, r := range required {
		t.Errorf("required check failed: %s", r)
	}
	if err != nil {
		t.Fatalf("hack/k8s-node/test.sh: %v", err)
	}
}
