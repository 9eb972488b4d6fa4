package main

import (
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/cli"
)

// newRmiCommand is `berth rmi` and `berth image rm`.
func newRmiCommand(b *cli.CLI, use string, aliases ...string) *cobra.Command {
	var opts cli.RemoveOptions
	cmd := &cobra.Command{
		Use:     use + " [OPTIONS] IMAGE [IMAGE...]",
		Aliases: aliases,
		Short:   "Remove one or more images",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return b.Remove(cmd.Context(), args, opts)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&opts.Force, "force", "f", false, "force removal of the image")
	f.BoolVar(&opts.NoPrune, "no-prune", false, "do not delete untagged parents")
	return cmd
}
