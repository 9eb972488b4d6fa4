package main

import (
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/cli"
)

func newLoadCommand(b *cli.CLI) *cobra.Command {
	var opts cli.LoadOptions
	cmd := &cobra.Command{
		Use:   "load [OPTIONS]",
		Short: "Load an image from a tar archive (docker-archive or oci-archive) or STDIN",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return b.Load(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&opts.Input, "input", "i", "", "read from tar archive file, instead of STDIN")
	f.BoolVarP(&opts.Quiet, "quiet", "q", false, "suppress the load output")
	return cmd
}
