// Command vecnetctl is the operator CLI of vecnetd, the vecnet dataplane
// daemon. It talks to vecnetd's gRPC API (api/vecnet/v1) on a unix socket.
//
//	vecnetctl [--socket PATH] [--timeout D] COMMAND [ARGS]
//	vecnetctl help [COMMAND]
//
// Exit status: 0 on success, 1 when a request fails (the server's message
// is printed), 2 for a command line that cannot be parsed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	vecnetv1 "github.com/vecnet/vecnet/api/vecnet/v1"
)

const (
	defaultSocket  = "/run/vecnet/vecnetd.sock"
	defaultTimeout = 30 * time.Second
	// maxMsgSize bounds request and response messages; route load sends
	// 100 000 routes in one AddRoutes request by default.
	maxMsgSize = 256 << 20
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, dialSocket)
	stop()
	os.Exit(code)
}

// dialFunc connects to vecnetd; tests replace it with an in-memory server.
type dialFunc func(socket string) (grpc.ClientConnInterface, io.Closer, error)

// dialSocket connects to the unix socket. The connection itself is made by
// the first RPC; a missing socket is reported here with a clearer message.
func dialSocket(socket string) (grpc.ClientConnInterface, io.Closer, error) {
	target := "unix:" + socket
	if name, ok := strings.CutPrefix(socket, "@"); ok {
		target = "unix-abstract:" + name
	} else if _, err := os.Stat(socket); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("vecnetd socket %s does not exist (is vecnetd running? use --socket or VECNET_SOCKET)", socket)
		}
		return nil, nil, fmt.Errorf("vecnetd socket: %v", err)
	}
	conn, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallSendMsgSize(maxMsgSize),
			grpc.MaxCallRecvMsgSize(maxMsgSize),
		),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("vecnetd socket %s: %v", socket, err)
	}
	return conn, conn, nil
}

// env is what a parsed command needs to run.
type env struct {
	client vecnetv1.DataplaneClient
	stdout io.Writer
	stderr io.Writer
	// timeout is the global --timeout: the deadline of each RPC. 0 means
	// none; timeout.set tells whether it was given on the command line.
	timeout durationValue
}

// rpcContext returns ctx with the per-RPC deadline.
func (e *env) rpcContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if e.timeout.d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, e.timeout.d)
}

// explicitContext returns ctx with a deadline only if --timeout was given
// (for long operations such as route load).
func (e *env) explicitContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if !e.timeout.set {
		return context.WithCancel(ctx)
	}
	return e.rpcContext(ctx)
}

// action runs a parsed command.
type action func(ctx context.Context, e *env) error

// command is one vecnetctl command ("route add", "pcap", ...).
type command struct {
	path     string   // words that select the command
	synopsis []string // usage lines without the leading "vecnetctl "
	help     string   // description and flags
	// parse parses the arguments after the command words. It returns
	// flag.ErrHelp for -h and a *usageError for a bad command line.
	parse func(args []string) (action, error)
	// noVecnetd: the command talks to another server (show bgp), not vecnetd.
	noVecnetd bool
}

func (c *command) usage() string {
	var b strings.Builder
	for i, s := range c.synopsis {
		if i == 0 {
			b.WriteString("usage: vecnetctl ")
		} else {
			b.WriteString("       vecnetctl ")
		}
		b.WriteString(s)
		b.WriteByte('\n')
	}
	if c.help != "" {
		b.WriteByte('\n')
		b.WriteString(strings.TrimRight(c.help, "\n"))
		b.WriteByte('\n')
	}
	return b.String()
}

// commands lists every command, in the order of the top-level usage.
var commands = []*command{
	interfaceCreateCmd,
	interfaceDeleteCmd,
	addressCmd("add"),
	addressCmd("del"),
	routeCmd("add"),
	routeCmd("del"),
	routeLoadCmd,
	vrfCmd("add"),
	vrfCmd("del"),
	uplinkAddCmd,
	uplinkDelCmd,
	prefixesSetCmd,
	showUplinksCmd,
	showPrefixesCmd,
	showInterfacesCmd,
	showRoutesCmd,
	showNeighborsCmd,
	showErrorsCmd,
	showRuntimeCmd,
	showVrfsCmd,
	showBgpCmd,
	traceAddCmd,
	traceShowCmd,
	traceClearCmd,
	pcapCmd,
}

const globalHelp = `global flags (before the command):
  --socket PATH    vecnetd's API socket (default $VECNET_SOCKET or ` + defaultSocket + `)
  --timeout D      deadline of each request, 0 for none (default 30s;
                   route load and pcap: see their help)

Run 'vecnetctl help COMMAND' or 'vecnetctl COMMAND -h' for a command's flags.
`

// groupUsage returns the usage of all commands whose path starts with
// prefix ("" for all of them).
func groupUsage(prefix string) string {
	var b strings.Builder
	seen := map[string]bool{}
	first := true
	for _, c := range commands {
		if prefix != "" && c.path != prefix && !strings.HasPrefix(c.path, prefix+" ") {
			continue
		}
		for _, s := range c.synopsis {
			if seen[s] {
				continue
			}
			seen[s] = true
			if first {
				b.WriteString("usage: vecnetctl ")
				first = false
			} else {
				b.WriteString("       vecnetctl ")
			}
			b.WriteString(s)
			b.WriteByte('\n')
		}
	}
	if prefix == "" {
		b.WriteString("       vecnetctl help [COMMAND]\n\n")
		b.WriteString(globalHelp)
	}
	return b.String()
}

// isGroup tells whether word is the first word of multi-word commands.
func isGroup(word string) bool {
	for _, c := range commands {
		if strings.HasPrefix(c.path, word+" ") {
			return true
		}
	}
	return false
}

func findCommand(path string) *command {
	for _, c := range commands {
		if c.path == path {
			return c
		}
	}
	return nil
}

func subcommands(group string) []string {
	var subs []string
	for _, c := range commands {
		if s, ok := strings.CutPrefix(c.path, group+" "); ok {
			subs = append(subs, s)
		}
	}
	return subs
}

func isHelpFlag(s string) bool {
	return s == "-h" || s == "-help" || s == "--help"
}

// resolve finds the command named by the leading words of args. When args
// name only a group, it returns the group with cmd nil.
func resolve(args []string) (cmd *command, rest []string, group string, err error) {
	word := args[0]
	if c := findCommand(word); c != nil {
		return c, args[1:], "", nil
	}
	if !isGroup(word) {
		return nil, nil, "", fmt.Errorf("unknown command %q", word)
	}
	if len(args) < 2 {
		return nil, nil, word, fmt.Errorf("%s: missing subcommand (%s)", word, strings.Join(subcommands(word), ", "))
	}
	if isHelpFlag(args[1]) {
		return nil, nil, word, nil
	}
	if c := findCommand(word + " " + args[1]); c != nil {
		return c, args[2:], "", nil
	}
	return nil, nil, word, fmt.Errorf("%s: unknown subcommand %q (%s)", word, args[1], strings.Join(subcommands(word), ", "))
}

// run is vecnetctl without the process: it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, dial dialFunc) int {
	gfs := newFlagSet("vecnetctl")
	socket := os.Getenv("VECNET_SOCKET")
	if socket == "" {
		socket = defaultSocket
	}
	gfs.StringVar(&socket, "socket", socket, "")
	e := &env{stdout: stdout, stderr: stderr, timeout: durationValue{d: defaultTimeout}}
	gfs.Var(&e.timeout, "timeout", "")
	if err := gfs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, groupUsage(""))
			return 0
		}
		fmt.Fprintf(stderr, "vecnetctl: %s\n\n%s", flagMessage(err), groupUsage(""))
		return 2
	}
	args = gfs.Args()
	if len(args) == 0 {
		fmt.Fprintf(stderr, "vecnetctl: missing command\n\n%s", groupUsage(""))
		return 2
	}
	if args[0] == "help" {
		return help(args[1:], stdout, stderr)
	}
	cmd, rest, group, err := resolve(args)
	if cmd == nil {
		if err == nil { // "vecnetctl GROUP -h"
			fmt.Fprint(stdout, groupUsage(group))
			return 0
		}
		fmt.Fprintf(stderr, "vecnetctl: %v\n\n%s", err, groupUsage(group))
		return 2
	}
	act, err := cmd.parse(rest)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, cmd.usage())
			return 0
		}
		var ue *usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "vecnetctl: %s: %v\n\n%s", cmd.path, err, cmd.usage())
			return 2
		}
		fmt.Fprintf(stderr, "vecnetctl: %v\n", err)
		return 1
	}
	if cmd.noVecnetd {
		dial = noVecnetd
	}
	conn, closer, err := dial(socket)
	if err != nil {
		fmt.Fprintf(stderr, "vecnetctl: %v\n", err)
		return 1
	}
	defer closer.Close()
	e.client = vecnetv1.NewDataplaneClient(conn)
	if err := act(ctx, e); err != nil {
		fmt.Fprintf(stderr, "vecnetctl: %s\n", errorMessage(err, e))
		return 1
	}
	return 0
}

func help(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stdout, groupUsage(""))
		return 0
	}
	if c := findCommand(strings.Join(args, " ")); c != nil {
		fmt.Fprint(stdout, c.usage())
		return 0
	}
	if len(args) == 1 && isGroup(args[0]) {
		fmt.Fprint(stdout, groupUsage(args[0]))
		return 0
	}
	fmt.Fprintf(stderr, "vecnetctl: help: unknown command %q\n\n%s", strings.Join(args, " "), groupUsage(""))
	return 2
}

// rpcError is a failed RPC; its text is the gRPC status message, which for
// vecnetd's validation errors starts with the field at fault.
type rpcError struct {
	code codes.Code
	msg  string
}

func (e *rpcError) Error() string { return e.msg }

// fromRPC converts an error returned by a vecnetv1 client method.
func fromRPC(err error) error {
	if err == nil {
		return nil
	}
	s, ok := status.FromError(err)
	if !ok {
		return err
	}
	msg := s.Message()
	switch s.Code() {
	case codes.Unavailable:
		msg = "cannot reach vecnetd: " + msg
	case codes.Canceled:
		msg = "interrupted"
	case codes.Unimplemented:
		msg = "vecnetd does not implement this request: " + msg
	}
	return &rpcError{code: s.Code(), msg: msg}
}

// errorMessage is what vecnetctl prints after "vecnetctl: ".
func errorMessage(err error, e *env) string {
	var re *rpcError
	if errors.As(err, &re) && re.code == codes.DeadlineExceeded && e.timeout.d > 0 {
		return fmt.Sprintf("%v (timed out; the deadline is --timeout %v)", err, e.timeout.d)
	}
	if _, ok := err.(interface{ GRPCStatus() *status.Status }); ok {
		return status.Convert(err).Message()
	}
	return err.Error()
}
