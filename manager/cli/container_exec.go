package cli

import (
	"context"
	"errors"
	"os"

	containersv1 "github.com/berth-project/berth/proto/services/containers/v1"
)

// ExecOptions are the flags of `berth exec`.
type ExecOptions struct {
	Detach      bool
	Interactive bool
	TTY         bool
	Env         []string
	EnvFile     []string
	User        string
	Workdir     string
	Privileged  bool
}

// ExecStart turns the flags into the first message of Exec.
func (o ExecOptions) ExecStart(container string, cmd []string, lookupEnv func(string) (string, bool)) (*containersv1.ExecStart, error) {
	env, err := readEnv(o.EnvFile, o.Env, lookupEnv)
	if err != nil {
		return nil, err
	}
	return &containersv1.ExecStart{
		Id: container, Cmd: cmd, Env: env, User: o.User, WorkingDir: o.Workdir,
		Tty: o.TTY, Stdin: o.Interactive && !o.Detach, Detach: o.Detach, Privileged: o.Privileged,
	}, nil
}

// Exec runs a process in a running container as `docker exec` does,
// ending with its exit code (126 or 127 when it cannot be run or is not
// found).
func (cli *CLI) Exec(ctx context.Context, container string, cmd []string, opts ExecOptions) error {
	start, err := opts.ExecStart(container, cmd, os.LookupEnv)
	if err != nil {
		return err
	}
	if opts.TTY && start.GetStdin() && !isTerminal(cli.In) {
		return errors.New("the input device is not a TTY")
	}
	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	es, err := c.Containers().Exec(ctx)
	if err != nil {
		return c.Error(err)
	}
	if err := es.Send(&containersv1.ExecInput{Input: &containersv1.ExecInput_Start{Start: start}}); err != nil {
		return c.Error(err)
	}
	s := execStream(c, es)
	if err := s.waitAttached(); err != nil {
		return execError(err)
	}
	if opts.Detach {
		return nil
	}
	code, err := cli.pipe(ctx, s, ioOptions{stdin: start.GetStdin(), tty: opts.TTY})
	if errors.Is(err, errDetached) {
		return nil
	}
	if err != nil {
		return execError(err)
	}
	return exitStatus(code)
}

// execError is a process that did not start: 127 or 126 as docker's
// exec when the command is not found or cannot be invoked.
func execError(err error) error {
	st, ok := startError(err).(*StatusError)
	if ok && st.Code != ExitRunFailure {
		return st
	}
	return err
}
