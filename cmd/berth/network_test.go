package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/cli"
)

// networkRoot is a root command with `network` under it, as main wires it.
func networkRoot(b *cli.CLI) *cobra.Command {
	root := &cobra.Command{Use: "berth", SilenceUsage: true, SilenceErrors: true}
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &cli.UsageError{Command: cmd.CommandPath(), Err: err}
	})
	root.AddCommand(newNetworkCommand(b))
	return root
}

// TestNetworkCommands checks the network commands' wiring: names,
// aliases, flags, and the exit codes of what fails before or at berthd.
func TestNetworkCommands(t *testing.T) {
	root := networkRoot(&cli.CLI{})
	for _, path := range [][]string{
		{"network", "create"}, {"network", "ls"}, {"network", "list"}, {"network", "inspect"},
		{"network", "rm"}, {"network", "remove"}, {"network", "prune"},
	} {
		c, rest, err := root.Find(path)
		if err != nil || len(rest) != 0 || c.Parent() == root || (c.Name() != path[1] && !c.HasAlias(path[1])) {
			t.Errorf("berth %s: %v", strings.Join(path, " "), err)
		}
	}
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"network", "create", "--bogus", "n"}, 125, "unknown flag: --bogus"},
		{[]string{"network", "create", "-l", "=x", "n"}, 125, "invalid label"},
		{[]string{"network", "create"}, 1, `"berth network create" requires exactly 1 argument.`},
		{[]string{"network", "rm"}, 1, `"berth network rm" requires at least 1 argument.`},
		{[]string{"network", "inspect"}, 1, `"berth network inspect" requires at least 1 argument.`},
		{[]string{"network", "ls", "x"}, 1, `"berth network ls" accepts no arguments.`},
		{[]string{"network", "ls", "-q", "--no-trunc", "-f", "driver=bridge", "--format", "{{.ID}}"}, 1, "Cannot connect to the berth daemon"},
		{[]string{"network", "create", "-d", "bridge", "--subnet", "10.1.0.0/24", "--gateway", "10.1.0.1", "--label", "a=b", "n"}, 1, "Cannot connect"},
		{[]string{"network", "inspect", "-f", "{{.Name}}", "n"}, 1, "Cannot connect"},
		{[]string{"network", "rm", "-f", "a", "b"}, 1, "Cannot connect"},
		{[]string{"network", "prune", "-f", "--filter", "until=1h"}, 1, "Cannot connect"},
	} {
		var out bytes.Buffer
		b := &cli.CLI{Out: &out, Err: &out, In: strings.NewReader(""), Host: "unix:///nonexistent/berthd.sock"}
		root := networkRoot(b)
		root.SetArgs(tc.args)
		root.SetOut(&out)
		root.SetErr(&out)
		err := root.ExecuteContext(context.Background())
		if got := cli.ExitCode(err); got != tc.code || err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("berth %q: %v (exit %d), want exit %d and %q", tc.args, err, got, tc.code, tc.msg)
		}
	}
	// prune without -f asks, and a "no" does nothing, not even dial.
	var out bytes.Buffer
	root = networkRoot(&cli.CLI{Out: &out, Err: &out, In: strings.NewReader("\n"), Host: "unix:///nonexistent/berthd.sock"})
	root.SetArgs([]string{"network", "prune"})
	if err := root.Execute(); err != nil || !strings.Contains(out.String(), "Are you sure you want to continue? [y/N]") {
		t.Errorf("prune declined: %v %q", err, out.String())
	}
}
