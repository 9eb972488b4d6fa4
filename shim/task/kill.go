package task

import (
	"fmt"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// syscallKill signals one process; a process that is gone is NotFound.
func syscallKill(pid, sig int) error {
	if pid <= 0 {
		return fmt.Errorf("process has no pid yet: %w", errdefs.ErrFailedPrecondition)
	}
	if err := unix.Kill(pid, unix.Signal(sig)); err != nil {
		if err == unix.ESRCH {
			return fmt.Errorf("process %d: %w", pid, errdefs.ErrNotFound)
		}
		return fmt.Errorf("signal %d to %d: %w", sig, pid, err)
	}
	return nil
}
