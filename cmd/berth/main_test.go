package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/berth-project/berth/manager/cli"
)

// TestCommandLine checks the command tree's wiring: flags errors are
// usage errors (exit 125), unknown commands and arguments failures
// (exit 1), and the aliases docker has exist.
func TestCommandLine(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"version", "--bogus"}, 125, "unknown flag: --bogus\nSee 'berth version --help'."},
		{[]string{"system", "prune", "--bogus"}, 125, "See 'berth system prune --help'."},
		{[]string{"bogus"}, 1, "berth: 'bogus' is not a berth command."},
		{[]string{"system", "df", "extra"}, 1, `"berth system df" accepts no arguments.`},
		{[]string{"events", "--since", "yesterday"}, 125, "--since"},
	} {
		var out bytes.Buffer
		b := &cli.CLI{Out: &out, Err: &out, In: strings.NewReader("")}
		root := newRootCommand(b)
		root.SetArgs(tc.args)
		root.SetOut(&out)
		root.SetErr(&out)
		err := root.ExecuteContext(context.Background())
		if got := cli.ExitCode(err); got != tc.code || err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("berth %q: %v (exit %d), want exit %d and %q", tc.args, err, got, tc.code, tc.msg)
		}
	}
	root := newRootCommand(&cli.CLI{})
	for _, path := range [][]string{{"system", "info"}, {"system", "events"}, {"system", "df"}, {"system", "prune"}} {
		if c, _, err := root.Find(path); err != nil || c.Name() != path[1] {
			t.Errorf("berth %s: %v", strings.Join(path, " "), err)
		}
	}
	var usage *cli.UsageError
	root.SetArgs([]string{"info", "--format"})
	if err := root.Execute(); !errors.As(err, &usage) {
		t.Errorf("a flag without its value: %v, want a usage error", err)
	}
}
