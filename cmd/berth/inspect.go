package main

import (
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/cli"
)

// newInspectCommand is `berth inspect` (any object, containers first)
// and, with typ "container", `berth container inspect`.
func newInspectCommand(b *cli.CLI, typ string) *cobra.Command {
	opts := cli.ContainerInspectOptions{Type: typ}
	use, short := "inspect [OPTIONS] NAME|ID [NAME|ID...]", "Return low-level information on berth objects"
	if typ == "container" {
		use, short = "inspect [OPTIONS] CONTAINER [CONTAINER...]", "Display detailed information on one or more containers"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return b.Inspect(cmd.Context(), args, opts)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&opts.Format, "format", "f", "", "format output using a custom template: 'json', or a Go template")
	f.BoolVarP(&opts.Size, "size", "s", false, "display total file sizes")
	if typ == "" {
		f.StringVar(&opts.Type, "type", "", "only inspect objects of the given type (container or image)")
	}
	return cmd
}
