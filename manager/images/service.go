// Package images is berthd's image library: image records by name, pull
// and push through a registry, unpacking into the snapshot store, save and
// load of docker and OCI archives, import of a root filesystem, prune and
// garbage collection. See README.md for the design.
package images

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/berth-project/berth/manager/content"
	"github.com/berth-project/berth/snapshotter"
)

// Config is what a Service is opened with.
type Config struct {
	// Root holds the content store (Root/content) and, unless DB is given,
	// the metadata (Root/metadata.db).
	Root string
	// Snapshotter is the snapshot store images are unpacked into.
	Snapshotter snapshotter.Snapshotter
	// DB, if set, is the bbolt database to keep image records and content
	// labels in (berthd may share one among its services).
	DB *bolt.DB
	// AuthFile is the docker-style config.json holding registry
	// credentials (berth login writes it). Empty: pull anonymously.
	AuthFile string
	// InsecureRegistries may be reached over plain http: host[:port],
	// host, or a CIDR network. Loopback registries always may.
	InsecureRegistries []string
	// Platform images are pulled for, "os/arch[/variant]"; empty: this
	// machine's.
	Platform string
	// MaxConcurrentDownloads bounds the blobs a pull fetches at once
	// (default 6); MaxConcurrentUploads those a push sends (default 5).
	MaxConcurrentDownloads int
	MaxConcurrentUploads   int
	// DownloadRetries is how often a blob download that failed on the
	// network is resumed before the pull gives up (default 3; negative:
	// never).
	DownloadRetries int
	// IngestExpiry is how long GC keeps the partial download of an
	// interrupted pull for a later pull to resume (default 24h).
	IngestExpiry time.Duration
	// InUse tells whether containers use the image with this ID (config
	// digest): such an image is not pruned, and removed only with force.
	InUse func(ctx context.Context, id digest.Digest) bool
	// Events, if set, is told of what happens to images (pull, push, tag,
	// untag, delete, save, load, import), as docker's events report them.
	Events func(ctx context.Context, e Event)
	// ParallelUnpack, when the snapshot store can rebase (overlay), applies
	// all layers of an image at once, each into a parentless snapshot
	// committed onto its parent as that one is committed. Off, a layer is
	// applied onto its committed parent, which layer.Apply consults: it needs
	// the layers below to place a whiteout or opaque directory whose
	// directory the layer itself has no entry for, and without them it
	// drops it. Layers from docker and buildkit carry those entries; other
	// tools' may not. Downloads overlap unpacking either way.
	ParallelUnpack bool
	// Transport replaces the HTTP transport under registry connections
	// (tests). It must not compress.
	Transport http.RoundTripper
}

// Event is something that happened to an image.
type Event struct {
	Action string        // pull, push, tag, untag, delete, save, load, import
	Ref    string        // the reference the action was on, normalised
	ID     digest.Digest // the image ID, if known
}

// Service manages images. It is safe for concurrent use.
type Service struct {
	cfg       Config
	db        *bolt.DB
	ownDB     bool
	content   *content.Store
	sn        snapshotter.Snapshotter
	platform  ocispec.Platform
	rebase    bool
	transport http.RoundTripper

	// gc is held for writing by a collection and for reading while an
	// operation adds to its lease: what a lease names is never collected.
	gc     sync.RWMutex
	mu     sync.Mutex
	leases map[*lease]struct{}

	downloads chan struct{} // semaphore shared by all pulls
	unpacks   chan struct{}
}

// Open opens the image service.
func Open(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Root == "" {
		return nil, fmt.Errorf("images: no root directory: %w", errdefs.ErrInvalidArgument)
	}
	if cfg.Snapshotter == nil {
		return nil, fmt.Errorf("images: no snapshotter: %w", errdefs.ErrInvalidArgument)
	}
	if err := os.MkdirAll(cfg.Root, 0o700); err != nil {
		return nil, fmt.Errorf("images: %w", err)
	}
	if cfg.MaxConcurrentDownloads <= 0 {
		cfg.MaxConcurrentDownloads = 6
	}
	if cfg.MaxConcurrentUploads <= 0 {
		cfg.MaxConcurrentUploads = 5
	}
	if cfg.DownloadRetries == 0 {
		cfg.DownloadRetries = 3
	}
	if cfg.IngestExpiry == 0 {
		cfg.IngestExpiry = 24 * time.Hour
	}
	plat, err := ParsePlatform(cfg.Platform)
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, db: cfg.DB, sn: cfg.Snapshotter, platform: plat, leases: map[*lease]struct{}{}}
	if s.db == nil {
		s.db, err = bolt.Open(filepath.Join(cfg.Root, "metadata.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
		if err != nil {
			return nil, fmt.Errorf("images: metadata: %w", err)
		}
		s.ownDB = true
	}
	fail := func(err error) (*Service, error) {
		if s.ownDB {
			s.db.Close()
		}
		return nil, err
	}
	if err := initRecords(s.db); err != nil {
		return fail(fmt.Errorf("images: metadata: %w", err))
	}
	s.content, err = content.Open(ctx, filepath.Join(cfg.Root, "content"), s.db)
	if err != nil {
		return fail(err)
	}
	s.transport = cfg.Transport
	if s.transport == nil {
		s.transport = newBaseTransport(s.allowHTTP)
	}
	s.downloads = make(chan struct{}, cfg.MaxConcurrentDownloads)
	// Unpacking is bound by CPU (decompression, hashing) and the disk; one
	// more than the CPUs keeps both busy while one waits.
	s.unpacks = make(chan struct{}, runtime.GOMAXPROCS(0)+1)
	s.rebase = cfg.ParallelUnpack && probeRebase(ctx, s.sn)
	s.dropUnpackLeftovers(ctx)
	log.G(ctx).WithField("rebase", s.rebase).Debug("images: snapshot store probed")
	return s, nil
}

// Close releases the metadata if the service opened it. The snapshotter
// is the caller's.
func (s *Service) Close() error {
	if s.ownDB {
		return s.db.Close()
	}
	return nil
}

// Content is the content store, for disk usage reports.
func (s *Service) Content() *content.Store { return s.content }

// Platform is the platform images are pulled for by default.
func (s *Service) Platform() ocispec.Platform { return s.platform }

// probeRebase tells whether the store commits a snapshot onto another
// parent than it was prepared on (overlay can, native cannot): then layers
// unpack in parallel, each into a snapshot of its own.
func probeRebase(ctx context.Context, sn snapshotter.Snapshotter) bool {
	id := randomID()
	base, top := "berth-probe-"+id+"-base", "berth-probe-"+id+"-top"
	keyA, keyB := base+"-active", top+"-active"
	defer func() {
		for _, k := range []string{top, keyB, base, keyA} {
			sn.Remove(ctx, k)
		}
	}()
	if _, err := sn.Prepare(ctx, keyA, ""); err != nil {
		return false
	}
	if err := sn.Commit(ctx, base, keyA); err != nil {
		return false
	}
	if _, err := sn.Prepare(ctx, keyB, ""); err != nil {
		return false
	}
	return sn.Commit(ctx, top, keyB, snapshotter.WithParent(base)) == nil
}

// dropUnpackLeftovers removes the active snapshots of unpacks a crash
// interrupted: none can be in flight before Open returns.
func (s *Service) dropUnpackLeftovers(ctx context.Context) {
	var keys []string
	s.sn.Walk(ctx, func(ctx context.Context, info snapshotter.Info) error {
		if info.Kind != snapshotter.KindCommitted && ours(info) {
			keys = append(keys, info.Name)
		}
		return nil
	})
	for _, k := range keys {
		s.removeSnapshot(ctx, k)
	}
}

func randomID() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *Service) event(ctx context.Context, action, ref string, id digest.Digest) {
	if s.cfg.Events != nil {
		s.cfg.Events(ctx, Event{Action: action, Ref: ref, ID: id})
	}
}

func (s *Service) inUse(ctx context.Context, id digest.Digest) bool {
	return s.cfg.InUse != nil && s.cfg.InUse(ctx, id)
}

// lease protects what an operation in flight has made or is about to use
// (blobs, snapshots) from a garbage collection running meanwhile.
type lease struct {
	s     *Service
	mu    sync.Mutex
	blobs map[digest.Digest]struct{}
	snaps map[string]struct{}
	// made are the blobs and snapshots the operation created: if it fails,
	// abandon removes those nothing else needs.
	madeBlobs map[digest.Digest]struct{}
	madeSnaps map[string]struct{}
}

func (s *Service) newLease() *lease {
	l := &lease{s: s, blobs: map[digest.Digest]struct{}{}, snaps: map[string]struct{}{},
		madeBlobs: map[digest.Digest]struct{}{}, madeSnaps: map[string]struct{}{}}
	s.mu.Lock()
	s.leases[l] = struct{}{}
	s.mu.Unlock()
	return l
}

// addBlob must be called before the blob is looked for or written.
func (l *lease) addBlob(ds ...digest.Digest) {
	l.s.gc.RLock()
	l.mu.Lock()
	for _, d := range ds {
		l.blobs[d] = struct{}{}
	}
	l.mu.Unlock()
	l.s.gc.RUnlock()
}

// addSnapshot must be called before the snapshot is looked for or made.
func (l *lease) addSnapshot(keys ...string) {
	l.s.gc.RLock()
	l.mu.Lock()
	for _, k := range keys {
		l.snaps[k] = struct{}{}
	}
	l.mu.Unlock()
	l.s.gc.RUnlock()
}

// made records a blob (digest) or snapshot (name) the operation created.
func (l *lease) madeBlob(d digest.Digest) {
	l.mu.Lock()
	l.madeBlobs[d] = struct{}{}
	l.mu.Unlock()
}

func (l *lease) madeSnapshot(name string) {
	l.mu.Lock()
	l.madeSnaps[name] = struct{}{}
	l.mu.Unlock()
}

// abandon releases the lease of an operation that failed with err and
// removes what it made that no image and no other operation needs: a
// failed pull or load leaves nothing half-made. Partial downloads stay,
// to resume, unless the operation failed for a full disk: they go then
// too, since they hold the space a next try (or anything else) needs.
func (l *lease) abandon(ctx context.Context, err error) {
	l.release()
	ctx = context.WithoutCancel(ctx)
	l.mu.Lock()
	blobs, snaps := maps.Clone(l.madeBlobs), maps.Clone(l.madeSnaps)
	used := slices.Collect(maps.Keys(l.blobs))
	l.mu.Unlock()
	if errors.Is(err, errdefs.ErrResourceExhausted) {
		for _, d := range used {
			// An ingest another operation holds now is its own business.
			if err := l.s.content.AbortIngest(ctx, d); err != nil && !errdefs.IsUnavailable(err) {
				log.G(ctx).WithError(err).Warnf("images: remove the partial download of %s (GC will)", d)
			}
		}
	}
	if len(blobs) == 0 && len(snaps) == 0 {
		return
	}
	if _, err := l.s.collect(ctx, GCOptions{}, func(d digest.Digest) bool { _, ok := blobs[d]; return ok },
		func(n string) bool { _, ok := snaps[n]; return ok }); err != nil {
		log.G(ctx).WithError(err).Warn("images: removing what a failed operation made (GC will)")
	}
}

func (l *lease) release() {
	l.s.mu.Lock()
	delete(l.s.leases, l)
	l.s.mu.Unlock()
}

// updateRecords runs fn in a metadata transaction that no collection
// overlaps, so that what fn points a record at stays.
func (s *Service) updateRecords(fn func(tx *bolt.Tx) error) error {
	s.gc.RLock()
	defer s.gc.RUnlock()
	return s.db.Update(fn)
}

// ParsePlatform parses "os/arch[/variant]" (empty: this machine).
func ParsePlatform(s string) (ocispec.Platform, error) {
	if s == "" {
		return hostPlatform(), nil
	}
	var p ocispec.Platform
	parts := splitN(s, '/')
	switch len(parts) {
	case 1:
		p = ocispec.Platform{OS: "linux", Architecture: parts[0]}
	case 2:
		p = ocispec.Platform{OS: parts[0], Architecture: parts[1]}
	case 3:
		p = ocispec.Platform{OS: parts[0], Architecture: parts[1], Variant: parts[2]}
	default:
		return p, fmt.Errorf("platform %q: want os/arch[/variant]: %w", s, errdefs.ErrInvalidArgument)
	}
	for _, f := range parts {
		if f == "" {
			return p, fmt.Errorf("platform %q: want os/arch[/variant]: %w", s, errdefs.ErrInvalidArgument)
		}
	}
	return normalizePlatform(p), nil
}

func splitN(s string, sep byte) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

var errNoMatch = errors.New("no match")
