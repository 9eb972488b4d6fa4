package dockerignore

import (
	"strings"
	"testing"
)

func TestExcluded(t *testing.T) {
	ig, err := Read(strings.NewReader(`# comment
*.log
/secret
build/
docs/**/*.tmp
!keep.log
private
!private/public.txt
**/cache
`))
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{
		"a.log":                 true,
		"keep.log":              false,
		"sub/a.log":             false, // * stays within one name
		"secret":                true,
		"secret/inner":          true, // a directory excludes its content
		"build/out/x":           true,
		"docs/a/b/c.tmp":        true,
		"docs/c.tmp":            true,
		"docs/c.txt":            false,
		"private/key":           true,
		"private/public.txt":    false,
		"src/deep/cache/x":      true,
		"cache":                 true,
		"Dockerfile":            false,
		"./secret":              true,
		"src/secret":            false,
		"notsecret":             false,
		"privatefile":           false,
		"private/sub/public.tx": true,
	} {
		if got := ig.Excluded(p); got != want {
			t.Errorf("Excluded(%q) = %v, want %v", p, got, want)
		}
	}
	if !ig.HasExceptions() {
		t.Error("HasExceptions false")
	}
	var none *Ignore
	if none.Excluded("x") || none.HasExceptions() {
		t.Error("a nil Ignore excludes")
	}
	if _, err := New([]string{"!"}); err == nil {
		t.Error("a bare ! accepted")
	}
}
