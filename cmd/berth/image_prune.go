package main

import (
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/cli"
)

func newImagePruneCommand(b *cli.CLI) *cobra.Command {
	var opts cli.PruneOptions
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused images",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return b.ImagePrune(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&opts.All, "all", "a", false, "remove all unused images, not just dangling ones")
	f.BoolVarP(&opts.Force, "force", "f", false, "do not prompt for confirmation")
	f.StringArrayVar(&opts.Filters, "filter", nil, "provide filter values (e.g. 'until=<timestamp>', 'label=<key>=<value>')")
	return cmd
}
