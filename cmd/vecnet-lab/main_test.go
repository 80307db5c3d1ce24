package main

import (
	"bytes"
	"flag"
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		maxPos    int
		ns        string
		pos, rest []string
	}{
		{[]string{"pod", "--", "ping", "-c", "2"}, 1, "default", []string{"pod"}, []string{"ping", "-c", "2"}},
		{[]string{"-n", "kube-system", "pod", "--", "sh"}, 1, "kube-system", []string{"pod"}, []string{"sh"}},
		{[]string{"pod", "-n", "x", "--", "sh"}, 1, "x", []string{"pod"}, []string{"sh"}},
		{[]string{"pod", "ping", "-c", "2"}, 1, "default", []string{"pod"}, []string{"ping", "-c", "2"}},
		{[]string{"-n", "x"}, -1, "x", nil, nil},
		{[]string{"a", "-n", "x", "b"}, -1, "x", []string{"a", "b"}, nil},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		ns := fs.String("n", "default", "")
		pos, rest, err := parse(fs, tc.args, tc.maxPos)
		if err != nil || *ns != tc.ns || !slices.Equal(pos, tc.pos) || !slices.Equal(rest, tc.rest) {
			t.Errorf("parse(%q, %d) = %q %q %v (-n %s), want %q %q (-n %s)", tc.args, tc.maxPos, pos, rest, err, *ns, tc.pos, tc.rest, tc.ns)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage:"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"up", "--nodes"}, 2, "flag needs an argument"},
		{[]string{"status", "extra"}, 2, "takes no arguments"},
		{[]string{"exec"}, 2, "which pod?"},
		{[]string{"exec", "p"}, 2, "no command"},
		{[]string{"help"}, 0, "vecnet-lab up"},
	} {
		var out, errb bytes.Buffer
		code := run(tc.args, &out, &errb)
		got := out.String() + errb.String()
		if code != tc.code || !strings.Contains(got, tc.want) {
			t.Errorf("vecnet-lab %q: exit %d, output %q; want exit %d and %q", tc.args, code, got, tc.code, tc.want)
		}
	}
}
