package images

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/berth-project/berth/manager/content"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// ArchiveFormat is the format of a saved image archive.
type ArchiveFormat string

const (
	// FormatDocker is docker save's format as docker 25 writes it: an OCI
	// image layout with docker's manifest.json beside index.json, so that
	// both docker load and OCI tools read it.
	FormatDocker ArchiveFormat = "docker"
	// FormatOCI is an OCI image layout as a tar (oci-archive).
	FormatOCI ArchiveFormat = "oci"
)

// Annotations naming an image in an OCI layout's index.json.
const annotationImageName = "io.containerd.image.name"

// dockerManifest is one entry of a docker archive's manifest.json.
type dockerManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// SaveOptions adjust Save.
type SaveOptions struct {
	Format ArchiveFormat // default FormatDocker
}

// Save writes the images refs name (names, or IDs for images saved without
// their names) as one tar archive to w. An image is saved for the
// platform it was pulled for; a multi-platform index goes whole when every
// platform is here.
func (s *Service) Save(ctx context.Context, w io.Writer, refs []string, opts SaveOptions) error {
	if opts.Format == "" {
		opts.Format = FormatDocker
	}
	if opts.Format != FormatDocker && opts.Format != FormatOCI {
		return fmt.Errorf("save: unknown format %q: use docker or oci: %w", opts.Format, errdefs.ErrInvalidArgument)
	}
	if len(refs) == 0 {
		return fmt.Errorf("save: no image given: %w", errdefs.ErrInvalidArgument)
	}
	l := s.newLease()
	defer l.release()

	type saved struct {
		desc  ocispec.Descriptor // in index.json
		names []string
		im    *imageManifest
	}
	var images []*saved
	var blobs []ocispec.Descriptor
	seen := map[digest.Digest]bool{}
	addBlob := func(d ocispec.Descriptor) {
		if !seen[d.Digest] {
			seen[d.Digest] = true
			blobs = append(blobs, d)
		}
	}
	for _, ref := range refs {
		recs, byID, err := s.lookup(ctx, ref)
		if err != nil {
			return fmt.Errorf("save: %w", err)
		}
		rec := recs[0]
		l.addBlob(rec.Target.Digest)
		im, err := s.resolveLocal(ctx, rec.Target, s.platform)
		if err != nil {
			return fmt.Errorf("save %s: %w", ref, err)
		}
		sv := &saved{desc: im.Manifest, im: im}
		if idx, ok := s.completeIndex(ctx, rec.Target); ok {
			sv.desc = rec.Target
			addBlob(rec.Target)
			ix, _ := parseIndex(rec.Target.Digest, idx.raw)
			for _, m := range ix.Manifests {
				addBlob(m)
				mb, err := s.content.ReadBlob(ctx, m.Digest)
				if err != nil {
					return fmt.Errorf("save %s: %w", ref, err)
				}
				kids, _ := children(m.MediaType, m.Digest, mb)
				for _, k := range kids {
					addBlob(k)
				}
			}
		}
		addBlob(im.Manifest)
		addBlob(im.Parsed.Config)
		for _, ld := range im.Parsed.Layers {
			if !s.content.Exists(ctx, ld.Digest) {
				return fmt.Errorf("save %s: layer %s is not in the content store: pull the image again: %w", ref, ld.Digest, errdefs.ErrNotFound)
			}
			addBlob(ld)
		}
		if !byID {
			sv.names = append(sv.names, rec.Name)
		}
		// The same image named twice is saved once, with both names.
		merged := false
		for _, o := range images {
			if o.desc.Digest == sv.desc.Digest {
				o.names = append(o.names, sv.names...)
				merged = true
			}
		}
		if !merged {
			images = append(images, sv)
		}
	}
	for _, b := range blobs {
		l.addBlob(b.Digest)
	}

	tw := tar.NewWriter(w)
	mtime := time.Unix(0, 0)
	dir := func(name string) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX})
	}
	file := func(name string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	if err := dir("blobs/"); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	if err := dir("blobs/sha256/"); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	for _, b := range blobs {
		if err := s.writeBlobEntry(ctx, tw, b, mtime); err != nil {
			return fmt.Errorf("save: %w", err)
		}
	}
	index := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex}
	index.SchemaVersion = 2
	var dms []dockerManifest
	for _, sv := range images {
		if len(sv.names) == 0 {
			index.Manifests = append(index.Manifests, sv.desc)
		}
		for _, n := range sv.names {
			d := sv.desc
			d.Annotations = map[string]string{annotationImageName: n}
			if r, err := ParseReference(n); err == nil && r.Tag != "" {
				d.Annotations[ocispec.AnnotationRefName] = r.Tag
			}
			index.Manifests = append(index.Manifests, d)
		}
		dm := dockerManifest{Config: blobPath(sv.im.Parsed.Config.Digest)}
		for _, n := range sv.names {
			if r, err := ParseReference(n); err == nil && r.Tag != "" {
				dm.RepoTags = append(dm.RepoTags, r.Familiar())
			}
		}
		for _, ld := range sv.im.Parsed.Layers {
			dm.Layers = append(dm.Layers, blobPath(ld.Digest))
		}
		dms = append(dms, dm)
	}
	ib, err := json.Marshal(index)
	if err != nil {
		return err
	}
	if err := file(ocispec.ImageIndexFile, ib); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	lb, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err := file(ocispec.ImageLayoutFile, lb); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	if opts.Format == FormatDocker {
		mb, err := json.Marshal(dms)
		if err != nil {
			return err
		}
		if err := file("manifest.json", mb); err != nil {
			return fmt.Errorf("save: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	for _, sv := range images {
		for _, n := range sv.names {
			s.event(ctx, "save", n, sv.im.Parsed.Config.Digest)
		}
	}
	return nil
}

func blobPath(d digest.Digest) string {
	return "blobs/" + string(d.Algorithm()) + "/" + d.Encoded()
}

func (s *Service) writeBlobEntry(ctx context.Context, tw *tar.Writer, d ocispec.Descriptor, mtime time.Time) error {
	ra, err := s.content.ReaderAt(ctx, d.Digest)
	if err != nil {
		return err
	}
	defer ra.Close()
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: blobPath(d.Digest), Mode: 0o644, Size: ra.Size(), ModTime: mtime, Format: tar.FormatPAX}); err != nil {
		return err
	}
	_, err = io.Copy(tw, io.NewSectionReader(ra, 0, ra.Size()))
	return err
}

// LoadOptions adjust Load.
type LoadOptions struct {
	// Progress receives unpack reports of the loaded images' layers.
	Progress ProgressFunc
}

// LoadResult names what Load loaded, as docker load prints it: the
// images' names, or the IDs of images the archive names none for.
type LoadResult struct {
	Names []string        // familiar names ("busybox:latest")
	IDs   []digest.Digest // images without a name
}

// maxMetadataFile bounds the JSON files of an archive read into memory.
const maxMetadataFile = 16 << 20

// Load reads a docker-archive (either docker's classic layout or docker
// 25's OCI one) or an oci-archive from r, verifies and stores its blobs,
// unpacks its images and names them. A truncated or corrupt archive fails
// with InvalidArgument and leaves nothing behind.
func (s *Service) Load(ctx context.Context, r io.Reader, opts LoadOptions) (_ LoadResult, retErr error) {
	l := s.newLease()
	defer func() {
		if retErr != nil {
			l.abandon(ctx, retErr)
		} else {
			l.release()
		}
	}()
	a, err := s.readArchive(ctx, l, r)
	if err != nil {
		return LoadResult{}, err
	}
	type loaded struct {
		name   string // "" for an image without one
		target ocispec.Descriptor
	}
	var todo []loaded
	switch {
	case a.files["manifest.json"] != nil:
		var dms []dockerManifest
		if err := json.Unmarshal(a.files["manifest.json"], &dms); err != nil {
			return LoadResult{}, badArchive("manifest.json is not valid JSON: %v", err)
		}
		if len(dms) == 0 {
			return LoadResult{}, badArchive("manifest.json names no image")
		}
		for _, dm := range dms {
			target, err := s.dockerArchiveImage(ctx, l, a, dm)
			if err != nil {
				return LoadResult{}, err
			}
			if len(dm.RepoTags) == 0 {
				todo = append(todo, loaded{target: target})
			}
			for _, t := range dm.RepoTags {
				r, err := ParseReference(t)
				if err != nil {
					return LoadResult{}, badArchive("manifest.json: %v", err)
				}
				todo = append(todo, loaded{name: r.WithDefaultTag().String(), target: target})
			}
		}
	case a.files[ocispec.ImageIndexFile] != nil:
		idx, err := parseIndex("index.json", a.files[ocispec.ImageIndexFile])
		if err != nil {
			return LoadResult{}, badArchive("%v", err)
		}
		if len(idx.Manifests) == 0 {
			return LoadResult{}, badArchive("index.json names no image")
		}
		for _, d := range idx.Manifests {
			if !s.content.Exists(ctx, d.Digest) {
				return LoadResult{}, badArchive("index.json names %s, which the archive lacks", d.Digest)
			}
			b, err := s.content.ReadBlob(ctx, d.Digest)
			if err != nil {
				return LoadResult{}, err
			}
			d.MediaType = manifestMediaType(d.MediaType, b)
			name := d.Annotations[annotationImageName]
			if name == "" {
				// ref.name is a tag in OCI's view, a whole reference in
				// some tools'.
				if rn := d.Annotations[ocispec.AnnotationRefName]; strings.ContainsAny(rn, "/:") {
					name = rn
				}
			}
			if name != "" {
				r, err := ParseReference(name)
				if err != nil {
					return LoadResult{}, badArchive("index.json: image name: %v", err)
				}
				name = r.WithDefaultTag().String()
			}
			target := ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}
			todo = append(todo, loaded{name: name, target: target})
		}
	default:
		return LoadResult{}, badArchive("it has neither manifest.json (docker) nor index.json (OCI): is it an image archive?")
	}

	// Verify and unpack everything before any name changes.
	p := newProgress(opts.Progress)
	for _, t := range todo {
		if _, err := s.unpackImage(ctx, l, p, t.target); err != nil {
			return LoadResult{}, fmt.Errorf("load: %w", err)
		}
	}
	var res LoadResult
	for _, t := range todo {
		name := t.name
		if name == "" {
			name = danglingPrefix + t.target.Digest.String()
			if s.hasImageTarget(t.target.Digest) {
				// Already here under a name: loading it gives it none.
				name = ""
			}
		}
		var rec Record
		if name != "" {
			var err error
			if rec, err = s.setImage(ctx, name, t.target); err != nil {
				return LoadResult{}, fmt.Errorf("load: %w", err)
			}
		}
		id := rec.Config
		if id == "" {
			if im, err := s.resolveLocal(ctx, t.target, s.platform); err == nil {
				id = im.Parsed.Config.Digest
			}
		}
		if t.name != "" {
			res.Names = append(res.Names, FamiliarString(t.name))
		} else if !slices.Contains(res.IDs, id) {
			res.IDs = append(res.IDs, id)
		}
		s.event(ctx, "load", t.name, id)
	}
	return res, nil
}

// hasImageTarget tells whether some record points at target.
func (s *Service) hasImageTarget(target digest.Digest) bool {
	found := false
	s.db.View(func(tx *bolt.Tx) error {
		recs, err := allRecords(tx)
		for _, r := range recs {
			if r.Target.Digest == target {
				found = true
			}
		}
		return err
	})
	return found
}

func badArchive(format string, args ...any) error {
	return fmt.Errorf("load: not a valid image archive: %s: %w", fmt.Sprintf(format, args...), errdefs.ErrInvalidArgument)
}

// archive is what Load read of a tar: small files in memory, blobs in the
// content store.
type archive struct {
	files    map[string][]byte             // JSON files by path
	blobs    map[string]ocispec.Descriptor // other regular files, stored as blobs, by path
	symlinks map[string]string             // path -> target path
}

// readArchive reads the whole tar once: files under blobs/ go into the
// content store verified against their names; other JSON files into
// memory; other files (legacy layer.tar) into the store under the digest
// they turn out to have.
func (s *Service) readArchive(ctx context.Context, l *lease, r io.Reader) (*archive, error) {
	a := &archive{files: map[string][]byte{}, blobs: map[string]ocispec.Descriptor{}, symlinks: map[string]string{}}
	br := bufio.NewReaderSize(r, 1<<20)
	tr := tar.NewReader(br)
	entries := 0
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, truncated(err, entries)
		}
		entries++
		name := strings.TrimPrefix(path.Clean("/"+hdr.Name), "/")
		switch hdr.Typeflag {
		case tar.TypeSymlink:
			a.symlinks[name] = path.Clean(path.Join(path.Dir(name), hdr.Linkname))
			if strings.HasPrefix(hdr.Linkname, "/") {
				a.symlinks[name] = strings.TrimPrefix(path.Clean(hdr.Linkname), "/")
			}
			continue
		case tar.TypeLink:
			a.symlinks[name] = strings.TrimPrefix(path.Clean("/"+hdr.Linkname), "/")
			continue
		case tar.TypeReg:
		default:
			continue
		}
		if d, ok := blobName(name); ok {
			if err := s.loadBlob(ctx, l, tr, d, hdr.Size, entries-1); err != nil {
				return nil, err
			}
			a.blobs[name] = ocispec.Descriptor{Digest: d, Size: hdr.Size}
			continue
		}
		if strings.HasSuffix(name, ".json") || name == "repositories" || name == ocispec.ImageLayoutFile || path.Base(name) == "json" || path.Base(name) == "VERSION" {
			if hdr.Size > maxMetadataFile {
				return nil, badArchive("%s is %d bytes: too big for metadata", name, hdr.Size)
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				return nil, truncated(err, entries-1)
			}
			a.files[name] = b
			continue
		}
		// A legacy layer (<id>/layer.tar): its name says nothing of its
		// digest.
		d, n, err := s.content.Add(ctx, &tarEntryReader{tr: tr})
		if err != nil {
			var te truncatedErr
			if errors.As(err, &te) {
				return nil, truncated(te.err, entries-1)
			}
			return nil, fmt.Errorf("load: %s: %w", name, err)
		}
		l.addBlob(d)
		l.madeBlob(d) // a blob that was there already is kept by its images
		a.blobs[name] = ocispec.Descriptor{Digest: d, Size: n}
	}
	if entries == 0 {
		return nil, badArchive("it is empty")
	}
	// A tar ends with two zero blocks; what follows them is not ours.
	return a, nil
}

// tarEntryReader marks read errors of a tar entry as a truncated archive.
type tarEntryReader struct{ tr *tar.Reader }

type truncatedErr struct{ err error }

func (e truncatedErr) Error() string { return e.err.Error() }

func (r *tarEntryReader) Read(p []byte) (int, error) {
	n, err := r.tr.Read(p)
	if err != nil && err != io.EOF {
		err = truncatedErr{err}
	}
	return n, err
}

func truncated(err error, entries int) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, tar.ErrHeader) {
		return fmt.Errorf("load: the archive is truncated or corrupt after %d entries: %v: %w", entries, err, errdefs.ErrInvalidArgument)
	}
	return fmt.Errorf("load: read archive: %w", err)
}

// blobName tells the digest a path blobs/<alg>/<hex> names.
func blobName(name string) (digest.Digest, bool) {
	rest, ok := strings.CutPrefix(name, "blobs/")
	if !ok {
		return "", false
	}
	alg, enc, ok := strings.Cut(rest, "/")
	if !ok {
		return "", false
	}
	d := digest.NewDigestFromEncoded(digest.Algorithm(alg), enc)
	return d, d.Validate() == nil
}

// loadBlob stores a blob of the archive, verified; a partial one is not
// kept (an archive is read again whole).
func (s *Service) loadBlob(ctx context.Context, l *lease, tr *tar.Reader, d digest.Digest, size int64, entries int) error {
	l.addBlob(d)
	w, err := s.content.Writer(ctx, d, size)
	if errdefs.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	if off := w.Offset(); off > 0 {
		if err := w.Reset(); err != nil {
			w.Abort()
			return err
		}
	}
	if _, err := io.Copy(w, &tarEntryReader{tr: tr}); err != nil {
		w.Abort()
		var te truncatedErr
		if errors.As(err, &te) {
			return truncated(te.err, entries)
		}
		return fmt.Errorf("load: blob %s: %w", d, err)
	}
	if err := w.Commit(ctx); err != nil {
		// Nothing of an archive's blob is kept: it cannot be resumed.
		s.content.AbortIngest(context.WithoutCancel(ctx), d)
		var mm *content.MismatchError
		if errors.As(err, &mm) {
			return fmt.Errorf("load: the archive is corrupt: blob %s does not match its name: %w: %w", d, err, errdefs.ErrInvalidArgument)
		}
		return fmt.Errorf("load: blob %s: %w", d, err)
	}
	l.madeBlob(d)
	return nil
}

// resolve follows symlinks within the archive.
func (a *archive) resolve(name string) string {
	name = strings.TrimPrefix(path.Clean("/"+name), "/")
	for i := 0; i < 16; i++ {
		t, ok := a.symlinks[name]
		if !ok {
			return name
		}
		name = t
	}
	return name
}

// dockerArchiveImage stores the manifest of one manifest.json entry and
// returns its descriptor. Docker 25's archives carry the manifest itself
// (in index.json and blobs/); classic ones only the config and layers, and
// berth writes the docker manifest that names them.
func (s *Service) dockerArchiveImage(ctx context.Context, l *lease, a *archive, dm dockerManifest) (ocispec.Descriptor, error) {
	cfgPath := a.resolve(dm.Config)
	var cfgDesc ocispec.Descriptor
	if b, ok := a.blobs[cfgPath]; ok {
		cfgDesc = b
	} else if b, ok := a.files[cfgPath]; ok {
		cfgDesc = ocispec.Descriptor{Digest: digest.FromBytes(b), Size: int64(len(b))}
		l.addBlob(cfgDesc.Digest)
		if !s.content.Exists(ctx, cfgDesc.Digest) {
			if err := s.content.Ingest(ctx, cfgDesc.Digest, cfgDesc.Size, bytes.NewReader(b)); err != nil {
				return ocispec.Descriptor{}, fmt.Errorf("load: %w", err)
			}
			l.madeBlob(cfgDesc.Digest)
		}
	} else {
		return ocispec.Descriptor{}, badArchive("manifest.json names config %s, which the archive lacks", dm.Config)
	}
	cb, err := s.content.ReadBlob(ctx, cfgDesc.Digest)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	cfg, err := parseConfig(cfgDesc.Digest, cb)
	if err != nil {
		return ocispec.Descriptor{}, badArchive("%v", err)
	}
	if len(cfg.RootFS.DiffIDs) != len(dm.Layers) {
		return ocispec.Descriptor{}, badArchive("the config names %d layers, manifest.json %d", len(cfg.RootFS.DiffIDs), len(dm.Layers))
	}
	var layers []ocispec.Descriptor
	for _, lp := range dm.Layers {
		b, ok := a.blobs[a.resolve(lp)]
		if !ok {
			return ocispec.Descriptor{}, badArchive("manifest.json names layer %s, which the archive lacks", lp)
		}
		layers = append(layers, b)
	}

	// A docker 25 archive has the manifest: use it, digest and all.
	if ib := a.files[ocispec.ImageIndexFile]; ib != nil {
		if idx, err := parseIndex("index.json", ib); err == nil {
			for _, d := range idx.Manifests {
				if mdesc, ok := s.findManifestFor(ctx, d, cfgDesc.Digest); ok {
					return mdesc, nil
				}
			}
		}
	}

	cfgDesc.MediaType = mediaTypeDockerConfig
	m := ocispec.Manifest{MediaType: mediaTypeDockerManifest, Config: cfgDesc}
	m.SchemaVersion = 2
	for _, ld := range layers {
		mt, err := s.sniffLayer(ctx, ld.Digest)
		if err != nil {
			return ocispec.Descriptor{}, err
		}
		ld.MediaType = mt
		m.Layers = append(m.Layers, ld)
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	md := ocispec.Descriptor{MediaType: mediaTypeDockerManifest, Digest: digest.FromBytes(mb), Size: int64(len(mb))}
	l.addBlob(md.Digest)
	if err := s.putBlob(ctx, l, md, mb); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("load: %w", err)
	}
	return md, nil
}

// findManifestFor looks under d (a manifest or index in the store) for the
// manifest whose config is cfg.
func (s *Service) findManifestFor(ctx context.Context, d ocispec.Descriptor, cfg digest.Digest) (ocispec.Descriptor, bool) {
	b, err := s.content.ReadBlob(ctx, d.Digest)
	if err != nil {
		return ocispec.Descriptor{}, false
	}
	mt := manifestMediaType(d.MediaType, b)
	switch {
	case isManifest(mt):
		m, err := parseManifest(d.Digest, b)
		if err == nil && m.Config.Digest == cfg {
			return ocispec.Descriptor{MediaType: mt, Digest: d.Digest, Size: int64(len(b))}, true
		}
	case isIndex(mt):
		idx, err := parseIndex(d.Digest, b)
		if err != nil {
			return ocispec.Descriptor{}, false
		}
		for _, c := range idx.Manifests {
			if md, ok := s.findManifestFor(ctx, c, cfg); ok {
				return md, true
			}
		}
	}
	return ocispec.Descriptor{}, false
}

// sniffLayer tells a layer blob's media type from its first bytes.
func (s *Service) sniffLayer(ctx context.Context, d digest.Digest) (string, error) {
	ra, err := s.content.ReaderAt(ctx, d)
	if err != nil {
		return "", err
	}
	defer ra.Close()
	head := make([]byte, 4)
	n, _ := ra.ReadAt(head, 0)
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return mediaTypeDockerLayerGzip, nil
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return ocispec.MediaTypeImageLayerZstd, nil
	}
	return mediaTypeDockerLayer, nil
}
