package main

import (
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/cli"
)

// newImagesCommand is `berth images` and, under another name, `berth
// image ls`.
func newImagesCommand(b *cli.CLI, use string, aliases ...string) *cobra.Command {
	var opts cli.ImagesOptions
	cmd := &cobra.Command{
		Use:     use + " [OPTIONS] [REPOSITORY[:TAG]]",
		Aliases: aliases,
		Short:   "List images",
		Args:    rangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return b.Images(cmd.Context(), arg(args, 0), opts)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&opts.All, "all", "a", false, "show all images (default hides intermediate images)")
	f.BoolVarP(&opts.Quiet, "quiet", "q", false, "only show image IDs")
	f.BoolVar(&opts.Digests, "digests", false, "show digests")
	f.BoolVar(&opts.NoTrunc, "no-trunc", false, "don't truncate output")
	f.StringVar(&opts.Format, "format", "", "format output using a custom template: 'table', 'table TEMPLATE', 'json', or a Go template")
	f.StringArrayVarP(&opts.Filters, "filter", "f", nil, "filter output based on conditions provided (dangling=, label=, reference=, before=, since=)")
	return cmd
}

// newImageCommand is `berth image`.
func newImageCommand(b *cli.CLI) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image COMMAND",
		Short: "Manage images",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	cmd.AddCommand(
		newImagesCommand(b, "ls", "list"),
		newImageInspectCommand(b),
		newImagePruneCommand(b),
		newPullCommand(b),
		newPushCommand(b),
		newTagCommand(b),
		newRmiCommand(b, "rm", "remove"),
		newHistoryCommand(b),
		newSaveCommand(b),
		newLoadCommand(b),
		newImportCommand(b),
	)
	return cmd
}
