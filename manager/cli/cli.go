// Package cli does the work of berth's commands: cmd/berth parses each
// command's flags into an options struct (cobra lives only there) and
// calls the method here, which talks to berthd through manager/client and
// writes what docker would write: the same columns, --format templates
// and exit codes (ExitCode is the one mapping from errors to them).
package cli

import (
	"context"
	"io"

	"github.com/berth-project/berth/manager/client"
)

// CLI is one run of the command line.
type CLI struct {
	In       io.Reader
	Out, Err io.Writer
	// Host is the daemon's address (-H, $BERTH_HOST or the default).
	Host string

	c *client.Client
}

// client connects to the daemon on first use: commands that need no
// daemon (and `version`, which shows the client side without one) never
// dial.
func (cli *CLI) client(ctx context.Context) (*client.Client, error) {
	if cli.c != nil {
		return cli.c, nil
	}
	c, err := client.New(ctx, cli.Host)
	if err != nil {
		return nil, err
	}
	cli.c = c
	return c, nil
}

// Close closes the connection, if any.
func (cli *CLI) Close() error {
	if cli.c == nil {
		return nil
	}
	return cli.c.Close()
}
