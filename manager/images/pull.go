package images

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/berth-project/berth/manager/content"
)

// PullOptions adjust a pull.
type PullOptions struct {
	// Platform to pull for, "os/arch[/variant]"; empty: the service's.
	Platform string
	// Progress receives a report per blob for download and per layer for
	// unpack.
	Progress ProgressFunc
	// Credentials override those of the config file.
	Credentials *Credentials
}

// Pull fetches the image ref (docker's short names allowed; "latest" if no
// tag or digest) for the platform, stores its blobs, unpacks its layers and
// records it under its normalised name. Blobs download in parallel and each
// layer unpacks while it downloads, as soon as its parent is unpacked (at
// once when the store can rebase). A blob already in the store is not
// fetched again; an interrupted download resumes where it stopped. Nothing
// that fails verification is kept.
func (s *Service) Pull(ctx context.Context, ref string, opts PullOptions) (_ Image, retErr error) {
	r, err := ParseReference(ref)
	if err != nil {
		return Image{}, err
	}
	r = r.WithDefaultTag()
	plat := s.platform
	if opts.Platform != "" {
		if plat, err = ParsePlatform(opts.Platform); err != nil {
			return Image{}, err
		}
	}
	l := s.newLease()
	defer func() {
		if retErr != nil {
			l.abandon(ctx, retErr)
		} else {
			l.release()
		}
	}()
	p := newProgress(opts.Progress)

	rc, err := s.connect(ctx, r, opts.Credentials, transport.PullScope)
	if err != nil {
		return Image{}, fmt.Errorf("pull %w", err)
	}
	p.report(Progress{ID: r.Familiar(), Phase: PhaseResolve, Kind: "manifest", Status: StatusWaiting})
	top, err := rc.getManifest(ctx, r, "")
	if err != nil {
		return Image{}, fmt.Errorf("pull %w", err)
	}
	target := ocispec.Descriptor{
		MediaType: manifestMediaType(string(top.MediaType), top.Manifest),
		Digest:    digest.Digest(top.Digest.String()),
		Size:      top.Size,
	}
	if err := checkImageMediaType(r, target.MediaType); err != nil {
		return Image{}, err
	}
	l.addBlob(target.Digest)
	if err := s.putBlob(ctx, l, target, top.Manifest); err != nil {
		return Image{}, fmt.Errorf("pull %s: %w", r.Familiar(), err)
	}
	manDesc, manBytes := target, top.Manifest
	if isIndex(target.MediaType) {
		idx, err := parseIndex(target.Digest, top.Manifest)
		if err != nil {
			return Image{}, fmt.Errorf("pull %s: %w", r.Familiar(), err)
		}
		md, err := selectManifest(idx, plat)
		if err != nil {
			return Image{}, fmt.Errorf("pull %s: %w", r.Familiar(), err)
		}
		l.addBlob(md.Digest)
		if manBytes, err = s.content.ReadBlob(ctx, md.Digest); err != nil {
			d, err := rc.getManifest(ctx, r, md.Digest)
			if err != nil {
				return Image{}, fmt.Errorf("pull %w", err)
			}
			manBytes = d.Manifest
			md.MediaType = manifestMediaType(md.MediaType, manBytes)
			if err := checkImageMediaType(r, md.MediaType); err != nil {
				return Image{}, err
			}
			if err := s.putBlob(ctx, l, md, manBytes); err != nil {
				return Image{}, fmt.Errorf("pull %s: %w", r.Familiar(), err)
			}
		}
		manDesc = md
	}
	if !isManifest(manifestMediaType(manDesc.MediaType, manBytes)) {
		return Image{}, fmt.Errorf("pull %s: the index names a manifest of type %q, not an image: %w", r.Familiar(), manDesc.MediaType, errdefs.ErrNotImplemented)
	}
	m, err := parseManifest(manDesc.Digest, manBytes)
	if err != nil {
		return Image{}, fmt.Errorf("pull %s: %w", r.Familiar(), err)
	}
	for _, ld := range m.Layers {
		if !isLayer(ld.MediaType) {
			return Image{}, fmt.Errorf("pull %s: layer %s has media type %q: not a container image: %w", r.Familiar(), ld.Digest, ld.MediaType, errdefs.ErrNotImplemented)
		}
	}
	p.report(Progress{ID: r.Familiar(), Phase: PhaseResolve, Kind: "manifest", Digest: manDesc.Digest, Status: StatusResolved})

	pl := &puller{s: s, rc: rc, lease: l, progress: p, ref: r}
	if err := pl.run(ctx, m); err != nil {
		return Image{}, fmt.Errorf("pull %s: %w", r.Familiar(), err)
	}
	rec, err := s.setImage(ctx, r.String(), target)
	if err != nil {
		return Image{}, fmt.Errorf("pull %s: %w", r.Familiar(), err)
	}
	img, err := s.image(ctx, rec)
	if err != nil {
		return Image{}, err
	}
	s.event(ctx, "pull", rec.Name, img.ID)
	return img, nil
}

func checkImageMediaType(r Reference, mt string) error {
	switch {
	case isSchema1(mt):
		return fmt.Errorf("pull %s: the image has a docker schema 1 manifest, which berth does not support: push it again with a current docker: %w", r.Familiar(), errdefs.ErrNotImplemented)
	case !isIndex(mt) && !isManifest(mt):
		return fmt.Errorf("pull %s: the registry answered with a manifest of type %q, not an image: %w", r.Familiar(), mt, errdefs.ErrNotImplemented)
	}
	return nil
}

// putBlob stores small content held in memory (a manifest), verified.
func (s *Service) putBlob(ctx context.Context, l *lease, desc ocispec.Descriptor, b []byte) error {
	if s.content.Exists(ctx, desc.Digest) {
		return nil
	}
	if err := s.content.Ingest(ctx, desc.Digest, int64(len(b)), bytes.NewReader(b)); err != nil {
		return err
	}
	l.madeBlob(desc.Digest)
	return nil
}

// puller fetches the blobs of one manifest and unpacks its layers.
type puller struct {
	s        *Service
	rc       *repoClient
	lease    *lease
	progress *progress
	ref      Reference
}

func (pl *puller) run(ctx context.Context, m ocispec.Manifest) error {
	ds := []digest.Digest{m.Config.Digest}
	for _, ld := range m.Layers {
		ds = append(ds, ld.Digest)
	}
	pl.lease.addBlob(ds...)

	feeds := make([]*feed, len(m.Layers))
	for i := range feeds {
		feeds[i] = newFeed()
	}
	defer func() {
		for _, f := range feeds {
			f.closeFile()
		}
	}()
	u := pl.s.newUnpacker(pl.lease, pl.progress, m.Layers, func(ctx context.Context, i int) (io.ReadCloser, error) {
		return &feedReader{f: feeds[i]}, nil
	})

	g, gctx := errgroup.WithContext(ctx)
	// A reader waiting for bytes that will never come must wake up.
	go func() {
		<-gctx.Done()
		for _, f := range feeds {
			f.finish(context.Cause(gctx))
		}
	}()
	ready := make(chan struct{})
	g.Go(func() error {
		if err := pl.fetch(gctx, m.Config, "config", nil); err != nil {
			return err
		}
		b, err := pl.s.content.ReadBlob(gctx, m.Config.Digest)
		if err != nil {
			return err
		}
		c, err := parseConfig(m.Config.Digest, b)
		if err != nil {
			return err
		}
		if err := u.setConfig(c); err != nil {
			return err
		}
		close(ready)
		return nil
	})
	// Downloads start in layer order, so that the layers at the bottom,
	// which the others unpack onto, come first.
	g.Go(func() error {
		for i, ld := range m.Layers {
			if pl.s.content.Exists(gctx, ld.Digest) {
				if err := pl.fetch(gctx, ld, "layer", feeds[i]); err != nil {
					return err
				}
				continue
			}
			pl.progress.report(Progress{Digest: ld.Digest, Kind: "layer", Phase: PhaseDownload, Status: StatusWaiting, Total: ld.Size})
			select {
			case pl.s.downloads <- struct{}{}:
			case <-gctx.Done():
				return gctx.Err()
			}
			g.Go(func() error {
				defer func() { <-pl.s.downloads }()
				return pl.fetch(gctx, ld, "layer", feeds[i])
			})
		}
		return nil
	})
	for i := range m.Layers {
		g.Go(func() error {
			if err := wait(gctx, ready); err != nil {
				return err
			}
			return u.layer(gctx, i)
		})
	}
	return g.Wait()
}

// fetch brings the blob desc into the content store, resuming an
// interrupted ingest, and feeds its bytes to f (if any) as they arrive.
func (pl *puller) fetch(ctx context.Context, desc ocispec.Descriptor, kind string, f *feed) (retErr error) {
	if f != nil {
		defer func() { f.finish(retErr) }()
	}
	base := Progress{Digest: desc.Digest, Kind: kind, Phase: PhaseDownload, Total: desc.Size}
	exists := func() error {
		if f != nil {
			ra, err := pl.s.content.ReaderAt(ctx, desc.Digest)
			if err != nil {
				return err
			}
			f.start(ra, ra.Size())
		}
		pr := base
		pr.Status, pr.Current = StatusExists, desc.Size
		pl.progress.report(pr)
		return nil
	}
	if pl.s.content.Exists(ctx, desc.Digest) {
		return exists()
	}
	for attempt := 0; ; attempt++ {
		resumed, err := pl.ingest(ctx, desc, f, base)
		if errdefs.IsAlreadyExists(err) {
			return exists()
		}
		var mm *content.MismatchError
		if errors.As(err, &mm) && resumed && attempt == 0 {
			// The partial data an earlier pull left may be what was bad:
			// it is gone now, so fetch the whole blob once more.
			pr := base
			pr.Status, pr.Err = StatusRetrying, err
			pl.progress.report(pr)
			continue
		}
		if errors.As(err, &mm) {
			return fmt.Errorf("%s %s from %s is corrupt, nothing of it was kept (pull again; if it persists the registry holds bad data): %w", kind, desc.Digest, pl.ref.Domain, err)
		}
		if err != nil {
			return err
		}
		break
	}
	if f != nil && !f.started() {
		// A resumed download fed nobody: its start was not seen to be
		// good until the whole blob verified. Feed the blob now.
		ra, err := pl.s.content.ReaderAt(ctx, desc.Digest)
		if err != nil {
			return err
		}
		f.start(ra, ra.Size())
	}
	pl.lease.madeBlob(desc.Digest)
	pr := base
	pr.Status, pr.Current = StatusDownloaded, desc.Size
	pl.progress.report(pr)
	return nil
}

// ingest downloads desc into the content store and commits it. It feeds f
// as bytes arrive, unless the ingest resumes earlier partial data: those
// bytes are not known to be good until the whole blob verifies. resumed
// tells whether it did.
func (pl *puller) ingest(ctx context.Context, desc ocispec.Descriptor, f *feed, base Progress) (resumed bool, retErr error) {
	w, err := pl.s.content.Writer(ctx, desc.Digest, desc.Size)
	if err != nil {
		return false, err
	}
	defer w.Close()
	resumed = w.Offset() > 0
	var fw io.Writer = w
	if f != nil && !resumed {
		rf, err := w.OpenReader()
		if err != nil {
			return false, err
		}
		f.start(rf, 0)
		fw = feedWriter{w, f}
	}
	if err := pl.download(ctx, desc, w, fw, base); err != nil {
		return resumed, err
	}
	if f != nil && !resumed {
		// All bytes are there: the unpack may finish while the blob is
		// verified and synced. It verifies the digest itself, and a failed
		// commit still fails the pull.
		f.finish(nil)
	}
	return resumed, w.Commit(ctx)
}

// download copies the blob from the registry into w from w's offset,
// resuming with a Range request after a network failure.
func (pl *puller) download(ctx context.Context, desc ocispec.Descriptor, w *content.Writer, fw io.Writer, base Progress) error {
	c := &counter{p: pl.progress, base: base}
	c.base.Status = StatusDownloading
	if off := w.Offset(); off > 0 {
		pr := base
		pr.Status, pr.Current = StatusResumed, off
		pl.progress.report(pr)
	}
	buf := make([]byte, 512<<10)
	for attempt := 0; ; attempt++ {
		off := w.Offset()
		if desc.Size > 0 && off >= desc.Size {
			return nil
		}
		c.n = off
		err := pl.copyBody(ctx, desc, off, fw, buf, c)
		if err == nil {
			if desc.Size <= 0 || w.Offset() >= desc.Size {
				return nil
			}
			err = io.ErrUnexpectedEOF // the body ended early
		}
		var we writeError
		if errors.As(err, &we) {
			return we.err
		}
		if errors.Is(err, errRangeNotSatisfiable) {
			// The partial data is not a prefix the registry agrees with.
			if rerr := w.Reset(); rerr != nil {
				return rerr
			}
			if fwf, ok := fw.(feedWriter); ok {
				fwf.f.reset()
			}
		} else if !retryable(err) || attempt >= pl.s.cfg.DownloadRetries {
			return registryErr(base.Kind+" "+desc.Digest.String()+": ", pl.ref.Domain, err)
		}
		pr := base
		pr.Status, pr.Current, pr.Err = StatusRetrying, w.Offset(), err
		pl.progress.report(pr)
		delay := time.Duration(200<<attempt) * time.Millisecond
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// writeError marks a failure to store what was read: not the network's
// fault, so not retried.
type writeError struct{ err error }

func (e writeError) Error() string { return e.err.Error() }

func (pl *puller) copyBody(ctx context.Context, desc ocispec.Descriptor, off int64, w io.Writer, buf []byte, c *counter) error {
	body, start, err := pl.rc.openBlob(ctx, desc.Digest, off)
	if err != nil {
		return err
	}
	defer body.Close()
	if start < off {
		// The registry sent the whole blob: skip what is already here.
		if _, err := io.CopyN(io.Discard, body, off-start); err != nil {
			return err
		}
	}
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return writeError{err}
			}
			c.add(n)
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// feed lets an unpack read a blob while it downloads: the download
// appends to the ingest file and advances n; readers read the file (on a
// descriptor of their own) up to n and wait for more.
type feed struct {
	mu   sync.Mutex
	cond *sync.Cond
	file interface {
		io.ReaderAt
		io.Closer
	}
	n    int64
	done bool
	err  error
}

func newFeed() *feed {
	f := &feed{}
	f.cond = sync.NewCond(&f.mu)
	return f
}

func (f *feed) start(file interface {
	io.ReaderAt
	io.Closer
}, n int64) {
	f.mu.Lock()
	f.file, f.n = file, n
	f.cond.Broadcast()
	f.mu.Unlock()
}

func (f *feed) started() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.file != nil
}

func (f *feed) advance(n int) {
	f.mu.Lock()
	f.n += int64(n)
	f.cond.Broadcast()
	f.mu.Unlock()
}

func (f *feed) reset() {
	f.mu.Lock()
	f.n = 0
	f.mu.Unlock()
}

// finish marks the end of the download; err is why it failed. Only the
// first call counts.
func (f *feed) finish(err error) {
	f.mu.Lock()
	if !f.done {
		f.done = true
		if err == nil && f.file == nil {
			err = errors.New("download ended without data")
		}
		f.err = err
		f.cond.Broadcast()
	}
	f.mu.Unlock()
}

func (f *feed) closeFile() {
	f.mu.Lock()
	if f.file != nil {
		f.file.Close()
	}
	f.mu.Unlock()
}

type feedWriter struct {
	w *content.Writer
	f *feed
}

func (fw feedWriter) Write(p []byte) (int, error) {
	n, err := fw.w.Write(p)
	if n > 0 {
		fw.f.advance(n)
	}
	return n, err
}

// feedReader reads a feed from the start.
type feedReader struct {
	f   *feed
	off int64
}

func (r *feedReader) Read(p []byte) (int, error) {
	f := r.f
	f.mu.Lock()
	for f.err == nil && !f.done && (f.file == nil || r.off >= f.n) {
		f.cond.Wait()
	}
	if f.err != nil {
		err := f.err
		f.mu.Unlock()
		return 0, fmt.Errorf("download: %w", err)
	}
	if r.off >= f.n {
		f.mu.Unlock()
		return 0, io.EOF
	}
	avail, file := f.n-r.off, f.file
	f.mu.Unlock()
	if int64(len(p)) > avail {
		p = p[:avail]
	}
	n, err := file.ReadAt(p, r.off)
	r.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (r *feedReader) Close() error { return nil }
