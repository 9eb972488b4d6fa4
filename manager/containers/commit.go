package containers

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	imagespec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/manager/images"
	"github.com/berth-project/berth/manager/log"
	"github.com/berth-project/berth/manager/ocispec"
	containersv1 "github.com/berth-project/berth/proto/services/containers/v1"
	"github.com/berth-project/berth/snapshotter"
	"github.com/berth-project/berth/snapshotter/layer"
	"github.com/berth-project/berth/snapshotter/mount"
)

// CommitOptions adjust Commit, as docker commit's flags.
type CommitOptions struct {
	Ref             string   // REPOSITORY[:TAG]; empty: a dangling image
	Author, Message string   // -a, -m
	Changes         []string // -c
	// Pause freezes a running container while its changes are read, so
	// that the layer is consistent (docker's default).
	Pause bool
}

// Commit makes an image of a container's changes, as docker commit does:
// the container's image with one more layer, the diff of the container's
// root filesystem against the image, and the container's configuration
// (command, environment, …) with opts.Changes applied.
func (s *Service) Commit(ctx context.Context, ref string, opts CommitOptions) (images.Image, error) {
	id, r, err := s.lookup(ref)
	if err != nil {
		return images.Image{}, err
	}
	base, err := s.cfg.Images.Get(ctx, r.GetImageId())
	if err != nil {
		return images.Image{}, fmt.Errorf("commit %s: the container's image %s: %w", r.GetName(), r.GetImage(), err)
	}
	// The config is checked before the diff, which may be long.
	cfg := committedRuntimeConfig(r.GetConfig(), base.Config.Config)
	check := cfg
	if err := images.ApplyChanges(&check, opts.Changes); err != nil {
		return images.Image{}, err
	}

	f, err := os.CreateTemp(s.cfg.Root, ".commit-"+id[:12]+"-")
	if err != nil {
		return images.Image{}, fmt.Errorf("commit %s: %w", r.GetName(), err)
	}
	defer func() {
		f.Close()
		os.Remove(f.Name())
	}()
	if err := s.writeDiff(ctx, id, r, opts.Pause, f); err != nil {
		return images.Image{}, fmt.Errorf("commit %s: %w", r.GetName(), err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return images.Image{}, err
	}
	img, err := s.cfg.Images.Commit(ctx, base.ID.String(), f, images.CommitOptions{
		Ref:       opts.Ref,
		Config:    &cfg,
		Changes:   opts.Changes,
		Author:    opts.Author,
		Comment:   opts.Message,
		CreatedBy: r.GetCommand(),
	})
	if err != nil {
		return images.Image{}, err
	}
	s.publish(ctx, "commit", r, map[string]string{"comment": opts.Message, "imageID": img.ID.String(), "imageRef": opts.Ref})
	return img, nil
}

// writeDiff writes the layer tar of the container's changes to w, the
// container paused meanwhile if it runs and pause is set.
func (s *Service) writeDiff(ctx context.Context, id string, r *containersv1.Container, pause bool, w io.Writer) error {
	if pause && r.GetState().GetStatus() == StatusRunning {
		switch err := s.Pause(ctx, id); {
		case err == nil:
			defer func() {
				if err := s.Unpause(context.WithoutCancel(ctx), id); err != nil {
					log.L(ctx).Warn("unpause a container after commit", "id", id, "error", err)
				}
			}()
		case errdefs.IsFailedPrecondition(err):
			// It stopped, or was paused by someone else: nothing to thaw.
		default:
			return err
		}
	}
	// The root filesystem is held shared (see container.fs): the container
	// may stop meanwhile, but neither start nor go away.
	c := s.track(id)
	c.mu.Lock()
	c.fs.RLock()
	c.mu.Unlock()
	defer c.fs.RUnlock()
	key := snapshotKey(id)
	ms, err := s.cfg.Snapshotter.Mounts(ctx, key)
	if err != nil {
		return fmt.Errorf("the root filesystem: %w", err)
	}
	if upper, lowers, ok := overlayDirs(ms); ok {
		// berth mounts overlays without redirect_dir and metacopy: the
		// upper directory holds the whole change.
		return layer.OverlayDiff(ctx, w, upper, lowers)
	}
	info, err := s.cfg.Snapshotter.Stat(ctx, key)
	if err != nil {
		return fmt.Errorf("the root filesystem: %w", err)
	}
	return s.withParentTree(ctx, id, info.Parent, func(lower string) error {
		return mount.WithTempMount(ctx, ms, func(upper string) error {
			return layer.Diff(ctx, w, lower, upper)
		})
	})
}

// withParentTree calls fn with the tree of the committed snapshot parent
// (an empty directory for none).
func (s *Service) withParentTree(ctx context.Context, id, parent string, fn func(string) error) error {
	if parent == "" {
		dir, err := os.MkdirTemp("", "berth-empty-")
		if err != nil {
			return err
		}
		defer os.Remove(dir)
		return fn(dir)
	}
	key := "berth/commit-view/" + id
	ms, err := s.cfg.Snapshotter.View(ctx, key, parent)
	if err != nil {
		return fmt.Errorf("view the image: %w", err)
	}
	defer func() {
		if err := s.cfg.Snapshotter.Remove(context.WithoutCancel(ctx), key); err != nil {
			log.L(ctx).Warn("remove the view made to commit", "error", err)
		}
	}()
	return mount.WithTempMount(ctx, ms, fn)
}

// overlayDirs reads the upper and lower directories of a snapshot
// mounted as one overlay.
func overlayDirs(ms []snapshotter.Mount) (upper string, lowers []string, ok bool) {
	if len(ms) != 1 || ms[0].Type != "overlay" {
		return "", nil, false
	}
	for _, o := range ms[0].Options {
		switch {
		case strings.HasPrefix(o, "upperdir="):
			upper = strings.TrimPrefix(o, "upperdir=")
		case strings.HasPrefix(o, "lowerdir="):
			lowers = strings.Split(strings.TrimPrefix(o, "lowerdir="), ":")
		}
	}
	return upper, lowers, upper != ""
}

// committedRuntimeConfig is the runtime config docker commit gives the
// image: the image's, overridden by what the container was made with.
func committedRuntimeConfig(c *containersv1.Config, img imagespec.ImageConfig) imagespec.ImageConfig {
	out := img
	out.Env = slices.Clone(img.Env)
	if c.GetEntrypointSet() {
		out.Entrypoint = slices.Clone(c.GetEntrypoint())
		out.Cmd = nil
	}
	if len(c.GetCmd()) > 0 {
		out.Cmd = slices.Clone(c.GetCmd())
	}
	out.Env = ocispec.MergeEnv(out.Env, c.GetEnv())
	if c.GetWorkingDir() != "" {
		out.WorkingDir = c.GetWorkingDir()
	}
	if c.GetUser() != "" {
		out.User = c.GetUser()
	}
	if c.GetStopSignal() != "" {
		out.StopSignal = c.GetStopSignal()
	}
	if len(c.GetLabels()) > 0 {
		labels := map[string]string{}
		for k, v := range img.Labels {
			labels[k] = v
		}
		for k, v := range c.GetLabels() {
			labels[k] = v
		}
		out.Labels = labels
	}
	if len(c.GetPorts()) > 0 {
		ports := map[string]struct{}{}
		for k := range img.ExposedPorts {
			ports[k] = struct{}{}
		}
		for _, p := range c.GetPorts() {
			proto := p.GetProtocol()
			if proto == "" {
				proto = "tcp"
			}
			ports[strconv.Itoa(int(p.GetContainerPort()))+"/"+proto] = struct{}{}
		}
		out.ExposedPorts = ports
	}
	return out
}
