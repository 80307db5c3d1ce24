package kubelet

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/types"
)

// NetnsDir is where named network namespaces live (what `ip netns` uses).
const NetnsDir = "/var/run/netns"

// NetnsName is the name of a pod's network namespace: prefix and the first
// 12 characters of the pod's UID. The lab CLI uses it to find a pod's
// namespace (`ip netns exec NAME ...`) from the pod object alone.
func NetnsName(prefix string, uid types.UID) string {
	s := string(uid)
	if len(s) > 12 {
		s = s[:12]
	}
	return prefix + s
}

// NetnsPath is the bind mount of the named namespace.
func NetnsPath(name string) string { return filepath.Join(NetnsDir, name) }

// netnsMu serialises `ip netns add`: the first one makes /var/run/netns a
// shared mount point, and two doing it at once can stack mounts.
var netnsMu sync.Mutex

// createNetns makes the named namespace with lo up. It is made with `ip`
// rather than by unsharing a thread of this process so that the mount
// propagation of /var/run/netns is the same as for namespaces made by hand.
func createNetns(ipBin, name string) error {
	netnsMu.Lock()
	defer netnsMu.Unlock()
	if out, err := exec.Command(ipBin, "netns", "add", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns add %s: %v: %s", name, err, bytes.TrimSpace(out))
	}
	if out, err := exec.Command(ipBin, "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		_ = deleteNetns(name)
		return fmt.Errorf("ip -n %s link set lo up: %v: %s", name, err, bytes.TrimSpace(out))
	}
	return nil
}

// netnsExists tells whether the named namespace's bind mount is there.
func netnsExists(name string) bool {
	_, err := os.Stat(NetnsPath(name))
	return err == nil
}

// deleteNetns unmounts and removes the named namespace, as `ip netns del`
// does; a missing one is no error. The namespace itself lives on while a
// process is in it, so callers kill those first (killNetnsPids).
func deleteNetns(name string) error {
	p := NetnsPath(name)
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", p, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	return nil
}

// netnsPids lists the processes whose network namespace is the named one
// (what `ip netns pids` prints), by comparing /proc/<pid>/ns/net with the
// namespace's bind mount.
func netnsPids(name string) ([]int, error) {
	var want syscall.Stat_t
	if err := syscall.Stat(NetnsPath(name), &want); err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return nil, nil
		}
		return nil, err
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat("/proc/"+e.Name()+"/ns/net", &st) != nil {
			continue // exited, or a kernel thread
		}
		if st.Dev == want.Dev && st.Ino == want.Ino {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// killNetnsPids SIGKILLs every process in the named namespace and waits up
// to wait for them to be gone. It is the lab's stand-in for killing a
// container's cgroup: it also gets processes that left their process group
// (daemons) and the ones a previous kubelet started.
func killNetnsPids(name string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		pids, err := netnsPids(name)
		if err != nil || len(pids) == 0 {
			return err
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v still in netns %s after SIGKILL", pids, name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
