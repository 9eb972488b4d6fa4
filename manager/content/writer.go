package content

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// MismatchError is a blob whose bytes are not what its descriptor says. It
// is an errdefs.ErrDataLoss: what came in was corrupt, and nothing of it
// was kept.
type MismatchError struct {
	Expected     digest.Digest
	Actual       digest.Digest // empty when the size was wrong
	ExpectedSize int64
	Size         int64
}

func (e *MismatchError) Error() string {
	if e.Actual == "" {
		return fmt.Sprintf("content %s: got %d bytes, expected %d", e.Expected, e.Size, e.ExpectedSize)
	}
	return fmt.Sprintf("content digest mismatch: expected %s, got %s", e.Expected, e.Actual)
}

// Is makes the error an errdefs.ErrDataLoss.
func (e *MismatchError) Is(target error) bool { return target == errdefs.ErrDataLoss }

// Writer writes one blob. It is not safe for concurrent use.
type Writer struct {
	s        *Store
	expected digest.Digest
	size     int64 // expected size; -1 if unknown
	dir      string
	f        *os.File
	h        hash.Hash
	offset   int64
	released bool
	labels   map[string]string
	// full is set when a write found the disk full: the partial data is
	// not kept then (resuming it would only fill the disk again, and
	// until then it holds the space other writes need).
	full bool
}

// WriterOpt adjusts a Writer.
type WriterOpt func(*Writer)

// WithLabels sets labels on the blob when it is committed.
func WithLabels(labels map[string]string) WriterOpt {
	return func(w *Writer) { w.labels = labels }
}

// Writer starts or resumes the ingest of the blob expected, of size bytes
// (-1 if unknown). It returns an errdefs.ErrAlreadyExists error when the
// blob is already committed. When another Writer for the same digest is in
// use, it waits for that one to be released (or for ctx) and then tries
// again: two pulls sharing a layer download it once.
//
// The Writer's Offset is where the ingest stands: the bytes of an earlier,
// interrupted ingest count and are already hashed, so the caller writes
// only what follows.
func (s *Store) Writer(ctx context.Context, expected digest.Digest, size int64, opts ...WriterOpt) (*Writer, error) {
	if err := validate(expected); err != nil {
		return nil, err
	}
	for {
		if s.Exists(ctx, expected) {
			return nil, fmt.Errorf("content %s: %w", expected, errdefs.ErrAlreadyExists)
		}
		s.mu.Lock()
		wait, busy := s.active[expected]
		if !busy {
			s.active[expected] = make(chan struct{})
		}
		s.mu.Unlock()
		if !busy {
			break
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	w := &Writer{s: s, expected: expected, size: size, dir: s.ingestDir(expected), h: expected.Algorithm().Hash()}
	for _, o := range opts {
		o(w)
	}
	if err := w.open(); err != nil {
		w.release()
		return nil, err
	}
	return w, nil
}

// open opens the partial data and hashes what it holds.
func (w *Writer) open() error {
	if s := w.s; s.Exists(context.Background(), w.expected) {
		// Committed between the check and the claim.
		return fmt.Errorf("content %s: %w", w.expected, errdefs.ErrAlreadyExists)
	}
	if err := os.MkdirAll(w.dir, 0o700); err != nil {
		return ioError("store "+w.expected.String(), err)
	}
	f, err := os.OpenFile(filepath.Join(w.dir, "data"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return ioError("store "+w.expected.String(), err)
	}
	w.f = f
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("ingest %s: %w", w.expected, err)
	}
	n := st.Size()
	if w.size >= 0 && n > w.size {
		n = 0 // cannot be the start of this blob
	}
	if n > 0 {
		// Hash what is there. Reading it back costs less than fetching it
		// again, and the final digest check catches a partial file that a
		// crash left with bad bytes.
		if _, err := io.Copy(w.h, io.NewSectionReader(f, 0, n)); err != nil {
			return fmt.Errorf("ingest %s: read partial data: %w", w.expected, err)
		}
	}
	if err := w.truncate(n); err != nil {
		return err
	}
	// Touch the directory: GC tells abandoned ingests by their age.
	now := time.Now()
	_ = os.Chtimes(w.dir, now, now)
	return nil
}

func (w *Writer) truncate(n int64) error {
	if err := w.f.Truncate(n); err != nil {
		return w.ioError(err)
	}
	if _, err := w.f.Seek(n, io.SeekStart); err != nil {
		return fmt.Errorf("ingest %s: %w", w.expected, err)
	}
	w.offset = n
	return nil
}

// Digest is the digest the blob must have.
func (w *Writer) Digest() digest.Digest { return w.expected }

// Offset is the number of bytes the ingest holds.
func (w *Writer) Offset() int64 { return w.offset }

// Reset throws away what the ingest holds, to start again from offset 0
// (a server that ignored a Range request sends the whole blob).
func (w *Writer) Reset() error {
	if w.released {
		return errors.New("content writer is closed")
	}
	w.h.Reset()
	return w.truncate(0)
}

// Write appends p to the ingest.
func (w *Writer) Write(p []byte) (int, error) {
	if w.released {
		return 0, errors.New("content writer is closed")
	}
	if w.size >= 0 && w.offset+int64(len(p)) > w.size {
		return 0, &MismatchError{Expected: w.expected, ExpectedSize: w.size, Size: w.offset + int64(len(p))}
	}
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.offset += int64(n)
	if err != nil {
		return n, w.ioError(err)
	}
	return n, nil
}

// ioError is ioError for the ingest, noting a full disk.
func (w *Writer) ioError(err error) error {
	if isDiskFull(err) {
		w.full = true
	}
	return ioError("store "+w.expected.String(), err)
}

// OpenReader opens the ingest's data for reading on a descriptor of its
// own, which stays valid after Commit renames the file into the blob: a
// consumer can follow the bytes as they are written (an unpack that runs
// beside its download) and read the whole blob. The caller closes it.
func (w *Writer) OpenReader() (*os.File, error) {
	if w.released {
		return nil, errors.New("content writer is closed")
	}
	f, err := os.Open(filepath.Join(w.dir, "data"))
	if err != nil {
		return nil, fmt.Errorf("ingest %s: %w", w.expected, err)
	}
	return f, nil
}

// Commit verifies the size and digest of what was written and makes it the
// blob. A mismatch throws the data away (the next ingest starts afresh)
// and returns a *MismatchError. The Writer is released either way.
func (w *Writer) Commit(ctx context.Context) error {
	if w.released {
		return errors.New("content writer is closed")
	}
	defer w.release()
	if w.size >= 0 && w.offset != w.size {
		return fmt.Errorf("ingest %s: %w", w.expected, &MismatchError{Expected: w.expected, ExpectedSize: w.size, Size: w.offset})
	}
	actual := digest.NewDigest(w.expected.Algorithm(), w.h)
	if actual != w.expected {
		w.f.Close()
		w.f = nil
		os.RemoveAll(w.dir)
		return &MismatchError{Expected: w.expected, Actual: actual, ExpectedSize: w.size, Size: w.offset}
	}
	// The bytes reach the disk before the name does: after a crash a blob
	// is whole or absent.
	if err := w.f.Sync(); err != nil {
		err = w.ioError(err)
		w.discardIfFull()
		return err
	}
	if err := w.f.Chmod(0o444); err != nil {
		return fmt.Errorf("ingest %s: %w", w.expected, err)
	}
	w.f.Close()
	w.f = nil
	if err := w.s.place(filepath.Join(w.dir, "data"), w.expected, w.labels); err != nil {
		if isDiskFull(err) {
			w.full = true
			w.discardIfFull()
		}
		return err
	}
	os.RemoveAll(w.dir)
	return nil
}

// place renames the verified file src to the blob d and records it.
func (s *Store) place(src string, d digest.Digest, labels map[string]string) error {
	dst := s.blobPath(d)
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return ioError("commit "+d.String(), err)
	}
	if err := os.Rename(src, dst); err != nil {
		return ioError("commit "+d.String(), err)
	}
	now := []byte(time.Now().UTC().Format(time.RFC3339Nano))
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := contentBucket(tx).CreateBucketIfNotExists([]byte(d))
		if err != nil {
			return err
		}
		if err := b.Put(keyCreated, now); err != nil {
			return err
		}
		if err := b.Put(keyUpdated, now); err != nil {
			return err
		}
		if len(labels) == 0 {
			return nil
		}
		lb, err := b.CreateBucketIfNotExists(bucketLabels)
		if err != nil {
			return err
		}
		for k, v := range labels {
			if err := lb.Put([]byte(k), []byte(v)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		// Not recorded, so not committed: the caller takes it for lost.
		os.Remove(dst)
		return ioError("commit "+d.String()+": metadata", err)
	}
	return nil
}

// Close releases the Writer without committing: the partial data stays
// for a later Writer to resume, unless a write found the disk full (it is
// thrown away then, to give the space back).
func (w *Writer) Close() error {
	if w.released {
		return nil
	}
	if w.full {
		return w.Abort()
	}
	w.release()
	return nil
}

// discardIfFull throws the data away after a failed commit that found the
// disk full; the Writer is released by Commit.
func (w *Writer) discardIfFull() {
	if !w.full {
		return
	}
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
	os.RemoveAll(w.dir)
}

// Abort releases the Writer and throws its data away.
func (w *Writer) Abort() error {
	if w.released {
		return nil
	}
	w.release()
	return os.RemoveAll(w.dir)
}

func (w *Writer) release() {
	if w.released {
		return
	}
	w.released = true
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
	w.s.mu.Lock()
	if ch, ok := w.s.active[w.expected]; ok {
		close(ch)
		delete(w.s.active, w.expected)
	}
	w.s.mu.Unlock()
}

// Ingest writes r, whose bytes must have digest expected and size bytes (-1
// if unknown), as a blob, resuming an interrupted ingest: the first
// Offset bytes of r are skipped (r must be the whole blob). An existing
// blob is not an error.
func (s *Store) Ingest(ctx context.Context, expected digest.Digest, size int64, r io.Reader, opts ...WriterOpt) error {
	w, err := s.Writer(ctx, expected, size, opts...)
	if errdefs.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer w.Close()
	if off := w.Offset(); off > 0 {
		if _, err := io.CopyN(io.Discard, r, off); err != nil {
			return fmt.Errorf("ingest %s: %w", expected, err)
		}
	}
	if _, err := io.Copy(w, ctxReader{ctx, r}); err != nil {
		return err
	}
	return w.Commit(ctx)
}

// Add writes r as a blob whose digest is not known beforehand (an image
// import, a layer of a legacy archive) and returns its digest and size. The
// data goes through a temporary file of its own: nothing is resumable.
func (s *Store) Add(ctx context.Context, r io.Reader, opts ...WriterOpt) (digest.Digest, int64, error) {
	var rnd [8]byte
	rand.Read(rnd[:])
	dir := filepath.Join(s.root, "ingest", "tmp-"+hex.EncodeToString(rnd[:]))
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", 0, ioError("store the blob", err)
	}
	defer os.RemoveAll(dir)
	f, err := os.Create(filepath.Join(dir, "data"))
	if err != nil {
		return "", 0, ioError("store the blob", err)
	}
	defer f.Close()
	dg := digest.Canonical.Digester()
	n, err := io.Copy(io.MultiWriter(f, dg.Hash()), ctxReader{ctx, r})
	if err != nil {
		return "", 0, ioError("store the blob", err)
	}
	d := dg.Digest()
	if s.Exists(ctx, d) {
		return d, n, nil
	}
	if err := f.Sync(); err != nil {
		return "", 0, ioError("store the blob", err)
	}
	if err := f.Chmod(0o444); err != nil {
		return "", 0, fmt.Errorf("add content: %w", err)
	}
	var w Writer
	for _, o := range opts {
		o(&w)
	}
	if err := s.place(filepath.Join(dir, "data"), d, w.labels); err != nil {
		return "", 0, err
	}
	return d, n, nil
}

// IngestStatus describes an ingest that is not committed.
type IngestStatus struct {
	Expected digest.Digest
	Offset   int64     // bytes it holds
	Active   bool      // a Writer holds it now
	Updated  time.Time // when a Writer last opened it
}

// Ingests lists the ingests that are not committed: those in progress and
// those an interruption left to resume.
func (s *Store) Ingests(ctx context.Context) ([]IngestStatus, error) {
	ents, err := os.ReadDir(filepath.Join(s.root, "ingest"))
	if err != nil {
		return nil, fmt.Errorf("list ingests: %w", err)
	}
	var out []IngestStatus
	for _, e := range ents {
		alg, encoded, ok := strings.Cut(e.Name(), "-")
		if !ok || alg == "tmp" {
			continue
		}
		st := IngestStatus{Expected: digest.NewDigestFromEncoded(digest.Algorithm(alg), encoded)}
		if st.Expected.Validate() != nil {
			continue
		}
		dir := filepath.Join(s.root, "ingest", e.Name())
		if fi, err := os.Stat(dir); err == nil {
			st.Updated = fi.ModTime()
		}
		if fi, err := os.Stat(filepath.Join(dir, "data")); err == nil {
			st.Offset = fi.Size()
		}
		s.mu.Lock()
		_, st.Active = s.active[st.Expected]
		s.mu.Unlock()
		out = append(out, st)
	}
	return out, nil
}

// AbortIngest throws away the partial data of the ingest of expected. An
// ingest that a Writer holds is left alone (errdefs.ErrUnavailable).
func (s *Store) AbortIngest(ctx context.Context, expected digest.Digest) error {
	if err := validate(expected); err != nil {
		return err
	}
	s.mu.Lock()
	_, busy := s.active[expected]
	if !busy {
		// Claimed while it is removed, so that no Writer opens it meanwhile.
		s.active[expected] = make(chan struct{})
	}
	s.mu.Unlock()
	if busy {
		return fmt.Errorf("ingest %s is in progress: %w", expected, errdefs.ErrUnavailable)
	}
	err := os.RemoveAll(s.ingestDir(expected))
	s.mu.Lock()
	close(s.active[expected])
	delete(s.active, expected)
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("abort ingest %s: %w", expected, err)
	}
	return nil
}

// ctxReader stops a copy when its context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
