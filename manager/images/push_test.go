package images

import (
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"

	"github.com/berth-project/berth/hack/testimage"
)

// TestPushPrivateRegistry is the private-registry workflow: tag an image
// as 127.0.0.1:PORT/name:v1, push it, see it in GET /v2/_catalog, pull it
// into another store and get the same image.
func TestPushPrivateRegistry(t *testing.T) {
	reg := requireRegistry(t)
	e := newEnv(t, envOpts{})
	img := e.loadTestImage("berth-test:v1", testimage.Options{ExtraLayers: 1})
	target := reg.Addr + "/name:v1"
	if err := e.svc.Tag(e.ctx, "berth-test:v1", target); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	status := map[digest.Digest]string{}
	pushed, err := e.svc.Push(e.ctx, target, PushOptions{Progress: func(p Progress) {
		mu.Lock()
		status[p.Digest] = p.Status
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	if pushed != img.Target.Digest {
		t.Errorf("pushed %s, the image is %s", pushed, img.Target.Digest)
	}
	for _, l := range img.Layers {
		if status[l.Digest] != StatusPushed {
			t.Errorf("layer %s: status %q, want %q", l.Digest, status[l.Digest], StatusPushed)
		}
	}
	cat, err := reg.Catalog(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(cat, "name") {
		t.Errorf("catalog %v lacks name", cat)
	}

	// Pushed again under another tag, the blobs are there already.
	if err := e.svc.Tag(e.ctx, target, reg.Addr+"/name:v2"); err != nil {
		t.Fatal(err)
	}
	clear(status)
	if _, err := e.svc.Push(e.ctx, reg.Addr+"/name:v2", PushOptions{Progress: func(p Progress) {
		mu.Lock()
		status[p.Digest] = p.Status
		mu.Unlock()
	}}); err != nil {
		t.Fatal(err)
	}
	for _, l := range img.Layers {
		if status[l.Digest] != StatusLayerExists {
			t.Errorf("layer %s pushed again: status %q", l.Digest, status[l.Digest])
		}
	}

	other := newEnv(t, envOpts{})
	got, err := other.svc.Pull(other.ctx, target, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != img.ID || got.Target.Digest != img.Target.Digest {
		t.Errorf("pulled %s/%s, pushed %s/%s", got.ID, got.Target.Digest, img.ID, img.Target.Digest)
	}
	other.rootfs(got.ChainID, func(root string) { checkTestRootfs(t, root, 1) })
}

func TestPushErrors(t *testing.T) {
	reg := requireRegistry(t)
	e := newEnv(t, envOpts{})
	e.loadTestImage("berth-test:v1", testimage.Options{})
	if _, err := e.svc.Push(e.ctx, reg.Addr+"/untagged:v1", PushOptions{}); !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "tag") {
		t.Errorf("push of a name no image has: %v", err)
	}
	if err := e.svc.Tag(e.ctx, "berth-test:v1", "127.0.0.1:1/x:v1"); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.Push(e.ctx, "127.0.0.1:1/x:v1", PushOptions{})
	if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("push to a registry that is down: %v", err)
	}
	t.Logf("error: %v", err)
}
