package server

import (
	"context"

	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/berth-project/berth/manager/volumes"
	volumesv1 "github.com/berth-project/berth/proto/services/volumes/v1"
)

// Volumes serves volumes.v1 over the volume library (manager/volumes),
// whose records are the API's messages. Its calls are all unary: Calls.Unary
// counts, converts and logs them, and it needs no tracked wrapper.
type Volumes struct {
	svc *volumes.Service
}

var _ volumesv1.VolumesService = (*Volumes)(nil)

// NewVolumes returns the volume service over svc.
func NewVolumes(svc *volumes.Service) *Volumes { return &Volumes{svc: svc} }

func (v *Volumes) Create(ctx context.Context, req *volumesv1.CreateRequest) (*volumesv1.CreateResponse, error) {
	vol, err := v.svc.Create(ctx, req.GetName(), req.GetDriver(), req.GetLabels(), req.GetDriverOpts())
	if err != nil {
		return nil, err
	}
	return &volumesv1.CreateResponse{Volume: vol}, nil
}

func (v *Volumes) List(ctx context.Context, req *volumesv1.ListRequest) (*volumesv1.ListResponse, error) {
	vols, err := v.svc.List(ctx, req.GetFilters(), req.GetSize())
	if err != nil {
		return nil, err
	}
	return &volumesv1.ListResponse{Volumes: vols}, nil
}

func (v *Volumes) Get(ctx context.Context, req *volumesv1.GetRequest) (*volumesv1.GetResponse, error) {
	vol, err := v.svc.Get(ctx, req.GetName(), req.GetSize())
	if err != nil {
		return nil, err
	}
	return &volumesv1.GetResponse{Volume: vol}, nil
}

func (v *Volumes) Remove(ctx context.Context, req *volumesv1.RemoveRequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, v.svc.Remove(ctx, req.GetName(), req.GetForce())
}

// Prune answers what it removed even when removing some failed.
func (v *Volumes) Prune(ctx context.Context, req *volumesv1.PruneRequest) (*volumesv1.PruneResponse, error) {
	deleted, space, err := v.svc.Prune(ctx, req.GetAll(), req.GetFilters())
	return &volumesv1.PruneResponse{Deleted: deleted, SpaceReclaimed: space}, err
}
