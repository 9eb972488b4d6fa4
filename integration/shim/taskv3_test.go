//go:build linux

package shim

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	taskv3 "github.com/containerd/containerd/api/runtime/task/v3"
	apitask "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/ttrpc"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/integration/internal/ctrd"
)

// TestTaskV3 drives containers through the shim with containerd 2.x's
// client of containerd.task.v3.Task, the shim started as containerd 2.3
// starts it (BootstrapParams on stdin, a reply that says version 3): a
// container that exits by itself is created, started, waited for and
// deleted; one that would run forever is killed. The task events reach
// containerd's events service in the order it requires.
func TestTaskV3(t *testing.T) {
	d := newDirect(t)
	ctx, cancel := context.WithTimeout(context.Background(), ctrd.CmdTimeout)
	defer cancel()
	ctx = ttrpc.WithMetadata(ctx, ttrpc.MD{"containerd-namespace-ttrpc": []string{d.ns}})

	const id, sleeper = "v3", "v3-killed"
	bundle := d.bundle(id, "sh", "-c", "echo hello from v3; exit 7")
	s := d.startShim(containerd23, id, bundle, d.options(""), "")
	if s.version != 3 {
		t.Fatalf("reply announces task API v%d, want v3", s.version)
	}
	task := taskv3.NewTTRPCTaskClient(s.client)
	created := map[string]bool{}
	// Whatever the test leaves, the runtime deletes (the container's
	// processes with it) before the shim is stopped.
	t.Cleanup(func() {
		for cid := range created {
			if _, err := task.Delete(context.WithoutCancel(ctx), &taskv3.DeleteRequest{ID: cid}); err == nil {
				continue
			}
			task.Kill(context.WithoutCancel(ctx), &taskv3.KillRequest{ID: cid, Signal: uint32(unix.SIGKILL), All: true})
			task.Wait(context.WithoutCancel(ctx), &taskv3.WaitRequest{ID: cid})
			if _, err := task.Delete(context.WithoutCancel(ctx), &taskv3.DeleteRequest{ID: cid}); err != nil {
				t.Errorf("delete %s: %v", cid, err)
			}
		}
	})

	stdout := filepath.Join(d.dir, id+".out")
	cr, err := task.Create(ctx, &taskv3.CreateTaskRequest{
		ID: id, Bundle: bundle, Stdout: "file://" + stdout, Options: d.options(""),
	})
	if err != nil {
		t.Fatalf("v3 Create: %v", err)
	}
	created[id] = true
	if cr.Pid == 0 {
		t.Error("v3 Create: no pid")
	}
	checkState := func(cid string, want apitask.Status) *taskv3.StateResponse {
		t.Helper()
		st, err := task.State(ctx, &taskv3.StateRequest{ID: cid})
		if err != nil {
			t.Fatalf("v3 State %s: %v", cid, err)
		}
		if st.Status != want || st.ID != cid {
			t.Errorf("v3 State %s: %s (id %q), want %s", cid, st.Status, st.ID, want)
		}
		return st
	}
	checkState(id, apitask.Status_CREATED)
	sr, err := task.Start(ctx, &taskv3.StartRequest{ID: id})
	if err != nil {
		t.Fatalf("v3 Start: %v", err)
	}
	if sr.Pid != cr.Pid {
		t.Errorf("v3 Start: pid %d, want Create's %d", sr.Pid, cr.Pid)
	}
	wr, err := task.Wait(ctx, &taskv3.WaitRequest{ID: id})
	if err != nil {
		t.Fatalf("v3 Wait: %v", err)
	}
	if wr.ExitStatus != 7 || wr.ExitedAt == nil {
		t.Errorf("v3 Wait: exit status %d at %v, want 7 and a time", wr.ExitStatus, wr.ExitedAt)
	}
	if st := checkState(id, apitask.Status_STOPPED); st.ExitStatus != 7 || st.Pid != cr.Pid {
		t.Errorf("v3 State after the exit: status %d pid %d, want 7 and %d", st.ExitStatus, st.Pid, cr.Pid)
	}
	dr, err := task.Delete(ctx, &taskv3.DeleteRequest{ID: id})
	if err != nil {
		t.Fatalf("v3 Delete: %v", err)
	}
	delete(created, id)
	if dr.ExitStatus != 7 || dr.Pid != cr.Pid {
		t.Errorf("v3 Delete: exit status %d pid %d, want 7 and %d", dr.ExitStatus, dr.Pid, cr.Pid)
	}
	if _, err := task.State(ctx, &taskv3.StateRequest{ID: id}); !errdefs.IsNotFound(errgrpc.ToNative(err)) {
		t.Errorf("v3 State of the deleted task: %v, want not found", err)
	}
	if out, err := os.ReadFile(stdout); err != nil || string(out) != "hello from v3\n" {
		t.Errorf("the container's stdout: %q (%v), want %q", out, err, "hello from v3\n")
	}

	// A second container in the same shim, killed.
	sleeperBundle := d.bundle(sleeper, "sleep", "1000")
	if _, err := task.Create(ctx, &taskv3.CreateTaskRequest{ID: sleeper, Bundle: sleeperBundle, Options: d.options("")}); err != nil {
		t.Fatalf("v3 Create %s: %v", sleeper, err)
	}
	created[sleeper] = true
	if _, err := task.Start(ctx, &taskv3.StartRequest{ID: sleeper}); err != nil {
		t.Fatalf("v3 Start %s: %v", sleeper, err)
	}
	checkState(sleeper, apitask.Status_RUNNING)
	if _, err := task.Kill(ctx, &taskv3.KillRequest{ID: sleeper, Signal: uint32(unix.SIGKILL)}); err != nil {
		t.Fatalf("v3 Kill: %v", err)
	}
	if wr, err := task.Wait(ctx, &taskv3.WaitRequest{ID: sleeper}); err != nil || wr.ExitStatus != 137 {
		t.Errorf("v3 Wait after SIGKILL: exit status %d (%v), want 137", wr.GetExitStatus(), err)
	}
	if _, err := task.Delete(ctx, &taskv3.DeleteRequest{ID: sleeper}); err != nil {
		t.Fatalf("v3 Delete %s: %v", sleeper, err)
	}
	delete(created, sleeper)

	want := []string{"/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"}
	for _, cid := range []string{id, sleeper} {
		evs := d.events.of(t, cid, "/tasks/delete")
		var topics []string
		for _, ev := range evs {
			topics = append(topics, ev.Topic)
			if ev.Namespace != d.ns {
				t.Errorf("%s event of %s in namespace %q, want %q", ev.Topic, cid, ev.Namespace, d.ns)
			}
			if ev.Topic == "/tasks/exit" && ev.ExitStatus != map[string]uint32{id: 7, sleeper: 137}[cid] {
				t.Errorf("/tasks/exit of %s: exit status %d", cid, ev.ExitStatus)
			}
		}
		if !slices.Equal(topics, want) {
			t.Errorf("events of %s: %q, want %q", cid, topics, want)
		}
	}
}
