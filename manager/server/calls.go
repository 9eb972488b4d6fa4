package server

import (
	"context"
	"sync"
	"time"

	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/ttrpc"

	"github.com/berth-project/berth/manager/log"
)

// Calls counts the calls in flight, so that a shutdown can wait for them.
// ttrpc's own Shutdown cannot: it takes a connection whose calls have sent
// nothing yet (a long unary call, an import still receiving, a quiet
// event stream) for idle and closes it under them.
//
// Calls is also where every call's error becomes a status code and every
// call is logged: Unary for unary calls, and stream for the stream
// handlers, which ttrpc gives no interceptor.
type Calls struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n drops to 0
	// activity, when set, is called as each call begins and ends.
	activity func()
}

// OnActivity has f called as each call begins and ends (berthd trims its
// memory after a quiet spell). Set it before serving.
func (c *Calls) OnActivity(f func()) { c.activity = f }

// NewCalls returns a counter with no call in flight.
func NewCalls() *Calls {
	c := &Calls{idle: make(chan struct{})}
	close(c.idle)
	return c
}

func (c *Calls) begin() {
	if c.activity != nil {
		c.activity()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == 0 {
		c.idle = make(chan struct{})
	}
	c.n++
}

func (c *Calls) end() {
	if c.activity != nil {
		c.activity()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n--
	if c.n == 0 {
		close(c.idle)
	}
}

// Wait returns once no call is in flight, or with ctx's error when ctx
// ends first.
func (c *Calls) Wait(ctx context.Context) error {
	for {
		c.mu.Lock()
		n, idle := c.n, c.idle
		c.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-idle:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Unary is the ttrpc interceptor of unary calls: it counts the call,
// converts its error (errdefs kinds to the gRPC codes ttrpc carries) and
// logs it with its method: failures the client caused at debug level, the
// daemon's own at error level.
func (c *Calls) Unary(ctx context.Context, unmarshal ttrpc.Unmarshaler, info *ttrpc.UnaryServerInfo, method ttrpc.Method) (any, error) {
	c.begin()
	defer c.end()
	ctx = log.With(ctx, "method", info.FullMethod)
	start := time.Now()
	resp, err := method(ctx, unmarshal)
	logCall(ctx, start, err)
	return resp, errgrpc.ToGRPC(err)
}

// stream runs a stream handler as Unary runs a unary call.
func (c *Calls) stream(ctx context.Context, method string, handle func(context.Context) error) error {
	c.begin()
	defer c.end()
	ctx = log.With(ctx, "method", method)
	start := time.Now()
	err := handle(ctx)
	logCall(ctx, start, err)
	return errgrpc.ToGRPC(err)
}
