// Package runner creates containers and runs processes in them on
// libcontainer, with the standard streams, terminal, signal forwarding and
// pid-file handling that runc's command line promises its callers.
package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/runtime/bundle"
)

// Action says what to do with a new container.
type Action int

const (
	// ActionCreate sets the container up and leaves its init waiting for start.
	ActionCreate Action = iota + 1
	// ActionRun creates and starts the container at once.
	ActionRun
	// ActionRestore creates the container from a criu checkpoint.
	ActionRestore
)

// ProcessIO are the options shared by an init process and an exec'd one.
type ProcessIO struct {
	ConsoleSocket string // unix socket that receives the pty master (detached terminal)
	PidFile       string // absolute path; written atomically once the process runs
	PreserveFDs   int    // pass fds 3..3+n-1 on to the process
	Detach        bool   // return once the process runs
}

// ContainerOptions describe a container to create or run.
type ContainerOptions struct {
	ProcessIO
	Root          string // state directory of all containers
	ID            string
	Bundle        string // absolute bundle path; the runtime works from there
	Spec          *specs.Spec
	NoPivot       bool
	NoNewKeyring  bool
	SystemdCgroup bool
	RootlessCg    bool
	NoSubreaper   bool
	Keep          bool                   // run: keep the container's state after it exits
	Criu          *libcontainer.CriuOpts // restore: where the checkpoint is
}

// Container creates a container, then creates (ActionCreate) or runs
// (ActionRun) its init. In the foreground it returns the init's exit status;
// everything is destroyed again on failure so that nothing is left behind.
func Container(ctx context.Context, act Action, o ContainerOptions) (int, error) {
	if err := checkTerminal(o.Spec.Process, o.Detach || act == ActionCreate, o.ConsoleSocket); err != nil {
		return -1, err
	}
	if !o.SystemdCgroup && os.Geteuid() == 0 {
		go warmCgroupMigration()
	}
	if _, err := bundle.RootfsPath(o.Bundle, o.Spec); err != nil {
		return -1, err
	}
	// specconv resolves relative paths (rootfs, mount sources, hooks)
	// against the working directory, and records it as the bundle.
	if err := os.Chdir(o.Bundle); err != nil {
		return -1, fmt.Errorf("enter bundle %s: %w", o.Bundle, err)
	}
	config, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{
		CgroupName:       o.ID,
		UseSystemdCgroup: o.SystemdCgroup,
		NoPivotRoot:      o.NoPivot,
		NoNewKeyring:     o.NoNewKeyring,
		Spec:             o.Spec,
		RootlessEUID:     os.Geteuid() != 0,
		RootlessCgroups:  o.RootlessCg,
	})
	if err != nil {
		return -1, fmt.Errorf("config.json: %w", err)
	}
	c, err := libcontainer.Create(o.Root, o.ID, config)
	if err != nil {
		return -1, err
	}
	r := &run{container: c, init: true, act: act, io: o.ProcessIO, criu: o.Criu, destroy: !o.Keep, subreaper: !o.NoSubreaper && !o.Detach && act != ActionCreate}
	status, err := r.start(ctx, o.Spec.Process)
	if err != nil {
		r.destroyContainer()
		return -1, err
	}
	return status, nil
}

// Exec runs an additional process in a running container.
func Exec(ctx context.Context, c *libcontainer.Container, p *specs.Process, io ProcessIO) (int, error) {
	if err := checkTerminal(p, io.Detach, io.ConsoleSocket); err != nil {
		return -1, err
	}
	r := &run{container: c, act: ActionRun, io: io}
	return r.start(ctx, p)
}

// run is one process start: the init of a new container or an exec.
type run struct {
	container *libcontainer.Container
	init      bool
	act       Action
	io        ProcessIO
	destroy   bool // destroy the container when its init exits (foreground run)
	subreaper bool
	criu      *libcontainer.CriuOpts
}

func (r *run) detached() bool { return r.io.Detach || r.act == ActionCreate }

func (r *run) start(_ context.Context, spec *specs.Process) (int, error) {
	p, err := newProcess(spec)
	if err != nil {
		return -1, err
	}
	p.Init = r.init
	p.LogLevel = strconv.Itoa(int(logrus.GetLevel()))
	if err := preserveFDs(p, r.io.PreserveFDs); err != nil {
		return -1, err
	}
	var fwd *forwarder
	if !r.detached() {
		fwd = newForwarder(r.subreaper)
	}
	io, err := setupStdio(p, spec.Terminal, r.detached(), r.io.ConsoleSocket)
	if err != nil {
		return -1, err
	}
	defer io.close()

	switch r.act {
	case ActionCreate:
		err = r.container.Start(p)
	case ActionRestore:
		err = r.container.Restore(p, r.criu)
	default:
		err = r.container.Run(p)
	}
	if err != nil {
		return -1, err
	}
	pid, err := p.Pid()
	if err != nil {
		terminate(p)
		return -1, err
	}
	if err := io.started(); err != nil {
		terminate(p)
		return -1, err
	}
	if r.io.PidFile != "" {
		if err := writePidFile(r.io.PidFile, pid); err != nil {
			terminate(p)
			return -1, err
		}
	}
	if r.detached() {
		return 0, nil
	}
	status := fwd.forward(pid, io)
	io.drain()
	if r.destroy {
		r.destroyContainer()
	}
	return status, nil
}

func (r *run) destroyContainer() {
	if !r.init {
		return
	}
	if err := r.container.Destroy(); err != nil {
		logrus.Warnf("destroy container %s: %v", r.container.ID(), err)
	}
}

func terminate(p *libcontainer.Process) {
	_ = p.Signal(unix.SIGKILL)
	_, _ = p.Wait()
}

// checkTerminal rejects the combinations runc rejects, with runc's words,
// which callers match on.
func checkTerminal(p *specs.Process, detach bool, consoleSocket string) error {
	if detach && p.Terminal && consoleSocket == "" {
		return errors.New("cannot allocate tty if runc will detach without setting console socket")
	}
	if (!detach || !p.Terminal) && consoleSocket != "" {
		return errors.New("cannot use console socket if runc will not detach or allocate tty")
	}
	return nil
}

// preserveFDs hands the caller's fds 3..3+n-1 to the process.
func preserveFDs(p *libcontainer.Process, n int) error {
	base := 3 + len(p.ExtraFiles)
	for fd := base; fd < base+n; fd++ {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return fmt.Errorf("--preserve-fds=%d: fd %d is not open: %w", n, fd, err)
		}
		p.ExtraFiles = append(p.ExtraFiles, os.NewFile(uintptr(fd), "preserved-fd-"+strconv.Itoa(fd)))
	}
	return nil
}

// writePidFile writes pid atomically: callers poll for the file and must
// never read it half-written.
func writePidFile(path string, pid int) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path))
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL|os.O_SYNC, 0o666)
	if err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	_, err = f.WriteString(strconv.Itoa(pid))
	f.Close()
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("pid file %s: %w", path, err)
	}
	return nil
}
