package baseline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Iperf3 ports are tried from 5201 (iperf3's default) on. The counter moves
// on at each call so that two measurements against the same namespace,
// e.g. a lab pod measured twice, do not race for one port.
const (
	iperfPortBase  = 5201
	iperfPortRange = 100
)

var iperfPortNext atomic.Uint32

// errPortTaken marks a server that could not listen because the port was
// taken between the check and its start; Iperf3 then tries another port.
var errPortTaken = errors.New("port taken")

// Iperf3 measures TCP throughput from clientNS to addr with one iperf3 run
// of seconds seconds and returns the receiver's bits per second (what
// arrived, not what was sent). It starts a one-off server (`iperf3 -s -1`)
// in serverNS on a port free there, waits until it listens, runs the client
// with -J in clientNS and parses its JSON. The server is killed on every
// path, including errors and a cancelled ctx, and both processes die with
// the calling process. args are extra client flags (e.g. "-P", "4", or
// "-O", "1" to omit the first second).
func Iperf3(ctx context.Context, clientNS, serverNS, addr string, seconds int, args ...string) (float64, error) {
	if seconds < 1 {
		return 0, fmt.Errorf("iperf3: duration %d s: need at least 1", seconds)
	}
	if _, err := exec.LookPath("iperf3"); err != nil {
		return 0, fmt.Errorf("iperf3: not installed: %w", err)
	}
	var err error
	for range 3 {
		var bps float64
		bps, err = iperf3Once(ctx, clientNS, serverNS, addr, seconds, args)
		if !errors.Is(err, errPortTaken) {
			return bps, err
		}
	}
	return 0, err
}

func iperf3Once(ctx context.Context, clientNS, serverNS, addr string, seconds int, args []string) (float64, error) {
	port, err := freePort(ctx, serverNS)
	if err != nil {
		return 0, err
	}
	p := strconv.Itoa(port)

	var srvOut bytes.Buffer
	srv := exec.Command("ip", "netns", "exec", serverNS, "iperf3", "-s", "-1", "-p", p)
	srv.Stdout, srv.Stderr = &srvOut, &srvOut
	// Own process group: `ip netns exec` execs iperf3 in place, but a
	// group kill also covers any child. Pdeathsig: a crashed lab must not
	// leave a server behind in a namespace DeleteByPrefix does not own.
	srv.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := srv.Start(); err != nil {
		return 0, fmt.Errorf("iperf3: start server in netns %s: %w", serverNS, err)
	}
	exited := make(chan struct{})
	go func() { _ = srv.Wait(); close(exited) }()
	// Signal only a server not yet reaped: once reaped, its group id may
	// belong to someone else.
	stop := sync.OnceFunc(func() {
		select {
		case <-exited:
		default:
			_ = syscall.Kill(-srv.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	defer stop()
	server := func() string { // only after <-exited: srvOut is then complete
		return strings.TrimSpace(srvOut.String())
	}

	if err := waitListening(ctx, serverNS, port, exited); err != nil {
		if errors.Is(err, errServerExited) {
			out := server()
			if strings.Contains(out, "in use") {
				return 0, fmt.Errorf("iperf3 server in netns %s on port %d: %w: %s", serverNS, port, errPortTaken, out)
			}
			return 0, fmt.Errorf("iperf3 server in netns %s on port %d exited at start: %s", serverNS, port, out)
		}
		return 0, err
	}

	bps, err := Client(ctx, clientNS, addr, port, seconds, args...)
	if err == nil {
		return bps, nil
	}
	stop()
	if so := server(); so != "" {
		return 0, fmt.Errorf("%w (server said: %s)", err, so)
	}
	return 0, err
}

// Client runs one iperf3 client of seconds seconds in clientNS against a
// server already listening at addr:port (a lab pod's `iperf3 -s`, or the
// one Iperf3 starts) and returns the receiver's bits per second. extra are
// further client flags. Errors name the command and say what iperf3
// reported.
func Client(ctx context.Context, clientNS, addr string, port, seconds int, extra ...string) (float64, error) {
	// Bound the client: a path that drops everything would otherwise hang
	// in TCP retransmissions long after the test time.
	cctx, cancel := context.WithTimeout(ctx, time.Duration(seconds)*time.Second+20*time.Second)
	defer cancel()
	args := []string{"netns", "exec", clientNS, "iperf3", "-J", "-c", addr, "-p", strconv.Itoa(port), "-t", strconv.Itoa(seconds), "--connect-timeout", "3000"}
	args = append(args, extra...)
	var out bytes.Buffer
	cl := exec.CommandContext(cctx, "ip", args...)
	cl.Stdout, cl.Stderr = &out, &out
	cl.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	runErr := cl.Run()

	var res struct {
		Error string `json:"error"`
		End   struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	jerr := json.Unmarshal(out.Bytes(), &res)
	bps := res.End.SumReceived.BitsPerSecond
	if runErr == nil && jerr == nil && res.Error == "" && bps > 0 {
		return bps, nil
	}
	cmd := "ip " + strings.Join(args, " ")
	switch {
	case cctx.Err() != nil:
		return 0, fmt.Errorf("%s: %w (%v)", cmd, cctx.Err(), runErr)
	case res.Error != "":
		return 0, fmt.Errorf("%s: %s", cmd, res.Error)
	case jerr != nil:
		return 0, fmt.Errorf("%s: %v; output is not iperf3 JSON (%v):\n%s", cmd, runErr, jerr, strings.TrimSpace(out.String()))
	case runErr != nil:
		return 0, fmt.Errorf("%s: %w", cmd, runErr)
	default:
		return 0, fmt.Errorf("%s: no data received (0 bits/s)", cmd)
	}
}

// freePort returns a TCP port no socket in ns uses, from the iperf3 range.
func freePort(ctx context.Context, ns string) (int, error) {
	out, err := run(ctx, "ss", "-N", ns, "-Htan")
	if err != nil {
		return 0, fmt.Errorf("iperf3: list TCP ports in netns %s: %w", ns, err)
	}
	used := map[int]bool{}
	for _, line := range strings.Split(out, "\n") {
		// State Recv-Q Send-Q Local:Port Peer:Port
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		local := f[3]
		if port, err := strconv.Atoi(local[strings.LastIndexByte(local, ':')+1:]); err == nil {
			used[port] = true
		}
	}
	start := int(iperfPortNext.Add(1) - 1)
	for i := range iperfPortRange {
		port := iperfPortBase + (start+i)%iperfPortRange
		if !used[port] {
			return port, nil
		}
	}
	return 0, fmt.Errorf("iperf3: no free port in %d..%d in netns %s", iperfPortBase, iperfPortBase+iperfPortRange-1, ns)
}

var errServerExited = errors.New("server exited")

// waitListening waits until a TCP socket in ns listens on port. Starting
// the client before that would fail with "unable to connect"; probing the
// server with a connection instead would use up the one-off server.
func waitListening(ctx context.Context, ns string, port int, exited <-chan struct{}) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-exited:
			return errServerExited
		default:
		}
		out, err := run(ctx, "ss", "-N", ns, "-Hltn", "sport = :"+strconv.Itoa(port))
		if err != nil {
			return fmt.Errorf("iperf3: wait for the server in netns %s: %w", ns, err)
		}
		if strings.TrimSpace(out) != "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("iperf3: server in netns %s not listening on port %d after 10s", ns, port)
		}
		select {
		case <-exited:
			return errServerExited
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Ping pings addr from ns (`ping -c 2 -i 0.2 -W 1`), trying once more on
// failure because the first packets of a fresh path may be lost to
// neighbour resolution. It returns ping's output, or on failure what each
// attempt printed.
func Ping(ctx context.Context, ns, addr string) (ok bool, out string) {
	var fails []string
	for range 2 {
		o, err := run(ctx, "ip", "netns", "exec", ns, "ping", "-c", "2", "-i", "0.2", "-W", "1", addr)
		if err == nil {
			return true, o
		}
		fails = append(fails, err.Error())
		if ctx.Err() != nil {
			break
		}
	}
	return false, strings.Join(fails, "\n")
}
