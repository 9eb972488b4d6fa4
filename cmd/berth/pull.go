package main

import (
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/cli"
)

func newPullCommand(b *cli.CLI) *cobra.Command {
	var opts cli.PullOptions
	cmd := &cobra.Command{
		Use:   "pull [OPTIONS] NAME[:TAG|@DIGEST]",
		Short: "Download an image from a registry",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return b.Pull(cmd.Context(), args[0], opts)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&opts.Quiet, "quiet", "q", false, "suppress verbose output")
	f.StringVar(&opts.Platform, "platform", "", "set platform if server is multi-platform capable (os/arch[/variant])")
	f.BoolP("all-tags", "a", false, "download all tagged images in the repository (not supported)")
	f.MarkHidden("all-tags")
	return cmd
}
