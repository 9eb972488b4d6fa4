// Package containers is berthd's container library: it makes containers
// from images (a snapshot on the image's top layer, a record in bbolt),
// runs each through its own shim (containerd-shim-berth-v2, driven over
// the task API as containerd drives it), networks it through berth's CNI
// plugins, logs its output in docker's json-file format, and follows it
// to its exit. A shim outlives berthd: when berthd starts again it
// reconnects to the shims of the containers that still run.
//
// The records are containers.v1.Container messages: the API's shape is
// the stored shape, so inspect shows exactly what is kept.
//
// Layout: <root>/<id>/ holds what lasts (the log, hosts, hostname,
// resolv.conf); <state>/<id>/ is the bundle (config.json, the rootfs
// mount point, the FIFOs), which lives while the container runs.
package containers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/errdefs"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/berth-project/berth/manager/events"
	"github.com/berth-project/berth/manager/images"
	"github.com/berth-project/berth/manager/log"
	"github.com/berth-project/berth/manager/shimclient"
	containersv1 "github.com/berth-project/berth/proto/services/containers/v1"
	"github.com/berth-project/berth/snapshotter"
)

// Config is what the container library needs.
type Config struct {
	// Root holds each container's lasting files; State its bundle.
	Root, State string
	DB          *bolt.DB
	Images      *images.Service
	Snapshotter snapshotter.Snapshotter
	// Networks are the networks containers join; nil allows only
	// --network host and none.
	Networks Networks
	// Volumes keeps the volumes containers mount; nil refuses volumes.
	Volumes Volumes
	// Shim says how to run shims; its Address is where berthd serves the
	// events shims forward.
	Shim   shimclient.Config
	Events events.Publisher
	// CgroupParent holds the containers' cgroups (default "/berth").
	CgroupParent string
}

// Service is the container library.
type Service struct {
	cfg Config
	db  *bolt.DB

	mu   sync.Mutex
	live map[string]*container // by ID, every container recorded

	// hostsMu serialises the rewrites of hosts files (hosts.go).
	hostsMu sync.Mutex

	// stopping ends when berthd begins to shut down.
	stopping context.Context
	stop     context.CancelFunc
}

// ErrStopping ends the calls that wait (attach, exec, wait, logs -f) when
// berthd shuts down: they must not hold the shutdown up.
var ErrStopping = fmt.Errorf("berthd is shutting down: %w", errdefs.ErrUnavailable)

// Stopping ends the calls that wait: call it when shutdown begins, before
// waiting for the calls in flight.
func (s *Service) Stopping() { s.stop() }

// untilStopping is ctx, ended also when berthd begins to shut down.
func (s *Service) untilStopping(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	unhook := context.AfterFunc(s.stopping, func() { cancel(ErrStopping) })
	return ctx, func() {
		unhook()
		cancel(nil)
	}
}

// container is what berthd holds of a container beside its record: the
// lock its lifecycle calls take, and while it runs its shim and streams.
type container struct {
	id string
	// mu serialises lifecycle calls (start, stop, remove, the exit).
	mu sync.Mutex
	// fs guards the root filesystem's use by cp and commit, which hold it
	// shared, without mu, for as long as they read or write it (a stop
	// need not wait for them), against start (which mounts it: an overlay
	// must not be mounted twice) and remove, which hold it exclusively.
	// Taken after mu, never before.
	fs sync.RWMutex

	// run is the running process: nil when the container is not running.
	// Reading it takes mu, or state.
	run *running
	// state guards run's swaps, started and exited, for those who must
	// not wait behind a lifecycle call holding mu (attach, exec, wait).
	state sync.Mutex
	// started is closed when a run begins, exited when it ends; both are
	// replaced at each start.
	started, exited chan struct{}
	removed         chan struct{}
	// exitCode of the last run, for waiters woken by exited.
	exitCode int32
	// restartDelay is the last wait before a restart (restart policies).
	restartDelay time.Duration

	// attached are the clients attached to the init's output, across runs.
	attached attachments
}

// current returns the running process (nil if none) and the channels of
// the current (or next) run.
func (c *container) current() (run *running, started, exited chan struct{}) {
	c.state.Lock()
	defer c.state.Unlock()
	return c.run, c.started, c.exited
}

var (
	bucketV1         = []byte("v1")
	bucketContainers = []byte("containers")
	bucketNames      = []byte("container-names")
)

// Open opens the library and reconnects to the containers whose shims
// still run; those whose shims went are marked exited.
func Open(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.DB == nil || cfg.Images == nil || cfg.Snapshotter == nil {
		return nil, errors.New("containers: DB, Images and Snapshotter are required")
	}
	for _, d := range []string{cfg.Root, cfg.State} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, fmt.Errorf("make %s: %w", d, err)
		}
	}
	if cfg.Events == nil {
		cfg.Events = events.NewBroker()
	}
	s := &Service{cfg: cfg, db: cfg.DB, live: map[string]*container{}}
	s.stopping, s.stop = context.WithCancel(context.Background())
	if err := s.db.Update(func(tx *bolt.Tx) error {
		v1, err := tx.CreateBucketIfNotExists(bucketV1)
		if err != nil {
			return err
		}
		if _, err := v1.CreateBucketIfNotExists(bucketContainers); err != nil {
			return err
		}
		_, err = v1.CreateBucketIfNotExists(bucketNames)
		return err
	}); err != nil {
		return nil, fmt.Errorf("container records: %w", err)
	}
	recs, err := s.records()
	if err != nil {
		return nil, err
	}
	s.cleanOrphans(ctx, recs)
	for _, r := range recs {
		c := s.track(r.GetId())
		close(c.exited)
		if r.GetState().GetStatus() == StatusRunning || r.GetState().GetStatus() == StatusPaused {
			s.recover(ctx, c, r)
		}
	}
	if gc, ok := s.cfg.Networks.(gcNetworks); ok {
		ids := []string{}
		for _, r := range recs {
			ids = append(ids, r.GetId())
		}
		if err := gc.GC(ctx, ids); err != nil {
			log.L(ctx).Warn("network garbage collection", "error", err)
		}
	}
	// Containers whose restart policy says so start again, in the
	// background: the daemon does not wait for them to serve.
	if recs, err := s.records(); err == nil {
		go s.startAtStartup(context.WithoutCancel(ctx), recs)
	}
	return s, nil
}

// Close lets the containers run on: their shims outlive berthd. It closes
// the connections to the shims and the streams berthd copies.
func (s *Service) Close() error {
	s.stop()
	s.mu.Lock()
	cs := make([]*container, 0, len(s.live))
	for _, c := range s.live {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	for _, c := range cs {
		c.mu.Lock()
		if c.run != nil {
			c.run.detach()
		}
		c.mu.Unlock()
	}
	return nil
}

// InUse tells whether a container was made from the image with this ID,
// for the image library's removal and prune.
func (s *Service) InUse(ctx context.Context, imageID string) bool {
	recs, err := s.records()
	if err != nil {
		return true
	}
	for _, r := range recs {
		if r.GetImageId() == imageID {
			return true
		}
	}
	return false
}

// track returns the in-memory half of container id, making it if needed.
func (s *Service) track(id string) *container {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.live[id]; ok {
		return c
	}
	c := &container{id: id, started: make(chan struct{}), exited: make(chan struct{}), removed: make(chan struct{})}
	if !s.recorded(id) {
		// A call that resolved the container before a removal finished
		// (Remove deletes the record, then untracks): it gets a container
		// that is already gone, and nothing is left in live for it.
		close(c.exited)
		close(c.removed)
		return c
	}
	s.live[id] = c
	return c
}

// recorded says whether id has a record.
func (s *Service) recorded(id string) bool {
	found := false
	_ = s.db.View(func(tx *bolt.Tx) error {
		found = tx.Bucket(bucketV1).Bucket(bucketContainers).Get([]byte(id)) != nil
		return nil
	})
	return found
}

func (s *Service) untrack(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.live, id)
}

// The statuses, docker's.
const (
	StatusCreated  = "created"
	StatusRunning  = "running"
	StatusPaused   = "paused"
	StatusExited   = "exited"
	StatusRemoving = "removing"
	StatusDead     = "dead"
)

func newID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Service) dir(id string) string    { return filepath.Join(s.cfg.Root, id) }
func (s *Service) bundle(id string) string { return filepath.Join(s.cfg.State, id) }

func snapshotKey(id string) string { return "berth/container/" + id }

// records returns every record.
func (s *Service) records() ([]*containersv1.Container, error) {
	var out []*containersv1.Container
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketV1).Bucket(bucketContainers).ForEach(func(k, v []byte) error {
			var r containersv1.Container
			if err := proto.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("record of container %s: %w", k, err)
			}
			out = append(out, &r)
			return nil
		})
	})
	return out, err
}

// record returns the record of container id.
func (s *Service) record(id string) (*containersv1.Container, error) {
	var r containersv1.Container
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketV1).Bucket(bucketContainers).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("No such container: %s: %w", id, errdefs.ErrNotFound)
		}
		return proto.Unmarshal(v, &r)
	})
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// put writes a record.
func (s *Service) put(r *containersv1.Container) error {
	v, err := proto.Marshal(r)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketV1).Bucket(bucketContainers).Put([]byte(r.GetId()), v)
	})
}

// update changes a record in place.
func (s *Service) update(id string, fn func(r *containersv1.Container)) (*containersv1.Container, error) {
	var out *containersv1.Container
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketV1).Bucket(bucketContainers)
		v := b.Get([]byte(id))
		if v == nil {
			return fmt.Errorf("No such container: %s: %w", id, errdefs.ErrNotFound)
		}
		var r containersv1.Container
		if err := proto.Unmarshal(v, &r); err != nil {
			return err
		}
		if r.State == nil {
			r.State = &containersv1.State{}
		}
		fn(&r)
		nv, err := proto.Marshal(&r)
		if err != nil {
			return err
		}
		out = &r
		return b.Put([]byte(id), nv)
	})
	return out, err
}

// Resolve finds a container by ID, unique ID prefix or name.
func (s *Service) Resolve(ref string) (string, error) {
	if ref == "" {
		return "", fmt.Errorf("no container given: %w", errdefs.ErrInvalidArgument)
	}
	name := ref
	if name[0] == '/' {
		name = name[1:]
	}
	var id string
	err := s.db.View(func(tx *bolt.Tx) error {
		v1 := tx.Bucket(bucketV1)
		if v := v1.Bucket(bucketNames).Get([]byte(name)); v != nil {
			id = string(v)
			return nil
		}
		if v1.Bucket(bucketContainers).Get([]byte(ref)) != nil {
			id = ref
			return nil
		}
		var found []string
		c := v1.Bucket(bucketContainers).Cursor()
		for k, _ := c.Seek([]byte(ref)); k != nil && len(k) >= len(ref) && string(k[:len(ref)]) == ref; k, _ = c.Next() {
			found = append(found, string(k))
		}
		switch len(found) {
		case 0:
			return fmt.Errorf("No such container: %s: %w", ref, errdefs.ErrNotFound)
		case 1:
			id = found[0]
			return nil
		}
		return fmt.Errorf("multiple containers found with provided prefix: %s: %w", ref, errdefs.ErrInvalidArgument)
	})
	return id, err
}

// lookup resolves ref and reads its record.
func (s *Service) lookup(ref string) (string, *containersv1.Container, error) {
	id, err := s.Resolve(ref)
	if err != nil {
		return "", nil, err
	}
	r, err := s.record(id)
	if err != nil {
		return "", nil, err
	}
	return id, r, nil
}

func (s *Service) publish(ctx context.Context, action string, r *containersv1.Container, extra map[string]string) {
	attrs := map[string]string{"name": r.GetName(), "image": r.GetImage()}
	for k, v := range r.GetConfig().GetLabels() {
		attrs[k] = v
	}
	for k, v := range extra {
		attrs[k] = v
	}
	s.cfg.Events.Publish(ctx, events.Event{Type: events.TypeContainer, Action: action, Actor: events.Actor{ID: r.GetId(), Attributes: attrs}})
}

// ShimEvent takes an event a shim forwarded: the OOM kills that the task
// API reports only as events. Exits are followed through Wait.
func (s *Service) ShimEvent(ctx context.Context, namespace, topic string, ev proto.Message) {
	oom, ok := ev.(*apievents.TaskOOM)
	if !ok || namespace != s.cfg.Shim.Namespace {
		return
	}
	r, err := s.update(oom.GetContainerID(), func(r *containersv1.Container) { r.State.OomKilled = true })
	if err != nil {
		log.L(ctx).Debug("oom event of an unknown container", "id", oom.GetContainerID(), "error", err)
		return
	}
	s.publish(ctx, events.ActionOOM, r, nil)
}
