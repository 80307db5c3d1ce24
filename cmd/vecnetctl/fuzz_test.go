package main

import (
	"testing"

	"google.golang.org/protobuf/proto"
)

func TestParseRouteLine(t *testing.T) {
	for _, tc := range []struct{ in, canonical string }{
		{"10.0.0.0/8 via 1.1.1.1", "10.0.0.0/8 via 1.1.1.1"},
		{"  10.0.0.0/8\tvia 1.1.1.1,2.2.2.2  ", "10.0.0.0/8 via 1.1.1.1,2.2.2.2"},
		{"10.0.0.0/8 dev tun0 via 1.1.1.1 # comment", "10.0.0.0/8 via 1.1.1.1 dev tun0"},
		{"10.9.8.7 dev tun0", "10.9.8.7/32 dev tun0"},
		{"2001:0DB8::/32 via ::FFFF:1.2.3.4", "2001:db8::/32 via ::ffff:1.2.3.4"},
		{"# only a comment", ""},
		{"", ""},
	} {
		r, err := ParseRouteLine(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		got := ""
		if r != nil {
			got = FormatRouteLine(r)
		}
		if got != tc.canonical {
			t.Errorf("%q: canonical %q, want %q", tc.in, got, tc.canonical)
		}
	}
	for _, in := range []string{
		"10.0.0.0/8", "10.0.0.0/8 via", "10.0.0.0/8 dev", "10.0.0.1/8 dev x", "x dev y",
		"10.0.0.0/8 via 1.1.1.1 extra", "10.0.0.0/8 dev a,b", "10.0.0.0/8 dev \x01",
	} {
		if r, err := ParseRouteLine(in); err == nil {
			t.Errorf("%q: accepted as %v", in, r)
		}
	}
}

// FuzzParseRouteLine checks that the route-line parser never panics and
// that every accepted line round-trips through its canonical form.
func FuzzParseRouteLine(f *testing.F) {
	for _, s := range []string{
		"10.0.0.0/8 via 1.1.1.1",
		"10.0.0.0/8 via 1.1.1.1,2.2.2.2 dev tap0",
		"fd00::/64 dev tun0",
		"10.1.2.3 dev tun0 # host",
		"::ffff:1.2.3.0/120 via ::ffff:1.2.3.4",
		"0.0.0.0/0 dev eth0 via fe80::1",
		"10.0.0.0/8 via 1.1.1.1 via 1.1.1.2",
		"10.0.0.1/8 via 1.1.1.1",
		"# comment",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		r, err := ParseRouteLine(line)
		if err != nil || r == nil {
			return
		}
		if len(r.GetNextHops()) == 0 {
			t.Fatalf("%q: accepted without a next hop", line)
		}
		if _, err := proto.Marshal(r); err != nil {
			t.Fatalf("%q: route does not marshal: %v", line, err)
		}
		c := FormatRouteLine(r)
		r2, err := ParseRouteLine(c)
		if err != nil {
			t.Fatalf("%q: canonical form %q rejected: %v", line, c, err)
		}
		if !proto.Equal(r, r2) {
			t.Fatalf("%q: canonical form %q parses to %v, want %v", line, c, r2, r)
		}
		if c2 := FormatRouteLine(r2); c2 != c {
			t.Fatalf("%q: canonical form not stable: %q then %q", line, c, c2)
		}
	})
}
