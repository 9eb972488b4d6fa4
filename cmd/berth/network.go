package main

import (
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/cli"
)

// newNetworkCommand is `berth network`.
func newNetworkCommand(b *cli.CLI) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "network COMMAND",
		Short: "Manage networks",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	cmd.AddCommand(
		newNetworkCreateCommand(b),
		newNetworkLsCommand(b),
		newNetworkInspectCommand(b),
		newNetworkRmCommand(b),
		newNetworkPruneCommand(b),
	)
	return cmd
}
