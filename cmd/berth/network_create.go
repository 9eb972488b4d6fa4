package main

import (
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/cli"
)

func newNetworkCreateCommand(b *cli.CLI) *cobra.Command {
	var opts cli.NetworkCreateOptions
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] NETWORK",
		Short: "Create a network",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return b.NetworkCreate(cmd.Context(), args[0], opts)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&opts.Driver, "driver", "d", "bridge", "driver to manage the network (only bridge)")
	f.StringVar(&opts.Subnet, "subnet", "", "subnet in CIDR format that represents a network segment (default: a free /24 of the daemon's pool)")
	f.StringVar(&opts.Gateway, "gateway", "", "IPv4 gateway for the subnet (its first address)")
	f.StringArrayVarP(&opts.Labels, "label", "l", nil, "set metadata on a network")
	return cmd
}
