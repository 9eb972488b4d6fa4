package cli

import (
	"context"
	"strings"
	"text/tabwriter"

	containersv1 "github.com/berth-project/berth/proto/services/containers/v1"
)

// Pause freezes containers as `docker pause` does.
func (cli *CLI) Pause(ctx context.Context, names []string) error {
	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	return cli.eachContainer(names, func(n string) error {
		_, err := c.Containers().Pause(ctx, &containersv1.PauseRequest{Id: n})
		return err
	})
}

// Unpause thaws containers as `docker unpause` does.
func (cli *CLI) Unpause(ctx context.Context, names []string) error {
	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	return cli.eachContainer(names, func(n string) error {
		_, err := c.Containers().Unpause(ctx, &containersv1.PauseRequest{Id: n})
		return err
	})
}

// Rename renames a container as `docker rename` does (it prints nothing).
func (cli *CLI) Rename(ctx context.Context, name, newName string) error {
	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	_, err = c.Containers().Rename(ctx, &containersv1.RenameRequest{Id: name, Name: newName})
	return err
}

// Top lists a container's processes as `docker top` does; psArgs are
// the ps options after the container.
func (cli *CLI) Top(ctx context.Context, name string, psArgs []string) error {
	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	resp, err := c.Containers().Top(ctx, &containersv1.TopRequest{Id: name, PsArgs: strings.Join(psArgs, " ")})
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(cli.Out, 10, 1, 3, ' ', 0)
	w.Write([]byte(strings.Join(resp.GetTitles(), "\t") + "\n"))
	for _, p := range resp.GetProcesses() {
		w.Write([]byte(strings.Join(p.GetFields(), "\t") + "\n"))
	}
	return w.Flush()
}
