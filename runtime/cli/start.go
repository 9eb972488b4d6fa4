package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/spf13/pflag"
)

func startCommand() *command {
	return &command{
		name:  "start",
		args:  "<container-id>",
		short: "start the user-defined process of a created container",
		run: func(ctx context.Context, g *globals, fs *pflag.FlagSet) error {
			if err := checkArgs(fs, 1, 1); err != nil {
				return err
			}
			c, err := loadContainer(g, fs)
			if err != nil {
				return err
			}
			status, err := c.Status()
			if err != nil {
				return err
			}
			switch status {
			case libcontainer.Created:
				return c.Exec()
			case libcontainer.Stopped:
				return errors.New("cannot start a container that has stopped")
			case libcontainer.Running:
				return errors.New("cannot start an already running container")
			default:
				return fmt.Errorf("cannot start a container in the %s state", status)
			}
		},
	}
}
