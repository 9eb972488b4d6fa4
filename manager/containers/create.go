package containers

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/containerd/errdefs"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/berth-project/berth/manager/events"
	"github.com/berth-project/berth/manager/images"
	"github.com/berth-project/berth/manager/log"
	"github.com/berth-project/berth/manager/signals"
	containersv1 "github.com/berth-project/berth/proto/services/containers/v1"
	"github.com/berth-project/berth/snapshotter"
)

// validName is docker's rule for container names.
var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// Create makes a container from cfg: its record, its writable snapshot on
// the image's top layer and its directory. Nothing runs yet.
func (s *Service) Create(ctx context.Context, name string, cfg *containersv1.Config) (_ *containersv1.Container, retErr error) {
	if cfg == nil || cfg.GetImage() == "" {
		return nil, fmt.Errorf("no image given: %w", errdefs.ErrInvalidArgument)
	}
	name = strings.TrimPrefix(name, "/")
	if name != "" && !validName.MatchString(name) {
		return nil, fmt.Errorf("Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed: %w", name, errdefs.ErrInvalidArgument)
	}
	if err := s.validateConfig(ctx, cfg); err != nil {
		return nil, err
	}
	img, err := s.cfg.Images.Get(ctx, cfg.GetImage())
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil, fmt.Errorf("No such image: %s: %w", cfg.GetImage(), errdefs.ErrNotFound)
		}
		return nil, err
	}
	parent, err := s.cfg.Images.Snapshot(ctx, cfg.GetImage())
	if err != nil {
		return nil, fmt.Errorf("unpack image %s: %w", cfg.GetImage(), err)
	}
	id := newID()
	if cfg.GetHostname() == "" && cfg.GetNetworkMode() != "host" {
		cfg.Hostname = id[:12]
	}
	rec := &containersv1.Container{
		Id:      id,
		Image:   cfg.GetImage(),
		ImageId: img.ID.String(),
		Created: timestamppb.Now(),
		Config:  cfg,
		State:   &containersv1.State{Status: StatusCreated},
		LogPath: filepath.Join(s.dir(id), id+"-json.log"),
		Bundle:  s.bundle(id),
		Rootfs:  filepath.Join(s.bundle(id), "rootfs"),
		Command: commandLine(cfg, img),
		Network: &containersv1.NetworkSettings{Network: cfg.GetNetworkMode()},
	}

	if err := os.MkdirAll(s.dir(id), 0o710); err != nil {
		return nil, fmt.Errorf("make the container's directory: %w", err)
	}
	defer func() {
		if retErr != nil {
			os.RemoveAll(s.dir(id))
		}
	}()
	opts := []snapshotter.Opt{snapshotter.WithLabels(map[string]string{"berth.container": id})}
	if _, err := s.cfg.Snapshotter.Prepare(ctx, snapshotKey(id), parent, opts...); err != nil {
		return nil, fmt.Errorf("prepare the root filesystem: %w", err)
	}
	defer func() {
		if retErr != nil {
			if err := s.cfg.Snapshotter.Remove(context.WithoutCancel(ctx), snapshotKey(id)); err != nil {
				log.L(ctx).Warn("remove the snapshot of a container not made", "id", id, "error", err)
			}
		}
	}()
	// Released on failure also when taking them failed half-way: those
	// taken (named in cfg by then) would otherwise stay in use.
	defer func() {
		if retErr != nil && s.cfg.Volumes != nil {
			s.releaseVolumes(context.WithoutCancel(ctx), id, cfg, true)
		}
	}()
	if err := s.useVolumes(ctx, id, cfg, parent); err != nil {
		return nil, err
	}
	v, err := proto.Marshal(rec)
	if err != nil {
		return nil, err
	}
	// The name is taken and the record written in one transaction: two
	// creates with one name cannot both win.
	err = s.db.Update(func(tx *bolt.Tx) error {
		v1 := tx.Bucket(bucketV1)
		names := v1.Bucket(bucketNames)
		if name == "" {
			for i := range 100 {
				if n := randomName(i > 10); names.Get([]byte(n)) == nil {
					name = n
					break
				}
			}
		}
		if other := names.Get([]byte(name)); other != nil {
			return fmt.Errorf("Conflict. The container name \"/%s\" is already in use by container %q. You have to remove (or rename) that container to be able to reuse that name: %w", name, other, errdefs.ErrAlreadyExists)
		}
		rec.Name = name
		if v, err = proto.Marshal(rec); err != nil {
			return err
		}
		if err := names.Put([]byte(name), []byte(id)); err != nil {
			return err
		}
		return v1.Bucket(bucketContainers).Put([]byte(id), v)
	})
	if err != nil {
		return nil, err
	}
	c := s.track(id)
	close(c.exited)
	s.publish(ctx, events.ActionCreate, rec, nil)
	return rec, nil
}

// validateConfig checks what can be checked before anything is made, and
// settles the network: the default is "bridge", or "none" on a daemon
// without networks (as dockerd with --bridge=none).
func (s *Service) validateConfig(ctx context.Context, cfg *containersv1.Config) error {
	mode := cfg.GetNetworkMode()
	if mode == "" || mode == "default" {
		cfg.NetworkMode = "none"
		if s.cfg.Networks != nil {
			if _, err := s.cfg.Networks.Network(ctx, "bridge"); err == nil {
				cfg.NetworkMode = "bridge"
			}
		}
	}
	switch mode = cfg.GetNetworkMode(); mode {
	case "host", "none":
		if len(cfg.GetPorts()) > 0 {
			return fmt.Errorf("published ports are discarded when using %s network mode: use a bridge network to publish: %w", mode, errdefs.ErrInvalidArgument)
		}
	default:
		if s.cfg.Networks == nil {
			if mode == "bridge" {
				return fmt.Errorf("network bridge is not available on this daemon (berthd runs without networking): use --network host or none: %w", errdefs.ErrInvalidArgument)
			}
			return fmt.Errorf("network %s not found: %w", mode, errdefs.ErrNotFound)
		}
		if _, err := s.cfg.Networks.Network(ctx, mode); err != nil {
			if errdefs.IsNotFound(err) {
				return fmt.Errorf("network %s not found: %w", mode, errdefs.ErrNotFound)
			}
			return err
		}
	}
	for _, m := range cfg.GetMounts() {
		if !filepath.IsAbs(m.GetDestination()) {
			return fmt.Errorf("invalid mount config: the mount destination %q is not an absolute path: %w", m.GetDestination(), errdefs.ErrInvalidArgument)
		}
		switch m.GetType() {
		case "bind", "":
			if !filepath.IsAbs(m.GetSource()) {
				return fmt.Errorf("invalid mount config: bind source %q is not an absolute path: %w", m.GetSource(), errdefs.ErrInvalidArgument)
			}
			if _, err := os.Stat(m.GetSource()); err != nil {
				if errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("invalid mount config for type \"bind\": bind source path does not exist: %s: %w", m.GetSource(), errdefs.ErrInvalidArgument)
				}
				return fmt.Errorf("bind source %s: %w", m.GetSource(), err)
			}
		case "volume":
			if s.cfg.Volumes == nil {
				return fmt.Errorf("volumes are not available on this daemon: bind-mount a host directory instead: %w", errdefs.ErrNotImplemented)
			}
		case "tmpfs":
		default:
			return fmt.Errorf("invalid mount config: unknown mount type %q: want bind, volume or tmpfs: %w", m.GetType(), errdefs.ErrInvalidArgument)
		}
	}
	if cfg.GetStopSignal() != "" {
		if _, err := signals.Parse(cfg.GetStopSignal()); err != nil {
			return err
		}
	}
	if _, err := parseLogConfig(cfg.GetLogDriver(), cfg.GetLogOpts()); err != nil {
		return err
	}
	if _, err := parseSecurityOpts(cfg.GetSecurityOpt()); err != nil {
		return err
	}
	if _, err := parseRestartPolicy(cfg.GetRestartPolicy()); err != nil {
		return err
	}
	if rp := cfg.GetRestartPolicy(); rp != "" && rp != "no" && cfg.GetAutoRemove() {
		return fmt.Errorf("conflicting options: cannot specify both --restart and --rm: %w", errdefs.ErrInvalidArgument)
	}
	return nil
}

// commandLine is the command `docker ps` shows: entrypoint and command,
// as the container will run them.
func commandLine(cfg *containersv1.Config, img images.Image) string {
	args := processArgs(cfg, img)
	return strings.Join(args, " ")
}

// processArgs applies docker's rules: --entrypoint replaces the image's
// entrypoint and drops its command; arguments replace the image's command.
func processArgs(cfg *containersv1.Config, img images.Image) []string {
	entry := img.Config.Config.Entrypoint
	cmd := img.Config.Config.Cmd
	if cfg.GetEntrypointSet() {
		entry = cfg.GetEntrypoint()
		cmd = nil
	}
	if len(cfg.GetCmd()) > 0 {
		cmd = cfg.GetCmd()
	}
	return append(append([]string(nil), entry...), cmd...)
}

// Names are a word of the sea and a word of the harbour, as docker's are
// an adjective and a scientist.
var (
	nameLeft  = []string{"amber", "brisk", "calm", "deep", "eager", "fair", "gentle", "hardy", "keen", "lucid", "merry", "nimble", "quiet", "rapid", "salty", "steady", "sunny", "swift", "tidal", "vivid", "windy", "bold", "bright", "clever"}
	nameRight = []string{"anchor", "beacon", "buoy", "cove", "dock", "ferry", "galley", "harbor", "jetty", "keel", "lagoon", "mast", "pier", "quay", "rudder", "sail", "schooner", "skiff", "tide", "wharf", "yawl", "reef", "compass", "lantern"}
)

// randomName makes a name; with more, a number follows, as docker's do
// once the plain ones are taken.
func randomName(more bool) string {
	n := nameLeft[rand.IntN(len(nameLeft))] + "_" + nameRight[rand.IntN(len(nameRight))]
	if more {
		n += fmt.Sprint(rand.IntN(10))
	}
	return n
}

// securityOpts are what --security-opt set.
type securityOpts struct {
	seccompUnconfined bool
	noNewPrivileges   bool
}

// parseSecurityOpts reads docker's --security-opt values that berth acts
// on; others are refused rather than ignored.
func parseSecurityOpts(opts []string) (securityOpts, error) {
	var o securityOpts
	for _, opt := range opts {
		key, val, _ := strings.Cut(opt, "=")
		if k, v, ok := strings.Cut(opt, ":"); ok && !strings.Contains(opt, "=") {
			key, val = k, v // docker's old "seccomp:unconfined" form
		}
		switch {
		case key == "seccomp" && val == "unconfined":
			o.seccompUnconfined = true
		case key == "no-new-privileges" && (val == "" || val == "true"):
			o.noNewPrivileges = true
		case key == "no-new-privileges" && val == "false":
			o.noNewPrivileges = false
		default:
			return o, fmt.Errorf("invalid --security-opt %q: berth supports seccomp=unconfined and no-new-privileges[=true|false]: %w", opt, errdefs.ErrInvalidArgument)
		}
	}
	return o, nil
}
