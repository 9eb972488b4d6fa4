package main

import (
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/cli"
)

// newRunCommand is `berth run` and `berth container run`.
func newRunCommand(b *cli.CLI) *cobra.Command {
	var opts cli.RunOptions
	var cf *createFlags
	cmd := &cobra.Command{
		Use:   "run [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create and run a new container from an image",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cf.finish(cmd)
			return b.Run(cmd.Context(), args[0], args[1:], opts)
		},
	}
	f := cmd.Flags()
	cf = addCreateFlags(f, &opts.CreateOptions)
	f.BoolVarP(&opts.Detach, "detach", "d", false, "run container in background and print container ID")
	f.BoolVar(&opts.SigProxy, "sig-proxy", true, "proxy received signals to the process")
	return cmd
}
