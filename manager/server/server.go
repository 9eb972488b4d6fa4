// Package server holds berthd's ttrpc services (proto/services): system
// and events here, images from the image library. It is also the one place
// where errors become wire status codes: handlers return errors wrapped
// around errdefs kinds, and Calls converts them on the way out (and counts
// and logs the calls).
package server

import (
	"context"
	"errors"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/ttrpc"

	buildv1 "github.com/berth-project/berth/proto/services/build/v1"
	containersv1 "github.com/berth-project/berth/proto/services/containers/v1"
	eventsv1 "github.com/berth-project/berth/proto/services/events/v1"
	imagesv1 "github.com/berth-project/berth/proto/services/images/v1"
	networksv1 "github.com/berth-project/berth/proto/services/networks/v1"
	systemv1 "github.com/berth-project/berth/proto/services/system/v1"
	volumesv1 "github.com/berth-project/berth/proto/services/volumes/v1"

	"github.com/berth-project/berth/manager/events"
	"github.com/berth-project/berth/manager/log"
)

// Services are the services a daemon serves.
type Services struct {
	System *System
	Events *Events
	// Images is the image service; nil until the image library provides
	// one, and then the calls of images.v1 answer Unimplemented.
	Images imagesv1.ImagesService
	// Containers is the container service; nil serves none.
	Containers containersv1.ContainersService
	// Volumes is the volume service; nil serves none.
	Volumes volumesv1.VolumesService
	// Networks is the network service; nil serves none.
	Networks networksv1.NetworksService
	// Build is the build service; nil serves none.
	Build buildv1.BuildService
	// Extra registers services of other APIs on the same server: the
	// events shims forward (containerd's events service).
	Extra func(*ttrpc.Server)
}

// Register registers the services on srv, their stream handlers
// counted, converted and logged by calls as calls.Unary, which srv must
// have as its interceptor, does for unary ones.
func Register(srv *ttrpc.Server, calls *Calls, s Services) {
	systemv1.RegisterSystemService(srv, s.System)
	eventsv1.RegisterEventsService(srv, &trackedEvents{s.Events, calls})
	if s.Images != nil {
		imagesv1.RegisterImagesService(srv, &trackedImages{s.Images, calls})
	}
	if s.Containers != nil {
		containersv1.RegisterContainersService(srv, &trackedContainers{s.Containers, calls})
	}
	if s.Volumes != nil {
		volumesv1.RegisterVolumesService(srv, s.Volumes) // all unary: Calls.Unary tracks them
	}
	if s.Networks != nil {
		networksv1.RegisterNetworksService(srv, s.Networks) // all unary
	}
	if s.Build != nil {
		RegisterBuild(srv, calls, s.Build)
	}
	if s.Extra != nil {
		s.Extra(srv)
	}
}

func logCall(ctx context.Context, start time.Time, err error) {
	l := log.L(ctx)
	took := time.Since(start).Round(time.Microsecond)
	switch {
	case err == nil:
		l.Debug("call", "took", took)
	case clientCaused(err) || errors.Is(err, events.ErrClosed):
		l.Debug("call failed", "took", took, "error", err)
	default:
		l.Error("call failed", "took", took, "error", err)
	}
}

// clientCaused tells whether err is about the request or the state the
// client asked about rather than a fault of the daemon.
func clientCaused(err error) bool {
	return errdefs.IsInvalidArgument(err) || errdefs.IsNotFound(err) || errdefs.IsAlreadyExists(err) ||
		errdefs.IsFailedPrecondition(err) || errdefs.IsConflict(err) || errdefs.IsPermissionDenied(err) ||
		errdefs.IsUnauthorized(err) || errdefs.IsCanceled(err) || errdefs.IsDeadlineExceeded(err) ||
		errors.Is(err, context.Canceled)
}
