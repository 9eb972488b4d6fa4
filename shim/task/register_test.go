package task

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"

	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	taskv3 "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/berth-project/berth/shim/rpc"
)

// TestV3IsV2 checks what Register relies on: containerd.task.v3 is
// containerd.task.v2 under another package name, message for message and
// field for field, so the v2 Go types read and write v3 messages.
func TestV3IsV2(t *testing.T) {
	v2 := taskapi.File_runtime_task_v2_shim_proto
	v3 := taskv3.File_runtime_task_v3_shim_proto
	rename := func(name protoreflect.FullName) string {
		return strings.Replace(string(name), string(v3.Package()), string(v2.Package()), 1)
	}
	if v2.Messages().Len() != v3.Messages().Len() {
		t.Fatalf("v2 has %d messages, v3 %d", v2.Messages().Len(), v3.Messages().Len())
	}
	for i := range v3.Messages().Len() {
		m3 := v3.Messages().Get(i)
		m2 := v2.Messages().ByName(m3.Name())
		if m2 == nil {
			t.Errorf("v3 message %s is not in v2", m3.Name())
			continue
		}
		if m2.Fields().Len() != m3.Fields().Len() {
			t.Errorf("%s: v2 has %d fields, v3 %d", m3.Name(), m2.Fields().Len(), m3.Fields().Len())
		}
		for j := range m3.Fields().Len() {
			f3 := m3.Fields().Get(j)
			f2 := m2.Fields().ByNumber(f3.Number())
			if f2 == nil {
				t.Errorf("%s: v3 field %d (%s) is not in v2", m3.Name(), f3.Number(), f3.Name())
				continue
			}
			if describe(f2, nil) != describe(f3, rename) {
				t.Errorf("%s field %d: v2 %s, v3 %s", m3.Name(), f3.Number(), describe(f2, nil), describe(f3, rename))
			}
		}
	}
	s2, s3 := v2.Services().Get(0), v3.Services().Get(0)
	if s2.Methods().Len() != s3.Methods().Len() {
		t.Fatalf("v2 service has %d methods, v3 %d", s2.Methods().Len(), s3.Methods().Len())
	}
	for i := range s3.Methods().Len() {
		m3 := s3.Methods().Get(i)
		m2 := s2.Methods().ByName(m3.Name())
		if m2 == nil {
			t.Errorf("v3 method %s is not in v2", m3.Name())
			continue
		}
		if string(m2.Input().FullName()) != rename(m3.Input().FullName()) || string(m2.Output().FullName()) != rename(m3.Output().FullName()) {
			t.Errorf("method %s: v2 %s -> %s, v3 %s -> %s", m3.Name(), m2.Input().FullName(), m2.Output().FullName(), m3.Input().FullName(), m3.Output().FullName())
		}
	}
	if s2.FullName() != ServiceV2 || s3.FullName() != ServiceV3 {
		t.Errorf("services %s and %s, want %s and %s", s2.FullName(), s3.FullName(), ServiceV2, ServiceV3)
	}
}

// describe is what of a field must agree on the wire and in JSON; rename
// maps a v3 message or enum name to its v2 name.
func describe(f protoreflect.FieldDescriptor, rename func(protoreflect.FullName) string) string {
	if rename == nil {
		rename = func(n protoreflect.FullName) string { return string(n) }
	}
	typ := f.Kind().String()
	switch {
	case f.Message() != nil:
		typ = rename(f.Message().FullName())
	case f.Enum() != nil:
		typ = rename(f.Enum().FullName())
	}
	return fmt.Sprintf("%s %s %s json=%s", f.Cardinality(), typ, f.Name(), f.JSONName())
}

// stub answers a few task calls and records what it was sent.
type stub struct {
	taskapi.TTRPCTaskService // the methods not overridden panic
	created                  *taskapi.CreateTaskRequest
}

func (s *stub) Create(ctx context.Context, req *taskapi.CreateTaskRequest) (*taskapi.CreateTaskResponse, error) {
	s.created = req
	return &taskapi.CreateTaskResponse{Pid: 42}, nil
}

func (s *stub) State(ctx context.Context, req *taskapi.StateRequest) (*taskapi.StateResponse, error) {
	if req.ID != "c1" {
		return nil, fmt.Errorf("container %s: %w", req.ID, errdefs.ErrNotFound)
	}
	return &taskapi.StateResponse{ID: req.ID, ExecID: req.ExecID, Pid: 42, Bundle: "/bundle", Stdout: "/fifo/out"}, nil
}

func (s *stub) Kill(ctx context.Context, req *taskapi.KillRequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

// TestRegisterServesV2AndV3 drives one service through a v3 client and a
// v2 client of the ttrpc library (containerd's) over a real connection.
func TestRegisterServesV2AndV3(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := rpc.NewServer()
	svc := &stub{}
	Register(srv, svc)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Serve(ctx, l)
	defer srv.Close()

	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	client := ttrpc.NewClient(conn)
	defer client.Close()
	v3 := taskv3.NewTTRPCTaskClient(client)
	v2 := taskapi.NewTTRPCTaskClient(client)

	opts, err := anypb.New(&types.Mount{Type: "bind"}) // any message will do
	if err != nil {
		t.Fatal(err)
	}
	resp, err := v3.Create(ctx, &taskv3.CreateTaskRequest{
		ID: "c1", Bundle: "/bundle", Stdout: "/fifo/out", Terminal: true,
		Rootfs:  []*types.Mount{{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=/l"}}},
		Options: opts,
	})
	if err != nil {
		t.Fatalf("v3 Create: %v", err)
	}
	if resp.Pid != 42 {
		t.Errorf("v3 Create: pid %d, want 42", resp.Pid)
	}
	want := &taskapi.CreateTaskRequest{
		ID: "c1", Bundle: "/bundle", Stdout: "/fifo/out", Terminal: true,
		Rootfs:  []*types.Mount{{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=/l"}}},
		Options: opts,
	}
	if !proto.Equal(svc.created, want) {
		t.Errorf("v3 Create reached the service as %v, want %v", svc.created, want)
	}

	for name, state := range map[string]func(*taskapi.StateRequest) (string, uint32, string, error){
		"v3": func(r *taskapi.StateRequest) (string, uint32, string, error) {
			s, err := v3.State(ctx, &taskv3.StateRequest{ID: r.ID, ExecID: r.ExecID})
			return s.GetID(), s.GetPid(), s.GetStdout(), err
		},
		"v2": func(r *taskapi.StateRequest) (string, uint32, string, error) {
			s, err := v2.State(ctx, r)
			return s.GetID(), s.GetPid(), s.GetStdout(), err
		},
	} {
		id, pid, stdout, err := state(&taskapi.StateRequest{ID: "c1"})
		if err != nil || id != "c1" || pid != 42 || stdout != "/fifo/out" {
			t.Errorf("%s State: id %q pid %d stdout %q (%v), want c1 42 /fifo/out", name, id, pid, stdout, err)
		}
		if _, _, _, err := state(&taskapi.StateRequest{ID: "nope"}); !errdefs.IsNotFound(errgrpc.ToNative(err)) {
			t.Errorf("%s State of an unknown task: error %v, want not found", name, err)
		}
	}
	if _, err := v3.Kill(ctx, &taskv3.KillRequest{ID: "c1", Signal: 9}); err != nil {
		t.Errorf("v3 Kill: %v", err)
	}
}
