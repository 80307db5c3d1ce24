package main

// The parsing layer: flag handling shared by all commands and validation of
// the values that appear on command lines (prefixes, addresses, names). None
// of it needs a server, so it is tested on its own (parse_test.go).

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// usageError is a command line that the command cannot accept: vecnetctl
// prints the message and the command's usage, and exits 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// newFlagSet returns a FlagSet that reports errors instead of printing them;
// the dispatcher prints the command's own usage text.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parseArgs parses args with fs, accepting flags before, between and after
// the positional arguments (the flag package stops at the first non-flag).
// Everything after a "--" argument is positional. It returns flag.ErrHelp
// for -h/--help and a *usageError for anything else that is wrong.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	pos := []string{}
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, flag.ErrHelp
			}
			return nil, &usageError{msg: flagMessage(err)}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// flagMessage is the text of a flag package error. The flag package names
// flags with one dash; vecnetctl's documentation uses two.
func flagMessage(err error) string {
	msg := err.Error()
	for _, s := range []string{"flag -", "argument: -", "defined: -"} {
		msg = strings.Replace(msg, s, s+"-", 1)
	}
	return msg
}

// wantArgs checks the number of positional arguments; names lists them for
// the error message.
func wantArgs(pos []string, names ...string) error {
	if len(pos) < len(names) {
		return usagef("missing %s", names[len(pos)])
	}
	if len(pos) > len(names) {
		return usagef("unexpected argument %q", pos[len(names)])
	}
	return nil
}

// uint32Value is a flag.Value for a uint32 flag.
type uint32Value struct{ p *uint32 }

func (v uint32Value) String() string {
	if v.p == nil {
		return "0"
	}
	return strconv.FormatUint(uint64(*v.p), 10)
}

func (v uint32Value) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return fmt.Errorf("want an integer from 0 to %d", uint32(math.MaxUint32))
	}
	*v.p = uint32(n)
	return nil
}

func uint32Flag(fs *flag.FlagSet, name string, usage string) *uint32 {
	p := new(uint32)
	fs.Var(uint32Value{p}, name, usage)
	return p
}

// listValue is a flag.Value collecting comma-separated values; the flag may
// also be repeated.
type listValue struct{ p *[]string }

func (v listValue) String() string {
	if v.p == nil {
		return ""
	}
	return strings.Join(*v.p, ",")
}

func (v listValue) Set(s string) error {
	for _, e := range strings.Split(s, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			return errors.New("empty element in list")
		}
		*v.p = append(*v.p, e)
	}
	return nil
}

// durationValue is a flag.Value for a time.Duration that remembers whether
// it was set.
type durationValue struct {
	d   time.Duration
	set bool
}

func (v *durationValue) String() string { return v.d.String() }

func (v *durationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("want a duration such as 500ms, 30s or 5m")
	}
	if d < 0 {
		return errors.New("must not be negative")
	}
	v.d, v.set = d, true
	return nil
}

// parseAddrPrefix parses an interface address in CIDR notation
// ("10.0.0.1/24"); host bits may be set. A bare address is a host prefix
// (/32 or /128).
func parseAddrPrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := parseIP(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("invalid address %q: want CIDR such as 10.0.0.1/24", s)
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid address %q: want CIDR such as 10.0.0.1/24", s)
	}
	return p, nil
}

// parseRoutePrefix parses a route's destination. Host bits must be clear,
// as with `ip route`; a bare address is a host route.
func parseRoutePrefix(s string) (netip.Prefix, error) {
	p, err := parseAddrPrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid prefix %q: want CIDR such as 10.0.0.0/24", s)
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("invalid prefix %q: host bits set (did you mean %s?)", s, m)
	}
	return p, nil
}

// parseIP parses an IPv4 or IPv6 address without a zone.
func parseIP(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("invalid IP address %q", s)
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("invalid IP address %q: zones are not supported (use dev NAME)", s)
	}
	return a, nil
}

// checkName validates an interface name: printable, no spaces, no commas
// (list separator) and no '#' (comment in route files).
func checkName(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%s: empty name", what)
	case !utf8.ValidString(s):
		return fmt.Errorf("%s: name %q is not valid UTF-8", what, s)
	case strings.HasPrefix(s, "-"):
		return fmt.Errorf("%s: name %q must not start with '-'", what, s)
	case len(s) > 64:
		return fmt.Errorf("%s: name %q longer than 64 bytes", what, s)
	}
	for _, r := range s {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) || r == ',' || r == '#' || r == '/' {
			return fmt.Errorf("%s: invalid character %q in name %q", what, r, s)
		}
	}
	return nil
}
