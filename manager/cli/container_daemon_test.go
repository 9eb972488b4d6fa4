package cli

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/types/known/emptypb"

	containersv1 "github.com/berth-project/berth/proto/services/containers/v1"
	imagesv1 "github.com/berth-project/berth/proto/services/images/v1"
)

// fakeDaemon serves the container and image services as berthd would
// for one `run`: the image is missing until pulled, the container
// writes on both streams, echoes its stdin and exits 7.
type fakeDaemon struct {
	containersv1.ContainersService

	mu        sync.Mutex
	calls     []string
	pulled    bool
	started   chan struct{}
	startErr  error
	lastStart *containersv1.AttachStart
	create    *containersv1.CreateRequest
}

func (d *fakeDaemon) call(s string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, s)
}

// fakeImages is the image service of a fakeDaemon.
type fakeImages struct {
	imagesv1.ImagesService
	d *fakeDaemon
}

func (f fakeImages) Pull(_ context.Context, req *imagesv1.PullRequest, s imagesv1.Images_PullServer) error {
	d := f.d
	d.call("pull " + req.GetReference())
	d.mu.Lock()
	d.pulled = true
	d.mu.Unlock()
	s.Send(&imagesv1.PullProgress{Event: &imagesv1.PullProgress_Started{Started: &imagesv1.PullStarted{Name: "docker.io/library/busybox:latest"}}})
	return s.Send(&imagesv1.PullProgress{Event: &imagesv1.PullProgress_Done{Done: &imagesv1.PullDone{Name: "docker.io/library/busybox:latest", Digest: "sha256:abc", Updated: true}}})
}

func (d *fakeDaemon) Create(_ context.Context, req *containersv1.CreateRequest) (*containersv1.CreateResponse, error) {
	d.call("create")
	d.mu.Lock()
	defer d.mu.Unlock()
	d.create = req
	if !d.pulled {
		return nil, errgrpc.ToGRPC(fmt.Errorf("no such image: %s: %w", req.GetConfig().GetImage(), errdefs.ErrNotFound))
	}
	return &containersv1.CreateResponse{Id: "c0ffee"}, nil
}

func (d *fakeDaemon) Start(_ context.Context, req *containersv1.StartRequest) (*emptypb.Empty, error) {
	d.call("start " + req.GetId())
	if d.startErr != nil {
		return nil, errgrpc.ToGRPC(d.startErr)
	}
	close(d.started)
	return &emptypb.Empty{}, nil
}

func (d *fakeDaemon) Wait(_ context.Context, req *containersv1.WaitRequest) (*containersv1.WaitResponse, error) {
	d.call("wait " + req.GetCondition())
	return &containersv1.WaitResponse{ExitCode: 7}, nil
}

func (d *fakeDaemon) Attach(_ context.Context, s containersv1.Containers_AttachServer) error {
	first, err := s.Recv()
	if err != nil {
		return err
	}
	d.call("attach")
	d.mu.Lock()
	d.lastStart = first.GetStart()
	d.mu.Unlock()
	send := func(st containersv1.Stream, b []byte) error {
		return s.Send(&containersv1.AttachOutput{Output: &containersv1.AttachOutput_Data{Data: &containersv1.LogEntry{Stream: st, Data: b}}})
	}
	if err := s.Send(&containersv1.AttachOutput{Output: &containersv1.AttachOutput_Attached{Attached: true}}); err != nil {
		return err
	}
	<-d.started
	send(containersv1.Stream_STREAM_STDOUT, []byte("hello\n"))
	send(containersv1.Stream_STREAM_STDERR, []byte("warning\n"))
	if first.GetStart().GetStdin() {
		for {
			in, err := s.Recv()
			if err != nil {
				return err
			}
			if in.GetCloseStdin() {
				break
			}
			send(containersv1.Stream_STREAM_STDOUT, append([]byte("echo:"), in.GetStdin()...))
		}
	}
	return s.Send(&containersv1.AttachOutput{Output: &containersv1.AttachOutput_ExitCode{ExitCode: 7}})
}

func serveFake(t *testing.T, d *fakeDaemon) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "berthd.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ttrpc.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	containersv1.RegisterContainersService(srv, d)
	imagesv1.RegisterImagesService(srv, fakeImages{d: d})
	go srv.Serve(context.Background(), l)
	t.Cleanup(func() { srv.Close() })
	return "unix://" + sock
}

// TestRunAgainstFakeDaemon follows `run -i` through the API: create
// misses the image, the image is pulled as `pull` does (on stderr), the
// container is created again, attached before it starts, its streams
// copied, stdin pumped and closed, and run exits with its code.
func TestRunAgainstFakeDaemon(t *testing.T) {
	d := &fakeDaemon{started: make(chan struct{})}
	var out, errOut bytes.Buffer
	cli := &CLI{In: strings.NewReader("ping"), Out: &out, Err: &errOut, Host: serveFake(t, d)}
	defer cli.Close()
	err := cli.Run(t.Context(), "busybox", []string{"cat"}, RunOptions{CreateOptions: CreateOptions{Interactive: true, Rm: true}})
	if got := ExitCode(err); got != 7 {
		t.Fatalf("run: %v (exit %d), want exit 7", err, got)
	}
	if out.String() != "hello\necho:ping" {
		t.Errorf("stdout %q", out.String())
	}
	wantErr := "Unable to find image 'busybox:latest' locally\nlatest: Pulling from library/busybox\nDigest: sha256:abc\n" +
		"Status: Downloaded newer image for busybox:latest\ndocker.io/library/busybox:latest\nwarning\n"
	if errOut.String() != wantErr {
		t.Errorf("stderr:\n%s\nwant:\n%s", errOut.String(), wantErr)
	}
	want := []string{"create", "pull busybox", "create", "attach", "start c0ffee", "wait removed"}
	if strings.Join(d.calls, ",") != strings.Join(want, ",") {
		t.Errorf("calls %q, want %q", d.calls, want)
	}
	if !d.lastStart.GetStdin() || !d.create.GetConfig().GetStdinOnce() || !d.create.GetConfig().GetAutoRemove() {
		t.Errorf("attach %v, config %v", d.lastStart, d.create.GetConfig())
	}
}

func TestRunDetachedAndStartFailure(t *testing.T) {
	d := &fakeDaemon{started: make(chan struct{}), pulled: true}
	var out, errOut bytes.Buffer
	cli := &CLI{Out: &out, Err: &errOut, Host: serveFake(t, d)}
	defer cli.Close()
	if err := cli.Run(t.Context(), "busybox", nil, RunOptions{Detach: true}); err != nil || out.String() != "c0ffee\n" {
		t.Errorf("run -d: %v %q", err, out.String())
	}
	d2 := &fakeDaemon{started: make(chan struct{}), pulled: true,
		startErr: fmt.Errorf(`exec: "nope": executable file not found in $PATH: %w`, errdefs.ErrUnknown)}
	cli2 := &CLI{Out: &out, Err: &errOut, Host: serveFake(t, d2)}
	defer cli2.Close()
	err := cli2.Run(t.Context(), "busybox", []string{"nope"}, RunOptions{})
	if ExitCode(err) != 127 || !strings.Contains(err.Error(), "executable file not found") {
		t.Errorf("run of a missing command: %v (exit %d)", err, ExitCode(err))
	}
	// --pull never does not pull.
	d3 := &fakeDaemon{started: make(chan struct{})}
	cli3 := &CLI{Out: &out, Err: &errOut, Host: serveFake(t, d3)}
	defer cli3.Close()
	err = cli3.Create(t.Context(), "busybox", nil, CreateOptions{Pull: "never"})
	if ExitCode(err) != 125 || !strings.Contains(err.Error(), "no such image") || len(d3.calls) != 1 {
		t.Errorf("create --pull never: %v (exit %d), calls %q", err, ExitCode(err), d3.calls)
	}
}
