// Package proxy is a snapshotter.Snapshotter whose store is in another
// process: it speaks containerd's snapshots API
// (containerd.services.snapshots.v1.Snapshots) over a gRPC connection or a
// ttrpc client, so that berthd and the tests use a remote store exactly as
// a local one. Status codes from the wire become errdefs kinds again.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/ttrpc"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/berth-project/berth/snapshotter"
	"github.com/berth-project/berth/snapshotter/server"
)

// Snapshotter is a remote snapshot store.
type Snapshotter struct {
	api  api
	name string
}

var _ snapshotter.Snapshotter = (*Snapshotter)(nil)

// Option configures a Snapshotter.
type Option func(*Snapshotter)

// WithName sets the "snapshotter" field of every request, for a server
// that serves several stores by name (berth's server ignores it).
func WithName(name string) Option {
	return func(s *Snapshotter) { s.name = name }
}

// NewGRPC returns a store that calls the server on conn. The caller owns
// conn: Close leaves it open.
func NewGRPC(conn grpc.ClientConnInterface, opts ...Option) *Snapshotter {
	return newSnapshotter(grpcAPI{snapshotsapi.NewSnapshotsClient(conn)}, opts)
}

// NewTTRPC returns a store that calls the server through client. The
// caller owns client: Close leaves it open.
func NewTTRPC(client *ttrpc.Client, opts ...Option) *Snapshotter {
	return newSnapshotter(ttrpcAPI{snapshotsapi.NewTTRPCSnapshotsClient(client)}, opts)
}

func newSnapshotter(a api, opts []Option) *Snapshotter {
	s := &Snapshotter{api: a}
	for _, o := range opts {
		o(s)
	}
	return s
}

// wireError converts an error from the wire back to its errdefs kind,
// naming the call.
func wireError(call string, err error) error {
	return fmt.Errorf("remote snapshotter: %s: %w", call, errgrpc.ToNative(err))
}

// apply runs opts on an empty Info, to learn the labels (and for Commit,
// the parent) they ask for.
func apply(opts []snapshotter.Opt) (snapshotter.Info, error) {
	var info snapshotter.Info
	for _, o := range opts {
		if err := o(&info); err != nil {
			return info, err
		}
	}
	return info, nil
}

func (s *Snapshotter) Stat(ctx context.Context, key string) (snapshotter.Info, error) {
	resp, err := s.api.Stat(ctx, &snapshotsapi.StatSnapshotRequest{Snapshotter: s.name, Key: key})
	if err != nil {
		return snapshotter.Info{}, wireError("stat", err)
	}
	return server.InfoFromProto(resp.GetInfo())
}

func (s *Snapshotter) Update(ctx context.Context, info snapshotter.Info, fieldpaths ...string) (snapshotter.Info, error) {
	req := &snapshotsapi.UpdateSnapshotRequest{Snapshotter: s.name, Info: server.InfoToProto(info)}
	if len(fieldpaths) > 0 {
		req.UpdateMask = &fieldmaskpb.FieldMask{Paths: fieldpaths}
	}
	resp, err := s.api.Update(ctx, req)
	if err != nil {
		return snapshotter.Info{}, wireError("update", err)
	}
	return server.InfoFromProto(resp.GetInfo())
}

func (s *Snapshotter) Usage(ctx context.Context, key string) (snapshotter.Usage, error) {
	resp, err := s.api.Usage(ctx, &snapshotsapi.UsageRequest{Snapshotter: s.name, Key: key})
	if err != nil {
		return snapshotter.Usage{}, wireError("usage", err)
	}
	return snapshotter.Usage{Size: resp.GetSize(), Inodes: resp.GetInodes()}, nil
}

func (s *Snapshotter) Mounts(ctx context.Context, key string) ([]snapshotter.Mount, error) {
	resp, err := s.api.Mounts(ctx, &snapshotsapi.MountsRequest{Snapshotter: s.name, Key: key})
	if err != nil {
		return nil, wireError("mounts", err)
	}
	return server.MountsFromProto(resp.GetMounts()), nil
}

func (s *Snapshotter) Prepare(ctx context.Context, key, parent string, opts ...snapshotter.Opt) ([]snapshotter.Mount, error) {
	info, err := apply(opts)
	if err != nil {
		return nil, err
	}
	resp, err := s.api.Prepare(ctx, &snapshotsapi.PrepareSnapshotRequest{Snapshotter: s.name, Key: key, Parent: parent, Labels: info.Labels})
	if err != nil {
		return nil, wireError("prepare", err)
	}
	return server.MountsFromProto(resp.GetMounts()), nil
}

func (s *Snapshotter) View(ctx context.Context, key, parent string, opts ...snapshotter.Opt) ([]snapshotter.Mount, error) {
	info, err := apply(opts)
	if err != nil {
		return nil, err
	}
	resp, err := s.api.View(ctx, &snapshotsapi.ViewSnapshotRequest{Snapshotter: s.name, Key: key, Parent: parent, Labels: info.Labels})
	if err != nil {
		return nil, wireError("view", err)
	}
	return server.MountsFromProto(resp.GetMounts()), nil
}

// Commit sends the parent of WithParent in the request's parent field,
// which asks the server to rebase.
func (s *Snapshotter) Commit(ctx context.Context, name, key string, opts ...snapshotter.Opt) error {
	info, err := apply(opts)
	if err != nil {
		return err
	}
	_, err = s.api.Commit(ctx, &snapshotsapi.CommitSnapshotRequest{Snapshotter: s.name, Name: name, Key: key, Labels: info.Labels, Parent: info.Parent})
	if err != nil {
		return wireError("commit", err)
	}
	return nil
}

func (s *Snapshotter) Remove(ctx context.Context, key string) error {
	if _, err := s.api.Remove(ctx, &snapshotsapi.RemoveSnapshotRequest{Snapshotter: s.name, Key: key}); err != nil {
		return wireError("remove", err)
	}
	return nil
}

// Walk reads the server's stream of pages and calls fn for each snapshot;
// when fn fails, the stream is cancelled.
func (s *Snapshotter) Walk(ctx context.Context, fn snapshotter.WalkFunc, filters ...string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	recv, err := s.api.List(ctx, &snapshotsapi.ListSnapshotsRequest{Snapshotter: s.name, Filters: filters})
	if err != nil {
		return wireError("list", err)
	}
	for {
		resp, err := recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return wireError("list", err)
		}
		for _, p := range resp.GetInfo() {
			info, err := server.InfoFromProto(p)
			if err != nil {
				return fmt.Errorf("remote snapshotter: list: %w", err)
			}
			if err := fn(ctx, info); err != nil {
				return err
			}
		}
	}
}

func (s *Snapshotter) Cleanup(ctx context.Context) error {
	if _, err := s.api.Cleanup(ctx, &snapshotsapi.CleanupRequest{Snapshotter: s.name}); err != nil {
		return wireError("cleanup", err)
	}
	return nil
}

// Close does nothing: the connection belongs to the caller, and the store
// to the server.
func (s *Snapshotter) Close() error { return nil }

// api is the snapshots API as both transports' clients offer it, with
// List reduced to its receive function.
type api interface {
	Prepare(context.Context, *snapshotsapi.PrepareSnapshotRequest) (*snapshotsapi.PrepareSnapshotResponse, error)
	View(context.Context, *snapshotsapi.ViewSnapshotRequest) (*snapshotsapi.ViewSnapshotResponse, error)
	Mounts(context.Context, *snapshotsapi.MountsRequest) (*snapshotsapi.MountsResponse, error)
	Commit(context.Context, *snapshotsapi.CommitSnapshotRequest) (*emptypb.Empty, error)
	Remove(context.Context, *snapshotsapi.RemoveSnapshotRequest) (*emptypb.Empty, error)
	Stat(context.Context, *snapshotsapi.StatSnapshotRequest) (*snapshotsapi.StatSnapshotResponse, error)
	Update(context.Context, *snapshotsapi.UpdateSnapshotRequest) (*snapshotsapi.UpdateSnapshotResponse, error)
	List(context.Context, *snapshotsapi.ListSnapshotsRequest) (func() (*snapshotsapi.ListSnapshotsResponse, error), error)
	Usage(context.Context, *snapshotsapi.UsageRequest) (*snapshotsapi.UsageResponse, error)
	Cleanup(context.Context, *snapshotsapi.CleanupRequest) (*emptypb.Empty, error)
}

// ttrpcAPI: ttrpc's generated client has the unary calls as api wants them.
type ttrpcAPI struct {
	snapshotsapi.TTRPCSnapshotsClient
}

func (t ttrpcAPI) List(ctx context.Context, req *snapshotsapi.ListSnapshotsRequest) (func() (*snapshotsapi.ListSnapshotsResponse, error), error) {
	stream, err := t.TTRPCSnapshotsClient.List(ctx, req)
	if err != nil {
		return nil, err
	}
	return stream.Recv, nil
}

// grpcAPI drops the call options of gRPC's generated client.
type grpcAPI struct {
	c snapshotsapi.SnapshotsClient
}

func (g grpcAPI) Prepare(ctx context.Context, req *snapshotsapi.PrepareSnapshotRequest) (*snapshotsapi.PrepareSnapshotResponse, error) {
	return g.c.Prepare(ctx, req)
}

func (g grpcAPI) View(ctx context.Context, req *snapshotsapi.ViewSnapshotRequest) (*snapshotsapi.ViewSnapshotResponse, error) {
	return g.c.View(ctx, req)
}

func (g grpcAPI) Mounts(ctx context.Context, req *snapshotsapi.MountsRequest) (*snapshotsapi.MountsResponse, error) {
	return g.c.Mounts(ctx, req)
}

func (g grpcAPI) Commit(ctx context.Context, req *snapshotsapi.CommitSnapshotRequest) (*emptypb.Empty, error) {
	return g.c.Commit(ctx, req)
}

func (g grpcAPI) Remove(ctx context.Context, req *snapshotsapi.RemoveSnapshotRequest) (*emptypb.Empty, error) {
	return g.c.Remove(ctx, req)
}

func (g grpcAPI) Stat(ctx context.Context, req *snapshotsapi.StatSnapshotRequest) (*snapshotsapi.StatSnapshotResponse, error) {
	return g.c.Stat(ctx, req)
}

func (g grpcAPI) Update(ctx context.Context, req *snapshotsapi.UpdateSnapshotRequest) (*snapshotsapi.UpdateSnapshotResponse, error) {
	return g.c.Update(ctx, req)
}

func (g grpcAPI) List(ctx context.Context, req *snapshotsapi.ListSnapshotsRequest) (func() (*snapshotsapi.ListSnapshotsResponse, error), error) {
	stream, err := g.c.List(ctx, req)
	if err != nil {
		return nil, err
	}
	return stream.Recv, nil
}

func (g grpcAPI) Usage(ctx context.Context, req *snapshotsapi.UsageRequest) (*snapshotsapi.UsageResponse, error) {
	return g.c.Usage(ctx, req)
}

func (g grpcAPI) Cleanup(ctx context.Context, req *snapshotsapi.CleanupRequest) (*emptypb.Empty, error) {
	return g.c.Cleanup(ctx, req)
}
