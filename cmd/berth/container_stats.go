package main

import (
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/cli"
)

func newStatsCommand(b *cli.CLI) *cobra.Command {
	var opts cli.StatsOptions
	cmd := &cobra.Command{
		Use:   "stats [OPTIONS] [CONTAINER...]",
		Short: "Display a live stream of container(s) resource usage statistics",
		RunE: func(cmd *cobra.Command, args []string) error {
			return b.Stats(cmd.Context(), args, opts)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&opts.All, "all", "a", false, "show all containers (default shows just running)")
	f.BoolVar(&opts.NoStream, "no-stream", false, "disable streaming stats and only pull the first result")
	f.BoolVar(&opts.NoTrunc, "no-trunc", false, "do not truncate output")
	f.StringVar(&opts.Format, "format", "", "format output using a custom template: 'table', 'table TEMPLATE', 'json', or a Go template")
	return cmd
}
