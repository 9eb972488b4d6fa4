package builder

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/containerd/errdefs"
)

// Instruction is one instruction of a Dockerfile, its continuation lines
// joined.
type Instruction struct {
	Cmd      string   // upper case: FROM, RUN, …
	Flags    []string // leading --name=value options (COPY --chown=1:1)
	Rest     string   // the text after the instruction and its flags
	JSON     bool     // Rest is a JSON array of strings (exec form), in Args
	Args     []string // the JSON form's strings
	Original string   // the instruction as written, for "Step 1/5 : …"
	Line     int      // its first line
}

// Dockerfile is a parsed Dockerfile.
type Dockerfile struct {
	Escape       rune
	Instructions []Instruction
}

var directiveRe = regexp.MustCompile(`^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`)

// flagged are the instructions whose leading --options are read as flags.
var flagged = map[string]bool{"FROM": true, "RUN": true, "COPY": true, "ADD": true}

// Parse reads a Dockerfile as docker's parser does: parser directives at
// the top (escape; syntax is ignored), comments, line continuations with
// the escape character, and each instruction's exec (JSON) or shell form.
func Parse(r io.Reader) (*Dockerfile, error) {
	d := &Dockerfile{Escape: '\\'}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	directives := true
	seen := map[string]bool{}
	var (
		cur       strings.Builder
		curLine   int
		continued bool
		lineNo    int
	)
	flush := func() error {
		text := strings.TrimSpace(cur.String())
		cur.Reset()
		continued = false
		if text == "" {
			return nil
		}
		in, err := parseInstruction(text, curLine)
		if err != nil {
			return err
		}
		d.Instructions = append(d.Instructions, in)
		return nil
	}
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		if lineNo == 1 {
			line = strings.TrimPrefix(line, "\ufeff")
		}
		if directives {
			if m := directiveRe.FindStringSubmatch(line); m != nil {
				name := strings.ToLower(m[1])
				if name == "escape" || name == "syntax" || name == "check" {
					if seen[name] {
						return nil, fmt.Errorf("only one %s parser directive can be used: %w", name, errdefs.ErrInvalidArgument)
					}
					seen[name] = true
					if name == "escape" {
						if m[2] != "\\" && m[2] != "`" {
							return nil, fmt.Errorf("invalid escape token '%s' does not match ` or \\: %w", m[2], errdefs.ErrInvalidArgument)
						}
						d.Escape = rune(m[2][0])
					}
					continue
				}
			}
			directives = false
		}
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue // a comment, also between continuation lines
		}
		if trimmed == "" {
			if !continued {
				continue
			}
			continue // empty continuation lines are skipped, as docker does
		}
		if !continued {
			curLine = lineNo
		}
		l := strings.TrimRightFunc(line, func(r rune) bool { return r == ' ' || r == '\t' || r == '\r' })
		if strings.HasSuffix(l, string(d.Escape)) {
			cur.WriteString(strings.TrimSuffix(l, string(d.Escape)))
			continued = true
			continue
		}
		cur.WriteString(l)
		if err := flush(); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if len(d.Instructions) == 0 {
		return nil, fmt.Errorf("the Dockerfile cannot be empty: %w", errdefs.ErrInvalidArgument)
	}
	return d, nil
}

func parseInstruction(text string, line int) (Instruction, error) {
	word, rest, _ := strings.Cut(text, " ")
	if i := strings.IndexAny(word, "\t"); i >= 0 {
		word, rest = text[:i], text[i+1:]
	}
	in := Instruction{Cmd: strings.ToUpper(word), Original: text, Line: line}
	rest = strings.TrimSpace(rest)
	if flagged[in.Cmd] {
		for strings.HasPrefix(rest, "--") {
			f, r, _ := strings.Cut(rest, " ")
			in.Flags = append(in.Flags, f)
			rest = strings.TrimSpace(r)
		}
	}
	in.Rest = rest
	if strings.HasPrefix(rest, "[") {
		var args []string
		if err := json.Unmarshal([]byte(rest), &args); err == nil {
			in.JSON, in.Args = true, args
		}
	}
	return in, nil
}

// flag returns the value of --name=value among flags, and whether it was
// given.
func (in Instruction) flag(name string) (string, bool) {
	for _, f := range in.Flags {
		k, v, _ := strings.Cut(strings.TrimPrefix(f, "--"), "=")
		if k == name {
			return v, true
		}
	}
	return "", false
}

// checkFlags refuses flags other than allowed.
func (in Instruction) checkFlags(allowed ...string) error {
	for _, f := range in.Flags {
		k, _, _ := strings.Cut(strings.TrimPrefix(f, "--"), "=")
		ok := false
		for _, a := range allowed {
			ok = ok || a == k
		}
		if !ok {
			return fmt.Errorf("Dockerfile line %d: unknown flag: %s: %w", in.Line, k, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// shellWords splits s into words as the Dockerfile's shell-form
// arguments are (ENV, LABEL, COPY, …): whitespace separates words, '…'
// quotes literally, "…" quotes with expansion, the escape character
// escapes the next one, and $VAR, ${VAR}, ${VAR:-word}, ${VAR:+word} are
// expanded from lookup (unknown: empty).
func shellWords(s string, escape rune, lookup func(string) (string, bool)) ([]string, error) {
	var (
		words []string
		w     strings.Builder
		inW   bool
	)
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		c := rs[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inW {
				words = append(words, w.String())
				w.Reset()
				inW = false
			}
		case c == escape:
			inW = true
			if i+1 < len(rs) {
				i++
				w.WriteRune(rs[i])
			}
		case c == '\'':
			inW = true
			j := i + 1
			for j < len(rs) && rs[j] != '\'' {
				j++
			}
			if j >= len(rs) {
				return nil, fmt.Errorf("unexpected end of statement while looking for matching single-quote: %w", errdefs.ErrInvalidArgument)
			}
			w.WriteString(string(rs[i+1 : j]))
			i = j
		case c == '"':
			inW = true
			j := i + 1
			for ; j < len(rs) && rs[j] != '"'; j++ {
				switch {
				case rs[j] == escape && j+1 < len(rs) && (rs[j+1] == '"' || rs[j+1] == '$' || rs[j+1] == escape):
					j++
					w.WriteRune(rs[j])
				case rs[j] == '$':
					v, n, err := expandVar(rs[j:], escape, lookup)
					if err != nil {
						return nil, err
					}
					w.WriteString(v)
					j += n - 1
				default:
					w.WriteRune(rs[j])
				}
			}
			if j >= len(rs) {
				return nil, fmt.Errorf("unexpected end of statement while looking for matching double-quote: %w", errdefs.ErrInvalidArgument)
			}
			i = j
		case c == '$':
			v, n, err := expandVar(rs[i:], escape, lookup)
			if err != nil {
				return nil, err
			}
			// An unquoted expansion to nothing makes no word, as in sh.
			inW = inW || v != ""
			w.WriteString(v)
			i += n - 1
		default:
			inW = true
			w.WriteRune(c)
		}
	}
	if inW {
		words = append(words, w.String())
	}
	return words, nil
}

// expand expands variables in s without splitting it into words (JSON
// form elements, keeping quotes as they are).
func expand(s string, escape rune, lookup func(string) (string, bool)) (string, error) {
	var out strings.Builder
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		switch {
		case rs[i] == escape && i+1 < len(rs) && rs[i+1] == '$':
			out.WriteRune('$')
			i++
		case rs[i] == '$':
			v, n, err := expandVar(rs[i:], escape, lookup)
			if err != nil {
				return "", err
			}
			out.WriteString(v)
			i += n - 1
		default:
			out.WriteRune(rs[i])
		}
	}
	return out.String(), nil
}

func isNameRune(r rune, first bool) bool {
	return r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (!first && r >= '0' && r <= '9')
}

// expandVar expands the variable at the start of rs (at a '$') and
// returns its value and how many runes it took.
func expandVar(rs []rune, escape rune, lookup func(string) (string, bool)) (string, int, error) {
	if len(rs) < 2 {
		return "$", 1, nil
	}
	if rs[1] != '{' {
		j := 1
		for j < len(rs) && isNameRune(rs[j], j == 1) {
			j++
		}
		if j == 1 {
			return "$", 1, nil
		}
		v, _ := lookup(string(rs[1:j]))
		return v, j, nil
	}
	end := -1
	depth := 0
	for j := 2; j < len(rs); j++ {
		if rs[j] == '{' {
			depth++
		}
		if rs[j] == '}' {
			if depth == 0 {
				end = j
				break
			}
			depth--
		}
	}
	if end < 0 {
		return "", 0, fmt.Errorf("missing '}' in %q: %w", string(rs), errdefs.ErrInvalidArgument)
	}
	body := string(rs[2:end])
	name, word, op := body, "", ""
	for _, o := range []string{":-", ":+", "-", "+"} {
		if i := strings.Index(body, o); i > 0 {
			name, word, op = body[:i], body[i+len(o):], o
			break
		}
	}
	for i, r := range name {
		if !isNameRune(r, i == 0) {
			return "", 0, fmt.Errorf("bad substitution: ${%s}: %w", body, errdefs.ErrInvalidArgument)
		}
	}
	v, set := lookup(name)
	if op != "" {
		ww, err := expand(word, escape, lookup)
		if err != nil {
			return "", 0, err
		}
		switch op {
		case ":-":
			if v == "" {
				v = ww
			}
		case "-":
			if !set {
				v = ww
			}
		case ":+":
			if v != "" {
				v = ww
			}
		case "+":
			if set {
				v = ww
			}
		}
	}
	return v, end + 1, nil
}

// keyValues reads ENV, LABEL and ARG arguments: KEY=VALUE words, or the
// legacy "KEY VALUE" form (withLegacy) with the rest of the line the value.
func keyValues(in Instruction, escape rune, lookup func(string) (string, bool), withLegacy bool) ([][2]string, error) {
	words, err := shellWords(in.Rest, escape, lookup)
	if err != nil {
		return nil, err
	}
	if len(words) == 0 {
		return nil, fmt.Errorf("%s requires at least one argument: %w", in.Cmd, errdefs.ErrInvalidArgument)
	}
	if withLegacy && !strings.Contains(words[0], "=") {
		if len(words) < 2 {
			return nil, fmt.Errorf("%s must have two arguments: %w", in.Cmd, errdefs.ErrInvalidArgument)
		}
		// KEY VALUE: the value is the rest of the line, its words rejoined.
		return [][2]string{{words[0], strings.Join(words[1:], " ")}}, nil
	}
	var out [][2]string
	for _, w := range words {
		k, v, ok := strings.Cut(w, "=")
		if !ok && withLegacy {
			return nil, fmt.Errorf("%s names can not be blank: %q has no '=': %w", in.Cmd, w, errdefs.ErrInvalidArgument)
		}
		if k == "" {
			return nil, fmt.Errorf("%s names can not be blank: %w", in.Cmd, errdefs.ErrInvalidArgument)
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}
