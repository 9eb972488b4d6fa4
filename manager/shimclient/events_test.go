package shimclient

import (
	"context"
	"net"
	"path/filepath"
	"testing"

	eventtypes "github.com/containerd/containerd/api/events"
	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	eventsapi "github.com/containerd/containerd/api/services/ttrpc/events/v1"
	apitypes "github.com/containerd/containerd/api/types"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// TestEventsDecode: each task topic's event arrives as its containerd type;
// an unknown topic, or a type that is not its topic's, as the raw Any. The
// namespace comes from the envelope, or else the request's metadata.
func TestEventsDecode(t *testing.T) {
	type got struct {
		namespace, topic string
		msg              proto.Message
	}
	var gots []got
	e := NewEvents(func(_ context.Context, namespace, topic string, msg proto.Message) {
		gots = append(gots, got{namespace, topic, msg})
	})
	anyOf := func(typeURL string, m proto.Message) *anypb.Any {
		v, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return &anypb.Any{TypeUrl: typeURL, Value: v}
	}
	exit := &eventtypes.TaskExit{ContainerID: "c", ID: "c", Pid: 42, ExitStatus: 3}
	forward := func(ctx context.Context, ns, topic string, ev *anypb.Any) {
		t.Helper()
		if _, err := e.Forward(ctx, &eventsapi.ForwardRequest{Envelope: &apitypes.Envelope{Namespace: ns, Topic: topic, Event: ev}}); err != nil {
			t.Fatalf("Forward %s: %v", topic, err)
		}
	}
	ctx := context.Background()
	forward(ctx, "ns", TopicExit, anyOf("containerd.events.TaskExit", exit))
	forward(ctx, "ns", TopicExit, anyOf("type.googleapis.com/containerd.events.TaskExit", exit))
	forward(ctx, "ns", TopicStart, anyOf("containerd.events.TaskStart", &eventtypes.TaskStart{ContainerID: "c", Pid: 42}))
	forward(ctx, "ns", TopicCreate, anyOf("containerd.events.TaskExit", exit)) // wrong type for the topic
	forward(ctx, "ns", "/containers/create", anyOf("containerd.events.ContainerCreate", &eventtypes.ContainerCreate{ID: "c"}))
	forward(ttrpc.WithMetadata(ctx, ttrpc.MD{NamespaceKey: []string{"from-md"}}), "", TopicOOM, anyOf("containerd.events.TaskOOM", &eventtypes.TaskOOM{ContainerID: "c"}))
	if _, err := e.Forward(ctx, &eventsapi.ForwardRequest{}); err == nil {
		t.Error("Forward without an envelope succeeded")
	}

	if len(gots) != 6 {
		t.Fatalf("handled %d events, want 6: %v", len(gots), gots)
	}
	for _, i := range []int{0, 1} {
		if x, ok := gots[i].msg.(*eventtypes.TaskExit); !ok || !proto.Equal(x, exit) || gots[i].namespace != "ns" || gots[i].topic != TopicExit {
			t.Errorf("event %d: %+v, want the TaskExit in ns", i, gots[i])
		}
	}
	if s, ok := gots[2].msg.(*eventtypes.TaskStart); !ok || s.Pid != 42 {
		t.Errorf("start event: %#v", gots[2].msg)
	}
	for _, i := range []int{3, 4} {
		if _, ok := gots[i].msg.(*anypb.Any); !ok {
			t.Errorf("event %d (%s): %T, want the raw Any", i, gots[i].topic, gots[i].msg)
		}
	}
	if _, ok := gots[5].msg.(*eventtypes.TaskOOM); !ok || gots[5].namespace != "from-md" {
		t.Errorf("oom event: %+v, want a TaskOOM in namespace from-md", gots[5])
	}
}

// TestNamespaceMetadata: every call through a Shim carries its namespace
// under containerd's key, and only that one, whatever the caller's context
// says.
func TestNamespaceMetadata(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "shim.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ttrpc.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan []string, 1)
	srv.RegisterService("containerd.task.v2.Task", &ttrpc.ServiceDesc{Methods: map[string]ttrpc.Method{
		"Connect": func(ctx context.Context, unmarshal func(any) error) (any, error) {
			var req taskapi.ConnectRequest
			if err := unmarshal(&req); err != nil {
				return nil, err
			}
			md, _ := ttrpc.GetMetadata(ctx)
			seen <- md[NamespaceKey]
			return &taskapi.ConnectResponse{ShimPid: 1}, nil
		},
	}})
	go srv.Serve(context.Background(), l)
	defer srv.Close()

	s, err := connect(context.Background(), "berth", "unix://"+sock)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, ctx := range []context.Context{
		context.Background(),
		ttrpc.WithMetadata(context.Background(), ttrpc.MD{NamespaceKey: []string{"other"}, "x": []string{"y"}}),
	} {
		if _, err := s.Task.Connect(ctx, &taskapi.ConnectRequest{ID: "c"}); err != nil {
			t.Fatal(err)
		}
		if got := <-seen; len(got) != 1 || got[0] != "berth" {
			t.Errorf("namespace metadata %q, want [berth]", got)
		}
	}
}
