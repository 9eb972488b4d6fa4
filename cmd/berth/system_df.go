package main

import (
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/cli"
)

func newSystemDFCommand(b *cli.CLI) *cobra.Command {
	var opts cli.DiskUsageOptions
	cmd := &cobra.Command{
		Use:   "df [OPTIONS]",
		Short: "Show berth disk usage",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return b.DiskUsage(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&opts.Verbose, "verbose", "v", false, "show detailed information on space usage")
	f.StringVar(&opts.Format, "format", "", "format the output: 'table', 'table TEMPLATE', 'json', or a Go template")
	return cmd
}
