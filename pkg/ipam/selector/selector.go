// Package selector parses and evaluates Calico's label selector syntax, as
// used by IPPool.spec.nodeSelector and BGPPeer.spec.nodeSelector/peerSelector:
//
//	all()                         every label set ("" means the same)
//	global()                      every label set (kept for Calico parity)
//	has(k)   !has(k)              label k is present / absent
//	k == 'v'   k != "v"           equal; != also matches when k is absent
//	k in {'a', 'b'}               present with one of the values
//	k not in {'a'}                absent, or none of the values
//	k contains 's'                present, value contains s
//	k starts with 's'             present, value has prefix s
//	k ends with 's'               present, value has suffix s
//	!e   e && e   e || e   (e)    ! binds tightest, then &&, then ||
//
// Strings are quoted with ' or " and have no escapes. Label keys are made of
// letters, digits and _ . / - (kubernetes.io/hostname).
//
// A parsed Selector has a canonical String form (double quotes unless the
// value holds one, single spaces, parentheses only where needed) that parses
// back to the same selector.
package selector

import (
	"fmt"
	"sort"
	"strings"
)

// Selector is a parsed selector.
type Selector interface {
	// Matches reports whether labels satisfy the selector.
	Matches(labels map[string]string) bool
	// String is the canonical text of the selector.
	String() string
}

// maxDepth bounds nesting so that hostile input cannot exhaust the stack.
const maxDepth = 64

// MustParse is Parse for selectors known to be valid; it panics otherwise.
func MustParse(s string) Selector {
	sel, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return sel
}

// All is the selector that matches everything.
var All Selector = allSel{}

// Parse parses a selector; the empty (or blank) string is all().
func Parse(s string) (Selector, error) {
	p := &parser{src: s}
	if err := p.lex(); err != nil {
		return nil, err
	}
	if len(p.toks) == 0 {
		return All, nil
	}
	sel, err := p.parseOr(0)
	if err != nil {
		return nil, err
	}
	if p.pos < len(p.toks) {
		return nil, p.errorf(p.toks[p.pos], "unexpected %s", p.toks[p.pos])
	}
	return sel, nil
}

// ---- lexer

type tokKind int

const (
	tIdent tokKind = iota
	tString
	tLParen
	tRParen
	tLBrace
	tRBrace
	tComma
	tNot
	tAnd
	tOr
	tEq
	tNe
)

type token struct {
	kind tokKind
	text string // identifier or string value
	pos  int
}

func (t token) String() string {
	switch t.kind {
	case tIdent:
		return fmt.Sprintf("%q", t.text)
	case tString:
		return "string " + quote(t.text)
	}
	return fmt.Sprintf("%q", [...]string{"", "", "(", ")", "{", "}", ",", "!", "&&", "||", "==", "!="}[t.kind])
}

type parser struct {
	src  string
	toks []token
	pos  int
}

func isIdentByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '.' || c == '/' || c == '-'
}

func (p *parser) lex() error {
	s := p.src
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(':
			p.toks = append(p.toks, token{kind: tLParen, pos: i})
			i++
		case c == ')':
			p.toks = append(p.toks, token{kind: tRParen, pos: i})
			i++
		case c == '{':
			p.toks = append(p.toks, token{kind: tLBrace, pos: i})
			i++
		case c == '}':
			p.toks = append(p.toks, token{kind: tRBrace, pos: i})
			i++
		case c == ',':
			p.toks = append(p.toks, token{kind: tComma, pos: i})
			i++
		case c == '!':
			if i+1 < len(s) && s[i+1] == '=' {
				p.toks = append(p.toks, token{kind: tNe, pos: i})
				i += 2
			} else {
				p.toks = append(p.toks, token{kind: tNot, pos: i})
				i++
			}
		case c == '=':
			if i+1 < len(s) && s[i+1] == '=' {
				p.toks = append(p.toks, token{kind: tEq, pos: i})
				i += 2
			} else {
				return fmt.Errorf("selector %q: at %d: '=' must be '=='", s, i)
			}
		case c == '&':
			if i+1 < len(s) && s[i+1] == '&' {
				p.toks = append(p.toks, token{kind: tAnd, pos: i})
				i += 2
			} else {
				return fmt.Errorf("selector %q: at %d: '&' must be '&&'", s, i)
			}
		case c == '|':
			if i+1 < len(s) && s[i+1] == '|' {
				p.toks = append(p.toks, token{kind: tOr, pos: i})
				i += 2
			} else {
				return fmt.Errorf("selector %q: at %d: '|' must be '||'", s, i)
			}
		case c == '\'' || c == '"':
			end := strings.IndexByte(s[i+1:], c)
			if end < 0 {
				return fmt.Errorf("selector %q: at %d: unterminated string", s, i)
			}
			p.toks = append(p.toks, token{kind: tString, text: s[i+1 : i+1+end], pos: i})
			i += end + 2
		case isIdentByte(c):
			j := i
			for j < len(s) && isIdentByte(s[j]) {
				j++
			}
			p.toks = append(p.toks, token{kind: tIdent, text: s[i:j], pos: i})
			i = j
		default:
			return fmt.Errorf("selector %q: at %d: unexpected character %q", s, i, c)
		}
	}
	return nil
}

// ---- parser

func (p *parser) errorf(t token, format string, args ...any) error {
	return fmt.Errorf("selector %q: at %d: %s", p.src, t.pos, fmt.Sprintf(format, args...))
}

func (p *parser) errEOF(what string) error {
	return fmt.Errorf("selector %q: unexpected end, expected %s", p.src, what)
}

func (p *parser) peek(k int) (token, bool) {
	if p.pos+k < len(p.toks) {
		return p.toks[p.pos+k], true
	}
	return token{}, false
}

func (p *parser) peekKind(k int, kind tokKind) bool {
	t, ok := p.peek(k)
	return ok && t.kind == kind
}

func (p *parser) peekIdent(k int, text string) bool {
	t, ok := p.peek(k)
	return ok && t.kind == tIdent && t.text == text
}

func (p *parser) expect(kind tokKind, what string) (token, error) {
	t, ok := p.peek(0)
	if !ok {
		return t, p.errEOF(what)
	}
	if t.kind != kind {
		return t, p.errorf(t, "expected %s, found %s", what, t)
	}
	p.pos++
	return t, nil
}

func (p *parser) parseOr(depth int) (Selector, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("selector %q: nested too deeply", p.src)
	}
	first, err := p.parseAnd(depth)
	if err != nil {
		return nil, err
	}
	ops := []Selector{first}
	for p.peekKind(0, tOr) {
		p.pos++
		next, err := p.parseAnd(depth)
		if err != nil {
			return nil, err
		}
		ops = append(ops, next)
	}
	return newOr(ops), nil
}

func (p *parser) parseAnd(depth int) (Selector, error) {
	first, err := p.parseUnary(depth)
	if err != nil {
		return nil, err
	}
	ops := []Selector{first}
	for p.peekKind(0, tAnd) {
		p.pos++
		next, err := p.parseUnary(depth)
		if err != nil {
			return nil, err
		}
		ops = append(ops, next)
	}
	return newAnd(ops), nil
}

func (p *parser) parseUnary(depth int) (Selector, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("selector %q: nested too deeply", p.src)
	}
	if p.peekKind(0, tNot) {
		p.pos++
		inner, err := p.parseUnary(depth + 1)
		if err != nil {
			return nil, err
		}
		return notSel{inner}, nil
	}
	return p.parsePrimary(depth)
}

func (p *parser) parsePrimary(depth int) (Selector, error) {
	t, ok := p.peek(0)
	if !ok {
		return nil, p.errEOF("an expression")
	}
	switch t.kind {
	case tLParen:
		p.pos++
		inner, err := p.parseOr(depth + 1)
		if err != nil {
			return nil, err
		}
		if _, err := p.expect(tRParen, "')'"); err != nil {
			return nil, err
		}
		return inner, nil
	case tIdent:
	default:
		return nil, p.errorf(t, "expected a label key, has(), all() or '(', found %s", t)
	}
	// Function forms: all(), global(), has(key).
	if p.peekKind(1, tLParen) {
		switch t.text {
		case "all", "global":
			p.pos += 2
			if _, err := p.expect(tRParen, "')'"); err != nil {
				return nil, err
			}
			if t.text == "all" {
				return allSel{}, nil
			}
			return globalSel{}, nil
		case "has":
			p.pos += 2
			k, err := p.expect(tIdent, "a label key")
			if err != nil {
				return nil, err
			}
			if _, err := p.expect(tRParen, "')'"); err != nil {
				return nil, err
			}
			return hasSel{k.text}, nil
		}
		return nil, p.errorf(t, "unknown function %s()", t.text)
	}
	key := t.text
	p.pos++
	op, ok := p.peek(0)
	if !ok {
		return nil, p.errEOF("an operator after label " + quote(key))
	}
	switch {
	case op.kind == tEq || op.kind == tNe:
		p.pos++
		v, err := p.expect(tString, "a quoted string")
		if err != nil {
			return nil, err
		}
		if op.kind == tEq {
			return cmpSel{opEq, key, v.text}, nil
		}
		return cmpSel{opNe, key, v.text}, nil
	case op.kind == tIdent && op.text == "in":
		p.pos++
		set, err := p.parseSet()
		if err != nil {
			return nil, err
		}
		return inSel{key: key, values: set}, nil
	case op.kind == tIdent && op.text == "not" && p.peekIdent(1, "in"):
		p.pos += 2
		set, err := p.parseSet()
		if err != nil {
			return nil, err
		}
		return inSel{key: key, values: set, not: true}, nil
	case op.kind == tIdent && op.text == "contains":
		p.pos++
		v, err := p.expect(tString, "a quoted string")
		if err != nil {
			return nil, err
		}
		return cmpSel{opContains, key, v.text}, nil
	case op.kind == tIdent && (op.text == "starts" || op.text == "ends") && p.peekIdent(1, "with"):
		p.pos += 2
		v, err := p.expect(tString, "a quoted string")
		if err != nil {
			return nil, err
		}
		if op.text == "starts" {
			return cmpSel{opStarts, key, v.text}, nil
		}
		return cmpSel{opEnds, key, v.text}, nil
	}
	return nil, p.errorf(op, "expected ==, !=, in, not in, contains, starts with or ends with after label %s, found %s", quote(key), op)
}

func (p *parser) parseSet() ([]string, error) {
	if _, err := p.expect(tLBrace, "'{'"); err != nil {
		return nil, err
	}
	var vals []string
	if p.peekKind(0, tRBrace) {
		p.pos++
		return normSet(vals), nil
	}
	for {
		v, err := p.expect(tString, "a quoted string")
		if err != nil {
			return nil, err
		}
		vals = append(vals, v.text)
		t, ok := p.peek(0)
		if !ok {
			return nil, p.errEOF("',' or '}'")
		}
		p.pos++
		switch t.kind {
		case tComma:
			continue
		case tRBrace:
			return normSet(vals), nil
		}
		return nil, p.errorf(t, "expected ',' or '}', found %s", t)
	}
}

// normSet sorts and de-duplicates a value set: sets have no order.
func normSet(v []string) []string {
	sort.Strings(v)
	out := v[:0]
	for i, s := range v {
		if i == 0 || s != v[i-1] {
			out = append(out, s)
		}
	}
	return out
}

// ---- AST

type allSel struct{}

func (allSel) Matches(map[string]string) bool { return true }
func (allSel) String() string                 { return "all()" }

type globalSel struct{}

func (globalSel) Matches(map[string]string) bool { return true }
func (globalSel) String() string                 { return "global()" }

type hasSel struct{ key string }

func (s hasSel) Matches(l map[string]string) bool { _, ok := l[s.key]; return ok }
func (s hasSel) String() string                   { return "has(" + s.key + ")" }

type cmpOp int

const (
	opEq cmpOp = iota
	opNe
	opContains
	opStarts
	opEnds
)

type cmpSel struct {
	op    cmpOp
	key   string
	value string
}

func (s cmpSel) Matches(l map[string]string) bool {
	v, ok := l[s.key]
	switch s.op {
	case opEq:
		return ok && v == s.value
	case opNe:
		return !ok || v != s.value
	case opContains:
		return ok && strings.Contains(v, s.value)
	case opStarts:
		return ok && strings.HasPrefix(v, s.value)
	default:
		return ok && strings.HasSuffix(v, s.value)
	}
}

func (s cmpSel) String() string {
	op := [...]string{" == ", " != ", " contains ", " starts with ", " ends with "}[s.op]
	return s.key + op + quote(s.value)
}

type inSel struct {
	key    string
	values []string // sorted, unique
	not    bool
}

func (s inSel) Matches(l map[string]string) bool {
	v, ok := l[s.key]
	found := false
	if ok {
		i := sort.SearchStrings(s.values, v)
		found = i < len(s.values) && s.values[i] == v
	}
	return found != s.not
}

func (s inSel) String() string {
	var b strings.Builder
	b.WriteString(s.key)
	if s.not {
		b.WriteString(" not in {")
	} else {
		b.WriteString(" in {")
	}
	for i, v := range s.values {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quote(v))
	}
	b.WriteString("}")
	return b.String()
}

type notSel struct{ inner Selector }

func (s notSel) Matches(l map[string]string) bool { return !s.inner.Matches(l) }
func (s notSel) String() string {
	switch s.inner.(type) {
	case andSel, orSel:
		return "!(" + s.inner.String() + ")"
	}
	return "!" + s.inner.String()
}

type andSel []Selector

func newAnd(ops []Selector) Selector {
	if len(ops) == 1 {
		return ops[0]
	}
	var out andSel
	for _, o := range ops {
		if a, ok := o.(andSel); ok { // (a && b) && c is a && b && c
			out = append(out, a...)
		} else {
			out = append(out, o)
		}
	}
	return out
}

func (s andSel) Matches(l map[string]string) bool {
	for _, o := range s {
		if !o.Matches(l) {
			return false
		}
	}
	return true
}

func (s andSel) String() string {
	parts := make([]string, len(s))
	for i, o := range s {
		if _, ok := o.(orSel); ok {
			parts[i] = "(" + o.String() + ")"
		} else {
			parts[i] = o.String()
		}
	}
	return strings.Join(parts, " && ")
}

type orSel []Selector

func newOr(ops []Selector) Selector {
	if len(ops) == 1 {
		return ops[0]
	}
	var out orSel
	for _, o := range ops {
		if a, ok := o.(orSel); ok {
			out = append(out, a...)
		} else {
			out = append(out, o)
		}
	}
	return out
}

func (s orSel) Matches(l map[string]string) bool {
	for _, o := range s {
		if o.Matches(l) {
			return true
		}
	}
	return false
}

func (s orSel) String() string {
	parts := make([]string, len(s))
	for i, o := range s {
		parts[i] = o.String()
	}
	return strings.Join(parts, " || ")
}

// quote quotes a value with " unless it contains one. (A parsed value never
// contains both quote characters.)
func quote(v string) string {
	if strings.IndexByte(v, '"') >= 0 {
		return "'" + v + "'"
	}
	return `"` + v + `"`
}
