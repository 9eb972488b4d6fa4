package images

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// Image is an image as berth shows it: one per image ID, with every name
// that points at it.
type Image struct {
	// ID is the digest of the image config (docker's image ID).
	ID digest.Digest
	// RepoTags are the names with a tag, RepoDigests repository@digest of
	// each repository the image is known in, both as docker shows them
	// (busybox:latest, busybox@sha256:...).
	RepoTags    []string
	RepoDigests []string
	// Names are the normalised names of the records (none if dangling).
	Names []string
	// Target is the descriptor the records point at (index or manifest);
	// Manifest the manifest for the platform.
	Target   ocispec.Descriptor
	Manifest ocispec.Descriptor
	Config   ocispec.Image
	Layers   []ocispec.Descriptor
	// Created is the creation time in the config; RecordCreated when berth
	// first recorded the image.
	Created       time.Time
	RecordCreated time.Time
	// Size is the disk its unpacked layers use (or, if not unpacked, their
	// uncompressed size as far as known); ContentSize the bytes of its
	// blobs in the content store.
	Size        int64
	ContentSize int64
	// ChainID names the top snapshot; Unpacked tells whether it exists.
	ChainID  string
	Unpacked bool
	Dangling bool
	Labels   map[string]string
}

// setImage points name at target, recording the config it has for this
// platform.
func (s *Service) setImage(ctx context.Context, name string, target ocispec.Descriptor) (Record, error) {
	var cfg digest.Digest
	if im, err := s.resolveLocal(ctx, target, s.platform); err == nil {
		cfg = im.Parsed.Config.Digest
	}
	var rec Record
	err := s.updateRecords(func(tx *bolt.Tx) error {
		old, err := setRecord(tx, name, target, cfg, nil)
		if err != nil {
			return err
		}
		_ = old
		rec, err = getRecord(tx, name)
		return err
	})
	return rec, err
}

// image builds the Image of rec and of all records with the same ID.
func (s *Service) image(ctx context.Context, rec Record) (Image, error) {
	var recs []Record
	if err := s.db.View(func(tx *bolt.Tx) error {
		all, err := allRecords(tx)
		for _, r := range all {
			if sameImage(r, rec) {
				recs = append(recs, r)
			}
		}
		return err
	}); err != nil {
		return Image{}, err
	}
	return s.build(ctx, recs)
}

func sameImage(a, b Record) bool {
	if a.Config != "" && b.Config != "" {
		return a.Config == b.Config
	}
	return a.Target.Digest == b.Target.Digest
}

// build makes the Image of records that share an ID.
func (s *Service) build(ctx context.Context, recs []Record) (Image, error) {
	if len(recs) == 0 {
		return Image{}, fmt.Errorf("no image: %w", errdefs.ErrNotFound)
	}
	// The record that has a name, and of those the oldest, is the one whose
	// target the image shows.
	sort.SliceStable(recs, func(i, j int) bool {
		if recs[i].Dangling() != recs[j].Dangling() {
			return !recs[i].Dangling()
		}
		return recs[i].CreatedAt.Before(recs[j].CreatedAt)
	})
	main := recs[0]
	img := Image{Target: main.Target, RecordCreated: main.CreatedAt, Labels: main.Labels, Dangling: true}
	for _, r := range recs {
		if r.Dangling() {
			continue
		}
		img.Dangling = false
		img.Names = append(img.Names, r.Name)
		ref, err := ParseReference(r.Name)
		if err != nil {
			continue
		}
		if ref.Tag != "" {
			img.RepoTags = append(img.RepoTags, ref.Familiar())
		}
		d := r.Target.Digest
		if ref.Digest != "" {
			d = ref.Digest
		}
		rd := ref.FamiliarName() + "@" + d.String()
		if !slices.Contains(img.RepoDigests, rd) {
			img.RepoDigests = append(img.RepoDigests, rd)
		}
		if r.CreatedAt.Before(img.RecordCreated) {
			img.RecordCreated = r.CreatedAt
		}
	}
	im, err := s.resolveLocal(ctx, main.Target, s.platform)
	if err != nil {
		// The record stays visible (and removable) when its content is
		// gone or was never whole.
		img.ID = main.Config
		if img.ID == "" {
			img.ID = main.Target.Digest
		}
		return img, nil
	}
	img.ID = im.Parsed.Config.Digest
	img.Manifest = im.Manifest
	img.Config = im.Config
	img.Layers = im.Parsed.Layers
	if im.Config.Created != nil {
		img.Created = *im.Config.Created
	}
	img.ContentSize = im.Manifest.Size + im.Parsed.Config.Size
	if main.Target.Digest != im.Manifest.Digest {
		img.ContentSize += main.Target.Size
	}
	for _, l := range im.Parsed.Layers {
		img.ContentSize += l.Size
	}
	if n := len(im.Config.RootFS.DiffIDs); n > 0 && n == len(im.Parsed.Layers) {
		chains := chainIDs(im.Config.RootFS.DiffIDs)
		img.ChainID = chains[n-1].String()
		img.Unpacked = s.committed(ctx, img.ChainID)
		for i, c := range chains {
			if u, err := s.sn.Usage(ctx, c.String()); err == nil {
				img.Size += u.Size
			} else {
				img.Size += im.Parsed.Layers[i].Size
			}
		}
	} else {
		img.Unpacked = n == 0
	}
	return img, nil
}

// lookup finds the records ref names: by name (docker's short forms
// allowed, "latest" if no tag), repo@digest, image ID or a prefix of it.
// byID tells that ref was an ID, which names every record of the image.
func (s *Service) lookup(ctx context.Context, ref string) (recs []Record, byID bool, err error) {
	var all []Record
	if err := s.db.View(func(tx *bolt.Tx) (err error) {
		all, err = allRecords(tx)
		return err
	}); err != nil {
		return nil, false, err
	}
	if r, perr := ParseReference(ref); perr == nil {
		full := r.WithDefaultTag().String()
		for _, rec := range all {
			if rec.Name == full {
				return []Record{rec}, false, nil
			}
		}
		if r.Digest != "" {
			// repo@digest names the image the repository has with that
			// manifest or index, whatever its tag.
			for _, rec := range all {
				rr, err := ParseReference(rec.Name)
				if err == nil && rr.Name() == r.Name() && rec.Target.Digest == r.Digest {
					recs = append(recs, rec)
				}
			}
			if len(recs) > 0 {
				return recs, false, nil
			}
		}
	}
	// An ID, full or short, with or without its algorithm.
	id := strings.TrimPrefix(strings.ToLower(ref), "sha256:")
	if id != "" && len(id) <= 64 && strings.Trim(id, "0123456789abcdef") == "" {
		var match digest.Digest
		for _, rec := range all {
			for _, cand := range []digest.Digest{rec.Config, rec.Target.Digest} {
				if cand == "" || !strings.HasPrefix(cand.Encoded(), id) {
					continue
				}
				if rec.Config != "" && cand == rec.Target.Digest && len(id) < 64 {
					continue // short IDs are of configs only, as docker's
				}
				if match != "" && match != cand && !sameImageDigest(all, match, cand) {
					return nil, false, fmt.Errorf("image ID prefix %q is ambiguous: give more of it: %w", ref, errdefs.ErrInvalidArgument)
				}
				if match == "" {
					match = cand
				}
			}
		}
		if match != "" {
			for _, rec := range all {
				if rec.Config == match || rec.Target.Digest == match {
					recs = append(recs, rec)
				}
			}
			return recs, true, nil
		}
	}
	if _, perr := ParseReference(ref); perr != nil && !strings.HasPrefix(ref, "sha256:") {
		return nil, false, perr
	}
	return nil, false, fmt.Errorf("no such image: %s: %w", ref, errdefs.ErrNotFound)
}

// sameImageDigest tells whether a and b (config or target digests) are of
// one image.
func sameImageDigest(all []Record, a, b digest.Digest) bool {
	for _, r := range all {
		if (r.Config == a || r.Target.Digest == a) && (r.Config == b || r.Target.Digest == b) {
			return true
		}
	}
	return false
}

// find returns the record ref names (the first by name for an ID).
func (s *Service) find(ctx context.Context, ref string) (Record, error) {
	recs, _, err := s.lookup(ctx, ref)
	if err != nil {
		return Record{}, err
	}
	sort.SliceStable(recs, func(i, j int) bool { return !recs[i].Dangling() && recs[j].Dangling() })
	return recs[0], nil
}

// Get returns the image ref names: a name, repo@digest, or an image ID
// (or an unambiguous prefix).
func (s *Service) Get(ctx context.Context, ref string) (Image, error) {
	rec, err := s.find(ctx, ref)
	if err != nil {
		return Image{}, err
	}
	return s.image(ctx, rec)
}

// List returns every image, newest first, one per image ID.
func (s *Service) List(ctx context.Context) ([]Image, error) {
	var all []Record
	if err := s.db.View(func(tx *bolt.Tx) (err error) {
		all, err = allRecords(tx)
		return err
	}); err != nil {
		return nil, err
	}
	var groups [][]Record
	for _, r := range all {
		placed := false
		for gi, g := range groups {
			if sameImage(g[0], r) {
				groups[gi] = append(g, r)
				placed = true
				break
			}
		}
		if !placed {
			groups = append(groups, []Record{r})
		}
	}
	out := make([]Image, 0, len(groups))
	for _, g := range groups {
		img, err := s.build(ctx, g)
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, nil
}

// Tag names the image source also target (docker's short forms allowed;
// "latest" if no tag). An image that target named before keeps its other
// names, or becomes dangling.
func (s *Service) Tag(ctx context.Context, source, target string) error {
	rec, err := s.find(ctx, source)
	if err != nil {
		return fmt.Errorf("tag %s: %w", source, err)
	}
	r, err := ParseReference(target)
	if err != nil {
		return fmt.Errorf("tag %s: %w", source, err)
	}
	if r.Digest != "" {
		return fmt.Errorf("tag %s as %s: a tag cannot hold a digest: %w", source, target, errdefs.ErrInvalidArgument)
	}
	name := r.WithDefaultTag().String()
	err = s.updateRecords(func(tx *bolt.Tx) error {
		_, err := setRecord(tx, name, rec.Target, rec.Config, nil)
		return err
	})
	if err != nil {
		return fmt.Errorf("tag %s: %w", source, err)
	}
	s.event(ctx, "tag", name, rec.Config)
	return nil
}

// RemoveOptions adjust Remove.
type RemoveOptions struct {
	// Force removes an image referenced in several repositories, given by
	// ID, and one that containers use (they keep their snapshots).
	Force bool
}

// RemoveResult is one line of what Remove did, as docker rmi prints it.
type RemoveResult struct {
	Untagged string        // a name that was removed (familiar form)
	Deleted  digest.Digest // an image ID or layer that is gone
}

// Remove removes the name ref, or, given an image ID, every name of the
// image. When an image has no name left it is deleted with the content and
// snapshots no other image needs.
func (s *Service) Remove(ctx context.Context, ref string, opts RemoveOptions) ([]RemoveResult, error) {
	recs, byID, err := s.lookup(ctx, ref)
	if err != nil {
		return nil, err
	}
	id := recs[0].Config
	if id == "" {
		id = recs[0].Target.Digest
	}
	var res []RemoveResult
	var deleted bool
	err = s.updateRecords(func(tx *bolt.Tx) error {
		all, err := allRecords(tx)
		if err != nil {
			return err
		}
		var same []Record
		for _, r := range all {
			if sameImage(r, recs[0]) {
				same = append(same, r)
			}
		}
		drop := recs
		if byID {
			drop = same
			repos := map[string]bool{}
			for _, r := range same {
				if rr, err := ParseReference(r.Name); err == nil && !r.Dangling() {
					repos[rr.Name()] = true
				}
			}
			if len(repos) > 1 && !opts.Force {
				return fmt.Errorf("unable to delete %s (must be forced): image is referenced in multiple repositories: %w", shortID(id), errdefs.ErrConflict)
			}
		}
		last := len(drop) == len(same)
		if last && s.inUse(ctx, id) && !opts.Force {
			if byID {
				return fmt.Errorf("unable to delete %s (must be forced): image is being used by a container: %w", shortID(id), errdefs.ErrConflict)
			}
			return fmt.Errorf("unable to remove repository reference %q (must force): a container is using its image %s: %w", ref, shortID(id), errdefs.ErrConflict)
		}
		for _, r := range drop {
			if err := imagesBucket(tx).Delete([]byte(r.Name)); err != nil {
				return err
			}
			if !r.Dangling() {
				res = append(res, RemoveResult{Untagged: FamiliarString(r.Name)})
			}
		}
		if last {
			deleted = true
			res = append(res, RemoveResult{Deleted: id})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("remove %s: %w", ref, err)
	}
	for _, r := range res {
		if r.Untagged != "" {
			s.event(ctx, "untag", r.Untagged, id)
		}
	}
	if deleted {
		s.event(ctx, "delete", ref, id)
		if _, err := s.GC(ctx, GCOptions{}); err != nil {
			return res, fmt.Errorf("remove %s: image removed, reclaiming its disk failed: %w", ref, err)
		}
	}
	return res, nil
}

// HistoryEntry is one step of how an image was built, newest first.
type HistoryEntry struct {
	ID         string // the image ID for the top entry, "<missing>" for the others (as docker)
	Created    time.Time
	CreatedBy  string
	Comment    string
	Size       int64 // disk of the layer the step made; 0 for steps that made none
	EmptyLayer bool
	Tags       []string // the image's tags, on the top entry
}

// History returns the build steps of an image from its config.
func (s *Service) History(ctx context.Context, ref string) ([]HistoryEntry, error) {
	img, err := s.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	if img.Manifest.Digest == "" {
		return nil, fmt.Errorf("history of %s: the image content is missing: pull it again: %w", ref, errdefs.ErrNotFound)
	}
	diffIDs := img.Config.RootFS.DiffIDs
	chains := chainIDs(diffIDs)
	layerSize := func(i int) int64 {
		if i < 0 || i >= len(chains) {
			return 0
		}
		if u, err := s.sn.Usage(ctx, chains[i].String()); err == nil {
			return u.Size
		}
		if i < len(img.Layers) {
			return img.Layers[i].Size
		}
		return 0
	}
	var out []HistoryEntry
	li := 0
	for _, h := range img.Config.History {
		e := HistoryEntry{CreatedBy: h.CreatedBy, Comment: h.Comment, EmptyLayer: h.EmptyLayer, ID: "<missing>"}
		if h.Created != nil {
			e.Created = *h.Created
		}
		if !h.EmptyLayer {
			e.Size = layerSize(li)
			li++
		}
		out = append(out, e)
	}
	// Layers the history does not account for (a config without history).
	for ; li < len(diffIDs); li++ {
		out = append(out, HistoryEntry{ID: "<missing>", Size: layerSize(li)})
	}
	slices.Reverse(out)
	if len(out) > 0 {
		out[0].ID = img.ID.String()
		out[0].Tags = img.RepoTags
	}
	return out, nil
}
