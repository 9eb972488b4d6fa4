package main

import (
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/cli"
)

func newExecCommand(b *cli.CLI) *cobra.Command {
	var opts cli.ExecOptions
	cmd := &cobra.Command{
		Use:   "exec [OPTIONS] CONTAINER COMMAND [ARG...]",
		Short: "Execute a command in a running container",
		Args:  minArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return b.Exec(cmd.Context(), args[0], args[1:], opts)
		},
	}
	f := cmd.Flags()
	// What follows the container is the command's, flags included.
	f.SetInterspersed(false)
	f.BoolVarP(&opts.Detach, "detach", "d", false, "detached mode: run command in the background")
	f.BoolVarP(&opts.Interactive, "interactive", "i", false, "keep STDIN open even if not attached")
	f.BoolVarP(&opts.TTY, "tty", "t", false, "allocate a pseudo-TTY")
	f.StringArrayVarP(&opts.Env, "env", "e", nil, "set environment variables")
	f.StringArrayVar(&opts.EnvFile, "env-file", nil, "read in a file of environment variables")
	f.StringVarP(&opts.User, "user", "u", "", "username or UID (format: \"<name|uid>[:<group|gid>]\")")
	f.StringVarP(&opts.Workdir, "workdir", "w", "", "working directory inside the container")
	f.BoolVar(&opts.Privileged, "privileged", false, "give extended privileges to the command")
	return cmd
}
