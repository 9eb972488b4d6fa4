package main

import (
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/cli"
)

func newNetworkPruneCommand(b *cli.CLI) *cobra.Command {
	var opts cli.NetworkPruneOptions
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove all unused networks",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return b.NetworkPrune(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&opts.Force, "force", "f", false, "do not prompt for confirmation")
	f.StringArrayVar(&opts.Filters, "filter", nil, "provide filter values (e.g. 'until=<timestamp>')")
	return cmd
}
