package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/berth-project/berth/manager/filters"
	"github.com/berth-project/berth/manager/hostinfo"
	"github.com/berth-project/berth/manager/log"
	"github.com/berth-project/berth/manager/version"
	containersv1 "github.com/berth-project/berth/proto/services/containers/v1"
	imagesv1 "github.com/berth-project/berth/proto/services/images/v1"
	systemv1 "github.com/berth-project/berth/proto/services/system/v1"
	"github.com/berth-project/berth/snapshotter"
)

// ImageLister is what the system service needs of the image service: the
// images with their sizes (for info and df), and their prune (for system
// prune). Every imagesv1.ImagesService is one.
type ImageLister interface {
	List(context.Context, *imagesv1.ListRequest) (*imagesv1.ListResponse, error)
	Prune(context.Context, *imagesv1.PruneRequest) (*imagesv1.PruneResponse, error)
}

// ContainerLister is the container service as the system service uses
// it: *Containers is one.
type ContainerLister interface {
	List(context.Context, *containersv1.ListRequest) (*containersv1.ListResponse, error)
	Prune(context.Context, *containersv1.PruneRequest) (*containersv1.PruneResponse, error)
}

// SnapshotStore is the snapshot store as the system service reports it;
// *snapshots.Store is one.
type SnapshotStore interface {
	Snapshotter() snapshotter.Snapshotter
	Backend() string // "overlay", "native", or "remote" for one berthd did not start
	Address() string // its socket
	Root() string    // its directory, when berthd started it
	Version() string // its version, when known
}

// SystemConfig is what the system service reports on and works with.
type SystemConfig struct {
	ID                 string // the daemon's
	Root, State        string
	Debug              bool
	InsecureRegistries []string
	Snapshots          SnapshotStore
	// Images may be nil: then there are no images to count or prune.
	Images ImageLister
	// Containers may be nil: then there are no containers.
	Containers ContainerLister
}

// System serves system.v1.
type System struct {
	cfg SystemConfig
}

var _ systemv1.SystemService = (*System)(nil)

// NewSystem returns the system service.
func NewSystem(cfg SystemConfig) *System {
	return &System{cfg: cfg}
}

// Version implements systemv1.SystemService.
func (s *System) Version(ctx context.Context, _ *emptypb.Empty) (*systemv1.VersionResponse, error) {
	kernel, _, err := hostinfo.Kernel()
	if err != nil {
		log.L(ctx).Warn("version: kernel unknown", "error", err)
	}
	sn := s.cfg.Snapshots
	details := map[string]string{"Address": sn.Address(), "Backend": sn.Backend()}
	return &systemv1.VersionResponse{
		Version:       version.Version,
		ApiVersion:    version.APIVersion,
		GitCommit:     version.GitCommit,
		GoVersion:     version.GoVersion(),
		Os:            runtime.GOOS,
		Arch:          runtime.GOARCH,
		KernelVersion: kernel,
		Components: []*systemv1.Component{
			{Name: "berthd", Version: version.Version, Details: map[string]string{"ApiVersion": version.APIVersion, "GitCommit": version.GitCommit, "GoVersion": version.GoVersion()}},
			{Name: "berth-snapshotter", Version: sn.Version(), Details: details},
		},
	}, nil
}

// Info implements systemv1.SystemService. What cannot be found out is
// left empty with a warning rather than failing the call: `info` is what
// one runs to see what is wrong.
func (s *System) Info(ctx context.Context, _ *emptypb.Empty) (*systemv1.InfoResponse, error) {
	var warnings []string
	warn := func(format string, args ...any) {
		warnings = append(warnings, "WARNING: "+fmt.Sprintf(format, args...))
	}
	resp := &systemv1.InfoResponse{
		Id:            s.cfg.ID,
		ServerVersion: version.Version,
		RootDir:       s.cfg.Root,
		StateDir:      s.cfg.State,
		CgroupVersion: hostinfo.CgroupVersion(),
		CgroupDriver:  hostinfo.CgroupDriver(),
		OsType:        runtime.GOOS,
		Ncpu:          int64(hostinfo.CPUs()),
		Debug:         s.cfg.Debug,
		SystemTime:    timestamppb.Now(),
		HttpProxy:     proxyEnv("HTTP_PROXY"),
		HttpsProxy:    proxyEnv("HTTPS_PROXY"),
		NoProxy:       proxyEnv("NO_PROXY"),
		RegistryConfig: &systemv1.RegistryConfig{
			InsecureRegistries: slices.Clone(s.cfg.InsecureRegistries),
		},
	}
	var err error
	if resp.Name, err = os.Hostname(); err != nil {
		warn("host name unknown: %v", err)
	}
	if resp.KernelVersion, resp.Architecture, err = hostinfo.Kernel(); err != nil {
		warn("kernel unknown: %v", err)
	}
	if resp.OperatingSystem, resp.OsVersion, err = hostinfo.OS(); err != nil {
		warn("operating system unknown: %v", err)
	}
	if resp.MemTotal, err = hostinfo.MemTotal(); err != nil {
		warn("memory unknown: %v", err)
	}

	sn := s.cfg.Snapshots
	resp.Driver = sn.Backend()
	resp.DriverStatus = append(resp.DriverStatus, &systemv1.KeyValue{Key: "Snapshotter", Value: sn.Address()})
	if root := sn.Root(); root != "" {
		if fs, err := hostinfo.Filesystem(root); err == nil {
			resp.DriverStatus = append(resp.DriverStatus, &systemv1.KeyValue{Key: "Backing Filesystem", Value: fs})
		}
	}
	n := 0
	if err := sn.Snapshotter().Walk(ctx, func(context.Context, snapshotter.Info) error { n++; return nil }); err != nil {
		warn("the snapshotter does not answer: %v", err)
	} else {
		resp.DriverStatus = append(resp.DriverStatus, &systemv1.KeyValue{Key: "Snapshots", Value: fmt.Sprint(n)})
	}

	if s.cfg.Images == nil {
		warn("no image service: this berthd was built without one")
	} else if list, err := s.cfg.Images.List(ctx, &imagesv1.ListRequest{}); err != nil {
		warn("images unknown: %v", err)
	} else {
		resp.Images = int64(len(list.GetImages()))
	}
	if s.cfg.Containers != nil {
		list, err := s.cfg.Containers.List(ctx, &containersv1.ListRequest{All: true})
		if err != nil {
			warn("cannot list the containers: %v", err)
		}
		for _, c := range list.GetContainers() {
			resp.Containers++
			switch c.GetState().GetStatus() {
			case "running":
				resp.ContainersRunning++
			case "paused":
				resp.ContainersPaused++
			default:
				resp.ContainersStopped++
			}
		}
	}
	resp.Warnings = warnings
	return resp, nil
}

// proxyEnv reads a proxy variable as docker does: upper case first, then
// lower case.
func proxyEnv(name string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return os.Getenv(strings.ToLower(name))
}

// DiskUsage implements systemv1.SystemService. The size of the layers is
// what the snapshot store holds committed, each snapshot counted once;
// the image list comes from the image service.
func (s *System) DiskUsage(ctx context.Context, _ *systemv1.DiskUsageRequest) (*systemv1.DiskUsageResponse, error) {
	size, err := committedSize(ctx, s.cfg.Snapshots.Snapshotter())
	if err != nil {
		return nil, err
	}
	usage := &systemv1.ImagesDiskUsage{Size: size}
	if s.cfg.Images != nil {
		list, err := s.cfg.Images.List(ctx, &imagesv1.ListRequest{})
		if err != nil {
			return nil, fmt.Errorf("list the images: %w", err)
		}
		usage.Images = list.GetImages()
	}
	usage.Total = int64(len(usage.Images))
	resp := &systemv1.DiskUsageResponse{Images: usage, Containers: &systemv1.ContainersDiskUsage{}}
	// An image containers were made from is active: its layers stay.
	used := map[string]bool{}
	if s.cfg.Containers != nil {
		list, err := s.cfg.Containers.List(ctx, &containersv1.ListRequest{All: true, Size: true})
		if err != nil {
			return nil, fmt.Errorf("list the containers: %w", err)
		}
		cu := resp.Containers
		for _, c := range list.GetContainers() {
			used[c.GetImageId()] = true
			cu.Total++
			cu.Size += c.GetSizeRw()
			if st := c.GetState().GetStatus(); st == "running" || st == "paused" {
				cu.Active++
			} else {
				cu.Reclaimable += c.GetSizeRw()
			}
		}
	}
	var activeSize int64
	for _, im := range usage.Images {
		if used[im.GetId()] {
			usage.Active++
			activeSize += im.GetSize() - im.GetSharedSize()
		}
	}
	usage.Reclaimable = max(size-activeSize, 0)
	return resp, nil
}

// committedSize adds up the disk of the committed snapshots: the image
// layers. (Active ones are containers' and views are free.)
func committedSize(ctx context.Context, sn snapshotter.Snapshotter) (int64, error) {
	var total int64
	err := sn.Walk(ctx, func(ctx context.Context, info snapshotter.Info) error {
		u, err := sn.Usage(ctx, info.Name)
		if errdefs.IsNotFound(err) {
			return nil // removed since the walk saw it
		}
		if err != nil {
			return fmt.Errorf("usage of snapshot %s: %w", info.Name, err)
		}
		total += u.Size
		return nil
	}, "kind==committed")
	if err != nil {
		return 0, fmt.Errorf("snapshot store: %w", err)
	}
	return total, nil
}

// pruneFilters are the filters `docker system prune` takes.
var pruneFilters = []string{"until", "label", "label!"}

// Prune implements systemv1.SystemService: dangling images (with all,
// every image no container uses) through the image service, then the
// snapshot store's cleanup of what removed snapshots left on disk.
func (s *System) Prune(ctx context.Context, req *systemv1.PruneRequest) (*systemv1.PruneResponse, error) {
	args, err := filters.Parse(req.GetFilters(), pruneFilters...)
	if err != nil {
		return nil, err
	}
	for _, v := range args.Get("until") {
		if _, err := filters.ParseTime(v, time.Now()); err != nil {
			return nil, err
		}
	}
	resp := &systemv1.PruneResponse{}
	var errs []error
	// Stopped containers first, as docker: their images may then go.
	if s.cfg.Containers != nil {
		r, err := s.cfg.Containers.Prune(ctx, &containersv1.PruneRequest{Filters: req.GetFilters()})
		if err != nil {
			errs = append(errs, fmt.Errorf("prune containers: %w", err))
		}
		resp.ContainersDeleted = r.GetDeleted()
		resp.SpaceReclaimed += r.GetSpaceReclaimed()
	}
	if s.cfg.Images != nil {
		r, err := s.cfg.Images.Prune(ctx, &imagesv1.PruneRequest{All: req.GetAll(), Filters: req.GetFilters()})
		if err != nil {
			errs = append(errs, fmt.Errorf("prune images: %w", err))
		}
		resp.ImagesRemoved = r.GetItems()
		resp.SpaceReclaimed += r.GetSpaceReclaimed()
	}
	if err := s.cfg.Snapshots.Snapshotter().Cleanup(ctx); err != nil {
		errs = append(errs, fmt.Errorf("snapshot store cleanup: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return resp, nil
}
