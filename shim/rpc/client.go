package rpc

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/berth-project/berth/shim/wire"
)

// Client makes unary calls on one connection, one call at a time: the
// shim's only client forwards events, in order, one after the other.
type Client struct {
	mu     sync.Mutex
	conn   net.Conn
	stream uint32 // the last stream id used
}

// NewClient calls over conn; Close closes it.
func NewClient(conn net.Conn) *Client { return &Client{conn: conn} }

// Call sends a request and waits for its response, until ctx ends. A
// failed call other than an *Error from the server leaves the connection in
// an unknown state: close the client and dial again.
func (c *Client) Call(ctx context.Context, service, method string, payload []byte, md ...wire.KeyValue) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	req := &wire.Request{Service: service, Method: method, Payload: payload, Metadata: md}
	deadline, ok := ctx.Deadline()
	if ok {
		req.TimeoutNano = int64(time.Until(deadline))
	}
	// The deadline bounds both the write and the wait; cancelling ctx
	// before it wakes the call too.
	if err := c.conn.SetDeadline(deadline); err != nil {
		return nil, err
	}
	woken := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = c.conn.SetDeadline(time.Unix(1, 0))
		close(woken)
	})
	defer func() {
		// A wake-up already under way must land before the next call
		// sets its own deadline.
		if !stop() {
			<-woken
		}
	}()
	if c.stream == 0 {
		c.stream = 1 // clients' streams are odd
	} else {
		c.stream += 2
	}
	id := c.stream
	if _, err := c.conn.Write(frame(id, typeRequest, wire.EncodeRequest(req))); err != nil {
		return nil, c.failed(ctx, err)
	}
	var hb [headerLength]byte
	for {
		h, p, err := readFrame(c.conn, &hb)
		if err != nil {
			return nil, c.failed(ctx, err)
		}
		if h.typ != typeResponse || h.stream != id {
			continue // not ours: a late answer to an abandoned call
		}
		resp, err := wire.DecodeResponse(p)
		if err != nil {
			return nil, fmt.Errorf("%s/%s: bad response: %w", service, method, err)
		}
		if resp.Code != CodeOK {
			return nil, &Error{Code: resp.Code, Message: resp.Message}
		}
		return resp.Payload, nil
	}
}

// failed names what ended a call: ctx, if it did.
func (c *Client) failed(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }
