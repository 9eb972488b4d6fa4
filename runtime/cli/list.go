package cli

import (
	"context"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/berth-project/berth/runtime/state"
)

func listCommand() *command {
	var (
		format string
		quiet  bool
	)
	return &command{
		name:  "list",
		short: "list the containers started by this runtime under the given --root",
		flags: func(fs *pflag.FlagSet) {
			fs.StringVarP(&format, "format", "f", "table", "select one of: table or json")
			fs.BoolVarP(&quiet, "quiet", "q", false, "display only container IDs")
		},
		run: func(ctx context.Context, g *globals, fs *pflag.FlagSet) error {
			if err := checkArgs(fs, 0, 0); err != nil {
				return err
			}
			list, err := state.List(g.root)
			if err != nil {
				return err
			}
			if quiet {
				for _, s := range list {
					fmt.Println(s.ID)
				}
				return nil
			}
			switch format {
			case "table":
				w := tabwriter.NewWriter(os.Stdout, 12, 1, 3, ' ', 0)
				fmt.Fprint(w, "ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER\n")
				for _, s := range list {
					fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", s.ID, s.Pid, s.Status, s.Bundle, s.Created.Format(time.RFC3339Nano), s.Owner)
				}
				return w.Flush()
			case "json":
				if list == nil {
					list = []state.State{}
				}
				return printJSON(list, false)
			}
			return fmt.Errorf("invalid --format %q: use 'table' or 'json'", format)
		},
	}
}
