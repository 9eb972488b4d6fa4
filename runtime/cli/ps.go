package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
)

func psCommand() *command {
	var format string
	return &command{
		name:  "ps",
		args:  "<container-id> [ps options]",
		short: "list the processes running in a container",
		flags: func(fs *pflag.FlagSet) {
			fs.StringVarP(&format, "format", "f", "table", "select one of: table or json")
		},
		run: func(ctx context.Context, g *globals, fs *pflag.FlagSet) error {
			if err := checkArgs(fs, 1, -1); err != nil {
				return err
			}
			c, err := loadContainer(g, fs)
			if err != nil {
				return err
			}
			pids, err := c.Processes()
			if err != nil {
				return err
			}
			switch format {
			case "json":
				if pids == nil {
					pids = []int{}
				}
				return printJSON(pids, false)
			case "table":
			default:
				return fmt.Errorf("invalid --format %q: use 'table' or 'json'", format)
			}
			psArgs := fs.Args()[1:]
			if len(psArgs) == 0 {
				psArgs = []string{"-ef"}
			}
			out, err := exec.CommandContext(ctx, "ps", psArgs...).Output()
			if err != nil {
				return fmt.Errorf("ps %s: %w", strings.Join(psArgs, " "), err)
			}
			return filterPS(out, pids)
		},
	}
}

// filterPS prints the header of ps's output and the lines of the given pids.
func filterPS(out []byte, pids []int) error {
	lines := strings.Split(string(bytes.TrimRight(out, "\n")), "\n")
	if len(lines) == 0 {
		return errors.New("ps printed nothing")
	}
	col := -1
	for i, name := range strings.Fields(lines[0]) {
		if name == "PID" {
			col = i
		}
	}
	if col < 0 {
		return errors.New("ps output has no PID column: pass options that print one")
	}
	want := make(map[int]bool, len(pids))
	for _, p := range pids {
		want[p] = true
	}
	fmt.Fprintln(os.Stdout, lines[0])
	for _, l := range lines[1:] {
		fields := strings.Fields(l)
		if len(fields) <= col {
			continue
		}
		if p, err := strconv.Atoi(fields[col]); err == nil && want[p] {
			fmt.Fprintln(os.Stdout, l)
		}
	}
	return nil
}
