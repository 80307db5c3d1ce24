package lab

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ourExecutables are the programs the lab starts outside pod namespaces.
// A process is only ever killed as a leftover if it runs one of these AND
// its command line refers to the lab's state directory: a user's
// `tail -f .../agent.log` or editor is left alone, and so is a process
// that got a recycled pid.
var ourExecutables = map[string]bool{
	"etcd": true, "kube-apiserver": true, "kube-controller-manager": true,
	"vecnetd": true, "vecnet-agent": true, "vecnet-lab": true,
}

// procInfo is what /proc says about a process.
type procInfo struct {
	pid  int
	exe  string   // base name of /proc/pid/exe ("" if unreadable)
	args []string // command line
}

func readProc(pid int) (procInfo, bool) {
	p := procInfo{pid: pid}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || len(b) == 0 { // gone, or a zombie / kernel thread
		return p, false
	}
	p.args = strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	if exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe"); err == nil {
		p.exe = filepath.Base(strings.TrimSuffix(exe, " (deleted)"))
	} else if len(p.args) > 0 {
		p.exe = filepath.Base(p.args[0])
	}
	return p, true
}

// refersTo reports whether one of the arguments is dir or a path under it
// (also as the value of --flag=value).
func (p procInfo) refersTo(dir string) bool {
	for _, a := range p.args {
		if strings.HasPrefix(a, "-") {
			if _, v, ok := strings.Cut(a, "="); ok {
				a = v
			}
		}
		if a == dir || strings.HasPrefix(a, dir+"/") {
			return true
		}
	}
	return false
}

// isLabProcess reports whether p is one of the lab's daemons of stateDir.
func (p procInfo) isLabProcess(stateDir string) bool {
	if !ourExecutables[p.exe] || !p.refersTo(stateDir) {
		return false
	}
	if p.exe == "vecnet-lab" {
		// Only the supervisor: not `vecnet-lab down` (this very
		// command) or a user's `vecnet-lab exec` / `kubectl`.
		return contains(p.args, "serve")
	}
	return true
}

// labProcesses finds the lab's processes of stateDir: those of its pid
// files and any other one /proc shows (started by a supervisor that died
// before writing its pid file). Never this process or its parents.
func labProcesses(stateDir string) []procInfo {
	skip := map[int]bool{os.Getpid(): true, os.Getppid(): true}
	seen := map[int]bool{}
	var out []procInfo
	add := func(pid int) {
		if pid <= 1 || seen[pid] || skip[pid] {
			return
		}
		seen[pid] = true
		if p, ok := readProc(pid); ok && p.isLabProcess(stateDir) {
			out = append(out, p)
		}
	}
	l := layout{stateDir}
	add(readPid(l.servePid()))
	files, _ := filepath.Glob(filepath.Join(l.pids(), "*.pid"))
	for _, f := range files {
		add(readPid(f))
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			add(pid)
		}
	}
	return out
}

// supervisorPid returns the pid of the running supervisor of stateDir, or 0.
func supervisorPid(stateDir string) int {
	pid := readPid(layout{stateDir}.servePid())
	if pid <= 1 {
		return 0
	}
	p, ok := readProc(pid)
	if !ok || !contains(p.args, "serve") || !p.refersTo(stateDir) || !ourExecutables[p.exe] {
		return 0
	}
	return pid
}

func readPid(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b)))
	if err != nil {
		return 0
	}
	return pid
}

func writePid(path string, pid int) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(strconv.Itoa(pid)+"\n"), 0o644)
}

// alive reports whether pid exists (and is not a zombie).
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) && b[i+2] == 'Z' {
		return false
	}
	return true
}

// waitGone waits until none of pids exists, up to d; it reports whether
// they all went.
func waitGone(pids []int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		left := false
		for _, pid := range pids {
			if alive(pid) {
				left = true
			}
		}
		if !left {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}
