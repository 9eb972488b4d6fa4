// Package server serves a snapshotter.Snapshotter as containerd's snapshots
// API (containerd.services.snapshots.v1.Snapshots), over gRPC — what
// containerd's proxy_plugins speak — and over ttrpc, what berthd speaks.
// One implementation serves both: the unary calls have the same signature
// in both generated APIs, and only List's stream differs.
//
// This is the RPC boundary: errors keep their errdefs kinds inside the
// store and become gRPC status codes here (ttrpc carries the same status).
//
// The "snapshotter" field of the requests is ignored: containerd fills it
// with the name its own config gives the proxy plugin, which this process
// cannot know, and one server serves one store.
package server

import (
	"context"
	"errors"
	"log/slog"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/ttrpc"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/berth-project/berth/snapshotter"
)

// List sends the snapshots in pages: containerd's clients read a stream of
// messages, and one message for thousands of snapshots with labels could
// pass the 4 MiB both transports allow by default.
const (
	pageInfos = 100
	pageBytes = 1 << 20
)

// Service serves one store. It is the gRPC SnapshotsServer; TTRPC returns
// the same service for a ttrpc server.
type Service struct {
	snapshotsapi.UnimplementedSnapshotsServer
	store snapshotter.Snapshotter
	log   *slog.Logger
}

// New returns a service for store. It logs each call at debug level and
// failures that are not the client's fault at error level; a nil logger
// logs nothing.
func New(store snapshotter.Snapshotter, logger *slog.Logger) *Service {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Service{store: store, log: logger}
}

// RegisterGRPC registers the service on a gRPC server.
func (s *Service) RegisterGRPC(r grpc.ServiceRegistrar) {
	snapshotsapi.RegisterSnapshotsServer(r, s)
}

// RegisterTTRPC registers the service on a ttrpc server.
func (s *Service) RegisterTTRPC(srv *ttrpc.Server) {
	snapshotsapi.RegisterTTRPCSnapshotsService(srv, ttrpcService{s})
}

// done logs the outcome of a call and converts its error for the wire.
func (s *Service) done(ctx context.Context, method, key string, err error) error {
	if err == nil {
		s.log.DebugContext(ctx, method, "key", key)
		return nil
	}
	// Errors of a known kind answer a bad request; the rest are the
	// store's own trouble and worth an operator's attention.
	level := slog.LevelDebug
	if k := errdefs.Resolve(err); k == errdefs.ErrUnknown || k == errdefs.ErrInternal {
		level = slog.LevelError
	}
	s.log.Log(ctx, level, method+" failed", "key", key, "error", err)
	return errgrpc.ToGRPC(err)
}

func (s *Service) Prepare(ctx context.Context, req *snapshotsapi.PrepareSnapshotRequest) (*snapshotsapi.PrepareSnapshotResponse, error) {
	ms, err := s.store.Prepare(ctx, req.GetKey(), req.GetParent(), snapshotter.WithLabels(req.GetLabels()))
	if err != nil {
		return nil, s.done(ctx, "prepare", req.GetKey(), err)
	}
	return &snapshotsapi.PrepareSnapshotResponse{Mounts: MountsToProto(ms)}, s.done(ctx, "prepare", req.GetKey(), nil)
}

func (s *Service) View(ctx context.Context, req *snapshotsapi.ViewSnapshotRequest) (*snapshotsapi.ViewSnapshotResponse, error) {
	ms, err := s.store.View(ctx, req.GetKey(), req.GetParent(), snapshotter.WithLabels(req.GetLabels()))
	if err != nil {
		return nil, s.done(ctx, "view", req.GetKey(), err)
	}
	return &snapshotsapi.ViewSnapshotResponse{Mounts: MountsToProto(ms)}, s.done(ctx, "view", req.GetKey(), nil)
}

func (s *Service) Mounts(ctx context.Context, req *snapshotsapi.MountsRequest) (*snapshotsapi.MountsResponse, error) {
	ms, err := s.store.Mounts(ctx, req.GetKey())
	if err != nil {
		return nil, s.done(ctx, "mounts", req.GetKey(), err)
	}
	return &snapshotsapi.MountsResponse{Mounts: MountsToProto(ms)}, s.done(ctx, "mounts", req.GetKey(), nil)
}

func (s *Service) Commit(ctx context.Context, req *snapshotsapi.CommitSnapshotRequest) (*emptypb.Empty, error) {
	opts := []snapshotter.Opt{snapshotter.WithLabels(req.GetLabels())}
	// A parent in Commit is containerd's rebase: the snapshot was
	// prepared without it, for a parallel unpack.
	if p := req.GetParent(); p != "" {
		opts = append(opts, snapshotter.WithParent(p))
	}
	err := s.store.Commit(ctx, req.GetName(), req.GetKey(), opts...)
	if err != nil {
		return nil, s.done(ctx, "commit", req.GetKey(), err)
	}
	return &emptypb.Empty{}, s.done(ctx, "commit", req.GetKey(), nil)
}

func (s *Service) Remove(ctx context.Context, req *snapshotsapi.RemoveSnapshotRequest) (*emptypb.Empty, error) {
	if err := s.store.Remove(ctx, req.GetKey()); err != nil {
		return nil, s.done(ctx, "remove", req.GetKey(), err)
	}
	return &emptypb.Empty{}, s.done(ctx, "remove", req.GetKey(), nil)
}

func (s *Service) Stat(ctx context.Context, req *snapshotsapi.StatSnapshotRequest) (*snapshotsapi.StatSnapshotResponse, error) {
	info, err := s.store.Stat(ctx, req.GetKey())
	if err != nil {
		return nil, s.done(ctx, "stat", req.GetKey(), err)
	}
	return &snapshotsapi.StatSnapshotResponse{Info: InfoToProto(info)}, s.done(ctx, "stat", req.GetKey(), nil)
}

func (s *Service) Update(ctx context.Context, req *snapshotsapi.UpdateSnapshotRequest) (*snapshotsapi.UpdateSnapshotResponse, error) {
	in, err := InfoFromProto(req.GetInfo())
	if err != nil {
		return nil, s.done(ctx, "update", req.GetInfo().GetName(), err)
	}
	info, err := s.store.Update(ctx, in, req.GetUpdateMask().GetPaths()...)
	if err != nil {
		return nil, s.done(ctx, "update", in.Name, err)
	}
	return &snapshotsapi.UpdateSnapshotResponse{Info: InfoToProto(info)}, s.done(ctx, "update", in.Name, nil)
}

func (s *Service) Usage(ctx context.Context, req *snapshotsapi.UsageRequest) (*snapshotsapi.UsageResponse, error) {
	u, err := s.store.Usage(ctx, req.GetKey())
	if err != nil {
		return nil, s.done(ctx, "usage", req.GetKey(), err)
	}
	return &snapshotsapi.UsageResponse{Size: u.Size, Inodes: u.Inodes}, s.done(ctx, "usage", req.GetKey(), nil)
}

func (s *Service) Cleanup(ctx context.Context, req *snapshotsapi.CleanupRequest) (*emptypb.Empty, error) {
	if err := s.store.Cleanup(ctx); err != nil {
		return nil, s.done(ctx, "cleanup", "", err)
	}
	return &emptypb.Empty{}, s.done(ctx, "cleanup", "", nil)
}

// List is the gRPC List.
func (s *Service) List(req *snapshotsapi.ListSnapshotsRequest, stream snapshotsapi.Snapshots_ListServer) error {
	return s.list(stream.Context(), req, stream.Send)
}

// list walks the store and sends what matches in pages.
func (s *Service) list(ctx context.Context, req *snapshotsapi.ListSnapshotsRequest, send func(*snapshotsapi.ListSnapshotsResponse) error) error {
	var (
		page  []*snapshotsapi.Info
		bytes int
		n     int
	)
	flush := func() error {
		if len(page) == 0 {
			return nil
		}
		err := send(&snapshotsapi.ListSnapshotsResponse{Info: page})
		page, bytes = nil, 0
		return err
	}
	errSend := errors.New("send")
	err := s.store.Walk(ctx, func(ctx context.Context, info snapshotter.Info) error {
		p := InfoToProto(info)
		size := proto.Size(p)
		if len(page) > 0 && (len(page) == pageInfos || bytes+size > pageBytes) {
			if err := flush(); err != nil {
				return errors.Join(errSend, err)
			}
		}
		page = append(page, p)
		bytes += size
		n++
		return nil
	}, req.GetFilters()...)
	if err == nil {
		if err = flush(); err != nil {
			err = errors.Join(errSend, err)
		}
	}
	if errors.Is(err, errSend) {
		// The client is gone or the stream broke: nothing to tell it.
		s.log.DebugContext(ctx, "list: send failed", "error", err)
		return err
	}
	if err != nil {
		return s.done(ctx, "list", "", err)
	}
	s.log.DebugContext(ctx, "list", "filters", req.GetFilters(), "snapshots", n)
	return nil
}

// ttrpcService is the service for ttrpc, whose List takes the context
// apart from the stream.
type ttrpcService struct{ *Service }

func (t ttrpcService) List(ctx context.Context, req *snapshotsapi.ListSnapshotsRequest, stream snapshotsapi.TTRPCSnapshots_ListServer) error {
	return t.list(ctx, req, stream.Send)
}
