// Package volumes is berthd's volume library: docker's volumes with its
// "local" driver. A volume is a directory, <root>/<name>/_data, that
// containers mount; its record (a volumes.v1.Volume message, the API's
// shape) lives in bbolt under v1/volumes, with the IDs of the containers
// that use it, so that a volume in use stays in use across restarts of
// berthd.
//
// Names are docker's: [a-zA-Z0-9][a-zA-Z0-9_.-]+. An anonymous volume
// (a container's `-v /path`, or `volume create` without a name) is named
// by 64 random hex digits and carries the label
// "com.docker.volume.anonymous".
//
// The container library uses the library through Use and Release
// (manager/containers.Volumes).
package volumes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/containerd/errdefs"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/berth-project/berth/manager/events"
	"github.com/berth-project/berth/manager/filters"
	volumesv1 "github.com/berth-project/berth/proto/services/volumes/v1"
)

const (
	// Driver is the only driver: plain directories on the host.
	Driver = "local"
	// Scope is where a volume is known: this host.
	Scope = "local"
	// LabelAnonymous marks an anonymous volume, as docker marks it.
	LabelAnonymous = "com.docker.volume.anonymous"

	// eventType is the type of the events volumes publish, docker's.
	eventType = "volume"
)

// Config is what the volume library needs.
type Config struct {
	// Root holds the volumes (berthd gives it <root>/volumes).
	Root string
	DB   *bolt.DB
	// Events receives the create and destroy events; nil sends none.
	Events events.Publisher
}

// Service is the volume library. It implements manager/containers'
// Volumes.
type Service struct {
	cfg Config
	// mu serialises the changes of volumes: a volume made, used, released
	// or removed is a record and a directory that must agree.
	mu sync.Mutex
}

var (
	bucketV1      = []byte("v1")
	bucketVolumes = []byte("volumes")
)

var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// Open opens the library, making Root and its records' bucket if needed.
func Open(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.DB == nil || cfg.Root == "" {
		return nil, errors.New("volumes: DB and Root are required")
	}
	// docker's volumes root is 0701: others may reach a volume's data
	// (containers running as other users) but not list the volumes.
	if err := os.MkdirAll(cfg.Root, 0o701); err != nil {
		return nil, fmt.Errorf("make %s: %w", cfg.Root, err)
	}
	if err := cfg.DB.Update(func(tx *bolt.Tx) error {
		v1, err := tx.CreateBucketIfNotExists(bucketV1)
		if err != nil {
			return err
		}
		_, err = v1.CreateBucketIfNotExists(bucketVolumes)
		return err
	}); err != nil {
		return nil, fmt.Errorf("volume records: %w", err)
	}
	return &Service{cfg: cfg}, nil
}

// Create makes a volume, named or (with an empty name) anonymous. A
// volume of that name that exists is returned as it is; with another
// driver it is a conflict.
func (s *Service) Create(ctx context.Context, name, driver string, labels, driverOpts map[string]string) (*volumesv1.Volume, error) {
	if driver == "" {
		driver = Driver
	}
	if driver != Driver {
		return nil, fmt.Errorf("create %s: error looking up volume plugin %s: plugin %q not found: %w", name, driver, driver, errdefs.ErrNotFound)
	}
	if err := validOptions(driverOpts); err != nil {
		return nil, fmt.Errorf("create %s: %w", name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if name != "" {
		if err := validateName(name); err != nil {
			return nil, fmt.Errorf("create %s: %w", name, err)
		}
		v, err := s.record(name)
		if err == nil {
			return v, nil
		}
		if !errdefs.IsNotFound(err) {
			return nil, err
		}
	}
	v, err := s.create(ctx, name, labels, driverOpts)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", name, err)
	}
	return v, nil
}

// validOptions checks driver options as docker's local driver does: it
// knows type, device, o and size. berth does not mount volumes yet, so
// any option is NotImplemented rather than silently ignored.
func validOptions(opts map[string]string) error {
	for _, k := range slices.Sorted(maps.Keys(opts)) {
		switch k {
		case "type", "device", "o", "size":
		default:
			return fmt.Errorf("invalid option: %q: %w", k, errdefs.ErrInvalidArgument)
		}
	}
	if len(opts) > 0 {
		return fmt.Errorf("driver options (-o) are not supported yet: berth's local volumes are plain directories: %w", errdefs.ErrNotImplemented)
	}
	return nil
}

func validateName(name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("%q includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path: %w", name, errdefs.ErrInvalidArgument)
	}
	return nil
}

// create makes a volume that does not exist: an anonymous one when name
// is empty. It holds mu.
func (s *Service) create(ctx context.Context, name string, labels, opts map[string]string, users ...string) (*volumesv1.Volume, error) {
	if name == "" {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		name = hex.EncodeToString(b)
		labels = maps.Clone(labels)
		if labels == nil {
			labels = map[string]string{}
		}
		labels[LabelAnonymous] = ""
	}
	v := &volumesv1.Volume{
		Name:       name,
		Driver:     Driver,
		Mountpoint: s.dataDir(name),
		CreatedAt:  timestamppb.Now(),
		Labels:     labels,
		Scope:      Scope,
		Options:    opts,
		Containers: users,
	}
	if err := os.MkdirAll(v.GetMountpoint(), 0o755); err != nil {
		return nil, err
	}
	if err := s.put(v); err != nil {
		return nil, errors.Join(err, os.RemoveAll(s.dir(name)))
	}
	s.publish(ctx, "create", v)
	return v, nil
}

// Get returns volume name; with size, its usage data too.
func (s *Service) Get(ctx context.Context, name string, size bool) (*volumesv1.Volume, error) {
	v, err := s.record(name)
	if err != nil {
		return nil, err
	}
	if size {
		s.usage(v)
	}
	return v, nil
}

// List returns the volumes filters let through (docker's volume ls
// filters: dangling, name, label, driver), sorted by name; with size,
// their usage data too.
func (s *Service) List(ctx context.Context, filterArgs []string, size bool) ([]*volumesv1.Volume, error) {
	f, err := filters.Parse(filterArgs, "dangling", "name", "label", "driver")
	if err != nil {
		return nil, err
	}
	var dangling *bool
	for _, d := range f.Get("dangling") {
		b, err := strconv.ParseBool(d)
		if err != nil {
			return nil, fmt.Errorf("invalid filter 'dangling=%s': %w", d, errdefs.ErrInvalidArgument)
		}
		dangling = &b
	}
	all, err := s.records()
	if err != nil {
		return nil, err
	}
	var out []*volumesv1.Volume
	for _, v := range all {
		if dangling != nil && *dangling != (len(v.GetContainers()) == 0) {
			continue
		}
		if !f.MatchFunc("name", matchPattern(v.GetName())) || !f.MatchFunc("driver", matchPattern(v.GetDriver())) ||
			!f.MatchLabels("label", v.GetLabels()) {
			continue
		}
		if size {
			s.usage(v)
		}
		out = append(out, v)
	}
	return out, nil
}

// matchPattern is docker's filter match: the value equals the pattern, or
// the pattern, a regular expression, matches in it.
func matchPattern(value string) func(string) bool {
	return func(pattern string) bool {
		if pattern == value {
			return true
		}
		ok, err := regexp.MatchString(pattern, value)
		return err == nil && ok
	}
}

// Remove removes volume name and its data. A volume in use is not
// removed (FailedPrecondition), even with force; force makes a missing
// volume no error.
func (s *Service) Remove(ctx context.Context, name string, force bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.record(name)
	if err != nil {
		if force && errdefs.IsNotFound(err) {
			return nil
		}
		return err
	}
	if len(v.GetContainers()) > 0 {
		return inUse(v)
	}
	return s.remove(ctx, v)
}

func inUse(v *volumesv1.Volume) error {
	return fmt.Errorf("remove %s: volume is in use - [%s]: %w", v.GetName(), strings.Join(v.GetContainers(), ", "), errdefs.ErrFailedPrecondition)
}

// remove removes a volume's data, then its record. It holds mu.
func (s *Service) remove(ctx context.Context, v *volumesv1.Volume) error {
	if err := os.RemoveAll(s.dir(v.GetName())); err != nil {
		return fmt.Errorf("remove %s: %w", v.GetName(), err)
	}
	if err := s.cfg.DB.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketV1).Bucket(bucketVolumes).Delete([]byte(v.GetName()))
	}); err != nil {
		return fmt.Errorf("remove %s: %w", v.GetName(), err)
	}
	s.publish(ctx, "destroy", v)
	return nil
}

// Prune removes the volumes no container uses: only anonymous ones
// unless all (or the filter all=true) says named ones too, as docker 23
// and later do. filters: label, label!, all. It returns the names
// removed and the bytes their data held.
func (s *Service) Prune(ctx context.Context, all bool, filterArgs []string) ([]string, int64, error) {
	f, err := filters.Parse(filterArgs, "label", "label!", "all")
	if err != nil {
		return nil, 0, err
	}
	for _, a := range f.Get("all") {
		b, err := strconv.ParseBool(a)
		if err != nil {
			return nil, 0, fmt.Errorf("invalid filter 'all=%s': invalid value: %w", a, errdefs.ErrInvalidArgument)
		}
		all = all || b
	}
	vols, err := s.records()
	if err != nil {
		return nil, 0, err
	}
	var (
		deleted []string
		space   int64
		errs    []error
	)
	for _, v := range vols {
		if _, anon := v.GetLabels()[LabelAnonymous]; !all && !anon {
			continue
		}
		if len(v.GetContainers()) > 0 || !f.MatchLabels("label", v.GetLabels()) || !notLabels(f.Get("label!"), v.GetLabels()) {
			continue
		}
		// The size is taken before the lock: a large volume must not hold
		// up the containers starting meanwhile.
		size, _ := dirSize(v.GetMountpoint())
		removed, err := s.removeUnused(ctx, v.GetName())
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if removed {
			deleted = append(deleted, v.GetName())
			space += size
		}
	}
	return deleted, space, errors.Join(errs...)
}

// removeUnused removes volume name if it still exists and no container
// uses it.
func (s *Service) removeUnused(ctx context.Context, name string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.record(name)
	if errdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil || len(v.GetContainers()) > 0 {
		return false, err
	}
	return true, s.remove(ctx, v)
}

// notLabels is docker's label! filter: a volume passes when it carries
// none of the labels (k, or k=v) given.
func notLabels(not []string, labels map[string]string) bool {
	for _, want := range not {
		k, v, hasValue := strings.Cut(want, "=")
		got, ok := labels[k]
		if ok && (!hasValue || got == v) {
			return false
		}
	}
	return true
}

// Use returns the data directory of volume name for container id,
// making the volume if it does not exist (an anonymous one when name is
// empty), and records the use. created tells whether this call made it.
func (s *Service) Use(ctx context.Context, name, id string) (resolved, dir string, created bool, err error) {
	if id == "" {
		return "", "", false, fmt.Errorf("use volume %s: no container given: %w", name, errdefs.ErrInvalidArgument)
	}
	if name != "" {
		if err := validateName(name); err != nil {
			return "", "", false, fmt.Errorf("create %s: %w", name, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if name != "" {
		v, err := s.update(name, func(v *volumesv1.Volume) {
			if !slices.Contains(v.GetContainers(), id) {
				v.Containers = append(v.Containers, id)
			}
		})
		if err == nil {
			return v.GetName(), v.GetMountpoint(), false, nil
		}
		if !errdefs.IsNotFound(err) {
			return "", "", false, err
		}
	}
	v, err := s.create(ctx, name, nil, nil, id)
	if err != nil {
		return "", "", false, fmt.Errorf("create %s: %w", name, err)
	}
	return v.GetName(), v.GetMountpoint(), true, nil
}

// Release drops container id's use of volume name; with remove, it
// removes the volume too once no container uses it. A volume that is
// gone is no error.
func (s *Service) Release(ctx context.Context, name, id string, remove bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.update(name, func(v *volumesv1.Volume) {
		v.Containers = slices.DeleteFunc(v.Containers, func(c string) bool { return c == id })
	})
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if remove && len(v.GetContainers()) == 0 {
		return s.remove(ctx, v)
	}
	return nil
}

// Size returns the bytes of volume name's data, as `du` counts them
// (each hard-linked file once).
func (s *Service) Size(ctx context.Context, name string) (int64, error) {
	v, err := s.record(name)
	if err != nil {
		return 0, err
	}
	return dirSize(v.GetMountpoint())
}

// usage fills v's usage data.
func (s *Service) usage(v *volumesv1.Volume) {
	size, err := dirSize(v.GetMountpoint())
	if err != nil {
		size = -1 // docker's "not available"
	}
	v.UsageData = &volumesv1.UsageData{Size: size, RefCount: int64(len(v.GetContainers()))}
}

// dirSize is the bytes of the files under dir, each inode once.
func dirSize(dir string) (int64, error) {
	var size int64
	seen := map[uint64]bool{}
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		size += info.Size()
		return nil
	})
	return size, err
}

func (s *Service) dir(name string) string     { return filepath.Join(s.cfg.Root, name) }
func (s *Service) dataDir(name string) string { return filepath.Join(s.cfg.Root, name, "_data") }

func notFound(name string) error {
	return fmt.Errorf("get %s: no such volume: %w", name, errdefs.ErrNotFound)
}

// record returns the record of volume name.
func (s *Service) record(name string) (*volumesv1.Volume, error) {
	var v volumesv1.Volume
	err := s.cfg.DB.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketV1).Bucket(bucketVolumes).Get([]byte(name))
		if b == nil {
			return notFound(name)
		}
		return proto.Unmarshal(b, &v)
	})
	if err != nil {
		return nil, err
	}
	return &v, nil
}

// records returns every record, sorted by name (bbolt's key order).
func (s *Service) records() ([]*volumesv1.Volume, error) {
	var out []*volumesv1.Volume
	err := s.cfg.DB.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketV1).Bucket(bucketVolumes).ForEach(func(k, b []byte) error {
			var v volumesv1.Volume
			if err := proto.Unmarshal(b, &v); err != nil {
				return fmt.Errorf("record of volume %s: %w", k, err)
			}
			out = append(out, &v)
			return nil
		})
	})
	return out, err
}

// put writes a record; usage data is computed when asked, never kept.
func (s *Service) put(v *volumesv1.Volume) error {
	v = proto.CloneOf(v)
	v.UsageData = nil
	b, err := proto.Marshal(v)
	if err != nil {
		return err
	}
	return s.cfg.DB.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketV1).Bucket(bucketVolumes).Put([]byte(v.GetName()), b)
	})
}

// update changes a record in place and returns it.
func (s *Service) update(name string, fn func(v *volumesv1.Volume)) (*volumesv1.Volume, error) {
	var v volumesv1.Volume
	err := s.cfg.DB.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketV1).Bucket(bucketVolumes)
		b := bk.Get([]byte(name))
		if b == nil {
			return notFound(name)
		}
		if err := proto.Unmarshal(b, &v); err != nil {
			return err
		}
		fn(&v)
		nb, err := proto.Marshal(&v)
		if err != nil {
			return err
		}
		return bk.Put([]byte(name), nb)
	})
	if err != nil {
		return nil, err
	}
	return &v, nil
}

func (s *Service) publish(ctx context.Context, action string, v *volumesv1.Volume) {
	if s.cfg.Events == nil {
		return
	}
	s.cfg.Events.Publish(ctx, events.Event{Type: eventType, Action: action, Actor: events.Actor{
		ID: v.GetName(), Attributes: map[string]string{"driver": v.GetDriver()},
	}})
}
