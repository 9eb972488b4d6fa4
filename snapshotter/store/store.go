// Package store is the part of a snapshotter that does not depend on how
// snapshots are laid on disk: metadata in bbolt, the rules of the
// snapshot lifecycle, and crash safety. A Backend (overlay, native) says
// how a snapshot's directory is filled and mounted.
//
// On disk, under root:
//
//	lock            flock: one process per root
//	metadata.db     bbolt (see meta.go)
//	snapshots/<id>  the directory of each snapshot (the backend's layout inside)
//	staging/<tmp>   directories being made, or being thrown away
//
// Crash safety comes from ordering: a snapshot's directory is made in
// staging/ and renamed to snapshots/<id> inside the metadata transaction
// that records it, so a crash leaves either both or an orphan directory;
// a removal deletes the record first and the directory after. Orphans
// have no record and are never visible; Cleanup, which also runs at Open,
// deletes them.
package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/snapshotter"
	"github.com/berth-project/berth/snapshotter/filter"
)

// Backend lays out and mounts snapshots. Each snapshot gets a directory of
// its own; parents are the directories of its parent chain, nearest first.
type Backend interface {
	// Populate fills dir, a new empty directory, for a snapshot of kind on
	// parents. It may take long (the native backend copies the parent).
	Populate(ctx context.Context, dir string, kind snapshotter.Kind, parents []string) error
	// Mounts says how to see the snapshot in dir.
	Mounts(dir string, kind snapshotter.Kind, parents []string) []snapshotter.Mount
	// CanRebase tells whether a snapshot can be committed onto another
	// parent than the one it was prepared on.
	CanRebase() bool
}

// FS is the tree of a snapshot's own files inside its directory: the
// upper directory of an overlay, the whole tree of a native snapshot.
func FS(dir string) string { return filepath.Join(dir, "fs") }

// maxLabelSize bounds a label's key and value together, as containerd does.
const maxLabelSize = 4096

// Store is a snapshotter.Snapshotter over a Backend.
type Store struct {
	root    string
	backend Backend
	db      *bolt.DB
	lock    *os.File

	mu      sync.Mutex
	staging map[string]struct{} // staging dirs in use by operations in flight
}

var _ snapshotter.Snapshotter = (*Store)(nil)

// Open opens (or makes) the store under root and reclaims what a crash
// left behind.
func Open(ctx context.Context, root string, backend Backend) (_ *Store, retErr error) {
	for _, d := range []string{root, filepath.Join(root, "snapshots"), filepath.Join(root, "staging")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("snapshot store: %w", err)
		}
	}
	lock, err := os.OpenFile(filepath.Join(root, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("snapshot store: %w", err)
	}
	defer func() {
		if retErr != nil {
			lock.Close()
		}
	}()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return nil, fmt.Errorf("snapshot store %s is in use by another process (%w): stop it or use another root", root, err)
	}
	db, err := bolt.Open(filepath.Join(root, "metadata.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("snapshot store: metadata: %w", err)
	}
	s := &Store{root: root, backend: backend, db: db, lock: lock, staging: map[string]struct{}{}}
	if err := s.Cleanup(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the metadata and releases the root.
func (s *Store) Close() error {
	err := s.db.Close()
	if lerr := s.lock.Close(); err == nil {
		err = lerr
	}
	return err
}

func (s *Store) dir(id uint64) string {
	return filepath.Join(s.root, "snapshots", strconv.FormatUint(id, 10))
}

func (s *Store) parentDirs(chain []record) []string {
	dirs := make([]string, len(chain))
	for i, p := range chain {
		dirs[i] = s.dir(p.ID)
	}
	return dirs
}

func (s *Store) view(fn func(buckets) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		b, err := openBuckets(tx)
		if err != nil {
			return err
		}
		return fn(b)
	})
}

func (s *Store) update(fn func(buckets) error) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := openBuckets(tx)
		if err != nil {
			return err
		}
		return fn(b)
	})
}

// Stat returns the Info of key.
func (s *Store) Stat(ctx context.Context, key string) (snapshotter.Info, error) {
	var r record
	err := s.view(func(b buckets) (err error) {
		r, err = b.get(key)
		return err
	})
	return r.Info, err
}

// Update changes labels; see snapshotter.Snapshotter.
func (s *Store) Update(ctx context.Context, info snapshotter.Info, fieldpaths ...string) (snapshotter.Info, error) {
	if err := checkLabels(info.Labels); err != nil {
		return snapshotter.Info{}, err
	}
	var out snapshotter.Info
	err := s.update(func(b buckets) error {
		r, err := b.get(info.Name)
		if err != nil {
			return err
		}
		if len(fieldpaths) == 0 {
			fieldpaths = []string{"labels"}
		}
		for _, fp := range fieldpaths {
			switch {
			case fp == "labels":
				r.Labels = info.Labels
			case strings.HasPrefix(fp, "labels."):
				k := strings.TrimPrefix(fp, "labels.")
				if v, ok := info.Labels[k]; ok {
					if r.Labels == nil {
						r.Labels = map[string]string{}
					}
					r.Labels[k] = v
				} else {
					delete(r.Labels, k)
				}
			default:
				return fmt.Errorf("cannot update field %q of snapshot %q: only labels can change: %w", fp, info.Name, errdefs.ErrInvalidArgument)
			}
		}
		r.Updated = now()
		out = r.Info
		return b.put(r)
	})
	return out, err
}

// Usage returns the disk key uses on its own: measured now for an active
// snapshot, recorded at commit for a committed one.
func (s *Store) Usage(ctx context.Context, key string) (snapshotter.Usage, error) {
	var r record
	if err := s.view(func(b buckets) (err error) {
		r, err = b.get(key)
		return err
	}); err != nil {
		return snapshotter.Usage{}, err
	}
	if r.Kind != snapshotter.KindActive {
		return r.Usage, nil
	}
	return diskUsage(ctx, FS(s.dir(r.ID)))
}

// Mounts returns the mounts of key. A committed snapshot is given
// read-only, as a view of it would be.
func (s *Store) Mounts(ctx context.Context, key string) ([]snapshotter.Mount, error) {
	var out []snapshotter.Mount
	err := s.view(func(b buckets) error {
		r, err := b.get(key)
		if err != nil {
			return err
		}
		chain, err := b.chain(r.Parent)
		if err != nil {
			return err
		}
		if r.Kind == snapshotter.KindCommitted {
			out = s.backend.Mounts(s.dir(r.ID), snapshotter.KindView, append([]string{s.dir(r.ID)}, s.parentDirs(chain)...))
			return nil
		}
		out = s.backend.Mounts(s.dir(r.ID), r.Kind, s.parentDirs(chain))
		return nil
	})
	return out, err
}

// Prepare makes an active snapshot.
func (s *Store) Prepare(ctx context.Context, key, parent string, opts ...snapshotter.Opt) ([]snapshotter.Mount, error) {
	return s.create(ctx, snapshotter.KindActive, key, parent, opts)
}

// View makes a read-only snapshot.
func (s *Store) View(ctx context.Context, key, parent string, opts ...snapshotter.Opt) ([]snapshotter.Mount, error) {
	return s.create(ctx, snapshotter.KindView, key, parent, opts)
}

func (s *Store) create(ctx context.Context, kind snapshotter.Kind, key, parent string, opts []snapshotter.Opt) ([]snapshotter.Mount, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	var info snapshotter.Info
	for _, o := range opts {
		if err := o(&info); err != nil {
			return nil, err
		}
	}
	if err := checkLabels(info.Labels); err != nil {
		return nil, err
	}

	// Check first, so that a taken key fails before a long Populate.
	var chain []record
	check := func(b buckets) error {
		if _, err := b.get(key); err == nil {
			return fmt.Errorf("snapshot %q: %w", key, errdefs.ErrAlreadyExists)
		}
		if parent == "" {
			chain = nil
			return nil
		}
		p, err := b.get(parent)
		if err != nil {
			return fmt.Errorf("parent: %w", err)
		}
		if p.Kind != snapshotter.KindCommitted {
			return fmt.Errorf("parent %q is %s, not committed: commit it first: %w", parent, p.Kind, errdefs.ErrInvalidArgument)
		}
		chain, err = b.chain(parent)
		return err
	}
	if err := s.view(check); err != nil {
		return nil, err
	}

	tmp, err := s.newStaging()
	if err != nil {
		return nil, err
	}
	defer s.dropStaging(ctx, tmp)
	if err := s.backend.Populate(ctx, tmp, kind, s.parentDirs(chain)); err != nil {
		return nil, fmt.Errorf("snapshot %q: %w", key, err)
	}

	var mounts []snapshotter.Mount
	err = s.update(func(b buckets) error {
		// Check again: the world may have changed while Populate ran.
		before := s.parentDirs(chain)
		if err := check(b); err != nil {
			return err
		}
		if !equal(before, s.parentDirs(chain)) {
			return fmt.Errorf("snapshot %q: parent %q changed while the snapshot was made; try again: %w", key, parent, errdefs.ErrAborted)
		}
		id, err := b.snaps.NextSequence()
		if err != nil {
			return fmt.Errorf("metadata: %w", err)
		}
		t := now()
		r := record{Info: snapshotter.Info{Kind: kind, Name: key, Parent: parent, Labels: info.Labels, Created: t, Updated: t}, ID: id}
		if err := b.put(r); err != nil {
			return err
		}
		if err := b.link(parent, key); err != nil {
			return err
		}
		dir := s.dir(id)
		// An orphan of a crash may hold the id (the sequence is not
		// saved when a transaction is lost); no record names it.
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("snapshot %q: %w", key, err)
		}
		if err := os.Rename(tmp, dir); err != nil {
			return fmt.Errorf("snapshot %q: %w", key, err)
		}
		mounts = s.backend.Mounts(dir, kind, s.parentDirs(chain))
		return nil
	})
	return mounts, err
}

// Commit turns the active snapshot key into the committed snapshot name.
func (s *Store) Commit(ctx context.Context, name, key string, opts ...snapshotter.Opt) error {
	if err := checkKey(name); err != nil {
		return err
	}
	var r record
	if err := s.view(func(b buckets) (err error) {
		r, err = b.get(key)
		return err
	}); err != nil {
		return err
	}
	if r.Kind != snapshotter.KindActive {
		return fmt.Errorf("snapshot %q is %s, only an active snapshot can be committed: %w", key, r.Kind, errdefs.ErrFailedPrecondition)
	}
	info := snapshotter.Info{Parent: r.Parent}
	for _, o := range opts {
		if err := o(&info); err != nil {
			return err
		}
	}
	if err := checkLabels(info.Labels); err != nil {
		return err
	}
	if info.Parent != r.Parent && !s.backend.CanRebase() {
		return fmt.Errorf("snapshot %q: this backend cannot rebase a snapshot onto another parent (%q, prepared on %q): %w", key, info.Parent, r.Parent, errdefs.ErrNotImplemented)
	}
	// Measure outside the transaction: the tree no longer changes, and a
	// walk must not hold up every other writer.
	usage, err := diskUsage(ctx, FS(s.dir(r.ID)))
	if err != nil {
		return fmt.Errorf("snapshot %q: usage: %w", key, err)
	}
	return s.update(func(b buckets) error {
		cur, err := b.get(key)
		if err != nil {
			return err
		}
		if cur.ID != r.ID || cur.Kind != snapshotter.KindActive {
			return fmt.Errorf("snapshot %q changed while it was committed; try again: %w", key, errdefs.ErrAborted)
		}
		if _, err := b.get(name); err == nil {
			return fmt.Errorf("snapshot %q: %w", name, errdefs.ErrAlreadyExists)
		}
		if info.Parent != "" && info.Parent != cur.Parent {
			p, err := b.get(info.Parent)
			if err != nil {
				return fmt.Errorf("rebase: parent: %w", err)
			}
			if p.Kind != snapshotter.KindCommitted {
				return fmt.Errorf("rebase: parent %q is %s, not committed: %w", info.Parent, p.Kind, errdefs.ErrInvalidArgument)
			}
		}
		if err := b.del(cur); err != nil {
			return err
		}
		t := now()
		committed := record{
			Info:  snapshotter.Info{Kind: snapshotter.KindCommitted, Name: name, Parent: info.Parent, Labels: info.Labels, Created: t, Updated: t},
			ID:    cur.ID,
			Usage: usage,
		}
		if err := b.put(committed); err != nil {
			return err
		}
		return b.link(committed.Parent, name)
	})
}

// Remove removes key, which must have no children.
func (s *Store) Remove(ctx context.Context, key string) error {
	var r record
	err := s.update(func(b buckets) (err error) {
		if r, err = b.get(key); err != nil {
			return err
		}
		if b.hasChildren(key) {
			return fmt.Errorf("snapshot %q has children: remove them first: %w", key, errdefs.ErrFailedPrecondition)
		}
		return b.del(r)
	})
	if err != nil {
		return err
	}
	// The record is gone: what is left of the directory is an orphan that
	// Cleanup deletes if this fails.
	if err := os.RemoveAll(s.dir(r.ID)); err != nil {
		log.G(ctx).WithError(err).Warnf("snapshot %q removed, its directory left for cleanup", key)
	}
	return nil
}

// Walk calls fn for each snapshot that matches one of filters. fn runs
// outside any transaction, so it may call the store.
func (s *Store) Walk(ctx context.Context, fn snapshotter.WalkFunc, filters ...string) error {
	match, err := filter.Parse(filters...)
	if err != nil {
		return err
	}
	var infos []snapshotter.Info
	if err := s.view(func(b buckets) error {
		if b.snaps == nil {
			return nil
		}
		return b.snaps.ForEachBucket(func(k []byte) error {
			r, err := readRecord(string(k), b.snaps.Bucket(k))
			if err != nil {
				return err
			}
			if match(r.Info) {
				infos = append(infos, r.Info)
			}
			return nil
		})
	}); err != nil {
		return err
	}
	for _, info := range infos {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(ctx, info); err != nil {
			return err
		}
	}
	return nil
}

// Cleanup deletes the directories no record names: those of removed
// snapshots whose deletion failed, and what a crash left in staging.
func (s *Store) Cleanup(ctx context.Context) error {
	var doomed []string
	err := s.update(func(b buckets) error {
		// Holding the write transaction: no snapshot is being recorded.
		ids := map[string]bool{}
		if err := b.snaps.ForEachBucket(func(k []byte) error {
			r, err := readRecord(string(k), b.snaps.Bucket(k))
			if err != nil {
				return err
			}
			ids[strconv.FormatUint(r.ID, 10)] = true
			return nil
		}); err != nil {
			return err
		}
		entries, err := os.ReadDir(filepath.Join(s.root, "snapshots"))
		if err != nil {
			return fmt.Errorf("cleanup: %w", err)
		}
		for _, e := range entries {
			if !ids[e.Name()] {
				doomed = append(doomed, filepath.Join(s.root, "snapshots", e.Name()))
			}
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		entries, err = os.ReadDir(filepath.Join(s.root, "staging"))
		if err != nil {
			return fmt.Errorf("cleanup: %w", err)
		}
		for _, e := range entries {
			p := filepath.Join(s.root, "staging", e.Name())
			if _, busy := s.staging[p]; !busy {
				doomed = append(doomed, p)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	var errs []error
	for _, d := range doomed {
		log.G(ctx).Debugf("cleanup: removing %s", d)
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, fmt.Errorf("cleanup: %w", err))
		}
	}
	return errors.Join(errs...)
}

// newStaging makes a fresh directory under staging/ and marks it in use.
func (s *Store) newStaging() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	p := filepath.Join(s.root, "staging", "new-"+hex.EncodeToString(b[:]))
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.Mkdir(p, 0o700); err != nil {
		return "", fmt.Errorf("snapshot store: %w", err)
	}
	s.staging[p] = struct{}{}
	return p, nil
}

// dropStaging removes a staging directory that was not renamed into place.
func (s *Store) dropStaging(ctx context.Context, p string) {
	if err := os.RemoveAll(p); err != nil {
		log.G(ctx).WithError(err).Warnf("staging directory %s left for cleanup", p)
	}
	s.mu.Lock()
	delete(s.staging, p)
	s.mu.Unlock()
}

func checkKey(key string) error {
	if key == "" {
		return fmt.Errorf("a snapshot key must not be empty: %w", errdefs.ErrInvalidArgument)
	}
	if strings.ContainsRune(key, 0) {
		return fmt.Errorf("snapshot key %q holds a NUL byte: %w", key, errdefs.ErrInvalidArgument)
	}
	return nil
}

func checkLabels(labels map[string]string) error {
	for k, v := range labels {
		if len(k)+len(v) > maxLabelSize {
			return fmt.Errorf("label %q: key and value are %d bytes together, more than %d: %w", k, len(k)+len(v), maxLabelSize, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// diskUsage counts the inodes under dir and the disk blocks they hold,
// each hardlinked inode once.
func diskUsage(ctx context.Context, dir string) (snapshotter.Usage, error) {
	var u snapshotter.Usage
	type inode struct{ dev, ino uint64 }
	seen := map[inode]bool{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		in := inode{uint64(st.Dev), st.Ino}
		if seen[in] {
			return nil
		}
		seen[in] = true
		u.Inodes++
		u.Size += st.Blocks * 512
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return snapshotter.Usage{}, nil
	}
	return u, err
}
