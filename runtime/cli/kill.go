package cli

import (
	"context"
	"errors"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/spf13/pflag"

	"github.com/berth-project/berth/runtime/lifecycle"
)

func killCommand() *command {
	var all bool
	return &command{
		name:  "kill",
		args:  "<container-id> [signal]",
		short: "send a signal (default SIGTERM) to the container's init process",
		flags: func(fs *pflag.FlagSet) {
			fs.BoolVarP(&all, "all", "a", false, "(kept for compatibility: with a private pid namespace, killing init kills all)")
		},
		run: func(ctx context.Context, g *globals, fs *pflag.FlagSet) error {
			if err := checkArgs(fs, 1, 2); err != nil {
				return err
			}
			sig := fs.Arg(1)
			if sig == "" {
				sig = "SIGTERM"
			}
			signal, err := lifecycle.ParseSignal(sig)
			if err != nil {
				return err
			}
			c, err := loadContainer(g, fs)
			if err != nil {
				return err
			}
			err = c.Signal(signal)
			if all && errors.Is(err, libcontainer.ErrNotRunning) {
				return nil
			}
			return err
		},
	}
}
