package main

import (
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/cli"
)

func newCommitCommand(b *cli.CLI) *cobra.Command {
	var opts cli.CommitOptions
	cmd := &cobra.Command{
		Use:   "commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
		Short: "Create a new image from a container's changes",
		Args:  rangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return b.Commit(cmd.Context(), args[0], arg(args, 1), opts)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&opts.Author, "author", "a", "", "author (e.g., \"John Hannibal Smith <hannibal@a-team.com>\")")
	f.StringArrayVarP(&opts.Changes, "change", "c", nil, "apply Dockerfile instruction to the created image")
	f.StringVarP(&opts.Message, "message", "m", "", "commit message")
	f.BoolVarP(&opts.Pause, "pause", "p", true, "pause container during commit")
	return cmd
}
