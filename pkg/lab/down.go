package lab

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/vecnet/vecnet/pkg/lab/baseline"
)

// netnsDir is where `ip netns` keeps named network namespaces.
const netnsDir = "/run/netns"

// labNetns lists the network namespaces whose name starts with prefix.
func labNetns(prefix string) []string {
	ents, _ := os.ReadDir(netnsDir)
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

// Down stops the lab of stateDir and removes everything it made, printing
// what it did to out. It works whatever state the lab is in (running,
// half started, its supervisor killed) and succeeds when there is nothing
// to do, so it can always be run again.
func Down(stateDir string, out io.Writer) error {
	t0 := time.Now()
	found, err := down(stateDir, out)
	if err != nil {
		return err
	}
	if !found {
		fmt.Fprintf(out, "no lab in %s: nothing to do\n", stateDir)
		return nil
	}
	fmt.Fprintf(out, "the lab in %s is down (%.1fs)\n", stateDir, time.Since(t0).Seconds())
	return nil
}

// down does Down's work; found reports whether there was anything to
// remove.
func down(stateDir string, out io.Writer) (found bool, err error) {
	prefix := Prefix(stateDir)
	_, statErr := os.Stat(stateDir)
	exists := statErr == nil
	if exists {
		if err := checkStateDir(stateDir); err != nil {
			return false, fmt.Errorf("%w; not touching it (was --state-dir mistyped?)", err)
		}
	}

	// 1. The supervisor takes the lab down in order: kubelets, agents,
	// vecnetd (which removes its interfaces), control plane, namespaces.
	if pid := supervisorPid(stateDir); pid != 0 {
		found = true
		fmt.Fprintf(out, "stopping the supervisor (pid %d) and everything it runs... ", pid)
		t0 := time.Now()
		_ = syscall.Kill(pid, syscall.SIGTERM)
		if waitGone([]int{pid}, 60*time.Second) {
			fmt.Fprintf(out, "ok (%.1fs)\n", time.Since(t0).Seconds())
		} else {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			waitGone([]int{pid}, 5*time.Second)
			fmt.Fprintln(out, "it did not stop in 60s: killed it")
		}
	}

	// 2. Whatever is left: a supervisor that crashed (its children die
	// with it, but a half-made node or a process started as it died may
	// remain), or one that did not stop.
	if procs := labProcesses(stateDir); len(procs) > 0 {
		found = true
		var pids []int
		var names []string
		for _, p := range procs {
			pids = append(pids, p.pid)
			names = append(names, fmt.Sprintf("%s (%d)", p.exe, p.pid))
			_ = syscall.Kill(p.pid, syscall.SIGTERM)
		}
		fmt.Fprintf(out, "stopping leftover processes: %s\n", strings.Join(names, ", "))
		if !waitGone(pids, 10*time.Second) {
			for _, pid := range pids {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			waitGone(pids, 5*time.Second)
		}
	}

	// 3. Network namespaces by name: nodes, underlay, pods, baselines,
	// with any process still inside them (pod commands, `vecnet-lab exec`
	// shells).
	var errs []error
	if ns := labNetns(prefix); len(ns) > 0 {
		found = true
		fmt.Fprintf(out, "deleting network namespaces: %s\n", strings.Join(ns, " "))
		if err := baseline.DeleteByPrefix(prefix); err != nil {
			errs = append(errs, err)
		}
		if left := labNetns(prefix); len(left) > 0 {
			errs = append(errs, fmt.Errorf("network namespaces left: %s (see `ip netns pids NAME`)", strings.Join(left, " ")))
		}
	}

	// 4. The state directory, only once nothing runs from it.
	if exists {
		found = true
		if err := os.RemoveAll(stateDir); err != nil {
			errs = append(errs, err)
		}
	}
	return found, errors.Join(errs...)
}
