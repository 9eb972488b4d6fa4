package server_test

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/ttrpc"
	bolt "go.etcd.io/bbolt"

	"github.com/berth-project/berth/manager/client"
	"github.com/berth-project/berth/manager/server"
	"github.com/berth-project/berth/manager/volumes"
	volumesv1 "github.com/berth-project/berth/proto/services/volumes/v1"
)

// serveVolumes serves the volume service over a real library, as berthd
// registers it, and returns the library and a client.
func serveVolumes(t *testing.T) (*volumes.Service, *client.Client) {
	t.Helper()
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, "metadata.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	lib, err := volumes.Open(context.Background(), volumes.Config{Root: filepath.Join(dir, "volumes"), DB: db})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "berthd.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	calls := server.NewCalls()
	srv, err := ttrpc.NewServer(ttrpc.WithUnaryServerInterceptor(calls.Unary))
	if err != nil {
		t.Fatal(err)
	}
	volumesv1.RegisterVolumesService(srv, server.NewVolumes(lib))
	go srv.Serve(context.Background(), l)
	t.Cleanup(func() { srv.Close() })
	c, err := client.New(context.Background(), "unix://"+sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return lib, c
}

func TestVolumes(t *testing.T) {
	ctx := t.Context()
	lib, c := serveVolumes(t)
	vc := c.Volumes()

	cr, err := vc.Create(ctx, &volumesv1.CreateRequest{Name: "data", Labels: map[string]string{"a": "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if v := cr.GetVolume(); v.GetName() != "data" || v.GetDriver() != "local" || v.GetScope() != "local" || v.GetLabels()["a"] != "b" || v.GetCreatedAt() == nil {
		t.Errorf("create: %v", v)
	}
	anon, err := vc.Create(ctx, &volumesv1.CreateRequest{})
	if err != nil || len(anon.GetVolume().GetName()) != 64 {
		t.Fatalf("create anonymous: %v %v", anon, err)
	}
	if _, _, _, err := lib.Use(ctx, "data", "c1"); err != nil {
		t.Fatal(err)
	}

	lr, err := vc.List(ctx, &volumesv1.ListRequest{Filters: []string{"dangling=false"}, Size: true})
	if err != nil || len(lr.GetVolumes()) != 1 || lr.GetVolumes()[0].GetUsageData().GetRefCount() != 1 {
		t.Errorf("list dangling=false: %v %v", lr, err)
	}
	gr, err := vc.Get(ctx, &volumesv1.GetRequest{Name: "data"})
	if err != nil || gr.GetVolume().GetMountpoint() == "" || gr.GetVolume().GetUsageData() != nil {
		t.Errorf("get: %v %v", gr, err)
	}

	// The errors arrive with their kinds and docker's messages.
	var re *client.ResponseError
	_, err = vc.Get(ctx, &volumesv1.GetRequest{Name: "nope"})
	if !errdefs.IsNotFound(err) || !errors.As(err, &re) || err.Error() != "Error response from daemon: get nope: no such volume" {
		t.Errorf("get missing: %v", err)
	}
	_, err = vc.Remove(ctx, &volumesv1.RemoveRequest{Name: "data", Force: true})
	if !errdefs.IsFailedPrecondition(err) || err.Error() != "Error response from daemon: remove data: volume is in use - [c1]" {
		t.Errorf("remove in use: %v", err)
	}
	if _, err := vc.Remove(ctx, &volumesv1.RemoveRequest{Name: "nope", Force: true}); err != nil {
		t.Errorf("remove -f missing: %v", err)
	}
	if _, err := vc.List(ctx, &volumesv1.ListRequest{Filters: []string{"bogus=1"}}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("list bad filter: %v", err)
	}
	if _, err := vc.Create(ctx, &volumesv1.CreateRequest{Name: "x", DriverOpts: map[string]string{"type": "tmpfs"}}); !errdefs.IsNotImplemented(err) {
		t.Errorf("create with options: %v", err)
	}

	pr, err := vc.Prune(ctx, &volumesv1.PruneRequest{})
	if err != nil || len(pr.GetDeleted()) != 1 || pr.GetDeleted()[0] != anon.GetVolume().GetName() {
		t.Errorf("prune: %v %v", pr, err)
	}
	if err := lib.Release(ctx, "data", "c1", false); err != nil {
		t.Fatal(err)
	}
	pr, err = vc.Prune(ctx, &volumesv1.PruneRequest{All: true})
	if err != nil || len(pr.GetDeleted()) != 1 || pr.GetDeleted()[0] != "data" {
		t.Errorf("prune all: %v %v", pr, err)
	}
	if _, err := vc.Remove(ctx, &volumesv1.RemoveRequest{Name: "data"}); !errdefs.IsNotFound(err) {
		t.Errorf("remove pruned: %v", err)
	}
}
