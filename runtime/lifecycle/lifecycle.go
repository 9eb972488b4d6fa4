// Package lifecycle holds the container operations that need more than one
// libcontainer call: forced deletion that waits for the init to die, and
// signal names.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"
)

// killTimeout bounds how long delete --force waits for init to die.
const killTimeout = 10 * time.Second

// ParseSignal accepts a number, a name, or a name without the SIG prefix.
func ParseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("invalid signal number %d: use 1 to 64", n)
		}
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	sig := unix.SignalNum(name)
	if sig == 0 {
		return 0, fmt.Errorf("unknown signal %q", s)
	}
	return sig, nil
}

// Delete removes a container's resources. A stopped container is destroyed; a
// created one is killed first. A running or paused one is refused unless
// force is set, in which case it is killed and awaited.
func Delete(ctx context.Context, c *libcontainer.Container, force bool) error {
	if force {
		return killAndDestroy(ctx, c)
	}
	s, err := c.Status()
	if err != nil {
		return err
	}
	switch s {
	case libcontainer.Stopped:
		return c.Destroy()
	case libcontainer.Created:
		return killAndDestroy(ctx, c)
	}
	return fmt.Errorf("cannot delete container %s that is not stopped: %s", c.ID(), s)
}

// killAndDestroy sends SIGKILL to the init and waits for it to exit through a
// pidfd, so that the wait ends the moment the process does, not at the next
// tick of a polling loop.
func killAndDestroy(ctx context.Context, c *libcontainer.Container) error {
	var pidfd = -1
	if st, err := c.State(); err == nil && st.InitProcessPid > 0 {
		if fd, err := unix.PidfdOpen(st.InitProcessPid, 0); err == nil {
			pidfd = fd
			defer unix.Close(fd)
		}
	}
	// Opening the pidfd before checking the container is still running
	// guards against the pid having been reused in between.
	if s, err := c.Status(); err == nil && s == libcontainer.Paused {
		// A frozen task cannot die; thaw it so that SIGKILL takes effect.
		_ = c.Resume()
	}
	if err := c.Signal(unix.SIGKILL); err != nil && !errors.Is(err, libcontainer.ErrNotRunning) {
		return fmt.Errorf("kill container %s: %w", c.ID(), err)
	}
	ctx, cancel := context.WithTimeout(ctx, killTimeout)
	defer cancel()
	for {
		if err := c.Signal(unix.Signal(0)); err != nil {
			return c.Destroy()
		}
		if pidfd >= 0 {
			fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
			_, _ = unix.Poll(fds, 100)
		} else {
			time.Sleep(10 * time.Millisecond)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("container %s: init still running %v after SIGKILL", c.ID(), killTimeout)
		}
	}
}
