package images

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"

	"github.com/berth-project/berth/hack/testimage"
	"github.com/berth-project/berth/snapshotter"
)

func TestPull(t *testing.T) {
	for _, tc := range []struct {
		name     string
		native   bool
		parallel bool
	}{{"overlay", false, false}, {"overlay-parallel", false, true}, {"native", true, false}, {"native-parallel", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			reg := requireRegistry(t)
			ref, built := pushTestImage(t, reg, "berth-test:v1", testimage.Options{ExtraLayers: 3})
			e := newEnv(t, envOpts{native: tc.native, cfg: Config{ParallelUnpack: tc.parallel}})
			if e.svc.rebase != (!tc.native && tc.parallel) {
				t.Fatalf("rebase is %v for the %s store", e.svc.rebase, tc.name)
			}

			var mu sync.Mutex
			seen := map[Phase]map[digest.Digest]string{}
			img, err := e.svc.Pull(e.ctx, ref, PullOptions{Progress: func(p Progress) {
				mu.Lock()
				defer mu.Unlock()
				if seen[p.Phase] == nil {
					seen[p.Phase] = map[digest.Digest]string{}
				}
				seen[p.Phase][p.Digest] = p.Status
			}})
			if err != nil {
				t.Fatal(err)
			}
			if img.ID != built.Config.Descriptor.Digest {
				t.Errorf("image ID %s, want the config digest %s", img.ID, built.Config.Descriptor.Digest)
			}
			if want := reg.Addr + "/berth-test:v1"; len(img.RepoTags) != 1 || img.RepoTags[0] != want {
				t.Errorf("RepoTags %v, want [%s]", img.RepoTags, want)
			}
			if !img.Unpacked {
				t.Error("image not unpacked")
			}

			// Every blob is in the store, verified, and nothing else.
			want := []digest.Digest{built.Config.Descriptor.Digest, built.Manifest.Descriptor.Digest}
			for _, l := range built.Layers {
				want = append(want, l.Gzip.Descriptor.Digest)
			}
			got := e.blobs()
			if len(got) != len(want) {
				t.Errorf("blobs %v, want %v", got, want)
			}
			for _, d := range want {
				b, err := e.svc.content.ReadBlob(e.ctx, d)
				if err != nil {
					t.Errorf("blob %s: %v", d, err)
					continue
				}
				if digest.FromBytes(b) != d {
					t.Errorf("blob %s holds bytes of digest %s", d, digest.FromBytes(b))
				}
			}
			if in := e.ingests(); len(in) != 0 {
				t.Errorf("ingests left: %v", in)
			}

			// One committed snapshot per layer, named by chain ID, and nothing else.
			var diffIDs []digest.Digest
			for _, l := range built.Layers {
				diffIDs = append(diffIDs, l.DiffID)
			}
			chains := chainIDs(diffIDs)
			snaps := e.snapshots()
			if len(snaps) != len(chains) {
				t.Errorf("snapshots %v, want the %d chain IDs", snaps, len(chains))
			}
			for i, c := range chains {
				info, err := e.sn.Stat(e.ctx, c.String())
				if err != nil || info.Kind != snapshotter.KindCommitted {
					t.Errorf("snapshot %s: %v %v", c, info.Kind, err)
					continue
				}
				if i > 0 && info.Parent != chains[i-1].String() {
					t.Errorf("snapshot %s has parent %q, want %s", c, info.Parent, chains[i-1])
				}
			}
			if img.ChainID != chains[len(chains)-1].String() {
				t.Errorf("ChainID %s, want %s", img.ChainID, chains[len(chains)-1])
			}
			e.rootfs(img.ChainID, func(root string) { checkTestRootfs(t, root, 3) })

			// Progress came for each layer's download and unpack.
			mu.Lock()
			for _, l := range built.Layers {
				if s := seen[PhaseDownload][l.Gzip.Descriptor.Digest]; s != StatusDownloaded {
					t.Errorf("layer %s: last download status %q", l.Name, s)
				}
				if s := seen[PhaseUnpack][l.Gzip.Descriptor.Digest]; s != StatusPullComplete {
					t.Errorf("layer %s: last unpack status %q", l.Name, s)
				}
			}
			mu.Unlock()
		})
	}
}

// TestPullTwice: the second pull of an image fetches its manifest and no
// blob.
func TestPullTwice(t *testing.T) {
	reg := requireRegistry(t)
	ref, _ := pushTestImage(t, reg, "berth-test:twice", testimage.Options{})
	px := newProxy(t, reg.Addr)
	e := newEnv(t, envOpts{})
	ref = strings.Replace(ref, reg.Addr, px.Addr, 1)
	first, err := e.svc.Pull(e.ctx, ref, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(px.blobRequests()); n != 3 {
		t.Errorf("first pull fetched %d blobs, want 3 (config and 2 layers): %v", n, px.blobRequests())
	}
	blobs, snaps := e.blobs(), e.snapshots()
	px.reset()
	var statuses []string
	second, err := e.svc.Pull(e.ctx, ref, PullOptions{Progress: func(p Progress) { statuses = append(statuses, p.Status) }})
	if err != nil {
		t.Fatal(err)
	}
	if r := px.blobRequests(); len(r) != 0 {
		t.Errorf("second pull fetched blobs: %v", r)
	}
	if first.ID != second.ID {
		t.Errorf("IDs differ: %s, %s", first.ID, second.ID)
	}
	if got := e.blobs(); len(got) != len(blobs) {
		t.Errorf("blobs changed: %v, then %v", blobs, got)
	}
	if got := e.snapshots(); len(got) != len(snaps) {
		t.Errorf("snapshots changed: %v, then %v", snaps, got)
	}
	for _, s := range statuses {
		if s == StatusDownloading || s == StatusExtracting {
			t.Errorf("second pull reported %q", s)
		}
	}
}

func TestPullErrors(t *testing.T) {
	reg := requireRegistry(t)
	ref, _ := pushTestImage(t, reg, "berth-test:v1", testimage.Options{})
	e := newEnv(t, envOpts{})
	ctx := context.Background()

	for _, tc := range []struct {
		name  string
		ref   string
		is    func(error) bool
		words []string
	}{
		{"unknown tag", reg.Addr + "/berth-test:nope", errdefs.IsNotFound, []string{"not found", "berth-test:nope"}},
		{"unknown repository", reg.Addr + "/nothing-here:v1", errdefs.IsNotFound, []string{"not found", "nothing-here"}},
		{"unknown digest", reg.Addr + "/berth-test@sha256:" + strings.Repeat("ab", 32), errdefs.IsNotFound, []string{"not found"}},
		{"malformed", "Berth-Test:v1", errdefs.IsInvalidArgument, []string{"must be lowercase"}},
		{"malformed tag", "berth-test:-v1", errdefs.IsInvalidArgument, []string{"bad tag"}},
		{"registry down", "127.0.0.1:1/berth-test:v1", errdefs.IsUnavailable, []string{"unreachable", "127.0.0.1:1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.svc.Pull(ctx, tc.ref, PullOptions{})
			if err == nil {
				t.Fatal("pull succeeded")
			}
			if !tc.is(err) {
				t.Errorf("error %q is not of the expected kind", err)
			}
			for _, w := range tc.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			t.Logf("error: %v", err)
		})
	}
	if b := e.blobs(); len(b) != 0 {
		t.Errorf("failed pulls left blobs: %v", b)
	}
	if s := e.snapshots(); len(s) != 0 {
		t.Errorf("failed pulls left snapshots: %v", s)
	}
	// The service still works.
	if _, err := e.svc.Pull(ctx, ref, PullOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestPullResume cuts the connection in the middle of the big layer: the
// pull fails, keeping the partial download and nothing else; the next pull
// asks for the rest with a Range and ends with the right blob.
func TestPullResume(t *testing.T) {
	reg := requireRegistry(t)
	ref, built := pushTestImage(t, reg, "berth-test:resume", testimage.Options{})
	px := newProxy(t, reg.Addr)
	ref = strings.Replace(ref, reg.Addr, px.Addr, 1)
	e := newEnv(t, envOpts{cfg: Config{DownloadRetries: -1}})
	big := built.Layers[0].Gzip.Descriptor
	const cut = 64 << 10
	if big.Size < 4*cut {
		t.Fatalf("base layer is %d bytes: too small to cut", big.Size)
	}

	px.cutAfter.Store(cut)
	px.cutAll.Store(true)
	_, err := e.svc.Pull(e.ctx, ref, PullOptions{})
	if err == nil {
		t.Fatal("pull through a cutting proxy succeeded")
	}
	if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), "connection") {
		t.Errorf("error %q: want Unavailable, about the connection", err)
	}
	t.Logf("error: %v", err)
	if b := e.blobs(); len(b) != 0 {
		t.Errorf("failed pull left blobs %v", b)
	}
	if s := e.snapshots(); len(s) != 0 {
		t.Errorf("failed pull left snapshots %v", s)
	}
	if in := e.ingests(); !slices.Contains(in, "sha256-"+big.Digest.Encoded()) {
		t.Fatalf("no partial download of the base layer kept: %v", in)
	}

	px.cutAll.Store(false)
	px.reset()
	img, err := e.svc.Pull(e.ctx, ref, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ranged bool
	for _, r := range px.blobRequests() {
		if r.Digest == big.Digest.String() {
			var start int64
			if _, err := fmt.Sscanf(r.Range, "bytes=%d-", &start); err != nil || start < cut {
				t.Errorf("base layer fetched with Range %q, want from %d on", r.Range, cut)
			}
			ranged = true
		}
	}
	if !ranged {
		t.Error("base layer not fetched again")
	}
	if got := px.served.Load(); got >= big.Size {
		t.Errorf("resumed pull downloaded %d bytes, the whole base layer is %d", got, big.Size)
	}
	b, err := e.svc.content.ReadBlob(e.ctx, big.Digest)
	if err != nil || digest.FromBytes(b) != big.Digest {
		t.Fatalf("base layer blob wrong after resume: %v", err)
	}
	if in := e.ingests(); len(in) != 0 {
		t.Errorf("ingests left: %v", in)
	}
	e.rootfs(img.ChainID, func(root string) { checkTestRootfs(t, root, 0) })
}

// TestPullRetry: connections cut twice during one pull are resumed within
// it.
func TestPullRetry(t *testing.T) {
	reg := requireRegistry(t)
	ref, built := pushTestImage(t, reg, "berth-test:retry", testimage.Options{})
	px := newProxy(t, reg.Addr)
	ref = strings.Replace(ref, reg.Addr, px.Addr, 1)
	e := newEnv(t, envOpts{})
	px.cutOnly.Store(built.Layers[0].Gzip.Descriptor.Digest.String())
	px.cutAfter.Store(32 << 10)
	px.cutCount.Store(2)
	var retries atomic.Int32
	img, err := e.svc.Pull(e.ctx, ref, PullOptions{Progress: func(p Progress) {
		if p.Status == StatusRetrying {
			retries.Add(1)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if n := retries.Load(); n != 2 {
		t.Errorf("%d retries reported, want 2", n)
	}
	var ranges []string
	for _, r := range px.blobRequests() {
		if r.Digest == built.Layers[0].Gzip.Descriptor.Digest.String() {
			ranges = append(ranges, r.Range)
		}
	}
	if len(ranges) != 3 || ranges[0] != "" || ranges[1] != "bytes=32768-" || ranges[2] != "bytes=65536-" {
		t.Errorf("base layer requested with ranges %q, want none, then from 32768, then from 65536", ranges)
	}
	e.rootfs(img.ChainID, func(root string) { checkTestRootfs(t, root, 0) })
}

// TestPullCorrupt: a proxy flips a byte of every blob. The pull fails with
// DataLoss and leaves no blob and no snapshot; a clean pull afterwards
// works, though partial downloads of the bad one were kept.
func TestPullCorrupt(t *testing.T) {
	reg := requireRegistry(t)
	ref, _ := pushTestImage(t, reg, "berth-test:corrupt", testimage.Options{ExtraLayers: 2})
	px := newProxy(t, reg.Addr)
	ref = strings.Replace(ref, reg.Addr, px.Addr, 1)
	e := newEnv(t, envOpts{})
	px.corrupt.Store(true)
	_, err := e.svc.Pull(e.ctx, ref, PullOptions{})
	if err == nil {
		t.Fatal("pull of corrupt blobs succeeded")
	}
	if !errdefs.IsDataLoss(err) || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("error %q: want DataLoss, saying corrupt", err)
	}
	t.Logf("error: %v", err)
	if b := e.blobs(); len(b) != 0 {
		t.Errorf("blobs left: %v", b)
	}
	if s := e.snapshots(); len(s) != 0 {
		t.Errorf("snapshots left: %v", s)
	}
	px.corrupt.Store(false)
	img, err := e.svc.Pull(e.ctx, ref, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.rootfs(img.ChainID, func(root string) { checkTestRootfs(t, root, 2) })
}

// TestPullConcurrent: pulls of images sharing layers, at once and with
// collections running beside them, all succeed and share blobs and
// snapshots.
func TestPullConcurrent(t *testing.T) {
	reg := requireRegistry(t)
	var refs []string
	for i, extra := range []int{0, 1, 2} {
		ref, _ := pushTestImage(t, reg, fmt.Sprintf("img%d:v1", i), testimage.Options{ExtraLayers: extra})
		refs = append(refs, ref, ref)
	}
	e := newEnv(t, envOpts{})
	var wg sync.WaitGroup
	errs := make(chan error, len(refs))
	stop := make(chan struct{})
	gcDone := make(chan struct{})
	go func() {
		defer close(gcDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := e.svc.GC(e.ctx, GCOptions{}); err != nil {
				errs <- err
				return
			}
		}
	}()
	for _, ref := range refs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			img, err := e.svc.Pull(e.ctx, ref, PullOptions{})
			if err == nil && !img.Unpacked {
				err = fmt.Errorf("%s not unpacked", ref)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-gcDone
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// 3 configs, 3 manifests, 2+2 shared layers and 2 extra: 10 blobs; 4
	// committed snapshots (base, overlay, extra-1, extra-2 on each chain).
	if b := e.blobs(); len(b) != 10 {
		t.Errorf("%d blobs, want 10: %v", len(b), b)
	}
	snaps := e.snapshots()
	if len(snaps) != 4 {
		t.Errorf("snapshots %v, want 4", snaps)
	}
	for _, ref := range refs {
		img, err := e.svc.Get(e.ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		e.rootfs(img.ChainID, func(root string) { checkTestRootfs(t, root, len(img.Layers)-2) })
	}
	if _, err := e.svc.GC(e.ctx, GCOptions{}); err != nil {
		t.Fatal(err)
	}
	if b := e.blobs(); len(b) != 10 {
		t.Errorf("GC removed blobs in use: %d left", len(b))
	}
}
