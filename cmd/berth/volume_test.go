package main

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/cli"
)

// volumeRoot is the root command with `volume` under it.
func volumeRoot(b *cli.CLI) *cobra.Command {
	root := newRootCommand(b)
	if c, _, err := root.Find([]string{"volume"}); err != nil || c == root {
		root.AddCommand(newVolumeCommand(b))
	}
	return root
}

// TestVolumeCommands checks the volume commands' wiring: their names,
// aliases and flags, and the exit codes of what fails before berthd is
// asked.
func TestVolumeCommands(t *testing.T) {
	root := volumeRoot(&cli.CLI{})
	for _, path := range [][]string{
		{"volume", "create"}, {"volume", "ls"}, {"volume", "list"}, {"volume", "inspect"},
		{"volume", "rm"}, {"volume", "remove"}, {"volume", "prune"},
	} {
		c, rest, err := root.Find(path)
		if err != nil || len(rest) != 0 || c == root || c.Parent().Name() != "volume" {
			t.Errorf("berth %s: %v", strings.Join(path, " "), err)
		}
	}

	create, _, _ := root.Find([]string{"volume", "create"})
	if err := create.ParseFlags([]string{"--name", "n", "-d", "local", "-l", "a=b", "--label", "c", "-o", "type=tmpfs", "--opt", "o=size=1m"}); err != nil {
		t.Fatal(err)
	}
	f := create.Flags()
	if n, _ := f.GetString("name"); n != "n" {
		t.Errorf("--name %q", n)
	}
	if l, _ := f.GetStringArray("label"); !slices.Equal(l, []string{"a=b", "c"}) {
		t.Errorf("--label %q", l)
	}
	if o, _ := f.GetStringArray("opt"); !slices.Equal(o, []string{"type=tmpfs", "o=size=1m"}) {
		t.Errorf("--opt %q", o)
	}
	for _, c := range []struct {
		path  []string
		flags []string
	}{
		{[]string{"volume", "ls"}, []string{"-q", "-f", "dangling=true", "--format", "json"}},
		{[]string{"volume", "inspect"}, []string{"-f", "{{.Name}}"}},
		{[]string{"volume", "rm"}, []string{"-f"}},
		{[]string{"volume", "prune"}, []string{"-a", "-f", "--filter", "label=x"}},
	} {
		cmd, _, _ := root.Find(c.path)
		if err := cmd.ParseFlags(c.flags); err != nil {
			t.Errorf("berth %s %q: %v", strings.Join(c.path, " "), c.flags, err)
		}
	}

	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"volume", "create", "a", "b"}, 1, `"berth volume create" requires at most 1 argument.`},
		{[]string{"volume", "create", "--bogus"}, 125, "unknown flag: --bogus"},
		{[]string{"volume", "ls", "extra"}, 1, `"berth volume ls" accepts no arguments.`},
		{[]string{"volume", "inspect"}, 1, `"berth volume inspect" requires at least 1 argument.`},
		{[]string{"volume", "rm"}, 1, `"berth volume rm" requires at least 1 argument.`},
		{[]string{"volume", "prune", "x"}, 1, `"berth volume prune" accepts no arguments.`},
		{[]string{"volume", "create", "--name", "a", "b"}, 1, "conflicting options"},
		{[]string{"volume", "ls"}, 1, "Cannot connect to the berth daemon"},
	} {
		var out bytes.Buffer
		b := &cli.CLI{Out: &out, Err: &out, In: strings.NewReader(""), Host: "unix:///nonexistent/berthd.sock"}
		root := volumeRoot(b)
		root.SetArgs(tc.args)
		root.SetOut(&out)
		root.SetErr(&out)
		err := root.ExecuteContext(context.Background())
		if got := cli.ExitCode(err); got != tc.code || err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("berth %q: %v (exit %d), want exit %d and %q", tc.args, err, got, tc.code, tc.msg)
		}
	}
}
