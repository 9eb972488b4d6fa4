package cli

import (
	"context"

	"github.com/spf13/pflag"
)

func pauseCommand() *command {
	return &command{
		name:  "pause",
		args:  "<container-id>",
		short: "suspend all processes in the container (cgroup freezer)",
		run: func(ctx context.Context, g *globals, fs *pflag.FlagSet) error {
			if err := checkArgs(fs, 1, 1); err != nil {
				return err
			}
			c, err := loadContainer(g, fs)
			if err != nil {
				return err
			}
			return c.Pause()
		},
	}
}

func resumeCommand() *command {
	return &command{
		name:  "resume",
		args:  "<container-id>",
		short: "resume all processes of a paused container",
		run: func(ctx context.Context, g *globals, fs *pflag.FlagSet) error {
			if err := checkArgs(fs, 1, 1); err != nil {
				return err
			}
			c, err := loadContainer(g, fs)
			if err != nil {
				return err
			}
			return c.Resume()
		},
	}
}
