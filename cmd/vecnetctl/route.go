package main

// route add|del|load and the route grammar:
//
//	CIDR via IP[,IP...] [dev NAME]
//	CIDR dev NAME [via IP[,IP...]]
//
// Several via addresses make an ECMP route (one next hop per address, all
// through NAME when dev is given). A bare address is a host route.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	vecnetv1 "github.com/vecnet/vecnet/api/vecnet/v1"
)

// parseRouteSpec parses the route grammar from tokens. With needNextHop,
// via or dev is required (add); without, a bare prefix is accepted (del).
func parseRouteSpec(tokens []string, needNextHop bool) (*vecnetv1.Route, error) {
	if len(tokens) == 0 {
		return nil, errors.New("missing CIDR")
	}
	prefix, err := parseRoutePrefix(tokens[0])
	if err != nil {
		return nil, err
	}
	var (
		vias   []netip.Addr
		dev    string
		hasVia bool
		hasDev bool
	)
	for i := 1; i < len(tokens); i += 2 {
		kw := tokens[i]
		if kw != "via" && kw != "dev" {
			return nil, fmt.Errorf("unexpected %q: want via IP[,IP...] or dev NAME", kw)
		}
		if i+1 >= len(tokens) {
			if kw == "via" {
				return nil, errors.New("via: missing IP address")
			}
			return nil, errors.New("dev: missing interface name")
		}
		arg := tokens[i+1]
		switch kw {
		case "via":
			if hasVia {
				return nil, errors.New("via given twice: list ECMP next hops as via IP,IP")
			}
			hasVia = true
			for _, s := range strings.Split(arg, ",") {
				if s == "" {
					return nil, fmt.Errorf("via: empty element in %q", arg)
				}
				a, err := parseIP(s)
				if err != nil {
					return nil, fmt.Errorf("via: %v", err)
				}
				for _, b := range vias {
					if a == b {
						return nil, fmt.Errorf("via: duplicate next hop %s", a)
					}
				}
				vias = append(vias, a)
			}
		case "dev":
			if hasDev {
				return nil, errors.New("dev given twice")
			}
			hasDev = true
			if err := checkName("dev", arg); err != nil {
				return nil, err
			}
			dev = arg
		}
	}
	if needNextHop && !hasVia && !hasDev {
		return nil, errors.New("missing next hop: want via IP[,IP...] or dev NAME")
	}
	r := &vecnetv1.Route{Prefix: prefix.String()}
	for _, a := range vias {
		r.NextHops = append(r.NextHops, &vecnetv1.NextHop{Ip: a.String(), Interface: dev})
	}
	if len(vias) == 0 && hasDev {
		r.NextHops = []*vecnetv1.NextHop{{Interface: dev}}
	}
	return r, nil
}

// ParseRouteLine parses one line of a route file: the route grammar, with
// '#' starting a comment. A blank or comment-only line returns nil, nil.
func ParseRouteLine(line string) (*vecnetv1.Route, error) {
	if i := strings.IndexByte(line, '#'); i >= 0 {
		line = line[:i]
	}
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return nil, nil
	}
	return parseRouteSpec(fields, true)
}

// FormatRouteLine is the canonical text of a route made by ParseRouteLine:
// "PREFIX via IP[,IP...] dev NAME", omitting absent parts. It assumes all
// next hops share one interface, as parsed routes do.
func FormatRouteLine(r *vecnetv1.Route) string {
	var b strings.Builder
	b.WriteString(r.GetPrefix())
	var ips []string
	dev := ""
	for _, nh := range r.GetNextHops() {
		if nh.GetIp() != "" {
			ips = append(ips, nh.GetIp())
		}
		if nh.GetInterface() != "" {
			dev = nh.GetInterface()
		}
	}
	if len(ips) > 0 {
		b.WriteString(" via ")
		b.WriteString(strings.Join(ips, ","))
	}
	if dev != "" {
		b.WriteString(" dev ")
		b.WriteString(dev)
	}
	return b.String()
}

const routeHelp = `A route is CIDR followed by via and/or dev:
  via IP[,IP...]   gateway(s); several addresses make an ECMP route
  dev NAME         outgoing interface (alone: a route through NAME only)
A bare address is a host route (/32 or /128). Flags may follow the route.

flags:
  --vrf N                      routing table (default 0)
  --encap ipip|vxlan|none      tunnel to the via address, another node (default none:
                               routed); IPv4 and IPv6 prefixes both go over IPv4
  --vni N                      VXLAN network identifier (default 4096)
  --source static|bgp          whose route it is (default static). A prefix may have a
                               static and a bgp route at once (the static one forwards);
                               del removes only the given source's. bgp routes belong to
                               vecnet-agent's BGP speaker: change them only to debug
`

// writableRouteSources are the route sources the API lets callers write.
var writableRouteSources = []string{"static", "bgp"}

// checkRouteSource validates a --source value; empty is the default.
func checkRouteSource(s string) error {
	if s == "" || slices.Contains(writableRouteSources, s) {
		return nil
	}
	return usagef("--source %q: want static or bgp", s)
}

func routeCmd(verb string) *command {
	return &command{
		path: "route " + verb,
		synopsis: []string{
			"route add|del CIDR via IP[,IP...] [dev NAME] [--vrf N] [--encap ipip|vxlan|none] [--vni N] [--source static|bgp]",
			"route add|del CIDR dev NAME [--vrf N] [--source static|bgp]",
		},
		help: "Adds or deletes a route; del also accepts a bare CIDR.\n\n" + routeHelp,
		parse: func(args []string) (action, error) {
			req, err := parseRouteChange(args, verb == "add")
			if err != nil {
				return nil, err
			}
			return func(ctx context.Context, e *env) error {
				ctx, cancel := e.rpcContext(ctx)
				defer cancel()
				var err error
				if verb == "add" {
					_, err = e.client.AddRoutes(ctx, req)
				} else {
					_, err = e.client.DeleteRoutes(ctx, req)
				}
				return fromRPC(err)
			}, nil
		},
	}
}

func parseRouteChange(args []string, add bool) (*vecnetv1.RoutesRequest, error) {
	fs := newFlagSet("route")
	vrf := uint32Flag(fs, "vrf", "")
	encap := fs.String("encap", "", "")
	vni := uint32Flag(fs, "vni", "")
	source := fs.String("source", "", "")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return nil, err
	}
	r, err := parseRouteSpec(pos, add)
	if err != nil {
		return nil, usagef("%v", err)
	}
	if err := checkRouteSource(*source); err != nil {
		return nil, err
	}
	r.Vrf, r.Source = *vrf, *source
	switch *encap {
	case "", "none", "ipip", "vxlan":
	default:
		return nil, usagef("--encap %q: want ipip, vxlan or none", *encap)
	}
	if *vni != 0 && *encap != "vxlan" {
		return nil, usagef("--vni needs --encap vxlan")
	}
	if *vni > 1<<24-1 {
		return nil, usagef("--vni %d: a VNI has 24 bits (at most 16777215)", *vni)
	}
	if *encap == "ipip" || *encap == "vxlan" {
		for _, nh := range r.NextHops {
			if nh.GetIp() == "" || nh.GetInterface() != "" {
				return nil, usagef("--encap %s: want via NODE_IP without dev", *encap)
			}
			nh.Encap, nh.Vni = *encap, *vni
		}
	}
	return &vecnetv1.RoutesRequest{Routes: []*vecnetv1.Route{r}}, nil
}

var routeLoadCmd = &command{
	path:     "route load",
	synopsis: []string{"route load FILE [--vrf N] [--batch N] [--source static|bgp]"},
	help: `Adds the routes of FILE ("-" for standard input), one per line in the grammar
of route add without the verb:
  10.1.0.0/24 via 192.168.0.1,192.168.0.2
  10.2.0.0/24 dev tun0
Blank lines and '#' comments are ignored. The routes are sent in bulk: by
default all in one AddRoutes request, which vecnetd applies all or nothing.
Prints the number of routes and the elapsed time. There is no deadline
unless the global --timeout is given.

flags:
  --vrf N                routing table of all the routes (default 0)
  --batch N              routes per request, 0 for all in one (default 0)
  --source static|bgp    source of all the routes (default static; see route add)
`,
	parse: func(args []string) (action, error) {
		opts, err := parseRouteLoad(args)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, e *env) error {
			in, name := io.Reader(os.Stdin), "stdin"
			if opts.file != "-" {
				f, err := os.Open(opts.file)
				if err != nil {
					return err
				}
				defer f.Close()
				in, name = f, opts.file
			}
			ctx, cancel := e.explicitContext(ctx)
			defer cancel()
			return runRouteLoad(ctx, e.client, e.stdout, in, name, opts)
		}, nil
	},
}

type routeLoadOpts struct {
	file   string
	vrf    uint32
	batch  int
	source string
}

func parseRouteLoad(args []string) (routeLoadOpts, error) {
	fs := newFlagSet("route load")
	vrf := uint32Flag(fs, "vrf", "")
	batch := fs.Int("batch", 0, "")
	source := fs.String("source", "", "")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return routeLoadOpts{}, err
	}
	if err := wantArgs(pos, "FILE"); err != nil {
		return routeLoadOpts{}, err
	}
	if *batch < 0 {
		return routeLoadOpts{}, usagef("--batch must not be negative")
	}
	if err := checkRouteSource(*source); err != nil {
		return routeLoadOpts{}, err
	}
	return routeLoadOpts{file: pos[0], vrf: *vrf, batch: *batch, source: *source}, nil
}

// readRoutes parses a route file; lines[i] is the line number of routes[i].
func readRoutes(in io.Reader, name string, vrf uint32, source string) (routes []*vecnetv1.Route, lines []int, err error) {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		r, err := ParseRouteLine(sc.Text())
		if err != nil {
			return nil, nil, fmt.Errorf("%s:%d: %v", name, n, err)
		}
		if r == nil {
			continue
		}
		r.Vrf, r.Source = vrf, source
		routes = append(routes, r)
		lines = append(lines, n)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("%s:%d: %v", name, n+1, err)
	}
	return routes, lines, nil
}

// routeIndexRE finds the route index in a status message such as
// "routes[3].next_hops[0].ip: invalid address".
var routeIndexRE = regexp.MustCompile(`^routes\[(\d+)\]`)

func runRouteLoad(ctx context.Context, c vecnetv1.DataplaneClient, w io.Writer, in io.Reader, name string, opts routeLoadOpts) error {
	start := time.Now()
	routes, lines, err := readRoutes(in, name, opts.vrf, opts.source)
	if err != nil {
		return err
	}
	parsed := time.Now()
	batch := opts.batch
	if batch <= 0 || batch > len(routes) {
		batch = len(routes)
	}
	var reported uint64
	for off := 0; off < len(routes); off += batch {
		end := min(off+batch, len(routes))
		resp, err := c.AddRoutes(ctx, &vecnetv1.RoutesRequest{Routes: routes[off:end]})
		if err != nil {
			err = fromRPC(err)
			msg := err.Error()
			if m := routeIndexRE.FindStringSubmatch(msg); m != nil {
				if i, perr := strconv.Atoi(m[1]); perr == nil && off+i < end {
					msg = fmt.Sprintf("%s:%d: %s", name, lines[off+i], msg)
				}
			}
			if off == 0 {
				msg += "; no routes loaded"
			} else {
				msg += fmt.Sprintf("; the first %d routes (up to %s:%d) were loaded", off, name, lines[off-1])
			}
			var re *rpcError
			if errors.As(err, &re) {
				return &rpcError{code: re.code, msg: msg}
			}
			return errors.New(msg)
		}
		reported += uint64(resp.GetCount())
	}
	done := time.Now()
	elapsed := done.Sub(start)
	rate := ""
	if s := elapsed.Seconds(); s > 0 && len(routes) > 0 {
		rate = fmt.Sprintf("%.0f routes/s, ", float64(len(routes))/s)
	}
	fmt.Fprintf(w, "loaded %d routes in %v (%sparse %v, rpc %v)\n", len(routes),
		elapsed.Round(time.Microsecond), rate,
		parsed.Sub(start).Round(time.Microsecond), done.Sub(parsed).Round(time.Microsecond))
	if reported != uint64(len(routes)) {
		fmt.Fprintf(w, "note: vecnetd reported %d routes added\n", reported)
	}
	return nil
}
