package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"text/template"
	"unicode"
	"unicode/utf8"
)

// A --format value is docker's: empty or "table" for the command's
// default table, "table <template>" for a table of one's own (headers
// come from the fields the template names), "json" for one JSON object
// per line, or any other Go template, executed per item. `\t` and `\n`
// in a template are a tab and a newline.
const (
	formatTable = "table"
	formatJSON  = "json"
)

// templateFuncs are the functions docker's templates have.
var templateFuncs = template.FuncMap{
	"json": func(v any) (string, error) {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return "", err
		}
		return strings.TrimSpace(buf.String()), nil
	},
	"split": strings.Split,
	"join":  strings.Join,
	"title": func(s string) string {
		r, n := utf8.DecodeRuneInString(s)
		return string(unicode.ToUpper(r)) + s[n:]
	},
	"lower": strings.ToLower,
	"upper": strings.ToUpper,
	"pad": func(s string, before, after int) string {
		return strings.Repeat(" ", before) + s + strings.Repeat(" ", after)
	},
	"truncate": func(s string, n int) string {
		if utf8.RuneCountInString(s) <= n {
			return s
		}
		return string([]rune(s)[:n])
	},
}

// parseTemplate parses a --format template with docker's functions.
func parseTemplate(text string) (*template.Template, error) {
	text = strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(text)
	t, err := template.New("").Funcs(templateFuncs).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("template parsing error: %w", err)
	}
	return t, nil
}

// list writes rows as format asks: defaultTable is the template of the
// default table, and headers maps the fields a table template may name to
// their column headers.
func list(out io.Writer, format, defaultTable string, headers map[string]string, rows []any) error {
	text, table := format, false
	switch {
	case format == "" || format == formatTable:
		text, table = defaultTable, true
	case strings.HasPrefix(format, formatTable+" "):
		text, table = strings.TrimSpace(format[len(formatTable):]), true
	case format == formatJSON:
		text = "{{json .}}"
	}
	t, err := parseTemplate(text)
	if err != nil {
		return err
	}
	w := out
	var tw *tabwriter.Writer
	if table {
		// docker's table layout: columns at least 10 wide, 3 spaces apart.
		tw = tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)
		w = tw
		if err := executeLine(w, t, headers); err != nil {
			return err
		}
	}
	for _, r := range rows {
		if err := executeLine(w, t, r); err != nil {
			return err
		}
	}
	if tw != nil {
		return tw.Flush()
	}
	return nil
}

// one writes a single object (version, info) with a --format template;
// "json" is the object as JSON.
func one(out io.Writer, format string, v any) error {
	if format == formatJSON {
		format = "{{json .}}"
	}
	t, err := parseTemplate(format)
	if err != nil {
		return &StatusError{Code: 64, Msg: err.Error()}
	}
	return executeLine(out, t, v)
}

func executeLine(w io.Writer, t *template.Template, v any) error {
	var buf bytes.Buffer
	if err := t.Execute(&buf, v); err != nil {
		return fmt.Errorf("format: %w", err)
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}
