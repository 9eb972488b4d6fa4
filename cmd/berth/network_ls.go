package main

import (
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/cli"
)

func newNetworkLsCommand(b *cli.CLI) *cobra.Command {
	var opts cli.NetworkLsOptions
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List networks",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return b.NetworkLs(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&opts.Quiet, "quiet", "q", false, "only display network IDs")
	f.BoolVar(&opts.NoTrunc, "no-trunc", false, "do not truncate the output")
	f.StringArrayVarP(&opts.Filters, "filter", "f", nil, "provide filter values (e.g. 'driver=bridge')")
	f.StringVar(&opts.Format, "format", "", "format output using a custom template: 'table', 'table TEMPLATE', 'json', or a Go template")
	return cmd
}
