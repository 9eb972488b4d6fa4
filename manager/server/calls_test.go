package server

import (
	"context"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestCallsWait(t *testing.T) {
	c := NewCalls()
	if err := c.Wait(context.Background()); err != nil {
		t.Fatalf("no call in flight: %v", err)
	}
	release := make(chan struct{})
	started := make(chan struct{})
	go c.Unary(context.Background(), nil, &ttrpc.UnaryServerInfo{FullMethod: "/x/Slow"}, func(context.Context, func(any) error) (any, error) {
		close(started)
		<-release
		return nil, nil
	})
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.Wait(ctx); err == nil {
		t.Fatal("Wait returned with a call in flight")
	}
	waited := make(chan error)
	go func() { waited <- c.Wait(context.Background()) }()
	close(release)
	select {
	case err := <-waited:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return once the call ended")
	}
}

func TestCallsConvertErrors(t *testing.T) {
	c := NewCalls()
	_, err := c.Unary(context.Background(), nil, &ttrpc.UnaryServerInfo{FullMethod: "/x/Y"}, func(context.Context, func(any) error) (any, error) {
		return nil, errdefs.ErrNotFound.WithMessage("no such thing")
	})
	if st, ok := status.FromError(err); !ok || st.Code() != codes.NotFound {
		t.Errorf("unary: %v, want NotFound", err)
	}
	err = c.stream(context.Background(), "/x/Z", func(context.Context) error { return errdefs.ErrAlreadyExists })
	if st, ok := status.FromError(err); !ok || st.Code() != codes.AlreadyExists {
		t.Errorf("stream: %v, want AlreadyExists", err)
	}
}
