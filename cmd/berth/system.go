package main

import (
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/cli"
)

// newSystemCommand is `berth system`: df and prune, and info and events
// again, as docker has them.
func newSystemCommand(b *cli.CLI) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "system COMMAND",
		Short: "Manage berth",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	cmd.AddCommand(
		newSystemDFCommand(b),
		newSystemPruneCommand(b),
		newInfoCommand(b),
		newEventsCommand(b),
	)
	return cmd
}
