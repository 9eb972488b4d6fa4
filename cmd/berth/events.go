package main

import (
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/cli"
)

func newEventsCommand(b *cli.CLI) *cobra.Command {
	var opts cli.EventsOptions
	cmd := &cobra.Command{
		Use:   "events [OPTIONS]",
		Short: "Get real time events from the server",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return b.Events(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&opts.Filters, "filter", "f", nil, "filter output based on conditions provided (type=, event=, image=, label=, snapshotter=)")
	f.StringVar(&opts.Since, "since", "", "show all events created since timestamp")
	f.StringVar(&opts.Until, "until", "", "stream events until this timestamp")
	f.StringVar(&opts.Format, "format", "", "format the output: 'json', or a Go template")
	return cmd
}
