package builder

import (
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	df, err := Parse(strings.NewReader(`# escape=` + "`" + `
# a comment
FROM busybox AS base

run echo a ` + "`" + `
  # a comment inside
  b ` + "`" + `

  c
CMD ["sh", "-c", "echo hi"]
COPY --chown=1:2 a b /dst/
ENTRYPOINT [not json
`))
	if err != nil {
		t.Fatal(err)
	}
	if df.Escape != '`' {
		t.Errorf("escape %q, want `", df.Escape)
	}
	var got []string
	for _, in := range df.Instructions {
		got = append(got, in.Cmd+"|"+strings.Join(in.Flags, ",")+"|"+in.Rest)
	}
	want := []string{
		"FROM||busybox AS base",
		"RUN||echo a   b   c",
		`CMD||["sh", "-c", "echo hi"]`,
		"COPY|--chown=1:2|a b /dst/",
		"ENTRYPOINT||[not json",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("instructions:\n%q\nwant\n%q", got, want)
	}
	if in := df.Instructions[2]; !in.JSON || !reflect.DeepEqual(in.Args, []string{"sh", "-c", "echo hi"}) {
		t.Errorf("CMD: JSON %v args %q", in.JSON, in.Args)
	}
	if df.Instructions[4].JSON {
		t.Error("ENTRYPOINT [not json: read as JSON")
	}
	if df.Instructions[1].Line != 5 || df.Instructions[2].Line != 10 {
		t.Errorf("lines %d, %d; want 5, 10", df.Instructions[1].Line, df.Instructions[2].Line)
	}
	if v, ok := df.Instructions[3].flag("chown"); !ok || v != "1:2" {
		t.Errorf("--chown: %q %v", v, ok)
	}

	// A directive after an instruction is a comment; a bad escape fails.
	df, err = Parse(strings.NewReader("FROM x\n# escape=`\nRUN a \\\n b\n"))
	if err != nil || df.Escape != '\\' || df.Instructions[1].Rest != "a  b" {
		t.Errorf("late directive: %+v, %v", df, err)
	}
	if _, err := Parse(strings.NewReader("# escape=x\nFROM x\n")); err == nil {
		t.Error("escape=x accepted")
	}
	if _, err := Parse(strings.NewReader("# only a comment\n\n")); err == nil {
		t.Error("an empty Dockerfile accepted")
	}
}

func TestShellWords(t *testing.T) {
	vars := map[string]string{"A": "one", "EMPTY": "", "SP": "a b"}
	lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	for _, c := range []struct {
		in   string
		want []string
	}{
		{`a b  c`, []string{"a", "b", "c"}},
		{`K=$A K2=${A}x`, []string{"K=one", "K2=onex"}},
		{`"$SP" '$A' \$A`, []string{"a b", "$A", "$A"}},
		{`${NOPE:-def} ${EMPTY:-d2} ${EMPTY-d3} ${A:+alt} ${NOPE:+alt}x`, []string{"def", "d2", "alt", "x"}},
		{`K="quoted \"value\"" L=a\ b`, []string{`K=quoted "value"`, "L=a b"}},
		{`$ $1 cost$`, []string{"$", "$1", "cost$"}},
	} {
		got, err := shellWords(c.in, '\\', lookup)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("shellWords(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{`'open`, `"open`, `${A`, `${A B}`} {
		if got, err := shellWords(bad, '\\', lookup); err == nil {
			t.Errorf("shellWords(%q) = %q, want an error", bad, got)
		}
	}
}

func TestKeyValues(t *testing.T) {
	lookup := func(string) (string, bool) { return "", false }
	kv, err := keyValues(Instruction{Cmd: "ENV", Rest: "A=1 B=\"two words\""}, '\\', lookup, true)
	if err != nil || !reflect.DeepEqual(kv, [][2]string{{"A", "1"}, {"B", "two words"}}) {
		t.Errorf("ENV A=1 B=…: %q, %v", kv, err)
	}
	kv, err = keyValues(Instruction{Cmd: "ENV", Rest: "A the rest  of it"}, '\\', lookup, true)
	if err != nil || !reflect.DeepEqual(kv, [][2]string{{"A", "the rest of it"}}) {
		t.Errorf("legacy ENV A value: %q, %v", kv, err)
	}
	if _, err := keyValues(Instruction{Cmd: "ENV", Rest: "A=1 B"}, '\\', lookup, true); err == nil {
		t.Error("ENV A=1 B accepted")
	}
}
