package images

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/berth-project/berth/manager/content"
	"github.com/berth-project/berth/snapshotter"
)

// GCOptions adjust a collection.
type GCOptions struct {
	// Ingests also throws away the partial downloads of interrupted pulls,
	// however recent (they are kept Config.IngestExpiry for a pull to
	// resume otherwise).
	Ingests bool
}

// GCResult is what a collection removed.
type GCResult struct {
	Blobs     []digest.Digest
	Snapshots []string
	Ingests   []digest.Digest
	// Reclaimed is the disk freed: the blobs' bytes and the snapshots' own
	// usage.
	Reclaimed int64
}

// GC removes the blobs no image record leads to (through its index,
// manifests and config), the snapshots berth unpacked that no image needs
// (and those of unpacks that never finished), and stale partial
// downloads. What operations in flight use is kept.
func (s *Service) GC(ctx context.Context, opts GCOptions) (GCResult, error) {
	return s.collect(ctx, opts, nil, nil)
}

// collect is GC restricted to the blobs and snapshots the filters accept
// (all when nil); with filters, ingests are left alone.
func (s *Service) collect(ctx context.Context, opts GCOptions, blobOK func(digest.Digest) bool, snapOK func(string) bool) (GCResult, error) {
	s.gc.Lock()
	defer s.gc.Unlock()
	var res GCResult

	blobs := map[digest.Digest]bool{}
	snaps := map[string]bool{}
	s.mu.Lock()
	for l := range s.leases {
		for d := range l.blobs {
			blobs[d] = true
		}
		for k := range l.snaps {
			snaps[k] = true
		}
	}
	s.mu.Unlock()
	var recs []Record
	if err := s.db.View(func(tx *bolt.Tx) (err error) {
		recs, err = allRecords(tx)
		return err
	}); err != nil {
		return res, fmt.Errorf("gc: %w", err)
	}
	for _, r := range recs {
		if err := s.mark(ctx, r.Target, blobs, snaps, 0); err != nil {
			return res, fmt.Errorf("gc: image %s: %w", r.Name, err)
		}
	}

	err := s.content.Walk(ctx, func(info content.Info) error {
		if blobs[info.Digest] || (blobOK != nil && !blobOK(info.Digest)) {
			return nil
		}
		if err := s.content.Delete(ctx, info.Digest); err != nil && !errdefs.IsNotFound(err) {
			return err
		}
		res.Blobs = append(res.Blobs, info.Digest)
		res.Reclaimed += info.Size
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("gc: content: %w", err)
	}
	var ingests []content.IngestStatus
	if blobOK == nil {
		if ingests, err = s.content.Ingests(ctx); err != nil {
			return res, fmt.Errorf("gc: %w", err)
		}
	}
	for _, in := range ingests {
		if in.Active || (!opts.Ingests && time.Since(in.Updated) < s.cfg.IngestExpiry) {
			continue
		}
		if err := s.content.AbortIngest(ctx, in.Expected); err != nil {
			if errdefs.IsUnavailable(err) {
				continue // a pull took it up meanwhile
			}
			return res, fmt.Errorf("gc: %w", err)
		}
		res.Ingests = append(res.Ingests, in.Expected)
		res.Reclaimed += in.Offset
	}

	if err := s.sweepSnapshots(ctx, snaps, snapOK, &res); err != nil {
		return res, fmt.Errorf("gc: snapshots: %w", err)
	}
	return res, nil
}

// mark marks desc and all it leads to, and the snapshots of the images
// among them.
func (s *Service) mark(ctx context.Context, desc ocispec.Descriptor, blobs map[digest.Digest]bool, snaps map[string]bool, depth int) error {
	if blobs[desc.Digest] || depth > 8 {
		return nil
	}
	blobs[desc.Digest] = true
	if isLayer(desc.MediaType) || !(desc.MediaType == "" || isIndex(desc.MediaType) || isManifest(desc.MediaType)) {
		return nil
	}
	b, err := s.content.ReadBlob(ctx, desc.Digest)
	if errdefs.IsNotFound(err) {
		return nil // an index's manifests for other platforms are not here
	}
	if err != nil {
		return err
	}
	mt := manifestMediaType(desc.MediaType, b)
	kids, err := children(mt, desc.Digest, b)
	if err != nil {
		// Unparseable: keep it, and what it names stays unknown.
		log.G(ctx).WithError(err).Warnf("images: gc cannot read %s", desc.Digest)
		return nil
	}
	for _, k := range kids {
		if err := s.mark(ctx, k, blobs, snaps, depth+1); err != nil {
			return err
		}
	}
	if isManifest(mt) && len(kids) > 0 {
		cb, err := s.content.ReadBlob(ctx, kids[0].Digest)
		if err != nil {
			return nil // no config: nothing was unpacked from it
		}
		c, err := parseConfig(kids[0].Digest, cb)
		if err != nil {
			return nil
		}
		for _, ch := range chainIDs(c.RootFS.DiffIDs) {
			snaps[ch.String()] = true
		}
	}
	return nil
}

// ours tells whether berth's image code made the snapshot.
func ours(info snapshotter.Info) bool {
	if _, ok := info.Labels[LabelLayer]; ok {
		return true
	}
	if _, ok := info.Labels[labelUnpack]; ok {
		return true
	}
	return strings.HasPrefix(info.Name, "berth-unpack-") || strings.HasPrefix(info.Name, "berth-probe-")
}

// sweepSnapshots removes berth's image snapshots that are not marked,
// children before parents. A snapshot others built on (a container's) is
// left until they are gone.
func (s *Service) sweepSnapshots(ctx context.Context, keep map[string]bool, ok func(string) bool, res *GCResult) error {
	var cands []snapshotter.Info
	err := s.sn.Walk(ctx, func(ctx context.Context, info snapshotter.Info) error {
		if ours(info) && !keep[info.Name] && (ok == nil || ok(info.Name)) {
			cands = append(cands, info)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for len(cands) > 0 {
		var left []snapshotter.Info
		for _, c := range cands {
			var size int64
			if u, err := s.sn.Usage(ctx, c.Name); err == nil {
				size = u.Size
			}
			err := s.sn.Remove(ctx, c.Name)
			switch {
			case err == nil:
				res.Snapshots = append(res.Snapshots, c.Name)
				res.Reclaimed += size
			case errdefs.IsFailedPrecondition(err):
				left = append(left, c) // has children: after them
			case errdefs.IsNotFound(err):
			default:
				return err
			}
		}
		if len(left) == len(cands) {
			break // what is left has children that are not ours
		}
		cands = left
	}
	return nil
}

// PruneOptions adjust Prune.
type PruneOptions struct {
	// All prunes every image no container uses; otherwise only dangling
	// ones (docker image prune -a).
	All bool
	// Filter, if set, must return true for an image to be pruned (docker's
	// --filter until=, label=).
	Filter func(Image) bool
}

// PruneResult is what Prune removed.
type PruneResult struct {
	Removed   []RemoveResult
	Reclaimed int64
}

// Prune removes dangling images (or, with All, every image no container
// uses) and then collects the content and snapshots they leave.
func (s *Service) Prune(ctx context.Context, opts PruneOptions) (PruneResult, error) {
	var res PruneResult
	imgs, err := s.List(ctx)
	if err != nil {
		return res, err
	}
	for _, img := range imgs {
		if !opts.All && !img.Dangling {
			continue
		}
		if s.inUse(ctx, img.ID) || (opts.Filter != nil && !opts.Filter(img)) {
			continue
		}
		var names []string
		err := s.updateRecords(func(tx *bolt.Tx) error {
			all, err := allRecords(tx)
			if err != nil {
				return err
			}
			for _, r := range all {
				if r.Config == img.ID || (r.Config == "" && r.Target.Digest == img.ID) {
					if err := imagesBucket(tx).Delete([]byte(r.Name)); err != nil {
						return err
					}
					if !r.Dangling() {
						names = append(names, r.Name)
					}
				}
			}
			return nil
		})
		if err != nil {
			return res, fmt.Errorf("prune: %w", err)
		}
		for _, n := range names {
			res.Removed = append(res.Removed, RemoveResult{Untagged: FamiliarString(n)})
			s.event(ctx, "untag", n, img.ID)
		}
		res.Removed = append(res.Removed, RemoveResult{Deleted: img.ID})
		s.event(ctx, "delete", img.ID.String(), img.ID)
	}
	gc, err := s.GC(ctx, GCOptions{})
	res.Reclaimed = gc.Reclaimed
	if err != nil {
		return res, fmt.Errorf("prune: %w", err)
	}
	return res, nil
}
