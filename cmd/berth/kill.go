package main

import (
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/cli"
)

func newKillCommand(b *cli.CLI) *cobra.Command {
	var opts cli.KillOptions
	cmd := &cobra.Command{
		Use:   "kill [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Kill one or more running containers",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return b.Kill(cmd.Context(), args, opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Signal, "signal", "s", "", "signal to send to the container")
	return cmd
}
