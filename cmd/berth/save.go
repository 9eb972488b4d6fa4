package main

import (
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/cli"
)

func newSaveCommand(b *cli.CLI) *cobra.Command {
	var opts cli.SaveOptions
	cmd := &cobra.Command{
		Use:   "save [OPTIONS] IMAGE [IMAGE...]",
		Short: "Save one or more images to a tar archive (streamed to STDOUT by default)",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return b.Save(cmd.Context(), args, opts)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&opts.Output, "output", "o", "", "write to a file, instead of STDOUT")
	f.StringVar(&opts.Format, "format", "docker-archive", "archive format: docker-archive or oci-archive")
	return cmd
}
