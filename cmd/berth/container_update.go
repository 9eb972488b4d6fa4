package main

import (
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/cli"
)

func newUpdateCommand(b *cli.CLI) *cobra.Command {
	var (
		opts                       cli.UpdateOptions
		memory, memorySwap, policy string
		cpus                       float64
		shares, pids               int64
	)
	cmd := &cobra.Command{
		Use:   "update [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Update configuration of one or more containers",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f := cmd.Flags()
			if f.Changed("memory") {
				opts.Memory = &memory
			}
			if f.Changed("memory-swap") {
				opts.MemorySwap = &memorySwap
			}
			if f.Changed("cpus") {
				opts.CPUs = &cpus
			}
			if f.Changed("cpu-shares") {
				opts.CPUShares = &shares
			}
			if f.Changed("pids-limit") {
				opts.PidsLimit = &pids
			}
			if f.Changed("restart") {
				opts.Restart = &policy
			}
			return b.Update(cmd.Context(), args, opts)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&memory, "memory", "m", "", "memory limit")
	f.StringVar(&memorySwap, "memory-swap", "", "swap limit equal to memory plus swap: -1 to enable unlimited swap")
	f.Float64Var(&cpus, "cpus", 0, "number of CPUs")
	f.Int64VarP(&shares, "cpu-shares", "c", 0, "CPU shares (relative weight)")
	f.Int64Var(&pids, "pids-limit", 0, "tune container pids limit (-1 for unlimited)")
	f.StringVar(&policy, "restart", "", "restart policy to apply when a container exits")
	return cmd
}
