package main

import (
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/cli"
)

// newCreateCommand is `berth create` and `berth container create`.
func newCreateCommand(b *cli.CLI) *cobra.Command {
	var opts cli.CreateOptions
	var cf *createFlags
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create a new container",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cf.finish(cmd)
			return b.Create(cmd.Context(), args[0], args[1:], opts)
		},
	}
	cf = addCreateFlags(cmd.Flags(), &opts)
	return cmd
}
