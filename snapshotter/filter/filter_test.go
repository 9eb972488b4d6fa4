package filter

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/berth-project/berth/snapshotter"
)

var infos = []snapshotter.Info{
	{Name: "base", Kind: snapshotter.KindCommitted, Labels: map[string]string{"containerd.io/gc.root": "", "tier": "os"}},
	{Name: "app", Kind: snapshotter.KindCommitted, Parent: "base", Labels: map[string]string{"io.kubernetes.pod-name": "web-1"}},
	{Name: "work", Kind: snapshotter.KindActive, Parent: "app", Labels: map[string]string{"tier": "web", "a.b": "dots", "sp ace": "x,y"}},
	{Name: "ro", Kind: snapshotter.KindView, Parent: "app"},
	{Name: "scratch", Kind: snapshotter.KindActive},
}

// names returns the names of the infos f matches, in order.
func names(f Filter) string {
	var got []string
	for _, i := range infos {
		if f(i) {
			got = append(got, i.Name)
		}
	}
	return strings.Join(got, " ")
}

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		exprs []string
		want  string
	}{
		{nil, "base app work ro scratch"},
		{[]string{""}, "base app work ro scratch"},
		{[]string{"  "}, "base app work ro scratch"},
		{[]string{"kind==committed"}, "base app"},
		{[]string{"kind==active"}, "work scratch"},
		{[]string{"kind!=active"}, "base app ro"},
		{[]string{"name==work"}, "work"},
		{[]string{"name"}, "base app work ro scratch"},
		{[]string{"parent"}, "app work ro"},
		{[]string{"parent==app"}, "work ro"},
		{[]string{"parent!=app"}, "base app scratch"},
		{[]string{"name~=^(base|ro)$"}, "base ro"},
		{[]string{"name~=a"}, "base app scratch"},
		{[]string{"parent~=.*"}, "app work ro"}, // ~= needs the field present
		// A bare label is present even with an empty value.
		{[]string{`labels."containerd.io/gc.root"`}, "base"},
		{[]string{"labels.tier"}, "base work"},
		{[]string{"labels.tier==web"}, "work"},
		// != is the negation of ==: a missing label differs.
		{[]string{"labels.tier!=web"}, "base app ro scratch"},
		{[]string{"labels.tier~=^w"}, "work"},
		{[]string{"labels.io.kubernetes.pod-name==web-1"}, "app"},
		{[]string{`labels."io.kubernetes.pod-name"==web-1`}, "app"},
		{[]string{"labels.a.b==dots"}, "work"},
		{[]string{`labels."a.b"==dots`}, "work"},
		{[]string{`labels."sp ace"=="x,y"`}, "work"},
		{[]string{"labels.`sp ace`==`x,y`"}, "work"},
		{[]string{`labels."containerd.io/gc.root"==""`}, "base"},
		{[]string{`name=="w\x6frk"`}, "work"},
		{[]string{`name~="^(a|b)\\w+"`}, "base app"},
		// Selectors in one expression are ANDed.
		{[]string{"kind==committed,parent"}, "app"},
		{[]string{"kind==active,labels.tier==web"}, "work"},
		{[]string{" kind == active , labels.tier == web "}, "work"},
		{[]string{"kind==active,kind==view"}, ""},
		// Expressions in the list are ORed.
		{[]string{"kind==view", "labels.tier==os"}, "base ro"},
		{[]string{"name==nope", "name==nada"}, ""},
		{[]string{"name==nope", ""}, "base app work ro scratch"},
		{[]string{"labels.nope"}, ""},
		{[]string{"name==å"}, ""},
	} {
		f, err := Parse(tc.exprs...)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.exprs, err)
			continue
		}
		if got := names(f); got != tc.want {
			t.Errorf("Parse(%q): matched %q, want %q", tc.exprs, got, tc.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want string // in the error message
	}{
		{"kind==", `at offset 6: expected a value after "=="`},
		{"kind== ,name", `at offset 7: expected a value after "=="`},
		{"kind=committed", `at offset 4: expected an operator`},
		{"kind==a b", `at offset 8: expected "," or the end, found "b"`},
		{"kind==committed,", `at offset 16: expected a field, found the end`},
		{",kind", `at offset 0: expected a field, found ",kind"`},
		{"labels", `labels needs a key`},
		{"labels.", `at offset 7: expected a field, found the end`},
		{".name", `at offset 0: expected a field`},
		{"name.x==y", `field "name" has no subfields`},
		{"size==1", `unknown field "size"`},
		{`labels."unterminated`, `at offset 7: unterminated quoted string`},
		{`name=="a\qb"`, `bad quoted string`},
		{`name~=(`, `at offset 6: bad regular expression`},
		{`labels."a"b==c`, `at offset 10: expected an operator`},
	} {
		_, err := Parse("kind==view", tc.expr)
		if err == nil {
			t.Errorf("Parse(%q): no error", tc.expr)
			continue
		}
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Parse(%q): %v is not InvalidArgument", tc.expr, err)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q): %v, want it to say %q", tc.expr, err, tc.want)
		}
	}
}

func TestKindUnknownIsAbsent(t *testing.T) {
	f, err := Parse("kind")
	if err != nil {
		t.Fatal(err)
	}
	if f(snapshotter.Info{Name: "x"}) {
		t.Error("a snapshot of unknown kind has a kind")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"kind==committed,labels.\"a\"~=b", "name", `labels."x\"y"!=z`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		m, err := Parse(expr)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("Parse(%q): %v is not InvalidArgument", expr, err)
			}
			return
		}
		_ = slices.ContainsFunc(infos, m)
	})
}
