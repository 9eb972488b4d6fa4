package server

import (
	"fmt"
	"time"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/berth-project/berth/snapshotter"
)

// The conversions between berth's snapshot types and containerd's wire
// types, exported because the proxy (the client side) needs the same ones
// in the other direction.

// InfoToProto converts an Info to the wire.
func InfoToProto(info snapshotter.Info) *snapshotsapi.Info {
	return &snapshotsapi.Info{
		Name:      info.Name,
		Parent:    info.Parent,
		Kind:      snapshotsapi.Kind(info.Kind), // numbered alike
		CreatedAt: timeToProto(info.Created),
		UpdatedAt: timeToProto(info.Updated),
		Labels:    info.Labels,
	}
}

// InfoFromProto converts an Info from the wire; a kind it does not know
// is an InvalidArgument error.
func InfoFromProto(p *snapshotsapi.Info) (snapshotter.Info, error) {
	if p == nil {
		return snapshotter.Info{}, fmt.Errorf("no snapshot info: %w", errdefs.ErrInvalidArgument)
	}
	kind := snapshotter.Kind(p.GetKind())
	switch kind {
	case snapshotter.KindUnknown, snapshotter.KindView, snapshotter.KindActive, snapshotter.KindCommitted:
	default:
		return snapshotter.Info{}, fmt.Errorf("snapshot %q: unknown kind %d: %w", p.GetName(), p.GetKind(), errdefs.ErrInvalidArgument)
	}
	return snapshotter.Info{
		Kind:    kind,
		Name:    p.GetName(),
		Parent:  p.GetParent(),
		Labels:  p.GetLabels(),
		Created: timeFromProto(p.GetCreatedAt()),
		Updated: timeFromProto(p.GetUpdatedAt()),
	}, nil
}

// MountsToProto converts mounts to the wire.
func MountsToProto(ms []snapshotter.Mount) []*types.Mount {
	out := make([]*types.Mount, len(ms))
	for i, m := range ms {
		out[i] = &types.Mount{Type: m.Type, Source: m.Source, Target: m.Target, Options: m.Options}
	}
	return out
}

// MountsFromProto converts mounts from the wire.
func MountsFromProto(ms []*types.Mount) []snapshotter.Mount {
	out := make([]snapshotter.Mount, len(ms))
	for i, m := range ms {
		out[i] = snapshotter.Mount{Type: m.GetType(), Source: m.GetSource(), Target: m.GetTarget(), Options: m.GetOptions()}
	}
	return out
}

// A zero time travels as no timestamp, so that it comes back zero.
func timeToProto(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func timeFromProto(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}
