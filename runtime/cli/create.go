package cli

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/berth-project/berth/runtime/bundle"
	"github.com/berth-project/berth/runtime/runner"
)

// containerFlags are the flags create and run share.
type containerFlags struct {
	bundle        string
	consoleSocket string
	pidFile       string
	noPivot       bool
	noNewKeyring  bool
	preserveFDs   int
}

func (c *containerFlags) register(fs *pflag.FlagSet) {
	fs.StringVarP(&c.bundle, "bundle", "b", "", "path to the root of the bundle directory, defaults to the current directory")
	fs.StringVar(&c.consoleSocket, "console-socket", "", "path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal")
	fs.StringVar(&c.pidFile, "pid-file", "", "specify the file to write the process id to")
	fs.BoolVar(&c.noPivot, "no-pivot", false, "do not use pivot root to jail process inside rootfs (unsafe; for a rootfs on a ramdisk)")
	fs.BoolVar(&c.noNewKeyring, "no-new-keyring", false, "do not create a new session keyring for the container")
	fs.IntVar(&c.preserveFDs, "preserve-fds", 0, "pass N additional file descriptors to the container (stdio + $LISTEN_FDS + N in total)")
	fs.String("pidfd-socket", "", "not supported yet")
	_ = fs.MarkHidden("pidfd-socket")
}

// options turns the flags into runner options, loading the bundle's spec.
func (c *containerFlags) options(g *globals, fs *pflag.FlagSet) (runner.ContainerOptions, error) {
	id, err := containerID(fs)
	if err != nil {
		return runner.ContainerOptions{}, err
	}
	dir := c.bundle
	if dir == "" {
		dir = "."
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return runner.ContainerOptions{}, fmt.Errorf("--bundle: %w", err)
	}
	spec, err := bundle.Load(dir)
	if err != nil {
		return runner.ContainerOptions{}, err
	}
	pidFile := c.pidFile
	if pidFile != "" {
		if pidFile, err = filepath.Abs(pidFile); err != nil {
			return runner.ContainerOptions{}, fmt.Errorf("--pid-file: %w", err)
		}
	}
	rootlessCg, err := rootlessCgroups(g)
	if err != nil {
		return runner.ContainerOptions{}, err
	}
	return runner.ContainerOptions{
		ProcessIO: runner.ProcessIO{
			ConsoleSocket: c.consoleSocket,
			PidFile:       pidFile,
			PreserveFDs:   c.preserveFDs,
		},
		Root:          g.root,
		ID:            id,
		Bundle:        dir,
		Spec:          spec,
		NoPivot:       c.noPivot,
		NoNewKeyring:  c.noNewKeyring,
		SystemdCgroup: g.systemdCgroup,
		RootlessCg:    rootlessCg,
	}, nil
}

func createCommand() *command {
	var f containerFlags
	return &command{
		name:  "create",
		args:  "<container-id>",
		short: "create a container from a bundle; its process waits for 'start'",
		flags: f.register,
		run: func(ctx context.Context, g *globals, fs *pflag.FlagSet) error {
			if err := checkArgs(fs, 1, 1); err != nil {
				return err
			}
			o, err := f.options(g, fs)
			if err != nil {
				return err
			}
			_, err = runner.Container(ctx, runner.ActionCreate, o)
			return err
		},
	}
}
