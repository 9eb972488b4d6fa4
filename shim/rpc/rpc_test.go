package rpc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	eventsapi "github.com/containerd/containerd/api/services/ttrpc/events/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/berth-project/berth/shim/wire"
)

// serve starts a server with methods under service "s" and returns a
// connection to it; everything ends with the test.
func serve(t *testing.T, methods map[string]Handler) (*Server, net.Conn) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer()
	srv.Register("s", methods)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), l) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-served; !errors.Is(err, ErrClosed) {
			t.Errorf("Serve returned %v, want ErrClosed", err)
		}
	})
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return srv, conn
}

func TestCallsAndErrors(t *testing.T) {
	_, conn := serve(t, map[string]Handler{
		"Echo": func(ctx context.Context, p []byte) ([]byte, error) { return append([]byte("echo:"), p...), nil },
		"Missing": func(ctx context.Context, p []byte) ([]byte, error) {
			return nil, fmt.Errorf("container %s: %w", p, errdefs.ErrNotFound)
		},
		"Plain": func(ctx context.Context, p []byte) ([]byte, error) { return nil, errors.New("plain") },
		"Deadline": func(ctx context.Context, p []byte) ([]byte, error) {
			_, ok := ctx.Deadline()
			return fmt.Appendf(nil, "%v", ok), nil
		},
	})
	c := NewClient(conn)
	ctx := context.Background()
	for range 3 { // several calls on one connection
		out, err := c.Call(ctx, "s", "Echo", []byte("hi"))
		if err != nil || string(out) != "echo:hi" {
			t.Fatalf("Echo: %q, %v", out, err)
		}
	}
	_, err := c.Call(ctx, "s", "Missing", []byte("c1"))
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeNotFound || e.Message != "container c1: not found" || !errdefs.IsNotFound(err) {
		t.Errorf("Missing: %v, want code NotFound, errdefs not found", err)
	}
	if _, err := c.Call(ctx, "s", "Plain", nil); !errors.As(err, &e) || e.Code != CodeUnknown || e.Message != "plain" {
		t.Errorf("Plain: %v, want code Unknown", err)
	}
	if _, err := c.Call(ctx, "s", "Nope", nil); !errors.As(err, &e) || e.Code != CodeUnimplemented || !errdefs.IsNotImplemented(err) {
		t.Errorf("unknown method: %v, want Unimplemented", err)
	}
	if _, err := c.Call(ctx, "other", "Echo", nil); !errors.As(err, &e) || e.Code != CodeUnimplemented {
		t.Errorf("unknown service: %v, want Unimplemented", err)
	}
	if out, err := c.Call(ctx, "s", "Deadline", nil); err != nil || string(out) != "false" {
		t.Errorf("without a timeout the handler saw a deadline: %q, %v", out, err)
	}
	tctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if out, err := c.Call(tctx, "s", "Deadline", nil); err != nil || string(out) != "true" {
		t.Errorf("the request's timeout did not reach the handler: %q, %v", out, err)
	}
}

// TestBadFrames: a frame over the limit, an even stream id and a request
// that cannot be decoded are answered with errors, and the connection goes
// on serving.
func TestBadFrames(t *testing.T) {
	_, conn := serve(t, map[string]Handler{
		"Echo": func(ctx context.Context, p []byte) ([]byte, error) { return p, nil },
		"Expired": func(ctx context.Context, p []byte) ([]byte, error) {
			if _, ok := ctx.Deadline(); !ok {
				return nil, errors.New("no deadline")
			}
			<-ctx.Done()
			return nil, ctx.Err()
		},
	})
	huge := frame(1, typeRequest, make([]byte, MaxMessage+1))
	if _, err := conn.Write(huge); err != nil {
		t.Fatal(err)
	}
	expect := func(stream uint32, code int32) {
		t.Helper()
		var hb [headerLength]byte
		h, p, err := readFrame(conn, &hb)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := wire.DecodeResponse(p)
		if err != nil {
			t.Fatal(err)
		}
		if h.stream != stream || h.typ != typeResponse || resp.Code != code {
			t.Fatalf("got stream %d type %d code %d (%s), want stream %d code %d", h.stream, h.typ, resp.Code, resp.Message, stream, code)
		}
	}
	expect(1, CodeResourceExhausted)
	if _, err := conn.Write(frame(2, typeRequest, wire.EncodeRequest(&wire.Request{Service: "s", Method: "Echo"}))); err != nil {
		t.Fatal(err)
	}
	expect(2, CodeInvalidArgument)
	if _, err := conn.Write(frame(3, typeRequest, []byte{0xff})); err != nil {
		t.Fatal(err)
	}
	expect(3, CodeInvalidArgument)
	// A negative timeout has expired, as ttrpc has it.
	if _, err := conn.Write(frame(5, typeRequest, wire.EncodeRequest(&wire.Request{Service: "s", Method: "Expired", TimeoutNano: -1}))); err != nil {
		t.Fatal(err)
	}
	expect(5, CodeDeadlineExceeded)
	if out, err := NewClient(conn).Call(context.Background(), "s", "Echo", []byte("ok")); err != nil || string(out) != "ok" {
		t.Errorf("after bad frames: %q, %v", out, err)
	}
}

// TestConnectionEndCancels: a closed connection ends the contexts of its
// requests (a containerd that restarts leaves Waits behind).
func TestConnectionEndCancels(t *testing.T) {
	started, ended := make(chan struct{}), make(chan error, 1)
	_, conn := serve(t, map[string]Handler{
		"Wait": func(ctx context.Context, p []byte) ([]byte, error) {
			close(started)
			<-ctx.Done()
			ended <- ctx.Err()
			return nil, ctx.Err()
		},
	})
	go NewClient(conn).Call(context.Background(), "s", "Wait", nil)
	<-started
	conn.Close()
	if err := <-ended; !errors.Is(err, context.Canceled) {
		t.Errorf("handler's context ended with %v", err)
	}
}

// TestShutdownAnswersFirst: Shutdown lets a call in flight answer, then
// closes the connection.
func TestShutdownAnswersFirst(t *testing.T) {
	release := make(chan struct{})
	srv, conn := serve(t, map[string]Handler{
		"Slow": func(ctx context.Context, p []byte) ([]byte, error) { <-release; return []byte("done"), nil },
	})
	result := make(chan string, 1)
	go func() {
		out, err := NewClient(conn).Call(context.Background(), "s", "Slow", nil)
		result <- fmt.Sprintf("%s %v", out, err)
	}()
	for { // wait until the call is in flight
		srv.mu.Lock()
		n := srv.active
		srv.mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(context.Background()) }()
	close(release)
	if got := <-result; got != "done <nil>" {
		t.Errorf("call in flight during Shutdown: %s", got)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	if _, err := conn.Read(b[:]); err == nil {
		t.Error("connection still open after Shutdown")
	}
}

// TestClientAgainstTTRPC forwards an event to the ttrpc library's server,
// as containerd serves it, with the namespace in the metadata.
func TestClientAgainstTTRPC(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ttrpc.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	eventsapi.RegisterTTRPCEventsService(srv, forwardFunc(func(ctx context.Context, r *eventsapi.ForwardRequest) (*emptypb.Empty, error) {
		md, _ := ttrpc.GetMetadata(ctx)
		_, hasDeadline := ctx.Deadline()
		got <- fmt.Sprintf("%v %s %v", md["containerd-namespace-ttrpc"], r.Envelope.Topic, hasDeadline)
		if r.Envelope.Topic == "/fail" {
			return nil, errgrpc.ToGRPC(fmt.Errorf("refused: %w", errdefs.ErrFailedPrecondition)) // as containerd does
		}
		return &emptypb.Empty{}, nil
	}))
	go srv.Serve(context.Background(), l)
	defer srv.Close()
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(conn)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ns := wire.KeyValue{Key: "containerd-namespace-ttrpc", Value: "ns1"}
	if _, err := c.Call(ctx, "containerd.services.events.ttrpc.v1.Events", "Forward", wire.ForwardRequest(&types.Envelope{Topic: "/tasks/start"}), ns); err != nil {
		t.Fatal(err)
	}
	if g := <-got; g != "[ns1] /tasks/start true" {
		t.Errorf("containerd's side saw %s", g)
	}
	_, err = c.Call(ctx, "containerd.services.events.ttrpc.v1.Events", "Forward", wire.ForwardRequest(&types.Envelope{Topic: "/fail"}), ns)
	<-got
	if !errdefs.IsFailedPrecondition(err) {
		t.Errorf("a refused forward: %v, want failed precondition", err)
	}
}

// TestStatusForTTRPC: what containerd's client (the ttrpc library) reads
// from this server's errors: the codes of plain file system errors, as the
// library's server gives them, and an error whose text is not UTF-8 (a
// runtime naming such a path), which must still arrive as a status.
func TestStatusForTTRPC(t *testing.T) {
	_, conn := serve(t, map[string]Handler{
		"NotUTF8": func(ctx context.Context, p []byte) ([]byte, error) {
			return nil, fmt.Errorf("open /x/\xff: %w", errdefs.ErrNotFound)
		},
		"Missing": func(ctx context.Context, p []byte) ([]byte, error) {
			_, err := os.Open(filepath.Join(t.TempDir(), "nothing"))
			return nil, err
		},
	})
	c := ttrpc.NewClient(conn)
	defer c.Close()
	ctx := context.Background()
	err := c.Call(ctx, "s", "NotUTF8", &emptypb.Empty{}, &emptypb.Empty{})
	if !errdefs.IsNotFound(errgrpc.ToNative(err)) {
		t.Errorf("an error message that is not UTF-8 reached ttrpc's client as %v, want not found", err)
	}
	if err := c.Call(ctx, "s", "Missing", &emptypb.Empty{}, &emptypb.Empty{}); !errdefs.IsNotFound(errgrpc.ToNative(err)) {
		t.Errorf("a missing file: %v, want not found", err)
	}
}

type forwardFunc func(context.Context, *eventsapi.ForwardRequest) (*emptypb.Empty, error)

func (f forwardFunc) Forward(ctx context.Context, r *eventsapi.ForwardRequest) (*emptypb.Empty, error) {
	return f(ctx, r)
}
