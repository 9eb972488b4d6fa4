package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/spf13/pflag"

	"github.com/berth-project/berth/runtime/runner"
)

// criuFlags are the flags checkpoint and restore share.
type criuFlags struct {
	imagePath, workPath, manageCgroups string
	tcpEstablished, extUnixSk, shell   bool
	fileLocks, autoDedup               bool
}

func (c *criuFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&c.imagePath, "image-path", "", "path for saving criu image files (default: ./checkpoint)")
	fs.StringVar(&c.workPath, "work-path", "", "path for saving work files and logs")
	fs.StringVar(&c.manageCgroups, "manage-cgroups-mode", "", "cgroups mode: soft|full|strict|ignore (default: soft)")
	fs.BoolVar(&c.tcpEstablished, "tcp-established", false, "allow open tcp connections")
	fs.BoolVar(&c.extUnixSk, "ext-unix-sk", false, "allow external unix sockets")
	fs.BoolVar(&c.shell, "shell-job", false, "allow shell jobs")
	fs.BoolVar(&c.fileLocks, "file-locks", false, "handle file locks, for safety")
	fs.BoolVar(&c.autoDedup, "auto-dedup", false, "enable auto deduplication of memory images")
}

func (c *criuFlags) options() (*libcontainer.CriuOpts, error) {
	image := c.imagePath
	if image == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, err
		}
		image = filepath.Join(wd, "checkpoint")
	}
	image, err := filepath.Abs(image)
	if err != nil {
		return nil, err
	}
	work := c.workPath
	if work != "" {
		if work, err = filepath.Abs(work); err != nil {
			return nil, err
		}
	}
	return &libcontainer.CriuOpts{
		ImagesDirectory:         image,
		WorkDirectory:           work,
		TcpEstablished:          c.tcpEstablished,
		ExternalUnixConnections: c.extUnixSk,
		ShellJob:                c.shell,
		FileLocks:               c.fileLocks,
		AutoDedup:               c.autoDedup,
		ManageCgroupsMode:       c.manageCgroups,
	}, nil
}

func checkpointCommand() *command {
	var (
		f            criuFlags
		parent       string
		leaveRunning bool
		preDump      bool
	)
	return &command{
		name:  "checkpoint",
		args:  "<container-id>",
		short: "checkpoint a running container with criu",
		flags: func(fs *pflag.FlagSet) {
			f.register(fs)
			fs.StringVar(&parent, "parent-path", "", "path for previous criu image files in pre-dump")
			fs.BoolVar(&leaveRunning, "leave-running", false, "leave the process running after checkpointing")
			fs.BoolVar(&preDump, "pre-dump", false, "dump the container's memory information only, leaving it running")
		},
		run: func(ctx context.Context, g *globals, fs *pflag.FlagSet) error {
			if err := checkArgs(fs, 1, 1); err != nil {
				return err
			}
			c, err := loadContainer(g, fs)
			if err != nil {
				return err
			}
			if s, err := c.Status(); err != nil {
				return err
			} else if s != libcontainer.Running {
				return fmt.Errorf("container %s is not running: %s", c.ID(), s)
			}
			opts, err := f.options()
			if err != nil {
				return err
			}
			opts.ParentImage, opts.LeaveRunning, opts.PreDump = parent, leaveRunning, preDump
			if err := os.MkdirAll(opts.ImagesDirectory, 0o700); err != nil {
				return fmt.Errorf("checkpoint image directory: %w", err)
			}
			return c.Checkpoint(opts)
		},
	}
}

func restoreCommand() *command {
	var (
		f           criuFlags
		cf          containerFlags
		detach      bool
		noSubreaper bool
	)
	return &command{
		name:  "restore",
		args:  "<container-id>",
		short: "restore a container from a criu checkpoint",
		flags: func(fs *pflag.FlagSet) {
			f.register(fs)
			cf.register(fs)
			fs.BoolVarP(&detach, "detach", "d", false, "detach from the container's process")
			fs.BoolVar(&noSubreaper, "no-subreaper", false, "disable the use of the subreaper used to reap reparented processes")
		},
		run: func(ctx context.Context, g *globals, fs *pflag.FlagSet) error {
			if err := checkArgs(fs, 1, 1); err != nil {
				return err
			}
			criu, err := f.options()
			if err != nil {
				return err
			}
			o, err := cf.options(g, fs)
			if err != nil {
				return err
			}
			o.Detach, o.NoSubreaper, o.Criu = detach, noSubreaper, criu
			status, err := runner.Container(ctx, runner.ActionRestore, o)
			if err != nil {
				return err
			}
			if status != 0 {
				return exitError{status}
			}
			return nil
		},
	}
}
