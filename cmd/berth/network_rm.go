package main

import (
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/cli"
)

func newNetworkRmCommand(b *cli.CLI) *cobra.Command {
	var opts cli.NetworkRmOptions
	cmd := &cobra.Command{
		Use:     "rm NETWORK [NETWORK...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more networks",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return b.NetworkRm(cmd.Context(), args, opts)
		},
	}
	cmd.Flags().BoolVarP(&opts.Force, "force", "f", false, "do not error if the network does not exist")
	return cmd
}
