package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vecnet/vecnet/pkg/kubecluster"
)

// Debian packages of the tools the lab runs, for the error that says what
// to install.
var toolPackages = map[string]string{
	"ip": "iproute2", "ss": "iproute2", "bridge": "iproute2", "sysctl": "procps",
	"ping": "iputils-ping", "iperf3": "iperf3",
}

// UpTools are the commands `up` needs; the demo needs DemoTools too.
var (
	UpTools   = []string{"ip", "sysctl"}
	DemoTools = []string{"ping", "iperf3", "ss"}
)

// vecnetBinaries are what the lab runs from Config.BinDir.
var vecnetBinaries = []string{"vecnetd", "vecnetctl", "vecnet-agent", "vecnet"}

// Preflight checks what the lab needs before anything is made, so that a
// missing piece is one clear message instead of a half-built lab: root,
// tools, /dev/net/tun, vecnet's binaries and the Kubernetes binaries.
func Preflight(cfg *Config, tools ...string) error {
	if os.Geteuid() != 0 {
		return errors.New("vecnet-lab must run as root: it creates network namespaces, tun devices and eBPF programs (try: sudo vecnet-lab ...)")
	}
	var errs []error
	var missing, pkgs []string
	for _, t := range append(append([]string{}, UpTools...), tools...) {
		if _, err := exec.LookPath(t); err != nil && !contains(missing, t) {
			missing = append(missing, t)
			if p := toolPackages[t]; p != "" && !contains(pkgs, p) {
				pkgs = append(pkgs, p)
			}
		}
	}
	if len(missing) > 0 {
		errs = append(errs, fmt.Errorf("missing tools: %s; install them with `apt-get install %s` (or `bash hack/deps.sh`, which installs everything vecnet needs)",
			strings.Join(missing, ", "), strings.Join(pkgs, " ")))
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		errs = append(errs, errors.New("/dev/net/tun is missing: load the tun module (modprobe tun)"))
	}
	var nobin []string
	for _, b := range vecnetBinaries {
		if st, err := os.Stat(filepath.Join(cfg.BinDir, b)); err != nil || st.Mode()&0o111 == 0 {
			nobin = append(nobin, b)
		}
	}
	if len(nobin) > 0 {
		errs = append(errs, fmt.Errorf("%s not found in %s (the lab runs vecnet's binaries from there; --bin-dir changes it); build them with `make build` (go build -o bin/ ./cmd/...)",
			strings.Join(nobin, ", "), cfg.BinDir))
	}
	if _, err := kubecluster.FindBinaries(cfg.KubeBin, kubecluster.APIServer, kubecluster.Etcd); err != nil {
		errs = append(errs, fmt.Errorf("%w (or point --kube-bin at them)", err))
	}
	return errors.Join(errs...)
}

// ErrAlreadyUp is returned by Up when a lab is running in the state
// directory.
var ErrAlreadyUp = errors.New("a lab is already running")

// Up starts a lab: it checks the machine, cleans up the leftovers of a lab
// that crashed, starts the supervisor (`vecnet-lab serve`, in a session of
// its own so that it outlives this command and the terminal) and prints
// its progress to out until the lab is ready. If the lab fails to start,
// it prints the end of the supervisor's log and removes everything.
func Up(ctx context.Context, cfg Config, out io.Writer) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := Preflight(&cfg); err != nil {
		return err
	}
	l := cfg.layout()
	if pid := supervisorPid(cfg.StateDir); pid != 0 {
		what := "running"
		if _, err := ReadState(cfg.StateDir); err != nil {
			what = "starting"
		}
		return fmt.Errorf("%w in %s (supervisor pid %d, %s): see it with `%s`, stop it with `%s`",
			ErrAlreadyUp, cfg.StateDir, pid, what, command("status", cfg.StateDir), command("down", cfg.StateDir))
	}
	if err := checkStateDir(cfg.StateDir); err != nil {
		return fmt.Errorf("%w; choose another --state-dir", err)
	}
	if leftovers(cfg.StateDir) {
		fmt.Fprintf(out, "cleaning up what a previous lab left behind in %s... ", cfg.StateDir)
		t0 := time.Now()
		if _, err := down(cfg.StateDir, io.Discard); err != nil {
			fmt.Fprintln(out, "failed")
			return fmt.Errorf("cleaning up the previous lab: %w", err)
		}
		fmt.Fprintf(out, "ok (%.1fs)\n", time.Since(t0).Seconds())
	}
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(l.marker(), []byte("vecnet-lab state directory: `vecnet-lab down` removes it\n"), 0o644); err != nil {
		return err
	}
	if err := writeJSON(l.config(), cfg); err != nil {
		return err
	}
	if err := os.WriteFile(l.progress(), nil, 0o644); err != nil {
		return err
	}

	fmt.Fprintf(out, "starting a %d-node lab (encap %s, uplink driver %s%s) in %s\n", cfg.Nodes, cfg.Encap, cfg.Driver,
		map[bool]string{true: ", IPv4+IPv6", false: ""}[cfg.IPv6], cfg.StateDir)
	t0 := time.Now()
	exited, err := startSupervisor(cfg)
	if err != nil {
		down(cfg.StateDir, io.Discard)
		return err
	}
	err = follow(ctx, cfg, out, exited)
	if err != nil {
		if ctx.Err() == nil { // not ^C: the log says what went wrong
			fmt.Fprintf(out, "\nthe supervisor's log:\n%s", kubecluster.LogTail(l.serveLog(), 0, 60))
		}
		fmt.Fprintf(out, "removing the failed lab... ")
		if _, derr := down(cfg.StateDir, io.Discard); derr != nil {
			fmt.Fprintf(out, "failed: %v\n", derr)
		} else {
			fmt.Fprintln(out, "ok")
		}
		return err
	}
	st, err := ReadState(cfg.StateDir)
	if err != nil {
		return err
	}
	printReady(out, st, time.Since(t0))
	return nil
}

// command spells a vecnet-lab command for stateDir, with --state-dir only
// when it is not the default.
func command(sub, stateDir string) string {
	if stateDir == defaultStateDir() {
		return "vecnet-lab " + sub
	}
	return "vecnet-lab --state-dir " + stateDir + " " + sub
}

func defaultStateDir() string {
	if d := os.Getenv(EnvStateDir); d != "" {
		return d
	}
	return DefaultStateDir
}

// checkStateDir refuses a state directory that holds something other than
// a lab's files: down removes the directory, and must never remove a
// user's.
func checkStateDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(ents) == 0 {
		return nil
	}
	if _, err := os.Stat(layout{dir}.marker()); err != nil {
		return fmt.Errorf("%w: %s holds files but no .vecnet-lab marker", errForeignDir, dir)
	}
	return nil
}

// errForeignDir: the state directory was not made by vecnet-lab.
var errForeignDir = errors.New("not a vecnet-lab state directory")

// leftovers reports whether a lab left something in stateDir: files,
// processes or network namespaces.
func leftovers(stateDir string) bool {
	if _, err := os.Stat(layout{stateDir}.marker()); err == nil {
		return true
	}
	return len(labNetns(Prefix(stateDir))) > 0 || len(labProcesses(stateDir)) > 0
}

// startSupervisor starts `vecnet-lab serve` detached: a new session (no
// terminal, so ^C and a closed terminal do not reach it), stdin from
// /dev/null and output to serve.log, so that it holds none of this
// command's descriptors (a caller reading this command's output to EOF
// would otherwise wait for the lab to end). The channel gets its exit
// status if it exits while this command runs.
func startSupervisor(cfg Config) (<-chan error, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	l := cfg.layout()
	logf, err := os.OpenFile(l.serveLog(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(self, "serve", "--state-dir", cfg.StateDir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the supervisor (%s serve): %w", self, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// At once, not only when the supervisor gets to it: until then another
	// `up` would take this lab's files for leftovers.
	if err := writePid(l.servePid(), cmd.Process.Pid); err != nil {
		return exited, err
	}
	return exited, nil
}

// follow copies the supervisor's progress to out until lab.json appears
// (ready), the supervisor exits (failed), ctx ends (^C) or the start-up
// takes longer than the supervisor's own limit allows.
func follow(ctx context.Context, cfg Config, out io.Writer, exited <-chan error) error {
	l := cfg.layout()
	var off int64
	copyNew := func() {
		f, err := os.Open(l.progress())
		if err != nil {
			return
		}
		defer f.Close()
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			return
		}
		n, _ := io.Copy(out, f)
		off += n
	}
	deadline := time.After(cfg.Timeout + 30*time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		copyNew()
		if _, err := os.Stat(l.state()); err == nil {
			time.Sleep(50 * time.Millisecond) // "ready" follows lab.json
			copyNew()
			return nil
		}
		select {
		case err := <-exited:
			copyNew()
			if err == nil {
				err = errors.New("exited without an error")
			}
			return fmt.Errorf("the lab did not start (its supervisor exited: %v); what went wrong is above", err)
		case <-ctx.Done():
			fmt.Fprintln(out, "\ninterrupted")
			return fmt.Errorf("interrupted while starting the lab: %w", ctx.Err())
		case <-deadline:
			return fmt.Errorf("the lab did not start within %s", cfg.Timeout)
		case <-tick.C:
		}
	}
}

func printReady(out io.Writer, st *State, took time.Duration) {
	c := func(sub string) string { return command(sub, st.Config.StateDir) }
	fmt.Fprintf(out, "\nthe lab is up after %.1fs: %d nodes, pools %s (encap %s), kube-apiserver %s\n",
		took.Seconds(), len(st.Nodes), strings.Join(st.Pools, ", "), st.Config.Encap, st.APIServer)
	for _, n := range st.Notes {
		fmt.Fprintf(out, "note: %s\n", n)
	}
	fmt.Fprintf(out, "\n")
	for _, l := range [][2]string{
		{"nodes, pods, processes, uplinks:", c("status")},
		{"any kubectl command (or export KUBECONFIG=" + st.Kubeconfig + "):", c("kubectl get pods -A -o wide")},
		{"a pod (the lab runs its command on the node; the image is not used):", c("kubectl run web --image=x --command -- iperf3 -s")},
		{"a command in a pod's network namespace:", c("exec web -- ping -c 2 <pod IP>")},
		{"stop the lab and remove everything:", c("down")},
	} {
		fmt.Fprintf(out, "  # %s\n  %s\n", l[0], l[1])
	}
	if st.Config.BGP() && len(st.Nodes) > 0 {
		n := st.Nodes[0]
		fmt.Fprintf(out, "  # %s's BGP sessions and routes (GoBGP's API is in the node's namespace):\n  ip netns exec %s %s show bgp [routes]\n",
			n.Name, n.AgentNetns, filepath.Join(st.Config.BinDir, "vecnetctl"))
	}
}
