package cli

import (
	"context"
	"fmt"

	containersv1 "github.com/berth-project/berth/proto/services/containers/v1"
)

// CommitOptions are `docker commit`'s flags.
type CommitOptions struct {
	Author  string   // -a
	Message string   // -m
	Changes []string // -c
	Pause   bool     // -p (default true)
}

// Commit makes an image of a container's changes as `docker commit` does
// and prints its ID.
func (cli *CLI) Commit(ctx context.Context, container, ref string, opts CommitOptions) error {
	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	resp, err := c.Containers().Commit(ctx, &containersv1.CommitRequest{
		Id:        container,
		Reference: ref,
		Author:    opts.Author,
		Message:   opts.Message,
		Changes:   opts.Changes,
		Pause:     opts.Pause,
	})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(cli.Out, resp.GetImageId())
	return err
}
