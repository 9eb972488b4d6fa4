package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/berth-project/berth/runtime/bundle"
)

func specCommand() *command {
	var (
		dir      string
		rootless bool
	)
	return &command{
		name:  "spec",
		short: "create a new specification file (config.json) in the bundle",
		flags: func(fs *pflag.FlagSet) {
			fs.StringVarP(&dir, "bundle", "b", "", "path to the root of the bundle directory")
			fs.BoolVar(&rootless, "rootless", false, "generate a configuration for a rootless container")
		},
		run: func(ctx context.Context, g *globals, fs *pflag.FlagSet) error {
			if err := checkArgs(fs, 0, 0); err != nil {
				return err
			}
			path := filepath.Join(dir, bundle.ConfigName)
			if _, err := os.Stat(path); err == nil {
				return fmt.Errorf("file %s exists: remove it first", path)
			} else if !errors.Is(err, iofs.ErrNotExist) {
				return err
			}
			data, err := json.MarshalIndent(bundle.Default(rootless), "", "\t")
			if err != nil {
				return err
			}
			return os.WriteFile(path, data, 0o666)
		},
	}
}
