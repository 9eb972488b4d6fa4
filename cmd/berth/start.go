package main

import (
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/cli"
)

func newStartCommand(b *cli.CLI) *cobra.Command {
	var opts cli.StartOptions
	cmd := &cobra.Command{
		Use:   "start [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Start one or more stopped containers",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return b.Start(cmd.Context(), args, opts)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&opts.Attach, "attach", "a", false, "attach STDOUT/STDERR and forward signals")
	f.BoolVarP(&opts.Interactive, "interactive", "i", false, "attach container's STDIN")
	return cmd
}
