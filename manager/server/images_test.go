package server_test

import (
	"archive/tar"
	"bytes"
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

	"github.com/berth-project/berth/manager/client"
	"github.com/berth-project/berth/manager/events"
	"github.com/berth-project/berth/manager/images"
	"github.com/berth-project/berth/manager/server"
	imagesv1 "github.com/berth-project/berth/proto/services/images/v1"
	"github.com/berth-project/berth/snapshotter/native"
)

// serveImages serves the image service over a native snapshot store in a
// temporary directory, its events on broker.
func serveImages(t *testing.T, broker *events.Broker) *client.Client {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	sn, err := native.New(ctx, filepath.Join(dir, "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sn.Close() })
	svc, err := images.Open(ctx, images.Config{Root: filepath.Join(dir, "images"), Snapshotter: sn, Events: server.ImageEvents(broker)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
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
	server.Register(srv, calls, server.Services{
		System: server.NewSystem(server.SystemConfig{Snapshots: &fakeStore{}}),
		Events: server.NewEvents(broker),
		Images: server.NewImages(svc, "native"),
	})
	go srv.Serve(ctx, l)
	t.Cleanup(func() { srv.Close() })
	c, err := client.New(ctx, "unix://"+sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func rootfsTar(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	body := []byte("hello\n")
	if err := tw.WriteHeader(&tar.Header{Name: "hello", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg, ModTime: time.Unix(1, 0)}); err != nil {
		t.Fatal(err)
	}
	tw.Write(body)
	tw.Close()
	return buf.Bytes()
}

// importStream sends opts and data through Import.
func importStream(t *testing.T, c *client.Client, opts *imagesv1.ImportOptions, data []byte) (*imagesv1.ImportResponse, error) {
	t.Helper()
	s, err := c.Images().Import(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&imagesv1.ImportRequest{Payload: &imagesv1.ImportRequest_Options{Options: opts}}); err != nil {
		t.Fatal(err)
	}
	for len(data) > 0 {
		n := min(len(data), 1000)
		if err := s.Send(&imagesv1.ImportRequest{Payload: &imagesv1.ImportRequest_Data{Data: data[:n]}}); err != nil {
			break
		}
		data = data[n:]
	}
	resp, err := s.CloseAndRecv()
	return resp, c.Error(err)
}

func TestImagesService(t *testing.T) {
	ctx := context.Background()
	broker := events.NewBroker()
	c := serveImages(t, broker)
	sub := broker.Subscribe(events.Filter{}, time.Time{})
	defer sub.Close()

	resp, err := importStream(t, c, &imagesv1.ImportOptions{Kind: imagesv1.ImportKind_IMPORT_KIND_ROOTFS, Reference: "app:v1", Changes: []string{`CMD ["/hello"]`}}, rootfsTar(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetImages()) != 1 || !strings.HasPrefix(resp.GetImages()[0].GetId(), "sha256:") {
		t.Fatalf("import: %v", resp)
	}
	id := resp.GetImages()[0].GetId()

	if _, err := c.Images().Tag(ctx, &imagesv1.TagRequest{Source: "app:v1", Target: "127.0.0.1:5000/app:v2"}); err != nil {
		t.Fatal(err)
	}
	list, err := c.Images().List(ctx, &imagesv1.ListRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetImages()) != 1 || list.GetImages()[0].GetId() != id || len(list.GetImages()[0].GetRepoTags()) != 2 {
		t.Fatalf("list: %v", list)
	}
	list, err = c.Images().List(ctx, &imagesv1.ListRequest{Filters: []string{"reference=127.0.0.1:5000/*"}})
	if err != nil || len(list.GetImages()) != 1 {
		t.Errorf("list reference=: %v %v", list, err)
	}
	list, err = c.Images().List(ctx, &imagesv1.ListRequest{Filters: []string{"dangling=true"}})
	if err != nil || len(list.GetImages()) != 0 {
		t.Errorf("list dangling=true: %v %v", list, err)
	}
	if _, err := c.Images().List(ctx, &imagesv1.ListRequest{Filters: []string{"bogus=1"}}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("unknown filter: %v", err)
	}

	got, err := c.Images().Get(ctx, &imagesv1.GetRequest{Name: "app:v1"})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetImage().GetId() != id || strings.Join(got.GetImage().GetConfig().GetCmd(), " ") != "/hello" || got.GetImage().GetStorage().GetDriver() != "native" {
		t.Errorf("get: %v", got)
	}
	hist, err := c.Images().History(ctx, &imagesv1.HistoryRequest{Name: id})
	if err != nil || len(hist.GetEntries()) == 0 {
		t.Errorf("history: %v %v", hist, err)
	}

	// Export, remove, import the archive back.
	es, err := c.Images().Export(ctx, &imagesv1.ExportRequest{Names: []string{"app:v1"}})
	if err != nil {
		t.Fatal(err)
	}
	var archive []byte
	for {
		m, err := es.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(c.Error(err))
		}
		archive = append(archive, m.GetData()...)
	}
	rm, err := c.Images().Remove(ctx, &imagesv1.RemoveRequest{Name: id, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(rm.GetItems()); n < 3 {
		t.Errorf("remove by ID: %v", rm)
	}
	resp, err = importStream(t, c, &imagesv1.ImportOptions{Kind: imagesv1.ImportKind_IMPORT_KIND_ARCHIVE}, archive)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetImages()) != 1 || resp.GetImages()[0].GetName() != "app:v1" {
		t.Errorf("load: %v", resp)
	}
	// A truncated archive: InvalidArgument.
	if _, err := importStream(t, c, &imagesv1.ImportOptions{Kind: imagesv1.ImportKind_IMPORT_KIND_ARCHIVE}, archive[:len(archive)/2]); !errdefs.IsInvalidArgument(err) {
		t.Errorf("truncated archive: %v", err)
	}

	// Errors keep their kinds, worded as docker's.
	for name, call := range map[string]func() error{
		"get":     func() error { _, err := c.Images().Get(ctx, &imagesv1.GetRequest{Name: "nosuch"}); return err },
		"remove":  func() error { _, err := c.Images().Remove(ctx, &imagesv1.RemoveRequest{Name: "nosuch"}); return err },
		"history": func() error { _, err := c.Images().History(ctx, &imagesv1.HistoryRequest{Name: "nosuch"}); return err },
		"tag": func() error {
			_, err := c.Images().Tag(ctx, &imagesv1.TagRequest{Source: "nosuch", Target: "x"})
			return err
		},
	} {
		err := call()
		if !errdefs.IsNotFound(err) || err.Error() != "Error response from daemon: No such image: nosuch" {
			t.Errorf("%s of an unknown image: %v", name, err)
		}
	}
	ps, err := c.Images().Pull(ctx, &imagesv1.PullRequest{Reference: "Bad/Ref"})
	if err == nil {
		_, err = ps.Recv()
		err = c.Error(err)
	}
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "invalid reference format") {
		t.Errorf("pull of a malformed reference: %v", err)
	}

	pr, err := c.Images().Prune(ctx, &imagesv1.PruneRequest{All: true})
	if err != nil || len(pr.GetItems()) == 0 {
		t.Errorf("prune -a: %v %v", pr, err)
	}

	// The library's events reach the broker as docker's image events.
	seen := map[string]bool{}
	for len(sub.C) > 0 {
		e := <-sub.C
		if e.Type == events.TypeImage {
			seen[e.Action+" "+e.Actor.ID] = true
		}
	}
	for _, want := range []string{"import app:v1", "tag 127.0.0.1:5000/app:v2", "load app:v1"} {
		if !seen[want] {
			t.Errorf("no event %q among %v", want, seen)
		}
	}
}
