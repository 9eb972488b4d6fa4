package runner

import (
	"os"
	"os/signal"

	"github.com/opencontainers/runc/libcontainer/utils"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// signalBuffer is deep enough that a burst of SIGCHLD from many exiting
// children is not lost before we reap.
const signalBuffer = 2048

// forwarder relays the signals the runtime receives to the process it runs in
// the foreground, and reaps children to learn that process's exit status.
type forwarder struct {
	signals chan os.Signal
}

// newForwarder subscribes to signals before the process starts, so that no
// SIGCHLD is missed. With subreaper set, orphans from the container's process
// tree are reparented to us and reaped here too.
//
// The subscription lasts until the runtime exits, which it does right after
// the process it waits for: the Go runtime enables and disables each signal
// with a round trip to its signal thread (~2 ms for all of them), so every
// signal but SIGCHLD is subscribed to while the container starts, and none
// is unsubscribed.
func newForwarder(subreaper bool) *forwarder {
	if subreaper {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			logrus.Warnf("set child subreaper: %v", err)
		}
	}
	f := &forwarder{signals: make(chan os.Signal, signalBuffer)}
	signal.Notify(f.signals, unix.SIGCHLD)
	go signal.Notify(f.signals)
	return f
}

// forward relays signals to pid until it exits, and returns its exit status
// (128+signal for a process killed by a signal, as a shell reports it).
func (f *forwarder) forward(pid int, io *stdio) int {
	for sig := range f.signals {
		switch sig {
		case unix.SIGCHLD:
			if status, done := reap(pid); done {
				return status
			}
		case unix.SIGWINCH:
			_ = io.resize()
		case unix.SIGURG:
			// The Go runtime's preemption signal: not for the container.
		default:
			if err := unix.Kill(pid, sig.(unix.Signal)); err != nil {
				logrus.Debugf("forward %v to %d: %v", sig, pid, err)
			}
		}
	}
	return -1
}

// reap collects every exited child; done reports whether pid was among them.
func reap(pid int) (status int, done bool) {
	for {
		var ws unix.WaitStatus
		var ru unix.Rusage
		p, err := unix.Wait4(-1, &ws, unix.WNOHANG, &ru)
		if err == unix.EINTR {
			continue
		}
		if p <= 0 || err != nil {
			return status, done
		}
		if p == pid {
			status, done = utils.ExitStatus(ws), true
		}
	}
}
