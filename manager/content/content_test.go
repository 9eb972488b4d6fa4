package content

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

func newStore(t *testing.T) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, "meta.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := Open(context.Background(), filepath.Join(dir, "content"), db)
	if err != nil {
		t.Fatal(err)
	}
	return s, dir
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestIngestAndRead(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	data := randomBytes(100 << 10)
	d := digest.FromBytes(data)
	if err := s.Ingest(ctx, d, int64(len(data)), bytes.NewReader(data), WithLabels(map[string]string{"k": "v"})); err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != int64(len(data)) || info.Labels["k"] != "v" {
		t.Errorf("info %+v", info)
	}
	got, err := s.ReadBlob(ctx, d)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v", err)
	}
	// Ingesting again is not an error; Writer says it exists.
	if err := s.Ingest(ctx, d, int64(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Writer(ctx, d, int64(len(data))); !errdefs.IsAlreadyExists(err) {
		t.Errorf("Writer of an existing blob: %v", err)
	}
	var walked []digest.Digest
	if err := s.Walk(ctx, func(i Info) error { walked = append(walked, i.Digest); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(walked) != 1 || walked[0] != d {
		t.Errorf("walk: %v", walked)
	}
	if _, err := s.Update(ctx, Info{Digest: d, Labels: map[string]string{"k": "", "x": "y"}}, "labels.k", "labels.x"); err != nil {
		t.Fatal(err)
	}
	info, _ = s.Info(ctx, d)
	if _, ok := info.Labels["k"]; ok || info.Labels["x"] != "y" {
		t.Errorf("labels after update: %v", info.Labels)
	}
	if err := s.Delete(ctx, d); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Info(ctx, d); !errdefs.IsNotFound(err) {
		t.Errorf("Info after delete: %v", err)
	}
	if err := s.Delete(ctx, d); !errdefs.IsNotFound(err) {
		t.Errorf("second delete: %v", err)
	}
	if _, err := s.Info(ctx, "sha256:nothex"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("bad digest: %v", err)
	}
}

// TestMismatch: wrong bytes or size leave neither blob nor partial data.
func TestMismatch(t *testing.T) {
	s, dir := newStore(t)
	ctx := context.Background()
	data := randomBytes(10 << 10)
	d := digest.FromBytes(data)
	bad := bytes.Clone(data)
	bad[5000] ^= 1
	err := s.Ingest(ctx, d, int64(len(bad)), bytes.NewReader(bad))
	var mm *MismatchError
	if !errors.As(err, &mm) || !errdefs.IsDataLoss(err) {
		t.Fatalf("corrupt ingest: %v", err)
	}
	if s.Exists(ctx, d) {
		t.Error("corrupt blob exposed")
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "content", "ingest")); len(ents) != 0 {
		t.Errorf("corrupt data kept: %v", ents)
	}
	// Too long.
	w, err := s.Writer(ctx, d, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(append(bytes.Clone(data), 'x')); !errors.As(err, &mm) {
		t.Errorf("overlong write: %v", err)
	}
	w.Abort()
	// Too short.
	w, _ = s.Writer(ctx, d, int64(len(data)))
	w.Write(data[:100])
	if err := w.Commit(ctx); !errors.As(err, &mm) {
		t.Errorf("short commit: %v", err)
	}
	if s.Exists(ctx, d) {
		t.Error("short blob exposed")
	}
}

// TestResume: an interrupted ingest keeps its data, and the next Writer
// continues from there.
func TestResume(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	data := randomBytes(300 << 10)
	d := digest.FromBytes(data)
	w, err := s.Writer(ctx, d, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data[:123456]); err != nil {
		t.Fatal(err)
	}
	w.Close()
	sts, err := s.Ingests(ctx)
	if err != nil || len(sts) != 1 || sts[0].Expected != d || sts[0].Offset != 123456 || sts[0].Active {
		t.Fatalf("ingests: %+v %v", sts, err)
	}

	w, err = s.Writer(ctx, d, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if w.Offset() != 123456 {
		t.Fatalf("resumed at %d", w.Offset())
	}
	// A reader follows what is written, and survives the commit.
	r, err := w.OpenReader()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := w.Write(data[123456:]); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("reader of the ingest: %d bytes, %v", len(got), err)
	}
	if sts, _ := s.Ingests(ctx); len(sts) != 0 {
		t.Errorf("ingests left: %+v", sts)
	}

	// Ingest skips what a partial ingest holds.
	data2 := randomBytes(50 << 10)
	d2 := digest.FromBytes(data2)
	w, _ = s.Writer(ctx, d2, -1)
	w.Write(data2[:1000])
	w.Close()
	if err := s.Ingest(ctx, d2, -1, bytes.NewReader(data2)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ReadBlob(ctx, d2); !bytes.Equal(got, data2) {
		t.Error("resumed Ingest wrong")
	}

	// A partial ingest larger than the blob cannot be its start.
	data3 := randomBytes(100)
	d3 := digest.FromBytes(data3)
	w, _ = s.Writer(ctx, d3, -1)
	w.Write(randomBytes(200))
	w.Close()
	w, _ = s.Writer(ctx, d3, 100)
	if w.Offset() != 0 {
		t.Errorf("oversized partial resumed at %d", w.Offset())
	}
	w.Abort()
}

// TestConcurrentWriters: a second Writer of the same blob waits for the
// first, then finds the blob there.
func TestConcurrentWriters(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	data := randomBytes(1000)
	d := digest.FromBytes(data)
	w, err := s.Writer(ctx, d, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var err2 error
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, err2 = s.Writer(ctx, d, 1000)
	}()
	time.Sleep(50 * time.Millisecond)
	if err := s.AbortIngest(ctx, d); !errdefs.IsUnavailable(err) {
		t.Errorf("abort of an ingest in use: %v", err)
	}
	w.Write(data)
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if !errdefs.IsAlreadyExists(err2) {
		t.Errorf("second writer: %v", err2)
	}
	tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	other := digest.FromString("x")
	w, _ = s.Writer(ctx, other, 1)
	if _, err := s.Writer(tctx, other, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting writer: %v", err)
	}
	w.Abort()
}

func TestAdd(t *testing.T) {
	s, dir := newStore(t)
	ctx := context.Background()
	data := randomBytes(5000)
	d, n, err := s.Add(ctx, bytes.NewReader(data))
	if err != nil || d != digest.FromBytes(data) || n != 5000 {
		t.Fatalf("Add: %s %d %v", d, n, err)
	}
	if d2, _, err := s.Add(ctx, bytes.NewReader(data)); err != nil || d2 != d {
		t.Fatalf("Add again: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "content", "ingest")); len(ents) != 0 {
		t.Errorf("temporary files left: %v", ents)
	}
	if _, _, err := s.Add(ctx, io.MultiReader(bytes.NewReader(data), errReader{})); err == nil {
		t.Fatal("Add of a failing reader succeeded")
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "content", "ingest")); len(ents) != 0 {
		t.Errorf("temporary files left after a failure: %v", ents)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("broken") }

// TestDiskFull: a write that finds the disk full is ResourceExhausted with
// docker's words, and its partial data is not kept to resume (it would
// hold the space a next try needs). A real full disk is in
// integration/berthd's TestDiskFull.
func TestDiskFull(t *testing.T) {
	err := ioError("store sha256:abc", &os.PathError{Op: "write", Path: "/x/data", Err: syscall.ENOSPC})
	if !errdefs.IsResourceExhausted(err) || !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("%v: not ResourceExhausted and ENOSPC", err)
	}
	if want := "store sha256:abc: no space left on device (write /x/data): free some disk (berth image prune, berth system prune)"; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
	if err := ioError("store", syscall.EDQUOT); !errdefs.IsResourceExhausted(err) || err.Error() != "store: disk quota exceeded: free some disk (berth image prune, berth system prune)" {
		t.Errorf("quota: %v", err)
	}

	s, _ := newStore(t)
	ctx := context.Background()
	data := randomBytes(64 << 10)
	d := digest.FromBytes(data)
	w, err := s.Writer(ctx, d, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data[:1000]); err != nil {
		t.Fatal(err)
	}
	w.ioError(syscall.ENOSPC) // as a failed write does
	w.Close()
	if ins, err := s.Ingests(ctx); err != nil || len(ins) != 0 {
		t.Errorf("ingests after a full disk: %+v, %v", ins, err)
	}
	// The next Writer starts afresh, and is not blocked.
	if err := s.Ingest(ctx, d, int64(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
}
