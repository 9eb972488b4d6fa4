package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/containerd/errdefs"
	"github.com/containerd/ttrpc"

	"github.com/berth-project/berth/manager/builder"
	buildv1 "github.com/berth-project/berth/proto/services/build/v1"
)

// Build serves build.v1 over the builder (manager/builder).
type Build struct {
	b *builder.Builder
}

var _ buildv1.BuildService = (*Build)(nil)

// NewBuild returns the build service over b.
func NewBuild(b *builder.Builder) *Build { return &Build{b: b} }

// Build implements buildv1.BuildService: the first message carries the
// options, the others the context tar; the output goes back as it comes,
// the image ID last.
func (s *Build) Build(ctx context.Context, stream buildv1.Build_BuildServer) error {
	first, err := stream.Recv()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("build: no options sent: %w", errdefs.ErrInvalidArgument)
		}
		return err
	}
	o := first.GetOptions()
	if o == nil {
		return fmt.Errorf("build: the first message must carry the options: %w", errdefs.ErrInvalidArgument)
	}
	out := &progressWriter{send: stream.Send}
	opts := builder.Options{
		DockerfilePath: o.GetDockerfile(),
		Tags:           o.GetTags(),
		BuildArgs:      map[string]*string{},
		NoCache:        o.GetNoCache(),
		Remove:         o.GetRemove(),
		ForceRemove:    o.GetForceRemove(),
		NetworkMode:    o.GetNetworkMode(),
		Quiet:          o.GetQuiet(),
		Out:            out,
	}
	for k, v := range o.GetBuildArgs() {
		opts.BuildArgs[k] = &v
	}
	for _, k := range o.GetUnsetBuildArgs() {
		opts.BuildArgs[k] = nil
	}
	// The Dockerfile comes in the options (berth build -, or -f outside
	// the context) or from the context.
	opts.Dockerfile = o.GetDockerfileContent()
	opts.Context = &buildContextReader{stream: stream}
	img, err := s.b.Build(ctx, opts)
	if err != nil {
		return err
	}
	if err := out.err(); err != nil {
		return err
	}
	return stream.Send(&buildv1.BuildProgress{Payload: &buildv1.BuildProgress_ImageId{ImageId: img.ID.String()}})
}

// progressWriter sends what is written as stream messages.
type progressWriter struct {
	mu      sync.Mutex
	send    func(*buildv1.BuildProgress) error
	sendErr error
}

func (w *progressWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sendErr != nil {
		return 0, w.sendErr
	}
	if err := w.send(&buildv1.BuildProgress{Payload: &buildv1.BuildProgress_Stream{Stream: string(p)}}); err != nil {
		w.sendErr = err
		return 0, err
	}
	return len(p), nil
}

func (w *progressWriter) err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sendErr
}

// buildContextReader reads the context's chunks from the stream until the
// client closes its side.
type buildContextReader struct {
	stream buildv1.Build_BuildServer
	buf    []byte
	done   bool
}

func (r *buildContextReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.done {
			return 0, io.EOF
		}
		m, err := r.stream.Recv()
		if errors.Is(err, io.EOF) {
			r.done = true
			return 0, io.EOF
		}
		if err != nil {
			return 0, err
		}
		r.buf = m.GetContext()
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// trackedBuild is the build service as registered: its stream handler
// goes through Calls.stream.
type trackedBuild struct {
	svc   buildv1.BuildService
	calls *Calls
}

func (t *trackedBuild) Build(ctx context.Context, s buildv1.Build_BuildServer) error {
	return t.calls.stream(ctx, "/berth.services.build.v1.Build/Build", func(ctx context.Context) error { return t.svc.Build(ctx, s) })
}

// RegisterBuild registers the build service on srv, its stream handler
// counted, converted and logged by calls (Register's wiring).
func RegisterBuild(srv *ttrpc.Server, calls *Calls, svc buildv1.BuildService) {
	buildv1.RegisterBuildService(srv, &trackedBuild{svc, calls})
}
