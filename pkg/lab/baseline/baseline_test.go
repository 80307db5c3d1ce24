package baseline

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

func requireLab(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	for _, tool := range []string{"ip", "bridge", "ss", "ping", "sysctl", "iperf3"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
}

// testPrefix is unique per test so parallel runs and other users of the
// machine never see each other's namespaces; a failing test still deletes
// its own.
func testPrefix(t *testing.T) string {
	p := "vnbt" + unique() + "-"
	t.Cleanup(func() {
		if err := DeleteByPrefix(p); err != nil {
			t.Errorf("DeleteByPrefix(%q) at test end: %v", p, err)
		}
	})
	return p
}

func netnsWithPrefix(t *testing.T, prefix string) []string {
	t.Helper()
	names, err := listNetns(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			got = append(got, n)
		}
	}
	return got
}

// checkPath pings and measures p for one second, then runs cleanup and
// checks that no namespace of the prefix is left.
func checkPath(t *testing.T, prefix string, p *Path, cleanup func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if got := netnsWithPrefix(t, prefix); len(got) == 0 {
		t.Fatalf("no netns named %s* after build", prefix)
	}
	if ok, out := Ping(ctx, p.Client, p.ServerAddr); !ok {
		t.Fatalf("ping %s from %s: %s", p.ServerAddr, p.Client, out)
	}
	if out, err := run(ctx, "ip", "-n", p.Client, "addr", "show", "dev", "eth0"); err != nil || !strings.Contains(out, " "+p.ClientAddr+"/32 ") {
		t.Errorf("client netns %s: eth0 does not have ClientAddr %s/32: %v\n%s", p.Client, p.ClientAddr, err, out)
	}
	bps, err := Iperf3(ctx, p.Client, p.Server, p.ServerAddr, 1)
	if err != nil {
		t.Fatal(err)
	}
	if bps <= 0 {
		t.Fatalf("Iperf3 = %v bits/s", bps)
	}
	t.Logf("%s: %.2f Gbit/s", p.Name, bps/1e9)
	if out, _ := exec.Command("ip", "netns", "pids", p.Server).Output(); strings.TrimSpace(string(out)) != "" {
		t.Errorf("processes left in server netns %s after Iperf3: %s", p.Server, out)
	}
	if err := cleanup(); err != nil {
		t.Fatalf("cleanup: %v", err)
	}
	if err := cleanup(); err != nil {
		t.Fatalf("second cleanup: %v", err)
	}
	if got := netnsWithPrefix(t, prefix); len(got) != 0 {
		t.Fatalf("netns left after cleanup: %v", got)
	}
}

func TestSameNode(t *testing.T) {
	requireLab(t)
	prefix := testPrefix(t)
	p, cleanup, err := SameNode(context.Background(), Options{Prefix: prefix, Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	checkPath(t, prefix, p, cleanup)
}

func TestCrossNodeVXLAN(t *testing.T) {
	requireLab(t)
	prefix := testPrefix(t)
	p, cleanup, err := CrossNodeVXLAN(context.Background(), Options{Prefix: prefix, PodMTU: 1450, Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	checkPath(t, prefix, p, cleanup)
}

// TestIperf3Fails checks that a path that cannot carry the test gives an
// error naming the command, and still kills the server.
func TestIperf3Fails(t *testing.T) {
	requireLab(t)
	prefix := testPrefix(t)
	p, cleanup, err := SameNode(context.Background(), Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cleanup() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The node has no route to 10.250.0.9 (nor a default route).
	_, err = Iperf3(ctx, p.Client, p.Server, "10.250.0.9", 1)
	if err == nil || !strings.Contains(err.Error(), "iperf3 -J -c 10.250.0.9") {
		t.Fatalf("Iperf3 to a dead address: err = %v, want one naming the client command", err)
	}
	t.Logf("expected error: %v", err)
	if out, _ := exec.Command("ip", "netns", "pids", p.Server).Output(); strings.TrimSpace(string(out)) != "" {
		t.Errorf("iperf3 server left in %s after a failed run: %s", p.Server, out)
	}
}

func TestDeleteByPrefix(t *testing.T) {
	requireLab(t)
	prefix := testPrefix(t)
	p, _, err := SameNode(context.Background(), Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	// A crashed lab leaves a server behind; it must not keep the
	// namespace alive.
	srv := exec.Command("ip", "netns", "exec", p.Server, "iperf3", "-s", "-p", "5299")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	defer func() { _ = srv.Process.Kill() }()
	// Until `ip netns exec` has entered the namespace, nothing finds the
	// server there (on a loaded machine that takes a while).
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		out, _ := exec.Command("ip", "netns", "pids", p.Server).Output()
		if strings.Contains(" "+strings.Join(strings.Fields(string(out)), " ")+" ", fmt.Sprintf(" %d ", srv.Process.Pid)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server (pid %d) is not in %s after 5s: %q", srv.Process.Pid, p.Server, out)
		}
	}

	if err := DeleteByPrefix(prefix); err != nil {
		t.Fatal(err)
	}
	if got := netnsWithPrefix(t, prefix); len(got) != 0 {
		t.Fatalf("netns left after DeleteByPrefix: %v", got)
	}
	select {
	case err := <-exited:
		if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Errorf("server in the namespace ended with %v, want SIGKILL", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("server in the namespace still running after DeleteByPrefix")
	}
}

func TestBadPrefix(t *testing.T) {
	for _, p := range []string{"", "a/b", ".x", "a b"} {
		if err := DeleteByPrefix(p); err == nil {
			t.Errorf("DeleteByPrefix(%q) = nil, want an error", p)
		}
		if _, _, err := SameNode(context.Background(), Options{Prefix: p}); err == nil {
			t.Errorf("SameNode with prefix %q: no error", p)
		}
	}
}

// TestCancelled checks that a build stopped by its context reports that and
// leaves nothing behind.
func TestCancelled(t *testing.T) {
	requireLab(t)
	prefix := testPrefix(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, _, err := CrossNodeVXLAN(ctx, Options{Prefix: prefix})
	if err == nil {
		t.Skip("build finished within 30ms; nothing to cancel")
	}
	t.Logf("expected error: %v", err)
	if !strings.Contains(err.Error(), "deadline exceeded") {
		t.Errorf("error %q does not say the context ended", err)
	}
	if got := netnsWithPrefix(t, prefix); len(got) != 0 {
		t.Fatalf("netns left after a cancelled build: %v", got)
	}
}
