package main

import (
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/cli"
)

func newImageInspectCommand(b *cli.CLI) *cobra.Command {
	var opts cli.InspectOptions
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] IMAGE [IMAGE...]",
		Short: "Display detailed information on one or more images",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return b.ImageInspect(cmd.Context(), args, opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Format, "format", "f", "", "format output using a custom template: 'json', or a Go template")
	return cmd
}
