package selector

import "testing"

// FuzzSelector: Parse never panics, and the canonical form of whatever
// parses parses back to the same selector (same canonical form, same
// verdict on a few label sets).
func FuzzSelector(f *testing.F) {
	for _, s := range []string{
		"", "all()", "global()", "has(a)", "!has(a)", "kubernetes.io/hostname == 'node1'",
		`a != "b"`, "a in {'x','y'}", "a not in {}", "a contains 'x'", "a starts with 'b'",
		"a ends with 'c'", "has(a) && (b == 'c' || !has(d))", "!(a == 'b' && c == \"d'\")",
		"((a == 'b'))", "in == 'x'", "not not in {'a'}", "has == 'x'",
	} {
		f.Add(s)
	}
	labelSets := []map[string]string{
		nil,
		{"a": "x"},
		{"a": "b", "b": "c", "c": "d'", "d": ""},
		{"kubernetes.io/hostname": "node1", "in": "x", "not": "a"},
	}
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := Parse(s)
		if err != nil {
			return
		}
		canon := sel.String()
		again, err := Parse(canon)
		if err != nil {
			t.Fatalf("Parse(%q) ok, but its String %q does not parse: %v", s, canon, err)
		}
		if got := again.String(); got != canon {
			t.Fatalf("round trip of %q: %q -> %q", s, canon, got)
		}
		for _, l := range labelSets {
			if sel.Matches(l) != again.Matches(l) {
				t.Fatalf("%q and %q disagree on %v", s, canon, l)
			}
		}
	})
}
