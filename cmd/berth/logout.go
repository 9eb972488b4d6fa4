package main

import (
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/cli"
)

func newLogoutCommand(b *cli.CLI) *cobra.Command {
	return &cobra.Command{
		Use:   "logout [SERVER]",
		Short: "Forget the credentials stored for a registry",
		Args:  rangeArgs(0, 1),
		RunE: func(_ *cobra.Command, args []string) error {
			return b.Logout(arg(args, 0))
		},
	}
}
