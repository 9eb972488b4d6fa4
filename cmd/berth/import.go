package main

import (
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/cli"
)

func newImportCommand(b *cli.CLI) *cobra.Command {
	var opts cli.ImportOptions
	cmd := &cobra.Command{
		Use:   "import [OPTIONS] file|- [REPOSITORY[:TAG]]",
		Short: "Import the contents from a tarball to create a filesystem image",
		Args:  rangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return b.Import(cmd.Context(), args[0], arg(args, 1), opts)
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&opts.Changes, "change", "c", nil, "apply Dockerfile instruction to the created image")
	f.StringVarP(&opts.Message, "message", "m", "", "set commit message for imported image")
	f.StringVar(&opts.Platform, "platform", "", "set platform if server is multi-platform capable (os/arch[/variant])")
	return cmd
}
