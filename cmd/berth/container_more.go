package main

import (
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/cli"
)

func newPauseCommand(b *cli.CLI) *cobra.Command {
	return &cobra.Command{
		Use:   "pause CONTAINER [CONTAINER...]",
		Short: "Pause all processes within one or more containers",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return b.Pause(cmd.Context(), args)
		},
	}
}

func newUnpauseCommand(b *cli.CLI) *cobra.Command {
	return &cobra.Command{
		Use:   "unpause CONTAINER [CONTAINER...]",
		Short: "Unpause all processes within one or more containers",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return b.Unpause(cmd.Context(), args)
		},
	}
}

func newRenameCommand(b *cli.CLI) *cobra.Command {
	return &cobra.Command{
		Use:   "rename CONTAINER NEW_NAME",
		Short: "Rename a container",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return b.Rename(cmd.Context(), args[0], args[1])
		},
	}
}

func newTopCommand(b *cli.CLI) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "top CONTAINER [ps OPTIONS]",
		Short: "Display the running processes of a container",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return b.Top(cmd.Context(), args[0], args[1:])
		},
	}
	// What follows the container is ps's, flags included.
	cmd.Flags().SetInterspersed(false)
	return cmd
}
