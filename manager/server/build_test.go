package server_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/containerd/ttrpc"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/manager/builder"
	"github.com/berth-project/berth/manager/client"
	"github.com/berth-project/berth/manager/images"
	"github.com/berth-project/berth/manager/server"
	buildv1 "github.com/berth-project/berth/proto/services/build/v1"
)

// buildImages holds one image, "base", and commits config changes.
type buildImages struct {
	builder.Images // the rest is not called
	n              int
}

func (b *buildImages) Get(_ context.Context, ref string) (images.Image, error) {
	if ref == "base" {
		return images.Image{ID: digest.FromString(ref)}, nil
	}
	if strings.HasPrefix(ref, "sha256:") {
		return images.Image{ID: digest.Digest(ref)}, nil
	}
	return images.Image{}, fmt.Errorf("no such image %s: %w", ref, errdefs.ErrNotFound)
}

func (b *buildImages) Commit(_ context.Context, _ string, _ io.Reader, opts images.CommitOptions) (images.Image, error) {
	b.n++
	return images.Image{ID: digest.FromString(fmt.Sprint(b.n)), Config: ocispec.Image{Config: *opts.Config}}, nil
}

func (b *buildImages) Tag(context.Context, string, string) error { return nil }

func (b *buildImages) Remove(context.Context, string, images.RemoveOptions) ([]images.RemoveResult, error) {
	return nil, nil
}

func serveBuild(t *testing.T) *client.Client {
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
	server.RegisterBuild(srv, calls, server.NewBuild(builder.New(&buildImages{}, nil, t.TempDir())))
	go srv.Serve(context.Background(), l)
	t.Cleanup(func() { srv.Close() })
	c, err := client.New(context.Background(), "unix://"+sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// build sends reqs and returns the output, the image ID and the error.
func buildOver(c *client.Client, reqs ...*buildv1.BuildRequest) (string, string, error) {
	s, err := c.Build().Build(context.Background())
	if err != nil {
		return "", "", err
	}
	for _, r := range reqs {
		if err := s.Send(r); err != nil {
			return "", "", c.Error(err)
		}
	}
	if err := s.CloseSend(); err != nil {
		return "", "", err
	}
	var out, id string
	for {
		m, err := s.Recv()
		if err == io.EOF {
			return out, id, nil
		}
		if err != nil {
			return out, id, c.Error(err)
		}
		out += m.GetStream()
		if m.GetImageId() != "" {
			id = m.GetImageId()
		}
	}
}

func TestBuildService(t *testing.T) {
	c := serveBuild(t)
	opts := &buildv1.BuildRequest{Payload: &buildv1.BuildRequest_Options{Options: &buildv1.BuildOptions{
		DockerfileContent: []byte("FROM base\nENV A=b\n"),
		Tags:              []string{"x:y"},
	}}}
	out, id, err := buildOver(c, opts)
	if err != nil || id != digest.FromString("1").String() {
		t.Fatalf("build: %q, %v\n%s", id, err, out)
	}
	if !strings.Contains(out, "Step 2/2 : ENV A=b\n ---> ") || !strings.HasSuffix(out, "Successfully tagged x:y\n") {
		t.Errorf("output:\n%s", out)
	}

	// Errors keep their kinds over the wire.
	_, _, err = buildOver(c, &buildv1.BuildRequest{Payload: &buildv1.BuildRequest_Context{Context: []byte("x")}})
	if !errdefs.IsInvalidArgument(err) {
		t.Errorf("context first: %v, want InvalidArgument", err)
	}
	opts.GetOptions().DockerfileContent = []byte("FROM missing\n")
	if _, _, err = buildOver(c, opts); !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "pull it first") {
		t.Errorf("FROM missing: %v, want NotFound", err)
	}
	// A context that is not a tar.
	opts.GetOptions().DockerfileContent = nil
	if _, _, err = buildOver(c, opts, &buildv1.BuildRequest{Payload: &buildv1.BuildRequest_Context{Context: []byte(strings.Repeat("not a tar", 100))}}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("a context not a tar: %v, want InvalidArgument", err)
	}
}
