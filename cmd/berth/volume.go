package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/cli"
)

// newVolumeCommand is `berth volume`.
func newVolumeCommand(b *cli.CLI) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "volume COMMAND",
		Short: "Manage volumes",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	cmd.AddCommand(
		newVolumeCreateCommand(b),
		newVolumeLsCommand(b),
		newVolumeInspectCommand(b),
		newVolumeRmCommand(b),
		newVolumePruneCommand(b),
	)
	return cmd
}

func newVolumeCreateCommand(b *cli.CLI) *cobra.Command {
	var opts cli.VolumeCreateOptions
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] [VOLUME]",
		Short: "Create a volume",
		Args:  maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return b.VolumeCreate(cmd.Context(), arg(args, 0), opts)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&opts.Driver, "driver", "d", "local", "specify volume driver name")
	f.StringVar(&opts.Name, "name", "", "specify volume name")
	f.StringArrayVarP(&opts.Labels, "label", "l", nil, "set metadata for a volume")
	f.StringArrayVarP(&opts.Opts, "opt", "o", nil, "set driver specific options")
	return cmd
}

func newVolumeLsCommand(b *cli.CLI) *cobra.Command {
	var opts cli.VolumeLsOptions
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List volumes",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return b.VolumeLs(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&opts.Quiet, "quiet", "q", false, "only display volume names")
	f.StringArrayVarP(&opts.Filters, "filter", "f", nil, "provide filter values (e.g. \"dangling=true\")")
	f.StringVar(&opts.Format, "format", "", "format output using a custom template: 'table', 'table TEMPLATE', 'json', or a Go template")
	return cmd
}

func newVolumeInspectCommand(b *cli.CLI) *cobra.Command {
	var opts cli.VolumeInspectOptions
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] VOLUME [VOLUME...]",
		Short: "Display detailed information on one or more volumes",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return b.VolumeInspect(cmd.Context(), args, opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Format, "format", "f", "", "format output using a custom template: 'json', or a Go template")
	return cmd
}

func newVolumeRmCommand(b *cli.CLI) *cobra.Command {
	var opts cli.VolumeRmOptions
	cmd := &cobra.Command{
		Use:     "rm [OPTIONS] VOLUME [VOLUME...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more volumes",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return b.VolumeRm(cmd.Context(), args, opts)
		},
	}
	cmd.Flags().BoolVarP(&opts.Force, "force", "f", false, "force the removal of one or more volumes")
	return cmd
}

func newVolumePruneCommand(b *cli.CLI) *cobra.Command {
	var opts cli.VolumePruneOptions
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused local volumes",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return b.VolumePrune(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&opts.All, "all", "a", false, "remove all unused volumes, not just anonymous ones")
	f.BoolVarP(&opts.Force, "force", "f", false, "do not prompt for confirmation")
	f.StringArrayVar(&opts.Filters, "filter", nil, "provide filter values (e.g. \"label=<label>\")")
	return cmd
}

// maxArgs accepts at most n arguments.
func maxArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) <= n {
			return nil
		}
		return argsError(cmd, fmt.Sprintf("at most %d %s", n, plural(n)))
	}
}
