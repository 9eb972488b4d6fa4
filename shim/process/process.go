// Package process is the shim's model of a container process (the init or an
// exec'd one): a state machine — created, running, paused, stopped, deleted —
// whose transitions are checked, so that an operation in the wrong state gets
// a clear error of the right errdefs kind instead of reaching the runtime.
package process

import (
	"fmt"
	"sync"
	"time"

	"github.com/containerd/errdefs"

	"github.com/berth-project/berth/shim/stdio"
)

// State of a process.
type State int

const (
	Created State = iota
	Running
	Paused
	Stopped
	Deleted
)

func (s State) String() string {
	return [...]string{"created", "running", "paused", "stopped", "deleted"}[s]
}

// Process is one process of a container.
type Process struct {
	ID       string // exec id; "" for the init
	Terminal bool
	IO       stdio.Config

	mu       sync.Mutex
	busy     bool // a transition's operation is running
	state    State
	pid      int
	status   int
	exitedAt time.Time
	exited   chan struct{}
	Streams  *stdio.Streams
}

// New is a process that has not been created yet.
func New(id string, terminal bool, io stdio.Config) *Process {
	return &Process{ID: id, Terminal: terminal, IO: io, exited: make(chan struct{})}
}

func (p *Process) name() string {
	if p.ID == "" {
		return "init process"
	}
	return "exec " + p.ID
}

// Snapshot is a consistent view of a process.
type Snapshot struct {
	State    State
	Pid      int
	Status   int
	ExitedAt time.Time
}

// Snapshot reads the process's state.
func (p *Process) Snapshot() Snapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Snapshot{State: p.state, Pid: p.pid, Status: p.status, ExitedAt: p.exitedAt}
}

// Transition runs op if the process is in one of from, then moves it to to.
// Transitions of one process never overlap: a second one while op runs is
// refused. op runs unlocked (it may take the runtime a while, and the
// process may exit meanwhile: an exit is never overwritten).
func (p *Process) Transition(verb string, to State, op func() error, from ...State) error {
	p.mu.Lock()
	if err := p.check(verb, from...); err != nil {
		p.mu.Unlock()
		return err
	}
	if p.busy {
		p.mu.Unlock()
		return fmt.Errorf("cannot %s %s: another operation is in progress: %w", verb, p.name(), errdefs.ErrUnavailable)
	}
	p.busy = true
	p.mu.Unlock()
	var err error
	if op != nil {
		err = op()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.busy = false
	if err != nil {
		return err
	}
	if p.state != Stopped || to == Deleted {
		p.state = to
	}
	return nil
}

// Check reports whether verb is allowed in the current state.
func (p *Process) Check(verb string, from ...State) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.check(verb, from...)
}

func (p *Process) check(verb string, from ...State) error {
	for _, s := range from {
		if p.state == s {
			return nil
		}
	}
	switch p.state {
	case Stopped:
		if verb == "kill" {
			return fmt.Errorf("%s: process already finished: %w", p.name(), errdefs.ErrNotFound)
		}
	case Deleted:
		return fmt.Errorf("%s: deleted: %w", p.name(), errdefs.ErrNotFound)
	}
	return fmt.Errorf("cannot %s %s: it is %s: %w", verb, p.name(), p.state, errdefs.ErrFailedPrecondition)
}

// SetPid records the pid once the runtime created the process.
func (p *Process) SetPid(pid int) {
	p.mu.Lock()
	p.pid = pid
	p.mu.Unlock()
}

// Exit records the exit; it returns false if the process had already exited.
func (p *Process) Exit(status int, at time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == Stopped || p.state == Deleted {
		return false
	}
	p.state, p.status, p.exitedAt = Stopped, status, at
	close(p.exited)
	return true
}

// Exited is closed when the process exits.
func (p *Process) Exited() <-chan struct{} { return p.exited }
