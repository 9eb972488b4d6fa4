package wire

import (
	"fmt"

	v1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	apitask "github.com/containerd/containerd/api/types/task"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/emptypb"
)

// Decode reads the encoded message b into m: one of the task API's
// requests (containerd.task.v2 and v3 share them), or the runtime options
// that come with Create (runc's, or runtimeoptions.v1's).
func Decode(b []byte, m any) error {
	var err error
	switch m := m.(type) {
	case *taskapi.CreateTaskRequest:
		err = fields(b, func(f field) error {
			switch f.num {
			case 1:
				f.str(&m.ID)
			case 2:
				f.str(&m.Bundle)
			case 3:
				return f.message(func(b []byte) error {
					mount := &types.Mount{}
					m.Rootfs = append(m.Rootfs, mount)
					return decodeMount(b, mount)
				})
			case 4:
				f.boolean(&m.Terminal)
			case 5:
				f.str(&m.Stdin)
			case 6:
				f.str(&m.Stdout)
			case 7:
				f.str(&m.Stderr)
			case 8:
				f.str(&m.Checkpoint)
			case 9:
				f.str(&m.ParentCheckpoint)
			case 10:
				return f.message(decodeAny(&m.Options))
			}
			return nil
		})
	case *taskapi.ExecProcessRequest:
		err = fields(b, func(f field) error {
			switch f.num {
			case 1:
				f.str(&m.ID)
			case 2:
				f.str(&m.ExecID)
			case 3:
				f.boolean(&m.Terminal)
			case 4:
				f.str(&m.Stdin)
			case 5:
				f.str(&m.Stdout)
			case 6:
				f.str(&m.Stderr)
			case 7:
				return f.message(decodeAny(&m.Spec))
			}
			return nil
		})
	case *taskapi.UpdateTaskRequest:
		err = fields(b, func(f field) error {
			switch f.num {
			case 1:
				f.str(&m.ID)
			case 2:
				return f.message(decodeAny(&m.Resources))
			case 3:
				return f.message(stringMap(&m.Annotations))
			}
			return nil
		})
	case *taskapi.CheckpointTaskRequest:
		err = fields(b, func(f field) error {
			switch f.num {
			case 1:
				f.str(&m.ID)
			case 2:
				f.str(&m.Path)
			case 3:
				return f.message(decodeAny(&m.Options))
			}
			return nil
		})
	case *taskapi.KillRequest:
		err = fields(b, func(f field) error {
			switch f.num {
			case 1:
				f.str(&m.ID)
			case 2:
				f.str(&m.ExecID)
			case 3:
				f.uint32(&m.Signal)
			case 4:
				f.boolean(&m.All)
			}
			return nil
		})
	case *taskapi.ResizePtyRequest:
		err = fields(b, func(f field) error {
			switch f.num {
			case 1:
				f.str(&m.ID)
			case 2:
				f.str(&m.ExecID)
			case 3:
				f.uint32(&m.Width)
			case 4:
				f.uint32(&m.Height)
			}
			return nil
		})
	case *taskapi.CloseIORequest:
		err = fields(b, func(f field) error {
			switch f.num {
			case 1:
				f.str(&m.ID)
			case 2:
				f.str(&m.ExecID)
			case 3:
				f.boolean(&m.Stdin)
			}
			return nil
		})
	case *taskapi.ShutdownRequest:
		err = fields(b, func(f field) error {
			switch f.num {
			case 1:
				f.str(&m.ID)
			case 2:
				f.boolean(&m.Now)
			}
			return nil
		})
	case *taskapi.StartRequest:
		err = idAndExec(b, &m.ID, &m.ExecID)
	case *taskapi.DeleteRequest:
		err = idAndExec(b, &m.ID, &m.ExecID)
	case *taskapi.StateRequest:
		err = idAndExec(b, &m.ID, &m.ExecID)
	case *taskapi.WaitRequest:
		err = idAndExec(b, &m.ID, &m.ExecID)
	case *taskapi.PidsRequest:
		err = idAndExec(b, &m.ID, nil)
	case *taskapi.PauseRequest:
		err = idAndExec(b, &m.ID, nil)
	case *taskapi.ResumeRequest:
		err = idAndExec(b, &m.ID, nil)
	case *taskapi.StatsRequest:
		err = idAndExec(b, &m.ID, nil)
	case *taskapi.ConnectRequest:
		err = idAndExec(b, &m.ID, nil)
	case *options.Options:
		err = fields(b, func(f field) error {
			switch f.num {
			case 1:
				f.boolean(&m.NoPivotRoot)
			case 2:
				f.boolean(&m.NoNewKeyring)
			case 3:
				f.str(&m.ShimCgroup)
			case 4:
				f.uint32(&m.IoUid)
			case 5:
				f.uint32(&m.IoGid)
			case 6:
				f.str(&m.BinaryName)
			case 7:
				f.str(&m.Root)
			case 9:
				f.boolean(&m.SystemdCgroup)
			case 10:
				f.str(&m.CriuImagePath)
			case 11:
				f.str(&m.CriuWorkPath)
			case 12:
				f.str(&m.TaskApiAddress)
			case 13:
				f.uint32(&m.TaskApiVersion)
			}
			return nil
		})
	case *runtimeoptions.Options:
		err = fields(b, func(f field) error {
			switch f.num {
			case 1:
				f.str(&m.TypeUrl)
			case 2:
				f.str(&m.ConfigPath)
			case 3:
				f.bytes(&m.ConfigBody)
			}
			return nil
		})
	default:
		return fmt.Errorf("wire: no decoder for %T", m)
	}
	if err != nil {
		return fmt.Errorf("decode %T: %w", m, err)
	}
	return nil
}

// idAndExec decodes the many requests that are an id (field 1) and, if
// execID is not nil, an exec id (field 2).
func idAndExec(b []byte, id, execID *string) error {
	return fields(b, func(f field) error {
		switch {
		case f.num == 1:
			f.str(id)
		case f.num == 2 && execID != nil:
			f.str(execID)
		}
		return nil
	})
}

func decodeMount(b []byte, m *types.Mount) error {
	return fields(b, func(f field) error {
		switch f.num {
		case 1:
			f.str(&m.Type)
		case 2:
			f.str(&m.Source)
		case 3:
			f.str(&m.Target)
		case 4:
			if f.typ == protowire.BytesType {
				m.Options = append(m.Options, string(f.b))
			}
		}
		return nil
	})
}

func encodeMount(e *encoder, m *types.Mount) {
	e.str(1, m.Type)
	e.str(2, m.Source)
	e.str(3, m.Target)
	for _, o := range m.Options {
		e.tag(4, protowire.BytesType)
		e.b = protowire.AppendString(e.b, o)
	}
}

// Encode writes m: one of the task API's responses, a task event, cgroup
// metrics or runc's ProcessDetails (the last three go out in Anys: see
// TypeURL).
func Encode(m any) ([]byte, error) {
	var e encoder
	switch m := m.(type) {
	case *emptypb.Empty:
	case *taskapi.CreateTaskResponse:
		e.uint(1, uint64(m.Pid))
	case *taskapi.StartResponse:
		e.uint(1, uint64(m.Pid))
	case *taskapi.DeleteResponse:
		e.uint(1, uint64(m.Pid))
		e.uint(2, uint64(m.ExitStatus))
		e.timestamp(3, m.ExitedAt)
	case *taskapi.StateResponse:
		e.str(1, m.ID)
		e.str(2, m.Bundle)
		e.uint(3, uint64(m.Pid))
		e.int(4, int64(m.Status))
		e.str(5, m.Stdin)
		e.str(6, m.Stdout)
		e.str(7, m.Stderr)
		e.boolean(8, m.Terminal)
		e.uint(9, uint64(m.ExitStatus))
		e.timestamp(10, m.ExitedAt)
		e.str(11, m.ExecID)
	case *taskapi.PidsResponse:
		for _, p := range m.Processes {
			e.message(1, func(e *encoder) { encodeProcessInfo(e, p) })
		}
	case *taskapi.WaitResponse:
		e.uint(1, uint64(m.ExitStatus))
		e.timestamp(2, m.ExitedAt)
	case *taskapi.StatsResponse:
		e.any(1, m.Stats)
	case *taskapi.ConnectResponse:
		e.uint(1, uint64(m.ShimPid))
		e.uint(2, uint64(m.TaskPid))
		e.str(3, m.Version)
	case *options.ProcessDetails:
		e.str(1, m.ExecID)
	case *v1.Metrics:
		encodeV1Metrics(&e, m)
	case *v2.Metrics:
		encodeV2Metrics(&e, m)
	default:
		if b, ok := encodeEvent(m); ok {
			return b, nil
		}
		return nil, fmt.Errorf("wire: no encoder for %T", m)
	}
	return e.b, nil
}

func encodeProcessInfo(e *encoder, p *apitask.ProcessInfo) {
	if p == nil {
		return
	}
	e.uint(1, uint64(p.Pid))
	e.any(2, p.Info)
}
