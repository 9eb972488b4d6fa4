package images

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/containerd/errdefs"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// PushOptions adjust a push.
type PushOptions struct {
	// Progress receives a report per blob uploaded.
	Progress ProgressFunc
	// Credentials override those of the config file.
	Credentials *Credentials
}

// Push sends the image named ref (a name with a tag; "latest" if none) to
// its registry, from the content store. A multi-platform image whose other
// platforms were not pulled is pushed as the manifest of the one that was.
// It returns the digest the registry knows the image by.
func (s *Service) Push(ctx context.Context, ref string, opts PushOptions) (digest.Digest, error) {
	r, err := ParseReference(ref)
	if err != nil {
		return "", err
	}
	if r.Digest != "" {
		return "", fmt.Errorf("push %s: push a tag, not a digest: %w", ref, errdefs.ErrInvalidArgument)
	}
	r = r.WithDefaultTag()
	var rec Record
	recs, byID, err := s.lookup(ctx, r.String())
	if err != nil || byID {
		return "", fmt.Errorf("push %s: no image is tagged %s here (berth tag IMAGE %s first): %w", r.Familiar(), r.Familiar(), r.Familiar(), errdefs.ErrNotFound)
	}
	rec = recs[0]
	l := s.newLease()
	defer l.release()
	l.addBlob(rec.Target.Digest)
	p := newProgress(opts.Progress)

	rc, err := s.connect(ctx, r, opts.Credentials, transport.PushScope)
	if err != nil {
		return "", fmt.Errorf("push %w", err)
	}
	tag := rc.repo.Tag(r.Tag)
	ropts := append(rc.remoteOpts(ctx), remote.WithJobs(s.cfg.MaxConcurrentUploads))
	pt := &pushTracker{s: s, ctx: ctx, p: p, opened: map[digest.Digest]bool{}}

	pushed := rec.Target
	if idx, ok := s.completeIndex(ctx, rec.Target); ok {
		err = remote.WriteIndex(tag, idx.withTracker(pt), ropts...)
	} else {
		im, rerr := s.resolveLocal(ctx, rec.Target, s.platform)
		if rerr != nil {
			return "", fmt.Errorf("push %s: %w", r.Familiar(), rerr)
		}
		pushed = im.Manifest
		var img v1.Image
		img, err = s.contentImage(ctx, im.Manifest, pt)
		if err == nil {
			err = remote.Write(tag, img, ropts...)
		}
	}
	if err != nil {
		return "", fmt.Errorf("push %w", registryError(r, err))
	}
	pt.finish()
	s.event(ctx, "push", r.String(), rec.Config)
	return pushed.Digest, nil
}

// pushTracker reports the upload of each blob: bytes as ggcr reads them,
// and "Layer already exists" for those it never had to read.
type pushTracker struct {
	s      *Service
	ctx    context.Context
	p      *progress
	mu     sync.Mutex
	opened map[digest.Digest]bool
	blobs  []ocispec.Descriptor
}

func (pt *pushTracker) add(d ocispec.Descriptor) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if _, ok := pt.opened[d.Digest]; !ok {
		pt.opened[d.Digest] = false
		pt.blobs = append(pt.blobs, d)
		pt.p.report(Progress{Digest: d.Digest, Kind: "layer", Phase: PhaseUpload, Status: StatusWaiting, Total: d.Size})
	}
}

func (pt *pushTracker) open(d ocispec.Descriptor) (io.ReadCloser, error) {
	ra, err := pt.s.content.ReaderAt(pt.ctx, d.Digest)
	if err != nil {
		return nil, err
	}
	pt.mu.Lock()
	pt.opened[d.Digest] = true
	pt.mu.Unlock()
	c := &counter{p: pt.p, base: Progress{Digest: d.Digest, Kind: "layer", Phase: PhaseUpload, Status: StatusPushing, Total: d.Size}}
	return readerAtCloser{&countingReader{r: io.NewSectionReader(ra, 0, ra.Size()), c: c}, ra}, nil
}

func (pt *pushTracker) finish() {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	for _, d := range pt.blobs {
		st := StatusPushed
		if !pt.opened[d.Digest] {
			st = StatusLayerExists
		}
		pt.p.report(Progress{Digest: d.Digest, Kind: "layer", Phase: PhaseUpload, Status: st, Current: d.Size, Total: d.Size})
	}
}

// contentImage is a v1.Image over a manifest in the content store, for
// ggcr to push: the manifest goes out byte for byte, so its digest stays.
func (s *Service) contentImage(ctx context.Context, md ocispec.Descriptor, pt *pushTracker) (v1.Image, error) {
	mb, err := s.content.ReadBlob(ctx, md.Digest)
	if err != nil {
		return nil, err
	}
	m, err := parseManifest(md.Digest, mb)
	if err != nil {
		return nil, err
	}
	cb, err := s.content.ReadBlob(ctx, m.Config.Digest)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	blobs := map[string]ocispec.Descriptor{}
	for _, l := range m.Layers {
		if !s.content.Exists(ctx, l.Digest) {
			return nil, fmt.Errorf("layer %s is not in the content store: pull the image again: %w", l.Digest, errdefs.ErrNotFound)
		}
		blobs[l.Digest.String()] = l
		pt.add(l)
	}
	return partial.CompressedToImage(&imageCore{
		mt: types.MediaType(manifestMediaType(md.MediaType, mb)), manifest: mb, config: cb, blobs: blobs, pt: pt,
	})
}

type imageCore struct {
	mt       types.MediaType
	manifest []byte
	config   []byte
	blobs    map[string]ocispec.Descriptor
	pt       *pushTracker
}

func (c *imageCore) RawConfigFile() ([]byte, error)      { return c.config, nil }
func (c *imageCore) MediaType() (types.MediaType, error) { return c.mt, nil }
func (c *imageCore) RawManifest() ([]byte, error)        { return c.manifest, nil }

func (c *imageCore) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	d, ok := c.blobs[h.String()]
	if !ok {
		return nil, fmt.Errorf("blob %s is not a layer of the image", h)
	}
	return &blobLayer{d: d, pt: c.pt}, nil
}

type blobLayer struct {
	d  ocispec.Descriptor
	pt *pushTracker
}

func (b *blobLayer) Digest() (v1.Hash, error)            { return v1.NewHash(b.d.Digest.String()) }
func (b *blobLayer) Size() (int64, error)                { return b.d.Size, nil }
func (b *blobLayer) MediaType() (types.MediaType, error) { return types.MediaType(b.d.MediaType), nil }
func (b *blobLayer) Compressed() (io.ReadCloser, error)  { return b.pt.open(b.d) }

// contentIndex is a v1.ImageIndex over an index whose manifests are all in
// the content store.
type contentIndex struct {
	s   *Service
	ctx context.Context
	d   ocispec.Descriptor
	raw []byte
	pt  *pushTracker
}

// completeIndex returns target as an index if it is one and every image it
// names is here whole.
func (s *Service) completeIndex(ctx context.Context, target ocispec.Descriptor) (*contentIndex, bool) {
	b, err := s.content.ReadBlob(ctx, target.Digest)
	if err != nil || !isIndex(manifestMediaType(target.MediaType, b)) {
		return nil, false
	}
	idx, err := parseIndex(target.Digest, b)
	if err != nil {
		return nil, false
	}
	for _, m := range idx.Manifests {
		mb, err := s.content.ReadBlob(ctx, m.Digest)
		if err != nil {
			return nil, false
		}
		kids, err := children(m.MediaType, m.Digest, mb)
		if err != nil {
			return nil, false
		}
		for _, k := range kids {
			if !s.content.Exists(ctx, k.Digest) {
				return nil, false
			}
		}
	}
	return &contentIndex{s: s, ctx: ctx, d: target, raw: b}, true
}

func (ci *contentIndex) withTracker(pt *pushTracker) *contentIndex { ci.pt = pt; return ci }

func (ci *contentIndex) MediaType() (types.MediaType, error) {
	return types.MediaType(manifestMediaType(ci.d.MediaType, ci.raw)), nil
}
func (ci *contentIndex) Digest() (v1.Hash, error) { return v1.NewHash(ci.d.Digest.String()) }
func (ci *contentIndex) Size() (int64, error)     { return int64(len(ci.raw)), nil }
func (ci *contentIndex) RawManifest() ([]byte, error) {
	return ci.raw, nil
}
func (ci *contentIndex) IndexManifest() (*v1.IndexManifest, error) {
	return v1.ParseIndexManifest(bytes.NewReader(ci.raw))
}

func (ci *contentIndex) child(h v1.Hash) (ocispec.Descriptor, error) {
	idx, err := parseIndex(ci.d.Digest, ci.raw)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	for _, m := range idx.Manifests {
		if m.Digest.String() == h.String() {
			return m, nil
		}
	}
	return ocispec.Descriptor{}, errors.New("not in the index: " + h.String())
}

func (ci *contentIndex) Image(h v1.Hash) (v1.Image, error) {
	d, err := ci.child(h)
	if err != nil {
		return nil, err
	}
	return ci.s.contentImage(ci.ctx, d, ci.pt)
}

func (ci *contentIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	d, err := ci.child(h)
	if err != nil {
		return nil, err
	}
	sub, ok := ci.s.completeIndex(ci.ctx, d)
	if !ok {
		return nil, fmt.Errorf("index %s is not whole here: %w", d.Digest, errdefs.ErrNotFound)
	}
	return sub.withTracker(ci.pt), nil
}
