package proxy_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/containerd/ttrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/berth-project/berth/snapshotter"
	"github.com/berth-project/berth/snapshotter/native"
	"github.com/berth-project/berth/snapshotter/overlay"
	"github.com/berth-project/berth/snapshotter/proxy"
	"github.com/berth-project/berth/snapshotter/server"
	"github.com/berth-project/berth/snapshotter/testsuite"
)

// The conformance suite through the socket: each backend served by the
// server in process, used through the proxy, over each transport.
func TestConformance(t *testing.T) {
	backends := []struct {
		name      string
		open      func(context.Context, string) (snapshotter.Snapshotter, error)
		canRebase bool
	}{
		{"overlay", func(ctx context.Context, root string) (snapshotter.Snapshotter, error) { return overlay.New(ctx, root) }, true},
		{"native", func(ctx context.Context, root string) (snapshotter.Snapshotter, error) { return native.New(ctx, root) }, false},
	}
	for _, transport := range []string{"grpc", "ttrpc"} {
		for _, b := range backends {
			t.Run(transport+"/"+b.name, func(t *testing.T) {
				testsuite.Run(t, func(t *testing.T, root string) snapshotter.Snapshotter {
					store, err := b.open(context.Background(), root)
					if err != nil {
						t.Fatal(err)
					}
					return serve(t, transport, store)
				}, testsuite.Options{CanRebase: b.canRebase})
			})
		}
	}
}

// remote is the proxy to a store served in process; closing it stops the
// server and closes the store, so that the suite can reopen the root.
type remote struct {
	*proxy.Snapshotter
	once  sync.Once
	close func() error
	err   error
}

func (r *remote) Close() error {
	r.once.Do(func() { r.err = r.close() })
	return r.err
}

// serve serves store on a unix socket over transport and returns a proxy
// connected to it.
func serve(t *testing.T, transport string, store snapshotter.Snapshotter) snapshotter.Snapshotter {
	t.Helper()
	// Not t.TempDir: a socket path must fit in 108 bytes, and the suite's
	// test names are long.
	dir, err := os.MkdirTemp("", "berth-proxy-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	svc := server.New(store, nil)
	r := &remote{}
	switch transport {
	case "grpc":
		g := grpc.NewServer()
		svc.RegisterGRPC(g)
		go g.Serve(l)
		conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			g.Stop()
			t.Fatal(err)
		}
		r.Snapshotter = proxy.NewGRPC(conn)
		r.close = func() error {
			err := conn.Close()
			g.Stop()
			return errors.Join(err, store.Close())
		}
	case "ttrpc":
		srv, err := ttrpc.NewServer()
		if err != nil {
			t.Fatal(err)
		}
		svc.RegisterTTRPC(srv)
		go srv.Serve(context.Background(), l)
		c, err := net.Dial("unix", sock)
		if err != nil {
			srv.Close()
			t.Fatal(err)
		}
		client := ttrpc.NewClient(c)
		r.Snapshotter = proxy.NewTTRPC(client)
		r.close = func() error {
			err := client.Close()
			return errors.Join(err, srv.Close(), store.Close())
		}
	default:
		t.Fatalf("unknown transport %q", transport)
	}
	t.Cleanup(func() { r.Close() })
	return r
}
