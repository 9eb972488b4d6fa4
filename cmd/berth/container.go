package main

import (
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/cli"
)

// newContainerCommand is `berth container`.
func newContainerCommand(b *cli.CLI) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "container COMMAND",
		Short: "Manage containers",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	cmd.AddCommand(
		newPsCommand(b, "ls", "ps", "list"),
		newCreateCommand(b),
		newRunCommand(b),
		newStartCommand(b),
		newStopCommand(b),
		newRestartCommand(b),
		newKillCommand(b),
		newRmCommand(b, "rm", "remove"),
		newInspectCommand(b, "container"),
		newWaitCommand(b),
		newLogsCommand(b),
		newAttachCommand(b),
		newExecCommand(b),
		newContainerPruneCommand(b),
		newPauseCommand(b),
		newUnpauseCommand(b),
		newRenameCommand(b),
		newTopCommand(b),
		newUpdateCommand(b),
		newStatsCommand(b),
		newCommitCommand(b),
		newCpCommand(b),
	)
	return cmd
}

func newContainerPruneCommand(b *cli.CLI) *cobra.Command {
	var opts cli.ContainerPruneOptions
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove all stopped containers",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return b.ContainerPrune(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&opts.Force, "force", "f", false, "do not prompt for confirmation")
	f.StringArrayVar(&opts.Filters, "filter", nil, "provide filter values (e.g. \"until=<timestamp>\")")
	return cmd
}
