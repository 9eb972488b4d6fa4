package images

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/hack/testimage"
)

// writeMultiPlatform writes an OCI layout whose index names the test image
// for this machine and for linux/s390x (same layers, another config).
func writeMultiPlatform(t *testing.T) (string, *testimage.Image) {
	t.Helper()
	dir := t.TempDir()
	opts := testimage.Options{}
	if err := testimage.WriteOCILayout(dir, opts); err != nil {
		t.Fatal(err)
	}
	built, err := testimage.Build(opts)
	if err != nil {
		t.Fatal(err)
	}
	put := func(v any) ocispec.Descriptor {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		d := digest.FromBytes(b)
		if err := os.WriteFile(filepath.Join(dir, "blobs", "sha256", d.Encoded()), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return ocispec.Descriptor{Digest: d, Size: int64(len(b))}
	}
	var cfg ocispec.Image
	json.Unmarshal(built.Config.Data, &cfg)
	cfg.Architecture = "s390x"
	cd := put(cfg)
	cd.MediaType = ocispec.MediaTypeImageConfig
	var m ocispec.Manifest
	json.Unmarshal(built.Manifest.Data, &m)
	m.Config = cd
	md := put(m)
	md.MediaType = ocispec.MediaTypeImageManifest
	md.Platform = &ocispec.Platform{OS: "linux", Architecture: "s390x"}
	host := built.Manifest.Descriptor
	host.Platform = &ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{md, host}}
	idx.SchemaVersion = 2
	b, _ := json.Marshal(idx)
	if err := os.WriteFile(filepath.Join(dir, "index.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, built
}

func TestPullMultiPlatform(t *testing.T) {
	reg := requireRegistry(t)
	dir, built := writeMultiPlatform(t)
	ref := reg.Addr + "/multi:v1"
	if err := reg.PushLayoutIndex(context.Background(), dir, ref); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOpts{})
	img, err := e.svc.Pull(e.ctx, ref, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img.ID != built.Config.Descriptor.Digest || img.Manifest.Digest != built.Manifest.Descriptor.Digest || img.Target.MediaType != ocispec.MediaTypeImageIndex {
		t.Errorf("pulled %+v: want the host's manifest under the index", img)
	}
	e.rootfs(img.ChainID, func(root string) { checkTestRootfs(t, root, 0) })

	other := newEnv(t, envOpts{})
	img, err = other.svc.Pull(other.ctx, ref, PullOptions{Platform: "linux/s390x"})
	if err != nil {
		t.Fatal(err)
	}
	if img.Config.Architecture != "s390x" {
		t.Errorf("--platform linux/s390x pulled %s", img.Config.Architecture)
	}
	// Saved, an image with platforms missing goes as the manifest it has.
	if err := other.svc.Save(other.ctx, discard{}, []string{ref}, SaveOptions{}); err != nil {
		t.Errorf("save of a partial index: %v", err)
	}
	_, err = other.svc.Pull(other.ctx, ref, PullOptions{Platform: "linux/mips64"})
	if !errdefs.IsNotFound(err) {
		t.Errorf("pull for a platform the index lacks: %v", err)
	}
	t.Logf("error: %v", err)
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
