package images

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/berth-project/berth/manager/content"
	"github.com/berth-project/berth/snapshotter"
	"github.com/berth-project/berth/snapshotter/layer"
)

// The labels berth puts on the snapshots it unpacks images into: GC
// removes those no image needs, and leaves other snapshots (containers')
// alone.
const (
	// LabelLayer is on the committed snapshot of a layer, named by its
	// chain ID; its value is the layer's diff ID.
	LabelLayer = "berth.io/image-layer"
	// labelUnpack is on the active snapshot a layer is being applied in;
	// its value is the chain ID it will be committed as.
	labelUnpack = "berth.io/image-unpack"
)

// unpacker applies the layers of one image into snapshots, each as soon
// as its bytes flow and (unless the store can rebase) its parent is
// committed.
type unpacker struct {
	s        *Service
	lease    *lease
	progress *progress
	layers   []ocispec.Descriptor
	diffIDs  []digest.Digest
	chains   []digest.Digest
	done     []chan struct{} // closed when the snapshot of layer i is committed
	// open returns the bytes of layer i (compressed, as the manifest names
	// them), from the start; they may still be arriving.
	open func(ctx context.Context, i int) (io.ReadCloser, error)
}

func (s *Service) newUnpacker(l *lease, p *progress, layers []ocispec.Descriptor, open func(context.Context, int) (io.ReadCloser, error)) *unpacker {
	u := &unpacker{s: s, lease: l, progress: p, layers: layers, open: open, done: make([]chan struct{}, len(layers))}
	for i := range u.done {
		u.done[i] = make(chan struct{})
	}
	return u
}

// setConfig gives the unpacker the image config's diff IDs.
func (u *unpacker) setConfig(c ocispec.Image) error {
	if c.RootFS.Type != "" && c.RootFS.Type != "layers" {
		return fmt.Errorf("image config has rootfs type %q, want layers: %w", c.RootFS.Type, errdefs.ErrNotImplemented)
	}
	if len(c.RootFS.DiffIDs) != len(u.layers) {
		return fmt.Errorf("image config names %d layers, the manifest %d: %w", len(c.RootFS.DiffIDs), len(u.layers), errdefs.ErrDataLoss)
	}
	for _, d := range c.RootFS.DiffIDs {
		if err := d.Validate(); err != nil {
			return fmt.Errorf("image config: diff ID %q: %v: %w", d, err, errdefs.ErrDataLoss)
		}
	}
	u.diffIDs = c.RootFS.DiffIDs
	u.chains = chainIDs(c.RootFS.DiffIDs)
	names := make([]string, len(u.chains))
	for i, c := range u.chains {
		names[i] = c.String()
	}
	u.lease.addSnapshot(names...)
	return nil
}

func wait(ctx context.Context, ch <-chan struct{}) error {
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// committed tells whether the snapshot name exists and is committed.
func (s *Service) committed(ctx context.Context, name string) bool {
	info, err := s.sn.Stat(ctx, name)
	return err == nil && info.Kind == snapshotter.KindCommitted
}

// layer unpacks layer i. Callers run it for every layer at once.
func (u *unpacker) layer(ctx context.Context, i int) error {
	desc := u.layers[i]
	chain := u.chains[i].String()
	base := Progress{Digest: desc.Digest, Kind: "layer", Phase: PhaseUnpack, Total: desc.Size}
	if u.s.committed(ctx, chain) {
		close(u.done[i])
		pr := base
		pr.Status, pr.Current = StatusExists, desc.Size
		u.progress.report(pr)
		return nil
	}
	parent := ""
	if i > 0 {
		parent = u.chains[i-1].String()
	}
	if !u.s.rebase && i > 0 {
		if err := wait(ctx, u.done[i-1]); err != nil {
			return err
		}
	}
	// A committed snapshot may have appeared meanwhile (another pull of an
	// image with the same base).
	if u.s.committed(ctx, chain) {
		close(u.done[i])
		return nil
	}
	select {
	case u.s.unpacks <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	key, err := u.apply(ctx, i, parent, base)
	<-u.s.unpacks
	if err != nil {
		return err
	}
	if u.s.rebase && i > 0 {
		if err := wait(ctx, u.done[i-1]); err != nil {
			u.s.removeSnapshot(ctx, key)
			return err
		}
	}
	var opts []snapshotter.Opt
	if u.s.rebase {
		opts = append(opts, snapshotter.WithParent(parent))
	}
	opts = append(opts, snapshotter.WithLabels(map[string]string{LabelLayer: u.diffIDs[i].String()}))
	if err := u.s.sn.Commit(ctx, chain, key, opts...); err != nil {
		u.s.removeSnapshot(ctx, key)
		if !errdefs.IsAlreadyExists(err) {
			return fmt.Errorf("layer %s: commit snapshot: %w", desc.Digest, err)
		}
		// Another pull committed the same layer first: use it.
	} else {
		u.lease.madeSnapshot(chain)
	}
	close(u.done[i])
	pr := base
	pr.Status, pr.Current = StatusPullComplete, desc.Size
	u.progress.report(pr)
	return nil
}

// apply prepares the snapshot of layer i and applies the layer into it. It
// returns the active snapshot's key; on failure nothing is left.
func (u *unpacker) apply(ctx context.Context, i int, parent string, base Progress) (string, error) {
	desc := u.layers[i]
	chain := u.chains[i].String()
	key := "berth-unpack-" + randomID() + "-" + chain
	u.lease.addSnapshot(key)
	prepareOn := parent
	if u.s.rebase {
		prepareOn = "" // committed onto parent afterwards
	}
	mounts, err := u.s.sn.Prepare(ctx, key, prepareOn, snapshotter.WithLabels(map[string]string{labelUnpack: chain}))
	if err != nil {
		return "", fmt.Errorf("layer %s: prepare snapshot: %w", desc.Digest, err)
	}
	ok := false
	defer func() {
		if !ok {
			u.s.removeSnapshot(ctx, key)
		}
	}()
	root, parents, format, err := applyTarget(mounts, u.s.rebase)
	if err != nil {
		return "", fmt.Errorf("layer %s: %w", desc.Digest, err)
	}
	rc, err := u.open(ctx, i)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	c := &counter{p: u.progress, base: base}
	c.base.Status = StatusExtracting
	c.add(0)
	res, err := layer.Apply(ctx, root, &countingReader{r: rc, c: c}, layer.ApplyOptions{
		Format: format, Parents: parents, Digest: desc.Digest, DiffID: u.diffIDs[i],
	})
	if err != nil {
		var mm *layer.DigestMismatchError
		if errors.As(err, &mm) {
			return "", fmt.Errorf("layer %s is corrupt, nothing of it was kept: %w: %w", desc.Digest, err, errdefs.ErrDataLoss)
		}
		if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
			return "", &content.DiskFullError{What: "unpack layer " + desc.Digest.String(), Err: err}
		}
		return "", fmt.Errorf("layer %s: %w", desc.Digest, err)
	}
	if desc.Size > 0 && res.Size != desc.Size {
		return "", fmt.Errorf("layer %s: %d bytes, the manifest says %d: %w", desc.Digest, res.Size, desc.Size, errdefs.ErrDataLoss)
	}
	ok = true
	return key, nil
}

// removeSnapshot removes a snapshot even when ctx is done: what a failed
// or cancelled operation made must not stay.
func (s *Service) removeSnapshot(ctx context.Context, key string) {
	if err := s.sn.Remove(context.WithoutCancel(ctx), key); err != nil && !errdefs.IsNotFound(err) {
		log.G(ctx).WithError(err).Warnf("images: remove snapshot %s (GC will)", key)
	}
}

// applyTarget finds in the mounts of an active snapshot the directory a
// layer is applied into and the lower directories it sits on.
func applyTarget(mounts []snapshotter.Mount, rebase bool) (string, []string, layer.Format, error) {
	if len(mounts) != 1 {
		return "", nil, 0, fmt.Errorf("cannot unpack into a snapshot of %d mounts", len(mounts))
	}
	m := mounts[0]
	switch m.Type {
	case "bind", "rbind":
		// A snapshot without parents, or a native copy of its parent. A
		// parentless snapshot of a store that rebases becomes an overlay
		// layer: its deletions must stay as whiteouts.
		if rebase {
			return m.Source, nil, layer.Overlay, nil
		}
		return m.Source, nil, layer.Plain, nil
	case "overlay":
		var upper string
		var lowers []string
		for _, o := range m.Options {
			switch {
			case strings.HasPrefix(o, "upperdir="):
				upper = strings.TrimPrefix(o, "upperdir=")
			case strings.HasPrefix(o, "lowerdir="):
				lowers = strings.Split(strings.TrimPrefix(o, "lowerdir="), ":")
			}
		}
		if upper == "" {
			return "", nil, 0, errors.New("cannot unpack into a read-only overlay")
		}
		return upper, lowers, layer.Overlay, nil
	}
	return "", nil, 0, fmt.Errorf("cannot unpack into a snapshot mounted as %q", m.Type)
}

// countingReader reports the bytes read through it.
type countingReader struct {
	r io.Reader
	c *counter
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.c.add(n)
	}
	return n, err
}

// Snapshot unpacks the image (if it is not) for the default platform and
// returns the name of its top committed snapshot, the parent of a
// container's root filesystem.
func (s *Service) Snapshot(ctx context.Context, ref string) (string, error) {
	rec, err := s.find(ctx, ref)
	if err != nil {
		return "", err
	}
	l := s.newLease()
	defer l.release()
	return s.unpackImage(ctx, l, nil, rec.Target)
}

// unpackImage unpacks the platform manifest of target from the content
// store and returns its top snapshot ("" for an image without layers).
func (s *Service) unpackImage(ctx context.Context, l *lease, p *progress, target ocispec.Descriptor) (string, error) {
	l.addBlob(target.Digest)
	im, err := s.resolveLocal(ctx, target, s.platform)
	if err != nil {
		return "", err
	}
	ds := []digest.Digest{im.Manifest.Digest, im.Parsed.Config.Digest}
	for _, d := range im.Parsed.Layers {
		ds = append(ds, d.Digest)
	}
	l.addBlob(ds...)
	if len(im.Parsed.Layers) == 0 {
		return "", nil
	}
	u := s.newUnpacker(l, p, im.Parsed.Layers, func(ctx context.Context, i int) (io.ReadCloser, error) {
		ra, err := s.content.ReaderAt(ctx, im.Parsed.Layers[i].Digest)
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", im.Parsed.Layers[i].Digest, err)
		}
		return readerAtCloser{io.NewSectionReader(ra, 0, ra.Size()), ra}, nil
	})
	if err := u.setConfig(im.Config); err != nil {
		return "", err
	}
	if err := u.run(ctx); err != nil {
		return "", err
	}
	return u.chains[len(u.chains)-1].String(), nil
}

type readerAtCloser struct {
	io.Reader
	io.Closer
}

// run unpacks all layers, from blobs the content store has.
func (u *unpacker) run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for i := range u.layers {
		g.Go(func() error { return u.layer(ctx, i) })
	}
	return g.Wait()
}
