package main

import (
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/cli"
)

func newLoginCommand(b *cli.CLI) *cobra.Command {
	var opts cli.LoginOptions
	cmd := &cobra.Command{
		Use:   "login [OPTIONS] [SERVER]",
		Short: "Store the credentials of a registry for pull and push (in $" + cli.ConfigEnv + "/config.json, default ~/.berth)",
		Args:  rangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return b.Login(cmd.Context(), arg(args, 0), opts)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&opts.Username, "username", "u", "", "username")
	f.StringVarP(&opts.Password, "password", "p", "", "password")
	f.BoolVar(&opts.PasswordStdin, "password-stdin", false, "take the password from stdin")
	return cmd
}
