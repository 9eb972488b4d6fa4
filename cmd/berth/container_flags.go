package main

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berth-project/berth/manager/cli"
)

// createFlags are the flags `create` and `run` share, parsed into opts;
// finish fills what only the flag set knows (whether a flag was given).
type createFlags struct {
	opts        *cli.CreateOptions
	entrypoint  string
	stopTimeout int
}

func addCreateFlags(f *pflag.FlagSet, opts *cli.CreateOptions) *createFlags {
	cf := &createFlags{opts: opts}
	// docker stops reading flags at the image: what follows is the command's.
	f.SetInterspersed(false)
	f.StringVar(&opts.Name, "name", "", "assign a name to the container")
	f.BoolVarP(&opts.Interactive, "interactive", "i", false, "keep STDIN open even if not attached")
	f.BoolVarP(&opts.TTY, "tty", "t", false, "allocate a pseudo-TTY")
	f.BoolVar(&opts.Rm, "rm", false, "automatically remove the container and its associated anonymous volumes when it exits")
	f.StringArrayVarP(&opts.Env, "env", "e", nil, "set environment variables")
	f.StringArrayVar(&opts.EnvFile, "env-file", nil, "read in a file of environment variables")
	f.StringVarP(&opts.Workdir, "workdir", "w", "", "working directory inside the container")
	f.StringVarP(&opts.User, "user", "u", "", "username or UID (format: <name|uid>[:<group|gid>])")
	f.StringVar(&cf.entrypoint, "entrypoint", "", "overwrite the default ENTRYPOINT of the image")
	f.StringArrayVarP(&opts.Volumes, "volume", "v", nil, "bind mount a volume")
	f.StringArrayVar(&opts.Mounts, "mount", nil, "attach a filesystem mount to the container")
	f.StringArrayVar(&opts.Tmpfs, "tmpfs", nil, "mount a tmpfs directory")
	f.StringArrayVarP(&opts.Publish, "publish", "p", nil, "publish a container's port(s) to the host")
	f.StringVar(&opts.Network, "network", "default", "connect a container to a network: bridge, host or none (default: bridge, if the daemon has it)")
	f.StringVar(&opts.Network, "net", "default", "connect a container to a network")
	f.MarkHidden("net")
	f.StringArrayVar(&opts.DNS, "dns", nil, "set custom DNS servers")
	f.StringVarP(&opts.Hostname, "hostname", "h", "", "container host name")
	// -h is --hostname, as in docker: --help has no shorthand here.
	f.Bool("help", false, "print usage")
	f.StringArrayVarP(&opts.Labels, "label", "l", nil, "set meta data on a container")
	f.BoolVar(&opts.ReadOnly, "read-only", false, "mount the container's root filesystem as read only")
	f.BoolVar(&opts.Privileged, "privileged", false, "give extended privileges to this container")
	f.StringArrayVar(&opts.CapAdd, "cap-add", nil, "add Linux capabilities")
	f.StringArrayVar(&opts.CapDrop, "cap-drop", nil, "drop Linux capabilities")
	f.StringVarP(&opts.Memory, "memory", "m", "", "memory limit")
	f.StringVar(&opts.MemorySwap, "memory-swap", "", "swap limit equal to memory plus swap: '-1' to enable unlimited swap")
	f.Float64Var(&opts.CPUs, "cpus", 0, "number of CPUs")
	f.Int64VarP(&opts.CPUShares, "cpu-shares", "c", 0, "CPU shares (relative weight)")
	f.Int64Var(&opts.PidsLimit, "pids-limit", 0, "tune container pids limit (set -1 for unlimited)")
	f.StringVar(&opts.StopSignal, "stop-signal", "", "signal to stop the container")
	f.IntVar(&cf.stopTimeout, "stop-timeout", 0, "timeout (in seconds) to stop a container")
	f.StringArrayVar(&opts.Sysctls, "sysctl", nil, "sysctl options")
	f.StringArrayVar(&opts.SecurityOpt, "security-opt", nil, "security options: seccomp=unconfined, no-new-privileges")
	f.StringVar(&opts.LogDriver, "log-driver", "", "logging driver for the container: json-file (default) or none")
	f.StringArrayVar(&opts.LogOpts, "log-opt", nil, "log driver options: max-size, max-file")
	f.StringVar(&opts.ShmSize, "shm-size", "", "size of /dev/shm")
	f.StringVar(&opts.Restart, "restart", "no", "restart policy to apply when a container exits")
	f.StringVar(&opts.Pull, "pull", "missing", `pull image before running ("always", "missing", "never")`)
	f.StringVar(&opts.Platform, "platform", "", "set platform if server is multi-platform capable")
	return cf
}

// finish sets the options only the flag set can tell.
func (cf *createFlags) finish(cmd *cobra.Command) {
	f := cmd.Flags()
	if f.Changed("entrypoint") {
		cf.opts.Entrypoint = &cf.entrypoint
	}
	if f.Changed("stop-timeout") {
		cf.opts.StopTimeout = &cf.stopTimeout
	}
}
