package selector

import (
	"strings"
	"testing"
)

func TestParseAndMatch(t *testing.T) {
	labels := map[string]string{
		"kubernetes.io/hostname": "node1",
		"zone":                   "a",
		"rack":                   "r1",
		"edge":                   "",
	}
	cases := []struct {
		sel   string
		match bool
		canon string
	}{
		{"", true, "all()"},
		{"  ", true, "all()"},
		{"all()", true, "all()"},
		{"global()", true, "global()"},
		{"kubernetes.io/hostname == 'node1'", true, `kubernetes.io/hostname == "node1"`},
		{"kubernetes.io/hostname == 'node2'", false, `kubernetes.io/hostname == "node2"`},
		{`zone != "a"`, false, `zone != "a"`},
		{`missing != "a"`, true, `missing != "a"`},
		{"has(edge)", true, "has(edge)"},
		{"!has(edge)", false, "!has(edge)"},
		{"!has(x)", true, "!has(x)"},
		{"zone in {'b', 'a'}", true, `zone in {"a", "b"}`},
		{"zone in {}", false, "zone in {}"},
		{"zone not in {'b'}", true, `zone not in {"b"}`},
		{"missing not in {'b'}", true, `missing not in {"b"}`},
		{"missing in {'b'}", false, `missing in {"b"}`},
		{"rack contains '1'", true, `rack contains "1"`},
		{"rack starts with 'r'", true, `rack starts with "r"`},
		{"rack ends with 'x'", false, `rack ends with "x"`},
		{"zone == 'a' && rack == 'r1'", true, `zone == "a" && rack == "r1"`},
		{"zone == 'b' || rack == 'r1'", true, `zone == "b" || rack == "r1"`},
		{"zone == 'b' || rack == 'r1' && has(nope)", false, `zone == "b" || rack == "r1" && has(nope)`},
		{"(zone == 'b' || rack == 'r1') && has(edge)", true, `(zone == "b" || rack == "r1") && has(edge)`},
		{"!(zone == 'a' && has(edge))", false, `!(zone == "a" && has(edge))`},
		{"((has(zone)))", true, "has(zone)"},
		{"a == 'x\"y'", false, `a == 'x"y'`},
		{"has(a) && (has(b) && has(c))", false, "has(a) && has(b) && has(c)"},
		{"!!has(zone)", true, "!!has(zone)"},
	}
	for _, c := range cases {
		sel, err := Parse(c.sel)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.sel, err)
			continue
		}
		if got := sel.Matches(labels); got != c.match {
			t.Errorf("%q matches = %v, want %v", c.sel, got, c.match)
		}
		if got := sel.String(); got != c.canon {
			t.Errorf("%q String = %q, want %q", c.sel, got, c.canon)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, s := range []string{
		"zone = 'a'", "zone == a", "zone ==", "has(", "has()", "has(a", "all(", "foo()",
		"zone in 'a'", "zone in {'a' 'b'}", "zone in {'a',}", "zone", "&& has(a)",
		"has(a) &&", "has(a) & has(b)", "has(a) | has(b)", "(has(a)", "has(a))",
		"'unterminated", "zone == 'a' extra", "zone not {'a'}", "zone starts 'a'",
		"zone # 'a'", strings.Repeat("(", 100) + "all()" + strings.Repeat(")", 100),
		strings.Repeat("!", 100) + "all()",
	} {
		if sel, err := Parse(s); err == nil {
			t.Errorf("Parse(%q) = %v, want an error", s, sel)
		}
	}
}
