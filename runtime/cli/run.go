package cli

import (
	"context"

	"github.com/spf13/pflag"

	"github.com/berth-project/berth/runtime/runner"
)

func runCommand() *command {
	var (
		f           containerFlags
		detach      bool
		keep        bool
		noSubreaper bool
	)
	return &command{
		name:  "run",
		args:  "<container-id>",
		short: "create and run a container; in the foreground, exit with its status",
		flags: func(fs *pflag.FlagSet) {
			f.register(fs)
			fs.BoolVarP(&detach, "detach", "d", false, "detach from the container's process")
			fs.BoolVar(&keep, "keep", false, "do not delete the container after it exits")
			fs.BoolVar(&noSubreaper, "no-subreaper", false, "disable the use of the subreaper used to reap reparented processes")
		},
		run: func(ctx context.Context, g *globals, fs *pflag.FlagSet) error {
			if err := checkArgs(fs, 1, 1); err != nil {
				return err
			}
			o, err := f.options(g, fs)
			if err != nil {
				return err
			}
			o.Detach, o.Keep, o.NoSubreaper = detach, keep, noSubreaper
			status, err := runner.Container(ctx, runner.ActionRun, o)
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
