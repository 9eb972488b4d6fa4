package wire

import (
	v1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	eventstypes "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/api/types/runc/options"
)

// TypeURL is the type URL of a message Encode writes that goes out in an
// Any (events, metrics, process details): the message's full protobuf name
// without a prefix, which is what containerd 1.x resolves. It is "" for
// other values.
func TypeURL(m any) string {
	switch m.(type) {
	case *v1.Metrics:
		return "io.containerd.cgroups.v1.Metrics"
	case *v2.Metrics:
		return "io.containerd.cgroups.v2.Metrics"
	case *options.ProcessDetails:
		return "containerd.runc.v1.ProcessDetails"
	case *eventstypes.TaskCreate:
		return "containerd.events.TaskCreate"
	case *eventstypes.TaskStart:
		return "containerd.events.TaskStart"
	case *eventstypes.TaskDelete:
		return "containerd.events.TaskDelete"
	case *eventstypes.TaskExit:
		return "containerd.events.TaskExit"
	case *eventstypes.TaskOOM:
		return "containerd.events.TaskOOM"
	case *eventstypes.TaskExecAdded:
		return "containerd.events.TaskExecAdded"
	case *eventstypes.TaskExecStarted:
		return "containerd.events.TaskExecStarted"
	case *eventstypes.TaskPaused:
		return "containerd.events.TaskPaused"
	case *eventstypes.TaskResumed:
		return "containerd.events.TaskResumed"
	case *eventstypes.TaskCheckpointed:
		return "containerd.events.TaskCheckpointed"
	}
	return ""
}

// encodeEvent encodes the task events.
func encodeEvent(m any) ([]byte, bool) {
	var e encoder
	switch m := m.(type) {
	case *eventstypes.TaskCreate:
		e.str(1, m.ContainerID)
		e.str(2, m.Bundle)
		for _, r := range m.Rootfs {
			e.message(3, func(e *encoder) {
				if r != nil {
					encodeMount(e, r)
				}
			})
		}
		if io := m.IO; io != nil {
			e.message(4, func(e *encoder) {
				e.str(1, io.Stdin)
				e.str(2, io.Stdout)
				e.str(3, io.Stderr)
				e.boolean(4, io.Terminal)
			})
		}
		e.str(5, m.Checkpoint)
		e.uint(6, uint64(m.Pid))
	case *eventstypes.TaskStart:
		e.str(1, m.ContainerID)
		e.uint(2, uint64(m.Pid))
	case *eventstypes.TaskDelete:
		e.str(1, m.ContainerID)
		e.uint(2, uint64(m.Pid))
		e.uint(3, uint64(m.ExitStatus))
		e.timestamp(4, m.ExitedAt)
		e.str(5, m.ID)
	case *eventstypes.TaskExit:
		e.str(1, m.ContainerID)
		e.str(2, m.ID)
		e.uint(3, uint64(m.Pid))
		e.uint(4, uint64(m.ExitStatus))
		e.timestamp(5, m.ExitedAt)
	case *eventstypes.TaskOOM:
		e.str(1, m.ContainerID)
	case *eventstypes.TaskExecAdded:
		e.str(1, m.ContainerID)
		e.str(2, m.ExecID)
	case *eventstypes.TaskExecStarted:
		e.str(1, m.ContainerID)
		e.str(2, m.ExecID)
		e.uint(3, uint64(m.Pid))
	case *eventstypes.TaskPaused:
		e.str(1, m.ContainerID)
	case *eventstypes.TaskResumed:
		e.str(1, m.ContainerID)
	case *eventstypes.TaskCheckpointed:
		e.str(1, m.ContainerID)
		e.str(2, m.Checkpoint)
	default:
		return nil, false
	}
	return e.b, true
}

// ForwardRequest encodes containerd.services.events.ttrpc.v1.ForwardRequest
// carrying env.
func ForwardRequest(env *types.Envelope) []byte {
	var e encoder
	e.message(1, func(e *encoder) { encodeEnvelope(e, env) })
	return e.b
}

func encodeEnvelope(e *encoder, env *types.Envelope) {
	e.timestamp(1, env.Timestamp)
	e.str(2, env.Namespace)
	e.str(3, env.Topic)
	e.any(4, env.Event)
}
