package server_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/containerd/ttrpc"
	bolt "go.etcd.io/bbolt"

	"github.com/berth-project/berth/manager/client"
	"github.com/berth-project/berth/manager/networks"
	"github.com/berth-project/berth/manager/server"
	networksv1 "github.com/berth-project/berth/proto/services/networks/v1"
)

// serveNetworks serves the network service over a store with stand-in
// plugins (nothing here attaches a container) and returns a client.
func serveNetworks(t *testing.T) (*client.Client, *networks.Store) {
	t.Helper()
	dir := t.TempDir()
	plugins := filepath.Join(dir, "plugins")
	os.Mkdir(plugins, 0o755)
	for _, p := range []string{"bridge", "host-local", "loopback", "portmap"} {
		if err := os.WriteFile(filepath.Join(plugins, p), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	db, err := bolt.Open(filepath.Join(dir, "meta.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	store, err := networks.Open(context.Background(), networks.Config{
		DB: db, PluginDirs: []string{plugins}, StateDir: filepath.Join(dir, "networks"),
		DefaultStateDir: filepath.Join(dir, "network"), Bridge: "bt0", Subnet: "10.99.0.0/16",
	})
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
	networksv1.RegisterNetworksService(srv, server.NewNetworks(store))
	go srv.Serve(context.Background(), l)
	t.Cleanup(func() { srv.Close() })
	c, err := client.New(context.Background(), "unix://"+sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, store
}

func TestNetworks(t *testing.T) {
	ctx := context.Background()
	c, store := serveNetworks(t)
	nets := c.Networks()
	cr, err := nets.Create(ctx, &networksv1.CreateRequest{Name: "web", Subnet: "10.97.0.0/24", Labels: map[string]string{"a": "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(cr.GetId()) != 64 {
		t.Errorf("id %q", cr.GetId())
	}
	got, err := nets.Get(ctx, &networksv1.GetRequest{Name: cr.GetId()[:12]})
	if err != nil {
		t.Fatal(err)
	}
	if n := got.GetNetwork(); n.GetName() != "web" || n.GetIpam().GetConfig()[0].GetGateway() != "10.97.0.1" || n.GetLabels()["a"] != "b" ||
		n.GetOptions()[networks.BridgeNameOption] != "br-"+cr.GetId()[:12] {
		t.Errorf("get %v", n)
	}
	ls, err := nets.List(ctx, &networksv1.ListRequest{Filters: []string{"type=custom"}})
	if err != nil || len(ls.GetNetworks()) != 1 || ls.GetNetworks()[0].GetId() != cr.GetId() {
		t.Errorf("list: %v %v", ls, err)
	}
	ls, err = nets.List(ctx, &networksv1.ListRequest{})
	if err != nil || len(ls.GetNetworks()) != 4 {
		t.Errorf("list all: %v %v", ls, err)
	}

	// Errors keep their kind and docker's words.
	var re *client.ResponseError
	_, err = nets.Create(ctx, &networksv1.CreateRequest{Name: "web"})
	if !errdefs.IsAlreadyExists(err) || !errors.As(err, &re) || err.Error() != "Error response from daemon: network with name web already exists" {
		t.Errorf("create twice: %v", err)
	}
	_, err = nets.Get(ctx, &networksv1.GetRequest{Name: "nope"})
	if !errdefs.IsNotFound(err) || err.Error() != "Error response from daemon: network nope not found" {
		t.Errorf("get missing: %v", err)
	}
	_, err = nets.Remove(ctx, &networksv1.RemoveRequest{Name: "host"})
	if !errdefs.IsPermissionDenied(err) || err.Error() != "Error response from daemon: host is a pre-defined network and cannot be removed" {
		t.Errorf("remove host: %v", err)
	}
	_, err = nets.List(ctx, &networksv1.ListRequest{Filters: []string{"bogus=1"}})
	if !errdefs.IsInvalidArgument(err) || err.Error() != "Error response from daemon: invalid filter 'bogus'" {
		t.Errorf("bad filter: %v", err)
	}

	if err := store.Attached(ctx, "web", "c1"); err != nil {
		t.Fatal(err)
	}
	_, err = nets.Remove(ctx, &networksv1.RemoveRequest{Name: "web"})
	if !errdefs.IsFailedPrecondition(err) || err.Error() != "Error response from daemon: error while removing network: network web id "+cr.GetId()+" has active endpoints" {
		t.Errorf("remove in use: %v", err)
	}
	pr, err := nets.Prune(ctx, &networksv1.PruneRequest{})
	if err != nil || len(pr.GetDeleted()) != 0 {
		t.Errorf("prune of a network in use: %v %v", pr, err)
	}
	if err := store.Detached(ctx, "web", "c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := nets.Create(ctx, &networksv1.CreateRequest{Name: "db", Subnet: "10.97.1.0/24"}); err != nil {
		t.Fatal(err)
	}
	if _, err := nets.Remove(ctx, &networksv1.RemoveRequest{Name: "web"}); err != nil {
		t.Errorf("remove: %v", err)
	}
	pr, err = nets.Prune(ctx, &networksv1.PruneRequest{})
	if err != nil || len(pr.GetDeleted()) != 1 || pr.GetDeleted()[0] != "db" {
		t.Errorf("prune: %v %v", pr, err)
	}
}
