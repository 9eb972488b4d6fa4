package server

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/berth-project/berth/manager/containers"
	containersv1 "github.com/berth-project/berth/proto/services/containers/v1"
)

// Containers serves containers.v1 over the container library
// (manager/containers), whose records are the API's messages.
type Containers struct {
	svc *containers.Service
}

var _ containersv1.ContainersService = (*Containers)(nil)

// NewContainers returns the container service over svc.
func NewContainers(svc *containers.Service) *Containers { return &Containers{svc: svc} }

func (c *Containers) Create(ctx context.Context, req *containersv1.CreateRequest) (*containersv1.CreateResponse, error) {
	r, err := c.svc.Create(ctx, req.GetName(), req.GetConfig())
	if err != nil {
		return nil, err
	}
	return &containersv1.CreateResponse{Id: r.GetId()}, nil
}

func (c *Containers) Start(ctx context.Context, req *containersv1.StartRequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, c.svc.Start(ctx, req.GetId())
}

func (c *Containers) Stop(ctx context.Context, req *containersv1.StopRequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, c.svc.Stop(ctx, req.GetId(), req.Timeout, req.GetSignal())
}

func (c *Containers) Kill(ctx context.Context, req *containersv1.KillRequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, c.svc.Kill(ctx, req.GetId(), req.GetSignal())
}

func (c *Containers) Remove(ctx context.Context, req *containersv1.RemoveRequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, c.svc.Remove(ctx, req.GetId(), req.GetForce(), req.GetVolumes())
}

func (c *Containers) List(ctx context.Context, req *containersv1.ListRequest) (*containersv1.ListResponse, error) {
	rs, err := c.svc.List(ctx, req.GetAll(), req.GetFilters())
	if err != nil {
		return nil, err
	}
	if req.GetSize() {
		for _, r := range rs {
			r.SizeRw = c.svc.SizeRW(ctx, r.GetId())
		}
	}
	return &containersv1.ListResponse{Containers: rs}, nil
}

func (c *Containers) Get(ctx context.Context, req *containersv1.GetRequest) (*containersv1.GetResponse, error) {
	r, err := c.svc.Get(ctx, req.GetId(), req.GetSize())
	if err != nil {
		return nil, err
	}
	return &containersv1.GetResponse{Container: r}, nil
}

func (c *Containers) Wait(ctx context.Context, req *containersv1.WaitRequest) (*containersv1.WaitResponse, error) {
	code, err := c.svc.Wait(ctx, req.GetId(), req.GetCondition())
	if err != nil {
		return nil, err
	}
	return &containersv1.WaitResponse{ExitCode: code}, nil
}

func (c *Containers) Prune(ctx context.Context, req *containersv1.PruneRequest) (*containersv1.PruneResponse, error) {
	ids, size, err := c.svc.Prune(ctx, req.GetFilters())
	return &containersv1.PruneResponse{Deleted: ids, SpaceReclaimed: size}, err
}

func (c *Containers) Logs(ctx context.Context, req *containersv1.LogsRequest, s containersv1.Containers_LogsServer) error {
	o := containers.LogsOptions{Follow: req.GetFollow(), Stdout: req.GetStdout(), Stderr: req.GetStderr(), Tail: req.GetTail()}
	if !o.Stdout && !o.Stderr {
		o.Stdout, o.Stderr = true, true
	}
	if req.GetSince() != nil {
		o.Since = req.GetSince().AsTime()
	}
	if req.GetUntil() != nil {
		o.Until = req.GetUntil().AsTime()
	}
	return c.svc.Logs(ctx, req.GetId(), o, s.Send)
}

func (c *Containers) Attach(ctx context.Context, s containersv1.Containers_AttachServer) error {
	first, err := s.Recv()
	if err != nil {
		return firstMessage("attach", err)
	}
	start := first.GetStart()
	if start == nil {
		return fmt.Errorf("attach: the first message must be the start: %w", errdefs.ErrInvalidArgument)
	}
	recv := func() (containers.Input, error) {
		in, err := s.Recv()
		return attachInput(in, err)
	}
	o := containers.AttachOptions{Stdin: start.GetStdin(), Stdout: start.GetStdout(), Stderr: start.GetStderr()}
	return c.svc.Attach(ctx, start.GetId(), o, recv, s.Send)
}

func (c *Containers) Exec(ctx context.Context, s containersv1.Containers_ExecServer) error {
	first, err := s.Recv()
	if err != nil {
		return firstMessage("exec", err)
	}
	start := first.GetStart()
	if start == nil {
		return fmt.Errorf("exec: the first message must be the start: %w", errdefs.ErrInvalidArgument)
	}
	recv := func() (containers.Input, error) {
		in, err := s.Recv()
		if err != nil {
			return containers.Input{}, err
		}
		return containers.Input{Stdin: in.GetStdin(), CloseStdin: in.GetCloseStdin(), Resize: in.GetResize()}, nil
	}
	return c.svc.Exec(ctx, start, recv, s.Send)
}

// attachInput reads an attach stream's message after the start.
func attachInput(in *containersv1.AttachInput, err error) (containers.Input, error) {
	if err != nil {
		return containers.Input{}, err
	}
	return containers.Input{Stdin: in.GetStdin(), CloseStdin: in.GetCloseStdin(), Resize: in.GetResize()}, nil
}

func firstMessage(call string, err error) error {
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: no start message sent: %w", call, errdefs.ErrInvalidArgument)
	}
	return err
}

type trackedContainers struct {
	svc   containersv1.ContainersService
	calls *Calls
}

const containersService = "/berth.services.containers.v1.Containers/"

func (t *trackedContainers) Create(ctx context.Context, req *containersv1.CreateRequest) (*containersv1.CreateResponse, error) {
	return t.svc.Create(ctx, req)
}

func (t *trackedContainers) Start(ctx context.Context, req *containersv1.StartRequest) (*emptypb.Empty, error) {
	return t.svc.Start(ctx, req)
}

func (t *trackedContainers) Stop(ctx context.Context, req *containersv1.StopRequest) (*emptypb.Empty, error) {
	return t.svc.Stop(ctx, req)
}

func (t *trackedContainers) Kill(ctx context.Context, req *containersv1.KillRequest) (*emptypb.Empty, error) {
	return t.svc.Kill(ctx, req)
}

func (t *trackedContainers) Remove(ctx context.Context, req *containersv1.RemoveRequest) (*emptypb.Empty, error) {
	return t.svc.Remove(ctx, req)
}

func (t *trackedContainers) List(ctx context.Context, req *containersv1.ListRequest) (*containersv1.ListResponse, error) {
	return t.svc.List(ctx, req)
}

func (t *trackedContainers) Get(ctx context.Context, req *containersv1.GetRequest) (*containersv1.GetResponse, error) {
	return t.svc.Get(ctx, req)
}

func (t *trackedContainers) Wait(ctx context.Context, req *containersv1.WaitRequest) (*containersv1.WaitResponse, error) {
	return t.svc.Wait(ctx, req)
}

func (t *trackedContainers) Prune(ctx context.Context, req *containersv1.PruneRequest) (*containersv1.PruneResponse, error) {
	return t.svc.Prune(ctx, req)
}

func (t *trackedContainers) Logs(ctx context.Context, req *containersv1.LogsRequest, s containersv1.Containers_LogsServer) error {
	return t.calls.stream(ctx, containersService+"Logs", func(ctx context.Context) error { return t.svc.Logs(ctx, req, s) })
}

func (t *trackedContainers) Attach(ctx context.Context, s containersv1.Containers_AttachServer) error {
	return t.calls.stream(ctx, containersService+"Attach", func(ctx context.Context) error { return t.svc.Attach(ctx, s) })
}

func (t *trackedContainers) Exec(ctx context.Context, s containersv1.Containers_ExecServer) error {
	return t.calls.stream(ctx, containersService+"Exec", func(ctx context.Context) error { return t.svc.Exec(ctx, s) })
}

func (c *Containers) Pause(ctx context.Context, req *containersv1.PauseRequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, c.svc.Pause(ctx, req.GetId())
}

func (c *Containers) Unpause(ctx context.Context, req *containersv1.PauseRequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, c.svc.Unpause(ctx, req.GetId())
}

func (c *Containers) Rename(ctx context.Context, req *containersv1.RenameRequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, c.svc.Rename(ctx, req.GetId(), req.GetName())
}

func (c *Containers) Top(ctx context.Context, req *containersv1.TopRequest) (*containersv1.TopResponse, error) {
	return c.svc.Top(ctx, req.GetId(), req.GetPsArgs())
}

func (t *trackedContainers) Pause(ctx context.Context, req *containersv1.PauseRequest) (*emptypb.Empty, error) {
	return t.svc.Pause(ctx, req)
}

func (t *trackedContainers) Unpause(ctx context.Context, req *containersv1.PauseRequest) (*emptypb.Empty, error) {
	return t.svc.Unpause(ctx, req)
}

func (t *trackedContainers) Rename(ctx context.Context, req *containersv1.RenameRequest) (*emptypb.Empty, error) {
	return t.svc.Rename(ctx, req)
}

func (t *trackedContainers) Top(ctx context.Context, req *containersv1.TopRequest) (*containersv1.TopResponse, error) {
	return t.svc.Top(ctx, req)
}

func (c *Containers) Stats(ctx context.Context, req *containersv1.StatsRequest, s containersv1.Containers_StatsServer) error {
	return c.svc.Stats(ctx, req.GetId(), req.GetStream(), s.Send)
}

func (t *trackedContainers) Stats(ctx context.Context, req *containersv1.StatsRequest, s containersv1.Containers_StatsServer) error {
	return t.calls.stream(ctx, containersService+"Stats", func(ctx context.Context) error { return t.svc.Stats(ctx, req, s) })
}

func (c *Containers) Commit(ctx context.Context, req *containersv1.CommitRequest) (*containersv1.CommitResponse, error) {
	img, err := c.svc.Commit(ctx, req.GetId(), containers.CommitOptions{
		Ref:     req.GetReference(),
		Author:  req.GetAuthor(),
		Message: req.GetMessage(),
		Changes: req.GetChanges(),
		Pause:   req.GetPause(),
	})
	if err != nil {
		return nil, err
	}
	return &containersv1.CommitResponse{ImageId: img.ID.String()}, nil
}

// archiveChunk is the size of the tar chunks CopyFrom sends.
const archiveChunk = 256 << 10

func (c *Containers) CopyFrom(ctx context.Context, req *containersv1.CopyFromRequest, s containersv1.Containers_CopyFromServer) error {
	w := &chunkWriter{send: func(b []byte) error { return s.Send(&containersv1.ArchiveChunk{Data: b}) }}
	stat := func(st containers.PathStat) error {
		return s.Send(&containersv1.ArchiveChunk{Stat: &containersv1.PathStat{
			Name:       st.Name,
			Size:       st.Size,
			Mode:       uint32(st.Mode),
			Mtime:      timestamppb.New(st.Mtime),
			LinkTarget: st.LinkTarget,
		}})
	}
	if err := c.svc.CopyFrom(ctx, req.GetId(), req.GetPath(), containers.CopyFromOptions{FollowLink: req.GetFollowLink()}, stat, w); err != nil {
		return err
	}
	return w.flush()
}

// chunkWriter gathers writes into chunks of archiveChunk bytes.
type chunkWriter struct {
	send func([]byte) error
	buf  []byte
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if w.buf == nil {
			w.buf = make([]byte, 0, archiveChunk)
		}
		k := min(len(p), archiveChunk-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		if len(w.buf) == archiveChunk {
			if err := w.flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (w *chunkWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	err := w.send(w.buf)
	w.buf = nil // the message may hold the bytes until sent
	return err
}

func (c *Containers) CopyTo(ctx context.Context, s containersv1.Containers_CopyToServer) (*emptypb.Empty, error) {
	first, err := s.Recv()
	if err != nil {
		return nil, firstMessage("copy", err)
	}
	o := first.GetOptions()
	if o == nil {
		return nil, fmt.Errorf("copy: the first message must carry the options: %w", errdefs.ErrInvalidArgument)
	}
	r := &copyToReader{s: s}
	err = c.svc.CopyTo(ctx, o.GetId(), containers.CopyToOptions{
		Path:        o.GetPath(),
		SourceBase:  o.GetSourceBase(),
		SourceIsDir: o.GetSourceIsDir(),
		CopyUIDGID:  o.GetCopyUidGid(),
	}, r)
	if err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

// copyToReader reads the tar chunks of a CopyTo stream.
type copyToReader struct {
	s   containersv1.Containers_CopyToServer
	buf []byte
}

func (r *copyToReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		m, err := r.s.Recv()
		if err != nil {
			return 0, err // io.EOF at the end of the stream
		}
		r.buf = m.GetData()
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (t *trackedContainers) Commit(ctx context.Context, req *containersv1.CommitRequest) (*containersv1.CommitResponse, error) {
	return t.svc.Commit(ctx, req)
}

func (t *trackedContainers) CopyFrom(ctx context.Context, req *containersv1.CopyFromRequest, s containersv1.Containers_CopyFromServer) error {
	return t.calls.stream(ctx, containersService+"CopyFrom", func(ctx context.Context) error { return t.svc.CopyFrom(ctx, req, s) })
}

func (t *trackedContainers) CopyTo(ctx context.Context, s containersv1.Containers_CopyToServer) (resp *emptypb.Empty, err error) {
	err = t.calls.stream(ctx, containersService+"CopyTo", func(ctx context.Context) error {
		resp, err = t.svc.CopyTo(ctx, s)
		return err
	})
	return resp, err
}

func (c *Containers) Update(ctx context.Context, req *containersv1.UpdateRequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, c.svc.Update(ctx, req)
}

func (t *trackedContainers) Update(ctx context.Context, req *containersv1.UpdateRequest) (*emptypb.Empty, error) {
	return t.svc.Update(ctx, req)
}
