package main

import (
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/cli"
)

func newCpCommand(b *cli.CLI) *cobra.Command {
	var opts cli.CopyOptions
	cmd := &cobra.Command{
		Use:   "cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-",
		Short: "Copy files/folders between a container and the local filesystem",
		Long: "Copy files/folders between a container and the local filesystem:\n" +
			"  cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n" +
			"  cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH\n\n" +
			"Use '-' as the source to read a tar archive from stdin\n" +
			"and extract it to a directory destination in a container.\n" +
			"Use '-' as the destination to stream a tar archive of a\n" +
			"container source to stdout.",
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return b.Copy(cmd.Context(), args[0], args[1], opts)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&opts.Archive, "archive", "a", false, "archive mode (copy all uid/gid information)")
	f.BoolVarP(&opts.FollowLink, "follow-link", "L", false, "always follow symbol link in SRC_PATH")
	return cmd
}
