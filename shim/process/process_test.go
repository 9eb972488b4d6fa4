package process

import (
	"errors"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"github.com/berth-project/berth/shim/stdio"
)

func TestTransitions(t *testing.T) {
	p := New("", false, stdio.Config{})
	if err := p.Transition("pause", Paused, nil, Running); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("pause while created: %v, want FailedPrecondition", err)
	}
	if err := p.Transition("start", Running, nil, Created); err != nil {
		t.Fatal(err)
	}
	if err := p.Transition("start", Running, nil, Created); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("second start: %v, want FailedPrecondition", err)
	}
	if err := p.Transition("delete", Deleted, nil, Created, Stopped); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("delete while running: %v, want FailedPrecondition", err)
	}
	at := time.Now()
	if !p.Exit(137, at) || p.Exit(1, at) {
		t.Fatal("Exit must report the first exit only")
	}
	select {
	case <-p.Exited():
	default:
		t.Fatal("Exited not closed after Exit")
	}
	if err := p.Check("kill", Created, Running, Paused); !errdefs.IsNotFound(err) {
		t.Fatalf("kill after exit: %v, want NotFound", err)
	}
	if s := p.Snapshot(); s.State != Stopped || s.Status != 137 {
		t.Fatalf("snapshot %+v, want stopped with 137", s)
	}
	if err := p.Transition("delete", Deleted, nil, Created, Stopped); err != nil {
		t.Fatal(err)
	}
	if err := p.Check("start", Created); !errdefs.IsNotFound(err) {
		t.Fatalf("after delete: %v, want NotFound", err)
	}
}

func TestExitDuringTransitionIsKept(t *testing.T) {
	p := New("e1", false, stdio.Config{})
	err := p.Transition("start", Running, func() error {
		go p.Exit(3, time.Now())
		time.Sleep(10 * time.Millisecond)
		return nil
	}, Created)
	if err != nil {
		t.Fatal(err)
	}
	<-p.Exited()
	if s := p.Snapshot(); s.State != Stopped {
		t.Fatalf("state %v after an exit during start, want stopped", s.State)
	}
}

func TestOverlappingTransitionRefused(t *testing.T) {
	p := New("", false, stdio.Config{})
	release := make(chan struct{})
	started := make(chan struct{})
	go func() {
		_ = p.Transition("start", Running, func() error { close(started); <-release; return nil }, Created)
	}()
	<-started
	err := p.Transition("delete", Deleted, nil, Created)
	close(release)
	if !errdefs.IsUnavailable(err) {
		t.Fatalf("delete during start: %v, want Unavailable", err)
	}
}

func TestFailedOperationKeepsState(t *testing.T) {
	p := New("", false, stdio.Config{})
	boom := errors.New("boom")
	if err := p.Transition("start", Running, func() error { return boom }, Created); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if s := p.Snapshot(); s.State != Created {
		t.Fatalf("state %v after a failed start, want created", s.State)
	}
}
