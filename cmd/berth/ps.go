package main

import (
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/cli"
)

// newPsCommand is `berth ps` and `berth container ls`.
func newPsCommand(b *cli.CLI, use string, aliases ...string) *cobra.Command {
	var opts cli.PsOptions
	cmd := &cobra.Command{
		Use:     use + " [OPTIONS]",
		Aliases: aliases,
		Short:   "List containers",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return b.Ps(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&opts.All, "all", "a", false, "show all containers (default shows just running)")
	f.BoolVarP(&opts.Quiet, "quiet", "q", false, "only display container IDs")
	f.IntVarP(&opts.Last, "last", "n", -1, "show n last created containers (includes all states)")
	f.BoolVarP(&opts.Latest, "latest", "l", false, "show the latest created container (includes all states)")
	f.BoolVar(&opts.NoTrunc, "no-trunc", false, "don't truncate output")
	f.StringArrayVarP(&opts.Filters, "filter", "f", nil, "filter output based on conditions provided")
	f.StringVar(&opts.Format, "format", "", "format output using a custom template: 'table', 'table TEMPLATE', 'json', or a Go template")
	return cmd
}
