// Package client is the client side of berth's API, used by the berth
// command line: it connects to berthd's socket and turns what goes wrong
// into errors a user can act on: a daemon that is not running says so and
// how to start it, and the daemon's own errors read as docker's "Error
// response from daemon: ..." while keeping their errdefs kind for the exit
// code.
package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/berth-project/berth/manager/host"
	buildv1 "github.com/berth-project/berth/proto/services/build/v1"
	containersv1 "github.com/berth-project/berth/proto/services/containers/v1"
	eventsv1 "github.com/berth-project/berth/proto/services/events/v1"
	imagesv1 "github.com/berth-project/berth/proto/services/images/v1"
	networksv1 "github.com/berth-project/berth/proto/services/networks/v1"
	systemv1 "github.com/berth-project/berth/proto/services/system/v1"
	volumesv1 "github.com/berth-project/berth/proto/services/volumes/v1"
)

// Client is a connection to berthd.
type Client struct {
	addr   string
	tc     *ttrpc.Client
	system systemv1.SystemService
	events eventsv1.EventsClient
	images imagesv1.ImagesClient
	ctrs   containersv1.ContainersClient
	vols   volumesv1.VolumesService
	nets   networksv1.NetworksService
	build  buildv1.BuildClient
}

// New connects to the daemon at addr ("unix:///run/berth/berthd.sock").
// When nothing serves there the error is a *ConnectError.
func New(ctx context.Context, addr string) (*Client, error) {
	path, err := host.Parse(addr)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, &ConnectError{Addr: addr, Err: err}
	}
	c := &Client{addr: addr}
	// Every unary call's error is converted here. ttrpc turns a failed
	// response's status into an error only after the interceptors, so the
	// status is read from the response.
	c.tc = ttrpc.NewClient(conn, ttrpc.WithUnaryClientInterceptor(
		func(ctx context.Context, req *ttrpc.Request, resp *ttrpc.Response, _ *ttrpc.UnaryClientInfo, invoke ttrpc.Invoker) error {
			if err := invoke(ctx, req, resp); err != nil {
				return c.fromWire(err)
			}
			if st := resp.GetStatus(); st != nil && codes.Code(st.GetCode()) != codes.OK {
				return c.fromWire(status.ErrorProto(st))
			}
			return nil
		}))
	c.system = systemv1.NewSystemClient(c.tc)
	c.events = eventsv1.NewEventsClient(c.tc)
	c.images = imagesv1.NewImagesClient(c.tc)
	c.ctrs = containersv1.NewContainersClient(c.tc)
	c.vols = volumesv1.NewVolumesClient(c.tc)
	c.nets = networksv1.NewNetworksClient(c.tc)
	c.build = buildv1.NewBuildClient(c.tc)
	return c, nil
}

// Addr is the address the client is connected to.
func (c *Client) Addr() string { return c.addr }

// Close closes the connection.
func (c *Client) Close() error { return c.tc.Close() }

// Version asks the daemon for its version.
func (c *Client) Version(ctx context.Context) (*systemv1.VersionResponse, error) {
	return c.system.Version(ctx, &emptypb.Empty{})
}

// Info asks the daemon what `berth info` shows.
func (c *Client) Info(ctx context.Context) (*systemv1.InfoResponse, error) {
	return c.system.Info(ctx, &emptypb.Empty{})
}

// DiskUsage asks the daemon what `berth system df` shows.
func (c *Client) DiskUsage(ctx context.Context) (*systemv1.DiskUsageResponse, error) {
	return c.system.DiskUsage(ctx, &systemv1.DiskUsageRequest{})
}

// SystemPrune asks the daemon to remove what nothing uses.
func (c *Client) SystemPrune(ctx context.Context, req *systemv1.PruneRequest) (*systemv1.PruneResponse, error) {
	return c.system.Prune(ctx, req)
}

// Images is the image service. Errors of its unary calls are converted
// as the client's own are; pass those of stream calls (Recv, Send)
// through Error.
func (c *Client) Images() imagesv1.ImagesClient { return c.images }

// Containers is the container service. Errors of its unary calls are
// converted as the client's own are; pass those of stream calls (Recv,
// Send) through Error.
func (c *Client) Containers() containersv1.ContainersClient { return c.ctrs }

// Volumes is the volume service; its calls are all unary, their errors
// converted as the client's own are.
func (c *Client) Volumes() volumesv1.VolumesService { return c.vols }

// Networks is the network service. Errors of its calls are converted as
// the client's own are.
func (c *Client) Networks() networksv1.NetworksService { return c.nets }

// Build is the build service; its only call is a stream: pass the
// errors of Send and Recv through Error.
func (c *Client) Build() buildv1.BuildClient { return c.build }

// EventStream is a subscription to the daemon's events.
type EventStream struct {
	c      *Client
	stream eventsv1.Events_SubscribeClient
}

// Events subscribes to the daemon's events.
func (c *Client) Events(ctx context.Context, req *eventsv1.SubscribeRequest) (*EventStream, error) {
	s, err := c.events.Subscribe(ctx, req)
	if err != nil {
		return nil, c.fromWire(err)
	}
	return &EventStream{c: c, stream: s}, nil
}

// Recv returns the next event, or io.EOF when the stream ends (at its
// until time).
func (s *EventStream) Recv() (*eventsv1.Event, error) {
	e, err := s.stream.Recv()
	if err != nil {
		return nil, s.c.Error(err)
	}
	return e, nil
}

// Error converts an error of a stream call as unary calls' errors are
// converted; io.EOF, the end of a stream, stays io.EOF.
func (c *Client) Error(err error) error {
	if err == io.EOF {
		return err
	}
	return c.fromWire(err)
}

func (c *Client) fromWire(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ttrpc.ErrClosed) {
		return fmt.Errorf("the berth daemon at %s closed the connection (did it stop?): %w", c.addr, errdefs.ErrUnavailable)
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	native := errgrpc.ToNative(err)
	msg := st.Message()
	if kind := errdefs.Resolve(native); kind != nil {
		msg = strings.TrimSuffix(msg, ": "+kind.Error())
	}
	return &ResponseError{Msg: msg, Err: native}
}

// ResponseError is an error the daemon answered with.
type ResponseError struct {
	Msg string // the daemon's message, without the kind
	Err error  // the error with its errdefs kind
}

func (e *ResponseError) Error() string { return "Error response from daemon: " + e.Msg }
func (e *ResponseError) Unwrap() error { return e.Err }

// ConnectError is the failure to reach the daemon.
type ConnectError struct {
	Addr string
	Err  error
}

// NotRunning tells whether nothing serves the socket (it is missing, or
// refuses connections), rather than the socket refusing this user.
func (e *ConnectError) NotRunning() bool {
	return errors.Is(e.Err, syscall.ENOENT) || errors.Is(e.Err, syscall.ECONNREFUSED)
}

func (e *ConnectError) Error() string {
	switch {
	case e.NotRunning():
		return fmt.Sprintf("Cannot connect to the berth daemon at %s. Is berthd running? Start it with `berthd &` or `systemctl start berthd`", e.Addr)
	case errors.Is(e.Err, syscall.EACCES):
		return fmt.Sprintf("permission denied while trying to connect to the berth daemon socket at %s: %v (run as root, or as a member of the group berthd was given with --group)", e.Addr, e.Err)
	}
	return fmt.Sprintf("cannot connect to the berth daemon at %s: %v", e.Addr, e.Err)
}

// Unwrap gives the cause; the kind is errdefs.ErrUnavailable.
func (e *ConnectError) Unwrap() []error { return []error{e.Err, errdefs.ErrUnavailable} }
