// Package reaper collects the exit status of every child of the shim.
//
// The shim is a child subreaper: the containers' processes are reparented to
// it when the runtime that created them exits. One goroutine waits for any
// child; commands the shim runs itself (the OCI runtime binary) register
// their pid while the reaper is held, so that their status is handed back to
// them and never mistaken for a container's, and a container process that
// exits before the shim learned its pid is remembered until it asks.
package reaper

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Exit is a reaped child.
type Exit struct {
	Pid    int
	Status int // exit code, or 128+signal
	At     time.Time
}

// Reaper owns the wait for all children.
type Reaper struct {
	mu       sync.Mutex
	commands map[int]chan Exit // our own commands, by pid
	watchers map[int]chan Exit // container processes, by pid
	unknown  map[int]Exit      // exits nobody asked for yet
	signals  chan os.Signal
}

// New makes this process a subreaper and starts reaping.
func New() (*Reaper, error) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("set child subreaper: %w", err)
	}
	r := &Reaper{
		commands: map[int]chan Exit{},
		watchers: map[int]chan Exit{},
		unknown:  map[int]Exit{},
		signals:  make(chan os.Signal, 128),
	}
	signal.Notify(r.signals, unix.SIGCHLD)
	go r.loop()
	return r, nil
}

func (r *Reaper) loop() {
	for range r.signals {
		r.reap()
	}
}

func (r *Reaper) reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if pid <= 0 || err != nil {
			r.prune(time.Now())
			return
		}
		e := Exit{Pid: pid, Status: exitStatus(ws), At: time.Now()}
		if ch, ok := r.commands[pid]; ok {
			delete(r.commands, pid)
			ch <- e
			continue
		}
		if ch, ok := r.watchers[pid]; ok {
			delete(r.watchers, pid)
			ch <- e
			continue
		}
		r.unknown[pid] = e
	}
}

// unknownTTL bounds how long an exit nobody asked for is kept: orphans that
// were reparented to the shim are reaped but never watched.
const unknownTTL = time.Minute

func (r *Reaper) prune(now time.Time) {
	for pid, e := range r.unknown {
		if now.Sub(e.At) > unknownTTL {
			delete(r.unknown, pid)
		}
	}
}

func exitStatus(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// Run starts cmd and waits for it, collecting its exit through the reaper;
// if ctx ends first, the command is killed (and still waited for). cmd must
// not come from exec.CommandContext, and its stdio must be *os.File or nil:
// exec.Cmd.Wait is never called, so nothing may depend on it.
func (r *Reaper) Run(ctx context.Context, cmd *exec.Cmd) (Exit, error) {
	ch := make(chan Exit, 1)
	r.mu.Lock()
	if err := cmd.Start(); err != nil {
		r.mu.Unlock()
		return Exit{}, err
	}
	r.commands[cmd.Process.Pid] = ch
	r.mu.Unlock()
	// A SIGCHLD may have raced the registration: reap once more.
	r.reap()
	var e Exit
	select {
	case e = <-ch:
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		e = <-ch
	}
	_ = cmd.Process.Release()
	return e, nil
}

// Watch returns a channel that receives the exit of pid, a container process
// that is (or will be) our child. If it already exited, the channel holds
// the exit at once.
func (r *Reaper) Watch(pid int) <-chan Exit {
	ch := make(chan Exit, 1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.unknown[pid]; ok {
		delete(r.unknown, pid)
		ch <- e
		return ch
	}
	r.watchers[pid] = ch
	return ch
}

// Forget stops watching pid.
func (r *Reaper) Forget(pid int) {
	r.mu.Lock()
	delete(r.watchers, pid)
	r.mu.Unlock()
}
