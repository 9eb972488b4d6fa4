package main

import (
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/cli"
)

func newLogsCommand(b *cli.CLI) *cobra.Command {
	var opts cli.LogsOptions
	cmd := &cobra.Command{
		Use:   "logs [OPTIONS] CONTAINER",
		Short: "Fetch the logs of a container",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return b.Logs(cmd.Context(), args[0], opts)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&opts.Follow, "follow", "f", false, "follow log output")
	f.BoolVarP(&opts.Timestamps, "timestamps", "t", false, "show timestamps")
	f.StringVar(&opts.Since, "since", "", "show logs since timestamp (e.g. \"2013-01-02T13:23:37Z\") or relative (e.g. \"42m\" for 42 minutes)")
	f.StringVar(&opts.Until, "until", "", "show logs before a timestamp (e.g. \"2013-01-02T13:23:37Z\") or relative (e.g. \"42m\" for 42 minutes)")
	f.StringVarP(&opts.Tail, "tail", "n", "all", "number of lines to show from the end of the logs")
	f.Bool("details", false, "show extra details provided to logs (not supported)")
	f.MarkHidden("details")
	return cmd
}
