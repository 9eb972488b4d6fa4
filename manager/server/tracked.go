package server

import (
	"context"

	"google.golang.org/protobuf/types/known/emptypb"

	eventsv1 "github.com/berth-project/berth/proto/services/events/v1"
	imagesv1 "github.com/berth-project/berth/proto/services/images/v1"
)

// The services as registered: their stream handlers go through
// Calls.stream (ttrpc has no stream interceptor); unary calls are left to
// Calls.Unary.

type trackedEvents struct {
	svc   eventsv1.EventsService
	calls *Calls
}

func (e *trackedEvents) Subscribe(ctx context.Context, req *eventsv1.SubscribeRequest, s eventsv1.Events_SubscribeServer) error {
	return e.calls.stream(ctx, "/berth.services.events.v1.Events/Subscribe", func(ctx context.Context) error {
		return e.svc.Subscribe(ctx, req, s)
	})
}

type trackedImages struct {
	svc   imagesv1.ImagesService
	calls *Calls
}

const imagesService = "/berth.services.images.v1.Images/"

func (i *trackedImages) Pull(ctx context.Context, req *imagesv1.PullRequest, s imagesv1.Images_PullServer) error {
	return i.calls.stream(ctx, imagesService+"Pull", func(ctx context.Context) error { return i.svc.Pull(ctx, req, s) })
}

func (i *trackedImages) Push(ctx context.Context, req *imagesv1.PushRequest, s imagesv1.Images_PushServer) error {
	return i.calls.stream(ctx, imagesService+"Push", func(ctx context.Context) error { return i.svc.Push(ctx, req, s) })
}

func (i *trackedImages) Export(ctx context.Context, req *imagesv1.ExportRequest, s imagesv1.Images_ExportServer) error {
	return i.calls.stream(ctx, imagesService+"Export", func(ctx context.Context) error { return i.svc.Export(ctx, req, s) })
}

func (i *trackedImages) Import(ctx context.Context, s imagesv1.Images_ImportServer) (resp *imagesv1.ImportResponse, err error) {
	err = i.calls.stream(ctx, imagesService+"Import", func(ctx context.Context) error {
		resp, err = i.svc.Import(ctx, s)
		return err
	})
	return resp, err
}

func (i *trackedImages) List(ctx context.Context, req *imagesv1.ListRequest) (*imagesv1.ListResponse, error) {
	return i.svc.List(ctx, req)
}

func (i *trackedImages) Get(ctx context.Context, req *imagesv1.GetRequest) (*imagesv1.GetResponse, error) {
	return i.svc.Get(ctx, req)
}

func (i *trackedImages) History(ctx context.Context, req *imagesv1.HistoryRequest) (*imagesv1.HistoryResponse, error) {
	return i.svc.History(ctx, req)
}

func (i *trackedImages) Tag(ctx context.Context, req *imagesv1.TagRequest) (*emptypb.Empty, error) {
	return i.svc.Tag(ctx, req)
}

func (i *trackedImages) Remove(ctx context.Context, req *imagesv1.RemoveRequest) (*imagesv1.RemoveResponse, error) {
	return i.svc.Remove(ctx, req)
}

func (i *trackedImages) Prune(ctx context.Context, req *imagesv1.PruneRequest) (*imagesv1.PruneResponse, error) {
	return i.svc.Prune(ctx, req)
}

func (i *trackedImages) CheckLogin(ctx context.Context, req *imagesv1.CheckLoginRequest) (*emptypb.Empty, error) {
	return i.svc.CheckLogin(ctx, req)
}
