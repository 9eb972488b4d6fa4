package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/docker/go-units"

	containersv1 "github.com/berth-project/berth/proto/services/containers/v1"
)

// eachContainer calls do for each container named, printing the name
// when it worked and the error on stderr when not, as docker's commands
// over several containers do; the command fails if one did.
func (cli *CLI) eachContainer(names []string, do func(string) error) error {
	var errs []error
	for _, n := range names {
		if err := do(n); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintln(cli.Out, n)
	}
	return errors.Join(errs...)
}

// StartOptions are the flags of `berth start`.
type StartOptions struct {
	Attach      bool
	Interactive bool
}

// Start starts containers as `docker start` does: with Attach or
// Interactive, one container whose streams it copies until it exits,
// ending with its exit code.
func (cli *CLI) Start(ctx context.Context, names []string, opts StartOptions) error {
	if (opts.Attach || opts.Interactive) && len(names) > 1 {
		return errors.New("you cannot start and attach multiple containers at once")
	}
	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	if opts.Attach || opts.Interactive {
		resp, err := c.Containers().Get(ctx, &containersv1.GetRequest{Id: names[0]})
		if err != nil {
			return err
		}
		ctr := resp.GetContainer()
		cfg := ctr.GetConfig()
		// A running container is attached to, not started, as docker does.
		start := ctr.GetState().GetStatus() != "running"
		io := ioOptions{stdin: opts.Interactive && cfg.GetOpenStdin(), tty: cfg.GetTty()}
		code, err := cli.attachAndStart(ctx, c, ctr.GetId(), io, start, !cfg.GetTty())
		if errors.Is(err, errDetached) {
			return nil
		}
		if err != nil {
			var st *StatusError
			if errors.As(err, &st) && st.Msg != "" {
				// Failing to start is the daemon's error: exit 1 as docker's start.
				return errors.New(st.Msg)
			}
			return err
		}
		return exitStatus(code)
	}
	var failed []string
	for _, n := range names {
		if _, err := c.Containers().Start(ctx, &containersv1.StartRequest{Id: n}); err != nil {
			fmt.Fprintln(cli.Err, err)
			failed = append(failed, n)
			continue
		}
		fmt.Fprintln(cli.Out, n)
	}
	if len(failed) > 0 {
		return fmt.Errorf("Error: failed to start containers: %s", strings.Join(failed, ", "))
	}
	return nil
}

// StopOptions are the flags of `berth stop` and `berth restart`.
type StopOptions struct {
	Timeout *int // nil: the container's
	Signal  string
}

func (o StopOptions) request(id string) (*containersv1.StopRequest, error) {
	req := &containersv1.StopRequest{Id: id, Signal: o.Signal}
	if o.Signal != "" {
		if _, err := ParseSignal(o.Signal); err != nil {
			return nil, &UsageError{Err: err}
		}
	}
	if o.Timeout != nil {
		t := int32(*o.Timeout)
		req.Timeout = &t
	}
	return req, nil
}

// Stop stops containers as `docker stop` does.
func (cli *CLI) Stop(ctx context.Context, names []string, opts StopOptions) error {
	if _, err := opts.request(""); err != nil {
		return err
	}
	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	return cli.eachContainer(names, func(n string) error {
		req, _ := opts.request(n)
		_, err := c.Containers().Stop(ctx, req)
		return err
	})
}

// Restart stops then starts containers, as `docker restart` does.
func (cli *CLI) Restart(ctx context.Context, names []string, opts StopOptions) error {
	if _, err := opts.request(""); err != nil {
		return err
	}
	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	return cli.eachContainer(names, func(n string) error {
		req, _ := opts.request(n)
		if _, err := c.Containers().Stop(ctx, req); err != nil {
			return err
		}
		_, err := c.Containers().Start(ctx, &containersv1.StartRequest{Id: n})
		return err
	})
}

// KillOptions are the flags of `berth kill`.
type KillOptions struct {
	Signal string
}

// Kill signals containers as `docker kill` does.
func (cli *CLI) Kill(ctx context.Context, names []string, opts KillOptions) error {
	if opts.Signal != "" {
		if _, err := ParseSignal(opts.Signal); err != nil {
			return &UsageError{Err: err}
		}
	}
	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	return cli.eachContainer(names, func(n string) error {
		_, err := c.Containers().Kill(ctx, &containersv1.KillRequest{Id: n, Signal: opts.Signal})
		return err
	})
}

// RmOptions are the flags of `berth rm`.
type RmOptions struct {
	Force   bool
	Volumes bool
}

// Rm removes containers as `docker rm` does; with Force, one that does
// not exist is not an error.
func (cli *CLI) Rm(ctx context.Context, names []string, opts RmOptions) error {
	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		_, err := c.Containers().Remove(ctx, &containersv1.RemoveRequest{Id: n, Force: opts.Force, Volumes: opts.Volumes})
		if err != nil {
			if opts.Force && errdefs.IsNotFound(err) {
				continue
			}
			errs = append(errs, err)
			continue
		}
		fmt.Fprintln(cli.Out, n)
	}
	return errors.Join(errs...)
}

// Wait waits for containers to stop and prints their exit codes, as
// `docker wait` does.
func (cli *CLI) Wait(ctx context.Context, names []string) error {
	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		resp, err := c.Containers().Wait(ctx, &containersv1.WaitRequest{Id: n})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintln(cli.Out, resp.GetExitCode())
	}
	return errors.Join(errs...)
}

// AttachOptions are the flags of `berth attach`.
type AttachOptions struct {
	NoStdin  bool
	SigProxy bool
}

// Attach connects to a running container's streams as `docker attach`
// does, until it exits, ending with its exit code.
func (cli *CLI) Attach(ctx context.Context, name string, opts AttachOptions) error {
	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	resp, err := c.Containers().Get(ctx, &containersv1.GetRequest{Id: name})
	if err != nil {
		return err
	}
	ctr := resp.GetContainer()
	if ctr.GetState().GetStatus() != "running" {
		return errors.New("You cannot attach to a stopped container, start it first")
	}
	cfg := ctr.GetConfig()
	stdin := !opts.NoStdin && cfg.GetOpenStdin()
	if stdin && cfg.GetTty() && !isTerminal(cli.In) {
		return errors.New("the input device is not a TTY")
	}
	code, err := cli.attachAndStart(ctx, c, ctr.GetId(), ioOptions{stdin: stdin, tty: cfg.GetTty()}, false, opts.SigProxy && !cfg.GetTty())
	if errors.Is(err, errDetached) {
		return nil
	}
	if err != nil {
		return err
	}
	return exitStatus(code)
}

// ContainerPruneOptions are the flags of `berth container prune`.
type ContainerPruneOptions struct {
	Force   bool
	Filters []string
}

// ContainerPrune removes the stopped containers as `docker container
// prune` does.
func (cli *CLI) ContainerPrune(ctx context.Context, opts ContainerPruneOptions) error {
	if !opts.Force {
		fmt.Fprint(cli.Out, "WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] ")
		if !confirmed(cli.In) {
			return nil
		}
	}
	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	resp, err := c.Containers().Prune(ctx, &containersv1.PruneRequest{Filters: opts.Filters})
	if err != nil {
		return err
	}
	writePruned(cli, resp)
	return nil
}

func writePruned(cli *CLI, resp *containersv1.PruneResponse) {
	if d := resp.GetDeleted(); len(d) > 0 {
		fmt.Fprintln(cli.Out, "Deleted Containers:")
		for _, id := range d {
			fmt.Fprintln(cli.Out, id)
		}
		fmt.Fprintln(cli.Out)
	}
	fmt.Fprintln(cli.Out, "Total reclaimed space:", units.HumanSize(float64(resp.GetSpaceReclaimed())))
}
