package main

import (
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/cli"
)

// stopFlags adds -t/--time and -s/--signal of `stop` and `restart`.
func stopFlags(cmd *cobra.Command, opts *cli.StopOptions) func() {
	var timeout int
	f := cmd.Flags()
	f.IntVarP(&timeout, "time", "t", 0, "seconds to wait before killing the container")
	f.IntVar(&timeout, "timeout", 0, "seconds to wait before killing the container")
	f.MarkHidden("timeout")
	f.StringVarP(&opts.Signal, "signal", "s", "", "signal to send to the container")
	return func() {
		if f.Changed("time") || f.Changed("timeout") {
			opts.Timeout = &timeout
		}
	}
}

func newStopCommand(b *cli.CLI) *cobra.Command {
	var opts cli.StopOptions
	var finish func()
	cmd := &cobra.Command{
		Use:   "stop [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Stop one or more running containers",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			finish()
			return b.Stop(cmd.Context(), args, opts)
		},
	}
	finish = stopFlags(cmd, &opts)
	return cmd
}

func newRestartCommand(b *cli.CLI) *cobra.Command {
	var opts cli.StopOptions
	var finish func()
	cmd := &cobra.Command{
		Use:   "restart [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Restart one or more containers",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			finish()
			return b.Restart(cmd.Context(), args, opts)
		},
	}
	finish = stopFlags(cmd, &opts)
	return cmd
}
