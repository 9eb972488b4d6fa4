package images

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/containerd/errdefs"
	"github.com/klauspost/compress/gzip"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// CommitOptions adjust Commit.
type CommitOptions struct {
	// Ref names the new image; empty leaves it dangling (docker commit
	// without a repository).
	Ref string
	// Config is the new image's runtime config before Changes (for docker
	// commit, the container's: its command, environment, …); nil keeps
	// the base image's.
	Config *ocispec.ImageConfig
	// Changes are Dockerfile instructions applied to the config, as
	// docker commit -c takes them (see ApplyChanges).
	Changes []string
	// Author and Comment go into the config and its new history entry
	// (docker commit -a, -m); CreatedBy is the entry's created_by.
	Author, Comment, CreatedBy string
}

// Commit makes an image of the base image (an ID, a name, anything Get
// takes) with one more layer on top: layerTar, an uncompressed layer tar
// (such as snapshotter/layer's Diff writes), stored gzip-compressed. The
// config is the base's with opts applied, a history entry added and the
// layer's diff ID appended; the manifest is an OCI one naming the base's
// layer blobs and the new one. The image is unpacked (on the base's
// snapshots) and recorded under opts.Ref, or dangling.
// A nil layerTar makes an image that differs from base in its config only.
func (s *Service) Commit(ctx context.Context, base string, layerTar io.Reader, opts CommitOptions) (_ Image, retErr error) {
	var name string
	if opts.Ref != "" {
		ref, err := ParseReference(opts.Ref)
		if err != nil {
			return Image{}, err
		}
		if ref.Digest != "" {
			return Image{}, fmt.Errorf("commit as %s: name it by tag, not digest: %w", opts.Ref, errdefs.ErrInvalidArgument)
		}
		name = ref.WithDefaultTag().String()
	}
	rec, err := s.find(ctx, base)
	if err != nil {
		return Image{}, err
	}
	l := s.newLease()
	defer func() {
		if retErr != nil {
			l.abandon(ctx, retErr)
		} else {
			l.release()
		}
	}()
	l.addBlob(rec.Target.Digest)
	im, err := s.resolveLocal(ctx, rec.Target, s.platform)
	if err != nil {
		return Image{}, fmt.Errorf("commit: base image: %w", err)
	}
	ds := []digest.Digest{im.Manifest.Digest, im.Parsed.Config.Digest}
	for _, d := range im.Parsed.Layers {
		ds = append(ds, d.Digest)
	}
	l.addBlob(ds...)

	cfg, err := committedConfig(im.Config, opts, time.Now().UTC())
	if err != nil {
		return Image{}, err
	}
	// Without a layer the image differs from its base in its config only
	// (a builder's ENV, CMD...): no layer, a history entry marked empty.
	var layerDesc *ocispec.Descriptor
	if layerTar != nil {
		d, diffID, err := s.commitLayer(ctx, l, layerTar)
		if err != nil {
			return Image{}, err
		}
		layerDesc = &d
		cfg.RootFS.DiffIDs = append(slices.Clone(cfg.RootFS.DiffIDs), diffID)
	} else {
		cfg.History[len(cfg.History)-1].EmptyLayer = true
	}
	var layers []ocispec.Descriptor
	for _, ld := range im.Parsed.Layers {
		layers = append(layers, ociLayer(ld))
	}
	if layerDesc != nil {
		layers = append(layers, *layerDesc)
	}
	nrec, cfgDesc, err := s.storeImage(ctx, l, name, cfg, layers)
	if err != nil {
		return Image{}, fmt.Errorf("commit: %w", err)
	}
	if opts.Ref != "" {
		s.event(ctx, "tag", opts.Ref, cfgDesc.Digest)
	}
	return s.image(ctx, nrec)
}

// committedConfig is the config of an image committed on base: the
// runtime config opts give (or base's), the changes applied, author and
// a history entry added. RootFS is base's.
func committedConfig(base ocispec.Image, opts CommitOptions, created time.Time) (ocispec.Image, error) {
	cfg := base
	cfg.Created = &created
	if opts.Config != nil {
		cfg.Config = *opts.Config
	}
	// Maps and slices are the new image's own: ApplyChanges writes into them.
	cfg.Config.Env = slices.Clone(cfg.Config.Env)
	cfg.Config.Labels = cloneMap(cfg.Config.Labels)
	cfg.Config.ExposedPorts = cloneMap(cfg.Config.ExposedPorts)
	cfg.Config.Volumes = cloneMap(cfg.Config.Volumes)
	if err := ApplyChanges(&cfg.Config, opts.Changes); err != nil {
		return ocispec.Image{}, err
	}
	if opts.Author != "" {
		cfg.Author = opts.Author
	}
	cfg.History = append(slices.Clone(base.History), ocispec.History{
		Created:   &created,
		CreatedBy: opts.CreatedBy,
		Author:    opts.Author,
		Comment:   opts.Comment,
	})
	if cfg.RootFS.Type == "" {
		cfg.RootFS.Type = "layers"
	}
	return cfg, nil
}

func cloneMap[V any](m map[string]V) map[string]V {
	if m == nil {
		return nil
	}
	out := make(map[string]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// ociLayer is a base layer's descriptor as an OCI manifest names it: the
// blob is the same, docker's media types become OCI's.
func ociLayer(d ocispec.Descriptor) ocispec.Descriptor {
	switch d.MediaType {
	case "application/vnd.docker.image.rootfs.diff.tar.gzip":
		d.MediaType = ocispec.MediaTypeImageLayerGzip
	case "application/vnd.docker.image.rootfs.diff.tar":
		d.MediaType = ocispec.MediaTypeImageLayer
	case "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip":
		d.MediaType = ocispec.MediaTypeImageLayerNonDistributableGzip //nolint:staticcheck // foreign layers stay foreign
	}
	return d
}

// commitLayer stores the uncompressed layer tar r as a gzip blob and
// returns its descriptor and diff ID. An empty tar is a layer too (docker
// commit of a container that changed nothing adds one).
func (s *Service) commitLayer(ctx context.Context, l *lease, r io.Reader) (ocispec.Descriptor, digest.Digest, error) {
	diff := digest.Canonical.Digester()
	pr, pw := io.Pipe()
	go func() {
		zw, _ := gzip.NewWriterLevel(pw, gzip.BestSpeed)
		_, err := io.Copy(zw, io.TeeReader(r, diff.Hash()))
		if err == nil {
			err = zw.Close()
		}
		pw.CloseWithError(err)
	}()
	d, n, err := s.content.Add(ctx, pr)
	pr.CloseWithError(errors.New("commit stopped"))
	if err != nil {
		return ocispec.Descriptor{}, "", fmt.Errorf("commit: store the layer: %w", err)
	}
	l.addBlob(d)
	l.madeBlob(d)
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: d, Size: n}, diff.Digest(), nil
}

// storeImage stores a new single-platform image made of cfg and layers
// (their blobs already held under l): its config and manifest, unpacked,
// and recorded under name (dangling when name is empty). It returns the
// record and the config's descriptor (the image ID).
func (s *Service) storeImage(ctx context.Context, l *lease, name string, cfg ocispec.Image, layers []ocispec.Descriptor) (Record, ocispec.Descriptor, error) {
	cb, err := json.Marshal(cfg)
	if err != nil {
		return Record{}, ocispec.Descriptor{}, err
	}
	cfgDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cb), Size: int64(len(cb))}
	l.addBlob(cfgDesc.Digest)
	if err := s.putBlob(ctx, l, cfgDesc, cb); err != nil {
		return Record{}, ocispec.Descriptor{}, err
	}
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: cfgDesc, Layers: layers}
	m.SchemaVersion = 2
	mb, err := json.Marshal(m)
	if err != nil {
		return Record{}, ocispec.Descriptor{}, err
	}
	target := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(mb), Size: int64(len(mb))}
	l.addBlob(target.Digest)
	if err := s.putBlob(ctx, l, target, mb); err != nil {
		return Record{}, ocispec.Descriptor{}, err
	}
	if _, err := s.unpackImage(ctx, l, nil, target); err != nil {
		return Record{}, ocispec.Descriptor{}, err
	}
	if name == "" {
		name = danglingPrefix + target.Digest.String()
	}
	rec, err := s.setImage(ctx, name, target)
	if err != nil {
		return Record{}, ocispec.Descriptor{}, err
	}
	return rec, cfgDesc, nil
}
