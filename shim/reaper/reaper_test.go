package reaper

import (
	"context"
	"os/exec"
	"testing"
	"time"
)

func TestRunAndWatch(t *testing.T) {
	r, err := New()
	if err != nil {
		t.Fatal(err)
	}
	e, err := r.Run(context.Background(), exec.Command("sh", "-c", "exit 7"))
	if err != nil || e.Status != 7 {
		t.Fatalf("Run: %+v, %v; want status 7", e, err)
	}
	e, err = r.Run(context.Background(), exec.Command("sh", "-c", "kill -9 $$"))
	if err != nil || e.Status != 137 {
		t.Fatalf("Run of a killed command: %+v, %v; want 137", e, err)
	}

	// A process that exits before anyone watches it is remembered.
	early := exec.Command("true")
	if err := early.Start(); err != nil {
		t.Fatal(err)
	}
	pid := early.Process.Pid
	time.Sleep(100 * time.Millisecond)
	select {
	case e := <-r.Watch(pid):
		if e.Pid != pid || e.Status != 0 {
			t.Fatalf("early exit %+v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("exit of an early process not delivered")
	}

	// A watched process's exit is delivered when it happens.
	late := exec.Command("sh", "-c", "sleep 0.2; exit 3")
	if err := late.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-r.Watch(late.Process.Pid):
		if e.Status != 3 {
			t.Fatalf("late exit %+v, want 3", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("exit of a watched process not delivered")
	}
}
