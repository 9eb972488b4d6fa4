//go:build linux

package shim

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/berth-project/berth/hack/testimage"
	"github.com/berth-project/berth/integration/internal/ctrd"
)

// TestBadInput sends one shim the task calls the issue names as bad input,
// with containerd's ttrpc client, and reads each error as containerd does
// (errgrpc.ToNative): each has its errdefs kind and a message naming the
// problem, and the shim keeps serving the container it already runs, and
// leaves nothing of the refused ones behind.
func TestBadInput(t *testing.T) {
	d := newDirect(t)
	ctx, cancel := context.WithTimeout(context.Background(), ctrd.CmdTimeout)
	defer cancel()
	ctx = ttrpc.WithMetadata(ctx, ttrpc.MD{"containerd-namespace-ttrpc": []string{d.ns}})

	const id = "good"
	bundle := d.bundle(id, "sleep", "1000")
	s := d.startShim(containerd17, id, bundle, d.options(""), "")
	task := taskapi.NewTTRPCTaskClient(s.client)
	created := map[string]bool{}
	t.Cleanup(func() {
		for cid := range created {
			task.Kill(context.WithoutCancel(ctx), &taskapi.KillRequest{ID: cid, Signal: 9, All: true})
			task.Wait(context.WithoutCancel(ctx), &taskapi.WaitRequest{ID: cid})
			task.Delete(context.WithoutCancel(ctx), &taskapi.DeleteRequest{ID: cid})
		}
	})
	if _, err := task.Create(ctx, &taskapi.CreateTaskRequest{ID: id, Bundle: bundle, Options: d.options("")}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	created[id] = true
	if _, err := task.Start(ctx, &taskapi.StartRequest{ID: id}); err != nil {
		t.Fatalf("Start: %v", err)
	}

	// want checks that err, read as containerd reads it, is of kind and
	// says each of words.
	want := func(what string, err error, kind func(error) bool, kindName string, words ...string) {
		t.Helper()
		native := errgrpc.ToNative(err)
		if err == nil || !kind(native) {
			t.Errorf("%s: error %v, want %s", what, err, kindName)
			return
		}
		for _, w := range words {
			if !strings.Contains(native.Error(), w) {
				t.Errorf("%s: error %q does not say %q", what, native, w)
			}
		}
	}

	// A bundle without config.json.
	empty := filepath.Join(d.dir, "empty")
	if err := os.MkdirAll(filepath.Join(empty, "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := task.Create(ctx, &taskapi.CreateTaskRequest{ID: "nobundle", Bundle: empty, Options: d.options("")})
	if err == nil {
		created["nobundle"] = true
		t.Error("Create on a bundle without config.json succeeded")
	} else if !strings.Contains(err.Error(), "config.json") {
		t.Errorf("Create on a bundle without config.json: %v, want the error to name config.json", err)
	}

	// Options naming a runtime binary that does not exist, and options of
	// a type the shim does not know.
	const missing = "/nonexistent/berth-no-such-runtime"
	v, err := proto.Marshal(&options.Options{BinaryName: missing, Root: d.root})
	if err != nil {
		t.Fatal(err)
	}
	other := d.bundle("other", "true")
	_, err = task.Create(ctx, &taskapi.CreateTaskRequest{ID: "other", Bundle: other, Options: &anypb.Any{TypeUrl: "containerd.runc.v1.Options", Value: v}})
	want("Create with a missing runtime binary", err, errdefs.IsInvalidArgument, "invalid argument", missing)
	_, err = task.Create(ctx, &taskapi.CreateTaskRequest{ID: "other", Bundle: other, Options: &anypb.Any{TypeUrl: "example.com/Unknown", Value: []byte{1}}})
	want("Create with options of an unknown type", err, errdefs.IsInvalidArgument, "invalid argument", "example.com/Unknown")
	_, err = task.Create(ctx, &taskapi.CreateTaskRequest{ID: "other", Bundle: other, Options: &anypb.Any{TypeUrl: "containerd.runc.v1.Options", Value: []byte{0xff}}})
	want("Create with options that do not decode", err, errdefs.IsInvalidArgument, "invalid argument")
	_, err = task.Create(ctx, &taskapi.CreateTaskRequest{ID: id, Bundle: bundle, Options: d.options("")})
	want("Create of a container that exists", err, errdefs.IsAlreadyExists, "already exists", id)

	// An exec id used twice.
	spec := execSpec(t, "sleep", "1000")
	if _, err := task.Exec(ctx, &taskapi.ExecProcessRequest{ID: id, ExecID: "x", Spec: spec}); err != nil {
		t.Fatalf("Exec: %v", err)
	}
	_, err = task.Exec(ctx, &taskapi.ExecProcessRequest{ID: id, ExecID: "x", Spec: spec})
	want("Exec with an exec id in use", err, errdefs.IsAlreadyExists, "already exists", "x")
	_, err = task.Exec(ctx, &taskapi.ExecProcessRequest{ID: id, ExecID: "../y", Spec: spec})
	want("Exec with an exec id that is a path", err, errdefs.IsInvalidArgument, "invalid argument")

	// Delete while running; Kill and Delete of what does not exist.
	_, err = task.Delete(ctx, &taskapi.DeleteRequest{ID: id})
	want("Delete of a running container", err, errdefs.IsFailedPrecondition, "failed precondition")
	_, err = task.Kill(ctx, &taskapi.KillRequest{ID: "nope", Signal: 9})
	want("Kill of an unknown container", err, errdefs.IsNotFound, "not found", "nope")
	_, err = task.Delete(ctx, &taskapi.DeleteRequest{ID: id, ExecID: "nope"})
	want("Delete of an unknown exec", err, errdefs.IsNotFound, "not found", "nope")

	// Kill on an exited process.
	if _, err := task.Start(ctx, &taskapi.StartRequest{ID: id, ExecID: "x"}); err != nil {
		t.Fatalf("Start exec: %v", err)
	}
	if _, err := task.Kill(ctx, &taskapi.KillRequest{ID: id, ExecID: "x", Signal: 9}); err != nil {
		t.Fatalf("Kill exec: %v", err)
	}
	if wr, err := task.Wait(ctx, &taskapi.WaitRequest{ID: id, ExecID: "x"}); err != nil || wr.ExitStatus != 137 {
		t.Fatalf("Wait exec: %d, %v", wr.GetExitStatus(), err)
	}
	_, err = task.Kill(ctx, &taskapi.KillRequest{ID: id, ExecID: "x", Signal: 9})
	want("Kill of an exited exec", err, errdefs.IsNotFound, "not found")
	if _, err := task.Delete(ctx, &taskapi.DeleteRequest{ID: id, ExecID: "x"}); err != nil {
		t.Errorf("Delete exec: %v", err)
	}

	// Checkpoint is not supported.
	_, err = task.Checkpoint(ctx, &taskapi.CheckpointTaskRequest{ID: id, Path: d.dir})
	want("Checkpoint", err, errdefs.IsNotImplemented, "not implemented")

	// The good container is still served, and the refused ones left no
	// trace in the runtime's state.
	st, err := task.State(ctx, &taskapi.StateRequest{ID: id})
	if err != nil || st.Status.String() != "RUNNING" {
		t.Errorf("State of the good container after the bad input: %v, %v; want RUNNING", st.GetStatus(), err)
	}
	left, _ := os.ReadDir(filepath.Join(d.root, d.ns))
	for _, e := range left {
		if e.Name() != id {
			t.Errorf("the runtime keeps state for %s, which the shim refused", e.Name())
		}
	}
}

// execSpec is an exec's process spec as containerd sends it: the test
// image's process (environment, user, cwd) running args.
func execSpec(t *testing.T, args ...string) *anypb.Any {
	t.Helper()
	p := *testimage.DefaultSpec(args...).Process
	v, err := json.Marshal(&p)
	if err != nil {
		t.Fatal(err)
	}
	return &anypb.Any{TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Process", Value: v}
}
