package server

import (
	"context"

	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/berth-project/berth/manager/networks"
	networksv1 "github.com/berth-project/berth/proto/services/networks/v1"
)

// Networks serves networks.v1 over the network library (manager/networks),
// whose records are the API's messages. Its calls are all unary: register
// it as it is (the interceptor counts, converts and logs them).
type Networks struct {
	store *networks.Store
}

var _ networksv1.NetworksService = (*Networks)(nil)

// NewNetworks returns the network service over store.
func NewNetworks(store *networks.Store) *Networks { return &Networks{store: store} }

func (n *Networks) Create(ctx context.Context, req *networksv1.CreateRequest) (*networksv1.CreateResponse, error) {
	r, err := n.store.Create(ctx, req)
	if err != nil {
		return nil, err
	}
	return &networksv1.CreateResponse{Id: r.GetId()}, nil
}

func (n *Networks) List(ctx context.Context, req *networksv1.ListRequest) (*networksv1.ListResponse, error) {
	rs, err := n.store.List(ctx, req.GetFilters())
	if err != nil {
		return nil, err
	}
	return &networksv1.ListResponse{Networks: rs}, nil
}

func (n *Networks) Get(ctx context.Context, req *networksv1.GetRequest) (*networksv1.GetResponse, error) {
	r, err := n.store.Get(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	return &networksv1.GetResponse{Network: r}, nil
}

func (n *Networks) Remove(ctx context.Context, req *networksv1.RemoveRequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, n.store.Remove(ctx, req.GetName())
}

func (n *Networks) Prune(ctx context.Context, req *networksv1.PruneRequest) (*networksv1.PruneResponse, error) {
	deleted, err := n.store.Prune(ctx, req.GetFilters())
	return &networksv1.PruneResponse{Deleted: deleted}, err
}
