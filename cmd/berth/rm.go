package main

import (
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/cli"
)

// newRmCommand is `berth rm` and `berth container rm`.
func newRmCommand(b *cli.CLI, use string, aliases ...string) *cobra.Command {
	var opts cli.RmOptions
	cmd := &cobra.Command{
		Use:     use + " [OPTIONS] CONTAINER [CONTAINER...]",
		Aliases: aliases,
		Short:   "Remove one or more containers",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return b.Rm(cmd.Context(), args, opts)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&opts.Force, "force", "f", false, "force the removal of a running container (uses SIGKILL)")
	f.BoolVarP(&opts.Volumes, "volumes", "v", false, "remove anonymous volumes associated with the container")
	f.BoolP("link", "l", false, "remove the specified link (not supported)")
	f.MarkHidden("link")
	return cmd
}
