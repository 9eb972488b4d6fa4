// Package daemon is berthd: it takes its root and state directories
// (locked, so one daemon per root), opens the metadata database, starts
// or connects to the snapshot store, serves berth's API over ttrpc on a
// unix socket, and shuts down in order. cmd/berthd parses the flags into
// a Config and wires the services in; see README.md.
package daemon

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	bolt "go.etcd.io/bbolt"

	"github.com/berth-project/berth/manager/events"
	"github.com/berth-project/berth/manager/host"
	"github.com/berth-project/berth/manager/log"
	"github.com/berth-project/berth/manager/snapshots"
)

// Defaults of the Config.
const (
	DefaultRoot            = "/var/lib/berth"
	DefaultState           = host.DefaultState
	DefaultShutdownTimeout = 15 * time.Second
)

// DefaultInsecureRegistries are spoken to over plain http even when not
// configured: registries on this machine, as docker allows.
var DefaultInsecureRegistries = []string{"127.0.0.0/8", "::1/128", "localhost"}

// Config is what berthd runs with.
type Config struct {
	// Root holds what lasts: metadata, content, snapshots.
	Root string
	// State holds what lives as long as the daemon: sockets, the pid file.
	State string
	// Host is the address to serve on; empty is the socket in State.
	Host string
	// Group, a name or a numeric ID, may use the socket besides root.
	Group string
	// SnapshotterAddress is the socket of a snapshot store already
	// serving; empty starts berth-snapshotter with its root under Root.
	SnapshotterAddress string
	// InsecureRegistries are added to DefaultInsecureRegistries.
	InsecureRegistries []string
	// LogLevel is the log's level, passed on to the snapshotter.
	LogLevel string
	// Output receives the snapshotter's log; nil discards it.
	Output io.Writer
	// Bridge and Subnet are the bridge network's (defaults in
	// manager/network); NoNetwork runs without it (--network host and
	// none only).
	Bridge, Subnet string
	NoNetwork      bool
	// CgroupParent holds the containers' cgroups; empty is "/berth".
	CgroupParent string
	// ShutdownTimeout bounds how long calls in flight may take to finish
	// once shutdown begins, and then the snapshotter to stop.
	ShutdownTimeout time.Duration
}

func (c *Config) setDefaults() error {
	if c.Root == "" {
		c.Root = DefaultRoot
	}
	if c.State == "" {
		c.State = DefaultState
	}
	for _, d := range []*string{&c.Root, &c.State} {
		abs, err := filepath.Abs(*d)
		if err != nil {
			return fmt.Errorf("directory %q: %w", *d, err)
		}
		*d = abs
	}
	if c.Host == "" {
		c.Host = host.ForState(c.State)
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.Output == nil {
		c.Output = io.Discard
	}
	return nil
}

// Daemon is a running berthd, before and while it serves.
type Daemon struct {
	cfg       Config
	socket    string
	id        string
	locks     []*os.File
	pidFile   bool // written by this daemon
	db        *bolt.DB
	broker    *events.Broker
	snapshots *snapshots.Store
}

// New prepares a daemon: it takes the directories, opens the metadata and
// starts (or connects to) the snapshot store. On error everything taken
// so far is given back.
func New(ctx context.Context, cfg Config) (_ *Daemon, retErr error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	socket, err := host.Parse(cfg.Host)
	if err != nil {
		return nil, err
	}
	d := &Daemon{cfg: cfg, socket: socket, broker: events.NewBroker()}
	defer func() {
		if retErr != nil {
			retErr = errors.Join(retErr, d.Close(ctx))
		}
	}()
	for _, dir := range []string{cfg.Root, cfg.State} {
		// 0711: other users may pass through (containers' processes reach
		// their root filesystems below), not list.
		if err := os.MkdirAll(dir, 0o711); err != nil {
			return nil, fmt.Errorf("make %s: %w", dir, err)
		}
	}
	for _, dir := range []struct{ path, flag string }{{cfg.Root, "--root"}, {cfg.State, "--state"}} {
		f, err := lockDir(dir.path, dir.flag)
		if err != nil {
			return nil, err
		}
		d.locks = append(d.locks, f)
	}
	if err := os.WriteFile(d.pidPath(), fmt.Appendf(nil, "%d\n", os.Getpid()), 0o644); err != nil {
		return nil, fmt.Errorf("write the pid file: %w", err)
	}
	d.pidFile = true
	d.db, err = bolt.Open(filepath.Join(cfg.Root, "metadata.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("open the metadata in %s: %w", cfg.Root, err)
	}
	if d.id, err = loadID(d.db); err != nil {
		return nil, err
	}
	log.L(ctx).Info("starting", "root", cfg.Root, "state", cfg.State, "id", d.id)
	d.snapshots, err = snapshots.Open(ctx, snapshots.Config{
		Address:  cfg.SnapshotterAddress,
		Root:     filepath.Join(cfg.Root, "snapshotter"),
		Socket:   filepath.Join(cfg.State, "snapshotter.sock"),
		LogLevel: cfg.LogLevel,
		Output:   cfg.Output,
		Events:   d.broker,
	})
	if err != nil {
		return nil, fmt.Errorf("snapshot store: %w", err)
	}
	return d, nil
}

// The bbolt layout: each part of berthd keeps its records in a bucket of
// its own under v1 (v1/daemon here, v1/images for the image library...).
var (
	bucketV1     = []byte("v1")
	bucketDaemon = []byte("daemon")
	keyID        = []byte("id")
)

// loadID returns the daemon's ID, made the first time a root is used: it
// tells apart the daemons of a machine, in `info` and in the logs.
func loadID(db *bolt.DB) (string, error) {
	var id string
	err := db.Update(func(tx *bolt.Tx) error {
		v1, err := tx.CreateBucketIfNotExists(bucketV1)
		if err != nil {
			return err
		}
		b, err := v1.CreateBucketIfNotExists(bucketDaemon)
		if err != nil {
			return err
		}
		if v := b.Get(keyID); v != nil {
			id = string(v)
			return nil
		}
		id = rand.Text()
		return b.Put(keyID, []byte(id))
	})
	if err != nil {
		return "", fmt.Errorf("daemon ID: %w", err)
	}
	return id, nil
}

// ID is the daemon's ID.
func (d *Daemon) ID() string { return d.id }

// Socket is the path of the socket the daemon serves on.
func (d *Daemon) Socket() string { return d.socket }

// Config is the configuration the daemon runs with, defaults filled in.
func (d *Daemon) Config() Config { return d.cfg }

// DB is the metadata database, for the services to keep their records in
// (each in its own bucket under v1).
func (d *Daemon) DB() *bolt.DB { return d.db }

// Snapshots is the snapshot store.
func (d *Daemon) Snapshots() *snapshots.Store { return d.snapshots }

// Events is the event broker the services publish to.
func (d *Daemon) Events() *events.Broker { return d.broker }

// InsecureRegistries are the registries spoken to over plain http: the
// defaults and the configured ones.
func (d *Daemon) InsecureRegistries() []string {
	out := append([]string(nil), DefaultInsecureRegistries...)
	for _, r := range d.cfg.InsecureRegistries {
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

func (d *Daemon) pidPath() string { return filepath.Join(d.cfg.State, "berthd.pid") }

// Close stops the snapshot store (within the shutdown timeout), closes
// the metadata and gives the directories back. Call it after Serve
// returns.
func (d *Daemon) Close(ctx context.Context) error {
	var errs []error
	if d.snapshots != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.ShutdownTimeout)
		if err := d.snapshots.Close(sctx); err != nil {
			errs = append(errs, fmt.Errorf("stop the snapshot store: %w", err))
		}
		cancel()
		d.snapshots = nil
	}
	if d.db != nil {
		if err := d.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close the metadata: %w", err))
		}
		d.db = nil
	}
	if d.pidFile {
		// The pid file goes while the lock is still held, so it never
		// names a daemon that is gone while another one runs.
		if err := os.Remove(d.pidPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
		d.pidFile = false
	}
	for _, f := range d.locks {
		f.Close()
	}
	d.locks = nil
	return errors.Join(errs...)
}

// LockedError is the error New returns when another berthd uses the root
// or state directory. Its kind is errdefs.ErrFailedPrecondition.
type LockedError struct {
	Flag   string // --root or --state
	Dir    string
	Holder string // "pid 1234", when the lock file says
}

func (e *LockedError) Error() string {
	holder := "another berthd"
	if e.Holder != "" {
		holder += " (" + e.Holder + ")"
	}
	return fmt.Sprintf("%s %s is in use by %s: stop it, or give this berthd another %s", e.Flag, e.Dir, holder, e.Flag)
}

func (e *LockedError) Unwrap() error { return errdefs.ErrFailedPrecondition }

// lockDir takes berthd.lock in dir (flag names the option that chose
// dir, for the message), writing this process's ID in it; it fails with
// a *LockedError when another berthd has it. The lock file stays when
// the daemon stops: removing a lock file races with the next one to
// take it.
func lockDir(dir, flag string) (*os.File, error) {
	p := filepath.Join(dir, "berthd.lock")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", p, err)
	}
	if err := flock(f); err != nil {
		f.Close()
		if errors.Is(err, errWouldBlock) {
			le := &LockedError{Flag: flag, Dir: dir}
			if b, rerr := os.ReadFile(p); rerr == nil && strings.TrimSpace(string(b)) != "" {
				le.Holder = "pid " + strings.TrimSpace(string(b))
			}
			return nil, le
		}
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, fmt.Errorf("write %s: %w", p, err)
	}
	if _, err := f.WriteAt(fmt.Appendf(nil, "%d\n", os.Getpid()), 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("write %s: %w", p, err)
	}
	return f, nil
}
