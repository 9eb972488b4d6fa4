// Package content is berthd's content-addressed blob store: manifests,
// indexes, image configs and layers, each kept once under its digest.
//
// On disk, under root:
//
//	blobs/<alg>/<hex>      committed blobs, read-only, verified before they appear
//	ingest/<alg>-<hex>/    a blob being written: data (the bytes so far)
//
// A blob is written through a Writer keyed by its expected digest: the
// digest is computed while the bytes stream in, and the file is renamed
// into blobs/ only once size and digest match, so no reader ever sees a
// corrupt or partial blob. An ingest that stops half-way (a dropped
// connection, a crash) keeps its partial data, and the next Writer for the
// same digest continues from its size: a pull asks the registry for the rest
// with an HTTP Range. A write that finds the disk full is a *DiskFullError
// and keeps nothing: resuming would fill the disk again.
//
// Labels (for GC and for what a blob came from) live in a bbolt database
// that the caller owns and may share with other metadata.
package content

import (
	"context"
	_ "crypto/sha256" // the digest algorithms go-digest offers
	_ "crypto/sha512"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// Info describes a committed blob.
type Info struct {
	Digest    digest.Digest
	Size      int64
	CreatedAt time.Time
	UpdatedAt time.Time
	Labels    map[string]string
}

// Store is a content store. It is safe for concurrent use.
type Store struct {
	root string
	db   *bolt.DB

	mu sync.Mutex
	// active holds the ingests in progress, by expected digest; the channel
	// closes when the ingest's Writer is released.
	active map[digest.Digest]chan struct{}
}

// The bbolt layout: v1/content/<digest>/labels/<key> = value, and
// created/updated as RFC 3339 times.
var (
	bucketV1      = []byte("v1")
	bucketContent = []byte("content")
	bucketLabels  = []byte("labels")
	keyCreated    = []byte("created")
	keyUpdated    = []byte("updated")
)

// Open opens (or makes) the store under root, keeping labels in db.
func Open(ctx context.Context, root string, db *bolt.DB) (*Store, error) {
	for _, d := range []string{root, filepath.Join(root, "blobs"), filepath.Join(root, "ingest")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("content store: %w", err)
		}
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		v1, err := tx.CreateBucketIfNotExists(bucketV1)
		if err != nil {
			return err
		}
		_, err = v1.CreateBucketIfNotExists(bucketContent)
		return err
	}); err != nil {
		return nil, fmt.Errorf("content store: metadata: %w", err)
	}
	// Temporary files of an Add are removed by the Add itself; those left
	// are from a crash, as no Add runs before Open returns.
	if tmps, err := filepath.Glob(filepath.Join(root, "ingest", "tmp-*")); err == nil {
		for _, t := range tmps {
			os.RemoveAll(t)
		}
	}
	return &Store{root: root, db: db, active: map[digest.Digest]chan struct{}{}}, nil
}

// Root is the directory the store keeps its files in.
func (s *Store) Root() string { return s.root }

func (s *Store) blobPath(d digest.Digest) string {
	return filepath.Join(s.root, "blobs", string(d.Algorithm()), d.Encoded())
}

func (s *Store) ingestDir(d digest.Digest) string {
	return filepath.Join(s.root, "ingest", string(d.Algorithm())+"-"+d.Encoded())
}

// validate refuses digests that are malformed or of an algorithm this
// build cannot compute: they could not be verified, and their hex names
// a file.
func validate(d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("digest %q: %w: %w", d, err, errdefs.ErrInvalidArgument)
	}
	return nil
}

// Info returns the Info of the blob d.
func (s *Store) Info(ctx context.Context, d digest.Digest) (Info, error) {
	if err := validate(d); err != nil {
		return Info{}, err
	}
	st, err := os.Stat(s.blobPath(d))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Info{}, fmt.Errorf("content %s: %w", d, errdefs.ErrNotFound)
		}
		return Info{}, fmt.Errorf("content %s: %w", d, err)
	}
	info := Info{Digest: d, Size: st.Size(), CreatedAt: st.ModTime(), UpdatedAt: st.ModTime()}
	err = s.db.View(func(tx *bolt.Tx) error {
		b := contentBucket(tx).Bucket([]byte(d))
		if b == nil {
			return nil
		}
		readMeta(b, &info)
		return nil
	})
	return info, err
}

// Exists tells whether the blob d is in the store.
func (s *Store) Exists(ctx context.Context, d digest.Digest) bool {
	if validate(d) != nil {
		return false
	}
	_, err := os.Stat(s.blobPath(d))
	return err == nil
}

func contentBucket(tx *bolt.Tx) *bolt.Bucket {
	return tx.Bucket(bucketV1).Bucket(bucketContent)
}

func readMeta(b *bolt.Bucket, info *Info) {
	if v := b.Get(keyCreated); v != nil {
		if t, err := time.Parse(time.RFC3339Nano, string(v)); err == nil {
			info.CreatedAt = t
		}
	}
	if v := b.Get(keyUpdated); v != nil {
		if t, err := time.Parse(time.RFC3339Nano, string(v)); err == nil {
			info.UpdatedAt = t
		}
	}
	if lb := b.Bucket(bucketLabels); lb != nil {
		info.Labels = map[string]string{}
		lb.ForEach(func(k, v []byte) error {
			info.Labels[string(k)] = string(v)
			return nil
		})
	}
}

// Update changes the labels of the blob info.Digest: those named by
// fieldpaths ("labels" for all, "labels.<key>" for one), or all of them when
// none are named. A label set to "" is removed.
func (s *Store) Update(ctx context.Context, info Info, fieldpaths ...string) (Info, error) {
	if _, err := s.Info(ctx, info.Digest); err != nil {
		return Info{}, err
	}
	all := len(fieldpaths) == 0
	var keys []string
	for _, p := range fieldpaths {
		switch {
		case p == "labels":
			all = true
		case strings.HasPrefix(p, "labels."):
			keys = append(keys, strings.TrimPrefix(p, "labels."))
		default:
			return Info{}, fmt.Errorf("content %s: cannot update %q, only labels: %w", info.Digest, p, errdefs.ErrInvalidArgument)
		}
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := contentBucket(tx).CreateBucketIfNotExists([]byte(info.Digest))
		if err != nil {
			return err
		}
		if all {
			if b.Bucket(bucketLabels) != nil {
				if err := b.DeleteBucket(bucketLabels); err != nil {
					return err
				}
			}
			keys = keys[:0]
			for k := range info.Labels {
				keys = append(keys, k)
			}
		}
		lb, err := b.CreateBucketIfNotExists(bucketLabels)
		if err != nil {
			return err
		}
		for _, k := range keys {
			v := info.Labels[k]
			if v == "" {
				if err := lb.Delete([]byte(k)); err != nil {
					return err
				}
				continue
			}
			if err := lb.Put([]byte(k), []byte(v)); err != nil {
				return err
			}
		}
		if b.Get(keyCreated) == nil {
			if err := b.Put(keyCreated, []byte(time.Now().UTC().Format(time.RFC3339Nano))); err != nil {
				return err
			}
		}
		return b.Put(keyUpdated, []byte(time.Now().UTC().Format(time.RFC3339Nano)))
	})
	if err != nil {
		return Info{}, fmt.Errorf("content %s: update labels: %w", info.Digest, err)
	}
	return s.Info(ctx, info.Digest)
}

// ReaderAt reads a committed blob.
type ReaderAt interface {
	io.ReaderAt
	io.Closer
	Size() int64
}

type fileReaderAt struct {
	*os.File
	size int64
}

func (f fileReaderAt) Size() int64 { return f.size }

// ReaderAt opens the blob d for reading.
func (s *Store) ReaderAt(ctx context.Context, d digest.Digest) (ReaderAt, error) {
	if err := validate(d); err != nil {
		return nil, err
	}
	f, err := os.Open(s.blobPath(d))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("content %s: %w", d, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("content %s: %w", d, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("content %s: %w", d, err)
	}
	return fileReaderAt{f, st.Size()}, nil
}

// ReadBlob reads the whole blob d; meant for manifests and configs.
func (s *Store) ReadBlob(ctx context.Context, d digest.Digest) ([]byte, error) {
	ra, err := s.ReaderAt(ctx, d)
	if err != nil {
		return nil, err
	}
	defer ra.Close()
	b := make([]byte, ra.Size())
	if _, err := ra.ReadAt(b, 0); err != nil && !(errors.Is(err, io.EOF) && len(b) == 0) {
		return nil, fmt.Errorf("content %s: %w", d, err)
	}
	return b, nil
}

// Delete removes the blob d and its labels.
func (s *Store) Delete(ctx context.Context, d digest.Digest) error {
	if err := validate(d); err != nil {
		return err
	}
	err := os.Remove(s.blobPath(d))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("content %s: %w", d, errdefs.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("delete content %s: %w", d, err)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := contentBucket(tx)
		if b.Bucket([]byte(d)) != nil {
			return b.DeleteBucket([]byte(d))
		}
		return nil
	})
}

// Walk calls fn for each committed blob; an error from fn stops the walk
// and is returned.
func (s *Store) Walk(ctx context.Context, fn func(Info) error) error {
	algs, err := os.ReadDir(filepath.Join(s.root, "blobs"))
	if err != nil {
		return fmt.Errorf("walk content: %w", err)
	}
	for _, a := range algs {
		alg := digest.Algorithm(a.Name())
		if !a.IsDir() || !alg.Available() {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(s.root, "blobs", a.Name()))
		if err != nil {
			return fmt.Errorf("walk content: %w", err)
		}
		for _, e := range ents {
			if err := ctx.Err(); err != nil {
				return err
			}
			d := digest.NewDigestFromEncoded(alg, e.Name())
			if d.Validate() != nil {
				continue
			}
			info, err := s.Info(ctx, d)
			if errdefs.IsNotFound(err) {
				continue // deleted meanwhile
			}
			if err != nil {
				return err
			}
			if err := fn(info); err != nil {
				return err
			}
		}
	}
	return nil
}

// ioError turns a failed write into an error kind the caller can act on:
// a full disk is a *DiskFullError (ResourceExhausted).
func ioError(what string, err error) error {
	if isDiskFull(err) {
		return &DiskFullError{What: what, Err: err}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// isDiskFull tells whether err is a full disk or an exhausted quota.
func isDiskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// DiskFullError is a write that found the disk full (ENOSPC) or the quota
// exhausted (EDQUOT). It reads as docker's "no space left on device" and
// says what to do; it is an errdefs.ErrResourceExhausted and wraps the
// system's error.
type DiskFullError struct {
	What string // what could not be written: "store sha256:…", "unpack layer sha256:…"
	Err  error  // the failed call's error
}

func (e *DiskFullError) Error() string {
	cause := "no space left on device"
	if errors.Is(e.Err, syscall.EDQUOT) {
		cause = "disk quota exceeded"
	}
	// The file names the filesystem that is full, as docker's message does.
	var pe *fs.PathError
	if errors.As(e.Err, &pe) {
		return fmt.Sprintf("%s: %s (%s %s): free some disk (berth image prune, berth system prune)", e.What, cause, pe.Op, pe.Path)
	}
	return fmt.Sprintf("%s: %s: free some disk (berth image prune, berth system prune)", e.What, cause)
}

func (e *DiskFullError) Unwrap() []error { return []error{e.Err, errdefs.ErrResourceExhausted} }
