// Package reaper collects the exit status of every child of the shim.
//
// The shim is a child subreaper: the containers' processes are reparented to
// it when the runtime that created them exits. Whenever a child exits, all
// exited children are reaped (wait4 of any pid) and each exit is handed to
// whoever waits for it. Commands the shim runs itself (the OCI runtime
// binary) register their pid while the reaper is held, so that their status
// is handed back to them and never mistaken for a container's, and a
// container process that exits before the shim learned its pid is
// remembered until it asks.
//
// What tells the reaper that a child exited is a pidfd per process someone
// waits for, polled in Go's netpoller, not SIGCHLD: subscribing to a signal
// costs each shim two OS threads and 56 KiB (the runtime's signal-mask
// thread and the one signal_recv holds), pidfds cost a parked goroutine.
//
// A pidfd only tells of its own process, though, and an orphan reparented to
// the shim is nobody's: without SIGCHLD it would stay a zombie. Orphans of a
// container with its own pid namespace go to the container's init, so only
// two kinds reach the shim: the runtime's own intermediate processes, which
// are reaped with the next exit the shim hears of (each runtime command is
// one), and everything a container in the shim's pid namespace leaves
// behind, which can pile up for as long as the container runs. For those,
// whoever creates such a container calls EnableOrphanReaping (see
// OwnPIDNamespace), which subscribes to SIGCHLD for the rest of the shim's
// life; the reaper also falls back to SIGCHLD if pidfds do not work.
package reaper

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
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
	watchers map[int]*watcher  // container processes, by pid
	unknown  map[int]Exit      // exits nobody asked for yet
	sigchld  sync.Once
}

type watcher struct {
	ch    chan Exit
	pidfd *os.File // nil if SIGCHLD does the waking
}

// New makes this process a subreaper and starts reaping.
func New() (*Reaper, error) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("set child subreaper: %w", err)
	}
	return &Reaper{
		commands: map[int]chan Exit{},
		watchers: map[int]*watcher{},
		unknown:  map[int]Exit{},
	}, nil
}

// EnableOrphanReaping makes the reaper reap on every SIGCHLD from now on,
// so that orphans reparented to the shim that nobody watches do not stay
// zombies. It costs two threads and cannot be undone; calling it again does
// nothing.
func (r *Reaper) EnableOrphanReaping() {
	r.sigchld.Do(func() {
		// One pending signal is enough: each reaps every exited child.
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, unix.SIGCHLD)
		go func() {
			for range ch {
				r.reap()
			}
		}()
		// Children that exited before the subscription sent their SIGCHLD
		// to nobody.
		r.reap()
	})
}

// OwnPIDNamespace reports whether the container of an OCI bundle gets a pid
// namespace other than the shim's (its own or another container's) and so
// an init that inherits its orphans. If that cannot be told, it reports
// false: reaping orphans that never come is the cheaper mistake.
func OwnPIDNamespace(bundle string) bool {
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return false
	}
	var spec struct {
		Linux *struct {
			Namespaces []struct{ Type, Path string } `json:"namespaces"`
		} `json:"linux"`
	}
	if json.Unmarshal(data, &spec) != nil || spec.Linux == nil {
		return false
	}
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type != "pid" {
			continue
		}
		if ns.Path == "" {
			return true
		}
		// Joining the shim's own namespace is joining none.
		joined, err := os.Stat(ns.Path)
		if err != nil {
			return false
		}
		self, err := os.Stat("/proc/self/ns/pid")
		return err == nil && !os.SameFile(joined, self)
	}
	return false
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
		if w, ok := r.watchers[pid]; ok {
			delete(r.watchers, pid)
			w.ch <- e
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

// pollable makes a pidfd nonblocking and hands it to the netpoller; the
// file owns fd, even on error.
func pollable(fd int) (*os.File, error) {
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), "pidfd"), nil
}

// await reaps each time pidfd turns readable (its process exited) until
// delivered reports that the exit was handed over. The netpoller is edge
// triggered, but nothing is lost: Read reaps once before it first waits, a
// pidfd already readable when it was registered counts as an edge, and a
// pidfd stays readable once its process exited. It fails if pidfd cannot
// be polled or is closed meanwhile.
func (r *Reaper) await(pidfd *os.File, delivered func() bool) error {
	rc, err := pidfd.SyscallConn()
	if err != nil {
		return err
	}
	return rc.Read(func(uintptr) bool {
		r.reap()
		return delivered()
	})
}

// Run starts cmd and waits for it, collecting its exit through the reaper;
// if ctx ends first, the command is killed (and still waited for). cmd must
// not come from exec.CommandContext, and its stdio must be *os.File or nil:
// exec.Cmd.Wait is never called, so nothing may depend on it.
func (r *Reaper) Run(ctx context.Context, cmd *exec.Cmd) (Exit, error) {
	// Ask Go for the child's pidfd, in a copy of the caller's attributes.
	pidfd := -1
	callerAttr := cmd.SysProcAttr
	var attr syscall.SysProcAttr
	if callerAttr != nil {
		attr = *callerAttr
	}
	if attr.PidFD == nil {
		attr.PidFD = &pidfd
	}
	cmd.SysProcAttr = &attr
	ch := make(chan Exit, 1)
	r.mu.Lock()
	err := cmd.Start()
	cmd.SysProcAttr = callerAttr
	if err != nil {
		r.mu.Unlock()
		return Exit{}, err
	}
	pid := cmd.Process.Pid
	r.commands[pid] = ch
	r.mu.Unlock()
	if attr.PidFD != &pidfd && *attr.PidFD >= 0 {
		// The caller's pidfd is the caller's to close.
		pidfd, err = unix.FcntlInt(uintptr(*attr.PidFD), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			pidfd = -1
		}
	}
	stop := context.AfterFunc(ctx, func() { _ = cmd.Process.Kill() })
	if !r.awaitCommand(pid, pidfd) {
		r.EnableOrphanReaping()
	}
	e := <-ch
	stop()
	_ = cmd.Process.Release()
	return e, nil
}

// awaitCommand waits until the exit of the command pid was delivered; false
// if its pidfd (-1: none) cannot tell.
func (r *Reaper) awaitCommand(pid, pidfd int) bool {
	if pidfd < 0 {
		return false
	}
	f, err := pollable(pidfd)
	if err != nil {
		return false
	}
	defer f.Close()
	return r.await(f, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		_, waiting := r.commands[pid]
		return !waiting
	}) == nil
}

// Watch returns a channel that receives the exit of pid, a container process
// that is (or will be) our child. If it already exited, the channel holds
// the exit at once. since is a time before the process started (before the
// command that made it ran): an exit recorded earlier is an earlier
// process's that had the same pid, and is dropped.
func (r *Reaper) Watch(pid int, since time.Time) <-chan Exit {
	w := &watcher{ch: make(chan Exit, 1)}
	r.mu.Lock()
	if e, ok := r.unknown[pid]; ok {
		delete(r.unknown, pid)
		if !e.At.Before(since) {
			r.mu.Unlock()
			w.ch <- e
			return w.ch
		}
	}
	// Opened while the reaper is held, the pidfd finds pid even if it
	// already exited: it can only be reaped after it is registered.
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		// Neither alive, nor a zombie, nor reaped by us in the last
		// minute: its status is lost, and a process nobody can see exit
		// would hang whoever waits for it.
		r.mu.Unlock()
		w.ch <- Exit{Pid: pid, Status: 255, At: time.Now()}
		return w.ch
	}
	if err == nil {
		w.pidfd, err = pollable(fd)
	}
	old := r.watchers[pid]
	r.watchers[pid] = w
	r.mu.Unlock()
	if old != nil && old.pidfd != nil {
		old.pidfd.Close()
	}
	if err != nil {
		r.EnableOrphanReaping()
		return w.ch
	}
	go func() {
		err := r.await(w.pidfd, func() bool {
			r.mu.Lock()
			defer r.mu.Unlock()
			// Delivered, forgotten, or watched anew.
			return r.watchers[pid] != w
		})
		w.pidfd.Close()
		r.mu.Lock()
		failed := err != nil && r.watchers[pid] == w
		r.mu.Unlock()
		if failed {
			r.EnableOrphanReaping()
		}
	}()
	return w.ch
}

// Forget stops watching pid. Its exit, when it comes, is reaped as an
// unknown one.
func (r *Reaper) Forget(pid int) {
	r.mu.Lock()
	w := r.watchers[pid]
	delete(r.watchers, pid)
	r.mu.Unlock()
	// Not under r.mu: Close waits for a running await callback, which
	// takes r.mu.
	if w != nil && w.pidfd != nil {
		w.pidfd.Close()
	}
}
