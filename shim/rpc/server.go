package rpc

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berth-project/berth/shim/wire"
)

// Handler serves one method: it gets the request's encoded payload and
// returns the response's.
type Handler func(ctx context.Context, payload []byte) ([]byte, error)

// Server serves unary ttrpc calls.
type Server struct {
	// Activity, if set, is called as each request starts and as it ends.
	Activity func()

	methods map[string]Handler // by "service/method"

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	closed    bool
	active    int           // requests being handled
	drained   chan struct{} // closed when active drops to 0, if Shutdown waits
}

// NewServer makes a server with no services.
func NewServer() *Server {
	return &Server{
		methods:   map[string]Handler{},
		listeners: map[net.Listener]struct{}{},
		conns:     map[net.Conn]struct{}{},
	}
}

// Register serves methods (by name) under service. Register before Serve.
func (s *Server) Register(service string, methods map[string]Handler) {
	for name, h := range methods {
		s.methods[service+"/"+name] = h
	}
}

// ErrClosed is what Serve returns once the server is closed.
var ErrClosed = errors.New("ttrpc server closed")

// Serve accepts connections on l until the server is closed. The contexts
// of requests derive from ctx and end with their connection.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of descriptors, say: wait, as net/http does.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		if !s.track(c) {
			c.Close()
			return ErrClosed
		}
		go s.serveConn(ctx, c)
	}
}

func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

// conn is a connection's write side, shared by its requests' handlers.
type conn struct {
	net.Conn
	mu sync.Mutex
}

func (c *conn) respond(stream uint32, r *wire.Response) {
	f := frame(stream, typeResponse, wire.EncodeResponse(r))
	c.mu.Lock()
	defer c.mu.Unlock()
	// A failed write ends the connection: the reader sees it closed.
	if _, err := c.Write(f); err != nil {
		c.Close()
	}
}

// serveConn reads frames until the connection ends and handles each
// request in a goroutine of its own: a Wait may take the container's life.
func (s *Server) serveConn(ctx context.Context, nc net.Conn) {
	ctx, cancel := context.WithCancel(ctx)
	c := &conn{Conn: nc}
	defer func() {
		cancel() // ends the requests still waiting
		c.Close()
		s.mu.Lock()
		delete(s.conns, nc)
		s.mu.Unlock()
	}()
	var hb [headerLength]byte
	for {
		h, p, err := readFrame(c, &hb)
		if errors.Is(err, errTooLarge) {
			if h.typ == typeRequest {
				c.respond(h.stream, &wire.Response{Code: CodeResourceExhausted,
					Message: "message of " + strconv.FormatUint(uint64(h.length), 10) + " bytes exceeds the maximum of " + strconv.Itoa(MaxMessage)})
			}
			continue
		}
		if err != nil {
			return
		}
		if h.typ != typeRequest {
			continue // data for streams, which no method here has
		}
		if h.stream%2 != 1 {
			c.respond(h.stream, &wire.Response{Code: CodeInvalidArgument, Message: "stream id must be odd for client-initiated streams"})
			continue
		}
		s.begin()
		go func() {
			defer s.end()
			c.respond(h.stream, s.call(ctx, p))
		}()
	}
}

// call handles one request frame.
func (s *Server) call(ctx context.Context, p []byte) *wire.Response {
	req, err := wire.DecodeRequest(p)
	if err != nil {
		return &wire.Response{Code: CodeInvalidArgument, Message: "bad request frame: " + err.Error()}
	}
	h, ok := s.methods[req.Service+"/"+req.Method]
	if !ok {
		return &wire.Response{Code: CodeUnimplemented, Message: "service " + req.Service + ": method " + req.Method + " not implemented"}
	}
	if req.TimeoutNano != 0 { // as ttrpc: a negative timeout has expired
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(req.TimeoutNano))
		defer cancel()
	}
	if s.Activity != nil {
		s.Activity()
		defer s.Activity()
	}
	out, err := h(ctx, req.Payload)
	if err != nil {
		code, msg := status(err)
		// A status message is a protobuf string, which must be UTF-8: a
		// runtime's error naming a path that is not would make the client
		// fail to decode the response and lose the code.
		return &wire.Response{Code: code, Message: strings.ToValidUTF8(msg, "\uFFFD")}
	}
	return &wire.Response{Payload: out}
}

// Shutdown stops accepting connections, lets the requests being handled
// finish until ctx ends, then closes every connection.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
	var drained chan struct{}
	if s.active > 0 {
		s.drained = make(chan struct{})
		drained = s.drained
	}
	s.mu.Unlock()
	if drained != nil {
		select {
		case <-drained:
		case <-ctx.Done():
		}
	}
	return s.Close()
}

func (s *Server) begin() {
	s.mu.Lock()
	s.active++
	s.mu.Unlock()
}

func (s *Server) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active--; s.active == 0 && s.drained != nil {
		close(s.drained)
		s.drained = nil
	}
}

// Close stops the server at once: listeners and connections are closed and
// the requests' contexts end.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	return nil
}
