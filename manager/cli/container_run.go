package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/manager/client"
	containersv1 "github.com/berth-project/berth/proto/services/containers/v1"
)

// RunOptions are the flags of `berth run`: those of create, and how to
// attach.
type RunOptions struct {
	CreateOptions
	Detach   bool
	SigProxy bool // forward the signals berth gets to the container (without a TTY)
}

// proxiedSignals are the signals `run` and `attach` forward to the
// container with --sig-proxy, as docker's CLI does (but SIGCHLD, SIGPIPE,
// SIGURG and SIGWINCH).
var proxiedSignals = []os.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2}

// Run creates a container and starts it, as `docker run` does: with
// Detach it prints its ID; otherwise it attaches first, starts it, copies
// its streams and ends with its exit code.
func (cli *CLI) Run(ctx context.Context, image string, cmd []string, opts RunOptions) error {
	opts.stdinOnce = !opts.Detach
	req, err := opts.CreateRequest(image, cmd, os.LookupEnv)
	if err != nil {
		return runError(err)
	}
	if !opts.Detach && opts.TTY && opts.Interactive && !isTerminal(cli.In) {
		return runError(errors.New("the input device is not a TTY"))
	}
	c, err := cli.client(ctx)
	if err != nil {
		return runError(err)
	}
	id, err := cli.create(ctx, c, req, &opts.CreateOptions)
	if err != nil {
		return runError(err)
	}
	if opts.Detach {
		if _, err := c.Containers().Start(ctx, &containersv1.StartRequest{Id: id}); err != nil {
			return startError(err)
		}
		fmt.Fprintln(cli.Out, id)
		return nil
	}
	code, err := cli.attachAndStart(ctx, c, id, ioOptions{stdin: opts.Interactive, tty: opts.TTY}, true, opts.SigProxy && !opts.TTY)
	if errors.Is(err, errDetached) {
		return nil // it runs on
	}
	if err != nil {
		return err
	}
	if opts.Rm {
		// The daemon removes it; wait so that it is gone when run returns.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		c.Containers().Wait(wctx, &containersv1.WaitRequest{Id: id, Condition: "removed"})
		cancel()
	}
	return exitStatus(code)
}

// attachAndStart attaches to the container, starts it when start is set
// (the daemon answered attached: no output is missed), and copies its
// streams until it exits. With sigProxy, signals are forwarded to the
// container rather than ending berth.
func (cli *CLI) attachAndStart(ctx context.Context, c *client.Client, id string, io ioOptions, start, sigProxy bool) (int, error) {
	streamCtx := ctx
	if sigProxy {
		// The command's context ends on SIGINT and SIGTERM; those go to
		// the container instead, and the stream lasts until it exits.
		var cancel context.CancelFunc
		streamCtx, cancel = context.WithCancel(context.WithoutCancel(ctx))
		defer cancel()
		sigs := make(chan os.Signal, 8)
		signal.Notify(sigs, proxiedSignals...)
		defer signal.Stop(sigs)
		go func() {
			for {
				select {
				case <-streamCtx.Done():
					return
				case sig := <-sigs:
					s, _ := sig.(unix.Signal)
					c.Containers().Kill(streamCtx, &containersv1.KillRequest{Id: id, Signal: unix.SignalName(s)})
				}
			}
		}()
	}
	wrap := func(err error) error { return err }
	if start {
		wrap = runError
	}
	as, err := c.Containers().Attach(streamCtx)
	if err != nil {
		return 0, wrap(c.Error(err))
	}
	s := attachStream(c, as)
	if err := as.Send(&containersv1.AttachInput{Input: &containersv1.AttachInput_Start{Start: &containersv1.AttachStart{
		Id: id, Stdin: io.stdin, Stdout: true, Stderr: true,
	}}}); err != nil {
		return 0, wrap(c.Error(err))
	}
	if err := s.waitAttached(); err != nil {
		return 0, wrap(err)
	}
	if start {
		if _, err := c.Containers().Start(ctx, &containersv1.StartRequest{Id: id}); err != nil {
			return 0, startError(err)
		}
	}
	code, err := cli.pipe(streamCtx, s, io)
	if errors.Is(err, errNoExitCode) {
		// Attached streams may end before the exit is known: ask.
		resp, werr := c.Containers().Wait(streamCtx, &containersv1.WaitRequest{Id: id})
		if werr != nil {
			return 0, werr
		}
		return int(resp.GetExitCode()), nil
	}
	return code, err
}
