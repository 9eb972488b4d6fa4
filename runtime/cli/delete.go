package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/spf13/pflag"

	"github.com/berth-project/berth/runtime/lifecycle"
)

func deleteCommand() *command {
	var force bool
	return &command{
		name:  "delete",
		args:  "<container-id>",
		short: "delete the resources held by a stopped container",
		flags: func(fs *pflag.FlagSet) {
			fs.BoolVarP(&force, "force", "f", false, "forcibly delete the container if it is still running (uses SIGKILL)")
		},
		run: func(ctx context.Context, g *globals, fs *pflag.FlagSet) error {
			if err := checkArgs(fs, 1, 1); err != nil {
				return err
			}
			id := fs.Arg(0)
			c, err := libcontainer.Load(g.root, id)
			if errors.Is(err, libcontainer.ErrNotExist) {
				// An aborted create can leave a directory without state.json.
				if rmErr := os.RemoveAll(filepath.Join(g.root, id)); rmErr != nil {
					fmt.Fprintf(os.Stderr, "remove %s: %v\n", filepath.Join(g.root, id), rmErr)
				}
				if force {
					return nil
				}
			}
			if err != nil {
				return err
			}
			return lifecycle.Delete(ctx, c, force)
		},
	}
}
