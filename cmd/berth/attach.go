package main

import (
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/cli"
)

func newAttachCommand(b *cli.CLI) *cobra.Command {
	var opts cli.AttachOptions
	cmd := &cobra.Command{
		Use:   "attach [OPTIONS] CONTAINER",
		Short: "Attach local standard input, output, and error streams to a running container",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return b.Attach(cmd.Context(), args[0], opts)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&opts.NoStdin, "no-stdin", false, "do not attach STDIN")
	f.BoolVar(&opts.SigProxy, "sig-proxy", true, "proxy all received signals to the process")
	f.String("detach-keys", "", "override the key sequence for detaching a container (not supported)")
	f.MarkHidden("detach-keys")
	return cmd
}
