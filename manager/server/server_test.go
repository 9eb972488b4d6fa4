package server_test

import (
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/berth-project/berth/manager/client"
	"github.com/berth-project/berth/manager/events"
	"github.com/berth-project/berth/manager/server"
	"github.com/berth-project/berth/manager/version"
	eventsv1 "github.com/berth-project/berth/proto/services/events/v1"
	imagesv1 "github.com/berth-project/berth/proto/services/images/v1"
	systemv1 "github.com/berth-project/berth/proto/services/system/v1"
	"github.com/berth-project/berth/snapshotter"
)

// fakeStore is a snapshot store of fixed snapshots.
type fakeStore struct {
	fakeSnapshotter
}

// fakeSnapshotter implements what the system service calls; the other
// methods are the nil interface's and panic if called.
type fakeSnapshotter struct {
	snapshotter.Snapshotter
	infos    []snapshotter.Info
	sizes    map[string]int64
	cleanups int
}

func (f *fakeStore) Snapshotter() snapshotter.Snapshotter { return &f.fakeSnapshotter }
func (f *fakeStore) Backend() string                      { return "overlay" }
func (f *fakeStore) Address() string                      { return "/run/test/snapshotter.sock" }
func (f *fakeStore) Root() string                         { return "" }
func (f *fakeStore) Version() string                      { return "v-test" }

func (f *fakeSnapshotter) Walk(ctx context.Context, fn snapshotter.WalkFunc, filters ...string) error {
	for _, info := range f.infos {
		if len(filters) > 0 && filters[0] == "kind==committed" && info.Kind != snapshotter.KindCommitted {
			continue
		}
		if err := fn(ctx, info); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeSnapshotter) Usage(_ context.Context, key string) (snapshotter.Usage, error) {
	return snapshotter.Usage{Size: f.sizes[key]}, nil
}

func (f *fakeSnapshotter) Cleanup(context.Context) error { f.cleanups++; return nil }

// fakeImages answers List and Prune.
type fakeImages struct {
	list     []*imagesv1.ImageSummary
	pruneReq *imagesv1.PruneRequest
}

func (f *fakeImages) List(context.Context, *imagesv1.ListRequest) (*imagesv1.ListResponse, error) {
	return &imagesv1.ListResponse{Images: f.list}, nil
}

func (f *fakeImages) Prune(_ context.Context, req *imagesv1.PruneRequest) (*imagesv1.PruneResponse, error) {
	f.pruneReq = req
	return &imagesv1.PruneResponse{
		Items:          []*imagesv1.RemovedItem{{Untagged: "busybox:old"}, {Deleted: "sha256:aaaa"}},
		SpaceReclaimed: 1234,
	}, nil
}

// serve serves the services on a socket in a temporary directory and
// returns a client connected to it.
func serve(t *testing.T, sys server.SystemConfig, broker *events.Broker) *client.Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "berthd.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	calls := server.NewCalls()
	srv, err := ttrpc.NewServer(ttrpc.WithUnaryServerInterceptor(calls.Unary))
	if err != nil {
		t.Fatal(err)
	}
	server.Register(srv, calls, server.Services{System: server.NewSystem(sys), Events: server.NewEvents(broker)})
	go srv.Serve(context.Background(), l)
	t.Cleanup(func() { srv.Close() })
	c, err := client.New(context.Background(), "unix://"+sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestSystem(t *testing.T) {
	ctx := context.Background()
	store := &fakeStore{fakeSnapshotter{
		infos: []snapshotter.Info{
			{Name: "layer1", Kind: snapshotter.KindCommitted},
			{Name: "layer2", Kind: snapshotter.KindCommitted},
			{Name: "rw", Kind: snapshotter.KindActive},
		},
		sizes: map[string]int64{"layer1": 1000, "layer2": 500, "rw": 99999},
	}}
	imgs := &fakeImages{list: []*imagesv1.ImageSummary{{Id: "sha256:1", Size: 1500}}}
	c := serve(t, server.SystemConfig{ID: "ID1", Root: "/r", State: "/s", Snapshots: store, Images: imgs,
		InsecureRegistries: []string{"127.0.0.0/8"}}, events.NewBroker())

	v, err := c.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v.GetApiVersion() != version.APIVersion || v.GetGoVersion() == "" || len(v.GetComponents()) != 2 || v.GetComponents()[1].GetVersion() != "v-test" {
		t.Errorf("version: %v", v)
	}

	in, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if in.GetId() != "ID1" || in.GetRootDir() != "/r" || in.GetStateDir() != "/s" || in.GetImages() != 1 || in.GetDriver() != "overlay" || in.GetNcpu() < 1 || in.GetMemTotal() <= 0 {
		t.Errorf("info: %v", in)
	}
	var snaps string
	for _, kv := range in.GetDriverStatus() {
		if kv.GetKey() == "Snapshots" {
			snaps = kv.GetValue()
		}
	}
	if snaps != "3" {
		t.Errorf("info driver status Snapshots = %q, want 3", snaps)
	}

	du, err := c.DiskUsage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Only the committed snapshots are image layers.
	if du.GetImages().GetSize() != 1500 || du.GetImages().GetTotal() != 1 || du.GetImages().GetReclaimable() != 1500 {
		t.Errorf("disk usage: %v", du)
	}

	pr, err := c.SystemPrune(ctx, &systemv1.PruneRequest{All: true, Filters: []string{"until=24h"}})
	if err != nil {
		t.Fatal(err)
	}
	if pr.GetSpaceReclaimed() != 1234 || len(pr.GetImagesRemoved()) != 2 || store.cleanups != 1 || !imgs.pruneReq.GetAll() {
		t.Errorf("prune: %v (cleanups %d, images asked %v)", pr, store.cleanups, imgs.pruneReq)
	}
}

// TestErrorKindsOverTheWire checks that an errdefs kind returned by a
// handler arrives as the same kind, with the message docker would print.
func TestErrorKindsOverTheWire(t *testing.T) {
	ctx := context.Background()
	c := serve(t, server.SystemConfig{Snapshots: &fakeStore{}}, events.NewBroker())

	_, err := c.SystemPrune(ctx, &systemv1.PruneRequest{Filters: []string{"bogus=1"}})
	if !errdefs.IsInvalidArgument(err) {
		t.Fatalf("prune with a bad filter: %v, want invalid argument", err)
	}
	var re *client.ResponseError
	if !errors.As(err, &re) || err.Error() != "Error response from daemon: invalid filter 'bogus'" {
		t.Errorf("message = %q", err)
	}

	_, err = c.SystemPrune(ctx, &systemv1.PruneRequest{Filters: []string{"until=yesterday"}})
	if !errdefs.IsInvalidArgument(err) {
		t.Errorf("prune until=yesterday: %v, want invalid argument", err)
	}

	s, err := c.Events(ctx, &eventsv1.SubscribeRequest{Filters: []string{"network=x"}})
	if err == nil {
		_, err = s.Recv()
	}
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "invalid filter 'network'") {
		t.Errorf("events with a bad filter: %v, want invalid argument", err)
	}

	// Images are not served: Unimplemented, as NotImplemented.
	_, err = c.Images().List(ctx, &imagesv1.ListRequest{})
	if !errdefs.IsNotImplemented(err) {
		t.Errorf("images list without an image service: %v, want not implemented", err)
	}
}

func TestEventsStream(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	broker := events.NewBroker()
	c := serve(t, server.SystemConfig{Snapshots: &fakeStore{}}, broker)

	t0 := time.Now()
	broker.Publish(ctx, events.Event{Type: events.TypeImage, Action: events.ActionTag, Actor: events.Actor{ID: "a"}})
	broker.Publish(ctx, events.Event{Type: events.TypeSnapshotter, Action: events.ActionDie, Actor: events.Actor{ID: "s"}})

	// since t0 replays what happened before the subscription; the filter
	// keeps the image one; new ones follow.
	s, err := c.Events(ctx, &eventsv1.SubscribeRequest{Filters: []string{"type=image"}, Since: timestamppb.New(t0)})
	if err != nil {
		t.Fatal(err)
	}
	e, err := s.Recv()
	if err != nil || e.GetAction() != "tag" || e.GetActor().GetId() != "a" {
		t.Fatalf("replayed: %v, %v", e, err)
	}
	broker.Publish(ctx, events.Event{Type: events.TypeImage, Action: events.ActionPull, Actor: events.Actor{ID: "b", Attributes: map[string]string{"name": "b"}}})
	e, err = s.Recv()
	if err != nil || e.GetAction() != "pull" || e.GetActor().GetAttributes()["name"] != "b" {
		t.Fatalf("live: %v, %v", e, err)
	}

	// until in the past: the replay up to it, then the end of the stream.
	s2, err := c.Events(ctx, &eventsv1.SubscribeRequest{Since: timestamppb.New(t0), Until: timestamppb.Now()})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		e, err := s2.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e.GetAction())
	}
	if strings.Join(got, ",") != "tag,die,pull" {
		t.Errorf("since..until = %v, want tag,die,pull", got)
	}

	// The broker closing (the daemon shutting down) ends a subscription
	// with Unavailable.
	broker.Close()
	if _, err := s.Recv(); !errdefs.IsUnavailable(err) {
		t.Errorf("after the broker closed: %v, want unavailable", err)
	}
}
