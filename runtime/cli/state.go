package cli

import (
	"context"
	"encoding/json"
	"os"

	"github.com/spf13/pflag"

	"github.com/berth-project/berth/runtime/state"
)

func stateCommand() *command {
	return &command{
		name:  "state",
		args:  "<container-id>",
		short: "print the state of a container as JSON",
		run: func(ctx context.Context, g *globals, fs *pflag.FlagSet) error {
			if err := checkArgs(fs, 1, 1); err != nil {
				return err
			}
			c, err := loadContainer(g, fs)
			if err != nil {
				return err
			}
			s, err := state.Of(c)
			if err != nil {
				return err
			}
			return printJSON(s, true)
		},
	}
}

func printJSON(v any, indent bool) error {
	enc := json.NewEncoder(os.Stdout)
	if indent {
		enc.SetIndent("", "  ")
	}
	return enc.Encode(v)
}
