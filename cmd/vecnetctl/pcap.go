package main

// pcap: capture packets of an interface into a classic pcap file.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"google.golang.org/grpc/codes"

	vecnetv1 "github.com/vecnet/vecnet/api/vecnet/v1"
	"github.com/vecnet/vecnet/pkg/pcapfile"
)

// defaultCaptureTimeout is vecnetd's capture timeout when none is given.
const defaultCaptureTimeout = 10 * time.Second

var pcapCmd = &command{
	path:     "pcap",
	synopsis: []string{"pcap --interface NAME --count N --file F [--timeout DURATION]"},
	help: `Captures up to N packets passing through interface NAME (both directions) and
writes them to F ("-" for standard output) as a pcap file with nanosecond
timestamps, readable with tcpdump -r. The link type is raw IP for tun
interfaces and Ethernet for tap. The capture ends after N packets, after the
capture timeout, or on Ctrl-C (the packets so far are kept).

flags:
  --interface NAME    interface to capture on (required)
  --count N           number of packets (required)
  --file F            output file (required)
  --timeout DURATION  capture timeout (default 10s). The request's deadline is
                      this plus the global --timeout.
`,
	parse: func(args []string) (action, error) {
		opts, err := parsePcap(args)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, e *env) error { return runPcapFile(ctx, e, opts) }, nil
	},
}

type pcapOpts struct {
	req     *vecnetv1.PcapRequest
	file    string
	timeout time.Duration // capture timeout; 0 for vecnetd's default
}

func parsePcap(args []string) (pcapOpts, error) {
	fs := newFlagSet("pcap")
	iface := fs.String("interface", "", "")
	count := uint32Flag(fs, "count", "")
	file := fs.String("file", "", "")
	var timeout durationValue
	fs.Var(&timeout, "timeout", "")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return pcapOpts{}, err
	}
	if err := wantArgs(pos); err != nil {
		return pcapOpts{}, err
	}
	switch {
	case *iface == "":
		return pcapOpts{}, usagef("missing --interface")
	case *count == 0:
		return pcapOpts{}, usagef("missing --count (a positive number of packets)")
	case *file == "":
		return pcapOpts{}, usagef("missing --file")
	}
	if err := checkName("--interface", *iface); err != nil {
		return pcapOpts{}, usagef("%v", err)
	}
	ms := (timeout.d + time.Millisecond - 1) / time.Millisecond
	if ms > math.MaxUint32 {
		return pcapOpts{}, usagef("--timeout %v too long", timeout.d)
	}
	return pcapOpts{
		req:     &vecnetv1.PcapRequest{Interface: *iface, Count: *count, TimeoutMs: uint32(ms)},
		file:    *file,
		timeout: timeout.d,
	}, nil
}

// runPcapFile captures into opts.file and prints a summary.
func runPcapFile(ctx context.Context, e *env, opts pcapOpts) error {
	capture := opts.timeout
	if capture == 0 {
		capture = defaultCaptureTimeout
	}
	var cancel context.CancelFunc
	if e.timeout.d > 0 {
		ctx, cancel = context.WithTimeout(ctx, capture+e.timeout.d)
	} else {
		ctx, cancel = context.WithCancel(ctx)
	}
	defer cancel()

	out, msg := e.stdout, e.stdout
	var f *os.File
	if opts.file == "-" {
		msg = e.stderr
	} else {
		var err error
		if f, err = os.Create(opts.file); err != nil {
			return err
		}
		out = f
	}
	bw := bufio.NewWriterSize(out, 1<<20)
	st, err := capturePcap(ctx, e.client, bw, opts.req)
	if ferr := bw.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("writing %s: %v", opts.file, ferr)
	}
	if f != nil {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("writing %s: %v", opts.file, cerr)
		}
	}
	if err != nil {
		switch {
		case f == nil:
		case st.packets == 0:
			os.Remove(opts.file)
		default:
			err = fmt.Errorf("%w (the %d packets captured before are in %s)", err, st.packets, opts.file)
		}
		return err
	}
	note := ""
	if st.interrupted {
		note = " (interrupted)"
	}
	_, err = fmt.Fprintf(msg, "captured %d packets (rx %d, tx %d) to %s%s\n", st.packets, st.rx, st.tx, opts.file, note)
	return err
}

type pcapStats struct {
	packets, rx, tx int
	linkType        uint32
	interrupted     bool // ended by cancellation of ctx (Ctrl-C)
}

func linkTypeName(lt uint32) string {
	switch lt {
	case pcapfile.LinkTypeRaw:
		return "101 (raw IP, tun)"
	case pcapfile.LinkTypeEthernet:
		return "1 (Ethernet, tap)"
	}
	return fmt.Sprint(lt)
}

// capturePcap streams the Pcap RPC into w as a pcap file. The file's link
// type is that of the first packet; with no packet at all it is looked up
// from the interface's kind.
func capturePcap(ctx context.Context, c vecnetv1.DataplaneClient, w io.Writer, req *vecnetv1.PcapRequest) (pcapStats, error) {
	var st pcapStats
	pw := pcapfile.NewWriter(w, pcapfile.Nanosecond)
	stream, err := c.Pcap(ctx, req)
	if err != nil {
		return st, fromRPC(err)
	}
	for {
		p, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			var re *rpcError
			if err = fromRPC(err); errors.As(err, &re) && re.code == codes.Canceled && ctx.Err() == context.Canceled {
				st.interrupted = true
				break
			}
			return st, err
		}
		lt := p.GetLinkType()
		if lt == 0 {
			return st, fmt.Errorf("pcap: packet %d from vecnetd has no link_type", st.packets+1)
		}
		if st.packets == 0 {
			if err := pw.WriteHeader(lt, 0); err != nil {
				return st, fmt.Errorf("pcap: %v", err)
			}
			st.linkType = lt
		} else if lt != st.linkType {
			return st, fmt.Errorf("pcap: packet %d has link type %s but the capture started with %s; a pcap file holds one link type",
				st.packets+1, linkTypeName(lt), linkTypeName(st.linkType))
		}
		ts := p.GetTimestampNs()
		if ts > math.MaxInt64 {
			ts = math.MaxInt64
		}
		if err := pw.WritePacket(time.Unix(0, int64(ts)), p.GetData(), int(p.GetOriginalLength())); err != nil {
			return st, fmt.Errorf("pcap: %v", err)
		}
		st.packets++
		switch p.GetDirection() {
		case "rx":
			st.rx++
		case "tx":
			st.tx++
		}
	}
	if st.packets == 0 {
		st.linkType = interfaceLinkType(ctx, c, req.GetInterface())
		if err := pw.WriteHeader(st.linkType, 0); err != nil {
			return st, fmt.Errorf("pcap: %v", err)
		}
	}
	return st, nil
}

// interfaceLinkType returns the link type of an interface's packets:
// Ethernet for tap, raw IP otherwise (and when the lookup fails).
func interfaceLinkType(ctx context.Context, c vecnetv1.DataplaneClient, name string) uint32 {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	resp, err := c.ListInterfaces(ctx, &vecnetv1.ListInterfacesRequest{})
	if err == nil {
		for _, i := range resp.GetInterfaces() {
			if i.GetName() == name && i.GetKind() == vecnetv1.InterfaceKind_INTERFACE_KIND_TAP {
				return pcapfile.LinkTypeEthernet
			}
		}
	}
	return pcapfile.LinkTypeRaw
}
