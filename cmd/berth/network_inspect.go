package main

import (
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/cli"
)

func newNetworkInspectCommand(b *cli.CLI) *cobra.Command {
	var opts cli.NetworkInspectOptions
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] NETWORK [NETWORK...]",
		Short: "Display detailed information on one or more networks",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return b.NetworkInspect(cmd.Context(), args, opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Format, "format", "f", "", "format output using a custom template: 'json', or a Go template")
	return cmd
}
