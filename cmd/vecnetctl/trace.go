package main

// trace add|show|clear: packet tracing, as vppctl's.

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	vecnetv1 "github.com/vecnet/vecnet/api/vecnet/v1"
)

var traceAddCmd = &command{
	path:     "trace add",
	synopsis: []string{"trace add N"},
	help:     "Traces the next N packets received by each worker.\n",
	parse: func(args []string) (action, error) {
		req, err := parseTraceAdd(args)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, e *env) error {
			ctx, cancel := e.rpcContext(ctx)
			defer cancel()
			_, err := e.client.TraceAdd(ctx, req)
			return fromRPC(err)
		}, nil
	},
}

func parseTraceAdd(args []string) (*vecnetv1.TraceAddRequest, error) {
	pos, err := parseArgs(newFlagSet("trace add"), args)
	if err != nil {
		return nil, err
	}
	if err := wantArgs(pos, "packet count N"); err != nil {
		return nil, err
	}
	n, err := strconv.ParseUint(pos[0], 10, 32)
	if err != nil || n == 0 {
		return nil, usagef("invalid packet count %q: want an integer from 1 to 4294967295", pos[0])
	}
	return &vecnetv1.TraceAddRequest{Count: uint32(n)}, nil
}

var traceShowCmd = &command{
	path:     "trace show",
	synopsis: []string{"trace show"},
	help: `Prints the traced packets, grouped by worker: for each packet, the nodes it
went through with the time (since vecnetd started) and the node's detail.
`,
	parse: noArgs("trace show", runTraceShow),
}

var traceClearCmd = &command{
	path:     "trace clear",
	synopsis: []string{"trace clear"},
	help:     "Empties the trace buffer and stops tracing.\n",
	parse: noArgs("trace clear", func(ctx context.Context, c vecnetv1.DataplaneClient, w io.Writer) error {
		_, err := c.TraceClear(ctx, &vecnetv1.TraceClearRequest{})
		return fromRPC(err)
	}),
}

// noArgs is the parse function of a command without arguments or flags.
func noArgs(name string, run func(ctx context.Context, c vecnetv1.DataplaneClient, w io.Writer) error) func([]string) (action, error) {
	return func(args []string) (action, error) {
		pos, err := parseArgs(newFlagSet(name), args)
		if err != nil {
			return nil, err
		}
		if err := wantArgs(pos); err != nil {
			return nil, err
		}
		return func(ctx context.Context, e *env) error {
			ctx, cancel := e.rpcContext(ctx)
			defer cancel()
			return run(ctx, e.client, e.stdout)
		}, nil
	}
}

// traceTime formats a step's timestamp like vppctl, HH:MM:SS:nanoseconds.
// Values that can only be Unix times (after 1973) print as the local time
// of day.
func traceTime(ns uint64) string {
	if ns >= 1e17 {
		t := time.Unix(0, int64(ns))
		return fmt.Sprintf("%02d:%02d:%02d:%09d", t.Hour(), t.Minute(), t.Second(), t.Nanosecond())
	}
	d := ns
	return fmt.Sprintf("%02d:%02d:%02d:%09d", d/3600e9, d/60e9%60, d/1e9%60, d%1e9)
}

func runTraceShow(ctx context.Context, c vecnetv1.DataplaneClient, w io.Writer) error {
	resp, err := c.TraceShow(ctx, &vecnetv1.TraceShowRequest{})
	if err != nil {
		return fromRPC(err)
	}
	pkts := slices.Clone(resp.GetPackets())
	if len(pkts) == 0 {
		_, err := fmt.Fprintln(w, "No packets in trace buffer")
		return err
	}
	slices.SortStableFunc(pkts, func(a, b *vecnetv1.PacketTrace) int {
		return cmp.Or(cmp.Compare(a.GetWorker(), b.GetWorker()), cmp.Compare(a.GetSequence(), b.GetSequence()))
	})
	var b strings.Builder
	for i, p := range pkts {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "Packet %d (worker %d)\n", i+1, p.GetWorker())
		for _, s := range p.GetSteps() {
			lines := strings.Split(strings.TrimRight(s.GetDetail(), "\n"), "\n")
			line := fmt.Sprintf("  %s %s: %s", traceTime(s.GetTimeNs()), s.GetNode(), lines[0])
			b.WriteString(strings.TrimRight(line, " "))
			b.WriteByte('\n')
			for _, l := range lines[1:] {
				fmt.Fprintf(&b, "    %s\n", l)
			}
		}
	}
	_, err = io.WriteString(w, b.String())
	return err
}
