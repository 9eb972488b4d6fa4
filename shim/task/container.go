package task

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berth-project/berth/shim/ociruntime"
	"github.com/berth-project/berth/shim/process"
	"github.com/berth-project/berth/shim/reaper"
	"github.com/berth-project/berth/shim/stdio"
)

// container is one task: its init and exec'd processes, and the runtime
// that manages it.
type container struct {
	id, bundle string
	rt         *ociruntime.Runtime
	noPivot    bool
	noKeyring  bool
	mounted    bool

	init *process.Process
	// starting is held while Start starts the init and publishes its
	// start event, which must reach containerd before the exit event.
	starting sync.Mutex

	mu    sync.Mutex
	execs map[string]*process.Process
}

func (c *container) rootfs() string { return filepath.Join(c.bundle, "rootfs") }

// process finds the init ("") or an exec'd process.
func (c *container) process(execID string) (*process.Process, error) {
	if execID == "" {
		return c.init, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.execs[execID]
	if !ok {
		return nil, fmt.Errorf("exec %s of %s: %w", execID, c.id, errNotFound)
	}
	return p, nil
}

// launch creates the process through the runtime: the init with `create`,
// an exec with `exec --detach`. It sets up the streams, records the pid and
// returns the reaper's watch on the process.
func (c *container) launch(ctx context.Context, p *process.Process, r *reaper.Reaper, ns string, processFile string) (<-chan reaper.Exit, error) {
	name := "init"
	if p.ID != "" {
		name = p.ID
	}
	pidFile := filepath.Join(c.bundle, name+".pid")
	opts := ociruntime.CreateOpts{PidFile: pidFile, NoPivot: c.noPivot, NoNewKeyring: c.noKeyring}
	var streams *stdio.Streams
	var sock *stdio.ConsoleSocket
	var err error
	if p.Terminal {
		if sock, err = stdio.NewConsoleSocket(""); err != nil {
			return nil, err
		}
		defer sock.Close()
		opts.ConsoleSocket = sock.Path()
	} else {
		// A binary:// logger exits after the container, once its streams
		// close: its exit is collected like the container's.
		logger := stdio.Logger{ID: c.id, Namespace: ns, Reap: func(pid int, since time.Time) { go func() { <-r.Watch(pid, since) }() }}
		if streams, err = stdio.New(ctx, p.IO, logger); err != nil {
			return nil, err
		}
		pipes := streams.Pipes()
		opts.IO = ociruntime.IO{Stdin: pipes.Stdin, Stdout: pipes.Stdout, Stderr: pipes.Stderr}
	}
	fail := func(err error) (<-chan reaper.Exit, error) {
		if streams != nil {
			streams.Close()
		}
		return nil, err
	}
	launched := time.Now() // the process starts after this (see Reaper.Watch)
	if p.ID == "" {
		err = c.rt.Create(ctx, c.id, c.bundle, opts)
	} else {
		err = c.rt.Exec(ctx, c.id, c.bundle, processFile, opts)
	}
	if err != nil {
		return fail(err)
	}
	pid, err := readPid(pidFile)
	if p.ID != "" {
		// The runtime is done with an exec's files once it has started it;
		// left behind, they would pile up in the bundle, one pair per exec.
		os.Remove(pidFile)
		os.Remove(processFile)
	}
	if err != nil {
		return fail(err)
	}
	watch := r.Watch(pid, launched)
	if p.Terminal {
		master, err := sock.Receive()
		if err != nil {
			return fail(err)
		}
		if streams, err = stdio.NewTerminal(ctx, p.IO, master); err != nil {
			master.Close()
			return fail(err)
		}
	}
	streams.Started()
	p.Streams = streams
	p.SetPid(pid)
	return watch, nil
}

func readPid(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read pid file: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return 0, fmt.Errorf("pid file %s: %w", path, err)
	}
	return pid, nil
}
