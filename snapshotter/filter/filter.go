// Package filter implements containerd's filter syntax for snapshots, the
// filters a client gives to List (Walk):
//
//	kind==committed
//	parent==sha256:abc,labels."containerd.io/gc.root"
//	name~=^layer-[0-9]+$
//
// An expression is one or more selectors joined by ",", all of which must
// match (AND); Parse takes a list of expressions, any of which may match
// (OR), and an empty list matches everything. A selector is
//
//	selector  := fieldpath [operator value]
//	fieldpath := field ("." field)*
//	field     := quoted | a run of characters other than . , = ! ~ " ` and space
//	operator  := "==" | "!=" | "~="
//	value     := quoted | a run of characters other than , and space
//	quoted    := a Go string literal: "..." with escapes, or `...`
//
// The field paths of a snapshot are name, parent, kind and labels.<key>;
// the fields after "labels." are joined with "." to form the key, so
// labels.a.b and labels."a.b" name the same label. A bare field path
// matches when the field is present: name, parent and kind when not empty,
// a label when the key is set. "==" matches a present field with that
// value; "!=" is its negation, so it also matches a missing label; "~="
// matches a present field against a regular expression (Go's RE2 syntax,
// unanchored). Spaces between tokens are ignored.
package filter

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/containerd/errdefs"

	"github.com/berth-project/berth/snapshotter"
)

// Filter reports whether a snapshot matches.
type Filter func(snapshotter.Info) bool

// Parse parses filter expressions into one Filter that matches a snapshot
// when any of them does. No expressions, or only empty ones, match all.
// Errors wrap errdefs.ErrInvalidArgument and say where the expression went
// wrong.
func Parse(exprs ...string) (Filter, error) {
	var ors [][]selector
	for _, expr := range exprs {
		if strings.TrimSpace(expr) == "" {
			// An empty expression has no selectors, so it matches all
			// (containerd's clients send [""] for "no filter").
			return func(snapshotter.Info) bool { return true }, nil
		}
		sels, err := parseExpr(expr)
		if err != nil {
			return nil, err
		}
		ors = append(ors, sels)
	}
	if len(ors) == 0 {
		return func(snapshotter.Info) bool { return true }, nil
	}
	return func(info snapshotter.Info) bool {
		for _, and := range ors {
			if matchAll(and, info) {
				return true
			}
		}
		return false
	}, nil
}

func matchAll(sels []selector, info snapshotter.Info) bool {
	for _, s := range sels {
		if !s.match(info) {
			return false
		}
	}
	return true
}

type operator int

const (
	opPresent operator = iota
	opEqual
	opNotEqual
	opMatches
)

// selector is one parsed <fieldpath>[<operator><value>].
type selector struct {
	field string // name, parent, kind or labels
	key   string // the label key for labels
	op    operator
	value string
	re    *regexp.Regexp // for opMatches
}

// get returns the selector's field of info and whether it is present.
func (s *selector) get(info snapshotter.Info) (string, bool) {
	switch s.field {
	case "name":
		return info.Name, info.Name != ""
	case "parent":
		return info.Parent, info.Parent != ""
	case "kind":
		if info.Kind == snapshotter.KindUnknown {
			return "", false
		}
		return info.Kind.String(), true
	case "labels":
		v, ok := info.Labels[s.key]
		return v, ok
	}
	return "", false
}

func (s *selector) match(info snapshotter.Info) bool {
	v, ok := s.get(info)
	switch s.op {
	case opPresent:
		return ok
	case opEqual:
		return ok && v == s.value
	case opNotEqual:
		return !ok || v != s.value
	case opMatches:
		return ok && s.re.MatchString(v)
	}
	return false
}

// parser is a hand-written scanner over one expression; pos is a byte
// offset into expr, reported in errors so a user sees where it broke.
type parser struct {
	expr string
	pos  int
}

// errorf returns an InvalidArgument error pointing at byte offset at.
func (p *parser) errorf(at int, format string, args ...any) error {
	return fmt.Errorf("filter %q: at offset %d: %s: %w", p.expr, at, fmt.Sprintf(format, args...), errdefs.ErrInvalidArgument)
}

func parseExpr(expr string) ([]selector, error) {
	p := &parser{expr: expr}
	var sels []selector
	for {
		p.skipSpace()
		s, err := p.selector()
		if err != nil {
			return nil, err
		}
		sels = append(sels, s)
		p.skipSpace()
		if p.eof() {
			return sels, nil
		}
		if p.peek() != ',' {
			return nil, p.errorf(p.pos, "expected \",\" or the end, found %q", p.rest())
		}
		p.pos++
	}
}

func (p *parser) selector() (selector, error) {
	start := p.pos
	path, err := p.fieldpath()
	if err != nil {
		return selector{}, err
	}
	s, err := p.resolve(start, path)
	if err != nil {
		return selector{}, err
	}
	p.skipSpace()
	opAt := p.pos
	switch {
	case p.eof() || p.peek() == ',':
		s.op = opPresent
		return s, nil
	case strings.HasPrefix(p.expr[p.pos:], "=="):
		s.op = opEqual
	case strings.HasPrefix(p.expr[p.pos:], "!="):
		s.op = opNotEqual
	case strings.HasPrefix(p.expr[p.pos:], "~="):
		s.op = opMatches
	default:
		return selector{}, p.errorf(p.pos, "expected an operator (==, != or ~=), \",\" or the end, found %q", p.rest())
	}
	p.pos += 2
	p.skipSpace()
	valueAt := p.pos
	if s.value, err = p.value(opAt); err != nil {
		return selector{}, err
	}
	if s.op == opMatches {
		if s.re, err = regexp.Compile(s.value); err != nil {
			return selector{}, p.errorf(valueAt, "bad regular expression: %v", err)
		}
	}
	return s, nil
}

// resolve checks that path names a field of a snapshot.
func (p *parser) resolve(at int, path []string) (selector, error) {
	switch path[0] {
	case "name", "parent", "kind":
		if len(path) > 1 {
			return selector{}, p.errorf(at, "field %q has no subfields", path[0])
		}
		return selector{field: path[0]}, nil
	case "labels":
		if len(path) < 2 {
			return selector{}, p.errorf(at, "labels needs a key: labels.<key>")
		}
		return selector{field: "labels", key: strings.Join(path[1:], ".")}, nil
	}
	return selector{}, p.errorf(at, "unknown field %q: want name, parent, kind or labels.<key>", path[0])
}

func (p *parser) fieldpath() ([]string, error) {
	var path []string
	for {
		f, err := p.field()
		if err != nil {
			return nil, err
		}
		path = append(path, f)
		if p.eof() || p.peek() != '.' {
			return path, nil
		}
		p.pos++
	}
}

func (p *parser) field() (string, error) {
	if p.eof() {
		return "", p.errorf(p.pos, "expected a field, found the end")
	}
	if isQuote(p.peek()) {
		return p.quoted()
	}
	start := p.pos
	for !p.eof() {
		r, n := p.peekRune()
		if !isFieldRune(r) {
			break
		}
		p.pos += n
	}
	if p.pos == start {
		return "", p.errorf(p.pos, "expected a field, found %q", p.rest())
	}
	return p.expr[start:p.pos], nil
}

// value scans the value after the operator at opAt.
func (p *parser) value(opAt int) (string, error) {
	if !p.eof() && isQuote(p.peek()) {
		return p.quoted()
	}
	start := p.pos
	for !p.eof() {
		r, n := p.peekRune()
		if r == ',' || unicode.IsSpace(r) {
			break
		}
		p.pos += n
	}
	if p.pos == start {
		// An empty value is likely a mistake; "" says it on purpose.
		return "", p.errorf(p.pos, "expected a value after %q (quote an empty one: \"\")", p.expr[opAt:opAt+2])
	}
	return p.expr[start:p.pos], nil
}

// quoted scans a Go string literal and returns its unquoted value.
func (p *parser) quoted() (string, error) {
	start := p.pos
	q := p.peek()
	p.pos++
	for !p.eof() {
		c := p.peek()
		switch {
		case c == '\\' && q == '"':
			p.pos += 2 // the escaped byte cannot end the string
			continue
		case c == q:
			p.pos++
			s, err := strconv.Unquote(p.expr[start:p.pos])
			if err != nil {
				return "", p.errorf(start, "bad quoted string %s: %v", p.expr[start:p.pos], err)
			}
			return s, nil
		}
		p.pos++
	}
	return "", p.errorf(start, "unterminated quoted string %s", p.expr[start:])
}

func (p *parser) eof() bool  { return p.pos >= len(p.expr) }
func (p *parser) peek() byte { return p.expr[p.pos] }
func (p *parser) rest() string {
	if p.eof() {
		return ""
	}
	return p.expr[p.pos:]
}

// peekRune returns the rune at pos and its length in bytes (1 for a
// byte that is not UTF-8, which then matches as a plain character).
func (p *parser) peekRune() (rune, int) {
	return utf8.DecodeRuneInString(p.expr[p.pos:])
}

func (p *parser) skipSpace() {
	for !p.eof() {
		r, n := p.peekRune()
		if !unicode.IsSpace(r) {
			return
		}
		p.pos += n
	}
}

func isQuote(c byte) bool { return c == '"' || c == '`' }

// isFieldRune: everything but the characters that separate or quote, so
// that common label keys (io.kubernetes.pod-name) need no quotes.
func isFieldRune(r rune) bool {
	return !unicode.IsSpace(r) && !strings.ContainsRune(".,=!~\"`", r)
}
