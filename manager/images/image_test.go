package images

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"

	"github.com/berth-project/berth/hack/testimage"
)

// loadTestImage loads hack/testimage's image (as a docker archive) under
// name and returns it.
func (e *env) loadTestImage(name string, opts testimage.Options) Image {
	e.t.Helper()
	opts.Name = name
	var buf bytes.Buffer
	if err := testimage.WriteDockerArchive(&buf, opts); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.svc.Load(e.ctx, &buf, LoadOptions{}); err != nil {
		e.t.Fatal(err)
	}
	img, err := e.svc.Get(e.ctx, name)
	if err != nil {
		e.t.Fatal(err)
	}
	return img
}

// checkClean checks that the store holds nothing: no record, blob, ingest
// or snapshot.
func (e *env) checkClean() {
	e.t.Helper()
	imgs, err := e.svc.List(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	if len(imgs) != 0 {
		e.t.Errorf("images left: %v", imgs)
	}
	if b := e.blobs(); len(b) != 0 {
		e.t.Errorf("blobs left: %v", b)
	}
	if in := e.ingests(); len(in) != 0 {
		e.t.Errorf("ingests left: %v", in)
	}
	if s := e.snapshots(); len(s) != 0 {
		e.t.Errorf("snapshots left: %v", s)
	}
}

func TestTagListRemove(t *testing.T) {
	e := newEnv(t, envOpts{})
	ctx := e.ctx
	img := e.loadTestImage("berth-test:v1", testimage.Options{})
	if img.RepoTags[0] != "berth-test:v1" || !img.Unpacked {
		t.Fatalf("loaded image: %+v", img)
	}

	if err := e.svc.Tag(ctx, "berth-test:v1", "other/name:v2"); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Tag(ctx, img.ID.Encoded()[:12], "berth-test:v3"); err != nil {
		t.Fatal(err)
	}
	got, err := e.svc.Get(ctx, "docker.io/other/name:v2")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got.RepoTags)
	if want := []string{"berth-test:v1", "berth-test:v3", "other/name:v2"}; !slices.Equal(got.RepoTags, want) {
		t.Errorf("RepoTags %v, want %v", got.RepoTags, want)
	}
	for _, ref := range []string{"berth-test:v1", img.ID.String(), img.ID.Encoded(), img.ID.Encoded()[:5], "docker.io/library/berth-test:v1"} {
		if g, err := e.svc.Get(ctx, ref); err != nil || g.ID != img.ID {
			t.Errorf("Get(%q): %v, %v", ref, g.ID, err)
		}
	}
	for _, ref := range []string{"berth-test:nope", "nothing", "sha256:" + strings.Repeat("0", 64)} {
		if _, err := e.svc.Get(ctx, ref); !errdefs.IsNotFound(err) {
			t.Errorf("Get(%q): %v, want NotFound", ref, err)
		}
	}
	list, err := e.svc.List(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("List: %v, %v", list, err)
	}

	// By ID, an image in two repositories is removed only by force.
	if _, err := e.svc.Remove(ctx, img.ID.String(), RemoveOptions{}); !errdefs.IsConflict(err) {
		t.Errorf("Remove by ID: %v, want Conflict", err)
	} else {
		t.Logf("error: %v", err)
	}
	// By name, a name goes and the image stays.
	res, err := e.svc.Remove(ctx, "other/name:v2", RemoveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Untagged != "other/name:v2" {
		t.Errorf("Remove other/name:v2: %+v", res)
	}
	if _, err := e.svc.Get(ctx, "berth-test:v1"); err != nil {
		t.Fatal(err)
	}
	// One repository left: by ID untags both and deletes.
	res, err = e.svc.Remove(ctx, img.ID.Encoded()[:12], RemoveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var untagged []string
	var deleted []digest.Digest
	for _, r := range res {
		if r.Untagged != "" {
			untagged = append(untagged, r.Untagged)
		}
		if r.Deleted != "" {
			deleted = append(deleted, r.Deleted)
		}
	}
	slices.Sort(untagged)
	if !slices.Equal(untagged, []string{"berth-test:v1", "berth-test:v3"}) || !slices.Equal(deleted, []digest.Digest{img.ID}) {
		t.Errorf("Remove by ID: %+v", res)
	}
	e.checkClean()
}

func TestRemoveForceAndInUse(t *testing.T) {
	inUse := map[digest.Digest]bool{}
	e := newEnv(t, envOpts{cfg: Config{InUse: func(ctx context.Context, id digest.Digest) bool { return inUse[id] }}})
	img := e.loadTestImage("berth-test:v1", testimage.Options{})
	if err := e.svc.Tag(e.ctx, "berth-test:v1", "other:v1"); err != nil {
		t.Fatal(err)
	}
	inUse[img.ID] = true
	// Removing one of two names is fine while in use.
	if _, err := e.svc.Remove(e.ctx, "other:v1", RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Remove(e.ctx, "berth-test:v1", RemoveOptions{}); !errdefs.IsConflict(err) {
		t.Errorf("removing the last name of an image in use: %v, want Conflict", err)
	}
	if res, err := e.svc.Prune(e.ctx, PruneOptions{All: true}); err != nil || len(res.Removed) != 0 {
		t.Errorf("prune -a removed an image in use: %+v %v", res, err)
	}
	inUse[img.ID] = false
	if err := e.svc.Tag(e.ctx, "berth-test:v1", "other:v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Remove(e.ctx, img.ID.String(), RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	e.checkClean()
}

// TestDanglingAndPrune: a name moved to another image leaves the old one
// dangling; prune removes dangling images, prune -a all, and GC what they
// leave.
func TestDanglingAndPrune(t *testing.T) {
	e := newEnv(t, envOpts{})
	ctx := e.ctx
	old := e.loadTestImage("berth-test:latest", testimage.Options{})
	newer := e.loadTestImage("berth-test:latest", testimage.Options{ExtraLayers: 1})
	if old.ID == newer.ID {
		t.Fatal("the two images are the same")
	}
	keep := e.loadTestImage("keep:v1", testimage.Options{ExtraLayers: 2})
	list, err := e.svc.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 {
		t.Fatalf("%d images, want 3: %+v", len(list), list)
	}
	var dangling []digest.Digest
	for _, img := range list {
		if img.Dangling {
			dangling = append(dangling, img.ID)
			if len(img.RepoTags) != 0 {
				t.Errorf("dangling image has tags %v", img.RepoTags)
			}
		}
	}
	if !slices.Equal(dangling, []digest.Digest{old.ID}) {
		t.Errorf("dangling %v, want [%s]", dangling, old.ID)
	}
	if g, err := e.svc.Get(ctx, old.ID.String()); err != nil || !g.Dangling {
		t.Errorf("Get old by ID: %+v %v", g, err)
	}

	res, err := e.svc.Prune(ctx, PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Removed) != 1 || res.Removed[0].Deleted != old.ID || res.Reclaimed <= 0 {
		t.Errorf("prune: %+v", res)
	}
	// The layers old shared with the others stay: they are whole.
	for _, ref := range []string{"berth-test:latest", "keep:v1"} {
		img, err := e.svc.Get(ctx, ref)
		if err != nil || !img.Unpacked {
			t.Fatalf("%s after prune: %+v %v", ref, img, err)
		}
		e.rootfs(img.ChainID, func(root string) { checkTestRootfs(t, root, len(img.Layers)-2) })
	}
	res, err = e.svc.Prune(ctx, PruneOptions{All: true, Filter: func(img Image) bool { return img.ID != keep.ID }})
	if err != nil || len(res.Removed) != 2 {
		t.Fatalf("prune -a with a filter: %+v %v", res, err)
	}
	if _, err := e.svc.Get(ctx, "keep:v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Prune(ctx, PruneOptions{All: true}); err != nil {
		t.Fatal(err)
	}
	e.checkClean()
}

// TestGC: unreferenced blobs, unpack leftovers and stale partial downloads
// go; what images need stays.
func TestGC(t *testing.T) {
	e := newEnv(t, envOpts{})
	ctx := e.ctx
	img := e.loadTestImage("berth-test:v1", testimage.Options{ExtraLayers: 1})
	blobs, snaps := e.blobs(), e.snapshots()

	// Orphans: a blob, a partial download, an abandoned unpack snapshot,
	// an orphan committed layer snapshot.
	orphan := []byte("orphan blob")
	od := digest.FromBytes(orphan)
	if err := e.svc.content.Ingest(ctx, od, int64(len(orphan)), bytes.NewReader(orphan)); err != nil {
		t.Fatal(err)
	}
	partial := digest.FromString("partial")
	w, err := e.svc.content.Writer(ctx, partial, 100)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("par"))
	w.Close()
	if _, err := e.sn.Prepare(ctx, "berth-unpack-dead-sha256:x", "", snapshotterLabels(labelUnpack, "sha256:x")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sn.Prepare(ctx, "orphan-active", img.ChainID); err != nil {
		t.Fatal(err)
	}
	if err := e.sn.Commit(ctx, "sha256:orphanlayer", "orphan-active", snapshotterLabels(LabelLayer, "sha256:y")); err != nil {
		t.Fatal(err)
	}
	// Someone else's snapshot is not ours to remove.
	if _, err := e.sn.Prepare(ctx, "container-rw", img.ChainID); err != nil {
		t.Fatal(err)
	}

	res, err := e.svc.GC(ctx, GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Blobs, []digest.Digest{od}) {
		t.Errorf("GC removed blobs %v, want the orphan", res.Blobs)
	}
	slices.Sort(res.Snapshots)
	if !slices.Equal(res.Snapshots, []string{"berth-unpack-dead-sha256:x", "sha256:orphanlayer"}) {
		t.Errorf("GC removed snapshots %v", res.Snapshots)
	}
	if len(res.Ingests) != 0 {
		t.Errorf("GC removed a fresh partial download: %v", res.Ingests)
	}
	if got := e.blobs(); !slices.Equal(got, blobs) {
		t.Errorf("blobs %v, want %v", got, blobs)
	}
	snapsNow := e.snapshots()
	delete(snapsNow, "container-rw")
	if len(snapsNow) != len(snaps) {
		t.Errorf("snapshots %v, want %v", snapsNow, snaps)
	}
	res, err = e.svc.GC(ctx, GCOptions{Ingests: true})
	if err != nil || !slices.Equal(res.Ingests, []digest.Digest{partial}) {
		t.Errorf("GC with Ingests: %+v %v", res, err)
	}
	if g, err := e.svc.Get(ctx, "berth-test:v1"); err != nil || !g.Unpacked {
		t.Fatalf("image after GC: %+v %v", g, err)
	}

	// The image's top layer has a child that is not ours: removing the
	// image removes all else, and the layer once the child is gone.
	if _, err := e.svc.Remove(ctx, "berth-test:v1", RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if s := e.snapshots(); len(s) == 0 {
		t.Error("GC removed the parent of another's snapshot")
	}
	if err := e.sn.Remove(ctx, "container-rw"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.GC(ctx, GCOptions{}); err != nil {
		t.Fatal(err)
	}
	e.checkClean()
}

func TestHistory(t *testing.T) {
	e := newEnv(t, envOpts{})
	img := e.loadTestImage("berth-test:v1", testimage.Options{ExtraLayers: 1})
	h, err := e.svc.History(e.ctx, "berth-test:v1")
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 3 {
		t.Fatalf("history %+v, want 3 entries", h)
	}
	if h[0].ID != img.ID.String() || h[1].ID != "<missing>" || !slices.Equal(h[0].Tags, []string{"berth-test:v1"}) {
		t.Errorf("history IDs/tags: %+v", h)
	}
	if !strings.Contains(h[0].CreatedBy, "extra-1") || !strings.Contains(h[2].CreatedBy, "base") {
		t.Errorf("history not newest first: %+v", h)
	}
	if h[2].Size < 100<<10 {
		t.Errorf("base layer size %d: too small", h[2].Size)
	}
}

// TestReopen: records and content survive a restart; the active snapshot
// of an unpack a crash interrupted does not.
func TestReopen(t *testing.T) {
	e := newEnv(t, envOpts{})
	img := e.loadTestImage("berth-test:v1", testimage.Options{})
	if _, err := e.sn.Prepare(e.ctx, "berth-unpack-crashed-sha256:z", "", snapshotterLabels(labelUnpack, "sha256:z")); err != nil {
		t.Fatal(err)
	}
	e.reopen(Config{})
	if _, ok := e.snapshots()["berth-unpack-crashed-sha256:z"]; ok {
		t.Error("leftover unpack snapshot survived Open")
	}
	got, err := e.svc.Get(e.ctx, "berth-test:v1")
	if err != nil || got.ID != img.ID || !got.Unpacked {
		t.Fatalf("after reopen: %+v %v", got, err)
	}
	if name, err := e.svc.Snapshot(e.ctx, "berth-test:v1"); err != nil || name != img.ChainID {
		t.Errorf("Snapshot: %q %v, want %s", name, err, img.ChainID)
	}
	// A snapshot store that lost the image's layers gets them again.
	for _, c := range []string{img.ChainID, img.Config.RootFS.DiffIDs[0].String()} {
		if err := e.sn.Remove(e.ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if name, err := e.svc.Snapshot(e.ctx, "berth-test:v1"); err != nil || name != img.ChainID {
		t.Fatalf("Snapshot after the layers went: %q %v", name, err)
	}
	e.rootfs(img.ChainID, func(root string) { checkTestRootfs(t, root, 0) })
}
