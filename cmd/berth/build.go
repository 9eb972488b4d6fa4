package main

import (
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/cli"
)

func newBuildCommand(b *cli.CLI) *cobra.Command {
	var opts cli.BuildOptions
	cmd := &cobra.Command{
		Use:   "build [OPTIONS] PATH | -",
		Short: "Build an image from a Dockerfile",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return b.Build(cmd.Context(), args[0], opts)
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&opts.Tags, "tag", "t", nil, "name and optionally a tag in the 'name:tag' format")
	f.StringVarP(&opts.File, "file", "f", "", "name of the Dockerfile (default 'PATH/Dockerfile')")
	f.StringArrayVar(&opts.BuildArgs, "build-arg", nil, "set build-time variables")
	f.BoolVarP(&opts.Quiet, "quiet", "q", false, "suppress the build output and print image ID on success")
	f.BoolVar(&opts.NoCache, "no-cache", false, "do not use cache when building the image")
	f.BoolVar(&opts.Remove, "rm", true, "remove intermediate containers after a successful build")
	f.BoolVar(&opts.ForceRm, "force-rm", false, "always remove intermediate containers")
	f.StringVar(&opts.Network, "network", "default", "set the networking mode for the RUN instructions during build (bridge, host, none; default: bridge if the daemon has it)")
	return cmd
}
