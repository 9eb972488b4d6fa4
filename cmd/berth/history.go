package main

import (
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/cli"
)

func newHistoryCommand(b *cli.CLI) *cobra.Command {
	var opts cli.HistoryOptions
	cmd := &cobra.Command{
		Use:   "history [OPTIONS] IMAGE",
		Short: "Show the history of an image",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return b.History(cmd.Context(), args[0], opts)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&opts.Human, "human", true, "print sizes and dates in human readable format")
	f.BoolVar(&opts.NoTrunc, "no-trunc", false, "don't truncate output")
	f.BoolVarP(&opts.Quiet, "quiet", "q", false, "only show image IDs")
	f.StringVar(&opts.Format, "format", "", "format output using a custom template: 'table', 'table TEMPLATE', 'json', or a Go template")
	return cmd
}
