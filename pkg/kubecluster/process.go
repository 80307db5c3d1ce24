package kubecluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is a child process with its output in a log file.
type Process struct {
	Name string
	// Log is the file that receives the process's stdout and stderr.
	Log     string
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited and been reaped
	exitErr error
}

// ErrPortInUse is returned by WaitReady when the process exited because its
// port was taken (its log says "address already in use").
var ErrPortInUse = errors.New("port in use")

// StartProcess starts argv (argv[0] a path) in dir with stdout and stderr
// appended to logPath, in a process group of its own (a terminal's ^C goes
// to the caller only, which then stops its children in order), and with
// SIGKILL as its parent-death signal: if the caller dies, however it dies,
// the process dies too instead of living on unowned.
func StartProcess(name string, argv []string, logPath, dir string) (*Process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fmt.Fprintf(f, "=== %s %s\n", time.Now().Format(time.RFC3339), strings.Join(argv, " "))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := spawn(cmd); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Process{Name: name, Log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() { p.exitErr = cmd.Wait(); close(p.done) }()
	return p, nil
}

// Pid is the process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is how the process exited (valid once Done is closed).
func (p *Process) Err() error {
	select {
	case <-p.done:
		return p.exitErr
	default:
		return nil
	}
}

// Alive reports whether the process is still running.
func (p *Process) Alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// WaitReady polls ready every 100ms until it is true, the process exits or
// ctx ends (then the process is stopped).
func (p *Process) WaitReady(ctx context.Context, ready func() bool) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if ready() {
			return nil
		}
		select {
		case <-p.done:
			log, _ := os.ReadFile(p.Log)
			if bytes.Contains(log, []byte("address already in use")) {
				return fmt.Errorf("%s: %w", p.Name, ErrPortInUse)
			}
			return fmt.Errorf("%s exited during start-up: %v (log: %s)", p.Name, p.exitErr, p.Log)
		case <-ctx.Done():
			p.Stop(5 * time.Second)
			return fmt.Errorf("%s not ready: %w (log: %s)", p.Name, ctx.Err(), p.Log)
		case <-tick.C:
		}
	}
}

// Stop signals the process by its PID: SIGTERM, then SIGKILL after grace.
// It returns once the process has exited.
func (p *Process) Stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Pdeathsig fires when the *thread* that forked the child exits, not the
// process; Go may retire threads. All children are therefore forked from one
// goroutine locked to its thread for the life of the process.
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
