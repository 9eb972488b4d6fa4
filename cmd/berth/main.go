// Command berth is berth's command line: docker's verbs, flags, output and
// exit codes, talking to berthd. Each command is a file here that parses
// its flags into the options of a manager/cli method, which does the work.
package main

import (
	"io"

	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/containerd/log"

	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/cli"
	"github.com/berth-project/berth/manager/host"
	"github.com/berth-project/berth/manager/version"
)

func main() {
	os.Exit(run())
}

func run() int {
	// ttrpc logs through containerd/log what the call's error already says
	// ("failed to handle message" when the daemon ends a stream early):
	// berth prints only the error, as docker does.
	log.L.Logger.SetOutput(io.Discard)
	b := &cli.CLI{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}
	root := newRootCommand(b)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := root.ExecuteContext(ctx)
	b.Close()
	if err != nil && ctx.Err() != nil {
		// Stopped by the user: the error is only the echo of the signal.
		return cli.ExitCode(fmt.Errorf("%w: %w", cli.ErrInterrupted, err))
	}
	var status *cli.StatusError
	if err != nil && (!errors.As(err, &status) || status.Msg != "") {
		fmt.Fprintln(os.Stderr, err)
	}
	return cli.ExitCode(err)
}

func newRootCommand(b *cli.CLI) *cobra.Command {
	var hostFlag string
	root := &cobra.Command{
		Use:   "berth [OPTIONS] COMMAND",
		Short: "A container engine: docker's command line for berthd",
		// Unknown commands are an error as docker words it.
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("berth: '%s' is not a berth command.\nSee 'berth --help'", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
		PersistentPreRun: func(*cobra.Command, []string) {
			b.Host = host.Resolve(hostFlag, os.Getenv(host.Env))
		},
		Version:           fmt.Sprintf("%s, build %s", version.Version, version.GitCommit),
		SilenceUsage:      true,
		SilenceErrors:     true,
		DisableAutoGenTag: true,
	}
	root.SetVersionTemplate("berth version {{.Version}}\n")
	root.PersistentFlags().StringVarP(&hostFlag, "host", "H", "", "daemon socket to connect to, unix:///path (default $"+host.Env+", else "+host.Default+")")
	root.Flags().BoolP("version", "v", false, "print version information and quit")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &cli.UsageError{Command: cmd.CommandPath(), Err: err}
	})
	root.AddCommand(
		newVersionCommand(b),
		newInfoCommand(b),
		newEventsCommand(b),
		newSystemCommand(b),
		newImageCommand(b),
		newImagesCommand(b, "images"),
		newPullCommand(b),
		newPushCommand(b),
		newTagCommand(b),
		newRmiCommand(b, "rmi"),
		newHistoryCommand(b),
		newSaveCommand(b),
		newLoadCommand(b),
		newImportCommand(b),
		newBuildCommand(b),
		newLoginCommand(b),
		newLogoutCommand(b),
		newVolumeCommand(b),
		newNetworkCommand(b),
		newContainerCommand(b),
		newRunCommand(b),
		newCreateCommand(b),
		newStartCommand(b),
		newStopCommand(b),
		newRestartCommand(b),
		newKillCommand(b),
		newPauseCommand(b),
		newUnpauseCommand(b),
		newRenameCommand(b),
		newTopCommand(b),
		newStatsCommand(b),
		newCommitCommand(b),
		newCpCommand(b),
		newUpdateCommand(b),
		newRmCommand(b, "rm"),
		newPsCommand(b, "ps"),
		newInspectCommand(b, ""),
		newWaitCommand(b),
		newLogsCommand(b),
		newAttachCommand(b),
		newExecCommand(b),
	)
	// Usage lines read as docker's: "berth version [OPTIONS]".
	var noFlagsInUse func(*cobra.Command)
	noFlagsInUse = func(c *cobra.Command) {
		c.DisableFlagsInUseLine = true
		for _, sub := range c.Commands() {
			noFlagsInUse(sub)
		}
	}
	noFlagsInUse(root)
	return root
}

// noArgs rejects arguments as docker does.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	return fmt.Errorf("%q accepts no arguments.\nSee '%s --help'.\n\nUsage:  %s\n\n%s", cmd.CommandPath(), cmd.CommandPath(), cmd.UseLine(), cmd.Short)
}
