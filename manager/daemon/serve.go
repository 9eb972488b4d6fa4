package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/containerd/ttrpc"

	"github.com/berth-project/berth/internal/memtrim"
	"github.com/berth-project/berth/manager/log"
	"github.com/berth-project/berth/manager/server"
	buildv1 "github.com/berth-project/berth/proto/services/build/v1"
	containersv1 "github.com/berth-project/berth/proto/services/containers/v1"
	imagesv1 "github.com/berth-project/berth/proto/services/images/v1"
	networksv1 "github.com/berth-project/berth/proto/services/networks/v1"
	volumesv1 "github.com/berth-project/berth/proto/services/volumes/v1"
)

// idleTrim is how long berthd waits after the last call before it trims
// its memory.
const idleTrim = 2 * time.Second

// Services are the services cmd/berthd wires in beside the daemon's own
// (system, events).
type Services struct {
	// Images is the image service; nil serves none (its calls answer
	// Unimplemented) and reports no images.
	Images imagesv1.ImagesService
	// Containers is the container service; nil serves none.
	Containers containersv1.ContainersService
	// Volumes is the volume service; nil serves none.
	Volumes volumesv1.VolumesService
	// Networks is the network service; nil serves none.
	Networks networksv1.NetworksService
	// Build is the build service; nil serves none.
	Build buildv1.BuildService
	// Extra registers other APIs' services on the daemon's server (the
	// events shims forward).
	Extra func(*ttrpc.Server)
	// Stopping is called when shutdown begins, before the calls in flight
	// are waited for: it ends those that wait on containers.
	Stopping func()
}

// Serve serves the API on the socket until ctx ends, then shuts down in
// order: it stops accepting connections (the socket goes), ends event
// subscriptions, lets the calls in flight finish (up to the shutdown
// timeout, after which their connections are closed), and returns. Close
// the daemon after. systemd is told when the daemon is ready and when it
// stops.
func (d *Daemon) Serve(ctx context.Context, svc Services) error {
	l, err := listen(d.socket, d.cfg.Group)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", d.cfg.Host, err)
	}
	calls := server.NewCalls()
	// After a quiet spell berthd gives back the pages start-up and the
	// last calls left mapped (see internal/memtrim).
	idle := memtrim.NewIdle(idleTrim)
	calls.OnActivity(idle.Touch)
	idle.Touch()
	srv, err := ttrpc.NewServer(ttrpc.WithUnaryServerInterceptor(calls.Unary))
	if err != nil {
		l.Close()
		return fmt.Errorf("ttrpc server: %w", err)
	}
	sys := server.SystemConfig{
		ID:                 d.id,
		Root:               d.cfg.Root,
		State:              d.cfg.State,
		Debug:              d.cfg.LogLevel == "debug",
		InsecureRegistries: d.InsecureRegistries(),
		Snapshots:          d.snapshots,
	}
	if svc.Images != nil {
		sys.Images = svc.Images
	}
	if svc.Containers != nil {
		sys.Containers = svc.Containers
	}
	server.Register(srv, calls, server.Services{
		System:     server.NewSystem(sys),
		Events:     server.NewEvents(d.broker),
		Images:     svc.Images,
		Containers: svc.Containers,
		Volumes:    svc.Volumes,
		Networks:   svc.Networks,
		Build:      svc.Build,
		Extra:      svc.Extra,
	})

	// Calls are not cancelled by the signal that stops the daemon: the
	// shutdown below lets them finish.
	serveCtx := context.WithoutCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(serveCtx, l) }()
	log.L(ctx).Info("serving", "host", d.cfg.Host, "snapshotter", d.snapshots.Address(), "backend", d.snapshots.Backend())
	if err := sdNotify("READY=1"); err != nil {
		log.L(ctx).Warn("cannot tell systemd the daemon is ready", "error", err)
	}

	serveReturned := false
	select {
	case <-ctx.Done():
		log.L(ctx).Info("shutting down", "reason", context.Cause(ctx))
		err = nil
	case err = <-errc:
		serveReturned = true
		err = fmt.Errorf("serve: %w", err)
		log.L(ctx).Error("the server failed; shutting down", "error", err)
	}
	if nerr := sdNotify("STOPPING=1"); nerr != nil {
		log.L(ctx).Warn("cannot tell systemd the daemon is stopping", "error", nerr)
	}
	// Stop accepting: closing the listener also removes the socket, so a
	// client sees at once that the daemon is going.
	l.Close()
	// Subscriptions never finish by themselves: end them, then wait for
	// the calls in flight.
	d.broker.Close()
	if svc.Stopping != nil {
		svc.Stopping()
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.ShutdownTimeout)
	defer cancel()
	if werr := calls.Wait(sctx); werr != nil {
		log.L(ctx).Warn("calls still in flight after the shutdown timeout; closing their connections", "timeout", d.cfg.ShutdownTimeout)
	}
	// Every call has answered: what Shutdown finds are idle connections.
	if serr := srv.Shutdown(sctx); serr != nil {
		log.L(ctx).Debug("shutdown", "error", serr)
	}
	srv.Close()
	if !serveReturned {
		// Serve returns the Accept error of the closed listener, which is
		// no failure.
		<-errc
	}
	return err
}
