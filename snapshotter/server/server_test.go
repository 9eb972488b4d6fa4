package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/errdefs"
	"github.com/containerd/ttrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/berth-project/berth/snapshotter"
	"github.com/berth-project/berth/snapshotter/filter"
	"github.com/berth-project/berth/snapshotter/proxy"
	"github.com/berth-project/berth/snapshotter/server"
)

// fake is a store that answers from a list of infos and records the
// options and field paths it is given.
type fake struct {
	infos      []snapshotter.Info
	err        error // returned by every call but Walk
	lastInfo   snapshotter.Info
	fieldpaths []string
}

func (f *fake) opts(opts []snapshotter.Opt) error {
	f.lastInfo = snapshotter.Info{}
	for _, o := range opts {
		if err := o(&f.lastInfo); err != nil {
			return err
		}
	}
	return f.err
}

func (f *fake) Stat(ctx context.Context, key string) (snapshotter.Info, error) {
	for _, i := range f.infos {
		if i.Name == key {
			return i, nil
		}
	}
	return snapshotter.Info{}, fmt.Errorf("snapshot %q: %w", key, errdefs.ErrNotFound)
}

func (f *fake) Update(ctx context.Context, info snapshotter.Info, fieldpaths ...string) (snapshotter.Info, error) {
	f.lastInfo, f.fieldpaths = info, fieldpaths
	return info, f.err
}

func (f *fake) Usage(ctx context.Context, key string) (snapshotter.Usage, error) {
	return snapshotter.Usage{Size: 4096, Inodes: 3}, f.err
}

func (f *fake) Mounts(ctx context.Context, key string) ([]snapshotter.Mount, error) {
	return []snapshotter.Mount{{Type: "bind", Source: "/s/" + key, Target: "sub", Options: []string{"ro", "rbind"}}}, f.err
}

func (f *fake) Prepare(ctx context.Context, key, parent string, opts ...snapshotter.Opt) ([]snapshotter.Mount, error) {
	if err := f.opts(opts); err != nil {
		return nil, err
	}
	return f.Mounts(ctx, key)
}

func (f *fake) View(ctx context.Context, key, parent string, opts ...snapshotter.Opt) ([]snapshotter.Mount, error) {
	return f.Prepare(ctx, key, parent, opts...)
}

func (f *fake) Commit(ctx context.Context, name, key string, opts ...snapshotter.Opt) error {
	return f.opts(opts)
}

func (f *fake) Remove(ctx context.Context, key string) error { return f.err }
func (f *fake) Cleanup(ctx context.Context) error            { return f.err }
func (f *fake) Close() error                                 { return nil }

func (f *fake) Walk(ctx context.Context, fn snapshotter.WalkFunc, filters ...string) error {
	match, err := filter.Parse(filters...)
	if err != nil {
		return err
	}
	for _, i := range f.infos {
		if match(i) {
			if err := fn(ctx, i); err != nil {
				return err
			}
		}
	}
	return nil
}

// listen returns a unix socket in a short temp dir (a socket path must fit
// in 108 bytes).
func listen(t *testing.T) (net.Listener, string) {
	dir, err := os.MkdirTemp("", "berth-server-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	return l, sock
}

// clients serves store over both transports and returns a gRPC client and
// a ttrpc client of the API.
func clients(t *testing.T, store snapshotter.Snapshotter) (snapshotsapi.SnapshotsClient, snapshotsapi.TTRPCSnapshotsClient) {
	svc := server.New(store, nil)
	gl, gsock := listen(t)
	g := grpc.NewServer()
	svc.RegisterGRPC(g)
	go g.Serve(gl)
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient("unix://"+gsock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })

	tl, tsock := listen(t)
	ts, err := ttrpc.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	svc.RegisterTTRPC(ts)
	go ts.Serve(context.Background(), tl)
	t.Cleanup(func() { ts.Close() })
	c, err := net.Dial("unix", tsock)
	if err != nil {
		t.Fatal(err)
	}
	tc := ttrpc.NewClient(c)
	t.Cleanup(func() { tc.Close() })
	return snapshotsapi.NewSnapshotsClient(conn), snapshotsapi.NewTTRPCSnapshotsClient(tc)
}

// List sends pages of at most 100 snapshots and about 1 MiB.
func TestListPages(t *testing.T) {
	f := &fake{}
	for i := range 250 {
		f.infos = append(f.infos, snapshotter.Info{Name: fmt.Sprintf("s%03d", i), Kind: snapshotter.KindCommitted})
	}
	// 300 snapshots of 3 labels of 4000 bytes each: 3.6 MB, near the 4 MiB
	// message limit, so pages must split by size too.
	big := strings.Repeat("x", 4000)
	for i := range 300 {
		f.infos = append(f.infos, snapshotter.Info{Name: fmt.Sprintf("big%03d", i), Kind: snapshotter.KindActive,
			Labels: map[string]string{"a": big, "b": big, "c": big}})
	}
	gc, tc := clients(t, f)
	ctx := context.Background()
	for _, tt := range []struct {
		filter    string
		snapshots int
		pages     int
	}{
		{"kind==committed", 250, 3},
		{"kind==active", 300, 4}, // 87 of 12 KB fit in 1 MiB
		{"", 550, 6},
		{"name==none", 0, 0},
	} {
		check := func(transport string, recv func() (*snapshotsapi.ListSnapshotsResponse, error)) {
			t.Helper()
			n, pages := 0, 0
			for {
				resp, err := recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("%s list %q: %v", transport, tt.filter, err)
				}
				pages++
				n += len(resp.Info)
				if len(resp.Info) > 100 || proto.Size(resp) > 1<<20+64<<10 {
					t.Errorf("%s list %q: a page of %d snapshots, %d bytes", transport, tt.filter, len(resp.Info), proto.Size(resp))
				}
			}
			if n != tt.snapshots || pages != tt.pages {
				t.Errorf("%s list %q: %d snapshots in %d pages, want %d in %d", transport, tt.filter, n, pages, tt.snapshots, tt.pages)
			}
		}
		req := &snapshotsapi.ListSnapshotsRequest{Snapshotter: "whatever", Filters: []string{tt.filter}}
		gs, err := gc.List(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		check("grpc", gs.Recv)
		ts, err := tc.List(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		check("ttrpc", ts.Recv)
	}
}

// Errors leave the server as status codes and come back from the proxy
// as the same errdefs kinds, on both transports.
func TestErrorKinds(t *testing.T) {
	f := &fake{}
	gc, tc := clients(t, f)
	ctx := context.Background()
	for _, tt := range []struct {
		err  error
		code codes.Code
	}{
		{errdefs.ErrNotFound, codes.NotFound},
		{errdefs.ErrAlreadyExists, codes.AlreadyExists},
		{errdefs.ErrFailedPrecondition, codes.FailedPrecondition},
		{errdefs.ErrInvalidArgument, codes.InvalidArgument},
		{errdefs.ErrNotImplemented, codes.Unimplemented},
		{errors.New("disk on fire"), codes.Unknown},
	} {
		f.err = fmt.Errorf("snapshot %q: %w", "k", tt.err)
		_, gerr := gc.Remove(ctx, &snapshotsapi.RemoveSnapshotRequest{Key: "k"})
		_, terr := tc.Remove(ctx, &snapshotsapi.RemoveSnapshotRequest{Key: "k"})
		for _, err := range []error{gerr, terr} {
			if st, _ := status.FromError(err); st.Code() != tt.code {
				t.Errorf("%v: code %v, want %v", tt.err, st.Code(), tt.code)
			}
			if !strings.Contains(err.Error(), `snapshot "k"`) {
				t.Errorf("%v: message %q lost the context", tt.err, err)
			}
		}
	}
	// Through the proxy, the kind is back.
	for _, p := range []*proxy.Snapshotter{proxyOf(t, f, "grpc"), proxyOf(t, f, "ttrpc")} {
		f.err = fmt.Errorf("snapshot %q has children: %w", "k", errdefs.ErrFailedPrecondition)
		if err := p.Remove(ctx, "k"); !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "has children") {
			t.Errorf("proxy remove: %v, want failed precondition", err)
		}
		f.err = nil
		if _, err := p.Stat(ctx, "missing"); !errdefs.IsNotFound(err) {
			t.Errorf("proxy stat: %v, want not found", err)
		}
		if err := p.Walk(ctx, func(context.Context, snapshotter.Info) error { return nil }, "kind=="); !errdefs.IsInvalidArgument(err) {
			t.Errorf("proxy walk with a bad filter: %v, want invalid argument", err)
		}
	}
}

// proxyOf serves store over transport and returns a proxy to it.
func proxyOf(t *testing.T, store snapshotter.Snapshotter, transport string) *proxy.Snapshotter {
	svc := server.New(store, nil)
	l, sock := listen(t)
	if transport == "grpc" {
		g := grpc.NewServer()
		svc.RegisterGRPC(g)
		go g.Serve(l)
		t.Cleanup(g.Stop)
		conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return proxy.NewGRPC(conn, proxy.WithName("berth"))
	}
	ts, err := ttrpc.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	svc.RegisterTTRPC(ts)
	go ts.Serve(context.Background(), l)
	t.Cleanup(func() { ts.Close() })
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	tc := ttrpc.NewClient(c)
	t.Cleanup(func() { tc.Close() })
	return proxy.NewTTRPC(tc)
}

// The fields of each call reach the store: labels, the rebase parent of
// Commit, the update mask, mounts and usage.
func TestFields(t *testing.T) {
	ctx := context.Background()
	for _, transport := range []string{"grpc", "ttrpc"} {
		f := &fake{}
		p := proxyOf(t, f, transport)
		labels := map[string]string{"containerd.io/gc.root": "x"}
		ms, err := p.Prepare(ctx, "k", "", snapshotter.WithLabels(labels))
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(ms) != fmt.Sprint([]snapshotter.Mount{{Type: "bind", Source: "/s/k", Target: "sub", Options: []string{"ro", "rbind"}}}) {
			t.Errorf("%s: mounts %v", transport, ms)
		}
		if fmt.Sprint(f.lastInfo.Labels) != fmt.Sprint(labels) {
			t.Errorf("%s: prepare labels %v", transport, f.lastInfo.Labels)
		}
		if err := p.Commit(ctx, "name", "k", snapshotter.WithParent("base")); err != nil {
			t.Fatal(err)
		}
		if f.lastInfo.Parent != "base" {
			t.Errorf("%s: commit did not rebase onto base: %+v", transport, f.lastInfo)
		}
		if err := p.Commit(ctx, "name", "k"); err != nil {
			t.Fatal(err)
		}
		if f.lastInfo.Parent != "" {
			t.Errorf("%s: commit without a parent rebased: %+v", transport, f.lastInfo)
		}
		if _, err := p.Update(ctx, snapshotter.Info{Name: "k", Kind: snapshotter.KindActive, Labels: labels}, "labels.a", "labels.b"); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(f.fieldpaths) != "[labels.a labels.b]" || f.lastInfo.Name != "k" || f.lastInfo.Kind != snapshotter.KindActive {
			t.Errorf("%s: update got %+v %v", transport, f.lastInfo, f.fieldpaths)
		}
		if _, err := p.Update(ctx, snapshotter.Info{Name: "k"}); err != nil || len(f.fieldpaths) != 0 {
			t.Errorf("%s: update without paths got %v, %v", transport, f.fieldpaths, err)
		}
		u, err := p.Usage(ctx, "k")
		if err != nil || u != (snapshotter.Usage{Size: 4096, Inodes: 3}) {
			t.Errorf("%s: usage %+v %v", transport, u, err)
		}
	}
}

// A bad update mask or kind is the client's error.
func TestBadRequest(t *testing.T) {
	gc, _ := clients(t, &fake{})
	_, err := gc.Update(context.Background(), &snapshotsapi.UpdateSnapshotRequest{
		Info:       &snapshotsapi.Info{Name: "k", Kind: snapshotsapi.Kind(9)},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"labels"}},
	})
	if st, _ := status.FromError(err); st.Code() != codes.InvalidArgument {
		t.Errorf("update with kind 9: %v, want InvalidArgument", err)
	}
	_, err = gc.Update(context.Background(), &snapshotsapi.UpdateSnapshotRequest{})
	if st, _ := status.FromError(err); st.Code() != codes.InvalidArgument {
		t.Errorf("update without info: %v, want InvalidArgument", err)
	}
}

// Walk stops when its function fails, and the error is the function's.
func TestWalkStops(t *testing.T) {
	f := &fake{}
	for i := range 300 {
		f.infos = append(f.infos, snapshotter.Info{Name: fmt.Sprint(i), Kind: snapshotter.KindCommitted})
	}
	stop := errors.New("stop")
	for _, transport := range []string{"grpc", "ttrpc"} {
		p := proxyOf(t, f, transport)
		n := 0
		err := p.Walk(context.Background(), func(context.Context, snapshotter.Info) error {
			n++
			if n == 150 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) || n != 150 {
			t.Errorf("%s: walk returned %v after %d calls", transport, err, n)
		}
		// The connection still serves.
		if _, err := p.Stat(context.Background(), "7"); err != nil {
			t.Errorf("%s: stat after a stopped walk: %v", transport, err)
		}
	}
}
