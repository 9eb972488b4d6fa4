// Package dockerignore reads .dockerignore files and matches paths of a build
// context against them, as docker does; both berth (tarring the context) and
// berthd (reading it) use it.
package dockerignore

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"regexp"
	"strings"
)

// Ignore is a .dockerignore: patterns matched against slash-separated
// paths relative to the context's root, as docker's patternmatcher does.
// A path is excluded when the last pattern matching it or one of its
// parent directories is not a "!" exception.
type Ignore struct {
	patterns []ignorePattern
}

type ignorePattern struct {
	text      string
	exclusion bool
	re        *regexp.Regexp
}

// Read reads a .dockerignore: one pattern a line, # comments.
func Read(r io.Reader) (*Ignore, error) {
	var lines []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return New(lines)
}

// New compiles patterns.
func New(lines []string) (*Ignore, error) {
	ig := &Ignore{}
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		p := ignorePattern{}
		if strings.HasPrefix(l, "!") {
			p.exclusion = true
			l = strings.TrimSpace(l[1:])
			if l == "" {
				return nil, fmt.Errorf(".dockerignore: illegal exclusion pattern: \"!\"")
			}
		}
		l = path.Clean(strings.TrimPrefix(path.Clean("/"+l), "/"))
		if l == "." || l == "" {
			l = "."
		}
		re, err := patternRegexp(l)
		if err != nil {
			return nil, fmt.Errorf(".dockerignore: pattern %q: %w", l, err)
		}
		p.text, p.re = l, re
		ig.patterns = append(ig.patterns, p)
	}
	return ig, nil
}

// patternRegexp turns a pattern into a regexp of a whole path: ** any
// number of directories, * and ? within one name, [classes], \ escapes.
func patternRegexp(p string) (*regexp.Regexp, error) {
	if p == "." {
		return regexp.Compile(`^.*$`)
	}
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '*' && i+1 < len(p) && p[i+1] == '*':
			i++
			if i+1 < len(p) && p[i+1] == '/' {
				i++
				b.WriteString(`(.*/)?`)
			} else {
				b.WriteString(`.*`)
			}
		case c == '*':
			b.WriteString(`[^/]*`)
		case c == '?':
			b.WriteString(`[^/]`)
		case c == '[':
			j := strings.IndexByte(p[i:], ']')
			if j < 0 {
				return nil, fmt.Errorf("unterminated [")
			}
			class := p[i+1 : i+j]
			if strings.HasPrefix(class, "!") {
				class = "^" + class[1:]
			}
			b.WriteString("[" + class + "]")
			i += j
		case c == '\\' && i+1 < len(p):
			i++
			b.WriteString(regexp.QuoteMeta(string(p[i])))
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

// Excluded tells whether the slash-separated path rel (relative to the
// context's root) is left out of the context.
func (ig *Ignore) Excluded(rel string) bool {
	if ig == nil || len(ig.patterns) == 0 {
		return false
	}
	rel = strings.TrimPrefix(path.Clean("/"+rel), "/")
	if rel == "" {
		return false
	}
	// The path and each of its parents: a pattern matching a directory
	// excludes what it holds.
	var prefixes []string
	parts := strings.Split(rel, "/")
	for i := range parts {
		prefixes = append(prefixes, strings.Join(parts[:i+1], "/"))
	}
	excluded := false
	for _, p := range ig.patterns {
		for _, pre := range prefixes {
			if p.re.MatchString(pre) {
				excluded = !p.exclusion
				break
			}
		}
	}
	return excluded
}

// HasExceptions tells whether any pattern is a "!" exception: a client
// walking a directory cannot then skip an excluded directory whole.
func (ig *Ignore) HasExceptions() bool {
	if ig == nil {
		return false
	}
	for _, p := range ig.patterns {
		if p.exclusion {
			return true
		}
	}
	return false
}
