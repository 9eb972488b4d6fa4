package shimclient

import (
	"context"
	"fmt"
	"strings"

	eventtypes "github.com/containerd/containerd/api/events"
	eventsapi "github.com/containerd/containerd/api/services/ttrpc/events/v1"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"
)

// The task event topics, as containerd names them and shims send them.
const (
	TopicCreate       = "/tasks/create"
	TopicStart        = "/tasks/start"
	TopicExit         = "/tasks/exit"
	TopicDelete       = "/tasks/delete"
	TopicExecAdded    = "/tasks/exec-added"
	TopicExecStarted  = "/tasks/exec-started"
	TopicOOM          = "/tasks/oom"
	TopicPaused       = "/tasks/paused"
	TopicResumed      = "/tasks/resumed"
	TopicCheckpointed = "/tasks/checkpointed"
)

// topicTypes makes the event message of each task topic.
var topicTypes = map[string]func() proto.Message{
	TopicCreate:       func() proto.Message { return &eventtypes.TaskCreate{} },
	TopicStart:        func() proto.Message { return &eventtypes.TaskStart{} },
	TopicExit:         func() proto.Message { return &eventtypes.TaskExit{} },
	TopicDelete:       func() proto.Message { return &eventtypes.TaskDelete{} },
	TopicExecAdded:    func() proto.Message { return &eventtypes.TaskExecAdded{} },
	TopicExecStarted:  func() proto.Message { return &eventtypes.TaskExecStarted{} },
	TopicOOM:          func() proto.Message { return &eventtypes.TaskOOM{} },
	TopicPaused:       func() proto.Message { return &eventtypes.TaskPaused{} },
	TopicResumed:      func() proto.Message { return &eventtypes.TaskResumed{} },
	TopicCheckpointed: func() proto.Message { return &eventtypes.TaskCheckpointed{} },
}

// Events receives the events shims forward: it is containerd's
// containerd.services.events.ttrpc.v1.Events service (Forward), which the
// manager serves on the ttrpc socket it gives shims as Config.Address.
type Events struct {
	handle func(ctx context.Context, namespace, topic string, event proto.Message)
}

// NewEvents returns the service that calls handle with each event a shim
// forwards, decoded into containerd's type for its topic (/tasks/exit is a
// *events.TaskExit, and so on for create, start, delete, exec-added,
// exec-started, oom, paused, resumed and checkpointed). An event of
// another topic, or whose type is not its topic's, is passed as its raw
// *anypb.Any.
//
// A shim forwards its events one at a time, in order, each once the
// previous one was handled: handle runs in the Forward call, so it sees a
// shim's events in the order the shim sent them, and should not block
// (it holds up that shim's later events).
func NewEvents(handle func(ctx context.Context, namespace, topic string, event proto.Message)) *Events {
	return &Events{handle: handle}
}

// Register registers the service on srv.
func (e *Events) Register(srv *ttrpc.Server) {
	eventsapi.RegisterTTRPCEventsService(srv, e)
}

// Forward implements containerd.services.events.ttrpc.v1.Events/Forward.
// The namespace is the envelope's, or, without one, the request's metadata.
func (e *Events) Forward(ctx context.Context, req *eventsapi.ForwardRequest) (*emptypb.Empty, error) {
	env := req.GetEnvelope()
	if env == nil || env.GetTopic() == "" {
		return nil, errgrpc.ToGRPC(fmt.Errorf("event without envelope or topic: %w", errdefs.ErrInvalidArgument))
	}
	namespace := env.GetNamespace()
	if namespace == "" {
		if md, ok := ttrpc.GetMetadata(ctx); ok {
			if v, ok := md.Get(NamespaceKey); ok && len(v) > 0 {
				namespace = v[0]
			}
		}
	}
	e.handle(ctx, namespace, env.GetTopic(), decode(env.GetTopic(), env.GetEvent()))
	return &emptypb.Empty{}, nil
}

// decode is the event any holds, as its topic's type, or any itself.
func decode(topic string, any *anypb.Any) proto.Message {
	if any == nil {
		return &anypb.Any{}
	}
	mk, ok := topicTypes[topic]
	if !ok {
		return any
	}
	msg := mk()
	// The type URL is the message's full name, with or without a prefix
	// ("containerd.events.TaskExit", "type.googleapis.com/…").
	name := any.GetTypeUrl()
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	if name != string(msg.ProtoReflect().Descriptor().FullName()) {
		return any
	}
	if err := proto.Unmarshal(any.GetValue(), msg); err != nil {
		return any
	}
	return msg
}
